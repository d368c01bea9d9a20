//! The view sink: view records produced straight onto the view topics, as a
//! projector (or anyone who can write them) would.

use crate::common::process::Worker;
use crate::common::role::TestRole;
use crate::common::wire;
use crate::common::{eventually, TestEnv, TriggerOnDrop};
use crate::{
    assert_exits_with, assert_letter, assert_no_letters, letters, readiness_becomes,
    waits_for_postgres, WAIT,
};
use gavel_domain::auction::AuctionStatus;
use gavel_domain::views::{AuctionDetails, AuctionListItem, BidderSummary, UserBid};
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use gavel_runtime::observe::Readiness;
use gavel_runtime::view_wire::{AUCTION_DETAILS_RECORD, AUCTION_LIST_RECORD, USER_BID_RECORD};
use gavel_runtime::Shutdown;
use gavel_sinks::views::{self, SinkStats};
use rdkafka::message::OwnedHeaders;
use tokio::task::JoinHandle;

/// An end time Postgres cannot hold: 10^16 ms is an interval out of range.
const FAR_FUTURE_MS: i64 = 10_000_000_000_000_000;

/// A running auction's details record, with one bidder.
fn details(id: &str) -> AuctionDetails {
    let eur = |minor| Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("money");
    let at = Timestamp::from_millis(1_700_000_000_000);
    AuctionDetails {
        auction_id: AuctionId::new(id),
        tenant_id: TenantId::new("t"),
        seller_id: UserId::new("seller"),
        title: "Etching".into(),
        status: AuctionStatus::Active,
        starting_price: eur(100),
        reserve_price: None,
        min_increment: eur(10),
        current_price: eur(150),
        bid_count: 1,
        leading_bidder: Some(UserId::new("bidder")),
        winner_id: None,
        end_time: at.plus_millis(3_600_000),
        created_at: at,
        updated_at: at,
        version: 3,
        bidder_count: 1,
        bidders: vec![BidderSummary {
            user_id: UserId::new("bidder"),
            highest_bid: eur(150),
            bid_count: 1,
            last_bid_at: at,
        }],
        last_bid_automatic: false,
    }
}

fn list_item(row: &AuctionDetails) -> AuctionListItem {
    AuctionListItem::of(row).expect("an active auction is listed")
}

fn user_bid(row: &AuctionDetails) -> UserBid {
    UserBid::of(row, &row.bidders[0])
}

/// `row` as the projector writes it: Avro, this build's schema of its record.
async fn publish(env: &TestEnv, topic: &str, key: &str, row: &impl serde::Serialize) {
    let topics = &env.config.topics;
    let record = if topic == topics.view_details {
        AUCTION_DETAILS_RECORD
    } else if topic == topics.view_list {
        AUCTION_LIST_RECORD
    } else {
        USER_BID_RECORD
    };
    let payload = wire::encode(&env.config, topic, record, row).await;
    env.produce_raw(topic, key, &payload, OwnedHeaders::new());
}

fn spawn_sink(
    config: gavel_runtime::Config,
    shutdown: &Shutdown,
    readiness: &Readiness,
) -> JoinHandle<SinkStats> {
    let (shutdown, readiness) = (shutdown.clone(), readiness.clone());
    tokio::spawn(async move {
        views::run_with(config, shutdown, readiness)
            .await
            .expect("the view sink keeps running")
    })
}

/// Ids of `table` among `ids`, once all of them are there.
async fn wait_for_rows(env: &TestEnv, table: &str, ids: &[&str]) {
    let client = env.pg().await;
    let sql = format!(
        "SELECT count(*) FROM {}.{table} WHERE auction_id = ANY($1)",
        env.config.postgres_schema
    );
    let landed = eventually(WAIT, || async {
        let count: i64 = client.query_one(&sql, &[&ids]).await.ok()?.get(0);
        (count == ids.len() as i64).then_some(())
    })
    .await;
    assert!(landed.is_some(), "{table} never held {ids:?}");
}

