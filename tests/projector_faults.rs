//! The projector killed with SIGKILL again and again while hot auctions (far
//! more bidders than the details record lists) take bids: each restart
//! restores every bidder from the projector's own view topics, and the read
//! models end up exactly as the pure domain predicts, every bidder's row
//! included, also once the auctions close after a last restart.

mod common;

use common::process::Worker;
use common::TestEnv;
use gavel_domain::views::TOP_BIDDERS;
use gavel_producers::loadgen::{generate, Command, LoadSpec};
use gavel_producers::CommandProducer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_projector_loses_no_bidder() {
    let mut env = TestEnv::new(2).await;
    env.start_aggregate();
    env.start_sink();
    let spec = LoadSpec {
        run_id: common::unique("proj"),
        tenant: "t".into(),
        auctions: 6,
        bids: 3_000,
        // Long enough for every bid to arrive before the end, kills included.
        duration_ms: 40_000,
        seed: 21,
    };
    let workload = generate(&spec, gavel_producers::produce::now());
    let mut producer = CommandProducer::connect(&env.config)
        .await
        .expect("producer");
    let mut projector = Worker::spawn(&env, "project", "proj-0");
    let mut kills = 0;
    let commands: Vec<&Command> = workload.setup.iter().chain(&workload.bids).collect();
    for (n, chunk) in commands.chunks(300).enumerate() {
        send(&mut producer, chunk.iter().copied()).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        if n % 2 == 1 {
            projector.kill_9();
            kills += 1;
            projector = Worker::spawn(&env, "project", "proj-0");
        }
    }
    assert!(
        kills >= 4,
        "the test must actually crash the projector ({kills})"
    );

    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    let running =
        common::assert_read_model(&client, &schema, &workload.expected_before_end()).await;
    assert!(
        running
            .rows
            .iter()
            .any(|r| r.bidder_count as usize > TOP_BIDDERS),
        "the workload must have auctions with more bidders than the details list"
    );
    common::assert_views_agree(&client, &schema).await;

    // Closing after one more restart: every bidder's row settles (LOST or
    // WON) from the restored state, not only the listed ones.
    projector.kill_9();
    let projector = Worker::spawn(&env, "project", "proj-0");
    let wait = workload.end_time.millis() - gavel_producers::produce::now().millis();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64 + 100)).await;
    send(&mut producer, workload.ends.iter()).await;
    let closed = common::assert_read_model(&client, &schema, &workload.expected()).await;
    assert!(closed.rows.iter().all(|r| !r.is_running()));
    assert!(closed
        .rows
        .iter()
        .any(|r| r.bidder_count as usize > TOP_BIDDERS));
    assert!(closed.rows.iter().all(|r| r.bidders.len() <= TOP_BIDDERS));
    common::assert_views_agree(&client, &schema).await;
    projector.stop();
    env.stop().await;
}

async fn send(producer: &mut CommandProducer, commands: impl Iterator<Item = &Command>) {
    for (command, meta) in commands {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
}
