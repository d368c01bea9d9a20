//! Why an input changed nothing. The engine counts these by `code()`; none is a fault.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SagaRejection {
    /// A reply or timer for a saga that was never started.
    #[error("no saga instance for this input")]
    UnknownSaga,
    /// The trigger cannot start a saga (for example an auction without a winner).
    #[error("invalid trigger: {0}")]
    InvalidTrigger(String),
    /// Already applied: a second trigger, a reply to an answered command, or a reply
    /// for a step that already succeeded through another attempt.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// Out of order: a reply or timer for something the saga no longer waits for.
    #[error("stale: {0}")]
    Stale(String),
    /// A reply naming a command this saga never sent, or the wrong step for it.
    #[error("unknown: {0}")]
    Unknown(String),
}

impl SagaRejection {
    /// A stable machine-readable code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownSaga => "UNKNOWN_SAGA",
            Self::InvalidTrigger(_) => "INVALID_TRIGGER",
            Self::Duplicate(_) => "DUPLICATE",
            Self::Stale(_) => "STALE",
            Self::Unknown(_) => "UNKNOWN",
        }
    }
}
