//! A consumed event as a row of the `events` table, and back to its record.

use super::chain::NewEvent;
use super::payload;
use crate::SinkError;
use gavel_domain::auction::upcast::current_version;
use gavel_domain::auction::AuctionEvent;
use gavel_runtime::envelope::EventEnvelope;
use rdkafka::message::{Message, OwnedMessage};
use serde_json::{json, Value};

/// The row form of a decoded event, or why Postgres cannot hold it.
pub fn to_row(
    event: &AuctionEvent,
    envelope: &EventEnvelope,
    message: &OwnedMessage,
) -> Result<NewEvent, String> {
    let version = i64::try_from(envelope.aggregate_version)
        .map_err(|_| format!("aggregate_version {} overflows", envelope.aggregate_version))?;
    let payload = payload::to_json(event);
    let meta = json!({
        "event_id": envelope.event_id,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        // The version of the payload's shape, which this release writes at
        // its current version whatever version the record came in at.
        "schema_version": current_version(event.type_name()),
        "kafka": { "topic": message.topic(), "partition": message.partition(), "offset": message.offset() },
    });
    let ids = [
        envelope.tenant_id.as_str(),
        envelope.aggregate_id.as_str(),
        &envelope.event_id,
    ];
    // Postgres text and jsonb cannot hold U+0000: refusing the event beats
    // failing (and retrying) the whole batch forever.
    if ids.iter().any(|s| s.contains('\0')) || has_nul(&payload) || has_nul(&meta) {
        return Err("contains U+0000, which postgres cannot store".into());
    }
    Ok(NewEvent {
        tenant_id: envelope.tenant_id.to_string(),
        aggregate_id: envelope.aggregate_id.to_string(),
        version,
        event_id: envelope.event_id.clone(),
        event_type: event.type_name().to_owned(),
        payload: payload::canonical(&payload),
        envelope: payload::canonical(&meta),
        occurred_at_ms: envelope.occurred_at.millis(),
        partition: message.partition(),
        offset: message.offset(),
    })
}

/// The record of `event` among the batch's records.
pub fn message_of<'a>(
    records: &[&'a OwnedMessage],
    event: &NewEvent,
) -> Result<&'a OwnedMessage, SinkError> {
    records
        .iter()
        .find(|m| m.partition() == event.partition && m.offset() == event.offset)
        .copied()
        .ok_or_else(|| SinkError::BadEvent {
            aggregate_id: event.aggregate_id.clone(),
            version: event.version,
            reason: "refused event not found in its batch".into(),
        })
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}
