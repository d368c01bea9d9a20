//! Sink workers: materialize Kafka topics into Postgres effectively-once
//! (rows and consumed offsets commit in one Postgres transaction).

mod batch;
mod error;
pub mod event_store;
mod narrow;
mod offsets;
pub mod participants;
pub mod query_api;
pub mod views;

pub use error::SinkError;
