//! Auction events in the event topic's Avro, for tests that put them straight
//! onto the topic (out of order, with values no aggregate would write).

use super::TestEnv;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use gavel_runtime::auction_codec::{event_record_name, event_to_avro};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::{CommandMeta, EventEnvelope};

/// `event` as version `version` of auction `id`, occurred at 1 ms.
pub async fn encoded(env: &TestEnv, id: &str, version: u64, event: &AuctionEvent) -> Vec<u8> {
    encoded_at(env, id, version, event, Timestamp::from_millis(1)).await
}

/// `encoded`, occurred at `occurred_at`.
pub async fn encoded_at(
    env: &TestEnv,
    id: &str,
    version: u64,
    event: &AuctionEvent,
    occurred_at: Timestamp,
) -> Vec<u8> {
    let topic = &env.config.topics.events;
    let envelope = EventEnvelope::caused_by(
        &CommandMeta::new(TenantId::new("t-es"), UserId::new("u-es")),
        &AuctionId::new(id),
        version,
        occurred_at,
    );
    let codec = AvroCodec::new(&env.config.registry);
    let writer = codec
        .writer_for(topic, event_record_name(event))
        .await
        .expect("schema");
    writer
        .encode(&event_to_avro(event, &envelope))
        .expect("encode")
}

/// An auction's creation, ending at 90 s after the epoch.
pub fn created(title: &str) -> AuctionEvent {
    let eur = |minor| Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("money");
    AuctionEvent::Created {
        seller_id: UserId::new("seller"),
        title: title.into(),
        starting_price: eur(1_000),
        reserve_price: None,
        min_increment: eur(100),
        end_time: Timestamp::from_millis(90_000),
    }
}
