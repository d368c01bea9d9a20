//! One consumer/producer pair running a saga orchestrator's read-process-write
//! loop. Each batch is one Kafka transaction holding the consumed offsets of the
//! trigger and reply topics, every saga's new state on the changelog, the step
//! commands, milestones and failure records: a crash anywhere before the commit
//! leaves none of it, so no step or compensation is ever sent twice, and the
//! fresh session resumes from the committed state and offsets. Timers are fired
//! inside the same kind of transaction.

use super::crash::{Crash, CrashPoint};
use super::inputs::{self, Input};
use super::kind::SagaKind;
use super::outputs;
use super::store::{DueTimer, SagaStore};
use super::wire::Wire;
use super::{SagaTopics, Stats};
use crate::txn::{self, Linger, TxnProducer, TXN_TIMEOUT};
use crate::ProcessorError;
use gavel_domain::saga::{decide, evolve, Cause, SagaAction, SagaDefinition, SagaInput, SagaState};
use gavel_domain::Timestamp;
use gavel_runtime::dlq::ErrorClass;
use gavel_runtime::kafka::{self, RevocationLog};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::{Config, Shutdown};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::Producer;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Session<'a, K: SagaKind> {
    config: &'a Config,
    kind: &'a K,
    def: K::Def,
    topics: &'a SagaTopics,
    wire: &'a Wire,
    consumer: BaseConsumer<RevocationLog>,
    producer: TxnProducer,
    store: SagaStore<K::Def>,
    stats: &'a mut Stats,
    readiness: Readiness,
    worker: String,
    crash: Crash,
    /// When the open-saga gauges were last recomputed (a full scan of the
    /// sagas, so at most once a second rather than after every batch).
    census_at: Option<Instant>,
}

/// What the open transaction holds.
#[derive(Default)]
struct Batch {
    offsets: HashMap<(String, i32), i64>,
    records: usize,
    /// Sagas finished in this transaction: outcome and duration in ms.
    finished: Vec<(&'static str, i64)>,
}

impl<'a, K: SagaKind> Session<'a, K> {
    pub fn start(
        config: &'a Config,
        kind: &'a K,
        topics: &'a SagaTopics,
        wire: &'a Wire,
        stats: &'a mut Stats,
        readiness: Readiness,
    ) -> Result<Self, ProcessorError> {
        let def = kind.definition();
        let group = super::consumer_group(config, def.kind());
        let worker = format!("saga-{}/{}", def.kind(), config.instance_id);
        let transactional_id = format!("{group}-{}", config.instance_id);
        let producer: TxnProducer =
            kafka::transactional_producer_config(config, &transactional_id).create()?;
        producer.init_transactions(TXN_TIMEOUT)?;
        // A saga's trigger and its replies share a partition number: range
        // assignment gives partition p of both topics to the same replica.
        let consumer: BaseConsumer<RevocationLog> = kafka::member_config(config, &group, true)
            .create_with_context(RevocationLog::default())?;
        consumer.subscribe(&[&topics.trigger, &topics.replies])?;
        tracing::info!(%transactional_id, trigger = %topics.trigger, replies = %topics.replies, "saga session started");
        Ok(Self {
            def,
            config,
            kind,
            topics,
            wire,
            consumer,
            producer,
            store: SagaStore::default(),
            stats,
            readiness,
            worker,
            crash: Crash::from_env(),
            census_at: None,
        })
    }

    pub fn run(&mut self, shutdown: &Shutdown) -> Result<(), ProcessorError> {
        self.readiness.set_started();
        let result = self.serve(shutdown);
        // Hand the partitions over now, on purpose or after a failure (see
        // the aggregate's session).
        gavel_runtime::membership::leave_group(&self.consumer);
        result
    }

    fn serve(&mut self, shutdown: &Shutdown) -> Result<(), ProcessorError> {
        while !shutdown.is_triggered() {
            self.readiness.beat();
            self.sync_assignment()?;
            self.process_batch()?;
        }
        Ok(())
    }

    /// Releases revoked partitions and restores newly assigned ones at once
    /// (not on their first record): their timers must fire even when no
    /// record arrives.
    fn sync_assignment(&mut self) -> Result<(), ProcessorError> {
        for partition in self.consumer.context().take() {
            self.store.release(partition);
            tracing::info!(partition, "partition revoked: sagas released");
        }
        let assignment = self.consumer.assignment()?;
        let fresh: Vec<i32> = assignment
            .elements_for_topic(&self.topics.trigger)
            .iter()
            .map(|e| e.partition())
            .filter(|p| !self.store.is_restored(*p))
            .collect();
        self.restore(&fresh)
    }

