//! The outbox table: its migration, claiming rows per aggregate, marking them.

use gavel_runtime::postgres::{self, Migration};
use tokio_postgres::{Client, Transaction};

/// The table upstream services insert into, in the same transaction as their
/// own state change. README.md ("Outbox relay") documents every column.
const OUTBOX_SQL: &str = "
CREATE TABLE {schema}.outbox (
    id                 bigserial PRIMARY KEY,
    aggregate_id       text NOT NULL,
    topic              text NOT NULL,
    key                text,
    payload            bytea,
    headers            jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_id           text NOT NULL DEFAULT gen_random_uuid()::text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz,
    dead_letter_reason text,
    CONSTRAINT outbox_headers_object CHECK (jsonb_typeof(headers) = 'object')
);
-- The relay reads only unsent rows: oldest first, and per aggregate.
CREATE INDEX outbox_unsent ON {schema}.outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_unsent_aggregate ON {schema}.outbox (aggregate_id, id) WHERE sent_at IS NULL;
-- A queue table: every row is updated once, leaving a dead entry in both
-- partial indexes; vacuum and analyze it early, not after 20 % of it changed.
ALTER TABLE {schema}.outbox SET (autovacuum_vacuum_scale_factor = 0.01,
                                 autovacuum_analyze_scale_factor = 0.01);
";

/// The relay's own migration list, applied to `GAVEL_OUTBOX_SCHEMA`.
pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        name: "outbox",
        sql: OUTBOX_SQL,
    }]
}

/// One claimed row, as the relay publishes it.
pub struct OutboxRow {
    pub id: i64,
    pub aggregate_id: String,
    pub topic: String,
    pub key: Option<String>,
    pub payload: Option<Vec<u8>>,
    /// The `headers` column as JSON text (parsed and checked by the publisher).
    pub headers: String,
    pub event_id: String,
    /// `None` for an infinite `created_at`, which has no epoch milliseconds.
    pub created_at_ms: Option<i64>,
}

impl OutboxRow {
    /// The Kafka key: the row's own, else the aggregate id (one partition per aggregate).
    pub fn kafka_key(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.aggregate_id)
    }
}

/// The statements of one outbox schema, formatted once.
pub struct Statements {
    candidates: String,
    rows: String,
    mark_sent: String,
    mark_dead: String,
    backlog: String,
    /// Advisory-lock class of this outbox, so relays of other outboxes on the
    /// same server never contend for an aggregate that merely shares a name.
    lock_class: i32,
}

impl Statements {
    pub fn new(schema: &str) -> Self {
        let table = format!("{schema}.outbox");
        Self {
            // The aggregates of the oldest unsent rows, each locked for this
            // transaction if no other relay holds it: SKIP LOCKED at the level
            // of aggregates. (Row-level SKIP LOCKED alone would let a second
            // replica take an aggregate's later rows while the first still
            // holds its earlier ones, and publish them first.)
            candidates: format!(
                "SELECT aggregate_id, last FROM (
                     SELECT aggregate_id, min(id) AS first, max(id) AS last FROM (
                         SELECT aggregate_id, id FROM {table}
                         WHERE sent_at IS NULL ORDER BY id LIMIT $1
                     ) oldest GROUP BY aggregate_id
                 ) candidate
                 WHERE pg_try_advisory_xact_lock($2::int4, hashtext(aggregate_id))
                 ORDER BY first"
            ),
            // A new statement, so a new snapshot: it sees every row the previous
            // holder of these aggregates marked before it released them. Plain
            // FOR UPDATE (no SKIP LOCKED): the aggregate lock already keeps other
            // relays away, and skipping a row locked by anyone else would reorder.
            // Bounded by the window's last id, so it reads the window's rows, not
            // every unsent row of these aggregates; per aggregate still a prefix.
            // Total over every value a row can hold: `created_at` may be
            // 'infinity', whose epoch does not fit int8, and one such row
            // must not fail the claim of every batch it falls into.
            rows: format!(
                "SELECT id, aggregate_id, topic, key, payload, headers::text, event_id,
                        CASE WHEN isfinite(created_at)
                             THEN (extract(epoch FROM created_at) * 1000)::int8 END
                 FROM {table}
                 WHERE sent_at IS NULL AND aggregate_id = ANY($1) AND id <= $3
                 ORDER BY id LIMIT $2 FOR UPDATE"
            ),
            mark_sent: format!("UPDATE {table} SET sent_at = now() WHERE id = ANY($1)"),
            mark_dead: format!(
                "UPDATE {table} SET sent_at = now(), dead_letter_reason = $2 WHERE id = $1"
            ),
            backlog: format!(
                "SELECT count(*),
                        coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE isfinite(created_at))), 0)::float8
                 FROM {table} WHERE sent_at IS NULL"
            ),
            lock_class: postgres::advisory_key(&table) as i32,
        }
    }

    /// Claims up to `batch` unsent rows, oldest first, of aggregates no other
    /// relay holds; the locks last until `tx` ends. Per aggregate the rows are
    /// a prefix of its unsent rows, in id order.
    pub async fn claim(
        &self,
        tx: &Transaction<'_>,
        batch: i64,
    ) -> Result<Vec<OutboxRow>, tokio_postgres::Error> {
        // Look a little past one batch, so a replica finds free aggregates
        // behind the ones another replica holds.
        let window = batch.saturating_mul(2);
        let candidates = tx
            .query(&self.candidates, &[&window, &self.lock_class])
            .await?;
        let Some(last) = candidates.iter().map(|row| row.get::<_, i64>(1)).max() else {
            return Ok(Vec::new());
        };
        let aggregates: Vec<String> = candidates.iter().map(|row| row.get(0)).collect();
        let rows = tx.query(&self.rows, &[&aggregates, &batch, &last]).await?;
        Ok(rows
            .iter()
            .map(|row| OutboxRow {
                id: row.get(0),
                aggregate_id: row.get(1),
                topic: row.get(2),
                key: row.get(3),
                payload: row.get(4),
                headers: row.get(5),
                event_id: row.get(6),
                created_at_ms: row.get(7),
            })
            .collect())
    }

    pub async fn mark_sent(
        &self,
        tx: &Transaction<'_>,
        ids: &[i64],
    ) -> Result<(), tokio_postgres::Error> {
        if !ids.is_empty() {
            tx.execute(&self.mark_sent, &[&ids]).await?;
        }
        Ok(())
    }

    /// Marks a dead-lettered row done, with the reason, so it stops holding up
    /// its aggregate and stays inspectable in the table.
    pub async fn mark_dead(
        &self,
        tx: &Transaction<'_>,
        id: i64,
        reason: &str,
    ) -> Result<(), tokio_postgres::Error> {
        tx.execute(&self.mark_dead, &[&id, &reason]).await?;
        Ok(())
    }

    /// Unsent rows and the age in seconds of the oldest.
    pub async fn backlog(&self, client: &Client) -> Result<(i64, f64), tokio_postgres::Error> {
        let row = client.query_one(&self.backlog, &[]).await?;
        Ok((row.get(0), row.get(1)))
    }
}
