//! `gavel rebuild <view>`: replays the view's compacted topic from offset 0
//! into a shadow table while the live table keeps serving, then swaps the two
//! in one Postgres transaction.
//!
//! The shadow is built exactly up to the offsets the live sink has stored for
//! that topic, never past them: first to where the live sink stood when the
//! rebuild began, then, holding the table's swap lock (which stops the live
//! sink's writes for that instant), to where it stands now. Records read ahead
//! of the target are held back, not applied, so after the swap the live sink
//! resumes on the new table exactly where the new table stands. Readers see the
//! old table or the new one, never a half-built one.

use super::changes::Changes;
use super::{migrations, View};
use crate::{batch, SinkError};
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
    pub records: u64,
    pub rows: u64,
    pub skipped: u64,
    pub elapsed: Duration,
}

impl RebuildReport {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Replay {
    view: View,
    view_topic: String,
    consumer: StreamConsumer<EofAware>,
    /// Next offset per partition after the last record applied.
    position: HashMap<i32, i64>,
    /// Records read past the current target, applied by a later phase.
    held: Vec<OwnedMessage>,
    report: RebuildReport,
}

pub async fn rebuild(config: &Config, view: View) -> Result<RebuildReport, SinkError> {
    let started = Instant::now();
    let mut client = postgres::connect(config).await?;
    postgres::migrate(&mut client, &config.postgres_schema, &migrations()).await?;
    let live = view.table(&config.postgres_schema);
    let shadow = format!("{live}_rebuild");
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {shadow}; CREATE TABLE {shadow} (LIKE {live} INCLUDING ALL)"
        ))
        .await?;
    let mut replay = Replay::open(config, view)?;
    let targets = stored_offsets(&client, config, view).await?;
    let progress = progress_bar(targets.values().map(|o| (*o).max(0) as u64).sum());
    replay.run(&client, &shadow, &targets, &progress).await?;

    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&view.swap_lock_key(&config.postgres_schema)],
    )
    .await?;
    let targets = stored_offsets(&tx, config, view).await?;
    progress.set_length(targets.values().map(|o| (*o).max(0) as u64).sum());
    replay.run(&tx, &shadow, &targets, &progress).await?;
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
        ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// The live sink's stored next offsets for the view's topic.
async fn stored_offsets(
    client: &impl GenericClient,
    config: &Config,
    view: View,
) -> Result<HashMap<i32, i64>, SinkError> {
    let rows = client
        .query(
            &format!(
                "SELECT partition, next_offset FROM {}.sink_offsets WHERE consumer_group = $1 AND topic = $2",
                config.postgres_schema
            ),
            &[&config.sink_group, &view.topic(config)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)))
        .collect())
}

impl Replay {
    /// A consumer on every partition of the view's topic, from the beginning.
    fn open(config: &Config, view: View) -> Result<Self, SinkError> {
        let topic = view.topic(config);
        let client = kafka::replay_config(config, &format!("{}-rebuild", config.sink_group));
        let consumer: StreamConsumer<EofAware> = client.create_with_context(EofAware)?;
        let partitions = kafka::partition_count(config, topic)?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        Ok(Replay {
            view,
            view_topic: topic.to_owned(),
            consumer,
            position: (0..partitions).map(|p| (p, 0)).collect(),
            held: Vec::new(),
            report: RebuildReport::default(),
        })
    }

    fn reached(&self, targets: &HashMap<i32, i64>) -> bool {
        self.position
            .iter()
            .all(|(p, pos)| *pos >= targets.get(p).copied().unwrap_or(0))
    }

    /// Applies records to `table` until every partition stands at its target.
    async fn run(
        &mut self,
        client: &impl GenericClient,
        table: &str,
        targets: &HashMap<i32, i64>,
        progress: &ProgressBar,
    ) -> Result<(), SinkError> {
        let below =
            |m: &OwnedMessage| m.offset() < targets.get(&m.partition()).copied().unwrap_or(0);
        let (ready, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.held).into_iter().partition(below);
        self.held = later;
        for message in &ready {
            self.position
                .insert(message.partition(), message.offset() + 1);
        }
        let mut pending = ready;
        loop {
            let done = self.reached(targets);
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
                    let message = message.detach();
                    if below(&message) {
                        self.position
                            .insert(message.partition(), message.offset() + 1);
                        pending.push(message);
                    } else {
                        // Everything before it has been read: its partition is
                        // at the target even if compaction or transaction
                        // markers left no record at the target offset itself.
                        self.passed(message.partition(), targets);
                        self.held.push(message);
                    }
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    // An end-of-partition event may be stale: queued before
                    // this phase's higher target was read. Only the consumer's
                    // actual position can say the target was reached.
                    if self.fetched_to(partition) >= targets.get(&partition).copied().unwrap_or(0) {
                        self.passed(partition, targets);
                    }
                }
                Ok(Err(error)) => return Err(error.into()),
                Err(_) => {}
            }
        }
    }

    /// The next offset the consumer fetches on `partition` (0 when unknown).
    fn fetched_to(&self, partition: i32) -> i64 {
        let topic = self.view_topic.as_str();
        let Ok(list) = self.consumer.position() else {
            return 0;
        };
        match list.find_partition(topic, partition).map(|e| e.offset()) {
            Some(Offset::Offset(next)) => next,
            _ => 0,
        }
    }

    /// Marks `partition` as read up to its target.
    fn passed(&mut self, partition: i32, targets: &HashMap<i32, i64>) {
        let target = targets.get(&partition).copied().unwrap_or(0);
        let position = self.position.entry(partition).or_insert(0);
        *position = (*position).max(target);
    }

    async fn apply(
        &mut self,
        client: &impl GenericClient,
        table: &str,
        messages: &[OwnedMessage],
    ) -> Result<(), SinkError> {
        let mut changes = Changes::default();
        for message in messages {
            if let Err(reason) = changes.add(self.view, message) {
                self.report.skipped += 1;
                batch::log_skipped(
                    message,
                    &reason,
                    "unreadable view record skipped by rebuild",
                );
            }
        }
        self.report.rows += changes.write(client, self.view, table).await?;
        self.report.records += messages.len() as u64;
        Ok(())
    }
}
