//! One consumer/producer pair running the read-process-write loop. Each batch is
//! one Kafka transaction: events, outcomes, changelog records and the consumed
//! offsets commit together or not at all. Any transaction failure ends the
//! session; the caller starts a fresh one from the last committed offsets.

use super::handler::{handle, malformed_outcome, Decision};
use super::store::{Pending, StateStore};
use super::stored::StoredAggregate;
use super::writers::Writers;
use crate::ProcessorError;
use gavel_domain::TenantId;
use gavel_domain::Timestamp;
use gavel_runtime::auction_codec::{
    command_from_avro, event_to_avro, outcome_to_avro, CommandOutcome,
};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::{header, header_str, CommandMeta};
use gavel_runtime::kafka::{self, RevocationLog};
use gavel_runtime::{Config, RuntimeError, Shutdown};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Session<'a> {
    config: &'a Config,
    codec: &'a AvroCodec,
    writers: &'a Writers,
    runtime: tokio::runtime::Handle,
    consumer: BaseConsumer<RevocationLog>,
    producer: ThreadedProducer<DefaultProducerContext>,
    store: StateStore,
    stats: &'a mut super::Stats,
}

/// Records of the open transaction.
#[derive(Default)]
struct Batch {
    pending: Pending,
    offsets: HashMap<i32, i64>,
    records: usize,
}

impl<'a> Session<'a> {
    pub fn start(
        config: &'a Config,
        codec: &'a AvroCodec,
        writers: &'a Writers,
        runtime: tokio::runtime::Handle,
        stats: &'a mut super::Stats,
    ) -> Result<Self, ProcessorError> {
        let transactional_id = format!("{}-{}", config.aggregate_group, config.instance_id);
        let producer: ThreadedProducer<DefaultProducerContext> =
            kafka::transactional_producer_config(config, &transactional_id).create()?;
        producer.init_transactions(TXN_TIMEOUT)?;
        let consumer: BaseConsumer<RevocationLog> =
            kafka::consumer_config(config, &config.aggregate_group)
                .create_with_context(RevocationLog::default())?;
        consumer.subscribe(&[&config.topics.commands])?;
        tracing::info!(%transactional_id, topic = %config.topics.commands, "aggregate session started");
        Ok(Self {
            config,
            codec,
            writers,
            runtime,
            consumer,
            producer,
            store: StateStore::default(),
            stats,
        })
    }

    pub fn run(&mut self, shutdown: &Shutdown) -> Result<(), ProcessorError> {
        while !shutdown.is_triggered() {
            self.process_batch()?;
            for partition in self.consumer.context().take() {
                self.store.release(partition);
                tracing::info!(partition, "partition revoked: state released");
            }
        }
        Ok(())
    }

    fn process_batch(&mut self) -> Result<(), ProcessorError> {
        let Some(first) = self.poll(Duration::from_millis(100)) else {
            return Ok(());
        };
        self.producer.begin_transaction()?;
        let mut batch = Batch::default();
        let result = self.fill_and_commit(first, &mut batch);
        match result {
            Ok(()) => {
                self.stats.commands += batch.records as u64;
                self.stats.transactions += 1;
                self.store.commit(batch.pending);
                Ok(())
            }
            Err(error) => {
                if let Err(abort_error) = self.producer.abort_transaction(TXN_TIMEOUT) {
                    tracing::warn!(%abort_error, "abort failed");
                }
                Err(ProcessorError::Transaction(error.to_string()))
            }
        }
    }

