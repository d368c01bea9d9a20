//! The read side under failure, as real processes: the projector and both
//! sinks killed with -9 again and again while events flow, and one Postgres
//! restart in the middle. Afterwards the read models equal the pure replay,
//! the view topic holds each event's view record exactly once, and the event
//! store holds each event once.
//! (Alone in its test binary: restarting Postgres must not hit other tests.)

mod common;

use common::process::{read_all, restart_postgres, Worker};
use common::{eventually, TestEnv};
use gavel_domain::views::AuctionDetails;
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_producers::CommandProducer;
use gavel_runtime::view_wire::AUCTION_DETAILS_RECORD;
use gavel_sinks::views::verify;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sinks_killed_repeatedly_and_a_postgres_restart_lose_and_duplicate_nothing() {
    let env = TestEnv::new(3).await;
    let spec = LoadSpec {
        run_id: common::unique("sf"),
        tenant: "t".into(),
        auctions: 50,
        bids: 3_000,
        duration_ms: 600_000,
        seed: 9,
    };
    let workload = generate(&spec, gavel_producers::produce::now());
    let expected = workload.expected_before_end();
    let commands: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    let _aggregate = Worker::spawn(&env, "aggregate", "sf-aggregate");
    let mut project = Worker::spawn(&env, "project", "sf-project");
    let mut sink = Worker::spawn(&env, "sink", "sf-sink");
    let mut store = Worker::spawn(&env, "event-store", "sf-store");
    let mut producer = CommandProducer::connect(&env.config)
        .await
        .expect("producer");
    let (crashing, outage) = commands.split_at(commands.len() * 2 / 3);
    for (n, chunk) in crashing.chunks(200).enumerate() {
        for (command, meta) in chunk {
            producer.send(command, meta).await.expect("send");
        }
        producer.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(150)).await;
        if n % 3 == 1 {
            project.kill_9();
            project = Worker::spawn(&env, "project", "sf-project");
            sink.kill_9();
            store.kill_9();
            sink = Worker::spawn(&env, "sink", "sf-sink");
            store = Worker::spawn(&env, "event-store", "sf-store");
        }
    }
    // The last sinks must own their partitions and be writing when Postgres goes away.
    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    eventually(Duration::from_secs(60), || async {
        let sql = format!("SELECT count(*) FROM {schema}.events");
        let rows: i64 = client.query_one(&sql, &[]).await.ok()?.get(0);
        (rows > 0).then_some(())
    })
    .await
    .expect("the event store is writing");
    let half = outage.len() / 2;
    for (command, meta) in &outage[..half] {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
    restart_postgres();
    for (command, meta) in &outage[half..] {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");

    let client = env.pg().await;
    let caught_up = eventually(Duration::from_secs(120), || async {
        let comparison = verify::compare(&client, &schema, &expected).await.ok()?;
        comparison.all_match().then_some(comparison)
    })
    .await;
    let comparison = caught_up.expect("auction_details equals the pure replay after the faults");
    assert_eq!(comparison.matching, 50);
    common::assert_views_agree(&client, &schema).await;

    let events = read_all(&env, &env.config.topics.events);
    let events_on_topic = events.len() as i64;
    // An auction's version counts its events.
    let mut events_per_auction: HashMap<Option<String>, u64> = HashMap::new();
    for event in &events {
        *events_per_auction.entry(event.key.clone()).or_default() += 1;
    }
    // The projector coalesces a row's changes within a transaction, so not
    // every version has a record; but none is published twice, and each
    // auction's last record carries its last event's version.
    let mut details_versions = std::collections::HashSet::new();
    let mut latest_version: HashMap<Option<String>, u64> = HashMap::new();
    let records = read_all(&env, &env.config.topics.view_details);
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    let rows: Vec<AuctionDetails> =
        common::wire::decode_all(&env.config, &payloads, AUCTION_DETAILS_RECORD).await;
    for (record, row) in records.iter().zip(&rows) {
        let version = row.version;
        let key = (record.key.clone(), version);
        assert!(
            details_versions.insert(key.clone()),
            "view record {key:?} published twice"
        );
        let latest = latest_version.entry(record.key.clone()).or_default();
        *latest = (*latest).max(version);
    }
    assert_eq!(
        latest_version, events_per_auction,
        "each auction's last auction_details record carries the version of its last event"
    );
    let counts = eventually(Duration::from_secs(60), || async {
        let sql = format!("SELECT count(*), count(DISTINCT event_id) FROM {schema}.events");
        let row = client.query_one(&sql, &[]).await.ok()?;
        let (rows, distinct): (i64, i64) = (row.get(0), row.get(1));
        (rows >= events_on_topic).then_some((rows, distinct))
    })
    .await
    .expect("the event store caught up");
    assert_eq!(
        counts,
        (events_on_topic, events_on_topic),
        "each event stored exactly once"
    );
    let audit = gavel_sinks::event_store::verify(&client, &schema)
        .await
        .expect("verify");
    assert!(audit.intact(), "{:?}", audit.broken);
    // Exit code 0: the sinks that lived through the restart reconnected rather than died.
    project.stop();
    sink.stop();
    store.stop();
    env.stop().await;
}
