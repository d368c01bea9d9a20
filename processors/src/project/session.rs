//! One consumer/producer pair running the projector's read-process-write loop.
//! Each batch is one Kafka transaction: the view records of every event in it
//! and the consumed offsets commit together or not at all, so each view record
//! is published exactly once. Any failure ends the session; the caller starts a
//! fresh one from the last committed offsets (which also restores the state).

use super::coalesce::{Coalesced, PendingView};
use super::records::{view_records, Provenance};
use super::state::{ViewReader, ViewState};
use super::Stats;
use crate::txn::{self, Linger, TxnProducer, TXN_TIMEOUT};
use crate::ProcessorError;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::views::project;
use gavel_runtime::auction_codec::event_from_avro;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::dlq::ErrorClass;
use gavel_runtime::envelope::EventEnvelope;
use gavel_runtime::kafka::{self, RevocationLog};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::view_wire::ViewWriters;
use gavel_runtime::{Config, Shutdown};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::Producer;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Session<'a> {
    config: &'a Config,
    codec: &'a AvroCodec,
    writers: &'a ViewWriters,
    /// Admits the view topics' schemas, for the restore.
    view_codec: &'a AvroCodec,
    runtime: tokio::runtime::Handle,
    consumer: BaseConsumer<RevocationLog>,
    producer: TxnProducer,
    state: ViewState,
    stats: &'a mut Stats,
    readiness: Readiness,
    worker: String,
}

/// What the open transaction holds.
#[derive(Default)]
struct Batch<'a> {
    offsets: HashMap<i32, i64>,
    records: usize,
    /// The view rows the batch changed, each with its latest record: sent at
    /// commit, so a row changed by many events of the batch is one record.
    views: Coalesced<'a>,
}

impl<'a> Session<'a> {
    pub fn start(
        config: &'a Config,
        codec: &'a AvroCodec,
        writers: &'a ViewWriters,
        view_codec: &'a AvroCodec,
        runtime: tokio::runtime::Handle,
        stats: &'a mut Stats,
        readiness: Readiness,
    ) -> Result<Self, ProcessorError> {
        let transactional_id = format!("{}-{}", config.project_group, config.instance_id);
        let producer: TxnProducer =
            kafka::transactional_producer_config(config, &transactional_id).create()?;
        producer.init_transactions(TXN_TIMEOUT)?;
        let consumer: BaseConsumer<RevocationLog> =
            kafka::member_config(config, &config.project_group, false)
                .create_with_context(RevocationLog::default())?;
        consumer.subscribe(&[&config.topics.events])?;
        tracing::info!(%transactional_id, topic = %config.topics.events, "projector session started");
        Ok(Self {
            config,
            codec,
            writers,
            view_codec,
            runtime,
            consumer,
            producer,
            state: ViewState::default(),
            stats,
            readiness,
            worker: format!("project/{}", config.instance_id),
        })
    }

    pub fn run(&mut self, shutdown: &Shutdown) -> Result<(), ProcessorError> {
        self.readiness.set_started();
        let result = self.serve(shutdown);
        // Hand the partitions over now, on purpose or after a failure (see
        // the aggregate's session: a replacement must not inherit a half-done
        // cooperative rebalance).
        gavel_runtime::membership::leave_group(&self.consumer);
        result
    }

    fn serve(&mut self, shutdown: &Shutdown) -> Result<(), ProcessorError> {
        while !shutdown.is_triggered() {
            self.readiness.beat();
            self.process_batch()?;
            for partition in self.consumer.context().take() {
                self.state.release(partition);
                tracing::info!(partition, "partition revoked: view state released");
            }
        }
        Ok(())
    }

    fn process_batch(&mut self) -> Result<(), ProcessorError> {
        let Some(first) = self.poll(Duration::from_millis(100))? else {
            return Ok(());
        };
        let started = Instant::now();
        self.producer.begin_transaction()?;
        let mut batch = Batch::default();
        let result = self
            .fill(first, &mut batch)
            .and_then(|()| self.commit(&mut batch));
        let stage = metrics::project();
        match result {
            Ok(()) => {
                self.stats.transactions += 1;
                self.stats.events += batch.records as u64;
                txn::count_commit(stage, batch.records, started);
                Ok(())
            }
            Err(error) => {
                txn::abort_counted(&self.producer, stage, &error);
                Err(error)
            }
        }
    }

