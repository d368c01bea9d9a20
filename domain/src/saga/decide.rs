//! `decide`: given a saga's state, one input and its cause, either the events and
//! actions it leads to, or why it changes nothing.

use super::actions::actions_for;
use super::plan::Plan;
use super::{AttemptRef, Cause, CommandId, Decision, Pending, Receipt, SagaDefinition};
use super::{SagaEvent, SagaInput, SagaRejection, SagaState, SagaStep};

pub fn decide<D: SagaDefinition>(
    def: &D,
    state: Option<&SagaState<D>>,
    input: &SagaInput<D>,
    cause: &Cause,
) -> Result<Decision<D>, SagaRejection> {
    let plan = match (state, input) {
        (Some(saga), SagaInput::Start { .. }) => {
            return Err(SagaRejection::Duplicate(format!(
                "saga {} already started",
                saga.id
            )))
        }
        (None, SagaInput::Start { trigger }) => start(def, trigger, cause)?,
        (None, _) => return Err(SagaRejection::UnknownSaga),
        (Some(saga), input) => {
            let mut plan = Plan::new(def, cause, saga.clone());
            match input {
                SagaInput::Start { .. } => {}
                SagaInput::StepSucceeded {
                    step,
                    command_id,
                    receipt,
                } => succeeded(&mut plan, *step, command_id, receipt)?,
                SagaInput::StepFailed {
                    step,
                    command_id,
                    reason,
                    transient,
                } => failed(&mut plan, *step, command_id, reason, *transient)?,
                SagaInput::DeadlineExpired { timer } => expired(&mut plan, *timer)?,
            }
            plan
        }
    };
    let actions = actions_for(def, &plan.saga, &plan.events, cause);
    Ok(Decision {
        events: plan.events,
        actions,
    })
}

fn start<'a, D: SagaDefinition>(
    def: &'a D,
    trigger: &D::Trigger,
    cause: &'a Cause,
) -> Result<Plan<'a, D>, SagaRejection> {
    def.validate(trigger)
        .map_err(SagaRejection::InvalidTrigger)?;
    let saga_id = def.saga_id(trigger);
    let saga = SagaState::new(saga_id.clone(), trigger.clone(), cause.at);
    let mut plan = Plan::new(def, cause, saga);
    plan.events.push(SagaEvent::Started {
        saga_id,
        trigger: trigger.clone(),
        started_at: cause.at,
        causation_id: cause.message_id.clone(),
    });
    plan.continue_forward();
    Ok(plan)
}

/// Which sent attempt a reply answers, or why the reply changes nothing.
fn answered_attempt<D: SagaDefinition>(
    saga: &SagaState<D>,
    step: D::Step,
    command_id: &CommandId,
) -> Result<AttemptRef<D::Step>, SagaRejection> {
    let issued = saga.issued(command_id).ok_or_else(|| {
        SagaRejection::Unknown(format!("command {command_id} was not sent by this saga"))
    })?;
    let attempt = issued.attempt;
    if attempt.step != step {
        return Err(SagaRejection::Unknown(format!(
            "command {command_id} was sent for {}, the reply names {}",
            attempt.step.name(),
            step.name()
        )));
    }
    if issued.answer.is_some() {
        return Err(SagaRejection::Duplicate(format!(
            "command {command_id} was already answered"
        )));
    }
    if saga.is_done(&attempt) {
        return Err(SagaRejection::Duplicate(format!(
            "{} ({}) already succeeded",
            step.name(),
            attempt.direction.as_str()
        )));
    }
    match &saga.pending {
        Some(pending) if pending.attempt().same_step(&attempt) => Ok(attempt),
        _ => Err(SagaRejection::Stale(format!(
            "{} ({}) is not awaited",
            step.name(),
            attempt.direction.as_str()
        ))),
    }
}

/// A success is taken from any attempt of the awaited step: a late reply to an
/// attempt that timed out still proves the effect happened.
fn succeeded<D: SagaDefinition>(
    plan: &mut Plan<'_, D>,
    step: D::Step,
    command_id: &CommandId,
    receipt: &Receipt,
) -> Result<(), SagaRejection> {
    let attempt = answered_attempt(&plan.saga, step, command_id)?;
    plan.push(SagaEvent::StepSucceeded {
        attempt,
        command_id: command_id.clone(),
        receipt: receipt.clone(),
    });
    plan.after_success(attempt.direction);
    Ok(())
}

/// A failure counts only from the attempt awaited now; an older attempt's failure
/// was already accounted for by its timeout.
fn failed<D: SagaDefinition>(
    plan: &mut Plan<'_, D>,
    step: D::Step,
    command_id: &CommandId,
    reason: &str,
    transient: bool,
) -> Result<(), SagaRejection> {
    let attempt = answered_attempt(&plan.saga, step, command_id)?;
    match &plan.saga.pending {
        Some(Pending::Reply(awaited)) if &awaited.command_id == command_id => {}
        _ => {
            return Err(SagaRejection::Stale(format!(
                "attempt {} of {} was superseded",
                attempt.attempt,
                step.name()
            )))
        }
    }
    plan.push(SagaEvent::AttemptFailed {
        attempt,
        command_id: command_id.clone(),
        reason: reason.to_owned(),
        transient,
    });
    plan.after_failure(attempt, reason, transient, false);
    Ok(())
}

/// A reply deadline passed (retry or give up; the attempt is in doubt), or a backoff
/// ended (send the next attempt).
fn expired<D: SagaDefinition>(
    plan: &mut Plan<'_, D>,
    timer: AttemptRef<D::Step>,
) -> Result<(), SagaRejection> {
    let stale = |why: &str| SagaRejection::Stale(format!("timer {}: {why}", timer.step.name()));
    let pending = plan
        .saga
        .pending
        .clone()
        .ok_or_else(|| stale("nothing is awaited"))?;
    if pending.attempt() != timer {
        return Err(stale("not the current timer"));
    }
    match pending {
        Pending::Reply(command) => {
            if plan.cause.at < command.deadline {
                return Err(stale("fired before its deadline"));
            }
            plan.push(SagaEvent::AttemptTimedOut {
                attempt: timer,
                command_id: command.command_id,
            });
            plan.after_failure(timer, "no reply by the deadline", true, true);
        }
        Pending::Backoff { until, .. } => {
            if plan.cause.at < until {
                return Err(stale("fired before its backoff ended"));
            }
            plan.issue(timer);
        }
    }
    Ok(())
}
