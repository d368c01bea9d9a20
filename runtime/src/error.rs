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
    /// Connection refused, timeout, HTTP 5xx: worth waiting for, never poison.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
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
    /// The access table (deploy/access.txt) or applying it.
    #[error("access: {0}")]
    Access(String),
    /// A Postgres schema whose migrations a worker needs are not applied.
    #[error("{0}")]
    NotMigrated(String),
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
        // The converter marks transport failures and 502/503 retriable; other
        // 5xx answers (500, 504) are the registry's trouble too, not the record's.
        let server_side = value
            .cause
            .as_deref()
            .into_iter()
            .chain([value.error.as_str()])
            .any(|text| text.contains("failed with status 5"));
        if value.retriable || server_side {
            Self::RegistryUnavailable(value.to_string())
        } else {
            Self::Registry(value.to_string())
        }
    }
}

impl RuntimeError {
    /// Failures that pass when a dependency comes back: retry, do not dead-letter.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RegistryUnavailable(_) | Self::Kafka(_) | Self::Postgres(_) | Self::Pool(_)
        )
    }
}
