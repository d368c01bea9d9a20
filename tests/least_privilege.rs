//! Least privilege, tried as an attacker holding one role's credentials would:
//! each role has a Kafka principal of its own (SCRAM over SASL_SSL) with only
//! the ACLs of deploy/access.txt, a Postgres role with only its grants, and a
//! registry credential that reads or writes. The internet-facing APIs cannot
//! write what they do not own, and every role still does its real job as a
//! real `gavel` process.

mod common;

use common::process::Worker;
use common::roles::{stack_credentials, Roles};
use common::{eventually, TestEnv};
use gavel_runtime::registry::{load_schema_dir, RegistryClient};
use gavel_runtime::{kafka, Config, Shutdown};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

/// Sends one record to `topic` as `config`'s principal: `Ok` when the broker
/// took it, else the error code it answered with.
async fn write_as(config: &Config, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let producer: FutureProducer = kafka::client_config(config)
        // Not idempotent: a principal with no Write at all may not even get a
        // producer id, and the question here is the topic's ACL alone.
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "15000")
        .create()
        .expect("producer");
    let record = FutureRecord::to(topic).key("probe").payload("not yours");
    match producer.send(record, Duration::from_secs(20)).await {
        Ok(_) => Ok(()),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((other, _)) => panic!("writing {topic}: unexpected {other}"),
    }
}

const REFUSED: Result<(), RDKafkaErrorCode> = Err(RDKafkaErrorCode::TopicAuthorizationFailed);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_apis_and_the_sink_cannot_write_what_is_not_theirs() {
    let env = TestEnv::new(2).await;
    let roles = Roles::provision(&env, &["command-api", "sink", "query-api"]);
    let topics = &env.config.topics;

    let command_api = roles.config(&env, "command-api");
    assert_eq!(write_as(&command_api, &topics.commands).await, Ok(()));
    for topic in [&topics.view_details, &topics.view_list, &topics.events] {
        assert_eq!(
            write_as(&command_api, topic).await,
            REFUSED,
            "command API -> {topic}"
        );
    }

    let sink = roles.config(&env, "sink");
    assert_eq!(
        write_as(&sink, &format!("{}.dlq", topics.view_list)).await,
        Ok(())
    );
    for topic in [&topics.commands, &topics.view_details, &topics.events] {
        assert_eq!(
            write_as(&sink, topic).await,
            REFUSED,
            "view sink -> {topic}"
        );
    }

    let query_api = roles.config(&env, "query-api");
    for topic in kafka::auction_topic_names(&env.config) {
        assert_eq!(
            write_as(&query_api, &topic).await,
            REFUSED,
            "query API -> {topic}"
        );
    }
    drop(roles);
    env.stop().await;
}

/// Spawns `gavel <role>` with that role's own credentials.
fn spawn_as(env: &TestEnv, roles: &Roles, role: &str, command: &str) -> Worker {
    let settings = roles.settings(role);
    let extra: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Worker::spawn_with_env(env, command, &format!("lp-{role}"), &extra)
}

