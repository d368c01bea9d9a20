//! `gavel sink`: materializes `auction.events` into the `auction_details` table.
//! Each batch: decode, reduce per auction with the pure reducer, one multi-row
//! version-guarded upsert plus the consumed offsets in one Postgres transaction,
//! then a best-effort Kafka commit so lag dashboards stay true.

pub mod rebuild;
mod sql;
pub mod verify;

pub use sql::migrations;

use crate::batch::{self, BatchSource};
use crate::offsets::OffsetStore;
use crate::SinkError;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::views::{AuctionDetails, EventMeta};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::EventEnvelope;
use gavel_runtime::{postgres, Config, Shutdown};
use rdkafka::message::OwnedMessage;
use std::collections::HashMap;
use tokio_postgres::{Client, GenericClient};

#[derive(Debug, Default, Clone)]
pub struct SinkStats {
    pub events: u64,
    pub rows_written: u64,
    pub batches: u64,
    pub skipped_replays: u64,
    pub undecodable: u64,
}

struct Sink {
    config: Config,
    codec: AvroCodec,
    client: Client,
    source: BatchSource,
    offsets: OffsetStore,
    stats: SinkStats,
}

pub async fn run(config: Config, shutdown: Shutdown) -> Result<SinkStats, SinkError> {
    let mut client = postgres::connect(&config).await?;
    postgres::migrate(&mut client, &config.postgres_schema, &migrations()).await?;
    let source = BatchSource::subscribe(&config, &config.sink_group, &config.topics.events)?;
    let offsets = OffsetStore::new(
        &config.postgres_schema,
        &config.sink_group,
        &config.topics.events,
    );
    let codec = AvroCodec::new(&config.registry_url);
    let mut sink = Sink {
        config,
        codec,
        client,
        source,
        offsets,
        stats: SinkStats::default(),
    };
    tracing::info!(topic = %sink.config.topics.events, schema = %sink.config.postgres_schema, "auction_details sink started");
    while !shutdown.is_triggered() {
        let batch = sink.source.collect(&shutdown).await;
        sink.write_surviving_postgres_outages(&batch, &shutdown)
            .await?;
        for partition in sink.source.revoked() {
            sink.offsets.forget(partition);
        }
    }
    tracing::info!(stats = ?sink.stats, "auction_details sink stopped");
    Ok(sink.stats)
}

impl Sink {
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
                    self.client = batch::reconnect(&self.config, shutdown)
                        .await
                        .ok_or(error)?;
                    self.offsets.forget_all();
                }
                other => return other,
            }
        }
    }

    async fn write(&mut self, batch: &[OwnedMessage]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let fresh = batch::unapplied(&mut self.offsets, &self.client, batch).await?;
        self.stats.skipped_replays += fresh.replays;
        let next_offsets = fresh.next_offsets;
        let mut events: Vec<(AuctionEvent, EventEnvelope)> = Vec::with_capacity(batch.len());
        for message in fresh.records {
            match batch::decode_event(&self.codec, message).await {
                Ok(decoded) => events.push(decoded),
                Err(reason) => {
                    self.stats.undecodable += 1;
                    batch::log_skipped(message, &reason.to_string(), "undecodable event skipped");
                }
            }
        }
        let table = sql::live_table(&self.config.postgres_schema);
        let rows = reduce_events(&self.client, &table, &events).await?;
        let tx = self.client.transaction().await?;
        let lock = swap_lock_key(&self.config.postgres_schema);
        tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&lock])
            .await?;
        let written = sql::upsert(&tx, &table, &rows.values().collect::<Vec<_>>()).await?;
        self.offsets.save(&tx, &next_offsets).await?;
        tx.commit().await?;
        self.offsets.remember(&next_offsets);
        self.stats.events += events.len() as u64;
        self.stats.rows_written += written;
        self.stats.batches += 1;
        self.source.commit(&next_offsets);
        Ok(())
    }
}

/// Loads the rows the events touch from `table` once, then folds the events
/// into them in order with the pure reducer. Used by the live sink and rebuild.
pub(crate) async fn reduce_events(
    client: &impl GenericClient,
    table: &str,
    events: &[(AuctionEvent, EventEnvelope)],
) -> Result<HashMap<String, AuctionDetails>, SinkError> {
    let mut ids: Vec<&str> = events
        .iter()
        .map(|(_, e)| e.aggregate_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows: HashMap<String, AuctionDetails> = sql::load(client, table, &ids)
        .await?
        .into_iter()
        .map(|row| (row.auction_id.to_string(), row))
        .collect();
    for (event, envelope) in events {
        let meta = EventMeta {
            aggregate_id: envelope.aggregate_id.clone(),
            tenant_id: envelope.tenant_id.clone(),
            version: envelope.aggregate_version,
            occurred_at: envelope.occurred_at,
        };
        let key = envelope.aggregate_id.as_str();
        if let Some(updated) = AuctionDetails::reduce(rows.remove(key), &meta, event) {
            rows.insert(key.to_owned(), updated);
        }
    }
    Ok(rows)
}

/// Every write to the live table holds this lock shared; a rebuild holds it
/// exclusively for the instant it swaps the tables, so no batch straddles it.
pub(crate) fn swap_lock_key(schema: &str) -> i64 {
    postgres::advisory_key(&sql::live_table(schema))
}
