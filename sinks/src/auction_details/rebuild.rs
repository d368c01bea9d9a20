//! `gavel rebuild auction_details`: replays the event topic from offset 0 into a
//! shadow table while the live table keeps serving, then swaps the two in one
//! Postgres transaction. Under the swap lock the shadow first catches up to the
//! exact offsets the live sink has stored, so the live sink resumes on the new
//! table where it stood; readers see the old table or the new one, never a
//! half-built one.

use super::{reduce_events, sql, swap_lock_key};
use crate::{batch, SinkError};
use gavel_domain::auction::AuctionEvent;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::EventEnvelope;
use gavel_runtime::kafka::{self, EofAware};
use gavel_runtime::{postgres, Config};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::GenericClient;

const BATCH: usize = 5_000;

#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    pub events: u64,
    pub rows: u64,
    pub skipped: u64,
    pub elapsed: Duration,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Replay {
    consumer: StreamConsumer<EofAware>,
    codec: AvroCodec,
    /// Next offset per partition after the last record read.
    position: HashMap<i32, i64>,
    at_end: HashMap<i32, bool>,
    report: RebuildReport,
}

pub async fn rebuild(config: &Config) -> Result<RebuildReport, SinkError> {
    let started = Instant::now();
    let mut client = postgres::connect(config).await?;
    postgres::migrate(&mut client, &config.postgres_schema, &super::migrations()).await?;
    let live = sql::live_table(&config.postgres_schema);
    let shadow = format!("{live}_rebuild");
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {shadow}; CREATE TABLE {shadow} (LIKE {live} INCLUDING ALL)"
        ))
        .await?;
    let (mut replay, targets) = Replay::open(config)?;
    let total: i64 = targets.values().sum();
    let progress = progress_bar(total as u64);
    replay
        .run(
            &client,
            &shadow,
            |p, position| position >= targets.get(&p).copied().unwrap_or(0),
            &progress,
        )
        .await?;

    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&swap_lock_key(&config.postgres_schema)],
    )
    .await?;
    let live_offsets = stored_offsets(&tx, config).await?;
    replay
        .run(
            &tx,
            &shadow,
            |p, position| position >= live_offsets.get(&p).copied().unwrap_or(0),
            &progress,
        )
        .await?;
    let old = format!("{live}_replaced");
    let bare = |t: &str| t.rsplit('.').next().unwrap_or(t).to_owned();
    tx.batch_execute(&format!(
        "ALTER TABLE {live} RENAME TO {}; ALTER TABLE {shadow} RENAME TO {}; DROP TABLE {old};",
        bare(&old),
        bare(&live)
    ))
    .await?;
    tx.commit().await?;
    progress.finish_and_clear();
    replay.report.elapsed = started.elapsed();
    Ok(replay.report)
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// The live sink's stored next offsets: where the swapped-in table must stand.
async fn stored_offsets(
    client: &impl GenericClient,
    config: &Config,
) -> Result<HashMap<i32, i64>, SinkError> {
    let rows = client
        .query(
            &format!(
                "SELECT partition, next_offset FROM {}.sink_offsets WHERE consumer_group = $1 AND topic = $2",
                config.postgres_schema
            ),
            &[&config.sink_group, &config.topics.events],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)))
        .collect())
}

impl Replay {
    /// A consumer on every partition from the beginning, and each partition's
    /// end offset now: the first target of the replay.
    fn open(config: &Config) -> Result<(Self, HashMap<i32, i64>), SinkError> {
        let topic = &config.topics.events;
        let client = kafka::replay_config(config, &format!("{}-rebuild", config.sink_group));
        let consumer: StreamConsumer<EofAware> = client.create_with_context(EofAware)?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut assignment = TopicPartitionList::new();
        let mut targets = HashMap::new();
        for partition in &partitions {
            let (_, high) =
                consumer.fetch_watermarks(topic, *partition, Duration::from_secs(10))?;
            targets.insert(*partition, high);
            assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let replay = Replay {
            consumer,
            codec: AvroCodec::new(&config.registry_url),
            position: partitions.iter().map(|p| (*p, 0)).collect(),
            at_end: HashMap::new(),
            report: RebuildReport::default(),
        };
        Ok((replay, targets))
    }

    /// Reads until `reached(partition, position)` holds for every partition (or
    /// a partition is at its end), applying events to `table` in batches.
    async fn run(
        &mut self,
        client: &impl GenericClient,
        table: &str,
        reached: impl Fn(i32, i64) -> bool,
        progress: &ProgressBar,
    ) -> Result<(), SinkError> {
        self.at_end.clear();
        let mut pending: Vec<OwnedMessage> = Vec::with_capacity(BATCH);
        loop {
            let done = self
                .position
                .iter()
                .all(|(p, pos)| reached(*p, *pos) || self.at_end.get(p) == Some(&true));
            if done || pending.len() >= BATCH {
                self.apply(client, table, &pending).await?;
                progress.inc(pending.len() as u64);
                pending.clear();
                if done {
                    return Ok(());
                }
            }
            match tokio::time::timeout(Duration::from_millis(200), self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    // Everything read is applied, even past the target: being
                    // ahead of the live sink is harmless (its version guard skips
                    // what the table already reflects), skipping would lose events.
                    self.position
                        .insert(message.partition(), message.offset() + 1);
                    self.at_end.insert(message.partition(), false);
                    pending.push(message.detach());
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    self.at_end.insert(partition, true);
                }
                Ok(Err(error)) => return Err(error.into()),
                Err(_) => {}
            }
        }
    }

    async fn apply(
        &mut self,
        client: &impl GenericClient,
        table: &str,
        messages: &[OwnedMessage],
    ) -> Result<(), SinkError> {
        let mut events: Vec<(AuctionEvent, EventEnvelope)> = Vec::with_capacity(messages.len());
        for message in messages {
            match batch::decode_event(&self.codec, message).await {
                Ok(decoded) => events.push(decoded),
                Err(reason) => {
                    self.report.skipped += 1;
                    batch::log_skipped(
                        message,
                        &reason.to_string(),
                        "undecodable event skipped by rebuild",
                    );
                }
            }
        }
        let rows = reduce_events(client, table, &events).await?;
        self.report.rows += sql::upsert(client, table, &rows.values().collect::<Vec<_>>()).await?;
        self.report.events += events.len() as u64;
        Ok(())
    }
}
