//! What an orchestrator writes besides its state: step commands for the
//! participants, milestones and failure records, Avro under the registry,
//! with envelope headers.

use super::kind::SagaKind;
use super::wire::Wire;
use super::SagaTopics;
use crate::txn::{self, TxnProducer};
use crate::ProcessorError;
use gavel_domain::saga::{Announcement, OutgoingCommand, SagaDefinition, SagaState, SagaStep};
use gavel_runtime::avro::{json, CachedSchema};
use gavel_runtime::saga_wire::{
    SagaFailed, StepCommand, CAUSATION_HEADER, CORRELATION_HEADER, TYPE_HEADER,
};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

pub struct Outgoing {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: OwnedHeaders,
}

pub fn headers(record_type: &str, correlation: &str, causation: &str) -> OwnedHeaders {
    [
        (TYPE_HEADER, record_type),
        (CORRELATION_HEADER, correlation),
        (CAUSATION_HEADER, causation),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header {
            key,
            value: Some(value),
        })
    })
}

/// Keyed by the saga id: one saga's commands reach a participant in order.
pub fn send(producer: &TxnProducer, topic: &str, record: &Outgoing) -> Result<(), ProcessorError> {
    txn::send_record(
        producer,
        BaseRecord::to(topic)
            .key(record.key.as_str())
            .payload(record.payload.as_slice())
            .headers(record.headers.clone()),
    )
}

/// The reply comes back to `partition` of the reply topic: the one this
/// replica owns for the saga, whatever partitioner the participant uses.
pub fn step_command<D: SagaDefinition>(
    def: &D,
    topics: &SagaTopics,
    partition: i32,
    command: &OutgoingCommand<D>,
    writer: &CachedSchema,
) -> Result<Outgoing, ProcessorError> {
    let wire = StepCommand {
        saga_kind: def.kind().to_owned(),
        saga_id: command.saga_id.to_string(),
        step: command.attempt.step.name().to_owned(),
        direction: command.attempt.direction.as_str().to_owned(),
        attempt: command.attempt.attempt,
        command_id: command.command_id.to_string(),
        effect_key: command.effect_key.to_string(),
        causation_id: command.causation_id.to_string(),
        reply_to: topics.replies.clone(),
        reply_partition: partition,
        deadline_ms: command.deadline.millis(),
        command: serde_json::to_value(&command.command).map_err(encode)?,
    };
    Ok(Outgoing {
        key: wire.saga_id.clone(),
        payload: json::encode(writer, &wire).map_err(avro)?,
        headers: headers("StepCommand", &wire.saga_id, &wire.causation_id),
    })
}

pub fn milestone<K: SagaKind>(
    kind: &K,
    announcement: &Announcement<K::Def>,
    wire: &Wire,
) -> Result<Outgoing, ProcessorError> {
    let milestone = kind
        .milestone(&announcement.milestone)
        .map_err(ProcessorError::Encode)?;
    let writer = wire.milestone_writer(&milestone.record)?;
    let correlation = announcement.correlation_id.to_string();
    Ok(Outgoing {
        headers: headers(
            milestone.event_type,
            &correlation,
            announcement.causation_id.as_str(),
        ),
        key: correlation,
        payload: json::encode(writer, &milestone.fields).map_err(avro)?,
    })
}

/// The record of a saga that ended FAILED and needs a person: its whole state.
pub fn failure<D: SagaDefinition>(
    def: &D,
    saga: &SagaState<D>,
    reason: &str,
    wire: &Wire,
) -> Result<Outgoing, ProcessorError> {
    let record = SagaFailed {
        saga_kind: def.kind().to_owned(),
        saga_id: saga.id.to_string(),
        reason: reason.to_owned(),
        state_json: serde_json::to_string(saga).map_err(encode)?,
    };
    Ok(Outgoing {
        key: saga.id.to_string(),
        payload: json::encode(wire.failed_writer(), &record).map_err(avro)?,
        headers: headers("SagaFailed", saga.id.as_str(), "failure"),
    })
}

fn encode(error: serde_json::Error) -> ProcessorError {
    ProcessorError::Encode(error.to_string())
}

fn avro(error: gavel_runtime::RuntimeError) -> ProcessorError {
    ProcessorError::Encode(error.to_string())
}
