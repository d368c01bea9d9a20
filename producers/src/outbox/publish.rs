//! Publishing claimed outbox rows: records in id order through the idempotent
//! producer, every acknowledgement awaited; rows Kafka can never take are
//! dead-lettered to `GAVEL_OUTBOX_DLQ_TOPIC`.

use super::store::OutboxRow;
use crate::ProducerError;
use gavel_runtime::dlq::{DeadLetter, DeadLetters, ErrorClass};
use gavel_runtime::envelope::header::EVENT_ID;
use gavel_runtime::failure;
use gavel_runtime::observe::metrics;
use gavel_runtime::{kafka, Config, Shutdown};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode as Code;
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// After shutdown is asked for, how long a batch may still wait for its
/// acknowledgements (Kafka unreachable) before it is given up unmarked: inside
/// Kubernetes' 30 s termination grace.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Kafka can never take this row; `reason` is the metric label.
    Dead {
        reason: &'static str,
        detail: String,
    },
}

const TOO_LARGE: &str = "too-large";
const NOT_ALLOWED: &str = "topic-not-allowed";

pub struct Publisher {
    producer: FutureProducer,
    letters: DeadLetters,
    dlq_topic: String,
    /// Whoever can insert into the outbox names the topic; only these are
    /// published to (`GAVEL_OUTBOX_ALLOWED_TOPICS`).
    allowed: HashSet<String>,
}

enum Pending {
    Settled(Outcome),
    Waiting(DeliveryFuture),
}

impl Publisher {
    pub fn new(config: &Config) -> Result<Self, ProducerError> {
        Ok(Self {
            producer: kafka::relay_producer_config(config).create()?,
            letters: DeadLetters::new(config, &format!("outbox-relay/{}", config.instance_id))?,
            dlq_topic: config.outbox_dlq_topic.clone(),
            allowed: config.outbox_allowed_topics().into_iter().collect(),
        })
    }

    /// Sends every row in order and waits for all acknowledgements. `None`
    /// when shutdown outlasted the grace with acknowledgements outstanding:
    /// nothing may be marked then (the rows go again, as re-sends).
    pub async fn publish(
        &self,
        rows: &[OutboxRow],
        shutdown: &Shutdown,
    ) -> Result<Option<Vec<Outcome>>, ProducerError> {
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            pending.push(self.enqueue(row).await?);
        }
        let all = futures::future::join_all(pending.into_iter().map(settle));
        let published = tokio::select! {
            outcomes = all => outcomes.into_iter().collect::<Result<Vec<_>, _>>().map(Some),
            () = shutdown.grace_over(SHUTDOWN_GRACE) => Ok(None),
            never = report_ack_wait() => match never {},
        };
        metrics::outbox_relay().ack_wait_seconds.set(0.0);
        published
    }

    async fn enqueue(&self, row: &OutboxRow) -> Result<Pending, ProducerError> {
        if !self.allowed.contains(&row.topic) {
            return Ok(Pending::Settled(Outcome::Dead {
                reason: NOT_ALLOWED,
                detail: format!(
                    "{NOT_ALLOWED}: {} is not one of the topics the relay publishes to (GAVEL_OUTBOX_ALLOWED_TOPICS)",
                    row.topic
                ),
            }));
        }
        let headers = match headers(row) {
            Ok(headers) => headers,
            Err(detail) => {
                return Ok(Pending::Settled(Outcome::Dead {
                    reason: "invalid-row",
                    detail,
                }))
            }
        };
        let mut record = FutureRecord::to(&row.topic)
            .key(row.kafka_key())
            .headers(headers);
        if let Some(payload) = &row.payload {
            record = record.payload(payload);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(Pending::Waiting(delivery)),
                Err((KafkaError::MessageProduction(Code::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => return dead_or_fail(error).map(Pending::Settled),
            }
        }
    }

    /// Sends the row to the dead-letter topic and waits for the acknowledgement.
    /// Its original coordinates: topic, partition -1 (none: a replay partitions
    /// by key) and the outbox id as the offset.
    pub async fn dead_letter(&self, row: &OutboxRow, reason: &str) -> Result<(), ProducerError> {
        let original = headers(row).unwrap_or_else(|_| event_id_only(row));
        // An oversized payload would be refused by the DLQ too; the row keeps it.
        let payload = row.payload.as_deref().filter(|_| reason != TOO_LARGE);
        let letter = DeadLetter {
            topic: &row.topic,
            partition: -1,
            offset: row.id,
            timestamp: row.created_at_ms,
            key: Some(row.kafka_key().as_bytes()),
            payload,
            headers: Some(&original),
            class: ErrorClass::Invalid,
            reason,
        };
        self.letters.send_to(&self.dlq_topic, &letter).await?;
        Ok(())
    }
}

async fn settle(pending: Pending) -> Result<Outcome, ProducerError> {
    match pending {
        Pending::Settled(outcome) => Ok(outcome),
        Pending::Waiting(delivery) => match delivery.await {
            Ok(Ok(_)) => Ok(Outcome::Sent),
            Ok(Err((error, _))) => dead_or_fail(error),
            Err(_canceled) => Err(ProducerError::Kafka(KafkaError::Canceled)),
        },
    }
}

/// Publishes how long this batch has waited for its acknowledgements, every
/// second until dropped: a broker that refuses writes (librdkafka retries
/// forever) is otherwise invisible.
async fn report_ack_wait() -> Infallible {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let waited = started.elapsed().as_secs_f64();
        metrics::outbox_relay().ack_wait_seconds.set(waited);
    }
}

