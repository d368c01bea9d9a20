//! View changes as Kafka records: Avro values (`schemas/views/`) keyed by view
//! id, with the source event's version and trace context in headers.

use crate::ProcessorError;
use gavel_domain::views::{ListChange, ViewChanges};
use gavel_runtime::avro::{json, CachedSchema};
use gavel_runtime::config::Topics;
use gavel_runtime::envelope::{header, EventEnvelope};
use gavel_runtime::view_wire::ViewWriters;
use rdkafka::message::{Header, OwnedHeaders};

pub struct ViewRecord<'a> {
    pub topic: &'a str,
    pub key: String,
    /// `None` is a tombstone (the auction left the list).
    pub payload: Option<Vec<u8>>,
}

/// The records of one event's view changes, in a fixed order: details, list,
/// then the user rows.
pub fn view_records<'a>(
    topics: &'a Topics,
    writers: &ViewWriters,
    changes: &ViewChanges,
) -> Result<Vec<ViewRecord<'a>>, ProcessorError> {
    let auction_key = changes.details.auction_id.to_string();
    let mut records = Vec::with_capacity(2 + changes.user_bids.len());
    records.push(ViewRecord {
        topic: &topics.view_details,
        key: auction_key.clone(),
        payload: Some(avro(&writers.details, &changes.details)?),
    });
    match &changes.list {
        ListChange::Unchanged => {}
        ListChange::Upsert(item) => records.push(ViewRecord {
            topic: &topics.view_list,
            key: auction_key,
            payload: Some(avro(&writers.list, item)?),
        }),
        ListChange::Delete { .. } => records.push(ViewRecord {
            topic: &topics.view_list,
            key: auction_key,
            payload: None,
        }),
    }
    for row in &changes.user_bids {
        records.push(ViewRecord {
            topic: &topics.view_user_bids,
            key: row.key(),
            payload: Some(avro(&writers.user_bids, row)?),
        });
    }
    Ok(records)
}

/// The source event's version (the sinks' replay guard, also for tombstones),
/// its offset in the event topic, and its trace context.
pub fn view_headers(envelope: &EventEnvelope, version: &str, source_offset: &str) -> OwnedHeaders {
    let traceparent = gavel_runtime::envelope::traceparent(&envelope.correlation_id);
    [
        (header::AGGREGATE_VERSION, version),
        (header::SOURCE_OFFSET, source_offset),
        (header::TENANT_ID, envelope.tenant_id.as_str()),
        (header::CORRELATION_ID, &envelope.correlation_id),
        (header::CAUSATION_ID, &envelope.event_id),
        (header::TRACEPARENT, &traceparent),
    ]
    .into_iter()
    .fold(
        OwnedHeaders::new_with_capacity(6),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        },
    )
}

fn avro<T: serde::Serialize>(writer: &CachedSchema, row: &T) -> Result<Vec<u8>, ProcessorError> {
    json::encode(writer, row).map_err(|e| ProcessorError::Encode(e.to_string()))
}
