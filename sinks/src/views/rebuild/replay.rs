//! A topic read from offset 0 up to per-partition targets that may rise
//! between calls: records at or past a target are held back, not handed out,
//! until a later call's target covers them.

use crate::SinkError;
use gavel_runtime::kafka::{self, EofAware};
use gavel_runtime::Config;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

pub struct TopicReplay {
    topic: String,
    consumer: StreamConsumer<EofAware>,
    /// Next offset per partition after the last record handed out.
    position: HashMap<i32, i64>,
    /// Records read past the current targets.
    held: Vec<OwnedMessage>,
}

impl TopicReplay {
    /// A consumer on every partition of `topic`, from the beginning.
    pub fn open(config: &Config, topic: &str, group: &str) -> Result<Self, SinkError> {
        let client = kafka::replay_config(config, group);
        let consumer: StreamConsumer<EofAware> = client.create_with_context(EofAware)?;
        let partitions = kafka::partition_count(config, topic)?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            topic: topic.to_owned(),
            consumer,
            position: (0..partitions).map(|p| (p, 0)).collect(),
            held: Vec::new(),
        })
    }

    /// The next records below `targets` (in offset order per partition), at
    /// most about `max`; empty once every partition stands at its target.
    pub async fn next_batch(
        &mut self,
        targets: &HashMap<i32, i64>,
        max: usize,
    ) -> Result<Vec<OwnedMessage>, SinkError> {
        let target = |partition: i32| targets.get(&partition).copied().unwrap_or(0);
        let (mut batch, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|m| m.offset() < target(m.partition()));
        self.held = later;
        for message in &batch {
            self.position
                .insert(message.partition(), message.offset() + 1);
        }
        while batch.len() < max && !self.reached(targets) {
            match tokio::time::timeout(Duration::from_millis(200), self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    let message = message.detach();
                    let partition = message.partition();
                    if message.offset() < target(partition) {
                        self.position.insert(partition, message.offset() + 1);
                        batch.push(message);
                    } else {
                        // Everything before it has been read: its partition is
                        // at the target even if compaction or transaction
                        // markers left no record at the target offset itself.
                        self.passed(partition, target(partition));
                        self.held.push(message);
                    }
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    // An end-of-partition event may be stale (queued before a
                    // higher target was set): only the consumer's actual
                    // position can say the target was reached.
                    if self.fetched_to(partition) >= target(partition) {
                        self.passed(partition, target(partition));
                    }
                }
                Ok(Err(error)) => return Err(error.into()),
                Err(_) => {}
            }
        }
        Ok(batch)
    }

    fn reached(&self, targets: &HashMap<i32, i64>) -> bool {
        self.position
            .iter()
            .all(|(p, pos)| *pos >= targets.get(p).copied().unwrap_or(0))
    }

    /// The next offset the consumer fetches on `partition` (0 when unknown).
    fn fetched_to(&self, partition: i32) -> i64 {
        let Ok(list) = self.consumer.position() else {
            return 0;
        };
        match list
            .find_partition(&self.topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(next)) => next,
            _ => 0,
        }
    }

    /// Marks `partition` as read up to `target`.
    fn passed(&mut self, partition: i32, target: i64) {
        let position = self.position.entry(partition).or_insert(0);
        *position = (*position).max(target);
    }
}
