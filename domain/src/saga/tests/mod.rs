//! Saga tests: given/when/then per rule (engine, payment, order), then property tests
//! against simulated participants. `Run` plays the engine: it feeds inputs with a
//! cause, stores accepted events, and keeps the clock.

mod engine;
mod order;
mod payment;
mod props;
mod rejections;
mod sim;
mod split;
mod world;

use super::*;
use crate::Timestamp;

pub const T0: i64 = 1_700_000_000_000;

pub struct Run<D: SagaDefinition> {
    pub def: D,
    pub state: Option<SagaState<D>>,
    pub events: Vec<SagaEvent<D>>,
    pub now: Timestamp,
    messages: u64,
}

impl<D: SagaDefinition> Run<D> {
    pub fn new(def: D) -> Self {
        Self {
            def,
            state: None,
            events: Vec::new(),
            now: Timestamp::from_millis(T0),
            messages: 0,
        }
    }

    /// Given a started saga.
    pub fn started(def: D, trigger: D::Trigger) -> Self {
        let mut run = Self::new(def);
        run.when(SagaInput::Start { trigger })
            .expect("the trigger starts the saga");
        run
    }

    /// The id the next inbound message gets: `m1`, `m2`, ...
    pub fn next_message_id(&self) -> MessageId {
        MessageId::new(format!("m{}", self.messages + 1))
    }

    /// When `input` arrives now: decide, and store the events if accepted.
    pub fn when(&mut self, input: SagaInput<D>) -> Result<Vec<SagaAction<D>>, SagaRejection> {
        let cause = Cause::new(self.next_message_id(), self.now);
        self.messages += 1;
        let decision = decide(&self.def, self.state.as_ref(), &input, &cause)?;
        for event in &decision.events {
            self.state = evolve(self.state.take(), event);
        }
        self.events.extend(decision.events);
        Ok(decision.actions)
    }

    pub fn saga(&self) -> &SagaState<D> {
        self.state.as_ref().expect("the saga exists")
    }

    pub fn status(&self) -> &SagaStatus {
        &self.saga().status
    }

    /// The command whose reply the saga awaits.
    pub fn awaited(&self) -> OutgoingCommand<D> {
        match &self.saga().pending {
            Some(Pending::Reply(command)) => command.clone(),
            other => panic!("no reply awaited: {other:?}"),
        }
    }

    pub fn reply_ok(
        &mut self,
        command: &OutgoingCommand<D>,
    ) -> Result<Vec<SagaAction<D>>, SagaRejection> {
        let receipt = Receipt::new(format!("ref-{}", command.command_id));
        self.when(SagaInput::StepSucceeded {
            step: command.attempt.step,
            command_id: command.command_id.clone(),
            receipt,
        })
    }

    pub fn reply_failed(
        &mut self,
        command: &OutgoingCommand<D>,
        transient: bool,
    ) -> Result<Vec<SagaAction<D>>, SagaRejection> {
        self.when(SagaInput::StepFailed {
            step: command.attempt.step,
            command_id: command.command_id.clone(),
            reason: if transient { "busy" } else { "declined" }.into(),
            transient,
        })
    }

    /// The awaited command succeeds.
    pub fn succeed(&mut self) -> Vec<SagaAction<D>> {
        let command = self.awaited();
        self.reply_ok(&command).expect("the awaited reply is taken")
    }

    /// The awaited command fails.
    pub fn fail(&mut self, transient: bool) -> Vec<SagaAction<D>> {
        let command = self.awaited();
        self.reply_failed(&command, transient)
            .expect("the awaited reply is taken")
    }

    /// The saga's timer fires when due (reply deadline or end of backoff).
    pub fn fire_timer(&mut self) -> Vec<SagaAction<D>> {
        let (timer, due) = match &self.saga().pending {
            Some(Pending::Reply(command)) => (command.attempt, command.deadline),
            Some(Pending::Backoff { attempt, until }) => (*attempt, *until),
            None => panic!("no timer armed"),
        };
        self.now = self.now.max(due);
        self.when(SagaInput::DeadlineExpired { timer })
            .expect("a due timer is taken")
    }

    /// Every command sent so far, as (step, direction, attempt).
    pub fn sent(&self) -> Vec<(D::Step, Direction, u32)> {
        sent(&self.events)
    }

    /// The steps whose compensations were sent, in order (first attempts only).
    pub fn compensations_sent(&self) -> Vec<D::Step> {
        self.sent()
            .into_iter()
            .filter(|(_, direction, attempt)| *direction == Direction::Undo && *attempt == 1)
            .map(|(step, _, _)| step)
            .collect()
    }
}

pub fn sent<D: SagaDefinition>(events: &[SagaEvent<D>]) -> Vec<(D::Step, Direction, u32)> {
    events
        .iter()
        .filter_map(|event| match event {
            SagaEvent::CommandIssued(c) => {
                Some((c.attempt.step, c.attempt.direction, c.attempt.attempt))
            }
            _ => None,
        })
        .collect()
}

pub fn sent_commands<D: SagaDefinition>(actions: &[SagaAction<D>]) -> Vec<OutgoingCommand<D>> {
    actions
        .iter()
        .filter_map(|action| match action {
            SagaAction::SendCommand(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub fn is_terminal_action<D: SagaDefinition>(action: &SagaAction<D>) -> bool {
    matches!(
        action,
        SagaAction::Complete | SagaAction::Compensated { .. } | SagaAction::Fail { .. }
    )
}

/// `Compensable* Pivot? Retriable*`, and an undo command exactly for compensable steps.
pub fn assert_well_formed<D: SagaDefinition>(def: &D, trigger: &D::Trigger) {
    let kinds: Vec<StepKind> = def.steps().iter().map(|s| def.spec(*s).kind).collect();
    let rank = |kind: &StepKind| match kind {
        StepKind::Compensable => 0,
        StepKind::Pivot => 1,
        StepKind::Retriable => 2,
    };
    assert!(
        kinds.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
        "{kinds:?}"
    );
    assert!(kinds.iter().filter(|k| **k == StepKind::Pivot).count() <= 1);
    for step in def.steps() {
        let compensable = def.spec(*step).kind == StepKind::Compensable;
        assert!(def.command(trigger, *step, Direction::Do).is_some());
        assert_eq!(
            def.command(trigger, *step, Direction::Undo).is_some(),
            compensable
        );
    }
}
