//! View changes as Kafka records: Avro values (`schemas/views/`) keyed by view
//! id, with the source event's version and trace context in headers. A change
//! stays a typed row until its transaction commits: rows replaced by a later
//! change of the same batch (see `coalesce`) are never encoded.

use crate::ProcessorError;
use gavel_domain::views::{AuctionDetails, AuctionListItem, ListChange, UserBid, ViewChanges};
use gavel_domain::TenantId;
use gavel_runtime::config::Topics;
use gavel_runtime::envelope::{header, EventEnvelope};
use gavel_runtime::view_binary;
use gavel_runtime::view_wire::ViewWriters;
use rdkafka::message::{Header, OwnedHeaders};
use std::rc::Rc;

/// One view row's new state.
pub enum ViewRow {
    Details(AuctionDetails),
    List(AuctionListItem),
    UserBid(UserBid),
    /// The auction left the list.
    Tombstone,
}

impl ViewRow {
    /// Its record's payload (`None` for a tombstone).
    pub fn encode(&self, writers: &ViewWriters) -> Result<Option<Vec<u8>>, ProcessorError> {
        let encoded = match self {
            Self::Details(row) => view_binary::details(&writers.details, row),
            Self::List(row) => view_binary::list_item(&writers.list, row),
            Self::UserBid(row) => view_binary::user_bid(&writers.user_bids, row),
            Self::Tombstone => return Ok(None),
        };
        encoded
            .map(Some)
            .map_err(|e| ProcessorError::Encode(e.to_string()))
    }
}

pub struct ViewRecord<'a> {
    pub topic: &'a str,
    pub key: String,
    pub row: ViewRow,
}

/// The records of one event's view changes, in a fixed order: details, list,
/// then the user rows.
pub fn view_records(topics: &Topics, changes: ViewChanges) -> Vec<ViewRecord<'_>> {
    let auction_key = changes.details.auction_id.to_string();
    let mut records = Vec::with_capacity(2 + changes.user_bids.len());
    records.push(ViewRecord {
        topic: &topics.view_details,
        key: auction_key.clone(),
        row: ViewRow::Details(changes.details),
    });
    let list = match changes.list {
        ListChange::Unchanged => None,
        ListChange::Upsert(item) => Some(ViewRow::List(item)),
        ListChange::Delete { .. } => Some(ViewRow::Tombstone),
    };
    records.extend(list.map(|row| ViewRecord {
        topic: &topics.view_list,
        key: auction_key,
        row,
    }));
    records.extend(changes.user_bids.into_iter().map(|row| ViewRecord {
        topic: &topics.view_user_bids,
        key: row.key(),
        row: ViewRow::UserBid(row),
    }));
    records
}

/// Where a view record comes from: the source event, shared by every record
/// of that event.
pub struct Provenance {
    /// The event's aggregate version: the sinks' replay guard, also for tombstones.
    pub version: u64,
    /// The event's offset in the event topic.
    pub source_offset: i64,
    pub tenant_id: TenantId,
    pub correlation_id: String,
    pub event_id: String,
}

impl Provenance {
    pub fn of(envelope: &EventEnvelope, source_offset: i64) -> Rc<Self> {
        Rc::new(Self {
            version: envelope.aggregate_version,
            source_offset,
            tenant_id: envelope.tenant_id.clone(),
            correlation_id: envelope.correlation_id.clone(),
            event_id: envelope.event_id.clone(),
        })
    }

    /// The record's headers, with a trace context of its own.
    pub fn headers(&self) -> OwnedHeaders {
        let traceparent = gavel_runtime::envelope::traceparent(&self.correlation_id);
        let (version, source_offset) = (self.version.to_string(), self.source_offset.to_string());
        [
            (header::AGGREGATE_VERSION, version.as_str()),
            (header::SOURCE_OFFSET, &source_offset),
            (header::TENANT_ID, self.tenant_id.as_str()),
            (header::CORRELATION_ID, &self.correlation_id),
            (header::CAUSATION_ID, &self.event_id),
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
}
