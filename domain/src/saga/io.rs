//! What goes into a saga (`SagaInput` with its `Cause`) and what the engine must do
//! afterwards (`SagaAction`).

use super::{AttemptRef, CommandId, MessageId, OutgoingCommand, Receipt, SagaDefinition};
use super::{SagaEvent, SagaId};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum SagaInput<D: SagaDefinition> {
    /// The trigger event arrived.
    Start { trigger: D::Trigger },
    /// A participant applied the command (or had already applied it).
    StepSucceeded {
        step: D::Step,
        command_id: CommandId,
        receipt: Receipt,
    },
    /// A participant refused the command and applied nothing. `transient`: worth retrying.
    StepFailed {
        step: D::Step,
        command_id: CommandId,
        reason: String,
        transient: bool,
    },
    /// A timer the saga scheduled fired; `timer` is the one given in `ScheduleDeadline`.
    DeadlineExpired { timer: AttemptRef<D::Step> },
}

/// The inbound message behind an input: its id becomes the causation id of whatever
/// the saga sends, and `at` is the saga's only notion of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub message_id: MessageId,
    pub at: Timestamp,
}

impl Cause {
    pub fn new(message_id: impl Into<MessageId>, at: Timestamp) -> Self {
        Self {
            message_id: message_id.into(),
            at,
        }
    }
}

/// A milestone with its envelope ids, for the engine to publish.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(bound = "")]
pub struct Announcement<D: SagaDefinition> {
    pub correlation_id: SagaId,
    pub causation_id: MessageId,
    pub milestone: D::Milestone,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(bound = "")]
pub enum SagaAction<D: SagaDefinition> {
    SendCommand(OutgoingCommand<D>),
    /// Replaces the saga's one timer; when it fires, feed `DeadlineExpired { timer }`.
    ScheduleDeadline {
        timer: AttemptRef<D::Step>,
        at: Timestamp,
    },
    /// Drops the saga's timer (its reply came).
    CancelDeadline,
    Publish(Announcement<D>),
    /// Terminal: every step succeeded.
    Complete,
    /// Terminal: a step failed and everything done was undone.
    Compensated {
        reason: String,
    },
    /// Terminal and needs attention: raise the metric and write a DLQ record.
    Fail {
        reason: String,
    },
}

/// The outcome of an accepted input: events to store (in order) and actions to run
/// after they are stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<D: SagaDefinition> {
    pub events: Vec<SagaEvent<D>>,
    pub actions: Vec<SagaAction<D>>,
}
