//! Simulated participants for the property tests, behaving as the engine contract
//! asks: each participant takes its commands in order (one Kafka partition per saga
//! key), applies a step at most once per effect key, answers a repeat with success,
//! and a compensation of an effect never applied is a no-op that also blocks a late
//! forward command with that key. Replies may be lost, delayed, reordered or repeated.

use super::*;
use std::collections::{HashSet, VecDeque};

/// What a participant does with the next command it takes.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Apply,
    /// Applies it, but the reply never arrives.
    ApplyReplyLost,
    Transient,
    Permanent,
}

pub struct World<D: SagaDefinition> {
    queues: Vec<(Participant, VecDeque<OutgoingCommand<D>>)>,
    /// Replies on their way back, delivered in any order.
    pub replies: Vec<SagaInput<D>>,
    done: HashSet<EffectKey>,
    undone: HashSet<EffectKey>,
    /// Every effect that changed the world, in order.
    pub applied: Vec<(D::Step, Direction)>,
    /// The saga's one timer: (timer, due).
    pub timer: Option<(AttemptRef<D::Step>, Timestamp)>,
    pub timers_seen: Vec<AttemptRef<D::Step>>,
}

impl<D: SagaDefinition> World<D> {
    pub fn new() -> Self {
        Self {
            queues: Vec::new(),
            replies: Vec::new(),
            done: HashSet::new(),
            undone: HashSet::new(),
            applied: Vec::new(),
            timer: None,
            timers_seen: Vec::new(),
        }
    }

    /// The engine runs the actions; terminal ones are the caller's business.
    pub fn run(&mut self, actions: &[SagaAction<D>]) {
        for action in actions {
            match action {
                SagaAction::SendCommand(command) => self.enqueue(command.clone()),
                SagaAction::ScheduleDeadline { timer, at } => {
                    self.timer = Some((*timer, *at));
                    self.timers_seen.push(*timer);
                }
                SagaAction::CancelDeadline => self.timer = None,
                _ => {}
            }
        }
    }

    fn enqueue(&mut self, command: OutgoingCommand<D>) {
        match self
            .queues
            .iter_mut()
            .find(|(p, _)| *p == command.participant)
        {
            Some((_, queue)) => queue.push_back(command),
            None => self
                .queues
                .push((command.participant, VecDeque::from([command]))),
        }
    }

    pub fn has_queued(&self) -> bool {
        self.queues.iter().any(|(_, q)| !q.is_empty())
    }

    /// The `pick`-th participant with work takes its oldest command.
    pub fn process(&mut self, pick: usize, outcome: Outcome) {
        let mut busy: Vec<_> = self
            .queues
            .iter_mut()
            .filter(|(_, q)| !q.is_empty())
            .collect();
        if busy.is_empty() {
            return;
        }
        let index = pick % busy.len();
        let Some(command) = busy[index].1.pop_front() else {
            return;
        };
        if let Some(reply) = self.handle(&command, outcome) {
            self.replies.push(reply);
        }
    }

    fn handle(&mut self, command: &OutgoingCommand<D>, outcome: Outcome) -> Option<SagaInput<D>> {
        let key = &command.effect_key;
        let attempt = command.attempt;
        let already = match attempt.direction {
            Direction::Do if self.undone.contains(key) => return Some(failure(command, false)),
            Direction::Do => self.done.contains(key),
            Direction::Undo => self.undone.contains(key),
        };
        if already {
            return Some(success(command));
        }
        match outcome {
            Outcome::Transient => return Some(failure(command, true)),
            Outcome::Permanent => return Some(failure(command, false)),
            Outcome::Apply | Outcome::ApplyReplyLost => {}
        }
        match attempt.direction {
            Direction::Do => {
                self.done.insert(key.clone());
                self.applied.push((attempt.step, Direction::Do));
            }
            Direction::Undo => {
                if self.done.contains(key) {
                    self.applied.push((attempt.step, Direction::Undo));
                }
                self.undone.insert(key.clone());
            }
        }
        match outcome {
            Outcome::ApplyReplyLost => None,
            _ => Some(success(command)),
        }
    }

    /// Net effect of a step in the world: 1 if done and not undone, else 0.
    pub fn net(&self, step: D::Step) -> i32 {
        self.applied
            .iter()
            .filter(|(s, _)| *s == step)
            .map(|(_, d)| if *d == Direction::Do { 1 } else { -1 })
            .sum()
    }

    pub fn applied_count(&self, step: D::Step, direction: Direction) -> i128 {
        self.applied
            .iter()
            .filter(|applied| **applied == (step, direction))
            .count() as i128
    }
}

fn success<D: SagaDefinition>(command: &OutgoingCommand<D>) -> SagaInput<D> {
    SagaInput::StepSucceeded {
        step: command.attempt.step,
        command_id: command.command_id.clone(),
        receipt: Receipt::new(format!("ref-{}", command.command_id)),
    }
}

fn failure<D: SagaDefinition>(command: &OutgoingCommand<D>, transient: bool) -> SagaInput<D> {
    SagaInput::StepFailed {
        step: command.attempt.step,
        command_id: command.command_id.clone(),
        reason: "refused".into(),
        transient,
    }
}
