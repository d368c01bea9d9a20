//! The event store through the real stack: commands -> aggregate processor ->
//! events topic -> event-store sink -> `events` rows, hash-chained per auction.

mod common;

use common::events::{created, encoded};
use common::{eventually, TestEnv};
use gavel_domain::auction::{AuctionEvent, AuctionStatus};
use gavel_domain::{AuctionId, Timestamp};
use gavel_runtime::{dlq, Shutdown};
use gavel_sinks::event_store::{self, state_as_of, verify};
use rdkafka::message::OwnedHeaders;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn produce(env: &TestEnv, lines: &str) {
    let report =
        gavel_producers::produce::run(&env.config, lines.as_bytes(), "t-es", &Shutdown::new())
            .await
            .expect("produce runs");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

fn create(id: &str, ends_in_secs: u32) -> String {
    format!(
        r#"{{"type":"CreateAuction","auction_id":"{id}","seller_id":"sam","title":"Lot {id}","currency":"EUR","starting_price":10000,"min_increment":500,"ends_in_secs":{ends_in_secs}}}"#
    )
}

fn start(id: &str) -> String {
    format!(r#"{{"type":"StartAuction","auction_id":"{id}","actor_id":"sam"}}"#)
}

fn bid(id: &str, bidder: &str, amount: i64) -> String {
    format!(
        r#"{{"type":"PlaceBid","auction_id":"{id}","bidder_id":"{bidder}","amount":{amount},"currency":"EUR"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_lands_exactly_once_across_crashes_restarts_and_replays() {
    let mut env = TestEnv::new(2).await;
    env.start_aggregate();
    let first = [
        create("lot-a", 60),
        start("lot-a"),
        bid("lot-a", "ann", 10_000),
    ];
    let second = [
        create("lot-b", 60),
        start("lot-b"),
        bid("lot-a", "bob", 10_500),
    ];
    produce(&env, &first.join("\n")).await;

    // Instance 1 stores the first events, then dies without a graceful stop.
    let crashed = env.spawn_event_store(&Shutdown::new());
    env.wait_for_event_rows(None, 3).await;
    crashed.abort();
    assert!(crashed.await.is_err(), "instance 1 was killed");

    // Instance 2, same group, resumes from the offsets stored with the rows.
    produce(&env, &second.join("\n")).await;
    let shutdown = Shutdown::new();
    let restarted = env.spawn_event_store(&shutdown);
    env.wait_for_event_rows(None, 6).await;
    shutdown.trigger();
    let stats = restarted.await.expect("instance 2 stops cleanly");
    assert_eq!((stats.appended, stats.duplicates), (3, 0), "{stats:?}");

    // Instance 3 on a fresh group re-reads the whole topic: every event is a duplicate.
    let mut replay = env.config.clone();
    replay.sink_group = format!("{}-replay", env.config.sink_group);
    let group = event_store::consumer_group(&env.config);
    let done = env.stored_offsets(&group).await;
    let shutdown = Shutdown::new();
    let (config, token) = (replay.clone(), shutdown.clone());
    let replaying = tokio::spawn(async move { event_store::run(config, token).await });
    let replay_group = event_store::consumer_group(&replay);
    let caught_up = eventually(TIMEOUT, || async {
        (env.stored_offsets(&replay_group).await == done).then_some(())
    })
    .await;
    shutdown.trigger();
    let stats = replaying.await.expect("join").expect("instance 3");
    assert!(caught_up.is_some(), "the replay group never caught up");
    assert_eq!((stats.appended, stats.duplicates), (0, 6), "{stats:?}");

    // Exactly the events on the topic, once each, gapless per auction, chains intact.
    let client = env.pg().await;
    let schema = &env.config.postgres_schema;
    let on_topic = env.event_ids_on_topic(6).await;
    let sql = format!("SELECT event_id FROM {schema}.events");
    let stored: Vec<String> = client
        .query(&sql, &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored.len(), 6);
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), on_topic);
    let sql = format!(
        "SELECT aggregate_id, array_agg(aggregate_version ORDER BY aggregate_version)::int8[]
         FROM {schema}.events GROUP BY aggregate_id ORDER BY aggregate_id"
    );
    let versions: Vec<(String, Vec<i64>)> = client
        .query(&sql, &[])
        .await
        .expect("versions")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("lot-a".into(), vec![1, 2, 3, 4]),
            ("lot-b".into(), vec![1, 2])
        ]
    );
    let report = verify(&client, schema).await.expect("verify");
    assert_eq!((report.aggregates, report.events), (2, 6));
    assert!(report.intact(), "{:?}", report.broken);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampering_with_stored_events_is_reported_at_the_broken_link() {
    let mut env = TestEnv::new(1).await;
    env.start_aggregate();
    env.start_event_store();
    let lines = [
        create("lot-t", 60),
        start("lot-t"),
        bid("lot-t", "ann", 10_000),
        bid("lot-t", "bob", 10_500),
        create("lot-u", 60),
        start("lot-u"),
        bid("lot-u", "cyd", 10_000),
        create("lot-v", 60),
    ];
    produce(&env, &lines.join("\n")).await;
    env.wait_for_event_rows(None, 8).await;
    let client = env.pg().await;
    let schema = &env.config.postgres_schema;
    assert!(verify(&client, schema).await.expect("verify").intact());

    let refused = client
        .execute(
            &format!("DELETE FROM {schema}.events WHERE aggregate_id = 'lot-v'"),
            &[],
        )
        .await;
    assert!(refused.is_err(), "the table is append-only");

    // The owner can switch the guard off; the chain still gives the edit away.
    client
        .batch_execute(&format!(
            "ALTER TABLE {schema}.events DISABLE TRIGGER events_append_only;
             UPDATE {schema}.events SET payload = jsonb_set(payload, '{{amount,minor}}', '99999')
              WHERE aggregate_id = 'lot-t' AND aggregate_version = 3;
             DELETE FROM {schema}.events WHERE aggregate_id = 'lot-u' AND aggregate_version = 2;"
        ))
        .await
        .expect("tamper");
    let report = verify(&client, schema).await.expect("verify");
    assert_eq!((report.aggregates, report.events), (3, 7));
    assert_eq!(report.broken.len(), 2, "{:?}", report.broken);
    assert!(
        report.broken[0].starts_with("lot-t broken at version 3: content"),
        "{:?}",
        report.broken
    );
    assert!(
        report.broken[1].starts_with("lot-u broken at version 3: version gap"),
        "{:?}",
        report.broken
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_state_as_of_a_past_instant_is_rebuilt_from_the_store() {
    let mut env = TestEnv::new(1).await;
    env.start_aggregate();
    env.start_event_store();
    produce(
        &env,
        &[
            create("lot-h", 60),
            start("lot-h"),
            bid("lot-h", "ann", 10_000),
        ]
        .join("\n"),
    )
    .await;
    env.wait_for_event_rows(Some("lot-h"), 3).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    produce(&env, &bid("lot-h", "bob", 10_500)).await;
    env.wait_for_event_rows(Some("lot-h"), 4).await;

    let client = env.pg().await;
    let schema = &env.config.postgres_schema;
    let sql = format!(
        "SELECT (extract(epoch from occurred_at) * 1000)::int8 FROM {schema}.events
         WHERE aggregate_id = 'lot-h' ORDER BY aggregate_version"
    );
    let times: Vec<i64> = client
        .query(&sql, &[])
        .await
        .expect("times")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (created, first_bid, second_bid) = (times[0], times[2], times[3]);
    assert!(first_bid < second_bid, "{times:?}");

    let id = AuctionId::new("lot-h");
    let at = |millis: i64| state_as_of(&client, schema, &id, Timestamp::from_millis(millis));
    assert_eq!(
        at(created - 1).await.expect("query"),
        None,
        "before it existed"
    );
    let between = at(first_bid + (second_bid - first_bid) / 2)
        .await
        .expect("query")
        .expect("exists");
    assert_eq!(between.current_price.minor(), 10_000);
    assert_eq!((between.bid_count, between.version), (1, 3));
    assert_eq!(
        between.leading_bidder.as_ref().map(|u| u.as_str()),
        Some("ann")
    );
    assert_eq!(between.status, AuctionStatus::Active);
    let after = at(second_bid).await.expect("query").expect("exists");
    assert_eq!(
        (after.current_price.minor(), after.bid_count, after.version),
        (10_500, 2, 4)
    );
    env.stop().await;
}

fn letter_classes(env: &TestEnv) -> BTreeMap<String, usize> {
    let dlq = dlq::topic_for(&env.config.topics.events);
    let letters = dlq::show(&env.config, &dlq, 1000).expect("read dlq");
    let mut classes = BTreeMap::new();
    for letter in &letters {
        let class = letter.header(dlq::header::ERROR_CLASS).unwrap_or("none");
        *classes.entry(class.to_owned()).or_default() += 1;
    }
    classes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_and_unchainable_records_are_dead_lettered_and_a_replay_completes_the_history() {
    // One partition: the bad records sit in front of the good ones.
    let mut env = TestEnv::new(1).await;
    env.start_aggregate();
    let topic = env.config.topics.events.clone();
    env.produce_raw(&topic, "p-1", b"not avro at all", OwnedHeaders::new());
    env.produce_raw(
        &topic,
        "p-2",
        &[0, 0, 0, 0, 1, 0xff, 0xff],
        OwnedHeaders::new(),
    );
    // Well-formed, but version 5 of an auction the store has never seen.
    let started = AuctionEvent::Started {
        started_at: Timestamp::from_millis(1),
    };
    let ghost = encoded(&env, "ghost", 5, &started).await;
    env.produce_raw(&topic, "ghost", &ghost, OwnedHeaders::new());
    // Versions 2 then 1 of one auction: 2 cannot be chained when it comes.
    let second = encoded(&env, "swapped", 2, &started).await;
    let first = encoded(&env, "swapped", 1, &created("Swapped")).await;
    env.produce_raw(&topic, "swapped", &second, OwnedHeaders::new());
    env.produce_raw(&topic, "swapped", &first, OwnedHeaders::new());

    let shutdown = Shutdown::new();
    let sink = env.spawn_event_store(&shutdown);
    produce(&env, &[create("lot-p", 60), start("lot-p")].join("\n")).await;
    env.wait_for_event_rows(Some("lot-p"), 2).await;
    env.wait_for_event_rows(Some("swapped"), 1).await;
    // Schema id 1 is not registered under this topic's subjects: the guard
    // refuses it before any decoding (unknown-schema), the text is undecodable.
    let expected: BTreeMap<String, usize> = [
        ("history-gap".to_owned(), 2),
        ("undecodable".to_owned(), 1),
        ("unknown-schema".to_owned(), 1),
    ]
    .into();
    let lettered = eventually(Duration::from_secs(30), || async {
        (letter_classes(&env) == expected).then_some(())
    })
    .await;
    assert!(
        lettered.is_some(),
        "dead letters: {:?}",
        letter_classes(&env)
    );

    // Replayed in order, the refused version 2 now has its predecessor.
    let config = env.config.clone();
    let dlq_topic = dlq::topic_for(&topic);
    let replayed = tokio::task::spawn_blocking(move || dlq::replay(&config, &dlq_topic))
        .await
        .expect("replay task")
        .expect("replay");
    assert_eq!(replayed.replayed, 4, "{replayed:?}");
    env.wait_for_event_rows(Some("swapped"), 2).await;
    shutdown.trigger();
    let stats = sink.await.expect("stops cleanly");
    // The ghost is refused again (still no version 4), the poison undecodable again.
    assert_eq!(
        (stats.undecodable, stats.gaps, stats.appended),
        (4, 3, 4),
        "{stats:?}"
    );

    let client = env.pg().await;
    let schema = &env.config.postgres_schema;
    assert_eq!(env.event_rows(Some("ghost")).await, 0, "the ghost stored");
    assert!(verify(&client, schema).await.expect("verify").intact());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_killed_again_and_again_under_load_still_holds_each_event_once() {
    let mut env = TestEnv::new(3).await;
    env.start_aggregate();
    let spec = gavel_producers::loadgen::LoadSpec {
        run_id: common::unique("k"),
        tenant: "t-kill".into(),
        auctions: 20,
        bids: 600,
        duration_ms: 3_000,
        seed: 7,
    };
    let workload = gavel_producers::loadgen::generate(&spec, gavel_producers::produce::now());
    // Only a hint for how long to read the topic: a loaded machine may let a
    // bid miss the end time, so the truth is what the topic holds.
    let predicted: u64 = workload.expected().values().map(|a| a.version).sum();
    let config = env.config.clone();
    let sender = tokio::spawn(async move {
        gavel_producers::send_workload(&config, &workload, true)
            .await
            .expect("workload sent")
    });

    // Kill the sink at varying points, mid-batch or idle, while events flow.
    for round in 0..8_u64 {
        let victim = env.spawn_event_store(&Shutdown::new());
        tokio::time::sleep(Duration::from_millis(150 + 70 * round)).await;
        victim.abort();
        let _ = victim.await;
    }
    let sent = sender.await.expect("sender").sent as usize;
    let shutdown = Shutdown::new();
    let last = env.spawn_event_store(&shutdown);
    // Every command answered: the processor has written every event it will.
    assert_eq!(env.outcomes(sent, TIMEOUT).await.len(), sent);
    let on_topic = env.event_ids_on_topic(predicted as usize).await;
    env.wait_for_event_rows(None, on_topic.len() as i64).await;
    shutdown.trigger();
    last.await.expect("last instance stops cleanly");

    let client = env.pg().await;
    let schema = &env.config.postgres_schema;
    let sql = format!("SELECT event_id FROM {schema}.events");
    let rows = client.query(&sql, &[]).await.expect("ids");
    let stored: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(rows.len(), stored.len(), "no event stored twice");
    assert_eq!(stored, on_topic, "every event on the topic stored");
    let report = verify(&client, schema).await.expect("verify");
    assert_eq!(
        (report.aggregates, report.events),
        (20, on_topic.len() as u64)
    );
    assert!(report.intact(), "{:?}", report.broken);
    env.stop().await;
}
