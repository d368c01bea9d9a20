//! `gavel dlq list` and `gavel dlq show`: what sits in the dead-letter topics.

use super::SUFFIX;
use crate::kafka::{self, EofAware};
use crate::{Config, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
/// A DLQ is small by design; reading one should never take longer than this.
const READ_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqSummary {
    pub topic: String,
    /// Committed records (transaction markers are not records, so the
    /// watermarks alone would over-count letters written in transactions).
    pub records: u64,
}

#[derive(Debug, Clone)]
pub struct DlqRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub payload_bytes: usize,
    /// Every header, values as (lossy) UTF-8: original ones and `gavel-dlq-*`.
    pub headers: Vec<(String, String)>,
}

impl DlqRecord {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// This pipeline's dead-letter topics that exist, with their record counts
/// (blocking): the `*.dlq` of every topic it consumes, named from the
/// configuration, and the outbox relay's. Other pipelines' on the same
/// cluster are not ours to show.
pub fn list(config: &Config) -> Result<Vec<DlqSummary>> {
    let consumer = reader(config)?;
    let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
    let on_cluster: HashSet<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    let topics: Vec<String> = pipeline_dlq_topics(config)
        .into_iter()
        .filter(|name| on_cluster.contains(name.as_str()))
        .collect();
    let mut summaries = Vec::new();
    for topic in topics {
        let mut records = 0;
        read(config, &topic, usize::MAX, |_| records += 1)?;
        summaries.push(DlqSummary { topic, records });
    }
    Ok(summaries)
}

/// The dead-letter topics this configuration names, sorted.
pub fn pipeline_dlq_topics(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = kafka::auction_topic_names(config)
        .into_iter()
        .filter(|name| name.ends_with(SUFFIX))
        .chain([config.outbox_dlq_topic.clone()])
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The first `limit` records of `topic`, in partition then offset order (blocking).
pub fn show(config: &Config, topic: &str, limit: usize) -> Result<Vec<DlqRecord>> {
    let mut records = Vec::new();
    read(config, topic, limit, |m| records.push(to_record(m)))?;
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

fn to_record(m: &BorrowedMessage<'_>) -> DlqRecord {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                    (h.key.to_owned(), value.into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    DlqRecord {
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m.timestamp().to_millis(),
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        payload_bytes: m.payload().map_or(0, <[u8]>::len),
        headers,
    }
}

fn reader(config: &Config) -> Result<BaseConsumer<EofAware>> {
    let mut client = kafka::client_config(config);
    client
        .set("group.id", "gavel-dlq-inspect")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    Ok(client.create_with_context(EofAware)?)
}

/// Reads `topic` from the start to its end (or `limit` records), without a group.
fn read(
    config: &Config,
    topic: &str,
    limit: usize,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> Result<()> {
    let consumer = reader(config)?;
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    let mut open = HashSet::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) =
                kafka::retry_leaderless(|| consumer.fetch_watermarks(topic, p.id(), TIMEOUT))?;
            if high > low {
                assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
                open.insert(p.id());
            }
        }
    }
    if open.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let (mut seen, deadline) = (0, Instant::now() + READ_LIMIT);
    while !open.is_empty() && seen < limit && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                seen += 1;
                each(&m);
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
