//! `gavel dlq replay <dlq-topic>`: re-produces dead letters to the partition
//! they came from, with their original key, payload and headers.
//!
//! Idempotence: replay progress is the committed offset of a consumer group
//! of its own on the DLQ (`gavel-dlq-replay.<dlq-topic>`), and it commits in
//! the same Kafka transaction as the re-produced records. A second replay
//! starts where the first ended and finds nothing; a replay that crashes
//! half-way aborts, so its records and its progress vanish together. (Marking
//! records for consumers to dedupe on would push the problem into every
//! consumer; one transaction keeps it here.) The transactional id is the group,
//! so two replays of one DLQ at once fence each other instead of doubling up.

use super::header;
use crate::envelope::header_str;
use crate::kafka::{self, EofAware};
use crate::observe::metrics;
use crate::{Config, Result, RuntimeError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);
/// Records per transaction: bounded so a large DLQ never nears the
/// transaction timeout.
const CHUNK: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records re-produced to their original topic.
    pub replayed: u64,
    /// Records without `gavel-dlq-original-*` headers: passed over (and
    /// counted as done), since nothing says where they belong.
    pub skipped: u64,
}

/// The consumer group (and transactional id) that tracks replay of `dlq_topic`.
pub fn replay_group(dlq_topic: &str) -> String {
    format!("gavel-dlq-replay.{dlq_topic}")
}

/// Replays every letter not replayed before (blocking).
pub fn replay(config: &Config, dlq_topic: &str) -> Result<ReplayReport> {
    let group = replay_group(dlq_topic);
    let mut client = kafka::client_config(config);
    client
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer<EofAware> = client.create_with_context(EofAware)?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        kafka::transactional_producer_config(config, &group).create()?;
    producer.init_transactions(TIMEOUT)?;
    let mut open = assign_from_committed(&consumer, dlq_topic)?;
    let mut report = ReplayReport::default();
    while !open.is_empty() {
        let mut offsets = HashMap::new();
        producer.begin_transaction()?;
        let chunk = (|| {
            read_chunk(&consumer, &mut open, |m| {
                offsets.insert(m.partition(), m.offset() + 1);
                replay_one(&producer, dlq_topic, m, &mut report)
            })?;
            commit(&consumer, &producer, dlq_topic, &offsets)
        })();
        if let Err(error) = chunk {
            if let Err(abort_error) = producer.abort_transaction(TIMEOUT) {
                tracing::warn!(%abort_error, "abort failed");
            }
            return Err(error);
        }
    }
    metrics::dlq()
        .replayed
        .with_label_values(&[dlq_topic])
        .inc_by(report.replayed);
    Ok(report)
}

/// Assigns every non-empty partition at the group's committed offset (its
/// start when none); returns the partitions to read to their end.
fn assign_from_committed(consumer: &BaseConsumer<EofAware>, topic: &str) -> Result<HashSet<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let mut wanted = TopicPartitionList::new();
    for t in metadata.topics() {
        if let Some(error) = t.error() {
            return Err(RuntimeError::Admin(format!("{topic}: {error:?}")));
        }
        for p in t.partitions() {
            wanted.add_partition(topic, p.id());
        }
    }
    let committed = consumer.committed_offsets(wanted, TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    let mut open = HashSet::new();
    for element in committed.elements() {
        let partition = element.partition();
        let (low, high) =
            kafka::retry_leaderless(|| consumer.fetch_watermarks(topic, partition, TIMEOUT))?;
        let start = match element.offset() {
            Offset::Offset(next) => next.max(low),
            _ => low,
        };
        if start < high {
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
            open.insert(partition);
        }
    }
    consumer.assign(&assignment)?;
    Ok(open)
}

/// Up to `CHUNK` records, or until every partition reached its end.
fn read_chunk(
    consumer: &BaseConsumer<EofAware>,
    open: &mut HashSet<i32>,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> Result<()>,
) -> Result<()> {
    let (mut read, deadline) = (0, Instant::now() + TIMEOUT);
    while !open.is_empty() && read < CHUNK {
        if Instant::now() > deadline {
            return Err(RuntimeError::Admin("reading the DLQ timed out".into()));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                read += 1;
                each(&m)?;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
    Ok(())
}

fn replay_one(
    producer: &ThreadedProducer<DefaultProducerContext>,
    dlq_topic: &str,
    letter: &BorrowedMessage<'_>,
    report: &mut ReplayReport,
) -> Result<()> {
    let headers = letter.headers();
    let original = |key| headers.and_then(|h| header_str(h, key));
    let topic = original(header::ORIGINAL_TOPIC);
    let partition = original(header::ORIGINAL_PARTITION).and_then(|p| p.parse::<i32>().ok());
    let (Some(topic), Some(partition)) = (topic, partition) else {
        report.skipped += 1;
        tracing::warn!(
            partition = letter.partition(),
            offset = letter.offset(),
            "dead letter without its original coordinates: not replayed"
        );
        return Ok(());
    };
    let replay_of = format!("{dlq_topic}/{}/{}", letter.partition(), letter.offset());
    let attempt = original(header::ATTEMPT).unwrap_or("1");
    // The original headers, plus how often it failed (so a letter that fails
    // again counts on) and where it was replayed from.
    let mut out = OwnedHeaders::new();
    if let Some(headers) = headers {
        for h in headers
            .iter()
            .filter(|h| !h.key.starts_with(header::PREFIX))
        {
            out = out.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    out = out
        .insert(Header {
            key: header::ATTEMPT,
            value: Some(attempt.as_bytes()),
        })
        .insert(Header {
            key: header::REPLAY_OF,
            value: Some(replay_of.as_bytes()),
        });
    let mut record: BaseRecord<'_, [u8], [u8]> =
        BaseRecord::to(topic).partition(partition).headers(out);
    if let Some(key) = letter.key() {
        record = record.key(key);
    }
    if let Some(payload) = letter.payload() {
        record = record.payload(payload);
    }
    producer
        .send(record)
        .map_err(|(error, _)| RuntimeError::Kafka(error))?;
    report.replayed += 1;
    Ok(())
}

fn commit(
    consumer: &BaseConsumer<EofAware>,
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    offsets: &HashMap<i32, i64>,
) -> Result<()> {
    let mut list = TopicPartitionList::new();
    for (partition, next) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    let metadata = consumer
        .group_metadata()
        .ok_or_else(|| RuntimeError::Admin("no consumer group metadata".into()))?;
    producer.send_offsets_to_transaction(&list, &metadata, TIMEOUT)?;
    producer.commit_transaction(TIMEOUT)?;
    Ok(())
}