/// A dead row for errors no retry can cure; any other error fails the batch,
/// which is then retried whole.
fn dead_or_fail(error: KafkaError) -> Result<Outcome, ProducerError> {
    match failure::kafka_record_refusal(&error) {
        Some(reason) => Ok(Outcome::Dead {
            reason,
            detail: format!("{reason}: {error}"),
        }),
        None => Err(ProducerError::Kafka(error)),
    }
}

/// The row's `headers` object (string values only) plus `event_id`, which
/// always comes from its column, so every re-send carries the same one.
fn headers(row: &OutboxRow) -> Result<OwnedHeaders, String> {
    let parsed: serde_json::Value =
        serde_json::from_str(&row.headers).map_err(|e| format!("invalid-row: headers: {e}"))?;
    let object = parsed
        .as_object()
        .ok_or("invalid-row: headers is not a JSON object")?;
    let mut out = OwnedHeaders::new_with_capacity(object.len() + 1);
    for (key, value) in object.iter().filter(|(key, _)| key.as_str() != EVENT_ID) {
        let value = value
            .as_str()
            .ok_or_else(|| format!("invalid-row: header {key} is not a string"))?;
        out = out.insert(Header {
            key,
            value: Some(value),
        });
    }
    Ok(out.insert(Header {
        key: EVENT_ID,
        value: Some(&row.event_id),
    }))
}

fn event_id_only(row: &OutboxRow) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header {
        key: EVENT_ID,
        value: Some(&row.event_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_runtime::envelope::header_str;

    fn row(headers: &str) -> OutboxRow {
        OutboxRow {
            id: 7,
            aggregate_id: "lot-1".into(),
            topic: "t".into(),
            key: None,
            payload: Some(b"x".to_vec()),
            headers: headers.into(),
            event_id: "e-1".into(),
            created_at_ms: Some(0),
        }
    }

    #[test]
    fn event_id_comes_from_its_column_and_headers_must_be_strings() {
        let headers = headers(&row(r#"{"event_id":"forged","tenant_id":"t1"}"#)).unwrap();
        assert_eq!(header_str(&headers, EVENT_ID), Some("e-1"));
        assert_eq!(header_str(&headers, "tenant_id"), Some("t1"));
        assert_eq!(rdkafka::message::Headers::count(&headers), 2);
        let error = super::headers(&row(r#"{"n":1}"#)).unwrap_err();
        assert!(error.contains("header n is not a string"), "{error}");
        assert!(super::headers(&row("[]")).is_err());
    }

    #[test]
    fn only_errors_no_retry_can_cure_dead_letter_a_row() {
        let missing = KafkaError::MessageProduction(Code::UnknownTopicOrPartition);
        assert!(matches!(
            dead_or_fail(missing),
            Ok(Outcome::Dead {
                reason: "unknown-topic",
                ..
            })
        ));
        let outage = KafkaError::MessageProduction(Code::BrokerTransportFailure);
        assert!(dead_or_fail(outage).is_err());
        let clock_skew = KafkaError::MessageProduction(Code::InvalidRecord);
        assert!(dead_or_fail(clock_skew).is_err());
        assert_eq!(row("{}").kafka_key(), "lot-1");
    }
}
