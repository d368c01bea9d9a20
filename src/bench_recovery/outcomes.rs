//! Reads the whole outcome topic (committed records only) to count the
//! commands answered: exactly one outcome per command sent means nothing was
//! lost and nothing decided twice.

use anyhow::Result;
use gavel_runtime::envelope::header;
use gavel_runtime::kafka::{self, EofAware};
use gavel_runtime::Config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// (distinct command ids, outcome records) on the outcome topic now (blocking).
pub fn answered(config: &Config) -> Result<(usize, usize)> {
    let topic = &config.topics.outcomes;
    let mut client = kafka::client_config(config);
    client
        .set("group.id", format!("{}-outcome-count", config.instance_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer<EofAware> = client.create_with_context(EofAware)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..config.partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let (mut ids, mut records, mut at_end) = (HashSet::new(), 0, HashSet::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < config.partitions as usize && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                records += 1;
                let id = message.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == header::COMMAND_ID)
                        .and_then(|h| h.value.map(<[u8]>::to_vec))
                });
                ids.extend(id);
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            _ => {}
        }
    }
    Ok((ids.len(), records))
}
