//! Rebuilding every view while commands keep flowing: a concurrent reader
//! never sees rows disappear, and afterwards the swapped-in tables equal what
//! the pure domain predicts and agree with each other.

mod common;

use common::{eventually, TestEnv};
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_producers::CommandProducer;
use gavel_sinks::views::{rebuild, verify, View};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_during_live_traffic_swaps_in_an_equal_table_without_gaps_for_readers() {
    let env = TestEnv::with_workers(3).await;
    let spec = LoadSpec {
        run_id: common::unique("rb"),
        tenant: "t".into(),
        auctions: 60,
        bids: 4_000,
        duration_ms: 600_000,
        seed: 3,
    };
    let workload = generate(&spec, gavel_producers::produce::now());
    let expected = workload.expected_before_end();
    let commands: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    let (first, second) = commands.split_at(commands.len() / 2);
    let mut producer = CommandProducer::connect(&env.config)
        .await
        .expect("producer");
    for (command, meta) in first {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
    let client = env.pg().await;
    let table = format!("{}.auction_details", env.config.postgres_schema);
    let rows_now = |sql: String| {
        let client = &client;
        async move {
            client
                .query_one(&sql, &[])
                .await
                .ok()
                .map(|r| r.get::<_, i64>(0))
        }
    };
    eventually(Duration::from_secs(60), || async {
        rows_now(format!("SELECT count(*) FROM {table}"))
            .await
            .filter(|n| *n == 60)
    })
    .await
    .expect("all auctions materialized before the rebuild");

    // A reader polling the live table for the whole rebuild.
    let stop = Arc::new(AtomicBool::new(false));
    let (lowest, failures) = (
        Arc::new(AtomicU64::new(u64::MAX)),
        Arc::new(AtomicU64::new(0)),
    );
    let reader = {
        let (stop, lowest, failures) = (stop.clone(), lowest.clone(), failures.clone());
        let reader_client = env.pg().await;
        let sql = format!("SELECT count(*) FROM {table}");
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match reader_client.query_one(&sql, &[]).await {
                    Ok(row) => {
                        lowest.fetch_min(row.get::<_, i64>(0) as u64, Ordering::SeqCst);
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let traffic = {
        let config = env.config.clone();
        let second: Vec<_> = second.iter().map(|c| (*c).clone()).collect();
        tokio::spawn(async move {
            let mut producer = CommandProducer::connect(&config).await.expect("producer");
            for (command, meta) in &second {
                producer.send(command, meta).await.expect("send");
            }
            producer.flush().await.expect("flush");
        })
    };
    for view in View::ALL {
        let report = rebuild::rebuild(&env.config, view).await.expect("rebuild");
        assert!(report.records > 0, "{} rebuilt from its topic", view.name());
    }
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