    fn restore(&mut self, partitions: &[i32]) -> Result<(), ProcessorError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        // The assignment's committed offsets first: with read_committed the
        // broker answers them only once a previous owner's open transaction
        // is resolved, and that transaction carries changelog records too;
        // restoring before it would resume after its inputs without its state.
        self.consumer.committed(Duration::from_secs(30))?;
        self.readiness.set_restoring(true);
        let restored = self
            .store
            .restore(self.config, &self.topics.changelog, partitions);
        self.readiness.set_restoring(false);
        let records = restored?;
        self.stats.restored_records += records;
        metrics::saga().stage.restored_records.inc_by(records);
        tracing::info!(
            ?partitions,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sagas restored from changelog"
        );
        Ok(())
    }

    fn process_batch(&mut self) -> Result<(), ProcessorError> {
        let first = self.poll(Duration::from_millis(50));
        let due = self.store.due(now_ms(), self.config.batch_max);
        if first.is_none() && due.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.producer.begin_transaction()?;
        let mut batch = Batch::default();
        let result = self
            .fire(due, &mut batch)
            .and_then(|()| match first {
                Some(first) => self.fill(first, &mut batch),
                None => Ok(()),
            })
            .and_then(|()| self.commit(&batch));
        let stage = &metrics::saga().stage;
        match result {
            Ok(()) => {
                txn::count_commit(stage, batch.records, started);
                self.report(&batch);
                Ok(())
            }
            Err(error) => {
                txn::abort_counted(&self.producer, stage, &error);
                Err(error)
            }
        }
    }

    fn poll(&self, timeout: Duration) -> Option<OwnedMessage> {
        match self.consumer.poll(timeout) {
            Some(Ok(message)) => Some(message.detach()),
            Some(Err(error)) => {
                tracing::warn!(%error, "consumer error");
                None
            }
            None => None,
        }
    }

    fn fill(&mut self, first: OwnedMessage, batch: &mut Batch) -> Result<(), ProcessorError> {
        self.process(first, batch)?;
        let linger = Linger::start(self.config.batch_linger);
        let revocations = self.consumer.context().revocations();
        while batch.records < self.config.batch_max {
            let next = self.poll(linger.wait());
            txn::still_assigned(self.consumer.context(), revocations)?;
            match next {
                Some(message) => self.process(message, batch)?,
                None => break,
            }
        }
        Ok(())
    }

    fn commit(&self, batch: &Batch) -> Result<(), ProcessorError> {
        txn::send_topic_offsets(&self.producer, &self.consumer, &batch.offsets)?;
        txn::await_deliveries(&self.producer)?;
        self.crash.at(CrashPoint::BeforeCommit);
        self.producer
            .commit_transaction(TXN_TIMEOUT)
            .map_err(txn::abort_reason)?;
        self.crash.at(CrashPoint::AfterCommit);
        Ok(())
    }

    fn fire(
        &mut self,
        due: Vec<DueTimer<<K::Def as SagaDefinition>::Step>>,
        batch: &mut Batch,
    ) -> Result<(), ProcessorError> {
        for timer in due {
            self.stats.timers_fired += 1;
            metrics::saga().timers_fired.inc();
            let id = timer.timer.command_id(&timer.saga);
            let cause = Cause::new(format!("timer/{id}"), Timestamp::from_millis(now_ms()));
            let input = SagaInput::DeadlineExpired { timer: timer.timer };
            self.handle(timer.partition, &timer.saga, input, cause, batch)?;
        }
        Ok(())
    }

    fn process(&mut self, message: OwnedMessage, batch: &mut Batch) -> Result<(), ProcessorError> {
        let span = crate::span::record_span(&message);
        let _entered = span.enter();
        let partition = message.partition();
        if !self.store.is_restored(partition) {
            self.restore(&[partition])?;
        }
        batch.offsets.insert(
            (message.topic().to_owned(), partition),
            message.offset() + 1,
        );
        batch.records += 1;
        let cause = Cause::new(
            format!("{}/{partition}/{}", message.topic(), message.offset()),
            Timestamp::from_millis(now_ms()),
        );
        let read = if message.topic() == self.topics.trigger {
            inputs::trigger(self.kind, &self.def, self.wire, &message)?
        } else {
            self.wire
                .reply(&message)?
                .map(|reply| inputs::reply(&self.def, reply))
        };
        match read {
            Ok(Input::Saga(saga, input)) => self.handle(partition, &saga, input, cause, batch),
            Ok(Input::Ignored) => {
                self.stats.ignored += 1;
                Ok(())
            }
            Ok(Input::Rejected(code)) => {
                self.reject(code);
                Ok(())
            }
            Err(reason) => self.dead_letter(&message, &reason),
        }
    }

