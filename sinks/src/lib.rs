//! Sink workers: materialize Kafka topics into Postgres effectively-once
//! (rows and consumed offsets commit in one Postgres transaction).

pub mod auction_details;
mod error;
mod offsets;

pub use error::SinkError;
