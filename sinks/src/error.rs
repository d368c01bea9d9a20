use gavel_runtime::failure::{self, Failure};
use gavel_runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("row {auction_id} in postgres is unreadable: {reason}")]
    BadRow { auction_id: String, reason: String },
    #[error("event {aggregate_id} v{version} in the event store is unreadable: {reason}")]
    BadEvent {
        aggregate_id: String,
        version: i64,
        reason: String,
    },
    #[error("encoding a row: {0}")]
    Encode(String),
    #[error("rebuild: {0}")]
    Rebuild(String),
    #[error("query api: {0}")]
    QueryApi(String),
    #[error("query api: {0}")]
    Http(#[from] gavel_http::HttpError),
}

impl SinkError {
    /// Who can cure this failure (see [`gavel_runtime::failure`]).
    pub fn class(&self) -> Failure {
        match self {
            Self::Postgres(e) | Self::Runtime(RuntimeError::Postgres(e)) => failure::of_postgres(e),
            Self::Runtime(e) if e.is_transient() => Failure::Transient,
            Self::Kafka(_) => Failure::Transient,
            // A row that cannot be put into its columns (a count above int4).
            Self::Encode(_) => Failure::Poison,
            _ => Failure::Fatal,
        }
    }

    /// The dependency a transient failure is waiting for, as `/ready` names it.
    pub fn dependency(&self) -> &'static str {
        match self {
            Self::Postgres(_)
            | Self::Runtime(RuntimeError::Postgres(_) | RuntimeError::Pool(_)) => "postgres",
            Self::Runtime(RuntimeError::RegistryUnavailable(_)) => "schema-registry",
            _ => "kafka",
        }
    }

    /// The reason as a dead letter or a log line gives it: Postgres' message
    /// with its SQLSTATE rather than the client's "db error".
    pub fn reason(&self) -> String {
        match self {
            Self::Postgres(e) | Self::Runtime(RuntimeError::Postgres(e)) => {
                format!("postgres: {}", failure::describe_postgres(e))
            }
            other => other.to_string(),
        }
    }
}
