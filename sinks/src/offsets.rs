//! Consumed offsets kept in Postgres, written in the same transaction as the
//! rows they produced: after a crash the sink resumes exactly after the last
//! batch that reached Postgres, whatever Kafka's committed offset says.

use std::collections::HashMap;
use tokio_postgres::{GenericClient, Transaction};

pub const MIGRATION_SQL: &str = "
CREATE TABLE IF NOT EXISTS {schema}.sink_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);";

/// The view sink also stores, per view partition, one past the event-topic
/// offset of the last view record it applied (see `header::SOURCE_OFFSET`):
/// the point up to which a rebuild from the events reproduces its table.
pub const SOURCE_OFFSET_SQL: &str = "
ALTER TABLE {schema}.sink_offsets ADD COLUMN IF NOT EXISTS source_next_offset bigint;";

pub struct OffsetStore {
    schema: String,
    group: String,
    topic: String,
    /// Next offset to apply per partition, as last read from or written to Postgres.
    known: HashMap<i32, i64>,
}

impl OffsetStore {
    pub fn new(schema: &str, group: &str, topic: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            group: group.to_owned(),
            topic: topic.to_owned(),
            known: HashMap::new(),
        }
    }

    /// The stored next offset of `partition` (-1 when none), read once per assignment.
    pub async fn next_offset(
        &mut self,
        client: &impl GenericClient,
        partition: i32,
    ) -> Result<i64, tokio_postgres::Error> {
        if let Some(next) = self.known.get(&partition) {
            return Ok(*next);
        }
        let row = client
            .query_opt(
                &format!(
                    "SELECT next_offset FROM {}.sink_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
                    self.schema
                ),
                &[&self.group, &self.topic, &partition],
            )
            .await?;
        let next = row.map_or(-1, |r| r.get(0));
        self.known.insert(partition, next);
        Ok(next)
    }

    pub fn forget(&mut self, partition: i32) {
        self.known.remove(&partition);
    }

    /// After a lost connection nobody knows whether the last transaction
    /// committed: read every offset from Postgres again.
    pub fn forget_all(&mut self) {
        self.known.clear();
    }

    /// Records the batch's offsets inside the rows' transaction.
    pub async fn save(
        &mut self,
        tx: &Transaction<'_>,
        offsets: &HashMap<i32, i64>,
    ) -> Result<(), tokio_postgres::Error> {
        if offsets.is_empty() {
            return Ok(());
        }
        let (partitions, nexts): (Vec<i32>, Vec<i64>) =
            offsets.iter().map(|(p, o)| (*p, *o)).unzip();
        tx.execute(
            &format!(
                "INSERT INTO {}.sink_offsets (consumer_group, topic, partition, next_offset)
                 SELECT $1, $2, p, o FROM UNNEST($3::int4[], $4::int8[]) AS t(p, o)
                 ON CONFLICT (consumer_group, topic, partition)
                 DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
                self.schema
            ),
            &[&self.group, &self.topic, &partitions, &nexts],
        )
        .await?;
        Ok(())
    }

    /// `save`, with each partition's source position (`None`: no record of
    /// the batch said which event it came from; the stored one is kept).
    pub async fn save_with_sources(
        &mut self,
        tx: &Transaction<'_>,
        offsets: &HashMap<i32, (i64, Option<i64>)>,
    ) -> Result<(), tokio_postgres::Error> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut partitions = Vec::with_capacity(offsets.len());
        let mut nexts = Vec::with_capacity(offsets.len());
        let mut sources = Vec::with_capacity(offsets.len());
        for (partition, (next, source)) in offsets {
            partitions.push(*partition);
            nexts.push(*next);
            sources.push(*source);
        }
        tx.execute(
            &format!(
                "INSERT INTO {}.sink_offsets AS t
                     (consumer_group, topic, partition, next_offset, source_next_offset)
                 SELECT $1, $2, p, o, s FROM UNNEST($3::int4[], $4::int8[], $5::int8[]) AS u(p, o, s)
                 ON CONFLICT (consumer_group, topic, partition)
                 DO UPDATE SET next_offset = excluded.next_offset,
                     source_next_offset = COALESCE(excluded.source_next_offset, t.source_next_offset),
                     updated_at = now()",
                self.schema
            ),
            &[&self.group, &self.topic, &partitions, &nexts, &sources],
        )
        .await?;
        Ok(())
    }

    pub fn remember(&mut self, offsets: &HashMap<i32, i64>) {
        self.known.extend(offsets.iter().map(|(p, o)| (*p, *o)));
    }
}

/// Every stored position of `group` on `topic`: partition, next offset, and
/// the source position where the sink keeps one (`save_with_sources`).
pub async fn stored_positions(
    client: &impl GenericClient,
    schema: &str,
    group: &str,
    topic: &str,
) -> Result<Vec<(i32, i64, Option<i64>)>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT partition, next_offset, source_next_offset FROM {schema}.sink_offsets
                 WHERE consumer_group = $1 AND topic = $2"
            ),
            &[&group, &topic],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
