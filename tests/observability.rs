//! Dead letters, their replay and consumer lag, on the real stack: poison goes
//! to `<topic>.dlq` with its coordinates and nothing behind it stalls; a replay
//! run twice sends once; lag rises on a real /metrics endpoint while the
//! event-store sink is frozen and falls to zero once it runs again.

mod common;

use common::observe::{free_addr, get, samples, spawn_observed};
use common::process::{read_all, Worker};
use common::{eventually, TestEnv, TriggerOnDrop};
use gavel_runtime::dlq::{self, header};
use gavel_runtime::observe::measure_group;
use gavel_runtime::Shutdown;
use rdkafka::message::{Header, OwnedHeaders};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn create_lines(prefix: &str, from: usize, to: usize) -> String {
    (from..to)
        .map(|i| {
            format!(
                r#"{{"type":"CreateAuction","auction_id":"{prefix}-{i}","seller_id":"s","title":"Lot {i}","currency":"EUR","starting_price":100,"min_increment":10,"ends_in_secs":600}}"#
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn produce(env: &TestEnv, lines: &str) {
    let report =
        gavel_producers::produce::run(&env.config, lines.as_bytes(), "t", &Shutdown::new())
            .await
            .expect("produce");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

fn poison_command(env: &TestEnv, i: usize) {
    let id = format!("poison-{i}");
    let headers = OwnedHeaders::new().insert(Header {
        key: "command_id",
        value: Some(id.as_bytes()),
    });
    env.produce_raw(
        &env.config.topics.commands,
        &format!("bad-{i}"),
        b"{\"not\":\"avro\"}",
        headers,
    );
}

fn dead_letters(env: &TestEnv, topic: &str) -> Vec<dlq::DlqRecord> {
    dlq::show(&env.config, &dlq::topic_for(topic), 100_000).expect("read dlq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_in_a_thousand_poison_records_are_dead_lettered_and_nothing_stalls() {
    const GOOD: usize = 20_000;
    const POISON: usize = 20;
    let mut env = TestEnv::new(4).await;
    env.start_aggregate();
    env.start_event_store();
    // Poison between four slices of good commands, and poison events on the event topic.
    for slice in 0..4 {
        let lines = create_lines("lot", slice * GOOD / 4, (slice + 1) * GOOD / 4);
        produce(&env, &lines).await;
        for i in 0..POISON / 4 {
            poison_command(&env, slice * 10 + i);
            let events = &env.config.topics.events;
            let key = format!("bad-event-{slice}-{i}");
            if (slice * POISON / 4 + i).is_multiple_of(2) {
                env.produce_raw(events, &key, b"not avro", OwnedHeaders::new());
            } else {
                // A well-framed record whose schema id the registry never issued.
                let unknown = [0u8, 0x7f, 0xff, 0xff, 0x01, 2, 4];
                env.produce_raw(events, &key, &unknown, OwnedHeaders::new());
            }
        }
    }

    // Every good command decided, every poison one answered MALFORMED_COMMAND.
    let outcomes = env.outcomes(GOOD + POISON, TIMEOUT).await;
    assert_eq!(outcomes.len(), GOOD + POISON);
    let malformed = outcomes
        .iter()
        .filter(|o| o.rejection_code.as_deref() == Some("MALFORMED_COMMAND"))
        .count();
    assert_eq!(malformed, POISON);
    assert_eq!(outcomes.iter().filter(|o| o.accepted).count(), GOOD);
    env.wait_for_event_rows(None, GOOD as i64).await;

    // Exactly the poison in the command DLQ, each pointing at its original record.
    let commands = &env.config.topics.commands;
    let letters = dead_letters(&env, commands);
    assert_eq!(letters.len(), POISON, "command dead letters");
    let originals: HashMap<(i32, i64), Vec<u8>> = read_all(&env, commands)
        .into_iter()
        .map(|r| ((r.partition, r.offset), r.payload))
        .collect();
    for letter in &letters {
        assert_eq!(letter.header(header::ERROR_CLASS), Some("undecodable"));
        assert_eq!(
            letter.header(header::ORIGINAL_TOPIC),
            Some(commands.as_str())
        );
        assert_eq!(letter.header(header::ATTEMPT), Some("1"));
        assert!(letter
            .header(header::WORKER)
            .is_some_and(|w| w.starts_with("aggregate/")));
        assert!(letter
            .header(header::ERROR_MESSAGE)
            .is_some_and(|m| m.contains("wire format")));
        assert!(letter
            .header(header::ORIGINAL_TIMESTAMP)
            .is_some_and(|t| !t.is_empty()));
        assert!(letter
            .header("command_id")
            .is_some_and(|c| c.starts_with("poison-")));
        assert!(letter.key.as_deref().is_some_and(|k| k.starts_with("bad-")));
        let partition: i32 = letter
            .header(header::ORIGINAL_PARTITION)
            .unwrap()
            .parse()
            .unwrap();
        let offset: i64 = letter
            .header(header::ORIGINAL_OFFSET)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            originals.get(&(partition, offset)).map(Vec::as_slice),
            Some(&b"{\"not\":\"avro\"}"[..]),
            "the letter names the poison record's own partition and offset"
        );
    }

    // The event store dead-letters its poison by class and stores every good event.
    let event_letters = dead_letters(&env, &env.config.topics.events);
    assert_eq!(event_letters.len(), POISON, "event dead letters");
    let class_count = |class| {
        event_letters
            .iter()
            .filter(|l| l.header(header::ERROR_CLASS) == Some(class))
            .count()
    };
    assert_eq!(class_count("undecodable"), POISON / 2);
    assert_eq!(class_count("unknown-schema"), POISON / 2);
    assert_eq!(env.event_rows(None).await, GOOD as i64);

    // No partition stalled: the aggregate's group has nothing left to read.
    let lag = measure_group(
        &env.config,
        &env.config.aggregate_group,
        std::slice::from_ref(commands),
    )
    .expect("lag");
    assert!(lag.iter().all(|p| p.records == 0), "{lag:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_a_dlq_twice_sends_each_letter_once() {
    let env = TestEnv::new(2).await;
    let shutdown = Shutdown::new();
    let _stop_on_panic = TriggerOnDrop(shutdown.clone());
    let aggregate = {
        let (config, shutdown) = (env.config.clone(), shutdown.clone());
        tokio::spawn(async move { gavel_processors::aggregate::run(config, shutdown).await })
    };
    for i in 0..3 {
        poison_command(&env, i);
    }
    let commands = env.config.topics.commands.clone();
    let three = eventually(TIMEOUT, || async {
        (dead_letters(&env, &commands).len() == 3).then_some(())
    })
    .await;
    assert!(three.is_some(), "three dead letters");
    // Stopped, so replayed poison is not dead-lettered again while we count.
    shutdown.trigger();
    aggregate.await.expect("join").expect("aggregate");

    let dlq_topic = dlq::topic_for(&commands);
    let first = dlq::replay(&env.config, &dlq_topic).expect("first replay");
    assert_eq!((first.replayed, first.skipped), (3, 0));
    let after_first = read_all(&env, &commands);
    assert_eq!(after_first.len(), 6, "three originals plus three replayed");
    let second = dlq::replay(&env.config, &dlq_topic).expect("second replay");
    assert_eq!((second.replayed, second.skipped), (0, 0));
    let after_second = read_all(&env, &commands);
    assert_eq!(after_second.len(), 6, "the second replay changed nothing");

    // Replayed records are the originals again: same partition, key and payload.
    let mut copies: HashMap<(i32, Option<String>), usize> = HashMap::new();
    for record in &after_second {
        assert_eq!(record.payload, b"{\"not\":\"avro\"}");
        *copies
            .entry((record.partition, record.key.clone()))
            .or_default() += 1;
    }
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert!(copies.values().all(|n| *n == 2), "{copies:?}");
    env.stop().await;
}

fn lag_of(text: &str, group: &str, metric: &str) -> Vec<f64> {
    samples(text, metric, &[("group", group)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_rises_while_the_event_store_is_frozen_and_falls_to_zero_after() {
    let mut env = TestEnv::new(2).await;
    env.start_aggregate();
    let group = gavel_sinks::event_store::consumer_group(&env.config);
    let sink = spawn_observed(&env, "event-store", "lag-sink", &free_addr());
    let exporter_addr = free_addr();
    let _exporter = spawn_observed(&env, "lag-exporter", "lag-exporter", &exporter_addr);

    produce(&env, &create_lines("warm", 0, 200)).await;
    env.wait_for_event_rows(None, 200).await;
    let caught_up = |text: &str| {
        let records = lag_of(text, &group, "gavel_consumer_lag_records");
        let seconds = lag_of(text, &group, "gavel_consumer_lag_seconds");
        !records.is_empty()
            && records.iter().all(|r| *r == 0.0)
            && seconds.iter().all(|s| *s == 0.0)
    };
    let scrape = || async { get(&exporter_addr, "/metrics").await.map(|(_, body)| body) };
    let zero = eventually(TIMEOUT, || async {
        scrape().await.filter(|t| caught_up(t))
    })
    .await;
    assert!(zero.is_some(), "lag starts at zero once the sink caught up");

    sink.signal("STOP");
    produce(&env, &create_lines("frozen", 0, 300)).await;
    let risen = eventually(TIMEOUT, || async {
        let text = scrape().await?;
        let records: f64 = lag_of(&text, &group, "gavel_consumer_lag_records")
            .iter()
            .sum();
        let seconds = lag_of(&text, &group, "gavel_consumer_lag_seconds")
            .into_iter()
            .fold(0.0, f64::max);
        // Offsets count the transaction markers between the events too.
        (records >= 300.0 && seconds > 0.0).then_some(seconds)
    })
    .await
    .expect("lag in records reaches the 300 unprocessed events");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = scrape().await.expect("scrape");
    let older = lag_of(&later, &group, "gavel_consumer_lag_seconds")
        .into_iter()
        .fold(0.0, f64::max);
    assert!(
        older > risen,
        "lag in seconds keeps growing: {risen} then {older}"
    );

    sink.signal("CONT");
    env.wait_for_event_rows(None, 500).await;
    let zero = eventually(TIMEOUT, || async {
        scrape().await.filter(|t| caught_up(t))
    })
    .await;
    assert!(
        zero.is_some(),
        "lag falls back to zero after the sink resumes"
    );
    sink.stop();
    env.stop().await;
}

/// A bare OTLP/HTTP traces endpoint: keeps every request body it is sent and
/// answers 200 (HTTP/1.1, keep-alive, as the exporter's client speaks it).
async fn otlp_collector() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/v1/traces",
        listener.local_addr().expect("address")
    );
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve_otlp(socket, Arc::clone(&kept)));
        }
    });
    (url, bodies)
}

async fn serve_otlp(socket: tokio::net::TcpStream, bodies: Arc<Mutex<Vec<Vec<u8>>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let mut socket = BufReader::new(socket);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if socket.read_exact(&mut body).await.is_err() {
            return;
        }
        bodies.lock().expect("bodies").push(body);
        let ok =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if socket.get_mut().write_all(ok).await.is_err() {
            return;
        }
    }
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commands_span_reaches_an_otlp_collector_with_its_coordinates() {
    let env = TestEnv::new(2).await;
    let (endpoint, bodies) = otlp_collector().await;
    let aggregate = Worker::spawn_with_env(
        &env,
        "aggregate",
        "otlp-aggregate",
        &[
            ("GAVEL_OTLP_ENDPOINT", endpoint.as_str()),
            ("GAVEL_LOG", "info,gavel_processors=debug"),
        ],
    );
    produce(&env, &create_lines("traced", 0, 1)).await;
    // The span joins the trace of the command's traceparent header: its
    // trace id travels as 16 raw bytes in the protobuf body.
    let command = read_all(&env, &env.config.topics.commands);
    let traceparent = command[0]
        .headers
        .iter()
        .find(|(key, _)| key == "traceparent")
        .map(|(_, value)| value.clone())
        .expect("the command carries a traceparent");
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&traceparent[3 + 2 * i..5 + 2 * i], 16).expect("hex"))
        .collect();
    let exported = eventually(TIMEOUT, || async {
        let bodies = bodies.lock().expect("bodies");
        bodies
            .iter()
            .any(|body| {
                holds(body, b"gavel-aggregate")
                    && holds(body, b"command")
                    && holds(body, b"traced-0")
                    && holds(body, env.config.topics.commands.as_bytes())
                    && holds(body, &trace_id)
            })
            .then_some(())
    })
    .await;
    aggregate.stop();
    assert!(
        exported.is_some(),
        "no OTLP export of the command's span (service gavel-aggregate, aggregate id, topic, trace id of {traceparent}) in {} requests",
        bodies.lock().expect("bodies").len()
    );
    env.stop().await;
}
