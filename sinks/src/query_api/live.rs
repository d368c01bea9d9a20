//! Live updates: this API instance reads the event topic itself (every
//! partition, from the committed end, no consumer-group coordination), turns
//! each event into JSON once and fans it out over a broadcast channel; every
//! SSE connection keeps the events of its auction and tenant.

use crate::SinkError;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::Money;
use gavel_runtime::auction_codec::{event_from_avro, EVENT_RECORDS};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::EventEnvelope;
use gavel_runtime::{kafka, Config, Shutdown};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Per-connection buffer: a client that falls this far behind is told `lagged`.
pub(super) const CHANNEL_CAPACITY: usize = 4096;
/// Recent events kept to bridge a new subscriber's snapshot and its first live event.
const RECENT: usize = 1024;
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// One event, serialized once for every subscriber.
#[derive(Debug)]
pub struct LiveEvent {
    pub tenant_id: String,
    pub auction_id: String,
    pub version: u64,
    pub kind: &'static str,
    pub data: String,
}

#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    recent: Arc<Mutex<VecDeque<Arc<LiveEvent>>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(CHANNEL_CAPACITY).0,
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(RECENT))),
        }
    }

    pub fn publish(&self, event: LiveEvent) {
        let event = Arc::new(event);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // No receivers is fine: nobody is watching right now.
        let _ = self.sender.send(event);
    }

    /// Everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// The recently published events of one auction, oldest first.
    pub fn recent(&self, tenant: &str, auction_id: &str) -> Vec<Arc<LiveEvent>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .filter(|e| e.auction_id == auction_id && e.tenant_id == tenant)
            .cloned()
            .collect()
    }
}

