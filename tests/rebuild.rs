//! Rebuilding read models while commands keep flowing, from the events (the
//! topic or the Postgres event store) and from the view topics: a concurrent reader never sees rows disappear, and
//! afterwards the swapped-in tables equal what the pure domain predicts and
//! agree with each other. A rebuild from the events stops exactly where the
//! live sink stands, so a sink that is behind resumes on the new tables.

mod common;

use common::process::Worker;
use common::{eventually, TestEnv};
use gavel_producers::loadgen::{generate, Command, LoadSpec, Workload};
use gavel_producers::CommandProducer;
use gavel_sinks::views::rebuild::{self, Source};
use gavel_sinks::views::{verify, View};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn workload(prefix: &str, auctions: usize, bids: usize) -> Workload {
    let spec = LoadSpec {
        run_id: common::unique(prefix),
        tenant: "t".into(),
        auctions,
        bids,
        duration_ms: 600_000,
        seed: 3,
    };
    generate(&spec, gavel_producers::produce::now())
}

async fn send(env: &TestEnv, commands: &[&Command]) {
    let mut producer = CommandProducer::connect(&env.config)
        .await
        .expect("producer");
    for (command, meta) in commands {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
}

async fn count(client: &tokio_postgres::Client, table: &str) -> Option<i64> {
    let sql = format!("SELECT count(*) FROM {table}");
    client.query_one(&sql, &[]).await.ok().map(|r| r.get(0))
}

/// Waits until `table` holds `rows` rows.
async fn wait_for_rows(client: &tokio_postgres::Client, table: &str, rows: i64) {
    let reached = eventually(Duration::from_secs(60), || async {
        count(client, table).await.filter(|n| *n == rows)
    })
    .await;
    assert!(reached.is_some(), "{table} never held {rows} rows");
}

/// Every row of the three view tables, as text in key order: two equal
/// digests mean equal tables.
/// Waits until `group` has read everything on `topics` (commit markers included).
async fn drained(env: &TestEnv, group: &str, topics: &[String]) {
    let done = eventually(Duration::from_secs(60), || async {
        let lag = gavel_runtime::observe::measure_group(&env.config, group, topics).ok()?;
        lag.iter().all(|p| p.records == 0).then_some(())
    })
    .await;
    assert!(done.is_some(), "{group} has not drained {topics:?}");
}

async fn digest(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    let mut digests = Vec::new();
    for (table, order) in [
        ("auction_details", "auction_id"),
        ("auction_list", "auction_id"),
        ("user_bids", "user_id, auction_id"),
    ] {
        let sql = format!(
            "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY {order})), '') || ':' || count(*)
             FROM {schema}.{table} t"
        );
        let row = client.query_one(&sql, &[]).await.expect("digest");
        digests.push(format!("{table} {}", row.get::<_, String>(0)));
    }
    digests
}

/// Every index of the schema's tables with its definition.
async fn indexes(client: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    let rows = client
        .query(
            "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY 1",
            &[&schema],
        )
        .await
        .expect("pg_indexes");
    rows.iter().map(|r| r.get(0)).collect()
}

async fn rebuild_during_live_traffic(source: Source) {
    let mut env = TestEnv::with_workers(3).await;
    if source == Source::EventStore {
        env.start_event_store();
    }
    let workload = workload("rb", 60, 4_000);
    let expected = workload.expected_before_end();
    let commands: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    let (first, second) = commands.split_at(commands.len() / 2);
    send(&env, first).await;
    let client = env.pg().await;
    let table = format!("{}.auction_details", env.config.postgres_schema);
    wait_for_rows(&client, &table, 60).await;

    // A reader polling the live table for the whole rebuild.
    let stop = Arc::new(AtomicBool::new(false));
    let (lowest, failures) = (
        Arc::new(AtomicU64::new(u64::MAX)),
        Arc::new(AtomicU64::new(0)),
    );
    let reader = {
        let (stop, lowest, failures) = (stop.clone(), lowest.clone(), failures.clone());
        let reader_client = env.pg().await;
        let table = table.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match count(&reader_client, &table).await {
                    Some(n) => {
                        lowest.fetch_min(n as u64, Ordering::SeqCst);
                    }
                    None => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let traffic = {
        let env_config = env.config.clone();
        let second: Vec<_> = second.iter().map(|c| (*c).clone()).collect();
        tokio::spawn(async move {
            let mut producer = CommandProducer::connect(&env_config)
                .await
                .expect("producer");
            for (command, meta) in &second {
                producer.send(command, meta).await.expect("send");
            }
            producer.flush().await.expect("flush");
        })
    };
    let report = rebuild::rebuild(&env.config, &View::ALL, source)
        .await
        .expect("rebuild");
    assert!(report.records > 0, "{source:?}: nothing was replayed");
    assert_eq!(report.skipped, 0);
    traffic.await.expect("traffic");

    let schema = env.config.postgres_schema.clone();
    let caught_up = eventually(Duration::from_secs(60), || async {
        let comparison = verify::compare(&client, &schema, &expected).await.ok()?;
        comparison.all_match().then_some(comparison)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    reader.await.expect("reader");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "a reader query failed during the rebuild"
    );
    assert_eq!(
        lowest.load(Ordering::SeqCst),
        60,
        "a reader saw rows missing during the rebuild"
    );
    let comparison = caught_up.expect("after the swap the table equals the pure-domain prediction");
    assert_eq!(comparison.matching, 60);
    common::assert_views_agree(&client, &schema).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_from_the_events_during_live_traffic_swaps_in_equal_tables_without_gaps() {
    rebuild_during_live_traffic(Source::Events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_from_the_event_store_during_live_traffic_swaps_in_equal_tables_without_gaps() {
    rebuild_during_live_traffic(Source::EventStore).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_from_the_view_topics_during_live_traffic_swaps_in_equal_tables_without_gaps() {
    rebuild_during_live_traffic(Source::ViewTopic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_from_the_events_stops_where_a_stopped_sink_stands_and_repairs_damage() {
    rebuild_where_a_stopped_sink_stands(Source::Events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_from_the_event_store_stops_where_a_stopped_sink_stands_and_repairs_damage() {
    rebuild_where_a_stopped_sink_stands(Source::EventStore).await;
}

async fn rebuild_where_a_stopped_sink_stands(source: Source) {
    let mut env = TestEnv::new(3).await;
    env.start_aggregate();
    env.start_project();
    if source == Source::EventStore {
        env.start_event_store();
    }
    let workload = workload("cut", 40, 2_000);
    let expected = workload.expected_before_end();
    let commands: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    let (first, second) = commands.split_at(commands.len() / 2);
    let sink = Worker::spawn(&env, "sink", "cut-sink");
    send(&env, first).await;
    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    let details = format!("{schema}.auction_details");
    wait_for_rows(&client, &details, 40).await;
    // The sink stops once it has applied all of the first half: stopped in
    // the middle, it may hold a user_bids row of one view partition without
    // the update another partition carries for the same bid (the outbid
    // leader), a state no cut of the event log reproduces.
    env.outcomes(first.len(), Duration::from_secs(60)).await;
    let events = [env.config.topics.events.clone()];
    drained(&env, &env.config.project_group, &events).await;
    let views: Vec<String> = env.config.topics.views().map(str::to_owned).to_vec();
    drained(&env, &env.config.sink_group, &views).await;
    // The second half is projected but not applied.
    sink.stop();
    send(&env, second).await;
    // Every command decided: the event log is well past the sink's position.
    let outcomes = env.outcomes(commands.len(), Duration::from_secs(60)).await;
    assert_eq!(outcomes.len(), commands.len());
    let accepted = outcomes
        .iter()
        .filter(|o| o.rejection_code.is_none())
        .count() as u64;
    let before = digest(&client, &schema).await;
    let indexes_before = indexes(&client, &schema).await;
    // Damage the live tables: the rebuild must put back what the sink built.
    client
        .batch_execute(&format!(
            "UPDATE {details} SET title = 'damaged';
             DELETE FROM {schema}.user_bids WHERE user_id IN
                 (SELECT user_id FROM {schema}.user_bids LIMIT 5);"
        ))
        .await
        .expect("damage");
    assert_ne!(digest(&client, &schema).await, before);

    let report = rebuild::rebuild(&env.config, &View::ALL, source)
        .await
        .expect("rebuild");
    assert!(
        report.records > 0 && report.records < accepted,
        "read {} of at least {accepted} events: only those the sink had applied",
        report.records
    );
    assert_eq!(
        digest(&client, &schema).await,
        before,
        "the rebuilt tables are exactly what the sink had built, not more"
    );
    assert_eq!(
        indexes(&client, &schema).await,
        indexes_before,
        "the swapped-in tables have the live tables' indexes, under the same names"
    );

    // The sink resumes on the new tables from its own offsets and catches up.
    let sink = Worker::spawn(&env, "sink", "cut-sink-2");
    let comparison = common::assert_read_model(&client, &schema, &expected).await;
    assert_eq!(comparison.matching, 40);
    common::assert_views_agree(&client, &schema).await;
    sink.stop();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_from_an_event_store_that_cannot_say_where_the_sink_stands_is_refused() {
    // No event-store sink runs: the store is behind the view sink.
    let env = TestEnv::with_workers(3).await;
    let workload = workload("behind", 10, 100);
    let commands: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    send(&env, &commands).await;
    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    // Every record of every view applied (the sink may apply one view's
    // topic before the others'): the live sink changes nothing more meanwhile.
    let expected = workload.expected_before_end();
    common::assert_read_model(&client, &schema, &expected).await;
    common::assert_views_agree(&client, &schema).await;
    let before = digest(&client, &schema).await;
    let refused = || async {
        let refusal =
            rebuild::rebuild_from_event_store(&env.config, &View::ALL, Duration::from_secs(2))
                .await
                .expect_err("a rebuild from the event store refused");
        let digest_after = digest(&client, &schema).await;
        assert_eq!(digest_after, before, "live tables untouched");
        refusal.to_string()
    };
    let message = refused().await;
    assert!(
        message.contains("has not consumed") && message.contains("--from events"),
        "{message}"
    );
    let shadows = format!(
        "SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}' AND tablename LIKE '%_rebuild'"
    );
    let left: i64 = client
        .query_one(&shadows, &[])
        .await
        .expect("shadows")
        .get(0);
    assert_eq!(left, 0, "a refused rebuild leaves no shadow table");

    // A row that does not say where it was consumed from (the first attempt
    // made the events table): refused before anything is read.
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.events (tenant_id, aggregate_id, aggregate_version, event_id,
                     event_type, payload, envelope, occurred_at, prev_hash, hash)
                 VALUES ('t', 'a-1', 1, 'e-1', 'AuctionStarted', '{{}}', '{{}}', now(),
                     decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))"
            ),
            &[],
        )
        .await
        .expect("a row without source coordinates");
    let message = refused().await;
    assert!(
        message.contains("(1 of them)") && message.contains("do not say"),
        "{message}"
    );
    env.stop().await;
}
