//! Stateful stream processors. `aggregate` turns commands into events under
//! Kafka transactions (exactly-once).

pub mod aggregate;
mod error;

pub use error::ProcessorError;
