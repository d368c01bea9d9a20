//! The aggregate processor under failure, as real processes: kill -9 during a
//! contended load, a SIGSTOP'd zombie, an auction that ends while the processor
//! is down. Afterwards the logs must show exactly-once effects.

mod common;

use common::process::{outcomes_on_topic, read_all, Worker};
use common::TestEnv;
use gavel_domain::auction::{replay, Auction, AuctionEvent};
use gavel_domain::{AuctionId, Timestamp};
use gavel_processors::aggregate::{handle, StoredAggregate};
use gavel_producers::loadgen::{generate, LoadSpec, Workload};
use gavel_producers::CommandProducer;
use gavel_runtime::auction_codec::{command_from_avro, event_from_avro};
use gavel_runtime::avro::AvroCodec;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// What the topics say after a run.
struct Audit {
    outcomes_per_command: HashMap<String, usize>,
    events: BTreeMap<String, Vec<(u64, AuctionEvent)>>,
    event_ids: Vec<String>,
}

async fn audit(env: &TestEnv) -> Audit {
    let codec = AvroCodec::new(&env.config.registry);
    let mut outcomes_per_command = HashMap::new();
    for outcome in outcomes_on_topic(env, &codec).await {
        *outcomes_per_command.entry(outcome.command_id).or_insert(0) += 1;
    }
    let mut events: BTreeMap<String, Vec<(u64, AuctionEvent)>> = BTreeMap::new();
    let mut event_ids = Vec::new();
    for record in read_all(env, &env.config.topics.events) {
        let decoded = codec.decode(&record.payload).await.expect("event decodes");
        let (event, envelope) =
            event_from_avro(&decoded.schema.name, decoded.value).expect("event maps");
        event_ids.push(envelope.event_id);
        events
            .entry(envelope.aggregate_id.into_string())
            .or_default()
            .push((envelope.aggregate_version, event));
    }
    Audit {
        outcomes_per_command,
        events,
        event_ids,
    }
}

impl Audit {
    fn assert_exactly_once(&self, command_ids: &[String]) {
        let missing: Vec<&String> = command_ids
            .iter()
            .filter(|id| !self.outcomes_per_command.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} commands have no outcome, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        );
        let repeated: Vec<_> = self
            .outcomes_per_command
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect();
        assert!(
            repeated.is_empty(),
            "commands answered more than once: {:?}",
            &repeated[..repeated.len().min(3)]
        );
        let unique: HashSet<&String> = self.event_ids.iter().collect();
        assert_eq!(unique.len(), self.event_ids.len(), "duplicate event ids");
        for (aggregate, events) in &self.events {
            let versions: Vec<u64> = events.iter().map(|(v, _)| *v).collect();
            let gapless: Vec<u64> = (1..=versions.len() as u64).collect();
            assert_eq!(
                versions, gapless,
                "versions of {aggregate} are not gapless from 1"
            );
        }
    }

    fn state_from_events(&self) -> BTreeMap<String, Auction> {
        self.events
            .iter()
            .filter_map(|(id, events)| {
                replay(&AuctionId::new(id.as_str()), events.iter().map(|(_, e)| e))
                    .map(|a| (id.clone(), a))
            })
            .collect()
    }
}

/// The pure domain over the command log as the broker stamped it: what the
/// processor must have decided, whatever crashed in between.
async fn replay_commands(env: &TestEnv) -> BTreeMap<String, Auction> {
    let codec = AvroCodec::new(&env.config.registry);
    let mut states: HashMap<String, StoredAggregate> = HashMap::new();
    for record in read_all(env, &env.config.topics.commands) {
        let decoded = codec
            .decode(&record.payload)
            .await
            .expect("command decodes");
        let (command, meta) =
            command_from_avro(&decoded.schema.name, decoded.value).expect("command maps");
        let key = command.auction_id().as_str().to_owned();
        let stored = states.entry(key).or_default();
        let now = Timestamp::from_millis(record.timestamp.expect("broker timestamp"));
        handle(stored, &command, &meta, now);
    }
    states
        .into_iter()
        .filter_map(|(k, s)| s.auction.map(|a| (k, a)))
        .collect()
}

fn command_ids(workload: &Workload) -> Vec<String> {
    workload
        .setup
        .iter()
        .chain(&workload.bids)
        .map(|(_, m)| m.command_id.clone())
        .collect()
}

async fn wait_for_outcomes(env: &TestEnv, count: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if env
            .read_topic(&env.config.topics.outcomes, count, Duration::from_secs(5))
            .len()
            >= count
        {
            return;
        }
    }
    panic!("fewer than {count} outcomes after {timeout:?}");
}

