//! Poison records (commands, events, view records) never stop a partition, and the registry refuses
//! incompatible schema changes with its own message.

mod common;

use common::{eventually, TestEnv};
use gavel_runtime::registry::{load_schema_dir, RegistryClient};
use gavel_runtime::Shutdown;
use rdkafka::message::{Header, OwnedHeaders};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_commands_and_events_are_skipped_and_the_partition_keeps_moving() {
    // One partition: the poison records sit in front of the good ones.
    let env = TestEnv::with_workers(1).await;
    let headers = OwnedHeaders::new().insert(Header {
        key: "command_id",
        value: Some("poison-1".as_bytes()),
    });
    env.produce_raw(
        &env.config.topics.commands,
        "p-1",
        b"{\"not\":\"avro\"}",
        headers,
    );
    env.produce_raw(
        &env.config.topics.events,
        "p-1",
        &[0, 0, 0, 0, 1, 0xff, 0xff],
        OwnedHeaders::new(),
    );
    // Poison on every view topic too, ahead of the projector's records.
    for topic in env.config.topics.views() {
        env.produce_raw(topic, "p-1", b"not json", OwnedHeaders::new());
    }
    let lines = r#"{"type":"CreateAuction","auction_id":"after-poison","seller_id":"s","title":"Etching","currency":"EUR","starting_price":100,"min_increment":10,"ends_in_secs":60}
{"type":"StartAuction","auction_id":"after-poison","actor_id":"s"}"#;
    gavel_producers::produce::run(&env.config, lines.as_bytes(), "t", &Shutdown::new())
        .await
        .expect("produce");

    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    let version = eventually(TIMEOUT, || async {
        let sql = format!(
            "SELECT version FROM {schema}.auction_details WHERE auction_id = 'after-poison'"
        );
        let version: i64 = client.query_opt(&sql, &[]).await.ok().flatten()?.get(0);
        (version == 2).then_some(version)
    })
    .await;
    assert_eq!(
        version,
        Some(2),
        "commands behind the poison were processed and materialized"
    );
    let listed = eventually(TIMEOUT, || async {
        let sql =
            format!("SELECT count(*) FROM {schema}.auction_list WHERE auction_id = 'after-poison'");
        let count: i64 = client.query_one(&sql, &[]).await.ok()?.get(0);
        (count == 1).then_some(())
    })
    .await;
    assert!(
        listed.is_some(),
        "view records behind the poison were applied"
    );

    let outcomes = env.outcomes(3, TIMEOUT).await;
    let poison = outcomes
        .iter()
        .find(|o| o.command_id == "poison-1")
        .expect("the poison command is answered");
    assert_eq!(poison.rejection_code.as_deref(), Some("MALFORMED_COMMAND"));
    assert!(
        poison
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("not Confluent wire format"),
        "{poison:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_schema_change_is_refused_with_the_registrys_message() {
    let env = TestEnv::new(1).await;
    let registry = RegistryClient::new(&env.config.registry);
    let files = load_schema_dir(&common::schema_dir(), &env.config.topics).expect("schemas");
    let bid = files
        .iter()
        .find(|f| f.record_name.ends_with(".BidPlaced"))
        .expect("BidPlaced schema")
        .clone();

    let mut breaking = bid.clone();
    breaking.text = bid.text.replacen(
        "\"fields\": [",
        "\"fields\": [\n    {\"name\": \"auction_house\", \"type\": \"string\"},",
        1,
    );
    let error = registry
        .register(&breaking)
        .await
        .expect_err("a new field without default breaks old data");
    let message = error.to_string();
    assert!(
        message.contains("HTTP 409") || message.to_lowercase().contains("incompatible"),
        "{message}"
    );

    let mut compatible = bid.clone();
    compatible.text = bid.text.replacen(
        "\"fields\": [",
        "\"fields\": [\n    {\"name\": \"auction_house\", \"type\": [\"null\", \"string\"], \"default\": null},",
        1,
    );
    registry
        .register(&compatible)
        .await
        .expect("an optional field with a default is compatible");
    env.stop().await;
}
