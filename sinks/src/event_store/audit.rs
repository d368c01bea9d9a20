//! Reading the store back: `verify` walks every aggregate's hash chain, and
//! `state_as_of` rebuilds an auction at a past instant with the pure domain.

use super::chain::{Link, GENESIS};
use super::payload::{self, STORED_VERSION};
use super::sql::{millis, TO_TS};
use crate::SinkError;
use futures::{pin_mut, TryStreamExt};
use gavel_domain::auction::{replay, Auction, AuctionEvent};
use gavel_domain::{AuctionId, Timestamp};
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub aggregates: u64,
    pub events: u64,
    /// The first broken link of each broken aggregate, one line each.
    pub broken: Vec<String>,
}

impl AuditReport {
    pub fn intact(&self) -> bool {
        self.broken.is_empty()
    }
}

/// Where the walk is in the current aggregate.
struct Cursor {
    aggregate_id: String,
    next_version: i64,
    prev_hash: Vec<u8>,
    broken: bool,
}

/// Recomputes every chain, in one streamed pass ordered by the unique index.
pub async fn verify(client: &impl GenericClient, schema: &str) -> Result<AuditReport, SinkError> {
    let sql = format!(
        "SELECT tenant_id, aggregate_id, aggregate_version, event_type, payload::text, {},
                prev_hash, hash
         FROM {schema}.events ORDER BY aggregate_id, aggregate_version",
        millis("occurred_at")
    );
    let rows = client.query_raw(&sql, std::iter::empty::<i64>()).await?;
    pin_mut!(rows);
    let mut report = AuditReport::default();
    let mut cursor: Option<Cursor> = None;
    while let Some(row) = rows.try_next().await? {
        report.events += 1;
        let aggregate_id: String = row.get(1);
        let current = match cursor.take() {
            Some(c) if c.aggregate_id == aggregate_id => c,
            _ => {
                report.aggregates += 1;
                Cursor {
                    aggregate_id,
                    next_version: 1,
                    prev_hash: GENESIS.to_vec(),
                    broken: false,
                }
            }
        };
        cursor = Some(check(current, &row, &mut report));
    }
    Ok(report)
}

/// Checks one row against the chain so far; records the aggregate's first break only.
fn check(mut cursor: Cursor, row: &Row, report: &mut AuditReport) -> Cursor {
    if cursor.broken {
        return cursor;
    }
    let version: i64 = row.get(2);
    let stored_prev: Vec<u8> = row.get(6);
    let stored_hash: Vec<u8> = row.get(7);
    let problem = if version != cursor.next_version {
        Some(format!("version gap: expected {}", cursor.next_version))
    } else if stored_prev != cursor.prev_hash {
        Some("prev_hash does not match the previous event's hash (chain re-linked)".to_owned())
    } else {
        match recompute(row, version, &stored_prev) {
            Ok(hash) if hash.as_slice() == stored_hash => None,
            Ok(_) => Some("content does not match its hash (row altered)".to_owned()),
            Err(reason) => Some(reason),
        }
    };
    if let Some(problem) = problem {
        report.broken.push(format!(
            "{} broken at version {version}: {problem}",
            cursor.aggregate_id
        ));
        cursor.broken = true;
    }
    cursor.next_version = version + 1;
    cursor.prev_hash = stored_hash;
    cursor
}

fn recompute(row: &Row, version: i64, prev_hash: &[u8]) -> Result<[u8; 32], String> {
    let payload: Value = serde_json::from_str(row.get::<_, &str>(4))
        .map_err(|e| format!("payload is not JSON: {e}"))?;
    let canonical = payload::canonical(&payload);
    let link = Link {
        tenant_id: row.get(0),
        aggregate_id: row.get(1),
        version,
        event_type: row.get(3),
        payload: &canonical,
        occurred_at_ms: row.get(5),
    };
    Ok(link.hash(prev_hash))
}

/// The auction as it stood at `as_of` (inclusive), or `None` before it existed.
/// Only the gapless prefix of versions from 1 is replayed: a state is a prefix
/// of the history, never a selection from it.
pub async fn state_as_of(
    client: &impl GenericClient,
    schema: &str,
    aggregate_id: &AuctionId,
    as_of: Timestamp,
) -> Result<Option<Auction>, SinkError> {
    let sql = format!(
        "SELECT aggregate_version, event_type, payload::text, {STORED_VERSION} FROM {schema}.events
         WHERE aggregate_id = $1 AND occurred_at <= {}
         ORDER BY aggregate_version",
        TO_TS.replace("{v}", "$2::int8")
    );
    let rows = client
        .query(&sql, &[&aggregate_id.as_str(), &as_of.millis()])
        .await?;
    let mut events: Vec<AuctionEvent> = Vec::with_capacity(rows.len());
    for (expected, row) in (1_i64..).zip(&rows) {
        let version: i64 = row.get(0);
        if version != expected {
            break;
        }
        let bad = |reason: String| SinkError::BadEvent {
            aggregate_id: aggregate_id.to_string(),
            version,
            reason,
        };
        let json: Value =
            serde_json::from_str(row.get::<_, &str>(2)).map_err(|e| bad(e.to_string()))?;
        events.push(payload::from_json(row.get(1), row.get(3), json).map_err(bad)?);
    }
    Ok(replay(aggregate_id, &events))
}
