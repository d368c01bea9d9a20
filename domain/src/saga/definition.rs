//! What a saga definition tells the engine: its steps in order, what each step sends
//! to which participant (and how to undo it), and how patiently to retry.

use super::SagaId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// A step of one saga definition (a small `Copy` enum).
pub trait SagaStep: Copy + Debug + PartialEq + Eq + Serialize + DeserializeOwned {
    /// Stable name used in command ids, effect keys, metrics and logs.
    fn name(self) -> &'static str;
}

/// A saga definition. The engine drives any definition through
/// [`decide`](super::decide) and [`evolve`](super::evolve); the definition itself
/// only maps data to commands. It is a value, so retry policies can come from config.
/// (`Clone + Debug + PartialEq` only so the generic saga types can derive them.)
pub trait SagaDefinition: Clone + Debug + PartialEq {
    /// The data the saga starts from (the trigger event's payload).
    type Trigger: Clone + Debug + PartialEq + Serialize + DeserializeOwned;
    type Step: SagaStep;
    /// Everything the saga can ask of its participants, forward and compensating.
    type Command: Clone + Debug + PartialEq + Serialize + DeserializeOwned;
    /// Facts the saga announces when a step succeeds (for example `order.paid`).
    type Milestone: Clone + Debug + PartialEq + Serialize;

    /// Stable name of the definition, for topics, metrics and the state store.
    fn kind(&self) -> &'static str;
    fn saga_id(&self, trigger: &Self::Trigger) -> SagaId;
    /// Why a trigger cannot start a saga, if it cannot.
    fn validate(&self, trigger: &Self::Trigger) -> Result<(), String>;
    /// The forward steps, run one after the other in this order.
    fn steps(&self) -> &[Self::Step];
    fn spec(&self, step: Self::Step) -> StepSpec;
    /// The command for a step (`Do`) or its compensation (`Undo`); `None` when the
    /// step has no compensation. Must be `Some` for every `Undo` of a `Compensable` step.
    fn command(
        &self,
        trigger: &Self::Trigger,
        step: Self::Step,
        direction: Direction,
    ) -> Option<Self::Command>;
    /// What to announce when a step or compensation succeeded, if anything.
    fn milestone(
        &self,
        trigger: &Self::Trigger,
        step: Self::Step,
        direction: Direction,
        receipt: &Receipt,
    ) -> Option<Self::Milestone>;
}

/// Whether a command performs a step or compensates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    Do,
    Undo,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Do => "do",
            Self::Undo => "undo",
        }
    }
}

/// The three kinds of saga transaction. A well-formed definition is
/// `Compensable* Pivot? Retriable*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    /// Has a compensation. If it fails, the completed steps before it are compensated;
    /// if its outcome is unknown (last attempt timed out), it is compensated too.
    Compensable,
    /// Has no compensation; once it succeeds the saga can no longer be undone. If it
    /// fails, the steps before it are compensated; if its outcome is unknown the saga
    /// fails and needs attention (compensating could undo a sale that happened).
    Pivot,
    /// Has no compensation and comes after the point of no return: retried, and if it
    /// still fails the saga fails and needs attention, but nothing is undone.
    Retriable,
}

/// A participant service; the engine maps each one to its command topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Participant {
    Payment,
    Payout,
    Auction,
    Ownership,
    Notifications,
    Inventory,
    Shipping,
}

impl Participant {
    pub const ALL: [Self; 7] = [
        Self::Payment,
        Self::Payout,
        Self::Auction,
        Self::Ownership,
        Self::Notifications,
        Self::Inventory,
        Self::Shipping,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::Payout => "payout",
            Self::Auction => "auction",
            Self::Ownership => "ownership",
            Self::Notifications => "notifications",
            Self::Inventory => "inventory",
            Self::Shipping => "shipping",
        }
    }
}

/// Bounded retries with exponential backoff, and how long to wait for a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 0 is treated as 1.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub base_backoff_ms: i64,
    pub max_backoff_ms: i64,
    /// How long after sending an attempt its reply may take before it counts as timed out.
    pub reply_deadline_ms: i64,
}

impl RetryPolicy {
    /// 4 attempts, backoff 200 ms, 400 ms, 800 ms (capped at 10 s), 5 s per reply.
    pub const STANDARD: Self = Self {
        max_attempts: 4,
        base_backoff_ms: 200,
        max_backoff_ms: 10_000,
        reply_deadline_ms: 5_000,
    };

    /// Compensations must get through: more attempts, same pacing.
    pub const PERSISTENT: Self = Self {
        max_attempts: 8,
        ..Self::STANDARD
    };

    pub fn allows_another_attempt_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }

    /// The wait after attempt `failed_attempt` (1-based) failed, before the next one:
    /// `base * 2^(failed_attempt - 1)`, capped at `max_backoff_ms`.
    pub fn backoff_after(&self, failed_attempt: u32) -> i64 {
        let doublings = failed_attempt.saturating_sub(1).min(62);
        let base = self.base_backoff_ms.max(0);
        base.checked_mul(1_i64 << doublings)
            .map_or(self.max_backoff_ms, |delay| delay.min(self.max_backoff_ms))
            .max(0)
    }
}

/// Retry policies of one definition: a default for steps, one for compensations, and
/// per-step overrides (forward direction only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPolicies<S> {
    pub step: RetryPolicy,
    pub compensation: RetryPolicy,
    pub overrides: Vec<(S, RetryPolicy)>,
}

impl<S: PartialEq> StepPolicies<S> {
    pub fn new(step: RetryPolicy, compensation: RetryPolicy) -> Self {
        Self {
            step,
            compensation,
            overrides: Vec::new(),
        }
    }

    pub fn with_override(mut self, step: S, policy: RetryPolicy) -> Self {
        self.overrides.push((step, policy));
        self
    }

    pub fn forward(&self, step: &S) -> RetryPolicy {
        self.overrides
            .iter()
            .find(|(s, _)| s == step)
            .map_or(self.step, |(_, policy)| *policy)
    }
}

impl<S: PartialEq> Default for StepPolicies<S> {
    fn default() -> Self {
        Self::new(RetryPolicy::STANDARD, RetryPolicy::PERSISTENT)
    }
}

/// How the engine treats one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpec {
    pub kind: StepKind,
    /// Receives both the step's command and its compensation.
    pub participant: Participant,
    pub policy: RetryPolicy,
    pub compensation_policy: RetryPolicy,
}

impl StepSpec {
    pub fn policy_for(&self, direction: Direction) -> RetryPolicy {
        match direction {
            Direction::Do => self.policy,
            Direction::Undo => self.compensation_policy,
        }
    }
}

/// What a participant returns with a success: its own reference for the effect
/// (payment id, reservation id, tracking number, ledger entry hash); may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Receipt {
    pub reference: String,
}

impl Receipt {
    pub fn new(reference: impl Into<String>) -> Self {
        Self {
            reference: reference.into(),
        }
    }
}
