//! End to end through the real stack: JSON lines -> Kafka (Avro) -> aggregate
//! processor -> events -> sink -> Postgres rows, asserted exactly.

mod common;

use common::{eventually, TestEnv};
use gavel_domain::auction::AuctionStatus;
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_runtime::Shutdown;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn produce_lines(env: &TestEnv, lines: &str) -> gavel_producers::produce::ProduceReport {
    gavel_producers::produce::run(&env.config, lines.as_bytes(), "t-1", &Shutdown::new())
        .await
        .expect("produce runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_known_auction_ends_with_the_expected_winner_price_and_version() {
    let env = TestEnv::with_workers(3).await;
    let report = produce_lines(
        &env,
        r#"{"type":"CreateAuction","auction_id":"lot-7","seller_id":"sam","title":"Bronze Hare","currency":"EUR","starting_price":10000,"min_increment":500,"reserve_price":12000,"ends_in_secs":4}
{"type":"StartAuction","auction_id":"lot-7","actor_id":"sam"}
this line is not JSON
{"type":"PlaceBid","auction_id":"lot-7","bidder_id":"ann","amount":10000,"currency":"EUR"}
{"type":"PlaceBid","auction_id":"lot-7","bidder_id":"bob","amount":-3,"currency":"EUR"}
{"type":"PlaceBid","auction_id":"lot-7","bidder_id":"bob","amount":10400,"currency":"EUR"}
{"type":"PlaceBid","auction_id":"lot-7","bidder_id":"sam","amount":20000,"currency":"EUR"}
{"type":"PlaceBid","auction_id":"lot-7","bidder_id":"bob","amount":12500,"currency":"EUR"}
{"type":"PlaceBid","auction_id":"lot-7","bidder_id":"cyd","amount":13000,"currency":"EUR"}
"#,
    )
    .await;
    let rejected_lines: Vec<u64> = report.rejected.iter().map(|(n, _)| *n).collect();
    assert_eq!(rejected_lines, vec![3, 5], "{:?}", report.rejected);
    assert_eq!(report.sent, 7);

    // No EndAuction is sent: the processor's durable timer ends the auction.

    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    let row = eventually(TIMEOUT, || async {
        let sql = format!(
            "SELECT status, winner_id, current_price_minor, bid_count, version, leading_bidder, tenant_id
             FROM {schema}.auction_details WHERE auction_id = 'lot-7'"
        );
        let row = client.query_opt(&sql, &[]).await.ok().flatten()?;
        (row.get::<_, String>(0) == "ENDED").then_some(row)
    })
    .await
    .expect("lot-7 reaches ENDED in the read model");
    // Accepted: create, start, ann 100.00, bob 125.00, cyd 130.00, timer end = version 6.
    // Rejected by the rules: bob 104.00 (< 105.00), sam (seller).
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("cyd"));
    assert_eq!(row.get::<_, i64>(2), 13_000);
    assert_eq!(row.get::<_, i32>(3), 3);
    assert_eq!(row.get::<_, i64>(4), 6);
    assert_eq!(row.get::<_, Option<String>>(5).as_deref(), Some("cyd"));
    assert_eq!(row.get::<_, String>(6), "t-1");

    let outcomes = env.outcomes(8, TIMEOUT).await;
    assert_eq!(outcomes.len(), 8);
    let codes: Vec<Option<&str>> = outcomes
        .iter()
        .map(|o| o.rejection_code.as_deref())
        .collect();
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 6, "{codes:?}");
    assert!(
        codes.contains(&Some("BID_TOO_LOW")) && codes.contains(&Some("SELLER_CANNOT_BID")),
        "{codes:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generated_workload_materializes_exactly_as_the_pure_domain_predicts() {
    let env = TestEnv::with_workers(3).await;
    let spec = LoadSpec {
        run_id: common::unique("w"),
        tenant: "t-2".into(),
        auctions: 40,
        bids: 2_000,
        duration_ms: 4_000,
        seed: 11,
    };
    let workload = generate(&spec, gavel_producers::produce::now());
    let expected = workload.expected();
    gavel_producers::send_workload(&env.config, &workload, true)
        .await
        .expect("workload sent");

    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    let comparison = common::assert_read_model(&client, &schema, &expected).await;
    assert_eq!(comparison.matching, 40);
    common::assert_views_agree(&client, &schema).await;
    let bidders: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.user_bids"), &[])
        .await
        .expect("count")
        .get(0);
    assert!(bidders > 40, "every auction has bidders: {bidders}");
    assert!(expected
        .values()
        .any(|a| a.status == AuctionStatus::Ended && a.winner_id.is_some()));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_command_id_gets_its_original_outcome_and_no_new_event() {
    let env = TestEnv::with_workers(1).await;
    let create = r#"{"type":"CreateAuction","command_id":"cmd-once","auction_id":"dup-1","seller_id":"s","title":"Print","currency":"EUR","starting_price":100,"min_increment":10,"ends_in_secs":60}"#;
    produce_lines(&env, create).await;
    produce_lines(&env, create).await;
    produce_lines(
        &env,
        r#"{"type":"StartAuction","auction_id":"dup-1","actor_id":"s","expected_version":0}"#,
    )
    .await;
    produce_lines(
        &env,
        r#"{"type":"StartAuction","auction_id":"dup-1","actor_id":"s","expected_version":1}"#,
    )
    .await;

    let outcomes = env.outcomes(4, TIMEOUT).await;
    assert_eq!(outcomes.len(), 4);
    assert_eq!(
        outcomes[0], outcomes[1],
        "the retry is answered with the original outcome"
    );
    assert_eq!(outcomes[0].new_version, Some(1));
    assert_eq!(
        outcomes[2].rejection_code.as_deref(),
        Some("VERSION_CONFLICT")
    );
    assert_eq!(outcomes[3].new_version, Some(2));
    let events = env.read_topic(&env.config.topics.events, 3, Duration::from_secs(5));
    assert_eq!(
        events.len(),
        2,
        "one AuctionCreated and one AuctionStarted, nothing for the retry"
    );
    env.stop().await;
}
