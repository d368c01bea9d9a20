use gavel_runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("command api: {0}")]
    CommandApi(String),
    #[error("command api: {0}")]
    Http(#[from] gavel_http::HttpError),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("load: {0}")]
    Load(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{failed} of {sent} commands were not acknowledged by Kafka; first error: {first}")]
    Delivery {
        sent: u64,
        failed: u64,
        first: String,
    },
}
