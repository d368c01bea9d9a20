//! The property-test driver: one saga, simulated participants, and the checks that
//! must hold after every input and at the end.

use super::world::{Outcome, World};
use super::*;
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub enum Op {
    Process(usize, Outcome),
    Deliver(usize),
    Redeliver(usize),
    FireTimer,
    OldTimer(usize),
    Forged,
}

pub struct Sim<D: SagaDefinition> {
    pub run: Run<D>,
    pub world: World<D>,
    accepted_replies: Vec<SagaInput<D>>,
    sent_ids: HashSet<CommandId>,
    terminal_actions: usize,
}

impl<D: SagaDefinition> Sim<D> {
    pub fn start(def: D, trigger: D::Trigger) -> Self {
        let mut sim = Self {
            run: Run::new(def),
            world: World::new(),
            accepted_replies: Vec::new(),
            sent_ids: HashSet::new(),
            terminal_actions: 0,
        };
        sim.feed(SagaInput::Start { trigger });
        sim
    }

    pub fn terminal(&self) -> bool {
        self.run.saga().status.is_terminal()
    }

    /// Feeds one input; checks the per-input invariants. Returns whether it was taken.
    pub fn feed(&mut self, input: SagaInput<D>) -> bool {
        let was_terminal = self
            .run
            .state
            .as_ref()
            .is_some_and(|s| s.status.is_terminal());
        let Ok(actions) = self.run.when(input.clone()) else {
            return false;
        };
        assert!(!was_terminal, "a terminal saga took {input:?}");
        for command in sent_commands(&actions) {
            assert!(
                self.sent_ids.insert(command.command_id.clone()),
                "sent twice: {}",
                command.command_id
            );
        }
        self.terminal_actions += actions.iter().filter(|a| is_terminal_action(*a)).count();
        assert_eq!(self.terminal(), self.terminal_actions == 1);
        self.world.run(&actions);
        let armed = self.world.timer.map(|(timer, _)| timer);
        assert_eq!(armed, self.run.saga().current_attempt());
        if !matches!(input, SagaInput::DeadlineExpired { .. }) {
            assert!(
                self.run.when(input.clone()).is_err(),
                "a repeat was taken: {input:?}"
            );
            self.accepted_replies.push(input);
        }
        true
    }

    pub fn apply(&mut self, op: Op) {
        self.run.now = self.run.now.plus_millis(1);
        match op {
            Op::Process(pick, outcome) => self.world.process(pick, outcome),
            Op::Deliver(pick) if !self.world.replies.is_empty() => {
                let reply = self.world.replies.remove(pick % self.world.replies.len());
                self.feed(reply);
            }
            Op::Redeliver(pick) if !self.accepted_replies.is_empty() => {
                let reply = self.accepted_replies[pick % self.accepted_replies.len()].clone();
                assert!(self.run.when(reply).is_err());
            }
            Op::FireTimer => self.fire_timer(),
            Op::OldTimer(pick) if !self.world.timers_seen.is_empty() => {
                let timer = self.world.timers_seen[pick % self.world.timers_seen.len()];
                let current = self
                    .world
                    .timer
                    .is_some_and(|(t, due)| t == timer && self.run.now >= due);
                if current {
                    self.world.timer = None;
                }
                let taken = self.feed(SagaInput::DeadlineExpired { timer });
                assert_eq!(taken, current, "timer {timer:?}");
            }
            Op::Forged => {
                let step = self.run.def.steps()[0];
                let forged = SagaInput::StepSucceeded {
                    step,
                    command_id: CommandId::new("forged/1"),
                    receipt: Receipt::default(),
                };
                assert_eq!(self.run.when(forged).unwrap_err().code(), "UNKNOWN");
            }
            _ => {}
        }
    }

    pub fn fire_timer(&mut self) {
        if let Some((timer, due)) = self.world.timer.take() {
            self.run.now = self.run.now.max(due);
            assert!(
                self.feed(SagaInput::DeadlineExpired { timer }),
                "the current timer was refused"
            );
        }
    }

    /// Participants now apply everything and every reply arrives.
    pub fn drain(&mut self) {
        for _ in 0..10_000 {
            if !self.world.replies.is_empty() {
                self.apply(Op::Deliver(0));
            } else if self.world.has_queued() {
                self.apply(Op::Process(0, Outcome::Apply));
            } else if self.world.timer.is_some() {
                self.fire_timer();
            } else {
                break;
            }
        }
        assert!(
            self.terminal(),
            "not terminal: {:?}",
            self.run.saga().status
        );
        assert_eq!(self.terminal_actions, 1);
    }

    /// Compensations ran once each, newest first (the step in doubt before them).
    pub fn check_structure(&self, kind_of: impl Fn(D::Step) -> StepKind) {
        let saga = self.run.saga();
        assert_eq!(replay(&self.run.events).as_ref(), Some(saga));
        let json = serde_json::to_string(saga).unwrap();
        assert_eq!(&serde_json::from_str::<SagaState<D>>(&json).unwrap(), saga);
        let plan = &saga.compensation_plan;
        let compensated: Vec<_> = saga.compensated.iter().map(|d| d.step).collect();
        assert_eq!(&compensated[..], &plan[..compensated.len()]);
        let mut reversed: Vec<_> = saga.completed.iter().map(|d| d.step).rev().collect();
        reversed.retain(|s| kind_of(*s) == StepKind::Compensable);
        let in_doubt = plan.len().saturating_sub(reversed.len());
        assert!(in_doubt <= 1);
        assert_eq!(&plan[in_doubt..], &reversed[..plan.len() - in_doubt]);
        if !plan.is_empty() {
            assert_eq!(plan[in_doubt..].len(), reversed.len());
        }
    }

    /// After COMPLETED every step holds in the world; after COMPENSATED none does.
    pub fn check_world(&self, steps: &[D::Step], final_steps: &[D::Step]) {
        for step in steps {
            let net = self.world.net(*step);
            match self.run.status() {
                SagaStatus::Completed => assert_eq!(net, 1, "{step:?}"),
                SagaStatus::Compensated { .. } if !final_steps.contains(step) => {
                    assert_eq!(net, 0, "{step:?}")
                }
                _ => assert!((0..=1).contains(&net)),
            }
        }
    }
}