/// Positions a consumer at the committed end of every partition of the event
/// topic, then spawns the task feeding `hub` until `shutdown`. Events committed
/// after this returns reach every subscriber.
pub async fn start(
    config: &Config,
    hub: Hub,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>, SinkError> {
    let group = kafka::reader_group(
        config,
        &format!("query-api.{}", uuid::Uuid::now_v7().simple()),
    );
    let mut client = kafka::consumer_config(config, &group);
    client.set("auto.offset.reset", "latest");
    let consumer: Arc<StreamConsumer> = Arc::new(client.create()?);
    let topic = config.topics.events.clone();
    let positioned = consumer.clone();
    tokio::task::spawn_blocking(move || assign_at_end(&positioned, &topic))
        .await
        .map_err(|e| SinkError::QueryApi(format!("positioning the live feed: {e}")))??;
    let codec = AvroCodec::for_topics(&config.registry, &[&config.topics.events]);
    for record in EVENT_RECORDS {
        // Warms the schema cache so the first live event costs no registry call.
        if let Err(error) = codec.writer_for(&config.topics.events, record).await {
            tracing::debug!(%error, record, "event schema not prefetched");
        }
    }
    tracing::info!(topic = %config.topics.events, "query api live feed started");
    Ok(tokio::spawn(feed(consumer, codec, hub, shutdown)))
}

/// Manual assignment of every partition at its read_committed end (the LSO):
/// no group join, so the feed is live as soon as this returns.
fn assign_at_end(consumer: &StreamConsumer, topic: &str) -> Result<(), SinkError> {
    let metadata = consumer.fetch_metadata(Some(topic), KAFKA_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(SinkError::QueryApi(format!(
            "event topic {topic} not found (run `gavel topics create`)"
        )));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (_, end) =
            kafka::retry_leaderless(|| consumer.fetch_watermarks(topic, partition, KAFKA_TIMEOUT))?;
        assignment.add_partition_offset(topic, partition, Offset::Offset(end))?;
    }
    consumer.assign(&assignment)?;
    Ok(())
}

async fn feed(consumer: Arc<StreamConsumer>, codec: AvroCodec, hub: Hub, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.triggered() => break,
            received = consumer.recv() => match received {
                Ok(message) => match decode(&codec, &message).await {
                    Ok((event, envelope)) => hub.publish(to_live(&event, &envelope)),
                    Err(reason) => tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        %reason,
                        "undecodable event not pushed live"
                    ),
                },
                Err(error) => {
                    tracing::warn!(%error, "live feed consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    tracing::info!("query api live feed stopped");
}

async fn decode(
    codec: &AvroCodec,
    message: &BorrowedMessage<'_>,
) -> Result<(AuctionEvent, EventEnvelope), gavel_runtime::RuntimeError> {
    let payload = message
        .payload()
        .ok_or_else(|| gavel_runtime::RuntimeError::Mapping("record has no payload".into()))?;
    let decoded = codec.decode(payload).await?;
    event_from_avro(&decoded.schema.name, decoded.value)
}

pub fn money(m: &Money) -> Value {
    json!({ "amount_minor": m.minor(), "currency": m.currency().as_str() })
}

/// The JSON clients get: type, auction, version, time, and what changed.
pub fn to_live(event: &AuctionEvent, envelope: &EventEnvelope) -> LiveEvent {
    let mut data = json!({
        "type": event.type_name(),
        "auction_id": envelope.aggregate_id.as_str(),
        "version": envelope.aggregate_version,
        "event_id": envelope.event_id,
        "occurred_at_ms": envelope.occurred_at.millis(),
    });
    let extra = match event {
        AuctionEvent::Created {
            seller_id,
            title,
            starting_price,
            end_time,
            ..
        } => json!({
            "status": "DRAFT", "seller_id": seller_id.as_str(), "title": title,
            "current_price": money(starting_price), "end_time_ms": end_time.millis(),
        }),
        AuctionEvent::Started { .. } => json!({ "status": "ACTIVE" }),
        // The bidder's maximum is secret until bid: never on the live feed.
        AuctionEvent::BidPlaced {
            bidder_id,
            amount,
            previous_price,
            automatic,
            ..
        } => json!({
            "bidder_id": bidder_id.as_str(), "current_price": money(amount),
            "previous_price": money(previous_price), "automatic": automatic,
        }),
        AuctionEvent::Cancelled { reason } => json!({ "status": "CANCELLED", "reason": reason }),
        AuctionEvent::Ended {
            winner_id,
            final_price,
            reserve_met,
            ..
        } => json!({
            "status": "ENDED", "winner_id": winner_id.as_ref().map(|w| w.as_str()),
            "current_price": money(final_price), "reserve_met": reserve_met,
        }),
    };
    if let (Some(target), Value::Object(fields)) = (data.as_object_mut(), extra) {
        target.extend(fields);
    }
    LiveEvent {
        tenant_id: envelope.tenant_id.to_string(),
        auction_id: envelope.aggregate_id.to_string(),
        version: envelope.aggregate_version,
        kind: event.type_name(),
        data: data.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_domain::{AuctionId, Currency, TenantId, Timestamp, UserId};

    #[test]
    fn a_bid_becomes_json_with_the_new_price_in_minor_units() {
        let eur = |minor| Money::new(minor, Currency::parse("EUR").unwrap()).unwrap();
        let envelope = EventEnvelope {
            event_id: "e-1".into(),
            aggregate_id: AuctionId::new("lot-7"),
            aggregate_version: 4,
            occurred_at: Timestamp::from_millis(1_700),
            correlation_id: "c".into(),
            causation_id: "c".into(),
            tenant_id: TenantId::new("t-1"),
            schema_version: 1,
        };
        let event = AuctionEvent::BidPlaced {
            bidder_id: UserId::new("ann"),
            amount: eur(10_500),
            previous_price: eur(10_000),
            placed_at: Timestamp::from_millis(1_700),
            max_amount: Some(eur(90_000)),
            automatic: true,
        };
        let live = to_live(&event, &envelope);
        assert_eq!((live.kind, live.version), ("BidPlaced", 4));
        assert_eq!(
            (live.tenant_id.as_str(), live.auction_id.as_str()),
            ("t-1", "lot-7")
        );
        let data: Value = serde_json::from_str(&live.data).unwrap();
        assert_eq!(
            data,
            json!({
                "type": "BidPlaced", "auction_id": "lot-7", "version": 4, "event_id": "e-1",
                "occurred_at_ms": 1_700, "bidder_id": "ann",
                "current_price": {"amount_minor": 10_500, "currency": "EUR"},
                "previous_price": {"amount_minor": 10_000, "currency": "EUR"},
                "automatic": true,
            })
        );
        assert!(
            !live.data.contains("90000"),
            "the maximum leaked: {}",
            live.data
        );
    }
}
