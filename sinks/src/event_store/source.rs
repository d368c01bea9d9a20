//! The events by where they came from. Every row's envelope has said, since
//! the first row, which event-topic partition and offset it was consumed from
//! (`envelope.kafka`). A rebuild of the read models from the store reads the
//! events by those coordinates, so it stops exactly where the live view sink
//! stands, as a rebuild from the topic does.

use super::payload::{self, STORED_VERSION};
use super::sql::millis;
use crate::SinkError;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::views::EventMeta;
use gavel_domain::{AuctionId, TenantId, Timestamp};
use tokio_postgres::{GenericClient, Row};

const PARTITION: &str = "((envelope->'kafka'->>'partition')::int4)";
const OFFSET: &str = "((envelope->'kafka'->>'offset')::int8)";

/// The index the reads below walk: one partition's offsets in order.
pub const SOURCE_INDEX_SQL: &str = "
CREATE INDEX events_source_position ON {schema}.events
    (((envelope->'kafka'->>'partition')::int4), ((envelope->'kafka'->>'offset')::int8));";

/// One stored event with its event-topic coordinates.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub partition: i32,
    pub offset: i64,
    pub meta: EventMeta,
    pub event: AuctionEvent,
}

/// The stored events of `topic`'s `partition` with offsets in `from..to`, in
/// offset order, at most `limit`.
pub async fn read_range(
    client: &impl GenericClient,
    schema: &str,
    topic: &str,
    partition: i32,
    (from, to): (i64, i64),
    limit: i64,
) -> Result<Vec<StoredEvent>, SinkError> {
    let sql = format!(
        "SELECT tenant_id, aggregate_id, aggregate_version, event_type, payload::text,
                {}, {OFFSET}, {STORED_VERSION}
         FROM {schema}.events
         WHERE {PARTITION} = $2 AND {OFFSET} >= $3 AND {OFFSET} < $4
           AND envelope->'kafka'->>'topic' = $1
         ORDER BY {OFFSET}
         LIMIT $5",
        millis("occurred_at")
    );
    let rows = client
        .query(&sql, &[&topic, &partition, &from, &to, &limit])
        .await?;
    rows.iter()
        .map(|row| stored_event(row, partition))
        .collect()
}

fn stored_event(row: &Row, partition: i32) -> Result<StoredEvent, SinkError> {
    let (aggregate_id, version): (&str, i64) = (row.get(1), row.get(2));
    let bad = |reason: String| SinkError::BadEvent {
        aggregate_id: aggregate_id.to_owned(),
        version,
        reason,
    };
    let json = serde_json::from_str(row.get::<_, &str>(4)).map_err(|e| bad(e.to_string()))?;
    let event = payload::from_json(row.get(3), row.get(7), json).map_err(bad)?;
    Ok(StoredEvent {
        partition,
        offset: row.get(6),
        meta: EventMeta {
            aggregate_id: AuctionId::new(aggregate_id),
            tenant_id: TenantId::new(row.get::<_, &str>(0)),
            version: u64::try_from(version).map_err(|e| bad(e.to_string()))?,
            occurred_at: Timestamp::from_millis(row.get(5)),
        },
        event,
    })
}

/// Stored rows whose envelope does not say where they were consumed from.
pub async fn rows_without_source(
    client: &impl GenericClient,
    schema: &str,
) -> Result<i64, SinkError> {
    let sql = format!("SELECT count(*) FROM {schema}.events WHERE {OFFSET} IS NULL");
    Ok(client.query_one(&sql, &[]).await?.get(0))
}
