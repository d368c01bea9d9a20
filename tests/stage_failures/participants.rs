//! Saga participants: step commands produced straight onto the shipping
//! participant's topic, as an orchestrator (or anyone who can write the
//! topic) would, and the replies read back from the order saga's reply topic.

use crate::common::process::{read_all, Worker};
use crate::common::role::TestRole;
use crate::common::wire;
use crate::common::{eventually, TestEnv, TriggerOnDrop};
use crate::{
    assert_exits_with, assert_letter, assert_no_letters, letters, readiness_becomes,
    waits_for_postgres, WAIT,
};
use gavel_domain::saga::order::{OrderCommand, OrderLine};
use gavel_domain::saga::{OrderId, Participant};
use gavel_runtime::observe::Readiness;
use gavel_runtime::saga_wire::{
    ReplyOutcome, StepCommand, StepReply, STEP_COMMAND_RECORD, STEP_REPLY_RECORD,
};
use gavel_runtime::{Config, Shutdown};
use gavel_sinks::participants::{self, Chaos, ParticipantStats, Settings};
use rdkafka::message::OwnedHeaders;
use std::collections::BTreeMap;
use tokio::task::JoinHandle;

/// The Ship step of order `order`, answered on the order saga's reply topic.
fn ship(config: &Config, order: &str, address: &str) -> StepCommand {
    let command = OrderCommand::Ship {
        order_id: OrderId::new(order),
        lines: vec![OrderLine {
            sku: "print-a".into(),
            quantity: 1,
        }],
        address: address.into(),
    };
    StepCommand {
        saga_kind: "order".into(),
        saga_id: order.into(),
        step: "ship".into(),
        direction: "do".into(),
        attempt: 1,
        command_id: format!("{order}/ship/do/1"),
        effect_key: format!("{order}/ship"),
        causation_id: format!("{order}/trigger"),
        reply_to: config.topics.saga("order", "replies"),
        reply_partition: 0,
        deadline_ms: i64::MAX,
        command: serde_json::to_value(command).expect("json"),
    }
}

async fn send(env: &TestEnv, command: &StepCommand) {
    let topic = env.config.topics.participant_commands("shipping");
    let payload = wire::encode(&env.config, &topic, STEP_COMMAND_RECORD, command).await;
    env.produce_raw(&topic, &command.saga_id, &payload, OwnedHeaders::new());
}

/// The replies on the order saga's reply topic by saga id, once `count` are there.
async fn replies(env: &TestEnv, count: usize) -> BTreeMap<String, ReplyOutcome> {
    let topic = env.config.topics.saga("order", "replies");
    let read = || async {
        let records = read_all(env, &topic);
        let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
        wire::decode_all::<StepReply>(&env.config, &payloads, STEP_REPLY_RECORD)
            .await
            .into_iter()
            .map(|reply| (reply.saga_id, reply.outcome))
            .collect::<BTreeMap<_, _>>()
    };
    let found = eventually(WAIT, || async {
        let replies = read().await;
        (replies.len() >= count).then_some(replies)
    })
    .await;
    match found {
        Some(found) => found,
        None => panic!("{count} replies: {:?}", read().await),
    }
}

async fn shipments(env: &TestEnv) -> Vec<String> {
    let sql = format!(
        "SELECT order_id FROM {}.shipments ORDER BY order_id",
        env.config.postgres_schema
    );
    let rows = env.pg().await.query(&sql, &[]).await.expect("shipments");
    rows.iter().map(|r| r.get(0)).collect()
}

fn spawn_shipping(
    config: Config,
    shutdown: &Shutdown,
    readiness: &Readiness,
) -> JoinHandle<ParticipantStats> {
    let settings = Settings {
        participant: Participant::Shipping,
        chaos: Chaos::default(),
        initial_stock: 10,
    };
    let (shutdown, readiness) = (shutdown.clone(), readiness.clone());
    tokio::spawn(async move {
        participants::run(config, settings, shutdown, readiness)
            .await
            .expect("the participant keeps running")
    })
}

