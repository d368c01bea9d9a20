//! The live view sink loop.

use super::changes::Changes;
use super::{migrations, View};
use crate::batch::{self, BatchSource};
use crate::offsets::OffsetStore;
use crate::SinkError;
use gavel_runtime::dlq::{self, DeadLetter, DeadLetters, ErrorClass};
use gavel_runtime::envelope::{header, header_str};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::{postgres, Config, Shutdown};
use rdkafka::message::{Message, OwnedMessage};
use std::collections::HashMap;
use std::time::Instant;
use tokio_postgres::Client;

#[derive(Debug, Default, Clone)]
pub struct SinkStats {
    pub records: u64,
    pub rows_written: u64,
    pub batches: u64,
    pub skipped_replays: u64,
    pub undecodable: u64,
}

struct Sink {
    config: Config,
    client: Client,
    source: BatchSource,
    offsets: HashMap<View, OffsetStore>,
    dead_letters: DeadLetters,
    readiness: Readiness,
    stats: SinkStats,
}

pub async fn run(config: Config, shutdown: Shutdown) -> Result<SinkStats, SinkError> {
    run_with(config, shutdown, Readiness::new("sink")).await
}

/// `run`, reporting Postgres outages to `readiness`.
pub async fn run_with(
    config: Config,
    shutdown: Shutdown,
    readiness: Readiness,
) -> Result<SinkStats, SinkError> {
    dlq::require_topics(&config, &config.topics.views()).await?;
    let dead_letters = DeadLetters::new(&config, &format!("sink/{}", config.instance_id))?;
    let client = batch::connect_migrated(&config, &migrations(), &shutdown).await?;
    let source = BatchSource::subscribe_all(&config, &config.sink_group, &config.topics.views())?;
    let offsets = View::ALL
        .into_iter()
        .map(|view| {
            let store = OffsetStore::new(
                &config.postgres_schema,
                &config.sink_group,
                view.topic(&config),
            );
            (view, store)
        })
        .collect();
    let mut sink = Sink {
        config,
        client,
        source,
        offsets,
        dead_letters,
        readiness,
        stats: SinkStats::default(),
    };
    sink.readiness.set_started();
    tracing::info!(topics = ?sink.config.topics.views(), schema = %sink.config.postgres_schema, "view sink started");
    while !shutdown.is_triggered() {
        sink.readiness.beat();
        let batch = sink.source.collect(&shutdown).await;
        sink.write_surviving_postgres_outages(&batch, &shutdown)
            .await?;
        if !sink.source.revoked().is_empty() {
            sink.forget_offsets();
        }
    }
    tracing::info!(stats = ?sink.stats, "view sink stopped");
    Ok(sink.stats)
}

impl Sink {
    fn forget_offsets(&mut self) {
        for store in self.offsets.values_mut() {
            store.forget_all();
        }
    }

    /// Writes the batch; if Postgres went away (restart, failover), reconnects
    /// with backoff and writes the same batch again. The offsets stored with the
    /// rows tell whether the lost transaction had committed, so nothing is
    /// applied twice and nothing is lost.
    async fn write_surviving_postgres_outages(
        &mut self,
        batch: &[OwnedMessage],
        shutdown: &Shutdown,
    ) -> Result<(), SinkError> {
        loop {
            match self.write(batch).await {
                Err(error) if batch::needs_reconnect(&error, &self.client) => {
                    tracing::warn!(%error, "postgres unavailable: reconnecting and retrying the batch");
                    self.readiness
                        .set_dependency("postgres", Err(error.to_string()));
                    let reconnect = postgres::reconnect(&self.config, shutdown);
                    self.client = self.readiness.beating(reconnect).await.ok_or(error)?;
                    self.readiness.set_dependency("postgres", Ok(()));
                    self.forget_offsets();
                }
                other => return other,
            }
        }
    }

    async fn write(&mut self, batch: &[OwnedMessage]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let stage = metrics::sink();
        let mut changes = Changes::default();
        let mut unreadable = Vec::new();
        // Per view partition: the next offset and the source position of the
        // last record applied. Redelivered records (below the stored offset)
        // change neither, so a redelivery never moves the stored offset back.
        let mut next_offsets: HashMap<View, HashMap<i32, (i64, Option<i64>)>> = HashMap::new();
        for message in batch {
            let Some(view) = View::of_topic(&self.config, message.topic()) else {
                continue;
            };
            let Some(store) = self.offsets.get_mut(&view) else {
                continue;
            };
            let stored_next = store.next_offset(&self.client, message.partition()).await?;
            if message.offset() < stored_next {
                self.stats.skipped_replays += 1;
                continue;
            }
            let positions = next_offsets.entry(view).or_default();
            let earlier_source = positions.get(&message.partition()).and_then(|(_, s)| *s);
            positions.insert(
                message.partition(),
                (
                    message.offset() + 1,
                    source_next_offset(message).or(earlier_source),
                ),
            );
            self.stats.records += 1;
            if let Err(reason) = changes.add(view, message) {
                self.stats.undecodable += 1;
                batch::log_skipped(message, &reason, "unreadable view record dead-lettered");
                unreadable.push((message, reason));
            }
        }
        // Acknowledged before the rows and offsets commit: a crash in between
        // repeats a letter (same original coordinates), never loses one.
        for (message, reason) in &unreadable {
            let letter = DeadLetter::of(message, ErrorClass::Undecodable, reason);
            self.dead_letters.send(&letter).await?;
            stage.dead_letters.with_label_values(&["undecodable"]).inc();
        }
        let tx = self.client.transaction().await?;
        for view in View::ALL {
            let Some(offsets) = next_offsets.get(&view) else {
                continue;
            };
            let schema = &self.config.postgres_schema;
            tx.execute(
                "SELECT pg_advisory_xact_lock_shared($1)",
                &[&view.swap_lock_key(schema)],
            )
            .await?;
            self.stats.rows_written += changes.write(&tx, view, &view.table(schema)).await?;
            if let Some(store) = self.offsets.get_mut(&view) {
                store.save_with_sources(&tx, offsets).await?;
            }
        }
        tx.commit().await?;
        self.stats.batches += 1;
        stage.consumed.inc_by(batch.len() as u64);
        stage.batch_records.observe(batch.len() as f64);
        stage.batch_seconds.observe(started.elapsed().as_secs_f64());
        for (view, offsets) in &next_offsets {
            let offsets: HashMap<i32, i64> = offsets.iter().map(|(p, (o, _))| (*p, *o)).collect();
            if let Some(store) = self.offsets.get_mut(view) {
                store.remember(&offsets);
            }
            self.source.commit_topic(view.topic(&self.config), &offsets);
        }
        Ok(())
    }
}

/// One past the event-topic offset the record was projected from.
fn source_next_offset(message: &OwnedMessage) -> Option<i64> {
    let offset = header_str(message.headers()?, header::SOURCE_OFFSET)?;
    offset.parse::<i64>().ok().map(|o| o + 1)
}