fn contended_workload(run: &str) -> Workload {
    // Long duration: no auction ends during the test, every accepted bid counts.
    let spec = LoadSpec {
        run_id: common::unique(run),
        tenant: "t".into(),
        auctions: 60,
        bids: 3_000,
        duration_ms: 600_000,
        seed: 5,
    };
    generate(&spec, gavel_producers::produce::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_load_loses_and_duplicates_nothing() {
    let env = TestEnv::new(3).await;
    let workload = contended_workload("crash");
    let commands: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    let mut producer = CommandProducer::connect(&env.config)
        .await
        .expect("producer");
    let mut worker = Worker::spawn(&env, "aggregate", "crash-0");
    let mut kills = 0;
    for (n, chunk) in commands.chunks(250).enumerate() {
        for (command, meta) in chunk {
            producer.send(command, meta).await.expect("send");
        }
        producer.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(150)).await;
        if n % 3 == 2 {
            worker.kill_9();
            kills += 1;
            worker = Worker::spawn(&env, "aggregate", "crash-0");
        }
    }
    assert!(
        kills >= 4,
        "the test must actually crash the processor ({kills})"
    );
    wait_for_outcomes(&env, commands.len(), Duration::from_secs(120)).await;
    worker.stop();

    let audit = audit(&env).await;
    audit.assert_exactly_once(&command_ids(&workload));
    assert_eq!(
        audit.state_from_events(),
        replay_commands(&env).await,
        "state from events differs from the pure replay"
    );
    let expected = workload.expected();
    let accepted_bids: u32 = audit
        .state_from_events()
        .values()
        .map(|a| a.bid_count)
        .sum();
    assert_eq!(
        accepted_bids,
        expected.values().map(|a| a.bid_count).sum::<u32>()
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_zombie_is_fenced_and_writes_nothing() {
    let env = TestEnv::new(2).await;
    let workload = contended_workload("zombie");
    let commands: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    let (first, rest) = commands.split_at(commands.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    let mut producer = CommandProducer::connect(&env.config)
        .await
        .expect("producer");
    let zombie = Worker::spawn(&env, "aggregate", "zombie-a");
    for (command, meta) in first {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
    wait_for_outcomes(&env, first.len(), Duration::from_secs(60)).await;

    // Freeze A while commands keep flowing, so it holds work it never finished.
    for (command, meta) in &second[..second.len() / 2] {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
    zombie.signal("STOP");
    for (command, meta) in &second[second.len() / 2..] {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
    let successor = Worker::spawn(&env, "aggregate", "zombie-b");
    wait_for_outcomes(&env, first.len() + second.len(), Duration::from_secs(90)).await;

    // A wakes up believing it still owns its partitions.
    zombie.signal("CONT");
    for (command, meta) in third {
        producer.send(command, meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
    wait_for_outcomes(&env, commands.len(), Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    zombie.stop();
    successor.stop();

    let audit = audit(&env).await;
    audit.assert_exactly_once(&command_ids(&workload));
    assert_eq!(audit.state_from_events(), replay_commands(&env).await);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_auction_that_ends_while_the_processor_is_down_is_ended_once_after_restart() {
    let env = TestEnv::new(1).await;
    let worker = Worker::spawn(&env, "aggregate", "timer-0");
    let lines = r#"{"type":"CreateAuction","auction_id":"dusk","seller_id":"s","title":"Harbour at Dusk","currency":"EUR","starting_price":5000,"min_increment":100,"ends_in_secs":4}
{"type":"StartAuction","auction_id":"dusk","actor_id":"s"}
{"type":"PlaceBid","auction_id":"dusk","bidder_id":"ann","amount":5000,"currency":"EUR"}"#;
    gavel_producers::produce::run(
        &env.config,
        lines.as_bytes(),
        "t",
        &gavel_runtime::Shutdown::new(),
    )
    .await
    .expect("produce");
    wait_for_outcomes(&env, 3, Duration::from_secs(30)).await;
    worker.kill_9();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ended_before_restart = audit(&env).await.events.get("dusk").map_or(0, |e| e.len());
    assert_eq!(
        ended_before_restart, 3,
        "nothing ends the auction while the processor is down"
    );

    let restarted = Worker::spawn(&env, "aggregate", "timer-0");
    wait_for_outcomes(&env, 4, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    restarted.stop();
    let again = Worker::spawn(&env, "aggregate", "timer-0");
    tokio::time::sleep(Duration::from_secs(3)).await;
    again.stop();

    let audit = audit(&env).await;
    let events = &audit.events["dusk"];
    let ends: Vec<_> = events
        .iter()
        .filter(|(_, e)| matches!(e, AuctionEvent::Ended { .. }))
        .collect();
    assert_eq!(ends.len(), 1, "ended exactly once: {events:?}");
    assert!(
        matches!(ends[0].1, AuctionEvent::Ended { winner_id: Some(ref w), .. } if w.as_str() == "ann")
    );
    assert_eq!(events.len(), 4);
    env.stop().await;
}
