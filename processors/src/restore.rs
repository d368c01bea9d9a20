//! Reading compacted topics from the beginning to their end: how stateful
//! processors rebuild their in-memory state on assignment.

use crate::ProcessorError;
use gavel_runtime::{kafka, Config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How often a restore that has not reached its end says where it stands.
const SLOW_RESTORE_REPORT: Duration = Duration::from_secs(10);

/// Reads `partitions` of `topic` from the beginning to their end (the last
/// stable offset: read_committed), calling `on_record(partition, key,
/// payload)` for each record in order. One consumer fetches all partitions in
/// parallel. Returns the number of records read per partition.
pub fn read_to_end(
    config: &Config,
    group: &str,
    topic: &str,
    partitions: &[i32],
    mut on_record: impl FnMut(i32, &str, Option<&[u8]>) -> Result<(), ProcessorError>,
) -> Result<HashMap<i32, u64>, ProcessorError> {
    let client = kafka::replay_config(config, group);
    let consumer: BaseConsumer<kafka::EofAware> = client.create_with_context(kafka::EofAware)?;
    let mut counts: HashMap<i32, u64> = partitions.iter().map(|p| (*p, 0)).collect();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = kafka::retry_leaderless(|| {
            consumer.fetch_watermarks(topic, *partition, Duration::from_secs(10))
        })?;
        if high > low {
            assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
        }
    }
    // Partitions not at their end yet. A set, not a count: a partition can
    // report its end twice (a transaction committing behind the first end),
    // and counting that twice would stop before another partition was read.
    let mut open: HashSet<i32> = assignment
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    consumer.assign(&assignment)?;
    let started = Instant::now();
    let mut next_report = started + SLOW_RESTORE_REPORT;
    while !open.is_empty() {
        if Instant::now() >= next_report {
            // Never silent: a restore that does not end leaves its worker
            // unready, and the operator needs to see where it stands.
            next_report += SLOW_RESTORE_REPORT;
            tracing::warn!(%topic, waiting_for = ?open, read = ?counts,
                elapsed_s = started.elapsed().as_secs(), "restore still reading");
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                let Some(count) = counts.get_mut(&message.partition()) else {
                    continue;
                };
                *count += 1;
                let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                on_record(message.partition(), key, message.payload())?;
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
    Ok(counts)
}
