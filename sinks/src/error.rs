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
