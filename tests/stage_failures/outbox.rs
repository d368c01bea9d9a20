//! The outbox relay: rows inserted into a test's own outbox, as an upstream
//! service (or anyone who can write its table) would.

use crate::common::process::{read_all, Worker};
use crate::common::role::TestRole;
use crate::common::{eventually, TestEnv, TriggerOnDrop};
use crate::{assert_exits_with, readiness_becomes, waits_for_postgres, WAIT};
use gavel_producers::outbox::{self, RelayStats};
use gavel_runtime::dlq::header;
use gavel_runtime::observe::Readiness;
use gavel_runtime::{kafka, postgres, Config, Shutdown};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A test's outbox table, and the one data topic it may publish to.
async fn outbox_env() -> (TestEnv, String) {
    let mut env = TestEnv::new(1).await;
    let topic = format!("{}.orders", env.config.instance_id);
    let spec = kafka::TopicSpec {
        name: topic.clone(),
        partitions: 1,
        configs: Vec::new(),
    };
    kafka::create_topics(&env.config, &[spec])
        .await
        .expect("data topic");
    let mut client = env.pg().await;
    postgres::migrate(
        &mut client,
        &env.config.outbox_schema,
        &outbox::migrations(),
    )
    .await
    .expect("outbox migration");
    env.config.outbox_allowed = vec![topic.clone()];
    env.config.outbox_poll = Duration::from_millis(20);
    (env, topic)
}

async fn stop(env: TestEnv, topic: &str) {
    let c = &env.config;
    let _ = kafka::delete_topics(c, &[topic, c.outbox_dlq_topic.as_str()]).await;
    let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", c.outbox_schema);
    let _ = env.pg().await.batch_execute(&drop).await;
    env.stop().await;
}

/// One row whose payload and event id are `payload`, created at `created_at`
/// (a timestamptz literal) or now.
async fn insert(
    env: &TestEnv,
    aggregate: &str,
    topic: &str,
    payload: &str,
    created_at: Option<&str>,
) {
    let sql = format!(
        "INSERT INTO {}.outbox (aggregate_id, topic, payload, event_id, created_at)
         VALUES ($1, $2, convert_to($3, 'UTF8'), $3, coalesce($4::text::timestamptz, now()))",
        env.config.outbox_schema
    );
    env.pg()
        .await
        .execute(&sql, &[&aggregate, &topic, &payload, &created_at])
        .await
        .expect("insert an outbox row");
}

async fn unsent(env: &TestEnv) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM {}.outbox WHERE sent_at IS NULL",
        env.config.outbox_schema
    );
    env.pg()
        .await
        .query_one(&sql, &[])
        .await
        .expect("count")
        .get(0)
}

async fn wait_until_sent(env: &TestEnv) {
    let done = eventually(WAIT, || async { (unsent(env).await == 0).then_some(()) }).await;
    assert!(
        done.is_some(),
        "{} outbox rows never sent",
        unsent(env).await
    );
}

/// The payloads on `topic` with key `key`, in order.
fn payloads(env: &TestEnv, topic: &str, key: &str) -> Vec<String> {
    read_all(env, topic)
        .iter()
        .filter(|r| r.key.as_deref() == Some(key))
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect()
}

