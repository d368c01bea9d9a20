//! What happened to a saga instance: the facts `evolve` folds into its state and a
//! changelog-backed store keeps. Each command the saga sends is recorded whole, so a
//! restarted engine can re-send exactly the same message.

use super::{CommandId, Direction, EffectKey, MessageId, Participant, SagaDefinition, SagaId};
use super::{Receipt, SagaStep};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// One attempt of one step in one direction: the identity of a command and of its timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRef<S> {
    pub step: S,
    pub direction: Direction,
    /// 1-based.
    pub attempt: u32,
}

impl<S: SagaStep> AttemptRef<S> {
    pub fn first(step: S, direction: Direction) -> Self {
        Self {
            step,
            direction,
            attempt: 1,
        }
    }

    pub fn next(self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            ..self
        }
    }

    pub fn same_step(&self, other: &Self) -> bool {
        self.step == other.step && self.direction == other.direction
    }

    /// `{saga}/{step}/{do|undo}/{attempt}`: deterministic, so re-sending an attempt
    /// reuses its id and the participant sees a duplicate, not a new request.
    pub fn command_id(&self, saga: &SagaId) -> CommandId {
        CommandId::new(format!(
            "{saga}/{}/{}/{}",
            self.step.name(),
            self.direction.as_str(),
            self.attempt
        ))
    }

    /// `{saga}/{step}`: shared by every attempt of the step and of its compensation.
    pub fn effect_key(&self, saga: &SagaId) -> EffectKey {
        EffectKey::new(format!("{saga}/{}", self.step.name()))
    }
}

/// A command for a participant, with everything needed to send (or re-send) it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct OutgoingCommand<D: SagaDefinition> {
    /// Also the correlation id of the command.
    pub saga_id: SagaId,
    pub attempt: AttemptRef<D::Step>,
    pub command_id: CommandId,
    /// Participants apply a step at most once per effect key, and its compensation at
    /// most once per effect key; a compensation of an effect never applied is a no-op
    /// that still blocks a late-arriving forward command with the same key.
    pub effect_key: EffectKey,
    pub participant: Participant,
    pub command: D::Command,
    /// The reply is due by then; after it the attempt counts as timed out.
    pub deadline: Timestamp,
    /// The message (trigger, reply or timer) that made the saga send this.
    pub causation_id: MessageId,
}

impl<D: SagaDefinition> OutgoingCommand<D> {
    pub fn correlation_id(&self) -> &SagaId {
        &self.saga_id
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum SagaEvent<D: SagaDefinition> {
    Started {
        saga_id: SagaId,
        trigger: D::Trigger,
        started_at: Timestamp,
        causation_id: MessageId,
    },
    CommandIssued(OutgoingCommand<D>),
    StepSucceeded {
        attempt: AttemptRef<D::Step>,
        command_id: CommandId,
        receipt: Receipt,
    },
    /// The participant answered that the attempt failed (and applied nothing).
    AttemptFailed {
        attempt: AttemptRef<D::Step>,
        command_id: CommandId,
        reason: String,
        transient: bool,
    },
    /// No reply by the deadline: whether the participant applied it is unknown.
    AttemptTimedOut {
        attempt: AttemptRef<D::Step>,
        command_id: CommandId,
    },
    /// `attempt` will be sent at `at`, when its backoff timer fires.
    RetryScheduled {
        attempt: AttemptRef<D::Step>,
        at: Timestamp,
    },
    /// Compensations will run in `plan` order (the step in doubt first, then the
    /// completed compensable steps newest first).
    CompensationStarted {
        reason: String,
        plan: Vec<D::Step>,
    },
    Completed {
        at: Timestamp,
    },
    Compensated {
        at: Timestamp,
    },
    Failed {
        reason: String,
        at: Timestamp,
    },
}

impl<D: SagaDefinition> SagaEvent<D> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "SagaStarted",
            Self::CommandIssued(_) => "SagaCommandIssued",
            Self::StepSucceeded { .. } => "SagaStepSucceeded",
            Self::AttemptFailed { .. } => "SagaAttemptFailed",
            Self::AttemptTimedOut { .. } => "SagaAttemptTimedOut",
            Self::RetryScheduled { .. } => "SagaRetryScheduled",
            Self::CompensationStarted { .. } => "SagaCompensationStarted",
            Self::Completed { .. } => "SagaCompleted",
            Self::Compensated { .. } => "SagaCompensated",
            Self::Failed { .. } => "SagaFailed",
        }
    }
}
