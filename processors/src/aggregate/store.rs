//! The processor's state store: aggregates in memory, per assigned partition,
//! restored from the compacted changelog when a partition is first seen and
//! released when it is revoked. Writes of a transaction stay in `Pending` until
//! the transaction commits, so an abort never leaves half-applied state behind.

use super::stored::StoredAggregate;
use crate::ProcessorError;
use gavel_runtime::{kafka, Config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Partition = i32;

#[derive(Default)]
pub struct StateStore {
    partitions: HashMap<Partition, HashMap<String, StoredAggregate>>,
}

/// Writes of the open transaction, by partition and aggregate id.
#[derive(Default)]
pub struct Pending {
    pub writes: HashMap<(Partition, String), StoredAggregate>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreStats {
    pub records: u64,
    pub aggregates: usize,
    pub elapsed: Duration,
}

impl StateStore {
    pub fn is_restored(&self, partition: Partition) -> bool {
        self.partitions.contains_key(&partition)
    }

    pub fn get<'a>(
        &'a self,
        pending: &'a Pending,
        partition: Partition,
        key: &str,
    ) -> Option<&'a StoredAggregate> {
        pending
            .writes
            .get(&(partition, key.to_owned()))
            .or_else(|| self.partitions.get(&partition).and_then(|p| p.get(key)))
    }

    pub fn commit(&mut self, pending: Pending) {
        for ((partition, key), state) in pending.writes {
            self.partitions
                .entry(partition)
                .or_default()
                .insert(key, state);
        }
    }

    pub fn release(&mut self, partition: Partition) {
        self.partitions.remove(&partition);
    }

    /// Reads the changelog partition from the beginning to its end (the last
    /// stable offset: read_committed), keeping the latest state per aggregate.
    pub fn restore(
        &mut self,
        config: &Config,
        partition: Partition,
    ) -> Result<RestoreStats, ProcessorError> {
        let started = Instant::now();
        let state = read_changelog(config, partition)?;
        let stats = RestoreStats {
            records: state.1,
            aggregates: state.0.len(),
            elapsed: started.elapsed(),
        };
        self.partitions.insert(partition, state.0);
        Ok(stats)
    }
}

fn read_changelog(
    config: &Config,
    partition: Partition,
) -> Result<(HashMap<String, StoredAggregate>, u64), ProcessorError> {
    let topic = &config.topics.changelog;
    let mut client = kafka::client_config(config);
    client
        .set("group.id", format!("{}-restore", config.aggregate_group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760");
    let consumer: BaseConsumer = client.create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let mut state = HashMap::new();
    let mut records = 0u64;
    if high <= low {
        return Ok((state, 0));
    }
    loop {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                records += 1;
                let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                match message.payload() {
                    None => {
                        state.remove(key);
                    }
                    Some(bytes) => {
                        let stored = StoredAggregate::from_bytes(bytes).map_err(|e| {
                            ProcessorError::Changelog {
                                key: key.to_owned(),
                                reason: e.to_string(),
                            }
                        })?;
                        state.insert(key.to_owned(), stored);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
    Ok((state, records))
}
