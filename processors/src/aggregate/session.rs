//! One consumer/producer pair running the read-process-write loop. Each batch is
//! one Kafka transaction: events, outcomes, changelog records and the consumed
//! offsets commit together or not at all. Any transaction failure ends the
//! session; the caller starts a fresh one from the last committed offsets.

use super::poison::Decoded;
use super::record::{wall_clock, BorrowedMessageOwned};
use super::store::{Pending, StateStore};
use super::writers::Writers;
use crate::txn::Linger;
use crate::ProcessorError;
use gavel_domain::Timestamp;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::{header, loggable};
use gavel_runtime::kafka::{self, RevocationLog};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::{Config, Shutdown};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Session<'a> {
    pub(super) config: &'a Config,
    pub(super) codec: &'a AvroCodec,
    pub(super) writers: &'a Writers,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) consumer: BaseConsumer<RevocationLog>,
    pub(super) producer: ThreadedProducer<DefaultProducerContext>,
    pub(super) store: StateStore,
    pub(super) stats: &'a mut super::Stats,
    /// Next offset to consume per assigned partition, as last committed: the
    /// offsets a timer-only transaction sends, so a zombie is fenced there too.
    pub(super) positions: HashMap<i32, i64>,
    /// Broker append time of the last command consumed per partition.
    pub(super) stream_time: HashMap<i32, Timestamp>,
    pub(super) readiness: Readiness,
    /// `aggregate/<instance id>`, named in the dead letters this session writes.
    pub(super) worker: String,
    /// Partitions of the command topic: where each auction's commands belong.
    pub(super) command_partitions: i32,
    /// Set while the registry is away: how long to wait before reading again.
    pub(super) registry_pause: Option<Duration>,
    /// The (partition, offset) held back for the registry: only decoding that
    /// very record proves the registry back (others may decode from the cache).
    pub(super) held_at: Option<(i32, i64)>,
}

/// What became of one consumed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Done,
    /// Not processed: the partition was rewound to it (registry unavailable).
    HeldBack,
}

/// Records of the open transaction.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) pending: Pending,
    pub(super) offsets: HashMap<i32, i64>,
    pub(super) records: usize,
}

