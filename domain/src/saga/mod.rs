//! Sagas as pure state machines: a generic engine model (`decide` / `evolve`) and two
//! definitions, the auction payment saga (seed 000) and the order saga (seed 001).
//!
//! An engine (in another crate) keeps one `SagaState` per saga id, feeds it
//! `SagaInput`s (the trigger, participant replies, its own timers) with the `Cause`
//! (message id and time), stores the returned events, then runs the actions: send
//! commands, arm or drop the saga's single timer, publish milestones, and on a
//! terminal action count it (and for `Fail`, raise the alert and write a DLQ record).
//! A `SagaRejection` changes nothing and is counted by its code.
//!
//! Rules: steps run in order; a transient failure or a missed reply deadline is
//! retried with exponential backoff up to the step's attempt limit; a permanent
//! failure or exhausted retries compensates the completed steps in reverse order,
//! each compensation once (retried the same way; if one still fails the saga is
//! FAILED and needs attention). When the failed step's last attempt timed out its
//! effect is in doubt, so it is compensated first. No clocks, no I/O.
//!
//! What this asks of participants: take one saga's commands in order (its key is the
//! saga id, so one partition); apply a step at most once per `EffectKey` and answer a
//! repeat with success; make the compensation of an effect never applied a no-op that
//! also refuses a forward command with that key arriving later; and report "refused"
//! only when nothing was applied. Then a definitive failure of the last attempt means
//! no attempt applied anything, which is why only a timed-out step is in doubt.

mod actions;
pub mod catalogue;
mod decide;
mod definition;
mod event;
mod evolve;
mod ids;
mod io;
pub mod order;
pub mod payment;
mod plan;
mod rejection;
mod state;

pub use actions::resume_actions;
pub use decide::decide;
pub use definition::{
    Direction, Participant, Receipt, RetryPolicy, SagaDefinition, SagaStep, StepKind, StepPolicies,
    StepSpec,
};
pub use event::{AttemptRef, OutgoingCommand, SagaEvent};
pub use evolve::{evolve, replay};
pub use ids::{CommandId, EffectKey, MessageId, OrderId, SagaId};
pub use io::{Announcement, Cause, Decision, SagaAction, SagaInput};
pub use rejection::SagaRejection;
pub use state::{Answer, IssuedCommand, Pending, SagaState, SagaStatus, StepDone};

#[cfg(test)]
mod tests;
