//! Kafka records into saga inputs: a trigger record of the kind's trigger
//! topic, or a participant's reply.

use super::kind::SagaKind;
use super::wire::Wire;
use crate::ProcessorError;
use gavel_domain::saga::{CommandId, Receipt, SagaDefinition, SagaId, SagaInput, SagaStep};
use gavel_runtime::saga_wire::{ReplyOutcome, StepReply};
use rdkafka::message::{Message, OwnedMessage};

pub enum Input<D: SagaDefinition> {
    Saga(SagaId, SagaInput<D>),
    /// A trigger-topic record that starts nothing.
    Ignored,
    /// Readable but meaningless here; counted by code.
    Rejected(&'static str),
}

/// `Ok(Err(reason))` when the record will never be readable: it goes to
/// the DLQ; `Err` when the registry could not be asked.
pub fn trigger<K: SagaKind>(
    kind: &K,
    def: &K::Def,
    wire: &Wire,
    message: &OwnedMessage,
) -> Result<Result<Input<K::Def>, String>, ProcessorError> {
    let Some(payload) = message.payload() else {
        // A tombstone on a compacted trigger topic starts nothing.
        return Ok(Ok(Input::Ignored));
    };
    Ok(kind.trigger(wire, payload)?.map(|trigger| match trigger {
        Some(trigger) => Input::Saga(def.saga_id(&trigger), SagaInput::Start { trigger }),
        None => Input::Ignored,
    }))
}

pub fn reply<D: SagaDefinition>(def: &D, reply: StepReply) -> Input<D> {
    if reply.saga_kind != def.kind() {
        return Input::Rejected("WRONG_KIND");
    }
    let Some(step) = def.steps().iter().copied().find(|s| s.name() == reply.step) else {
        return Input::Rejected("UNKNOWN_STEP");
    };
    let command_id = CommandId::new(reply.command_id);
    let input = match reply.outcome {
        ReplyOutcome::Succeeded { reference } => SagaInput::StepSucceeded {
            step,
            command_id,
            receipt: Receipt::new(reference),
        },
        ReplyOutcome::Failed { reason, transient } => SagaInput::StepFailed {
            step,
            command_id,
            reason,
            transient,
        },
    };
    Input::Saga(SagaId::new(reply.saga_id), input)
}
