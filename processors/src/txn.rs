//! Transactional producer plumbing shared by the exactly-once processors.

use crate::ProcessorError;
use gavel_runtime::kafka::RevocationLog;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

pub type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// Sends one record to an explicit partition, waiting while the local queue is
/// full. `payload: None` is a tombstone.
pub fn send(
    producer: &TxnProducer,
    topic: &str,
    partition: i32,
    key: &str,
    payload: Option<&[u8]>,
    headers: OwnedHeaders,
) -> Result<(), ProcessorError> {
    let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic)
        .partition(partition)
        .key(key)
        .headers(headers);
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    send_record(producer, record)
}

/// Sends any record into the open transaction, waiting while the local queue is full.
pub fn send_record<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
    producer: &TxnProducer,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), ProcessorError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                back,
            )) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((error, _)) => return Err(error.into()),
        }
    }
}

/// True for a record the producer refused by itself as larger than
/// `message.max.bytes`: that record is poison, the transaction is unharmed.
pub fn is_too_large(error: &ProcessorError) -> bool {
    matches!(error, ProcessorError::Kafka(e) if gavel_runtime::dlq::is_too_large(e))
}

/// Adds the consumed offsets of `topic` to the open transaction.
pub fn send_offsets<C: ConsumerContext>(
    producer: &TxnProducer,
    consumer: &BaseConsumer<C>,
    topic: &str,
    offsets: &HashMap<i32, i64>,
) -> Result<(), ProcessorError> {
    let mut list = TopicPartitionList::new();
    for (partition, next) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    send_offset_list(producer, consumer, &list)
}

/// Adds the consumed offsets of several topics, by (topic, partition).
pub fn send_topic_offsets<C: ConsumerContext>(
    producer: &TxnProducer,
    consumer: &BaseConsumer<C>,
    offsets: &HashMap<(String, i32), i64>,
) -> Result<(), ProcessorError> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    send_offset_list(producer, consumer, &list)
}

fn send_offset_list<C: ConsumerContext>(
    producer: &TxnProducer,
    consumer: &BaseConsumer<C>,
    list: &TopicPartitionList,
) -> Result<(), ProcessorError> {
    let metadata = consumer
        .group_metadata()
        .ok_or_else(|| ProcessorError::Transaction("no consumer group metadata".into()))?;
    producer
        .send_offsets_to_transaction(list, &metadata, TXN_TIMEOUT)
        .map_err(abort_reason)
}

/// Ends a batch that saw a partition revoked since `since` (a reading of
/// [`RevocationLog::revocations`] taken when the batch began): its new owner
/// may already read the committed offsets, so the batch must abort rather
/// than commit records of a partition it lost; the fresh session resumes
/// from the committed offsets.
pub fn still_assigned(log: &RevocationLog, since: u64) -> Result<(), ProcessorError> {
    if log.revocations() == since {
        Ok(())
    } else {
        Err(ProcessorError::RevokedMidTransaction)
    }
}

/// A transaction error as the processors treat it: one caused by a
/// rebalance is [`ProcessorError::RevokedMidTransaction`].
pub fn abort_reason(error: KafkaError) -> ProcessorError {
    if rebalanced_meanwhile(&error) {
        ProcessorError::RevokedMidTransaction
    } else {
        error.into()
    }
}

/// True when the group moved on while the transaction was open (a rebalance
/// began, so this member's generation is stale): the broker refuses its
/// offsets (KIP-447), and the batch must abort like one that saw a revocation.
fn rebalanced_meanwhile(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::UnknownMemberId
        )
    )
}

/// Waits until every record of the transaction is acknowledged. rdkafka's
/// `commit_transaction` flushes by polling in 100 ms steps, which would add
/// up to 100 ms to every commit; the producer's own thread serves delivery
/// reports, so a short wait here lets the commit find nothing in flight.
pub fn await_deliveries(producer: &TxnProducer) -> Result<(), ProcessorError> {
    let deadline = Instant::now() + TXN_TIMEOUT;
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            return Err(ProcessorError::Transaction(
                "records not acknowledged in time".into(),
            ));
        }
        std::thread::sleep(Duration::from_micros(250));
    }
    Ok(())
}