fn spawn_relay(
    config: Config,
    shutdown: &Shutdown,
    readiness: &Readiness,
) -> JoinHandle<RelayStats> {
    let (shutdown, readiness) = (shutdown.clone(), readiness.clone());
    tokio::spawn(async move {
        outbox::run_with(config, shutdown, readiness)
            .await
            .expect("the relay keeps running")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_naming_other_topics_are_dead_lettered_and_an_infinite_time_is_no_poison() {
    let (env, topic) = outbox_env().await;
    // An internal topic of the pipeline: only its own exactly-once stages write it.
    let events = env.config.topics.events.clone();
    insert(&env, "a", &topic, "a:1", None).await;
    insert(&env, "a", &events, "a:2", None).await;
    insert(&env, "a", &topic, "a:3", None).await;
    // Its epoch has no int8: before, the claim of every batch it fell into failed.
    insert(&env, "b", &topic, "b:1", Some("infinity")).await;
    insert(&env, "b", &topic, "b:2", None).await;
    let (shutdown, readiness) = (Shutdown::new(), Readiness::new("outbox-relay"));
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let relay = spawn_relay(env.config.clone(), &shutdown, &readiness);

    wait_until_sent(&env).await;
    assert_eq!(payloads(&env, &topic, "a"), ["a:1", "a:3"]);
    assert_eq!(payloads(&env, &topic, "b"), ["b:1", "b:2"]);
    assert!(
        read_all(&env, &events).is_empty(),
        "the relay wrote an internal topic"
    );
    let letters = read_all(&env, &env.config.outbox_dlq_topic);
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].header(header::ORIGINAL_TOPIC),
        Some(events.as_str())
    );
    assert_eq!(letters[0].payload, b"a:2");
    let reason = letters[0].header(header::ERROR_MESSAGE).unwrap_or("");
    assert!(reason.starts_with("topic-not-allowed"), "{reason}");
    assert!(readiness.report().ready, "{:?}", readiness.report());
    assert!(!relay.is_finished(), "the relay stopped");
    shutdown.trigger();
    let stats = relay.await.expect("the relay stops cleanly");
    assert_eq!((stats.published, stats.dead_lettered), (4, 1), "{stats:?}");
    stop(env, &topic).await;
}

/// A role with rights on the test's outbox schema.
async fn relay_role(env: &TestEnv) -> TestRole {
    TestRole::create(env, &[&env.config.outbox_schema]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_waits_out_lock_timeouts_and_lost_connections_unready_without_dead_letters() {
    let (env, topic) = outbox_env().await;
    let role = relay_role(&env).await;
    role.set_statement_timeout("1s").await;
    let (shutdown, readiness) = (Shutdown::new(), Readiness::new("outbox-relay"));
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let relay = spawn_relay(role.config(&env.config), &shutdown, &readiness);
    insert(&env, "a", &topic, "a:1", None).await;
    wait_until_sent(&env).await;

    // A lock held past the statement timeout: statements cancelled (57014).
    let table = format!("{}.outbox", env.config.outbox_schema);
    let lock = role.lock_table(&table).await;
    waits_for_postgres(&readiness).await;
    lock.release().await;
    insert(&env, "a", &topic, "a:2", None).await;
    wait_until_sent(&env).await;
    readiness_becomes(&readiness, true).await;

    // Its session ended and no new one allowed (too many connections, 53300).
    role.cut_off().await;
    insert(&env, "a", &topic, "a:3", None).await;
    waits_for_postgres(&readiness).await;
    assert_eq!(unsent(&env).await, 1);
    role.let_in().await;
    wait_until_sent(&env).await;
    readiness_becomes(&readiness, true).await;
    assert_eq!(payloads(&env, &topic, "a"), ["a:1", "a:2", "a:3"]);

    shutdown.trigger();
    let stats = relay.await.expect("the relay stops cleanly");
    assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    assert!(read_all(&env, &env.config.outbox_dlq_topic).is_empty());
    role.drop_role().await;
    stop(env, &topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_without_rights_on_its_outbox_exits_non_zero_with_the_reason() {
    let (env, topic) = outbox_env().await;
    let role = relay_role(&env).await;
    let url = role.url();
    let extra = [("GAVEL_POSTGRES_URL", url.as_str())];
    let relay = Worker::spawn_with_env(&env, "outbox-relay", "fatal-relay", &extra);
    insert(&env, "a", &topic, "a:1", None).await;
    wait_until_sent(&env).await;

    let schema = &env.config.outbox_schema;
    role.admin(&format!("REVOKE UPDATE ON {schema}.outbox FROM {{role}}"))
        .await;
    insert(&env, "a", &topic, "a:2", None).await;
    assert_exits_with(relay, "permission denied for table outbox");
    assert_eq!(
        unsent(&env).await,
        1,
        "the row stays for a relay with its rights back"
    );
    assert!(read_all(&env, &env.config.outbox_dlq_topic).is_empty());
    role.drop_role().await;
    stop(env, &topic).await;
}
