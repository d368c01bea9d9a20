//! Command producers: the authenticated HTTP command API, JSON lines in / Avro
//! commands out, the outbox relay (upstream Postgres outboxes to Kafka), the
//! demo load generator and `gavel load`.

pub mod command_api;
mod command_producer;
mod error;
pub mod json_command;
pub mod load;
pub mod loadgen;
pub mod outbox;
pub mod produce;
pub mod progress;
mod send_workload;

pub use command_producer::{command_writers, CommandProducer};
pub use error::ProducerError;
pub use send_workload::{send_workload, SendReport};