impl<'a> Session<'a> {
    pub fn start(
        config: &'a Config,
        codec: &'a AvroCodec,
        writers: &'a Writers,
        runtime: tokio::runtime::Handle,
        stats: &'a mut super::Stats,
        readiness: Readiness,
    ) -> Result<Self, ProcessorError> {
        let transactional_id = format!("{}-{}", config.aggregate_group, config.instance_id);
        let producer: ThreadedProducer<DefaultProducerContext> =
            kafka::transactional_producer_config(config, &transactional_id).create()?;
        producer.init_transactions(TXN_TIMEOUT)?;
        let consumer: BaseConsumer<RevocationLog> =
            kafka::member_config(config, &config.aggregate_group, false)
                .create_with_context(RevocationLog::default())?;
        consumer.subscribe(&[&config.topics.commands])?;
        let command_partitions = kafka::partition_count(config, &config.topics.commands)?;
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
            positions: HashMap::new(),
            stream_time: HashMap::new(),
            readiness,
            worker: format!("aggregate/{}", config.instance_id),
            command_partitions,
            registry_pause: None,
            held_at: None,
        })
    }

    pub fn run(&mut self, shutdown: &Shutdown) -> Result<(), ProcessorError> {
        self.readiness.set_started();
        let result = self.serve(shutdown);
        // Hand the partitions over now, on purpose or after a failure: a
        // static member would keep them for the session timeout, and a fresh
        // session taking its place without a rebalance would inherit an
        // assignment that may be half-way through a cooperative one (the
        // partitions it had just revoked would then belong to no member).
        gavel_runtime::membership::leave_group(&self.consumer);
        result
    }

    fn serve(&mut self, shutdown: &Shutdown) -> Result<(), ProcessorError> {
        while !shutdown.is_triggered() {
            self.readiness.beat();
            self.process_batch()?;
            self.restore_assigned()?;
            self.fire_due_timers()?;
            self.retire_closed()?;
            self.pause_for_registry(shutdown);
            self.release_revoked();
        }
        Ok(())
    }

    fn process_batch(&mut self) -> Result<(), ProcessorError> {
        let Some(first) = self.poll(Duration::from_millis(100)) else {
            return Ok(());
        };
        let started = Instant::now();
        let batch = self.in_transaction(|session, batch| session.fill(first, batch))?;
        self.stats.commands += batch.records as u64;
        let stage = metrics::aggregate();
        stage.consumed.inc_by(batch.records as u64);
        stage.batch_records.observe(batch.records as f64);
        stage.batch_seconds.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// After a batch cut short by a registry outage: wait before reading the
    /// held-back record again (short steps, so SIGTERM is not kept waiting).
    fn pause_for_registry(&mut self, shutdown: &Shutdown) {
        let Some(pause) = self.registry_pause else {
            return;
        };
        let until = Instant::now() + pause;
        while Instant::now() < until && !shutdown.is_triggered() {
            self.readiness.beat();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `work` inside one transaction and commits it with the batch's
    /// changelog records and offsets; on any failure aborts and ends the session.
    pub(super) fn in_transaction(
        &mut self,
        work: impl FnOnce(&mut Self, &mut Batch) -> Result<(), ProcessorError>,
    ) -> Result<Batch, ProcessorError> {
        self.producer.begin_transaction()?;
        let mut batch = Batch::default();
        let result = work(self, &mut batch).and_then(|()| self.commit(&batch));
        match result {
            Ok(()) => {
                self.stats.transactions += 1;
                metrics::aggregate()
                    .transactions
                    .with_label_values(&["commit"])
                    .inc();
                self.positions
                    .extend(batch.offsets.iter().map(|(p, o)| (*p, *o)));
                self.store.commit(std::mem::take(&mut batch.pending));
                Ok(batch)
            }
            Err(error) => {
                let stage = metrics::aggregate();
                stage.transactions.with_label_values(&["abort"]).inc();
                if let Err(abort_error) = self.producer.abort_transaction(TXN_TIMEOUT) {
                    tracing::warn!(%abort_error, "abort failed");
                }
                if matches!(error, ProcessorError::RevokedMidTransaction) {
                    // The batch's aggregates were lent out of the store
                    // (`checkout`): the fresh session restores them from the
                    // changelog, at the state the last commit left.
                    tracing::info!(
                        records = batch.records,
                        "partitions revoked mid-transaction: batch aborted, session restarts"
                    );
                    return Err(error);
                }
                stage.errors.with_label_values(&["transaction"]).inc();
                Err(ProcessorError::Transaction(error.to_string()))
            }
        }
    }

    /// Forgets the state of every partition revoked since the last call.
    fn release_revoked(&mut self) {
        for partition in self.consumer.context().take() {
            if self.held_at.is_some_and(|(held, _)| held == partition) {
                // Its next owner waits for the registry now.
                self.held_at = None;
                self.registry_pause = None;
                self.readiness.set_dependency("schema-registry", Ok(()));
            }
            self.store.release(partition);
            self.positions.remove(&partition);
            self.stream_time.remove(&partition);
            tracing::info!(partition, "partition revoked: state released");
        }
    }

    fn fill(
        &mut self,
        first: BorrowedMessageOwned,
        batch: &mut Batch,
    ) -> Result<(), ProcessorError> {
        if self.process(first, batch)? == Step::HeldBack {
            return Ok(());
        }
        let linger = Linger::start(self.config.batch_linger);
        let revocations = self.consumer.context().revocations();
        while batch.records < self.config.batch_max {
            let Some(message) = self.poll(linger.wait()) else {
                break;
            };
            crate::txn::still_assigned(self.consumer.context(), revocations)?;
            // A held-back record ends the batch: what came before commits,
            // and polling on could hand out records behind it.
            if self.process(message, batch)? == Step::HeldBack {
                break;
            }
        }
        Ok(())
    }

    fn commit(&self, batch: &Batch) -> Result<(), ProcessorError> {
        let started = Instant::now();
        self.write_changelog(batch)?;
        let changelog_written = started.elapsed();
        crate::txn::send_offsets(
            &self.producer,
            &self.consumer,
            &self.config.topics.commands,
            &batch.offsets,
        )?;
        let offsets_sent = started.elapsed();
        crate::txn::await_deliveries(&self.producer)?;
        let acknowledged = started.elapsed();
        self.producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(crate::txn::abort_reason)?;
        tracing::debug!(
            records = batch.records,
            changelog = batch.pending.writes.len(),
            changelog_ms = changelog_written.as_millis() as u64,
            offsets_ms = (offsets_sent - changelog_written).as_millis() as u64,
            acks_ms = (acknowledged - offsets_sent).as_millis() as u64,
            commit_ms = (started.elapsed() - acknowledged).as_millis() as u64,
            "transaction committed"
        );
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

    /// Restores every assigned partition not restored yet, so its timers run
    /// even when no command arrives for it.
    fn restore_assigned(&mut self) -> Result<(), ProcessorError> {
        let assignment = self.consumer.assignment()?;
        let missing: Vec<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .filter(|p| !self.store.is_restored(*p))
            .collect();
        self.restore(&missing)
    }

    fn ensure_restored(&mut self, partition: i32) -> Result<(), ProcessorError> {
        if self.store.is_restored(partition) {
            return Ok(());
        }
        self.restore(&[partition])
    }

    fn restore(&mut self, partitions: &[i32]) -> Result<(), ProcessorError> {
        if partitions.is_empty() {
            return Ok(());
        }
        // Committed offsets first: with read_committed the broker answers
        // them only once the previous owner's open transaction is resolved,
        // and that transaction carries changelog records too. Read the
        // changelog before, and a partition taken over mid-transaction would
        // restore without that transaction's state yet resume after its
        // commands (a rebalance under load lost those effects).
        for partition in partitions {
            self.remember_committed_position(*partition)?;
        }
        let stage = metrics::aggregate();
        stage.restoring_partitions.add(partitions.len() as i64);
        self.readiness.set_restoring(true);
        let restored = self.store.restore(self.config, partitions);
        stage.restoring_partitions.sub(partitions.len() as i64);
        self.readiness.set_restoring(false);
        let stats = restored?;
        // Reading the changelog filled librdkafka's fetch buffers: hand the
        // freed memory back now rather than at the next periodic trim.
        gavel_runtime::memory::release_freed();
        stage.restored_records.inc_by(stats.records);
        self.stats.restored_records += stats.records;
        tracing::info!(
            ?partitions,
            records = stats.records,
            aggregates = stats.aggregates,
            elapsed_ms = stats.elapsed.as_millis() as u64,
            "state restored from changelog"
        );
        Ok(())
    }

    fn process(
        &mut self,
        message: BorrowedMessageOwned,
        batch: &mut Batch,
    ) -> Result<Step, ProcessorError> {
        let partition = message.partition;
        self.ensure_restored(partition)?;
        let decoded = self.decode(&message);
        if let Decoded::Unavailable(reason) = decoded {
            self.hold_back(&message, reason)?;
            return Ok(Step::HeldBack);
        }
        if self.held_at == Some((partition, message.offset)) {
            self.held_at = None;
            self.registry_pause = None;
            self.readiness.set_dependency("schema-registry", Ok(()));
        }
        batch.offsets.insert(partition, message.offset + 1);
        batch.records += 1;
        let now = message.timestamp.unwrap_or_else(wall_clock);
        self.stream_time.insert(partition, now);
        // Per record at debug level: an info span would cost its formatting on
        // every command of the hot path; warnings carry the same fields inline.
        let span = tracing::debug_span!("command", topic = %self.config.topics.commands,
            partition, offset = message.offset, aggregate_id = loggable(message.key().unwrap_or("")),
            correlation_id = loggable(message.header(header::CORRELATION_ID).unwrap_or("")),
            causation_id = loggable(message.header(header::COMMAND_ID).unwrap_or("")),
            traceparent = loggable(message.header(header::TRACEPARENT).unwrap_or("")));
        let traceparent = message.header(header::TRACEPARENT).unwrap_or("");
        gavel_runtime::telemetry::follow_traceparent(&span, traceparent);
        let _entered = span.enter();
        match decoded {
            Decoded::Command(command, meta) => match self.misrouted(&message, &command) {
                Some((code, reason)) => {
                    self.refuse_misrouted(&message, &command, &meta, code, reason, now)?
                }
                None => self.decide(partition, &command, &meta, now, batch)?,
            },
            Decoded::Poison {
                class,
                reason,
                meta,
            } => self.reject_malformed(&message, class, reason, meta, now)?,
            Decoded::Unavailable(_) => {}
        }
        Ok(Step::Done)
    }

    /// True when the last command consumed from `partition` was appended at or after `at`.
    pub(super) fn stream_passed(&self, partition: i32, at: Timestamp) -> bool {
        self.stream_time.get(&partition).is_some_and(|t| *t >= at)
    }

    /// True when nothing is left to read from `partition` (one metadata round trip).
    pub(super) fn drained(&self, partition: i32) -> bool {
        let high = self
            .consumer
            .fetch_watermarks(
                &self.config.topics.commands,
                partition,
                Duration::from_secs(1),
            )
            .map(|(_, h)| h);
        matches!((self.positions.get(&partition), high), (Some(position), Ok(high)) if *position >= high)
    }

    /// The committed offset of a newly assigned partition (or its start).
    fn remember_committed_position(&mut self, partition: i32) -> Result<(), ProcessorError> {
        let topic = &self.config.topics.commands;
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, partition);
        let committed = self
            .consumer
            .committed_offsets(list, Duration::from_secs(10))?;
        let offset = match committed
            .find_partition(topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(next)) => next,
            _ => {
                kafka::retry_leaderless(|| {
                    self.consumer
                        .fetch_watermarks(topic, partition, Duration::from_secs(10))
                })?
                .0
            }
        };
        self.positions.insert(partition, offset);
        Ok(())
    }
}