fn succeeded(outcome: Option<&ReplyOutcome>) -> bool {
    matches!(outcome, Some(ReplyOutcome::Succeeded { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_values_and_forged_reply_topics_are_dead_lettered_and_the_next_commands_run() {
    let env = TestEnv::new(1).await;
    let config = env.config.clone();
    let topic = config.topics.participant_commands("shipping");
    let mut forged = ship(&config, "o-3", "3 Side St");
    forged.reply_to = config.topics.view_details.clone();
    for command in [
        ship(&config, "o-1", "1 Main St"),
        ship(&config, "o-2", "2 Main\u{0} St"),
        forged,
        ship(&config, "o-4", "4 Main St"),
    ] {
        send(&env, &command).await;
    }
    // The same command as JSON (the contract before it was Avro): poison.
    let json = serde_json::to_vec(&ship(&config, "o-5", "5 Main St")).expect("json");
    env.produce_raw(&topic, "o-5", &json, OwnedHeaders::new());
    let (shutdown, readiness) = (Shutdown::new(), Readiness::new("participant-shipping"));
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let worker = spawn_shipping(config.clone(), &shutdown, &readiness);

    let replies = replies(&env, 3).await;
    assert!(succeeded(replies.get("o-1")), "{replies:?}");
    assert!(succeeded(replies.get("o-4")), "{replies:?}");
    match replies.get("o-2") {
        Some(ReplyOutcome::Failed { reason, transient }) => {
            assert!(!transient, "a refused value is no transient failure");
            assert!(reason.contains("SQLSTATE 22021"), "{reason}");
        }
        other => panic!("o-2 answered {other:?}"),
    }
    assert!(
        !replies.contains_key("o-3"),
        "the forged reply_to got a reply"
    );
    assert_eq!(shipments(&env).await, ["o-1", "o-4"]);
    let letters = letters(&env, &topic, 3).await;
    assert_letter(&letters, &topic, 1, "invalid", "SQLSTATE 22021");
    let only_own = format!(
        "answered only on {}",
        config.topics.saga("order", "replies")
    );
    assert_letter(&letters, &topic, 2, "invalid", &only_own);
    assert_letter(&letters, &topic, 4, "undecodable", "not a StepCommand");
    assert!(read_all(&env, &config.topics.view_details).is_empty());
    assert!(readiness.report().ready, "{:?}", readiness.report());
    assert!(!worker.is_finished(), "the participant stopped");
    shutdown.trigger();
    let stats = worker.await.expect("the participant stops cleanly");
    assert_eq!((stats.applied, stats.dead_letters), (2, 3), "{stats:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_participant_waits_out_lock_timeouts_and_lost_connections_unready_and_applies_once() {
    let env = TestEnv::new(1).await;
    let role = TestRole::on_migrated_schema(&env, &participants::migrations()).await;
    role.set_statement_timeout("1s").await;
    let (shutdown, readiness) = (Shutdown::new(), Readiness::new("participant-shipping"));
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let worker = spawn_shipping(role.config(&env.config), &shutdown, &readiness);
    send(&env, &ship(&env.config, "o-1", "1 Main St")).await;
    replies(&env, 1).await;

    // A lock held past the statement timeout: statements cancelled (57014).
    let table = format!("{}.shipments", env.config.postgres_schema);
    let lock = role.lock_table(&table).await;
    send(&env, &ship(&env.config, "o-2", "2 Main St")).await;
    waits_for_postgres(&readiness).await;
    lock.release().await;
    assert!(succeeded(replies(&env, 2).await.get("o-2")));
    readiness_becomes(&readiness, true).await;

    // Its session ended and no new one allowed (too many connections, 53300).
    assert!(role.cut_off().await >= 1, "the participant had a session");
    send(&env, &ship(&env.config, "o-3", "3 Main St")).await;
    waits_for_postgres(&readiness).await;
    assert_eq!(shipments(&env).await, ["o-1", "o-2"]);
    role.let_in().await;
    let replies = replies(&env, 3).await;
    assert!(succeeded(replies.get("o-3")), "{replies:?}");
    readiness_becomes(&readiness, true).await;
    assert_eq!(shipments(&env).await, ["o-1", "o-2", "o-3"]);

    shutdown.trigger();
    let stats = worker.await.expect("the participant stops cleanly");
    assert_eq!((stats.applied, stats.dead_letters), (3, 0), "{stats:?}");
    assert_no_letters(&env, &env.config.topics.participant_commands("shipping"));
    role.drop_role().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_participant_without_rights_on_its_table_exits_non_zero_with_the_reason() {
    let env = TestEnv::new(1).await;
    let role = TestRole::on_migrated_schema(&env, &participants::migrations()).await;
    let url = role.url();
    let extra = [("GAVEL_POSTGRES_URL", url.as_str())];
    let worker = Worker::spawn_with_env(&env, "participant shipping", "fatal-ship", &extra);
    send(&env, &ship(&env.config, "o-1", "1 Main St")).await;
    replies(&env, 1).await;

    let schema = &env.config.postgres_schema;
    role.admin(&format!(
        "REVOKE INSERT ON {schema}.shipments FROM {{role}}"
    ))
    .await;
    send(&env, &ship(&env.config, "o-2", "2 Main St")).await;
    assert_exits_with(worker, "permission denied for table shipments");
    assert_no_letters(&env, &env.config.topics.participant_commands("shipping"));
    assert_eq!(shipments(&env).await, ["o-1"]);
    role.drop_role().await;
    env.stop().await;
}
