//! Consumer lag measured from outside the consuming loop, so it stays true
//! while a worker is stalled, paused or gone: per group, topic and partition,
//! in records (last stable offset - the first committed record at or after the
//! group's committed offset) and in seconds (that record's age). Transaction
//! markers and aborted records occupy offsets but are never delivered: a group
//! that consumed everything reads 0, where the raw high watermark minus the
//! committed offset never does on a transactional topic.

use super::{metrics, Readiness};
use crate::kafka::{self, EofAware};
use crate::{Config, Result, RuntimeError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the record at a committed offset before giving up on
/// its age for this round.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A consumer group and the topics it consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub topics: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// The group's committed next offset; `None` if it never committed (it
    /// starts at the beginning: `auto.offset.reset=earliest`).
    pub committed: Option<i64>,
    /// The last stable offset (read_committed high watermark).
    pub high_watermark: i64,
    pub records: i64,
    pub seconds: f64,
}

/// Measures every target each `every` and publishes the gauges, until aborted.
pub fn spawn(
    config: Config,
    targets: Vec<Target>,
    every: Duration,
    readiness: Option<Readiness>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        let mut monitor = Some(Monitor::new(config));
        loop {
            ticker.tick().await;
            let Some(mut current) = monitor.take() else {
                return;
            };
            let targets = targets.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let result = current.publish_all(&targets);
                (current, result)
            })
            .await;
            let Ok((current, result)) = joined else {
                return;
            };
            monitor = Some(current);
            if let Err(error) = &result {
                metrics::consumer().monitor_errors.inc();
                tracing::warn!(%error, "consumer lag not measured");
            }
            if let Some(readiness) = &readiness {
                readiness.set_dependency("kafka", result.map_err(|e| e.to_string()));
            }
        }
    })
}

/// One measurement of `group` on `topics` (blocking; for `gavel status`).
pub fn measure_group(config: &Config, group: &str, topics: &[String]) -> Result<Vec<PartitionLag>> {
    Monitor::new(config.clone()).measure(group, topics)
}

/// Clients kept across rounds: one per group (to read its committed offsets
/// without joining it) and one group-less probe that reads record timestamps.
pub struct Monitor {
    config: Config,
    groups: HashMap<String, BaseConsumer>,
    probe: Option<BaseConsumer<EofAware>>,
}

