//! The JSON records between saga orchestrators and participants. A participant
//! needs nothing of the saga that sent a command: it applies `command` once per
//! (`effect_key`, `direction`) and answers on `reply_to`, keyed by the saga id so
//! the reply lands on the orchestrator partition that owns the saga.

use serde::{Deserialize, Serialize};

/// One attempt of a step (or of its compensation) for one participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepCommand {
    pub saga_kind: String,
    /// Also the correlation id and the Kafka key.
    pub saga_id: String,
    pub step: String,
    /// `do` or `undo`.
    pub direction: String,
    pub attempt: u32,
    /// Unique per attempt; echoed in the reply.
    pub command_id: String,
    /// Shared by every attempt of a step and its compensation.
    pub effect_key: String,
    pub causation_id: String,
    /// The topic and partition the reply goes to (the orchestrator replica
    /// owning the saga holds that partition).
    pub reply_to: String,
    pub reply_partition: i32,
    /// When the orchestrator stops waiting for this attempt (Unix ms).
    pub deadline_ms: i64,
    /// The saga definition's command, as its serde JSON.
    pub command: serde_json::Value,
}

impl StepCommand {
    pub fn is_undo(&self) -> bool {
        self.direction == "undo"
    }
}

/// A participant's answer to one `StepCommand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReply {
    pub saga_kind: String,
    pub saga_id: String,
    pub step: String,
    pub command_id: String,
    pub participant: String,
    pub outcome: ReplyOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReplyOutcome {
    /// Applied now or before (a repeat is answered the same way).
    Succeeded { reference: String },
    /// Nothing applied. `transient`: the orchestrator may retry.
    Failed { reason: String, transient: bool },
}

/// Header naming the record type on saga topics (`StepCommand`, `StepReply`,
/// a milestone's type), so consumers can filter without decoding.
pub const TYPE_HEADER: &str = "event_type";
pub const CORRELATION_HEADER: &str = "correlation_id";
pub const CAUSATION_HEADER: &str = "causation_id";
