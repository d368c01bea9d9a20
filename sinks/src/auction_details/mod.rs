//! `gavel sink`: materializes `auction.events` into the `auction_details` table.
//! Each batch: decode, reduce per auction with the pure reducer, one multi-row
//! version-guarded upsert plus the consumed offsets in one Postgres transaction,
//! then a best-effort Kafka commit so lag dashboards stay true.

mod sql;
pub mod verify;

pub use sql::migrations;

use crate::offsets::OffsetStore;
use crate::SinkError;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::views::{AuctionDetails, EventMeta};
use gavel_runtime::auction_codec::event_from_avro;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::EventEnvelope;
use gavel_runtime::kafka::{self, RevocationLog};
use gavel_runtime::{postgres, Config, Shutdown};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

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
    consumer: StreamConsumer<RevocationLog>,
    offsets: OffsetStore,
    stats: SinkStats,
}

pub async fn run(config: Config, shutdown: Shutdown) -> Result<SinkStats, SinkError> {
    let mut client = postgres::connect(&config).await?;
    postgres::migrate(&mut client, &config.postgres_schema, &migrations()).await?;
    let consumer: StreamConsumer<RevocationLog> =
        kafka::consumer_config(&config, &config.sink_group)
            .create_with_context(RevocationLog::default())?;
    consumer.subscribe(&[&config.topics.events])?;
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
        consumer,
        offsets,
        stats: SinkStats::default(),
    };
    tracing::info!(topic = %sink.config.topics.events, schema = %sink.config.postgres_schema, "auction_details sink started");
    while !shutdown.is_triggered() {
        let batch = sink.collect(&shutdown).await;
        sink.write(batch).await?;
        for partition in sink.consumer.context().take() {
            sink.offsets.forget(partition);
        }
    }
    tracing::info!(stats = ?sink.stats, "auction_details sink stopped");
    Ok(sink.stats)
}

impl Sink {
    /// Up to `batch_max` records, waiting at most `batch_linger` after the first.
    async fn collect(&mut self, shutdown: &Shutdown) -> Vec<OwnedMessage> {
        let mut batch = Vec::new();
        let mut deadline = Instant::now() + Duration::from_millis(200);
        while batch.len() < self.config.batch_max {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                received = tokio::time::timeout(left, self.consumer.recv()) => match received {
                    Ok(Ok(message)) => {
                        if batch.is_empty() {
                            deadline = Instant::now() + self.config.batch_linger;
                        }
                        batch.push(message.detach());
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "consumer error"),
                    Err(_) => break,
                },
                _ = shutdown.triggered() => break,
            }
        }
        batch
    }

    async fn write(&mut self, batch: Vec<OwnedMessage>) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut next_offsets: HashMap<i32, i64> = HashMap::new();
        let mut events: Vec<(AuctionEvent, EventEnvelope)> = Vec::with_capacity(batch.len());
        for message in &batch {
            let stored_next = self
                .offsets
                .next_offset(&self.client, message.partition())
                .await?;
            next_offsets.insert(message.partition(), message.offset() + 1);
            if message.offset() < stored_next {
                self.stats.skipped_replays += 1;
                continue;
            }
            match self.decode(message).await {
                Ok(decoded) => events.push(decoded),
                Err(reason) => {
                    self.stats.undecodable += 1;
                    tracing::warn!(topic = message.topic(), partition = message.partition(),
                        offset = message.offset(), %reason, "undecodable event skipped");
                }
            }
        }
        let rows = self.reduce(&events).await?;
        let tx = self.client.transaction().await?;
        let written = sql::upsert(
            &tx,
            &self.config.postgres_schema,
            &rows.values().collect::<Vec<_>>(),
        )
        .await?;
        self.offsets.save(&tx, &next_offsets).await?;
        tx.commit().await?;
        self.offsets.remember(&next_offsets);
        self.stats.events += events.len() as u64;
        self.stats.rows_written += written;
        self.stats.batches += 1;
        self.commit_to_kafka(&next_offsets);
        Ok(())
    }

    async fn decode(
        &self,
        message: &OwnedMessage,
    ) -> Result<(AuctionEvent, EventEnvelope), String> {
        let payload = message.payload().ok_or("record has no payload")?;
        let decoded = self
            .codec
            .decode(payload)
            .await
            .map_err(|e| e.to_string())?;
        event_from_avro(&decoded.schema.name, decoded.value).map_err(|e| e.to_string())
    }

    /// Loads the touched rows once, then folds the batch's events into them in order.
    async fn reduce(
        &self,
        events: &[(AuctionEvent, EventEnvelope)],
    ) -> Result<HashMap<String, AuctionDetails>, SinkError> {
        let mut ids: Vec<&str> = events
            .iter()
            .map(|(_, e)| e.aggregate_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut rows: HashMap<String, AuctionDetails> =
            sql::load(&self.client, &self.config.postgres_schema, &ids)
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

    fn commit_to_kafka(&self, offsets: &HashMap<i32, i64>) {
        let mut list = TopicPartitionList::new();
        for (partition, next) in offsets {
            if let Err(error) = list.add_partition_offset(
                &self.config.topics.events,
                *partition,
                Offset::Offset(*next),
            ) {
                tracing::warn!(%error, "offset list");
            }
        }
        if let Err(error) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(%error, "kafka offset commit failed (postgres holds the truth)");
        }
    }
}