/// How long a batch may wait for its next record. Until `linger` after the
/// batch began it waits; after that it still takes every record already
/// fetched, without waiting, up to the batch limit. So under load a batch
/// holds what arrived during the previous commit (throughput needs no long
/// linger), and when records trickle in, the linger bounds what the first one
/// waits before its transaction commits.
pub struct Linger {
    deadline: Instant,
}

impl Linger {
    pub fn start(linger: Duration) -> Self {
        Self {
            deadline: Instant::now() + linger,
        }
    }

    /// The next poll's timeout: what is left of the linger, or zero.
    pub fn wait(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Counts a committed batch transaction on the stage's metrics.
pub fn count_commit(
    stage: &gavel_runtime::observe::metrics::Stage,
    records: usize,
    started: Instant,
) {
    stage.transactions.with_label_values(&["commit"]).inc();
    stage.consumed.inc_by(records as u64);
    stage.batch_records.observe(records as f64);
    stage.batch_seconds.observe(started.elapsed().as_secs_f64());
}

/// Counts a failed batch transaction and aborts it; the session ends either
/// way. A batch ended by a rebalance is an abort but not an error: the
/// partitions moved on purpose, as the aggregate counts it too.
pub fn abort_counted(
    producer: &TxnProducer,
    stage: &gavel_runtime::observe::metrics::Stage,
    error: &ProcessorError,
) {
    stage.transactions.with_label_values(&["abort"]).inc();
    if !matches!(error, ProcessorError::RevokedMidTransaction) {
        stage.errors.with_label_values(&["transaction"]).inc();
    }
    abort(producer);
}

/// Aborts after a failed transaction; the session ends either way.
pub fn abort(producer: &TxnProducer) {
    if let Err(abort_error) = producer.abort_transaction(TXN_TIMEOUT) {
        tracing::warn!(%abort_error, "abort failed");
    }
}

/// Dead-letters a record that will never be read inside the open
/// transaction, so it reaches the DLQ exactly once (with its coordinates) and
/// the partition moves on; counted on the stage's metrics.
pub fn dead_letter(
    producer: &TxnProducer,
    stage: &gavel_runtime::observe::metrics::Stage,
    message: &rdkafka::message::OwnedMessage,
    class: gavel_runtime::dlq::ErrorClass,
    reason: &str,
    worker: &str,
) -> Result<(), ProcessorError> {
    use rdkafka::message::Message;
    stage
        .dead_letters
        .with_label_values(&[class.as_str()])
        .inc();
    tracing::warn!(
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        class = class.as_str(),
        reason = gavel_runtime::envelope::loggable(reason),
        "{}",
        class.log_message()
    );
    send_letter(
        producer,
        &gavel_runtime::dlq::DeadLetter::of(message, class, reason),
        worker,
    )
}

/// Sends a dead letter into the open transaction. Dead letters always fit:
/// `DeadLetter::record` bounds payload and headers, and should the broker's
/// limit be lower still, the letter goes again without its payload (a header
/// says so) instead of failing the transaction and, with it, the partition.
pub fn send_letter(
    producer: &TxnProducer,
    letter: &gavel_runtime::dlq::DeadLetter<'_>,
    worker: &str,
) -> Result<(), ProcessorError> {
    let topic = letter.dlq_topic();
    match send_record(producer, letter.record(&topic, worker)) {
        Err(error) if is_too_large(&error) => {
            tracing::warn!(dlq = %topic, %error, "dead letter too large: sent without its payload");
            send_record(producer, letter.record_without_payload(&topic, worker))
        }
        other => other,
    }
}
