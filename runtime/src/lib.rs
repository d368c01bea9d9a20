//! The plumbing every Gavel role shares: configuration, Kafka clients and admin,
//! Avro with the Confluent wire format, the event envelope, Postgres, tracing and
//! graceful shutdown. Domain rules live in `gavel-domain`, never here.

pub mod access;
pub mod auction_codec;
pub mod avro;
pub mod config;
pub mod dlq;
pub mod envelope;
pub mod error;
pub mod failure;
pub mod http_settings;
pub mod kafka;
pub mod membership;
pub mod memory;
pub mod observe;
pub mod partitioner;
pub mod postgres;
pub mod preflight;
pub mod registry;
pub mod registry_endpoint;
pub mod saga_wire;
pub mod security;
pub mod shutdown;
pub mod telemetry;
pub mod view_binary;
pub mod view_wire;

pub use config::Config;
pub use error::{Result, RuntimeError};
pub use shutdown::Shutdown;
