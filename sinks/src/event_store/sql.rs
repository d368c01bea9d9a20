//! The `events` table: its migrations, the stored hashes a batch chains onto,
//! and the one-statement append.

use super::chain::{ChainedEvent, KnownHashes, NewEvent};
use crate::SinkError;
use gavel_runtime::postgres::Migration;
use std::collections::HashMap;
use tokio_postgres::GenericClient;

/// Versions 100+: `schema_migrations` is one table per Postgres schema, shared
/// with the auction_details sink (versions 1 and 2).
pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 100,
            name: "event_store_sink_offsets",
            // CREATE TABLE IF NOT EXISTS: the auction_details sink may have made it.
            sql: crate::offsets::MIGRATION_SQL,
        },
        Migration {
            version: 101,
            name: "events",
            sql: EVENTS_SQL,
        },
        Migration {
            version: 102,
            name: "events_source_position",
            sql: super::source::SOURCE_INDEX_SQL,
        },
    ]
}

/// The trigger makes the table append-only for everyone but its owner, who can
/// disable it: the hash chain is what catches an owner's edits.
const EVENTS_SQL: &str = "
CREATE TABLE {schema}.events (
    seq bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    aggregate_id text NOT NULL,
    aggregate_version bigint NOT NULL CHECK (aggregate_version >= 1),
    event_id text NOT NULL UNIQUE,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    envelope jsonb NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32),
    UNIQUE (aggregate_id, aggregate_version)
);
CREATE INDEX events_tenant_time ON {schema}.events (tenant_id, occurred_at);
CREATE FUNCTION {schema}.events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {schema}.events
    FOR EACH ROW EXECUTE FUNCTION {schema}.events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.events_append_only();";

/// Millisecond-exact epoch millis -> timestamptz.
pub const TO_TS: &str = "('epoch'::timestamptz + ({v} * interval '1 millisecond'))";

/// Millisecond-exact timestamptz -> epoch millis.
pub fn millis(column: &str) -> String {
    format!("(extract(epoch from {column}) * 1000)::int8")
}

/// The stored hashes from each batch aggregate's predecessor version up to its
/// highest version in the batch: what the batch chains onto, and what it repeats.
pub async fn known_hashes(
    client: &impl GenericClient,
    schema: &str,
    events: &[NewEvent],
) -> Result<KnownHashes, SinkError> {
    let mut ranges: HashMap<&str, (i64, i64)> = HashMap::new();
    for event in events {
        let range = ranges
            .entry(&event.aggregate_id)
            .or_insert((event.version, event.version));
        *range = (range.0.min(event.version), range.1.max(event.version));
    }
    if ranges.is_empty() {
        return Ok(KnownHashes::new());
    }
    let ids: Vec<&str> = ranges.keys().copied().collect();
    let lows: Vec<i64> = ids.iter().map(|id| ranges[id].0 - 1).collect();
    let highs: Vec<i64> = ids.iter().map(|id| ranges[id].1).collect();
    let sql = format!(
        "SELECT e.aggregate_id, e.aggregate_version, e.hash FROM {schema}.events e
         JOIN UNNEST($1::text[], $2::int8[], $3::int8[]) AS u(id, lo, hi)
           ON e.aggregate_id = u.id AND e.aggregate_version BETWEEN u.lo AND u.hi"
    );
    let rows = client.query(&sql, &[&ids, &lows, &highs]).await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// One statement for the batch, rows numbered in consumption order so `seq`
/// follows it. Returns the rows inserted; a conflict (a concurrent writer got
/// there first) inserts nothing, the stored row already being the same event.
pub async fn append(
    client: &impl GenericClient,
    schema: &str,
    rows: &[ChainedEvent],
) -> Result<u64, SinkError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let text =
        |f: &dyn Fn(&NewEvent) -> &str| -> Vec<&str> { rows.iter().map(|r| f(&r.event)).collect() };
    let tenants = text(&|e| &e.tenant_id);
    let ids = text(&|e| &e.aggregate_id);
    let event_ids = text(&|e| &e.event_id);
    let types = text(&|e| &e.event_type);
    let payloads = text(&|e| &e.payload);
    let envelopes = text(&|e| &e.envelope);
    let versions: Vec<i64> = rows.iter().map(|r| r.event.version).collect();
    let times: Vec<i64> = rows.iter().map(|r| r.event.occurred_at_ms).collect();
    let prevs: Vec<&[u8]> = rows.iter().map(|r| r.prev_hash.as_slice()).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|r| r.hash.as_slice()).collect();
    let sql = format!(
        "INSERT INTO {schema}.events (tenant_id, aggregate_id, aggregate_version, event_id,
             event_type, payload, envelope, occurred_at, prev_hash, hash)
         SELECT t, a, v, e, ty, p::jsonb, env::jsonb, {}, ph, h
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::int8[], $9::bytea[], $10::bytea[])
              WITH ORDINALITY AS u(t, a, v, e, ty, p, env, o, ph, h, n)
         ORDER BY n
         ON CONFLICT (aggregate_id, aggregate_version) DO NOTHING",
        TO_TS.replace("{v}", "o")
    );
    let inserted = client
        .execute(
            &sql,
            &[
                &tenants, &ids, &versions, &event_ids, &types, &payloads, &envelopes, &times,
                &prevs, &hashes,
            ],
        )
        .await?;
    Ok(inserted)
}
