//! The actions an engine runs after storing a decision's events, and the actions
//! that resume a saga after a restart.

use super::SagaStatus;
use super::{Announcement, Cause, Pending, SagaAction, SagaDefinition, SagaEvent, SagaState};

/// The actions for `events`, which have just been applied, giving `after`.
pub(super) fn actions_for<D: SagaDefinition>(
    def: &D,
    after: &SagaState<D>,
    events: &[SagaEvent<D>],
    cause: &Cause,
) -> Vec<SagaAction<D>> {
    let mut actions = Vec::new();
    for event in events {
        match event {
            SagaEvent::Started { .. }
            | SagaEvent::AttemptTimedOut { .. }
            | SagaEvent::CompensationStarted { .. } => {}
            SagaEvent::CommandIssued(command) => {
                actions.push(SagaAction::SendCommand(command.clone()));
                actions.push(SagaAction::ScheduleDeadline {
                    timer: command.attempt,
                    at: command.deadline,
                });
            }
            SagaEvent::StepSucceeded {
                attempt, receipt, ..
            } => {
                actions.push(SagaAction::CancelDeadline);
                let milestone =
                    def.milestone(&after.trigger, attempt.step, attempt.direction, receipt);
                if let Some(milestone) = milestone {
                    actions.push(SagaAction::Publish(Announcement {
                        correlation_id: after.id.clone(),
                        causation_id: cause.message_id.clone(),
                        milestone,
                    }));
                }
            }
            SagaEvent::AttemptFailed { .. } => actions.push(SagaAction::CancelDeadline),
            SagaEvent::RetryScheduled { attempt, at } => {
                actions.push(SagaAction::ScheduleDeadline {
                    timer: *attempt,
                    at: *at,
                });
            }
            SagaEvent::Completed { .. } => actions.push(SagaAction::Complete),
            SagaEvent::Compensated { .. } => actions.push(SagaAction::Compensated {
                reason: match &after.status {
                    SagaStatus::Compensated { reason } => reason.clone(),
                    _ => String::new(),
                },
            }),
            SagaEvent::Failed { reason, .. } => actions.push(SagaAction::Fail {
                reason: reason.clone(),
            }),
        }
    }
    actions
}

/// What to (re)do for a saga loaded from the store when the engine cannot tell
/// whether its last actions ran: re-send the awaited command (same command id, so
/// the participant sees a duplicate) and re-arm its timer. Nothing for a terminal saga.
pub fn resume_actions<D: SagaDefinition>(state: &SagaState<D>) -> Vec<SagaAction<D>> {
    match &state.pending {
        Some(Pending::Reply(command)) => vec![
            SagaAction::SendCommand(command.clone()),
            SagaAction::ScheduleDeadline {
                timer: command.attempt,
                at: command.deadline,
            },
        ],
        Some(Pending::Backoff { attempt, until }) => vec![SagaAction::ScheduleDeadline {
            timer: *attempt,
            at: *until,
        }],
        None => Vec::new(),
    }
}
