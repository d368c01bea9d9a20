//! Sends auction commands as Avro to the command topic, keyed by auction id.
//! Sends are pipelined; `flush` waits for every acknowledgement and reports failures.

use crate::ProducerError;
use futures::stream::{FuturesUnordered, StreamExt};
use gavel_domain::auction::AuctionCommand;
use gavel_runtime::auction_codec::{command_record_name, command_to_avro, COMMAND_RECORDS};
use gavel_runtime::avro::{AvroCodec, CachedSchema};
use gavel_runtime::envelope::CommandMeta;
use gavel_runtime::{kafka, Config, RuntimeError};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How many unacknowledged sends to keep in flight before waiting for some.
const MAX_IN_FLIGHT: usize = 50_000;

pub struct CommandProducer {
    topic: Arc<str>,
    producer: FutureProducer,
    writers: HashMap<String, Arc<CachedSchema>>,
    in_flight: FuturesUnordered<DeliveryFuture>,
    pub sent: u64,
    pub failed: u64,
    first_error: Option<String>,
}

impl CommandProducer {
    pub async fn connect(config: &Config) -> Result<Self, ProducerError> {
        let writers = command_writers(config).await?;
        Ok(Self {
            topic: Arc::from(config.topics.commands.as_str()),
            producer: kafka::producer_config(config).create()?,
            writers,
            in_flight: FuturesUnordered::new(),
            sent: 0,
            failed: 0,
            first_error: None,
        })
    }

    /// Encodes and enqueues one command; waits only when too many are in flight.
    pub async fn send(
        &mut self,
        command: &AuctionCommand,
        meta: &CommandMeta,
    ) -> Result<(), ProducerError> {
        let record_name = command_record_name(command);
        let writer = self
            .writers
            .get(&record_name)
            .ok_or_else(|| RuntimeError::Registry(format!("no schema for {record_name}")))?;
        let payload = writer.encode(&command_to_avro(command, meta))?;
        let key = command.auction_id().as_str();
        let topic = Arc::clone(&self.topic);
        let mut record = FutureRecord::to(&topic)
            .key(key)
            .payload(&payload)
            .headers(meta.headers(command.type_name()));
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.in_flight.push(delivery);
                    break;
                }
                Err((error, returned)) => {
                    if !is_queue_full(&error) {
                        return Err(error.into());
                    }
                    record = returned;
                    self.reap_one().await;
                }
            }
        }
        self.sent += 1;
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.reap_one().await;
        }
        Ok(())
    }

    async fn reap_one(&mut self) {
        match self.in_flight.next().await {
            Some(Ok(Ok(_))) => {}
            Some(Ok(Err((error, _)))) => self.record_failure(error.to_string()),
            Some(Err(_canceled)) => self.record_failure("delivery canceled".into()),
            None => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }

    fn record_failure(&mut self, error: String) {
        self.failed += 1;
        self.first_error.get_or_insert(error);
    }

    /// Waits for every in-flight acknowledgement.
    pub async fn flush(&mut self) -> Result<(), ProducerError> {
        while !self.in_flight.is_empty() {
            self.reap_one().await;
        }
        match self.first_error.take() {
            Some(first) => Err(ProducerError::Delivery {
                sent: self.sent,
                failed: self.failed,
                first,
            }),
            None => Ok(()),
        }
    }
}

/// The registered writer schema of every command record, by full record name.
pub async fn command_writers(
    config: &Config,
) -> Result<HashMap<String, Arc<CachedSchema>>, ProducerError> {
    let codec = AvroCodec::new(&config.registry);
    let mut writers = HashMap::new();
    for record in COMMAND_RECORDS {
        writers.insert(
            record.to_owned(),
            codec.writer_for(&config.topics.commands, record).await?,
        );
    }
    Ok(writers)
}

fn is_queue_full(error: &rdkafka::error::KafkaError) -> bool {
    matches!(
        error,
        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)
    )
}
