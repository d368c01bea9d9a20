//! The schema registry stopped mid-run: the aggregate processor and the event
//! store hold their partitions at the first record whose schema they still
//! need, report not-ready, lose and dead-letter nothing, and flow again when
//! the registry is back. And stopped before the workers start: every worker
//! stays up and waits for it, unready where it needs it. (Its own binary: the
//! outage touches the whole stack; its tests take turns.)

mod common;

use common::observe::{free_addr, get, spawn_observed};
use common::process::{stack_sh, Worker};
use common::{eventually, TestEnv, TriggerOnDrop};
use gavel_producers::json_command::parse_line;
use gavel_producers::produce::now;
use gavel_producers::CommandProducer;
use gavel_runtime::observe::{self, Observer};
use gavel_runtime::{dlq, Shutdown};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);
const AUCTIONS: usize = 100;

/// One registry outage at a time: the tests of this binary run in parallel.
/// An async lock: it is held across the whole test's awaits, and a failed
/// test releases it without poisoning it for the next.
static OUTAGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn one_outage_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    OUTAGE.lock().await
}

/// Starts the registry again however the test ends.
struct RegistryBack;

impl Drop for RegistryBack {
    fn drop(&mut self) {
        stack_sh("start-registry");
    }
}

async fn send(producer: &mut CommandProducer, lines: impl Iterator<Item = String>) {
    for line in lines {
        let (command, meta) = parse_line(&line, now(), "t").expect("valid line");
        producer.send(&command, &meta).await.expect("send");
    }
    producer.flush().await.expect("flush");
}