async fn count_rows(env: &TestEnv, table: &str, id: &str) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM {}.{table} WHERE auction_id = $1",
        env.config.postgres_schema
    );
    env.pg()
        .await
        .query_one(&sql, &[&id])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn view_rows_postgres_refuses_are_dead_lettered_and_the_rows_around_them_land() {
    // One partition, everything produced before the sink starts: the poison
    // records sit between good ones in the sink's first batch.
    let env = TestEnv::new(1).await;
    let topics = env.config.topics.clone();
    let mut nul = details("nul");
    nul.title = "Bronze\u{0}Hare".into();
    let mut far = details("far");
    far.end_time = Timestamp::from_millis(FAR_FUTURE_MS);
    let mut counted = details("counted");
    counted.bid_count = 3_000_000_000;
    // A version beyond bigint cannot even be written: the schema's long
    // bounds it. A count beyond integer can, and Postgres refuses it.
    let mut counted_bid = user_bid(&details("counted-bid"));
    counted_bid.bid_count = 3_000_000_000;
    // auction_details offsets 0..=4, auction_list 0..=3, user_bids 0..=3.
    for row in [&details("before"), &nul, &far, &counted, &details("after")] {
        publish(&env, &topics.view_details, row.auction_id.as_str(), row).await;
    }
    for row in [&details("before"), &far, &nul, &details("after")] {
        publish(
            &env,
            &topics.view_list,
            row.auction_id.as_str(),
            &list_item(row),
        )
        .await;
    }
    let bids = [
        user_bid(&details("before")),
        counted_bid,
        user_bid(&nul),
        user_bid(&details("after")),
    ];
    for bid in &bids {
        publish(&env, &topics.view_user_bids, &bid.key(), bid).await;
    }
    // A row as JSON, as releases before the Avro contract wrote it: still
    // read. Bytes that are neither: poison.
    let legacy = serde_json::to_vec(&details("legacy")).expect("json");
    env.produce_raw(&topics.view_details, "legacy", &legacy, OwnedHeaders::new());
    env.produce_raw(
        &topics.view_details,
        "junk",
        b"\x07junk",
        OwnedHeaders::new(),
    );
    let (shutdown, readiness) = (Shutdown::new(), Readiness::new("sink"));
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let sink = spawn_sink(env.config.clone(), &shutdown, &readiness);

    wait_for_rows(&env, "auction_details", &["before", "after", "legacy"]).await;
    wait_for_rows(&env, "auction_list", &["before", "after"]).await;
    wait_for_rows(&env, "user_bids", &["before", "after"]).await;
    let details_letters = letters(&env, &topics.view_details, 4).await;
    assert_letter(
        &details_letters,
        &topics.view_details,
        6,
        "undecodable",
        "not Confluent wire format",
    );
    assert_letter(
        &details_letters,
        &topics.view_details,
        1,
        "invalid",
        "SQLSTATE 22021",
    );
    assert_letter(
        &details_letters,
        &topics.view_details,
        2,
        "invalid",
        "SQLSTATE 22008",
    );
    let too_many = "bid_count 3000000000 does not fit its integer column";
    assert_letter(
        &details_letters,
        &topics.view_details,
        3,
        "invalid",
        too_many,
    );
    let list_letters = letters(&env, &topics.view_list, 2).await;
    assert_letter(
        &list_letters,
        &topics.view_list,
        1,
        "invalid",
        "interval out of range",
    );
    assert_letter(
        &list_letters,
        &topics.view_list,
        2,
        "invalid",
        "SQLSTATE 22021",
    );
    let bid_letters = letters(&env, &topics.view_user_bids, 2).await;
    let too_many_bids = "bid_count 3000000000 does not fit its integer column";
    assert_letter(
        &bid_letters,
        &topics.view_user_bids,
        1,
        "invalid",
        too_many_bids,
    );
    assert_letter(
        &bid_letters,
        &topics.view_user_bids,
        2,
        "invalid",
        "SQLSTATE 22021",
    );
    for refused in ["nul", "far", "counted"] {
        assert_eq!(
            count_rows(&env, "auction_details", refused).await,
            0,
            "{refused}"
        );
    }

    // Still up and ready: a later record lands too.
    assert!(readiness.report().ready, "{:?}", readiness.report());
    publish(&env, &topics.view_details, "later", &details("later")).await;
    wait_for_rows(&env, "auction_details", &["later"]).await;
    assert!(!sink.is_finished(), "the sink stopped");
    shutdown.trigger();
    let stats = sink.await.expect("the sink stops cleanly");
    assert_eq!((stats.refused, stats.undecodable), (7, 1), "{stats:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_view_sink_waits_out_lock_timeouts_and_lost_connections_unready_without_dead_letters() {
    let env = TestEnv::new(1).await;
    let role = TestRole::on_migrated_schema(&env, &views::migrations()).await;
    role.set_statement_timeout("1s").await;
    let topics = env.config.topics.clone();
    let (shutdown, readiness) = (Shutdown::new(), Readiness::new("sink"));
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let sink = spawn_sink(role.config(&env.config), &shutdown, &readiness);
    publish(&env, &topics.view_details, "first", &details("first")).await;
    wait_for_rows(&env, "auction_details", &["first"]).await;

    // A lock held past the statement timeout: statements cancelled (57014).
    let table = format!("{}.auction_details", env.config.postgres_schema);
    let lock = role.lock_table(&table).await;
    publish(&env, &topics.view_details, "second", &details("second")).await;
    waits_for_postgres(&readiness).await;
    lock.release().await;
    wait_for_rows(&env, "auction_details", &["second"]).await;
    readiness_becomes(&readiness, true).await;

    // Its session ended and no new one allowed (too many connections, 53300).
    assert!(role.cut_off().await >= 1, "the sink had a session");
    publish(&env, &topics.view_details, "third", &details("third")).await;
    waits_for_postgres(&readiness).await;
    assert_eq!(count_rows(&env, "auction_details", "third").await, 0);
    role.let_in().await;
    wait_for_rows(&env, "auction_details", &["third"]).await;
    readiness_becomes(&readiness, true).await;

    shutdown.trigger();
    let stats = sink.await.expect("the sink stops cleanly");
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert_no_letters(&env, &topics.view_details);
    role.drop_role().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_view_sink_without_rights_on_its_table_exits_non_zero_with_the_reason() {
    let env = TestEnv::new(1).await;
    let role = TestRole::on_migrated_schema(&env, &views::migrations()).await;
    let topics = env.config.topics.clone();
    let url = role.url();
    let sink = Worker::spawn_with_env(&env, "sink", "fatal-sink", &[("GAVEL_POSTGRES_URL", &url)]);
    publish(&env, &topics.view_details, "first", &details("first")).await;
    wait_for_rows(&env, "auction_details", &["first"]).await;

    let schema = &env.config.postgres_schema;
    role.admin(&format!(
        "REVOKE INSERT, UPDATE ON {schema}.auction_details FROM {{role}}"
    ))
    .await;
    publish(&env, &topics.view_details, "second", &details("second")).await;
    assert_exits_with(sink, "permission denied for table auction_details");
    assert_no_letters(&env, &topics.view_details);
    role.drop_role().await;
    env.stop().await;
}
