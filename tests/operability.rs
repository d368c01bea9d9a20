//! What an operator sees and does, on the real stack: `gavel status` and the
//! lag exporter list every stage's group against the topics it really reads
//! and say 0 once a pipeline is drained (transaction markers included);
//! `gavel topics delete` deletes this pipeline's topics only with --yes;
//! `gavel dlq list` shows this pipeline's dead-letter topics only; `gavel load
//! --no-wait` fills the command topic without an aggregate.

mod common;

use common::observe::{free_addr, get, samples, spawn_observed};
use common::process::{read_all, Worker};
use common::{eventually, unique, TestEnv};
use gavel_domain::saga::Participant;
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_runtime::{kafka, Config};
use std::process::{Command, Output};
use std::time::Duration;

/// `gavel <args>` with this test's configuration.
fn gavel(config: &Config, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gavel"))
        .args(args)
        .envs(config.to_env())
        .env("GAVEL_LOG", "warn")
        .output()
        .expect("run gavel")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every stage's group and the topics it subscribes to: what status must list.
fn stage_groups(config: &Config) -> Vec<(String, String)> {
    let t = &config.topics;
    let mut pairs = vec![
        (config.aggregate_group.clone(), t.commands.clone()),
        (config.project_group.clone(), t.events.clone()),
        (
            gavel_sinks::event_store::consumer_group(config),
            t.events.clone(),
        ),
    ];
    for view in t.views() {
        pairs.push((config.sink_group.clone(), view.to_owned()));
    }
    let payment = gavel_processors::saga::consumer_group(config, "payment");
    pairs.push((payment.clone(), t.view_details.clone()));
    pairs.push((payment, t.saga("payment", "replies")));
    let order = gavel_processors::saga::consumer_group(config, "order");
    pairs.push((order.clone(), t.orders.clone()));
    pairs.push((order, t.saga("order", "replies")));
    for participant in Participant::ALL {
        let name = participant.as_str();
        let group = gavel_sinks::participants::consumer_group(config, name);
        pairs.push((group, t.participant_commands(name)));
    }
    pairs
}

/// `gavel status`'s lag lines as (group, topic) -> records.
fn status_lag(config: &Config) -> std::collections::BTreeMap<(String, String), i64> {
    let output = gavel(config, &["status"]);
    assert!(output.status.success(), "gavel status: {output:?}");
    let text = stdout(&output);
    let lag_section = text.split("DEAD LETTERS").next().unwrap_or_default();
    lag_section
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let records = fields.get(2)?.parse().ok()?;
            Some(((fields[0].to_owned(), fields[1].to_owned()), records))
        })
        .collect()
}

