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

/// Every migration of the read side's schema (`GAVEL_POSTGRES_SCHEMA`): the
/// views and offsets, the event store, the participants' tables. One schema,
/// one `schema_migrations` table; their version ranges do not overlap.
pub fn migrations() -> Vec<gavel_runtime::postgres::Migration> {
    let mut all = views::migrations();
    all.extend(event_store::migrations());
    all.extend(participants::migrations());
    all
}
