//! The broker's raw limit from Rust in the same run: rdkafka producing
//! command-sized records flat out with the command producer's settings, then
//! one consumer reading them all back. No Avro, no transactions, no logic:
//! what any Gavel stage is compared with.

use anyhow::{bail, Result};
use gavel_runtime::kafka::{self, TopicSpec};
use gavel_runtime::Config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::time::{Duration, Instant};

/// About the size of an Avro PlaceBid with its headers' worth of bytes.
pub const RECORD_BYTES: usize = 160;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RawLimit {
    pub records: u64,
    pub record_bytes: usize,
    pub produce_records_per_s: f64,
    pub consume_records_per_s: f64,
}

pub async fn measure(config: &Config, records: u64) -> Result<RawLimit> {
    let topic = format!("{}.raw", config.instance_id);
    let spec = TopicSpec {
        name: topic.clone(),
        partitions: config.partitions,
        configs: Vec::new(),
    };
    kafka::create_topics(config, &[spec]).await?;
    let config2 = config.clone();
    let topic2 = topic.clone();
    let result = tokio::task::spawn_blocking(move || {
        let produce = produce(&config2, &topic2, records)?;
        let consume = consume(&config2, &topic2, records)?;
        anyhow::Ok((produce, consume))
    })
    .await?;
    kafka::delete_topics(config, &[&topic]).await?;
    let (produce, consume) = result?;
    Ok(RawLimit {
        records,
        record_bytes: RECORD_BYTES,
        produce_records_per_s: records as f64 / produce.as_secs_f64(),
        consume_records_per_s: records as f64 / consume.as_secs_f64(),
    })
}

fn produce(config: &Config, topic: &str, records: u64) -> Result<Duration> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        kafka::producer_config(config).create()?;
    let payload = vec![b'x'; RECORD_BYTES];
    let started = Instant::now();
    for n in 0..records {
        let key = format!("lot-{}", n % 10_000);
        let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(started.elapsed())
}

fn consume(config: &Config, topic: &str, records: u64) -> Result<Duration> {
    let consumer: BaseConsumer =
        kafka::consumer_config(config, &format!("{topic}-reader")).create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..kafka::partition_count(config, topic)? {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let mut read = 0;
    while read < records {
        if Instant::now() > deadline {
            bail!("read {read} of {records} raw records within 300 s");
        }
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message?;
            read += 1;
        }
    }
    Ok(started.elapsed())
}