/// Groups of `wanted` whose status line is missing or not 0.
fn not_drained(config: &Config, wanted: &[(String, String)]) -> Vec<String> {
    let lag = status_lag(config);
    wanted
        .iter()
        .filter(|pair| lag.get(*pair) != Some(&0))
        .map(|(g, t)| format!("{g} on {t}: {:?}", lag.get(&(g.clone(), t.clone()))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_and_lag_exporter_say_0_for_every_stage_of_a_drained_pipeline() {
    let env = TestEnv::new(2).await;
    let exporter_addr = free_addr();
    let mut workers: Vec<Worker> = ["aggregate", "project", "sink", "saga run payment"]
        .into_iter()
        .chain(["saga run order", "participant all"])
        .map(|role| Worker::spawn(&env, role, "s0"))
        .collect();
    workers.push(spawn_observed(&env, "lag-exporter", "s0", &exporter_addr));
    // Auctions that end (and are paid for by sagas) within seconds, and orders.
    let spec = LoadSpec {
        run_id: unique("st"),
        tenant: "t".into(),
        auctions: 20,
        bids: 200,
        duration_ms: 4_000,
        seed: 3,
    };
    let workload = generate(&spec, gavel_producers::produce::now());
    gavel_producers::send_workload(&env.config, &workload, false)
        .await
        .expect("send");
    let orders = gavel(&env.config, &["orders", "--count", "10"]);
    assert!(orders.status.success(), "gavel orders: {orders:?}");

    let all = stage_groups(&env.config);
    let store_group = gavel_sinks::event_store::consumer_group(&env.config);
    let (store, running): (Vec<_>, Vec<_>) =
        all.iter().cloned().partition(|(g, _)| *g == store_group);
    let drained = eventually(Duration::from_secs(90), || async {
        not_drained(&env.config, &running).is_empty().then_some(())
    })
    .await;
    assert!(
        drained.is_some(),
        "not drained: {:?}",
        not_drained(&env.config, &running)
    );
    // The event store has not run: its whole backlog shows, so 0 means something.
    let waiting = status_lag(&env.config).get(&store[0]).copied();
    assert!(
        waiting.is_some_and(|n| n > 0),
        "event store lag before it runs: {waiting:?}"
    );

    workers.push(Worker::spawn(&env, "event-store", "s0"));
    let drained = eventually(Duration::from_secs(60), || async {
        not_drained(&env.config, &all).is_empty().then_some(())
    })
    .await;
    assert!(
        drained.is_some(),
        "not drained: {:?}",
        not_drained(&env.config, &all)
    );

    let exported = eventually(Duration::from_secs(30), || async {
        let (_, text) = get(&exporter_addr, "/metrics").await?;
        let zero_everywhere = all.iter().all(|(group, topic)| {
            let labels = [("group", group.as_str()), ("topic", topic.as_str())];
            let lag = samples(&text, "gavel_consumer_lag_records", &labels);
            lag.len() == env.config.partitions as usize && lag.iter().all(|v| *v == 0.0)
        });
        zero_everywhere.then_some(())
    })
    .await;
    assert!(
        exported.is_some(),
        "the lag exporter reports 0 for every group and partition"
    );
    for worker in workers {
        worker.stop();
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_delete_asks_for_yes_and_dlq_list_shows_this_pipeline_only() {
    let env = TestEnv::new(1).await;
    let other = env.config.isolated(&unique("other"));
    let foreign_dlq = gavel_runtime::dlq::topic_for(&other.topics.commands);
    let foreign = kafka::TopicSpec {
        name: foreign_dlq.clone(),
        partitions: 1,
        configs: vec![],
    };
    kafka::create_topics(&env.config, &[foreign])
        .await
        .expect("foreign dlq");

    let listed = stdout(&gavel(&env.config, &["dlq", "list"]));
    let ours = gavel_runtime::dlq::topic_for(&env.config.topics.commands);
    assert!(listed.contains(&ours), "our DLQ listed: {listed}");
    assert!(
        !listed.contains(&foreign_dlq),
        "another pipeline's DLQ not listed: {listed}"
    );

    let asked = gavel(&env.config, &["topics", "delete"]);
    assert!(
        !asked.status.success(),
        "without --yes nothing is deleted and the exit is non-zero"
    );
    assert!(
        stdout(&asked).contains(&env.config.topics.commands),
        "{asked:?}"
    );
    assert!(
        String::from_utf8_lossy(&asked.stderr).contains("--yes"),
        "{asked:?}"
    );
    let names = kafka::auction_topic_names(&env.config);
    assert_eq!(
        kafka::existing_auction_topics(&env.config)
            .expect("list")
            .len(),
        names.len()
    );

    let deleted = gavel(&env.config, &["topics", "delete", "--yes"]);
    assert!(deleted.status.success(), "{deleted:?}");
    let gone = eventually(Duration::from_secs(30), || async {
        let left = kafka::existing_auction_topics(&env.config).ok()?;
        left.is_empty().then_some(())
    })
    .await;
    assert!(gone.is_some(), "every topic of the pipeline deleted");
    let kept = gavel(&env.config, &["dlq", "list"]);
    assert!(!stdout(&kept).contains(&foreign_dlq), "{kept:?}");
    let consumer_of_other = kafka::partition_count(&env.config, &foreign_dlq);
    assert_eq!(
        consumer_of_other.ok(),
        Some(1),
        "another pipeline's topic left alone"
    );
    kafka::delete_topics(&env.config, &[&foreign_dlq])
        .await
        .expect("clean up");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_no_wait_fills_the_command_topic_without_an_aggregate() {
    let env = TestEnv::new(2).await;
    let args = [
        "load",
        "--no-wait",
        "--rate",
        "0",
        "--commands",
        "500",
        "--auctions",
        "20",
    ];
    let output = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::task::spawn_blocking({
            let config = env.config.clone();
            move || gavel(&config, &args)
        })
        .await
        .expect("join")
    })
    .await
    .expect("--no-wait returns once Kafka acknowledged, without outcomes");
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "500 commands sent to {}",
            env.config.topics.commands
        )),
        "{text}"
    );
    let json: serde_json::Value = text
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a JSON line");
    let by_type = json["by_type"].as_object().expect("by_type");
    let summed: u64 = by_type.values().filter_map(|v| v.as_u64()).sum();
    assert_eq!(
        (json["commands"].as_u64(), summed),
        (Some(500), 500),
        "{json}"
    );
    assert_eq!(by_type["CreateAuction"].as_u64(), Some(20), "{json}");
    assert_eq!(read_all(&env, &env.config.topics.commands).len(), 500);

    let refused = gavel(&env.config, &["load", "--no-wait", "--via", "http"]);
    assert!(!refused.status.success());
    let reason = String::from_utf8_lossy(&refused.stderr);
    assert!(
        reason.contains("--no-wait") && reason.contains("--via kafka"),
        "{reason}"
    );
    env.stop().await;
}

/// A copy of the shipped schemas to change, under the system's temp folder.
fn copy_of_schemas() -> std::path::PathBuf {
    let copy = std::env::temp_dir().join(unique("gavel-schemas-"));
    for folder in std::fs::read_dir(common::schema_dir()).expect("read schemas") {
        let folder = folder.expect("entry").file_name();
        std::fs::create_dir_all(copy.join(&folder)).expect("make folder");
        for entry in std::fs::read_dir(common::schema_dir().join(&folder)).expect("read schemas") {
            let path = entry.expect("entry").path();
            std::fs::copy(
                &path,
                copy.join(&folder).join(path.file_name().expect("name")),
            )
            .expect("copy schema");
        }
    }
    copy
}

/// What a command printed, stdout then stderr.
fn all_said(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Rewrites one schema file's fields with `change`.
fn edit_fields(file: &std::path::Path, change: impl FnOnce(&mut Vec<serde_json::Value>)) {
    let text = std::fs::read_to_string(file).expect("read schema");
    let mut schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let fields = schema["fields"].as_array_mut().expect("a record's fields");
    change(fields);
    std::fs::write(file, schema.to_string()).expect("write schema");
}

/// `gavel schemas check` asks the registry and registers nothing: the shipped
/// schemas pass against what they registered, an added optional field passes,
/// a changed field type is refused with the field named, and no check adds a
/// version to any subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_check_refuses_a_breaking_change_and_registers_nothing() {
    let env = TestEnv::new(1).await;
    let registry = gavel_runtime::registry::RegistryClient::new(&env.config.registry);
    let subjects = [
        format!(
            "{}-dev.gavel.auction.commands.PlaceBid",
            env.config.topics.commands
        ),
        format!(
            "{}-dev.gavel.auction.events.BidPlaced",
            env.config.topics.events
        ),
    ];
    let mut before = Vec::new();
    for subject in &subjects {
        before.push(registry.versions(subject).await.expect("versions"));
    }
    assert!(before.iter().all(|v| v.len() == 1), "{before:?}");

    let shipped = common::schema_dir();
    let as_shipped = gavel(
        &env.config,
        &["schemas", "check", "--dir", shipped.to_str().expect("path")],
    );
    assert!(as_shipped.status.success(), "{}", stdout(&as_shipped));
    let shipped_files = gavel_runtime::registry::load_schema_dir(&shipped, &env.config.topics)
        .expect("schemas")
        .len();
    assert_eq!(
        stdout(&as_shipped).matches("compatible ").count(),
        shipped_files,
        "{}",
        stdout(&as_shipped)
    );

    let evolved = copy_of_schemas();
    edit_fields(&evolved.join("commands/PlaceBid.avsc"), |fields| {
        fields.push(serde_json::json!({
            "name": "bid_note", "type": ["null", "string"], "default": null
        }));
    });
    let compatible = gavel(
        &env.config,
        &["schemas", "check", "--dir", evolved.to_str().expect("path")],
    );
    assert!(compatible.status.success(), "{}", stdout(&compatible));

    let broken = copy_of_schemas();
    edit_fields(&broken.join("events/BidPlaced.avsc"), |fields| {
        for field in fields.iter_mut().filter(|f| f["name"] == "amount_minor") {
            field["type"] = serde_json::json!("string");
        }
    });
    let refused = gavel(
        &env.config,
        &["schemas", "check", "--dir", broken.to_str().expect("path")],
    );
    let said = all_said(&refused);
    assert!(
        !refused.status.success(),
        "a changed field type must be refused: {said}"
    );
    assert!(
        said.contains("REFUSED") && said.contains("BidPlaced"),
        "{said}"
    );
    assert!(
        said.contains("amount_minor") || said.contains("string"),
        "the reason names the change: {said}"
    );
    assert!(said.contains("nothing was registered"), "{said}");

    // The saga contract is FULL_TRANSITIVE: dropping a reply field is fine
    // for a new reader (BACKWARD) but not for a participant or orchestrator
    // still reading with the old schema, so it is refused.
    let narrowed = copy_of_schemas();
    edit_fields(&narrowed.join("saga-replies/StepReply.avsc"), |fields| {
        fields.retain(|f| f["name"] != "participant");
    });
    let refused = gavel(
        &env.config,
        &[
            "schemas",
            "check",
            "--dir",
            narrowed.to_str().expect("path"),
        ],
    );
    let said = all_said(&refused);
    assert!(
        !refused.status.success(),
        "a dropped field must be refused: {said}"
    );
    assert!(
        said.contains("StepReply") && said.contains("FULL_TRANSITIVE"),
        "{said}"
    );

    for (subject, versions) in subjects.iter().zip(&before) {
        let after = registry.versions(subject).await.expect("versions");
        assert_eq!(&after, versions, "{subject}: a check registered a version");
    }
    for dir in [evolved, broken, narrowed] {
        let _ = std::fs::remove_dir_all(dir);
    }
    env.stop().await;
}