    fn fill_and_commit(
        &mut self,
        first: BorrowedMessageOwned,
        batch: &mut Batch,
    ) -> Result<(), ProcessorError> {
        self.process(first, batch)?;
        let deadline = Instant::now() + self.config.batch_linger;
        while batch.records < self.config.batch_max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.poll(left) {
                Some(message) => self.process(message, batch)?,
                None => break,
            }
        }
        self.write_changelog(batch)?;
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &batch.offsets {
            offsets.add_partition_offset(
                &self.config.topics.commands,
                *partition,
                Offset::Offset(*next),
            )?;
        }
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| ProcessorError::Transaction("no consumer group metadata".into()))?;
        self.producer
            .send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT)?;
        self.producer.commit_transaction(TXN_TIMEOUT)?;
        Ok(())
    }

    fn poll(&mut self, timeout: Duration) -> Option<BorrowedMessageOwned> {
        match self.consumer.poll(timeout) {
            Some(Ok(message)) => Some(BorrowedMessageOwned::from(&message)),
            Some(Err(error)) => {
                tracing::warn!(%error, "consumer error");
                None
            }
            None => None,
        }
    }

    fn process(
        &mut self,
        message: BorrowedMessageOwned,
        batch: &mut Batch,
    ) -> Result<(), ProcessorError> {
        let partition = message.partition;
        if !self.store.is_restored(partition) {
            let stats = self.store.restore(self.config, partition)?;
            self.stats.restored_records += stats.records;
            tracing::info!(
                partition,
                records = stats.records,
                aggregates = stats.aggregates,
                elapsed_ms = stats.elapsed.as_millis() as u64,
                "state restored from changelog"
            );
        }
        batch.offsets.insert(partition, message.offset + 1);
        batch.records += 1;
        let now = message.timestamp.unwrap_or_else(wall_clock);
        match self.decode(&message) {
            Ok((command, meta)) => self.decide(partition, &command, &meta, now, batch),
            Err(reason) => self.reject_malformed(&message, reason, now),
        }
    }

    fn decode(
        &self,
        message: &BorrowedMessageOwned,
    ) -> Result<(gavel_domain::auction::AuctionCommand, CommandMeta), String> {
        let payload = message.payload.as_deref().ok_or("record has no payload")?;
        let decoded = match self.codec.decode_cached(payload) {
            Err(RuntimeError::UnknownSchema(id)) => {
                self.runtime
                    .block_on(self.codec.fetch_schema(id))
                    .map_err(|e| e.to_string())?;
                self.codec.decode_cached(payload)
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        command_from_avro(&decoded.schema.name, decoded.value).map_err(|e| e.to_string())
    }

    fn decide(
        &mut self,
        partition: i32,
        command: &gavel_domain::auction::AuctionCommand,
        meta: &CommandMeta,
        now: Timestamp,
        batch: &mut Batch,
    ) -> Result<(), ProcessorError> {
        let key = command.auction_id().as_str();
        let empty = StoredAggregate::default();
        let stored = self
            .store
            .get(&batch.pending, partition, key)
            .unwrap_or(&empty);
        match handle(stored, command, meta, now) {
            Decision::Duplicate(outcome) => {
                self.stats.duplicates += 1;
                self.send_outcome(partition, &outcome)
            }
            Decision::Decided {
                events,
                outcome,
                state,
            } => {
                for (event, envelope) in &events {
                    let record = gavel_runtime::auction_codec::event_record_name(event);
                    let bytes = self
                        .writers
                        .event(record)?
                        .encode(&event_to_avro(event, envelope))?;
                    self.send(
                        &self.config.topics.events,
                        partition,
                        key,
                        &bytes,
                        envelope.headers(event.type_name()),
                    )?;
                }
                self.stats.events += events.len() as u64;
                if !outcome.accepted {
                    self.stats.rejections += 1;
                }
                self.send_outcome(partition, &outcome)?;
                batch
                    .pending
                    .writes
                    .insert((partition, key.to_owned()), *state);
                Ok(())
            }
        }
    }

    fn reject_malformed(
        &mut self,
        message: &BorrowedMessageOwned,
        reason: String,
        now: Timestamp,
    ) -> Result<(), ProcessorError> {
        self.stats.malformed += 1;
        tracing::warn!(partition = message.partition, offset = message.offset, %reason, "undecodable command skipped");
        let Some(command_id) = message.header(header::COMMAND_ID) else {
            return Ok(());
        };
        let meta = CommandMeta {
            command_id: command_id.to_owned(),
            correlation_id: message
                .header(header::CORRELATION_ID)
                .unwrap_or(command_id)
                .to_owned(),
            tenant_id: TenantId::new(message.header(header::TENANT_ID).unwrap_or("")),
            expected_version: None,
        };
        let key = message.key.as_deref().unwrap_or("").to_owned();
        let outcome = malformed_outcome(&meta, &key, reason, now);
        self.send_outcome(message.partition, &outcome)
    }

    fn send_outcome(&self, partition: i32, outcome: &CommandOutcome) -> Result<(), ProcessorError> {
        let bytes = self.writers.outcome.encode(&outcome_to_avro(outcome))?;
        let headers = OwnedHeaders::new().insert(rdkafka::message::Header {
            key: header::COMMAND_ID,
            value: Some(outcome.command_id.as_bytes()),
        });
        self.send(
            &self.config.topics.outcomes,
            partition,
            &outcome.aggregate_id,
            &bytes,
            headers,
        )
    }

    /// One changelog record per aggregate touched in this batch: its latest state.
    fn write_changelog(&self, batch: &Batch) -> Result<(), ProcessorError> {
        for ((partition, key), state) in &batch.pending.writes {
            self.send(
                &self.config.topics.changelog,
                *partition,
                key,
                &state.to_bytes(),
                OwnedHeaders::new(),
            )?;
        }
        Ok(())
    }

    fn send(
        &self,
        topic: &str,
        partition: i32,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), ProcessorError> {
        let mut record = BaseRecord::to(topic)
            .partition(partition)
            .key(key)
            .payload(payload)
            .headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }
}

/// The parts of a consumed record the loop needs, detached from the consumer's
/// buffer so polling the next record does not fight the borrow checker.
pub struct BorrowedMessageOwned {
    partition: i32,
    offset: i64,
    timestamp: Option<Timestamp>,
    key: Option<String>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
}

impl BorrowedMessageOwned {
    fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl From<&BorrowedMessage<'_>> for BorrowedMessageOwned {
    fn from(message: &BorrowedMessage<'_>) -> Self {
        let headers = message
            .headers()
            .map(|h| {
                [
                    header::COMMAND_ID,
                    header::CORRELATION_ID,
                    header::TENANT_ID,
                ]
                .iter()
                .filter_map(|k| header_str(h, k).map(|v| ((*k).to_owned(), v.to_owned())))
                .collect()
            })
            .unwrap_or_default();
        Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis().map(Timestamp::from_millis),
            key: message
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

fn wall_clock() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_millis(millis)
}