const WORKERS: [(&str, &str); 7] = [
    ("aggregate", "aggregate"),
    ("project", "project"),
    ("sink", "sink"),
    ("event-store", "event-store"),
    ("saga-payment", "saga run payment"),
    ("saga-order", "saga run order"),
    ("participants", "participant all"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_role_does_its_job_with_its_own_credentials_only() {
    let env = TestEnv::new(2).await;
    let mut names: Vec<&str> = WORKERS.iter().map(|(role, _)| *role).collect();
    names.extend(["command-api", "query-api"]);
    let roles = Roles::provision(&env, &names);
    let workers: Vec<Worker> = WORKERS
        .iter()
        .map(|(role, command)| spawn_as(&env, &roles, role, command))
        .collect();

    // The command API's principal sends commands (and an order) through the
    // registry proxy as the reader; the auction ends by its timer with a winner.
    let lines = r#"{"type":"CreateAuction","auction_id":"lot-lp","seller_id":"sam","title":"Least","currency":"EUR","starting_price":1000,"min_increment":100,"ends_in_secs":3}
{"type":"StartAuction","auction_id":"lot-lp","actor_id":"sam"}
{"type":"PlaceBid","auction_id":"lot-lp","bidder_id":"ann","amount":1500,"currency":"EUR"}
"#;
    let command_api = roles.config(&env, "command-api");
    let report =
        gavel_producers::produce::run(&command_api, lines.as_bytes(), "t", &Shutdown::new())
            .await
            .expect("the command API's principal sends commands");
    assert_eq!(report.sent, 3);
    common::gavel(&command_api, &["orders", "--count", "2"]);

    // Admin reads: the view sink's row, the event store's chain, the payment
    // and order sagas' effects, all written by the roles' own logins.
    let client = env.pg().await;
    let schema = env.config.postgres_schema.clone();
    let count = |sql: String| {
        let client = &client;
        async move {
            client
                .query_one(&sql, &[])
                .await
                .map(|r| r.get::<_, i64>(0))
                .ok()
        }
    };
    let settled = eventually(Duration::from_secs(120), || async {
        let ended = count(format!("SELECT count(*) FROM {schema}.auction_details WHERE status = 'ENDED' AND winner_id = 'ann'")).await?;
        let events = count(format!("SELECT count(*) FROM {schema}.events WHERE aggregate_id = 'lot-lp'")).await?;
        let charged = count(format!("SELECT count(*) FROM {schema}.auction_payments WHERE auction_id = 'lot-lp' AND paid")).await?;
        let shipped = count(format!("SELECT count(*) FROM {schema}.shipments")).await?;
        (ended == 1 && events == 4 && charged == 1 && shipped == 2).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "the pipeline did not settle; worker logs under {}",
        std::env::temp_dir().join("gavel-test-logs").display()
    );

    // The query API's principal reads the events (its live feed) and its
    // Postgres login reads the rows.
    let query_api = roles.config(&env, "query-api");
    let group = kafka::reader_group(&query_api, "query-api.test");
    let reader = common::process::read_all_as(&env, &query_api, &group, &env.config.topics.events);
    assert_eq!(reader.len(), 4, "the query API reads the event topic");
    let rows = gavel_runtime::postgres::connect(&query_api)
        .await
        .expect("query API login")
        .query_one(
            &format!("SELECT count(*) FROM {schema}.auction_details"),
            &[],
        )
        .await
        .expect("the query API reads the read model")
        .get::<_, i64>(0);
    assert_eq!(rows, 1);
    for worker in workers {
        worker.stop();
    }
    drop(roles);
    env.stop().await;
}

#[tokio::test]
async fn the_query_apis_postgres_role_reads_and_cannot_write_or_create() {
    let env = TestEnv::new(1).await;
    let schema = env.config.postgres_schema.clone();
    let query_api = env
        .config
        .with_overrides(stack_credentials("query-api"))
        .expect("query API settings");
    assert!(query_api.postgres_url.contains("gavel_query_api"));
    let client = gavel_runtime::postgres::connect(&query_api)
        .await
        .expect("the query API's login");
    client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.auction_details"),
            &[],
        )
        .await
        .expect("SELECT on a read model");
    for statement in [
        format!("INSERT INTO {schema}.auction_list (auction_id) VALUES ('x')"),
        format!("DELETE FROM {schema}.user_bids"),
        format!("UPDATE {schema}.auction_details SET title = 'mine'"),
        format!("CREATE TABLE {schema}.mine (id int)"),
        format!("SELECT count(*) FROM {schema}.events"),
        format!("SELECT count(*) FROM {schema}.sink_offsets"),
        "CREATE SCHEMA mine".to_owned(),
    ] {
        let error = client
            .batch_execute(&statement)
            .await
            .expect_err(&statement);
        let code = error.code().map(|c| c.code().to_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{statement}: {error}");
    }
    env.stop().await;
}

#[tokio::test]
async fn a_worker_credential_reads_schemas_and_only_the_registrar_registers() {
    let env = TestEnv::new(1).await;
    let endpoint = |role: &str| {
        env.config
            .with_overrides(stack_credentials(role))
            .expect("registry settings")
            .registry
    };
    let (reader, registrar) = (endpoint("aggregate"), endpoint("init"));
    assert!(reader.url.starts_with("https://") && reader.username == "reader");
    let file = load_schema_dir(&common::schema_dir(), &env.config.topics)
        .expect("schemas")
        .remove(0);
    let mut file = file;
    file.topic = format!("{}.probe", env.config.topics.commands);

    let refused = RegistryClient::new(&reader).register(&file).await;
    let error = refused.expect_err("a reader registers nothing").to_string();
    assert!(error.contains("401"), "{error}");
    let anonymous = gavel_runtime::registry_endpoint::RegistryEndpoint::new(
        &reader.url,
        "",
        gavel_runtime::config::Secret::new(""),
        &reader.ca_location,
    )
    .expect("endpoint");
    let no_credential = RegistryClient::new(&anonymous).subjects().await;
    let error = no_credential
        .expect_err("no credential reads nothing")
        .to_string();
    assert!(error.contains("401"), "{error}");

    let registered = RegistryClient::new(&registrar)
        .register(&file)
        .await
        .expect("the registrar registers");
    let codec = gavel_runtime::avro::AvroCodec::new(&reader);
    let schema = codec
        .writer_for(&file.topic, &file.record_name)
        .await
        .expect("a reader looks the schema up over TLS");
    assert_eq!(u64::from(schema.id), registered.id);
    RegistryClient::new(&registrar)
        .delete_subject(&registered.subject)
        .await
        .expect("clean up");
    env.stop().await;
}

/// Workers and operator commands never migrate (their roles may not CREATE):
/// on a schema `gavel migrate` has not prepared, they stop with the fix.
#[test]
fn a_role_on_an_unmigrated_schema_stops_and_says_how_to_fix_it() {
    let unmigrated = common::unique("unmigrated_");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gavel"))
        .args(["audit", "verify"])
        .env("GAVEL_POSTGRES_SCHEMA", &unmigrated)
        .output()
        .expect("gavel audit verify");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("run `gavel migrate`"), "{text}");
}
