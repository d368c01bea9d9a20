//! Stateful stream processors. `aggregate` turns commands into events under
//! Kafka transactions (exactly-once); `project` turns events into view records
//! the same way.

pub mod aggregate;
mod error;
pub mod project;
mod restore;
pub mod saga;
mod span;
mod txn;

pub use error::ProcessorError;
