//! `evolve`, the only way a saga's state changes. It needs no definition: every
//! event carries what it changes.

use super::{Answer, CommandId, Direction, IssuedCommand, Pending, SagaDefinition, SagaEvent};
use super::{SagaState, SagaStatus, StepDone};

impl<D: SagaDefinition> SagaState<D> {
    /// `evolve` for a saga that exists.
    pub fn apply(&mut self, event: &SagaEvent<D>) {
        apply(self, event);
        self.version += 1;
    }
}

/// Applies one event. `None` is the state before the saga started. An event that
/// does not fit (a bug upstream) changes only the version, so replays stay total.
pub fn evolve<D: SagaDefinition>(
    state: Option<SagaState<D>>,
    event: &SagaEvent<D>,
) -> Option<SagaState<D>> {
    match (state, event) {
        (
            None,
            SagaEvent::Started {
                saga_id,
                trigger,
                started_at,
                ..
            },
        ) => Some(SagaState::new(
            saga_id.clone(),
            trigger.clone(),
            *started_at,
        )),
        (None, _) => None,
        (Some(mut saga), event) => {
            saga.apply(event);
            Some(saga)
        }
    }
}

fn apply<D: SagaDefinition>(saga: &mut SagaState<D>, event: &SagaEvent<D>) {
    match event {
        SagaEvent::Started { .. } => {}
        SagaEvent::CommandIssued(command) => {
            saga.issued.push(IssuedCommand {
                attempt: command.attempt,
                command_id: command.command_id.clone(),
                answer: None,
            });
            saga.pending = Some(Pending::Reply(command.clone()));
        }
        SagaEvent::StepSucceeded {
            attempt,
            command_id,
            receipt,
        } => {
            record_answer(saga, command_id, Answer::Succeeded);
            let done = StepDone {
                step: attempt.step,
                receipt: receipt.clone(),
            };
            match attempt.direction {
                Direction::Do => saga.completed.push(done),
                Direction::Undo => saga.compensated.push(done),
            }
            saga.pending = None;
        }
        SagaEvent::AttemptFailed { command_id, .. } => {
            record_answer(saga, command_id, Answer::Failed);
            saga.pending = None;
        }
        SagaEvent::AttemptTimedOut { .. } => saga.pending = None,
        SagaEvent::RetryScheduled { attempt, at } => {
            saga.pending = Some(Pending::Backoff {
                attempt: *attempt,
                until: *at,
            });
        }
        SagaEvent::CompensationStarted { reason, plan } => {
            saga.status = SagaStatus::Compensating {
                reason: reason.clone(),
            };
            saga.compensation_plan = plan.clone();
        }
        SagaEvent::Completed { .. } => finish(saga, SagaStatus::Completed),
        SagaEvent::Compensated { .. } => {
            let reason = match &saga.status {
                SagaStatus::Compensating { reason } => reason.clone(),
                _ => String::new(),
            };
            finish(saga, SagaStatus::Compensated { reason });
        }
        SagaEvent::Failed { reason, .. } => finish(
            saga,
            SagaStatus::Failed {
                reason: reason.clone(),
            },
        ),
    }
}

fn record_answer<D: SagaDefinition>(saga: &mut SagaState<D>, id: &CommandId, answer: Answer) {
    if let Some(issued) = saga.issued.iter_mut().find(|c| &c.command_id == id) {
        issued.answer = Some(answer);
    }
}

fn finish<D: SagaDefinition>(saga: &mut SagaState<D>, status: SagaStatus) {
    saga.status = status;
    saga.pending = None;
}

/// Rebuilds a saga instance from its events.
pub fn replay<'a, D: SagaDefinition + 'a>(
    events: impl IntoIterator<Item = &'a SagaEvent<D>>,
) -> Option<SagaState<D>> {
    events.into_iter().fold(None, evolve)
}
