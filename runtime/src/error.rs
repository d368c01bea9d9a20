//! The one error type of the runtime crate.

use rdkafka::error::KafkaError;

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka admin: {0}")]
    Admin(String),
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("avro: {0}")]
    Avro(String),
    #[error("record does not match its schema: {0}")]
    Mapping(String),
    #[error("schema id {0} is not cached yet")]
    UnknownSchema(u32),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("postgres pool: {0}")]
    Pool(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<apache_avro::Error> for RuntimeError {
    fn from(value: apache_avro::Error) -> Self {
        Self::Avro(value.to_string())
    }
}

impl From<schema_registry_converter::error::SRCError> for RuntimeError {
    fn from(value: schema_registry_converter::error::SRCError) -> Self {
        Self::Registry(value.to_string())
    }
}
