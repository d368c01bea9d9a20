//! Schema evolution on the real stack: PlaceBid v1 records (as an older
//! producer writes them, under the v1 schema registered beside v2) and v2
//! proxy bids go through one pipeline of this build's workers. Nothing is
//! dead-lettered; the v1 bids read as plain bids, the v2 proxy answers them,
//! the read model shows the automatic bid without its maximum, and the
//! event store's replay (`audit as-of`) and hash chains agree.

mod common;

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use common::events::{created, encoded};
use common::{api, eventually, gavel, TestEnv};
use gavel_domain::auction::{AuctionCommand, AuctionEvent, PlaceBid};
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use gavel_runtime::auction_codec::{command_record_name, command_to_avro, event_to_avro};
use gavel_runtime::envelope::{CommandMeta, EventEnvelope};
use gavel_runtime::registry::RegistryClient;
use gavel_sinks::views::rebuild::{self, Source};
use gavel_sinks::views::View;
use rdkafka::message::OwnedHeaders;
use std::time::Duration;

const PLACE_BID_V1: &str = include_str!("../schemas/history/PlaceBid.v1.avsc");
const BID_PLACED_V1: &str = include_str!("../schemas/history/BidPlaced.v1.avsc");
const TENANT: &str = "t-evolve";
const AUCTION: &str = "lot-evolve";
/// An auction whose bid a v1 aggregate wrote: BidPlaced under the v1 schema.
const OLD_AUCTION: &str = "lot-from-v1";

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
}

/// Version 3 of `OLD_AUCTION`, a bid as the v1 aggregate wrote it.
fn v1_bid_placed(schema_id: u32) -> Vec<u8> {
    let event = AuctionEvent::BidPlaced {
        bidder_id: UserId::new("dora"),
        amount: eur(1_000),
        previous_price: eur(1_000),
        placed_at: Timestamp::from_millis(1),
        max_amount: None,
        automatic: false,
    };
    let mut envelope = EventEnvelope::caused_by(
        &CommandMeta::new(TenantId::new("t-es"), UserId::new("dora")),
        &AuctionId::new(OLD_AUCTION),
        3,
        Timestamp::from_millis(1),
    );
    envelope.schema_version = 1;
    let Value::Record(mut fields) = event_to_avro(&event, &envelope) else {
        unreachable!("events are records")
    };
    fields.retain(|(name, _)| name != "max_amount_minor" && name != "automatic");
    encode_v1(BID_PLACED_V1, schema_id, fields)
}

fn encode_v1(schema: &str, schema_id: u32, fields: Vec<(String, Value)>) -> Vec<u8> {
    let schema = Schema::parse_str(schema).unwrap();
    let mut payload = vec![0];
    payload.extend_from_slice(&schema_id.to_be_bytes());
    GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_ref(&mut payload, &Value::Record(fields))
        .expect("a valid v1 record");
    payload
}

