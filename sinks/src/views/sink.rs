//! The live view sink loop.

use super::changes::{read_row, Changes};
use super::{migrations, View};
use crate::batch::{self, BatchSource};
use crate::offsets::OffsetStore;
use crate::SinkError;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::dlq::{self, DeadLetter, DeadLetters, ErrorClass};
use gavel_runtime::envelope::{header, header_str};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::{Config, Shutdown};
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
    /// Records whose row Postgres (or its column) refused: dead-lettered.
    pub refused: u64,
}

struct Sink {
    config: Config,
    client: Client,
    source: BatchSource,
    offsets: HashMap<View, OffsetStore>,
    dead_letters: DeadLetters,
    /// Admits only the view topics' schemas.
    codec: AvroCodec,
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
    let codec = AvroCodec::for_topics(&config.registry, &config.topics.views());
    let mut sink = Sink {
        config,
        client,
        source,
        offsets,
        dead_letters,
        codec,
        readiness,
        stats: SinkStats::default(),
    };
    sink.readiness.set_started();
    tracing::info!(topics = ?sink.config.topics.views(), schema = %sink.config.postgres_schema, "view sink started");
    let served = serve(&mut sink, &shutdown).await;
    // Leave on a failure too: a replacement with the same instance id must
    // join as a new member, not inherit a half-done cooperative rebalance.
    sink.source.leave().await;
    served?;
    tracing::info!(stats = ?sink.stats, "view sink stopped");
    Ok(sink.stats)
}

async fn serve(sink: &mut Sink, shutdown: &Shutdown) -> Result<(), SinkError> {
    while !shutdown.is_triggered() {
        sink.readiness.beat();
        let batch = sink.source.collect(shutdown).await;
        // Postgres restarts and failovers: reconnect and write the same batch
        // again; the offsets stored with the rows tell what already committed.
        batch::retrying(sink, shutdown, &batch, |sink, batch, _| {
            Box::pin(sink.write(batch))
        })
        .await?;
        if !sink.source.revoked().is_empty() {
            sink.forget_offsets();
        }
    }
    Ok(())
}

/// A batch sorted: the newest change per view id, where each came from, the
/// records that cannot be read, and the offsets to store per view partition.
struct Sorted<'a> {
    changes: Changes,
    origins: HashMap<(View, String), &'a OwnedMessage>,
    unreadable: Vec<(&'a OwnedMessage, String)>,
    /// Per view partition: the next offset and the source position of the
    /// last record applied. Redelivered records (below the stored offset)
    /// change neither, so a redelivery never moves the stored offset back.
    next_offsets: HashMap<View, HashMap<i32, (i64, Option<i64>)>>,
}

impl batch::PostgresStage for Sink {
    fn client(&self) -> &Client {
        &self.client
    }

    fn reconnected(&mut self, client: Client) {
        self.client = client;
        self.forget_offsets();
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    fn metrics(&self) -> &'static metrics::Stage {
        metrics::sink()
    }
}

impl Sink {
    fn forget_offsets(&mut self) {
        for store in self.offsets.values_mut() {
            store.forget_all();
        }
    }

    /// One transaction: every view's rows (a row Postgres refuses is
    /// narrowed out and dead-lettered with its record's coordinates) and the
    /// offsets of the whole batch.
    async fn write(&mut self, batch: &[OwnedMessage]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let stage = metrics::sink();
        let sorted = self.sort(batch).await?;
        // Acknowledged before the rows and offsets commit: a crash in between
        // repeats a letter (same original coordinates), never loses one.
        for (message, reason) in &sorted.unreadable {
            let letter = DeadLetter::of(message, ErrorClass::Undecodable, reason);
            self.dead_letters.send(&letter).await?;
            stage.dead_letters.with_label_values(&["undecodable"]).inc();
        }
        let schema = &self.config.postgres_schema;
        let mut tx = self.client.transaction().await?;
        let mut refused = Vec::new();
        for view in View::ALL {
            let Some(offsets) = sorted.next_offsets.get(&view) else {
                continue;
            };
            tx.execute(
                "SELECT pg_advisory_xact_lock_shared($1)",
                &[&view.swap_lock_key(schema)],
            )
            .await?;
            let written = sorted
                .changes
                .write_narrowing(&mut tx, view, &view.table(schema))
                .await?;
            self.stats.rows_written += written.rows;
            refused.extend(
                written
                    .refused
                    .into_iter()
                    .map(|(key, why)| (view, key, why)),
            );
            if let Some(store) = self.offsets.get_mut(&view) {
                store.save_with_sources(&tx, offsets).await?;
            }
        }
        for (view, key, reason) in &refused {
            let Some(message) = sorted.origins.get(&(*view, key.clone())) else {
                continue;
            };
            batch::log_skipped(
                message,
                reason,
                "view record refused by postgres dead-lettered",
            );
            let letter = DeadLetter::of(message, ErrorClass::Invalid, reason);
            self.dead_letters.send(&letter).await?;
            stage.dead_letters.with_label_values(&["invalid"]).inc();
        }
        tx.commit().await?;
        self.stats.refused += refused.len() as u64;
        self.stats.batches += 1;
        stage.consumed.inc_by(batch.len() as u64);
        stage.batch_records.observe(batch.len() as f64);
        stage.batch_seconds.observe(started.elapsed().as_secs_f64());
        for (view, offsets) in &sorted.next_offsets {
            let offsets: HashMap<i32, i64> = offsets.iter().map(|(p, (o, _))| (*p, *o)).collect();
            if let Some(store) = self.offsets.get_mut(view) {
                store.remember(&offsets);
            }
            self.source.commit_topic(view.topic(&self.config), &offsets);
        }
        Ok(())
    }

    /// Drops what Postgres already has, folds the rest into changes.
    async fn sort<'a>(&mut self, batch: &'a [OwnedMessage]) -> Result<Sorted<'a>, SinkError> {
        let mut sorted = Sorted {
            changes: Changes::default(),
            origins: HashMap::new(),
            unreadable: Vec::new(),
            next_offsets: HashMap::new(),
        };
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
            let positions = sorted.next_offsets.entry(view).or_default();
            let earlier_source = positions.get(&message.partition()).and_then(|(_, s)| *s);
            positions.insert(
                message.partition(),
                (
                    message.offset() + 1,
                    source_next_offset(message).or(earlier_source),
                ),
            );
            self.stats.records += 1;
            let read = match read_row(&self.codec, view, message).await? {
                Ok(row) => sorted.changes.add(view, message, row),
                Err(reason) => Err(reason),
            };
            match read {
                Ok(key) => {
                    sorted.origins.insert((view, key), message);
                }
                Err(reason) => {
                    self.stats.undecodable += 1;
                    batch::log_skipped(message, &reason, "unreadable view record dead-lettered");
                    sorted.unreadable.push((message, reason));
                }
            }
        }
        Ok(sorted)
    }
}

/// One past the event-topic offset the record was projected from.
fn source_next_offset(message: &OwnedMessage) -> Option<i64> {
    let offset = header_str(message.headers()?, header::SOURCE_OFFSET)?;
    offset.parse::<i64>().ok().map(|o| o + 1)
}