    fn handle(
        &mut self,
        partition: i32,
        saga: &gavel_domain::saga::SagaId,
        input: SagaInput<K::Def>,
        cause: Cause,
        batch: &mut Batch,
    ) -> Result<(), ProcessorError> {
        let before = self.store.get(saga);
        let decision = match decide(&self.def, before, &input, &cause) {
            Ok(decision) => decision,
            Err(rejection) => {
                tracing::debug!(%saga, %rejection, "saga input changed nothing");
                self.reject(rejection.code());
                return Ok(());
            }
        };
        let after = decision
            .events
            .iter()
            .fold(before.cloned(), evolve)
            .ok_or_else(|| ProcessorError::Transaction(format!("saga {saga} has no state")))?;
        if before.is_none() {
            self.stats.started += 1;
        }
        let headers = outputs::headers("SagaState", saga.as_str(), cause.message_id.as_str());
        let state =
            serde_json::to_vec(&after).map_err(|e| ProcessorError::Encode(e.to_string()))?;
        txn::send(
            &self.producer,
            &self.topics.changelog,
            partition,
            saga.as_str(),
            Some(&state),
            headers,
        )?;
        self.crash.at(CrashPoint::AfterStateWrite);
        for action in decision.actions {
            self.act(partition, &after, action, batch)?;
        }
        self.store.put(partition, after);
        Ok(())
    }

    fn act(
        &mut self,
        partition: i32,
        saga: &SagaState<K::Def>,
        action: SagaAction<K::Def>,
        batch: &mut Batch,
    ) -> Result<(), ProcessorError> {
        let duration = now_ms() - saga.started_at.millis();
        match action {
            SagaAction::SendCommand(command) => {
                let topic = self
                    .config
                    .topics
                    .participant_commands(command.participant.as_str());
                let writer = self.wire.command_writer(&topic)?;
                let record =
                    outputs::step_command(&self.def, self.topics, partition, &command, writer)?;
                self.stats.commands_sent += 1;
                metrics::saga().stage.produced.inc();
                outputs::send(&self.producer, &topic, &record)?;
                self.crash.at(CrashPoint::AfterCommandSend);
                Ok(())
            }
            SagaAction::ScheduleDeadline { .. } | SagaAction::CancelDeadline => Ok(()),
            SagaAction::Publish(announcement) => {
                let record = outputs::milestone(self.kind, &announcement, self.wire)?;
                outputs::send(&self.producer, &self.topics.milestones, &record)
            }
            SagaAction::Complete => {
                batch.finished.push(("completed", duration));
                Ok(())
            }
            SagaAction::Compensated { .. } => {
                batch.finished.push(("compensated", duration));
                Ok(())
            }
            SagaAction::Fail { reason } => {
                tracing::error!(saga = %saga.id, %reason, "saga failed: needs attention");
                batch.finished.push(("failed", duration));
                let record = outputs::failure(&self.def, saga, &reason, self.wire)?;
                outputs::send(&self.producer, &self.topics.failed, &record)
            }
        }
    }

    fn reject(&mut self, code: &'static str) {
        self.stats.rejected += 1;
        metrics::saga()
            .rejected_inputs
            .with_label_values(&[code])
            .inc();
    }

    /// A record that will never be read goes to its topic's DLQ inside this
    /// transaction, so it is dead-lettered exactly once and the partition moves on.
    fn dead_letter(&mut self, message: &OwnedMessage, reason: &str) -> Result<(), ProcessorError> {
        self.stats.dead_letters += 1;
        let stage = &metrics::saga().stage;
        let class = ErrorClass::Undecodable;
        txn::dead_letter(&self.producer, stage, message, class, reason, &self.worker)
    }

    fn report(&mut self, batch: &Batch) {
        let saga = metrics::saga();
        for (outcome, duration_ms) in &batch.finished {
            saga.outcomes.with_label_values(&[outcome]).inc();
            saga.duration_seconds.observe(*duration_ms as f64 / 1000.0);
            match *outcome {
                "completed" => self.stats.completed += 1,
                "compensated" => self.stats.compensated += 1,
                _ => self.stats.failed += 1,
            }
        }
        if self
            .census_at
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.census_at = Some(Instant::now());
        let (counts, oldest) = self.store.census();
        for status in [
            "RUNNING",
            "COMPENSATING",
            "COMPLETED",
            "COMPENSATED",
            "FAILED",
        ] {
            let count = counts.get(status).copied().unwrap_or(0);
            saga.instances.with_label_values(&[status]).set(count);
        }
        saga.oldest_open_seconds
            .set(oldest.map_or(0.0, |ms| ms as f64 / 1000.0));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