/// A bid as a v1 producer writes it: the v1 schema's id and fields.
fn v1_bid(schema_id: u32, bidder: &str, minor: i64) -> (Vec<u8>, CommandMeta) {
    let meta = CommandMeta::new(TenantId::new(TENANT), UserId::new(bidder));
    let command = AuctionCommand::PlaceBid(PlaceBid {
        auction_id: AuctionId::new(AUCTION),
        bidder_id: UserId::new(bidder),
        amount: eur(minor),
        max_amount: None,
    });
    let Value::Record(mut fields) = command_to_avro(&command, &meta) else {
        unreachable!("commands are records")
    };
    fields.retain(|(name, _)| name != "max_amount_minor");
    let payload = encode_v1(PLACE_BID_V1, schema_id, fields);
    assert_eq!(
        command_record_name(&command),
        "dev.gavel.auction.commands.PlaceBid"
    );
    (payload, meta)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v1_bids_and_v2_proxy_bids_share_one_pipeline_and_replay() {
    let mut env = TestEnv::new(1).await;
    let commands = env.config.topics.commands.clone();
    let registry = RegistryClient::new(&env.config.registry);
    // The v1 schemas stay registered beside v2 (BACKWARD_TRANSITIVE holds
    // both ways for an added field with a default).
    let place_bid_subject = format!("{commands}-dev.gavel.auction.commands.PlaceBid");
    let v1_id = registry
        .register_raw(&place_bid_subject, PLACE_BID_V1)
        .await
        .expect("v1 PlaceBid registers beside v2");
    let v1_id = u32::try_from(v1_id).unwrap();
    let events_subject = format!(
        "{}-dev.gavel.auction.events.BidPlaced",
        env.config.topics.events
    );
    let v1_event_id = registry
        .register_raw(&events_subject, BID_PLACED_V1)
        .await
        .expect("v1 BidPlaced registers beside v2");
    let v1_event_id = u32::try_from(v1_event_id).unwrap();

    // An auction a v1 aggregate bid on: its BidPlaced is a v1 record.
    let events = env.config.topics.events.clone();
    let started = AuctionEvent::Started {
        started_at: Timestamp::from_millis(1),
    };
    for payload in [
        encoded(&env, OLD_AUCTION, 1, &created("From v1")).await,
        encoded(&env, OLD_AUCTION, 2, &started).await,
        v1_bid_placed(v1_event_id),
    ] {
        env.produce_raw(&events, OLD_AUCTION, &payload, OwnedHeaders::new());
    }

    let end = gavel_producers::produce::now().millis() + 600_000;
    api::produce(
        &env,
        TENANT,
        &api::create_and_start(AUCTION, end, 10_000, true),
    )
    .await;
    let (payload, meta) = v1_bid(v1_id, "ann", 10_000);
    env.produce_raw(&commands, AUCTION, &payload, meta.headers("PlaceBid"));
    let proxy = r#"{"type":"PlaceBid","auction_id":"lot-evolve","bidder_id":"bob","amount":10100,"currency":"EUR","max_amount":30000}"#;
    api::produce(&env, TENANT, &format!("{proxy}\n")).await;
    let (payload, meta) = v1_bid(v1_id, "carol", 20_000);
    env.produce_raw(&commands, AUCTION, &payload, meta.headers("PlaceBid"));

    env.start_aggregate();
    env.start_event_store();
    env.start_project();
    env.start_sink();

    let outcomes = env.outcomes(5, Duration::from_secs(90)).await;
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.accepted), "{outcomes:?}");

    // carol's v1 bid of 20,000 met bob's maximum: his proxy answered 20,100.
    let pg = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    let row = eventually(Duration::from_secs(60), || async {
        let row = pg
            .query_opt(
                &format!(
                    "SELECT current_price_minor, leading_bidder, bid_count, last_bid_automatic
                     FROM {schema}.auction_details WHERE auction_id = $1 AND version = 6"
                ),
                &[&AUCTION],
            )
            .await
            .ok()??;
        Some((
            row.get::<_, i64>(0),
            row.get::<_, Option<String>>(1),
            row.get::<_, i32>(2),
            row.get::<_, bool>(3),
        ))
    })
    .await
    .expect("the auction's row reaches version 6");
    assert_eq!(row, (20_100, Some("bob".into()), 4, true));
    let details: String = pg
        .query_one(
            &format!("SELECT bidders::text FROM {schema}.auction_details WHERE auction_id = $1"),
            &[&AUCTION],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !details.contains("30000"),
        "a maximum leaked into the view: {details}"
    );
    let old = eventually(Duration::from_secs(30), || async {
        let row = pg
            .query_opt(
                &format!(
                    "SELECT bid_count, last_bid_automatic, leading_bidder
                     FROM {schema}.auction_details WHERE auction_id = $1 AND version = 3"
                ),
                &[&OLD_AUCTION],
            )
            .await
            .ok()??;
        Some((
            row.get::<_, i32>(0),
            row.get::<_, bool>(1),
            row.get::<_, String>(2),
        ))
    })
    .await;
    assert_eq!(
        old,
        Some((1, false, "dora".into())),
        "the v1 bid reads as a plain bid"
    );

    // Nothing was dead-lettered on the way.
    for topic in [&commands, &env.config.topics.events] {
        let dead = env.read_topic(&format!("{topic}.dlq"), 1, Duration::from_secs(3));
        assert!(dead.is_empty(), "{topic}.dlq has records");
    }

    // The event store holds the six events, its chains verify, and a replay
    // from it rebuilds bob's proxy state.
    env.wait_for_event_rows(Some(AUCTION), 6).await;
    env.wait_for_event_rows(Some(OLD_AUCTION), 3).await;
    let verify = gavel(&env.config, &["audit", "verify"]);
    assert!(verify.status.success(), "{verify:?}");
    let as_of = gavel(&env.config, &["audit", "as-of", AUCTION, &end.to_string()]);
    let state = String::from_utf8_lossy(&as_of.stdout);
    assert!(as_of.status.success(), "{as_of:?}");
    let state: serde_json::Value = serde_json::from_str(&state).expect("a JSON state");
    assert_eq!(state["leading_bidder"], "bob");
    assert_eq!(state["leading_max"]["minor"], 30_000);
    assert_eq!(state["version"], 6);

    // A rebuild of every view from the mixed history in the event store
    // gives the rows the live pipeline made.
    let report = rebuild::rebuild(&env.config, &View::ALL, Source::EventStore)
        .await
        .expect("rebuild from the event store");
    assert_eq!(report.skipped, 0);
    assert!(report.records >= 9, "{} records replayed", report.records);
    let after: (i64, bool) = {
        let row = pg
            .query_one(
                &format!(
                    "SELECT current_price_minor, last_bid_automatic
                     FROM {schema}.auction_details WHERE auction_id = $1"
                ),
                &[&AUCTION],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(after, (20_100, true));
    common::assert_views_agree(&pg, &schema).await;

    env.stop().await;
}
