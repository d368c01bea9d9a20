use gavel_runtime::RuntimeError;
use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("state changelog record for {key} is unreadable: {reason}")]
    Changelog { key: String, reason: String },
    #[error("view record could not be encoded: {0}")]
    Encode(String),
    #[error("transaction failed: {0}")]
    Transaction(String),
    #[error("topics: {0}")]
    Topology(String),
    #[error("worker thread: {0}")]
    Join(String),
    /// Partitions were revoked while a transaction was open: it must abort,
    /// since their new owner may already have read the committed offsets.
    #[error("partitions revoked during the open transaction")]
    RevokedMidTransaction,
}

impl ProcessorError {
    /// Errors after which a fresh consumer/producer pair may succeed.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            Self::Kafka(_)
                | Self::Transaction(_)
                | Self::RevokedMidTransaction
                | Self::Runtime(RuntimeError::Kafka(_))
        )
    }

    /// The schema registry could not answer: retrying later may succeed.
    pub fn is_registry(&self) -> bool {
        matches!(
            self,
            Self::Runtime(RuntimeError::Registry(_) | RuntimeError::RegistryUnavailable(_))
        )
    }
}
