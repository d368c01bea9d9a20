//! Produces one command per request and waits for Kafka's acknowledgement, so
//! a 2xx/4xx from the aggregate is only ever awaited for a command that is in
//! the log. Shared by every request: rdkafka batches their sends together.

use super::error::ApiError;
use crate::command_producer::command_writers;
use crate::ProducerError;
use gavel_domain::auction::AuctionCommand;
use gavel_domain::saga::order::OrderCreated;
use gavel_runtime::auction_codec::{command_record_name, command_to_avro};
use gavel_runtime::avro::{json, AvroCodec, CachedSchema};
use gavel_runtime::envelope::header;
use gavel_runtime::envelope::CommandMeta;
use gavel_runtime::saga_wire::{ORDER_CREATED_RECORD, TYPE_HEADER};
use gavel_runtime::{kafka, Config};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a send may wait for room in a full local queue.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

pub struct Sender {
    topic: String,
    orders_topic: String,
    producer: FutureProducer,
    writers: HashMap<String, Arc<CachedSchema>>,
    order_writer: Arc<CachedSchema>,
}

impl Sender {
    pub async fn connect(
        config: &Config,
        delivery_timeout: Duration,
    ) -> Result<Self, ProducerError> {
        let mut client = kafka::producer_config(config);
        client
            // A request is waiting: batch for at most 1 ms, not the bulk producer's 5.
            .set("linger.ms", "1")
            // Fail a send the client is still waiting for, instead of librdkafka's
            // 5 minutes; the client retries with its Idempotency-Key.
            .set(
                "message.timeout.ms",
                delivery_timeout.as_millis().to_string(),
            );
        Ok(Self {
            topic: config.topics.commands.clone(),
            orders_topic: config.topics.orders.clone(),
            producer: client.create()?,
            writers: command_writers(config).await?,
            order_writer: AvroCodec::new(&config.registry)
                .writer_for(&config.topics.orders, ORDER_CREATED_RECORD)
                .await?,
        })
    }

    /// Sends `command` keyed by its auction id (murmur2, like every producer).
    pub async fn send(&self, command: &AuctionCommand, meta: &CommandMeta) -> Result<(), ApiError> {
        let record_name = command_record_name(command);
        let writer = self
            .writers
            .get(&record_name)
            .ok_or_else(|| ApiError::internal(format!("no schema for {record_name}")))?;
        let payload = writer
            .encode(&command_to_avro(command, meta))
            .map_err(ApiError::internal)?;
        let record = FutureRecord::to(&self.topic)
            .key(command.auction_id().as_str())
            .payload(&payload)
            .headers(meta.headers(command.type_name()));
        match self.producer.send(record, Timeout::After(QUEUE_WAIT)).await {
            Ok(_) => Ok(()),
            Err((error, _)) => {
                tracing::warn!(%error, command_id = %meta.command_id, "command not acknowledged");
                Err(ApiError::unavailable(
                    "the command could not be written to Kafka; retry with the same Idempotency-Key",
                )
                .with("command_id", meta.command_id.clone()))
            }
        }
    }

    /// Sends `order.created` keyed by the order id, tenant and correlation in headers.
    pub async fn send_order(
        &self,
        order: &OrderCreated,
        tenant: &str,
        command_id: &str,
    ) -> Result<(), ApiError> {
        let payload = json::encode(&self.order_writer, order).map_err(ApiError::internal)?;
        let headers = [
            (TYPE_HEADER, "order.created"),
            (header::TENANT_ID, tenant),
            (header::CORRELATION_ID, order.order_id.as_str()),
            (header::CAUSATION_ID, command_id),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        });
        let record = FutureRecord::to(&self.orders_topic)
            .key(order.order_id.as_str())
            .payload(&payload)
            .headers(headers);
        match self.producer.send(record, Timeout::After(QUEUE_WAIT)).await {
            Ok(_) => Ok(()),
            Err((error, _)) => {
                tracing::warn!(%error, order_id = %order.order_id, "order not acknowledged");
                Err(ApiError::unavailable(
                    "the order could not be written to Kafka; retry with the same Idempotency-Key",
                ))
            }
        }
    }
}
