//! The event store: events produced straight onto the event topic, in the
//! topic's Avro, as the aggregate (or anyone who can write the topic) would.

use crate::common::events::{created, encoded, encoded_at};
use crate::common::process::Worker;
use crate::common::role::TestRole;
use crate::common::{TestEnv, TriggerOnDrop};
use crate::{
    assert_exits_with, assert_letter, assert_no_letters, letters, readiness_becomes,
    waits_for_postgres,
};
use gavel_domain::auction::AuctionEvent;
use gavel_domain::Timestamp;
use gavel_runtime::observe::Readiness;
use gavel_runtime::Shutdown;
use gavel_sinks::event_store::{self, verify, EventStoreStats};
use rdkafka::message::OwnedHeaders;
use tokio::task::JoinHandle;

fn started() -> AuctionEvent {
    AuctionEvent::Started {
        started_at: Timestamp::from_millis(2),
    }
}

async fn produce(env: &TestEnv, id: &str, version: u64, event: &AuctionEvent) {
    let payload = encoded(env, id, version, event).await;
    env.produce_raw(&env.config.topics.events, id, &payload, OwnedHeaders::new());
}

fn spawn_store(
    config: gavel_runtime::Config,
    shutdown: &Shutdown,
    readiness: &Readiness,
) -> JoinHandle<EventStoreStats> {
    let (shutdown, readiness) = (shutdown.clone(), readiness.clone());
    tokio::spawn(async move {
        event_store::run_with(config, shutdown, readiness)
            .await
            .expect("the event store keeps running")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_postgres_refuses_is_dead_lettered_and_its_successor_is_a_gap() {
    // One partition, all produced before the store starts: one batch.
    let env = TestEnv::new(1).await;
    let topic = env.config.topics.events.clone();
    produce(&env, "before", 1, &created("Etching")).await;
    // Occurred 10^16 ms after the epoch: an interval Postgres cannot hold.
    let far = Timestamp::from_millis(10_000_000_000_000_000);
    let refused = encoded_at(&env, "far", 1, &created("Etching"), far).await;
    env.produce_raw(&topic, "far", &refused, OwnedHeaders::new());
    produce(&env, "far", 2, &started()).await;
    produce(&env, "after", 1, &created("Etching")).await;
    produce(&env, "before", 2, &started()).await;
    let (shutdown, readiness) = (Shutdown::new(), Readiness::new("event-store"));
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let store = spawn_store(env.config.clone(), &shutdown, &readiness);

    env.wait_for_event_rows(Some("before"), 2).await;
    env.wait_for_event_rows(Some("after"), 1).await;
    let letters = letters(&env, &topic, 2).await;
    assert_letter(&letters, &topic, 1, "invalid", "SQLSTATE 22008");
    assert_letter(
        &letters,
        &topic,
        2,
        "history-gap",
        "version 1 is not in the store",
    );
    assert_eq!(env.event_rows(Some("far")).await, 0);
    assert!(readiness.report().ready, "{:?}", readiness.report());
    assert!(!store.is_finished(), "the event store stopped");
    shutdown.trigger();
    let stats = store.await.expect("the event store stops cleanly");
    assert_eq!(
        (stats.refused, stats.gaps, stats.appended),
        (1, 1, 3),
        "{stats:?}"
    );
    let client = env.pg().await;
    let audit = verify(&client, &env.config.postgres_schema)
        .await
        .expect("verify");
    assert!(audit.intact(), "{:?}", audit.broken);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_store_waits_out_lock_timeouts_and_lost_connections_unready_without_dead_letters()
{
    let env = TestEnv::new(1).await;
    let role = TestRole::on_migrated_schema(&env, &event_store::migrations()).await;
    role.set_statement_timeout("1s").await;
    let (shutdown, readiness) = (Shutdown::new(), Readiness::new("event-store"));
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let store = spawn_store(role.config(&env.config), &shutdown, &readiness);
    produce(&env, "lot", 1, &created("Etching")).await;
    env.wait_for_event_rows(Some("lot"), 1).await;

    // A lock held past the statement timeout: statements cancelled (57014).
    let lock = role
        .lock_table(&format!("{}.events", env.config.postgres_schema))
        .await;
    produce(&env, "lot", 2, &started()).await;
    waits_for_postgres(&readiness).await;
    lock.release().await;
    env.wait_for_event_rows(Some("lot"), 2).await;
    readiness_becomes(&readiness, true).await;

    // Its session ended and no new one allowed (too many connections, 53300).
    assert!(role.cut_off().await >= 1, "the store had a session");
    produce(&env, "lot", 3, &started()).await;
    waits_for_postgres(&readiness).await;
    assert_eq!(env.event_rows(Some("lot")).await, 2);
    role.let_in().await;
    env.wait_for_event_rows(Some("lot"), 3).await;
    readiness_becomes(&readiness, true).await;

    shutdown.trigger();
    let stats = store.await.expect("the event store stops cleanly");
    assert_eq!(
        (stats.refused, stats.gaps, stats.undecodable),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_no_letters(&env, &env.config.topics.events);
    role.drop_role().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_store_without_rights_on_its_table_exits_non_zero_with_the_reason() {
    let env = TestEnv::new(1).await;
    let role = TestRole::on_migrated_schema(&env, &event_store::migrations()).await;
    let url = role.url();
    let extra = [("GAVEL_POSTGRES_URL", url.as_str())];
    let store = Worker::spawn_with_env(&env, "event-store", "fatal-store", &extra);
    produce(&env, "lot", 1, &created("Etching")).await;
    env.wait_for_event_rows(Some("lot"), 1).await;

    let schema = &env.config.postgres_schema;
    role.admin(&format!("REVOKE INSERT ON {schema}.events FROM {{role}}"))
        .await;
    produce(&env, "lot", 2, &started()).await;
    assert_exits_with(store, "permission denied for table events");
    assert_no_letters(&env, &env.config.topics.events);
    role.drop_role().await;
    env.stop().await;
}
