//! Command producers: the authenticated HTTP command API, JSON lines in / Avro
//! commands out, the outbox relay (upstream Postgres outboxes to Kafka), and
//! the demo load generator.

pub mod command_api;
mod command_producer;
mod error;
pub mod json_command;
pub mod loadgen;
pub mod outbox;
pub mod produce;
pub mod progress;
mod send_workload;

pub use command_producer::CommandProducer;
pub use error::ProducerError;
pub use send_workload::{send_workload, SendReport};
