//! The saga rules, as moves on a working copy: every event `decide` produces is
//! applied to the copy at once, so each rule sees the state its predecessors left.

use super::{AttemptRef, Cause, Direction, OutgoingCommand, SagaDefinition, SagaEvent};
use super::{SagaState, SagaStep, StepKind};

pub(super) struct Plan<'a, D: SagaDefinition> {
    pub def: &'a D,
    pub cause: &'a Cause,
    pub saga: SagaState<D>,
    pub events: Vec<SagaEvent<D>>,
}

impl<'a, D: SagaDefinition> Plan<'a, D> {
    pub fn new(def: &'a D, cause: &'a Cause, saga: SagaState<D>) -> Self {
        Self {
            def,
            cause,
            saga,
            events: Vec::new(),
        }
    }

    pub fn push(&mut self, event: SagaEvent<D>) {
        self.saga.apply(&event);
        self.events.push(event);
    }

    /// Sends `attempt` with a reply deadline from its policy.
    pub fn issue(&mut self, attempt: AttemptRef<D::Step>) {
        let spec = self.def.spec(attempt.step);
        let Some(command) = self
            .def
            .command(&self.saga.trigger, attempt.step, attempt.direction)
        else {
            return self.fail(format!(
                "the definition has no {} command for step {}",
                attempt.direction.as_str(),
                attempt.step.name()
            ));
        };
        let policy = spec.policy_for(attempt.direction);
        let saga_id = self.saga.id.clone();
        self.push(SagaEvent::CommandIssued(OutgoingCommand {
            command_id: attempt.command_id(&saga_id),
            effect_key: attempt.effect_key(&saga_id),
            saga_id,
            attempt,
            participant: spec.participant,
            command,
            deadline: self.cause.at.plus_millis(policy.reply_deadline_ms),
            causation_id: self.cause.message_id.clone(),
        }));
    }

    /// Runs the next forward step, or completes the saga after the last one.
    pub fn continue_forward(&mut self) {
        match self.def.steps().get(self.saga.completed.len()).copied() {
            Some(step) => self.issue(AttemptRef::first(step, Direction::Do)),
            None => self.push(SagaEvent::Completed { at: self.cause.at }),
        }
    }

    /// Runs the next compensation, or ends the saga compensated after the last one.
    pub fn continue_compensation(&mut self) {
        match self.saga.next_compensation() {
            Some(step) => self.issue(AttemptRef::first(step, Direction::Undo)),
            None => self.push(SagaEvent::Compensated { at: self.cause.at }),
        }
    }

    pub fn after_success(&mut self, direction: Direction) {
        match direction {
            Direction::Do => self.continue_forward(),
            Direction::Undo => self.continue_compensation(),
        }
    }

    /// An attempt failed (`in_doubt`: it timed out, so it may have been applied).
    /// Retries a transient failure while the policy allows, else gives up on the step.
    pub fn after_failure(
        &mut self,
        attempt: AttemptRef<D::Step>,
        reason: &str,
        transient: bool,
        in_doubt: bool,
    ) {
        let policy = self.def.spec(attempt.step).policy_for(attempt.direction);
        if transient && policy.allows_another_attempt_after(attempt.attempt) {
            let at = self
                .cause
                .at
                .plus_millis(policy.backoff_after(attempt.attempt));
            return self.push(SagaEvent::RetryScheduled {
                attempt: attempt.next(),
                at,
            });
        }
        let reason = if transient {
            format!("{reason} (after {} attempts)", attempt.attempt)
        } else {
            reason.to_owned()
        };
        match attempt.direction {
            Direction::Do => self.forward_step_failed(attempt.step, &reason, in_doubt),
            Direction::Undo => self.fail(format!(
                "compensation of {} failed: {reason}",
                attempt.step.name()
            )),
        }
    }

    fn forward_step_failed(&mut self, step: D::Step, reason: &str, in_doubt: bool) {
        let name = step.name();
        match self.def.spec(step).kind {
            StepKind::Retriable => self.fail(format!(
                "{name} failed after the point of no return, nothing undone: {reason}"
            )),
            StepKind::Pivot if in_doubt => self.fail(format!(
                "pivot step {name} has an unknown outcome, nothing undone: {reason}"
            )),
            kind => {
                let mut plan = Vec::new();
                if in_doubt && kind == StepKind::Compensable {
                    plan.push(step);
                }
                plan.extend(
                    self.saga
                        .completed
                        .iter()
                        .rev()
                        .map(|done| done.step)
                        .filter(|s| self.def.spec(*s).kind == StepKind::Compensable),
                );
                self.push(SagaEvent::CompensationStarted {
                    reason: format!("{name} failed: {reason}"),
                    plan,
                });
                self.continue_compensation();
            }
        }
    }

    pub fn fail(&mut self, reason: String) {
        self.push(SagaEvent::Failed {
            reason,
            at: self.cause.at,
        });
    }
}
