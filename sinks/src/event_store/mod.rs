//! `gavel event-store`: appends every event of `auction.events` exactly once to
//! the `events` table, hash-chained per aggregate so tampering is detectable.
//! Each batch: drop what Postgres already has (stored offsets), decode, chain
//! onto the stored hashes, then one multi-row insert plus the consumed offsets
//! in one Postgres transaction, then a best-effort Kafka commit.

mod audit;
mod chain;
mod instant;
mod payload;
mod row;
mod source;
mod sql;

pub use audit::{state_as_of, verify, AuditReport};
pub use instant::parse_instant;
pub use source::{read_range, rows_without_source, StoredEvent};
pub use sql::migrations;

use crate::batch::{self, BatchSource};
use crate::narrow;
use crate::offsets::OffsetStore;
use crate::SinkError;
use chain::NewEvent;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::dlq::{self, DeadLetter, DeadLetters, ErrorClass};
use gavel_runtime::envelope::{header, header_str};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::{Config, Shutdown};
use rdkafka::message::{Message, OwnedMessage};
use row::{message_of, to_row};
use std::collections::HashSet;
use std::time::Duration;
use tokio_postgres::Client;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventStoreStats {
    /// Rows inserted into `events`.
    pub appended: u64,
    /// Events already in the store (redelivered past the offset check).
    pub duplicates: u64,
    /// Records below the stored offsets, dropped before decoding.
    pub skipped_replays: u64,
    /// Poison records: sent to the event topic's DLQ, logged, skipped.
    pub undecodable: u64,
    /// Events whose predecessor version is missing: refused, dead-lettered
    /// (class `history-gap`), logged as errors.
    pub gaps: u64,
    /// Events Postgres refused (a time out of its range, ...): dead-lettered
    /// (class `invalid`), and their successors then refused as gaps.
    pub refused: u64,
    pub batches: u64,
}

/// The event store's own consumer group (and key of its stored offsets).
pub fn consumer_group(config: &Config) -> String {
    format!("{}-event-store", config.sink_group)
}

struct EventStore {
    schema: String,
    topic: String,
    codec: AvroCodec,
    client: Client,
    config: Config,
    source: BatchSource,
    offsets: OffsetStore,
    stats: EventStoreStats,
    dead_letters: DeadLetters,
    readiness: Readiness,
}

/// [`run_with`] without probes (tests, the demo).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<EventStoreStats, SinkError> {
    run_with(config, shutdown, Readiness::new("event-store")).await
}

/// Runs until `shutdown`, reporting Postgres and registry outages to `readiness`.
pub async fn run_with(
    config: Config,
    shutdown: Shutdown,
    readiness: Readiness,
) -> Result<EventStoreStats, SinkError> {
    let group = consumer_group(&config);
    let topic = config.topics.events.clone();
    dlq::require_topics(&config, &[&topic]).await?;
    let client = batch::connect_migrated(&config, &migrations(), &shutdown).await?;
    let mut store = EventStore {
        config: config.clone(),
        source: BatchSource::subscribe(&config, &group, &topic)?,
        offsets: OffsetStore::new(&config.postgres_schema, &group, &topic),
        codec: AvroCodec::for_topics(&config.registry, &[&config.topics.events]),
        schema: config.postgres_schema.clone(),
        dead_letters: DeadLetters::new(&config, &format!("event-store/{}", config.instance_id))?,
        readiness,
        topic,
        client,
        stats: EventStoreStats::default(),
    };
    tracing::info!(topic = %store.topic, schema = %store.schema, %group, "event store sink started");
    store.readiness.set_started();
    let served = serve(&mut store, &shutdown).await;
    // Leave on a failure too (see the view sink).
    store.source.leave().await;
    served?;
    tracing::info!(stats = ?store.stats, "event store sink stopped");
    Ok(store.stats)
}