impl Monitor {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            groups: HashMap::new(),
            probe: None,
        }
    }

    fn publish_all(&mut self, targets: &[Target]) -> Result<()> {
        let gauges = metrics::consumer();
        for target in targets {
            for lag in self.measure(&target.group, &target.topics)? {
                let partition = lag.partition.to_string();
                let labels = [lag.group.as_str(), lag.topic.as_str(), partition.as_str()];
                gauges
                    .lag_records
                    .with_label_values(&labels)
                    .set(lag.records);
                gauges
                    .lag_seconds
                    .with_label_values(&labels)
                    .set(lag.seconds);
            }
        }
        Ok(())
    }

    /// One measurement of `group` on `topics` (blocking), per partition.
    pub fn measure(&mut self, group: &str, topics: &[String]) -> Result<Vec<PartitionLag>> {
        self.probe()?;
        self.group_client(group)?;
        let consumer = self
            .groups
            .get(group)
            .ok_or_else(|| RuntimeError::Admin(format!("no client for group {group}")))?;
        let ends = self
            .probe
            .as_ref()
            .ok_or_else(|| RuntimeError::Admin("no lag probe".into()))?;
        let mut wanted = TopicPartitionList::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
            for t in metadata.topics() {
                for p in t.partitions() {
                    wanted.add_partition(topic, p.id());
                }
            }
        }
        let committed = consumer.committed_offsets(wanted, TIMEOUT)?;
        let mut lags = Vec::new();
        for element in committed.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let (low, high) = ends.fetch_watermarks(topic, partition, TIMEOUT)?;
            let committed = match element.offset() {
                Offset::Offset(next) => Some(next),
                _ => None,
            };
            let start = committed.unwrap_or(low).max(low);
            lags.push(PartitionLag {
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition,
                committed,
                high_watermark: high,
                records: (high - start).max(0),
                seconds: 0.0,
            });
        }
        self.age_oldest_unprocessed(&mut lags)?;
        Ok(lags)
    }

    /// Reads the first committed record at or after each lagging partition's
    /// start, one topic at a time (an end-of-partition event names no topic).
    /// Its timestamp gives the age and its offset the true start; reaching the
    /// end instead means only transaction markers and aborted records were
    /// left, so the group has consumed everything and its lag is 0.
    fn age_oldest_unprocessed(&mut self, lags: &mut [PartitionLag]) -> Result<()> {
        let mut topics: Vec<String> = lags
            .iter()
            .filter(|l| l.records > 0)
            .map(|l| l.topic.clone())
            .collect();
        topics.sort();
        topics.dedup();
        for topic in topics {
            let of_topic: Vec<&mut PartitionLag> = lags
                .iter_mut()
                .filter(|l| l.topic == topic && l.records > 0)
                .collect();
            self.probe_topic(&topic, of_topic)?;
        }
        Ok(())
    }

    fn probe_topic(&mut self, topic: &str, mut open: Vec<&mut PartitionLag>) -> Result<()> {
        let probe = self.probe()?;
        let mut assignment = TopicPartitionList::new();
        for lag in &open {
            let start = lag.high_watermark - lag.records;
            assignment.add_partition_offset(topic, lag.partition, Offset::Offset(start))?;
        }
        probe.assign(&assignment)?;
        let deadline = Instant::now() + PROBE_TIMEOUT;
        while !open.is_empty() && Instant::now() < deadline {
            let (partition, first) = match probe.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => (m.partition(), Some((m.offset(), m.timestamp().to_millis()))),
                Some(Err(KafkaError::PartitionEOF(p))) => (p, None),
                _ => continue,
            };
            let Some(at) = open.iter().position(|l| l.partition == partition) else {
                continue;
            };
            let lag = open.swap_remove(at);
            match first {
                Some((offset, timestamp)) => {
                    lag.records = (lag.high_watermark - offset).max(0);
                    lag.seconds = timestamp.map_or(0.0, age_seconds);
                }
                None => lag.records = 0,
            }
        }
        // Stop the probe's background fetching until the next round.
        probe.unassign()?;
        Ok(())
    }

    fn group_client(&mut self, group: &str) -> Result<&BaseConsumer> {
        if !self.groups.contains_key(group) {
            let mut client = kafka::client_config(&self.config);
            client
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                // The offsets the group has committed, not waiting for the
                // ones an open transaction carries: read_committed would make
                // librdkafka ask for stable offsets, which the broker refuses
                // while a transaction of the group is open, so a worker killed
                // mid-transaction would leave its lag unreadable exactly while
                // it is down. (Watermarks come from the read_committed probe.)
                .set("isolation.level", "read_uncommitted");
            let consumer: BaseConsumer = client.create()?;
            self.groups.insert(group.to_owned(), consumer);
        }
        self.groups
            .get(group)
            .ok_or_else(|| RuntimeError::Admin(format!("no client for group {group}")))
    }

    /// The group-less reader: watermarks as a read_committed group sees them
    /// (the high one is the last stable offset, not the end of open
    /// transactions) and the timestamps of the oldest unprocessed records.
    fn probe(&mut self) -> Result<&BaseConsumer<EofAware>> {
        if self.probe.is_none() {
            let mut client = kafka::client_config(&self.config);
            client
                .set("group.id", kafka::reader_group(&self.config, "lag-probe"))
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                // What the group itself can read: up to the last stable offset,
                // aborted records skipped (they are never processed, so never lag).
                .set("isolation.level", "read_committed")
                .set("fetch.max.bytes", "1048576")
                .set("max.partition.fetch.bytes", "65536");
            self.probe = Some(client.create_with_context(EofAware)?);
        }
        self.probe
            .as_ref()
            .ok_or_else(|| RuntimeError::Admin("no lag probe".into()))
    }
}

fn age_seconds(timestamp_ms: i64) -> f64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    ((now_ms - timestamp_ms).max(0) as f64) / 1000.0
}