    fn poll(&self, timeout: Duration) -> Result<Option<OwnedMessage>, ProcessorError> {
        match self.consumer.poll(timeout) {
            Some(Ok(message)) => Ok(Some(message.detach())),
            Some(Err(error)) => {
                tracing::warn!(%error, "consumer error");
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn fill(&mut self, first: OwnedMessage, batch: &mut Batch<'a>) -> Result<(), ProcessorError> {
        self.process(first, batch)?;
        let linger = Linger::start(self.config.batch_linger);
        let revocations = self.consumer.context().revocations();
        while batch.records < self.config.batch_max {
            let next = self.poll(linger.wait());
            txn::still_assigned(self.consumer.context(), revocations)?;
            match next? {
                Some(message) => self.process(message, batch)?,
                None => break,
            }
        }
        Ok(())
    }

    fn commit(&mut self, batch: &mut Batch<'a>) -> Result<(), ProcessorError> {
        let stage = metrics::project();
        let sent = batch.views.len() as u64;
        for view in batch.views.drain() {
            let payload = view.row.encode(self.writers)?;
            txn::send(
                &self.producer,
                view.topic,
                view.partition,
                &view.key,
                payload.as_deref(),
                view.provenance.headers(),
            )?;
        }
        self.stats.view_records += sent;
        self.stats.coalesced += batch.views.replaced();
        stage.produced.inc_by(sent);
        txn::send_offsets(
            &self.producer,
            &self.consumer,
            &self.config.topics.events,
            &batch.offsets,
        )?;
        txn::await_deliveries(&self.producer)?;
        self.producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(txn::abort_reason)?;
        Ok(())
    }

    fn process(
        &mut self,
        message: OwnedMessage,
        batch: &mut Batch<'a>,
    ) -> Result<(), ProcessorError> {
        let span = crate::span::record_span(&message);
        let _entered = span.enter();
        let partition = message.partition();
        self.ensure_restored(partition)?;
        batch.offsets.insert(partition, message.offset() + 1);
        batch.records += 1;
        match self.decode(&message)? {
            Ok((event, envelope)) => {
                self.apply(partition, message.offset(), &event, &envelope, batch)
            }
            Err((class, reason)) => self.dead_letter(&message, class, &reason),
        }
    }

    /// An event that will never decode goes to the event topic's DLQ inside
    /// this transaction, so it is dead-lettered exactly once with the offset.
    fn dead_letter(
        &mut self,
        message: &OwnedMessage,
        class: ErrorClass,
        reason: &str,
    ) -> Result<(), ProcessorError> {
        self.stats.undecodable += 1;
        let stage = metrics::project();
        txn::dead_letter(&self.producer, stage, message, class, reason, &self.worker)
    }

    /// Applies one event to its auction's state and keeps the view records it
    /// changes for the commit. The state is changed before the transaction
    /// commits: if it aborts, the session ends and its state goes with it (see
    /// `state`).
    fn apply(
        &mut self,
        partition: i32,
        offset: i64,
        event: &AuctionEvent,
        envelope: &EventEnvelope,
        batch: &mut Batch<'a>,
    ) -> Result<(), ProcessorError> {
        let key = envelope.aggregate_id.as_str();
        let meta = envelope.view_meta();
        let before = self.state.take(partition, key);
        let (after, changes) = project(before, &meta, event);
        if let Some(after) = after {
            self.state.put(partition, key.to_owned(), after);
        }
        let Some(changes) = changes else {
            self.stats.unchanged += 1;
            return Ok(());
        };
        let provenance = Provenance::of(envelope, offset);
        let config: &'a Config = self.config;
        for record in view_records(&config.topics, changes) {
            batch.views.put(PendingView {
                topic: record.topic,
                partition,
                key: record.key,
                row: record.row,
                provenance: provenance.clone(),
            });
        }
        Ok(())
    }

    /// `Err` when the registry cannot be reached (the session restarts and the
    /// record is read again, keeping the partition's order); `Ok(Err)` for a
    /// record that will never decode, with its dead-letter class.
    fn decode(&self, message: &OwnedMessage) -> Result<Decoded, ProcessorError> {
        let Some(payload) = message.payload() else {
            return Ok(Err((
                ErrorClass::Undecodable,
                "record has no payload".into(),
            )));
        };
        let decoded = self.codec.decode_on(&self.runtime, payload);
        match decoded.and_then(|d| event_from_avro(&d.schema.name, d.value)) {
            Ok(event) => {
                self.readiness.set_dependency("schema-registry", Ok(()));
                Ok(Ok(event))
            }
            Err(error) => match ErrorClass::of(&error) {
                Some(class) => Ok(Err((class, error.to_string()))),
                None => {
                    self.readiness
                        .set_dependency("schema-registry", Err(error.to_string()));
                    metrics::project()
                        .retries
                        .with_label_values(&["registry-unavailable"])
                        .inc();
                    Err(error.into())
                }
            },
        }
    }

    fn ensure_restored(&mut self, partition: i32) -> Result<(), ProcessorError> {
        if self.state.is_restored(partition) {
            return Ok(());
        }
        self.readiness.set_restoring(true);
        let views = ViewReader {
            codec: self.view_codec,
            runtime: &self.runtime,
        };
        let restored = self.state.restore(self.config, &views, &[partition]);
        self.readiness.set_restoring(false);
        let restored = restored?;
        self.stats.restored_records += restored.records;
        metrics::project().restored_records.inc_by(restored.records);
        tracing::info!(
            partition,
            records = restored.records,
            running = restored.running,
            elapsed_ms = restored.elapsed.as_millis() as u64,
            "view state restored"
        );
        Ok(())
    }
}

type Decoded = Result<(AuctionEvent, EventEnvelope), (ErrorClass, String)>;