async fn serve(store: &mut EventStore, shutdown: &Shutdown) -> Result<(), SinkError> {
    while !shutdown.is_triggered() {
        store.readiness.beat();
        let batch = store.source.collect(shutdown).await;
        let started = std::time::Instant::now();
        // Postgres restarts and failovers: reconnect and write the same batch
        // again; the offsets stored with the rows tell what already committed.
        batch::retrying(store, shutdown, &batch, |store, batch, shutdown| {
            Box::pin(store.write(batch, shutdown))
        })
        .await?;
        if !batch.is_empty() {
            let stage = metrics::event_store();
            stage.consumed.inc_by(batch.len() as u64);
            stage.batch_records.observe(batch.len() as f64);
            stage.batch_seconds.observe(started.elapsed().as_secs_f64());
        }
        for partition in store.source.revoked() {
            store.offsets.forget(partition);
        }
    }
    Ok(())
}

impl batch::PostgresStage for EventStore {
    fn client(&self) -> &Client {
        &self.client
    }

    fn reconnected(&mut self, client: Client) {
        self.client = client;
        self.offsets.forget_all();
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    fn metrics(&self) -> &'static metrics::Stage {
        metrics::event_store()
    }
}

impl EventStore {
    async fn write(
        &mut self,
        batch: &[OwnedMessage],
        shutdown: &Shutdown,
    ) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let fresh = batch::unapplied(&mut self.offsets, &self.client, batch).await?;
        let Some(mut events) = self.decode_all(&fresh.records, shutdown).await? else {
            // Shut down while the registry was away: nothing was stored, so the
            // next run starts from the stored offsets and loses nothing.
            return Ok(());
        };
        // Each round chains what is left onto the stored hashes and appends
        // it. A round in which Postgres refuses rows is undone, the refused
        // events are dead-lettered, and the next round chains the rest again:
        // a refused event's successors are then gaps, never linked to a hash
        // the store does not hold.
        let schema = self.schema.clone();
        loop {
            let known = sql::known_hashes(&self.client, &schema, &events).await?;
            let chained = chain::chain(events, known);
            for gap in &chained.gaps {
                self.refuse_gap(gap, &fresh.records).await?;
            }
            self.stats.duplicates += chained.duplicates;
            let mut tx = self.client.transaction().await?;
            let narrowed =
                narrow::write_narrowing(&mut tx, &schema, &chained.rows, |tx, schema, rows| {
                    Box::pin(sql::append(tx, schema, rows))
                })
                .await?;
            if narrowed.refused.is_empty() {
                self.offsets.save(&tx, &fresh.next_offsets).await?;
                tx.commit().await?;
                self.committed(&fresh, chained.rows.len() as u64, narrowed.written);
                return Ok(());
            }
            tx.rollback().await?;
            let refused: HashSet<usize> = narrowed.refused.iter().map(|r| r.index).collect();
            for refusal in &narrowed.refused {
                let event = &chained.rows[refusal.index].event;
                let message = message_of(&fresh.records, event)?;
                self.stats.refused += 1;
                self.dead_letter(message, ErrorClass::Invalid, &refusal.reason)
                    .await?;
            }
            events = chained
                .rows
                .into_iter()
                .enumerate()
                .filter(|(index, _)| !refused.contains(index))
                .map(|(_, row)| row.event)
                .collect();
        }
    }

    fn committed(&mut self, fresh: &batch::Unapplied<'_>, rows: u64, appended: u64) {
        let stage = metrics::event_store();
        stage.transactions.with_label_values(&["commit"]).inc();
        stage.produced.inc_by(appended);
        self.offsets.remember(&fresh.next_offsets);
        self.stats.skipped_replays += fresh.replays;
        self.stats.appended += appended;
        // A conflict on (aggregate, version): another writer got there first.
        self.stats.duplicates += rows - appended;
        self.stats.batches += 1;
        self.source.commit(&fresh.next_offsets);
    }

    /// Poison records go to the DLQ (acknowledged before the batch's offsets
    /// commit, so none is lost); `None` if shut down meanwhile.
    async fn decode_all(
        &mut self,
        records: &[&OwnedMessage],
        shutdown: &Shutdown,
    ) -> Result<Option<Vec<NewEvent>>, SinkError> {
        let mut events = Vec::with_capacity(records.len());
        for message in records {
            let traceparent = message
                .headers()
                .and_then(|h| header_str(h, header::TRACEPARENT));
            // Debug level: an info span per event would cost its formatting on the hot path.
            let span = tracing::debug_span!(
                "event",
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                traceparent = traceparent.unwrap_or("")
            );
            let decoding = self.decode_patiently(message, shutdown);
            let Some(decoded) = tracing::Instrument::instrument(decoding, span.clone()).await
            else {
                return Ok(None);
            };
            match decoded {
                Ok(event) => events.push(event),
                Err((class, reason)) => {
                    self.stats.undecodable += 1;
                    let sending = self.dead_letter(message, class, &reason);
                    tracing::Instrument::instrument(sending, span).await?;
                }
            }
        }
        Ok(Some(events))
    }

    /// An event that cannot be chained goes to the DLQ (before the batch's
    /// offsets commit), so replaying the letters in order once its missing
    /// predecessor is stored completes the history instead of losing it.
    async fn refuse_gap(
        &mut self,
        gap: &NewEvent,
        records: &[&OwnedMessage],
    ) -> Result<(), SinkError> {
        let reason = format!(
            "version {} of {} refused: version {} is not in the store (gap in the history)",
            gap.version,
            gap.aggregate_id,
            gap.version - 1
        );
        let message = message_of(records, gap)?;
        self.stats.gaps += 1;
        self.dead_letter(message, ErrorClass::HistoryGap, &reason)
            .await
    }

    async fn dead_letter(
        &mut self,
        message: &OwnedMessage,
        class: ErrorClass,
        reason: &str,
    ) -> Result<(), SinkError> {
        let stage = metrics::event_store();
        stage.errors.with_label_values(&[class.as_str()]).inc();
        stage
            .dead_letters
            .with_label_values(&[class.as_str()])
            .inc();
        let header = |key| {
            message
                .headers()
                .and_then(|h| header_str(h, key))
                .unwrap_or("")
        };
        tracing::warn!(topic = message.topic(), partition = message.partition(),
            offset = message.offset(), class = class.as_str(), %reason,
            aggregate_id = header(header::AGGREGATE_ID),
            correlation_id = header(header::CORRELATION_ID),
            causation_id = header(header::CAUSATION_ID),
            traceparent = header(header::TRACEPARENT), "event dead-lettered");
        self.dead_letters
            .send(&DeadLetter::of(message, class, reason))
            .await?;
        Ok(())
    }

    /// A registry outage is waited out rather than treated as poison: skipping
    /// a good event would leave a hole no later event of its auction can chain over.
    async fn decode_patiently(
        &self,
        message: &OwnedMessage,
        shutdown: &Shutdown,
    ) -> Option<Result<NewEvent, (ErrorClass, String)>> {
        let mut pause = Duration::from_millis(250);
        loop {
            match batch::decode_event(&self.codec, message).await {
                Ok((event, envelope)) => {
                    self.readiness.set_dependency("schema-registry", Ok(()));
                    return Some(
                        to_row(&event, &envelope, message).map_err(|r| (ErrorClass::Invalid, r)),
                    );
                }
                Err(error) => match ErrorClass::of(&error) {
                    Some(class) => return Some(Err((class, error.to_string()))),
                    None => {
                        tracing::warn!(%error, ?pause, partition = message.partition(),
                            offset = message.offset(), "schema registry unavailable, retrying");
                        metrics::event_store()
                            .retries
                            .with_label_values(&["registry-unavailable"])
                            .inc();
                        self.readiness
                            .set_dependency("schema-registry", Err(error.to_string()));
                        self.readiness.beat();
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = shutdown.triggered() => return None,
                        }
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                },
            }
        }
    }
}