async fn ready(obs: &Observer) -> (u16, String) {
    get(&obs.addr.to_string(), "/ready")
        .await
        .expect("probe answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_wait_for_the_registry_and_flow_again_when_it_returns() {
    let _turn = one_outage_at_a_time().await;
    let env = TestEnv::new(2).await;
    let shutdown = Shutdown::new();
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let aggregate_obs = observe::serve(&env.config, "aggregate")
        .await
        .expect("serve");
    let aggregate = {
        let (config, shutdown) = (env.config.clone(), shutdown.clone());
        let readiness = aggregate_obs.readiness.clone();
        tokio::spawn(gavel_processors::aggregate::run_with(
            config, shutdown, readiness,
        ))
    };
    // Writer schemas resolved now, so commands can still be sent during the outage.
    let mut producer = CommandProducer::connect(&env.config)
        .await
        .expect("producer");
    let create = (0..AUCTIONS).map(|i| format!(
        r#"{{"type":"CreateAuction","auction_id":"reg-{i}","seller_id":"s","title":"Lot","currency":"EUR","starting_price":100,"min_increment":10,"ends_in_secs":600}}"#
    ));
    send(&mut producer, create).await;
    assert_eq!(env.outcomes(AUCTIONS, TIMEOUT).await.len(), AUCTIONS);

    stack_sh("stop-registry");
    let _restart = RegistryBack;
    // The event store starts with nothing cached; the aggregate has not seen
    // StartAuction or PlaceBid yet: both need the registry for what comes next.
    let store_obs = observe::serve(&env.config, "event-store")
        .await
        .expect("serve");
    let store = {
        let (config, shutdown) = (env.config.clone(), shutdown.clone());
        let readiness = store_obs.readiness.clone();
        tokio::spawn(gavel_sinks::event_store::run_with(
            config, shutdown, readiness,
        ))
    };
    let more = (0..AUCTIONS).flat_map(|i| {
        [
            format!(r#"{{"type":"StartAuction","auction_id":"reg-{i}","actor_id":"s"}}"#),
            format!(r#"{{"type":"PlaceBid","auction_id":"reg-{i}","bidder_id":"b","amount":100,"currency":"EUR"}}"#),
        ]
    });
    send(&mut producer, more).await;

    for obs in [&aggregate_obs, &store_obs] {
        let held = eventually(TIMEOUT, || async {
            let (status, body) = ready(obs).await;
            (status == 503 && body.contains("schema-registry")).then_some(())
        })
        .await;
        assert!(
            held.is_some(),
            "{} reports the registry outage",
            obs.readiness.worker()
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Raw records: decoding them would need the registry too.
    let outcomes_topic = &env.config.topics.outcomes;
    let during = env.read_topic(outcomes_topic, AUCTIONS + 1, Duration::from_secs(3));
    assert_eq!(
        during.len(),
        AUCTIONS,
        "nothing decided without the registry"
    );
    assert_eq!(
        env.event_rows(None).await,
        0,
        "nothing stored without the registry"
    );

    stack_sh("start-registry");
    let outcomes = env.outcomes(3 * AUCTIONS, TIMEOUT).await;
    assert_eq!(outcomes.len(), 3 * AUCTIONS);
    assert!(
        outcomes.iter().all(|o| o.accepted),
        "none lost or refused as malformed"
    );
    env.wait_for_event_rows(None, 3 * AUCTIONS as i64).await;
    for topic in [&env.config.topics.commands, &env.config.topics.events] {
        let letters = dlq::show(&env.config, &dlq::topic_for(topic), 10).expect("dlq");
        assert!(letters.is_empty(), "nothing dead-lettered on {topic}");
    }
    for obs in [&aggregate_obs, &store_obs] {
        let back = eventually(TIMEOUT, || async {
            (ready(obs).await.0 == 200).then_some(())
        })
        .await;
        assert!(back.is_some(), "{} ready again", obs.readiness.worker());
    }
    shutdown.trigger();
    aggregate.await.expect("join").expect("aggregate");
    store.await.expect("join").expect("event store");
    env.stop().await;
}

/// Roles that resolve writer schemas before they can work: unready, naming
/// the registry, until it answers.
const NEED_THE_REGISTRY: [&str; 2] = ["aggregate", "command-api"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_started_while_the_registry_is_away_wait_for_it() {
    let _turn = one_outage_at_a_time().await;
    let env = TestEnv::new(2).await;
    stack_sh("stop-registry");
    let restart = RegistryBack;
    let api = free_addr();
    let roles = [
        "aggregate",
        "project",
        "sink",
        "event-store",
        "saga run payment",
        "participant all",
    ];
    let mut workers: Vec<(String, String, Worker)> = roles
        .iter()
        .map(|role| {
            let probe = free_addr();
            let worker = spawn_observed(&env, role, "r0", &probe);
            ((*role).to_owned(), probe, worker)
        })
        .collect();
    let probe = free_addr();
    let command_api = format!("command-api --listen {api}");
    workers.push((
        "command-api".into(),
        probe.clone(),
        spawn_observed(&env, &command_api, "r0", &probe),
    ));
    for (role, probe, worker) in workers
        .iter()
        .filter(|w| NEED_THE_REGISTRY.contains(&w.0.as_str()))
    {
        // Generous: seven processes start at once on a loaded CI machine.
        let waiting = eventually(Duration::from_secs(60), || async {
            let (status, body) = get(probe, "/ready").await?;
            (status == 503 && body.contains("schema-registry")).then_some(())
        })
        .await;
        assert!(
            waiting.is_some(),
            "{role} reports that it waits for the registry; probe: {:?}; {}",
            get(probe, "/ready").await,
            worker.log_tail()
        );
    }
    // Long enough for a worker that gives up to have exited (it took < 2 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    for (role, _, worker) in &mut workers {
        assert!(
            worker.child.try_wait().expect("wait").is_none(),
            "{role} still running while the registry is away; {}",
            worker.log_tail()
        );
    }
    drop(restart); // starts the registry again
    for (role, probe, worker) in &workers {
        let ready = eventually(TIMEOUT, || async {
            (get(probe, "/ready").await?.0 == 200).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "{role} ready once the registry is back; probe: {:?}; {}",
            get(probe, "/ready").await,
            worker.log_tail()
        );
    }
    for (role, _, worker) in workers {
        let log = std::fs::read_to_string(&worker.log).expect("log");
        assert!(
            !log.contains("schemas register"),
            "{role} does not blame unregistered schemas for an outage: {log}"
        );
        worker.stop();
    }
    env.stop().await;
}
