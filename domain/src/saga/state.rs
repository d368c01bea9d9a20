//! A saga instance's state. It changes only through `evolve` (evolve.rs).

use super::{AttemptRef, CommandId, OutgoingCommand, Receipt, SagaDefinition, SagaId};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaStatus {
    /// Running its steps forward.
    Running,
    /// A step failed for good: undoing the completed steps.
    Compensating { reason: String },
    /// Terminal: every step succeeded.
    Completed,
    /// Terminal: a step failed and everything done before it was undone.
    Compensated { reason: String },
    /// Terminal, needs attention: a compensation could not be done, a pivot step's
    /// outcome is unknown, or a step after the point of no return kept failing.
    Failed { reason: String },
}

impl SagaStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Compensating { .. } => "COMPENSATING",
            Self::Completed => "COMPLETED",
            Self::Compensated { .. } => "COMPENSATED",
            Self::Failed { .. } => "FAILED",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Compensated { .. } | Self::Failed { .. }
        )
    }
}

/// What the saga waits for now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Pending<D: SagaDefinition> {
    /// The reply to this command, until its deadline.
    Reply(OutgoingCommand<D>),
    /// The backoff before sending `attempt`, until `until`.
    Backoff {
        attempt: AttemptRef<D::Step>,
        until: Timestamp,
    },
}

impl<D: SagaDefinition> Pending<D> {
    pub fn attempt(&self) -> AttemptRef<D::Step> {
        match self {
            Self::Reply(command) => command.attempt,
            Self::Backoff { attempt, .. } => *attempt,
        }
    }
}

/// How a sent command was answered. Timed-out attempts stay unanswered, so a late
/// success can still be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCommand<S> {
    pub attempt: AttemptRef<S>,
    pub command_id: CommandId,
    pub answer: Option<Answer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDone<S> {
    pub step: S,
    pub receipt: Receipt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SagaState<D: SagaDefinition> {
    pub id: SagaId,
    pub trigger: D::Trigger,
    pub started_at: Timestamp,
    pub status: SagaStatus,
    /// Forward steps that succeeded, in order.
    pub completed: Vec<StepDone<D::Step>>,
    /// Steps to compensate, in order; empty until compensation starts.
    pub compensation_plan: Vec<D::Step>,
    /// Compensations that succeeded, in order.
    pub compensated: Vec<StepDone<D::Step>>,
    pub pending: Option<Pending<D>>,
    /// Every command sent, for telling duplicate and stale replies apart.
    pub issued: Vec<IssuedCommand<D::Step>>,
    /// Events applied, gapless from 1.
    pub version: u64,
}

impl<D: SagaDefinition> SagaState<D> {
    /// The state right after `Started`.
    pub fn new(id: SagaId, trigger: D::Trigger, started_at: Timestamp) -> Self {
        Self {
            id,
            trigger,
            started_at,
            status: SagaStatus::Running,
            completed: Vec::new(),
            compensation_plan: Vec::new(),
            compensated: Vec::new(),
            pending: None,
            issued: Vec::new(),
            version: 1,
        }
    }

    /// The step, direction and attempt the saga is on (awaiting its reply or its
    /// backoff); `None` once terminal.
    pub fn current_attempt(&self) -> Option<AttemptRef<D::Step>> {
        self.pending.as_ref().map(Pending::attempt)
    }

    pub fn issued(&self, command_id: &CommandId) -> Option<&IssuedCommand<D::Step>> {
        self.issued.iter().find(|c| &c.command_id == command_id)
    }

    pub fn is_done(&self, attempt: &AttemptRef<D::Step>) -> bool {
        let done = match attempt.direction {
            super::Direction::Do => &self.completed,
            super::Direction::Undo => &self.compensated,
        };
        done.iter().any(|d| d.step == attempt.step)
    }

    /// The next compensation to run, once compensation started.
    pub fn next_compensation(&self) -> Option<D::Step> {
        self.compensation_plan.get(self.compensated.len()).copied()
    }
}
