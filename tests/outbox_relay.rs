//! The outbox relay against the real stack: an outbox schema, a data topic and
//! a dead-letter topic of each test's own. Rows carry `<aggregate>:<seq>` as
//! payload and `<aggregate>-<seq>` as event id, so the topic shows order,
//! gaps and re-sends per aggregate.
//! One test restarts the shared Postgres: it runs alone (`STACK`), the others
//! share the stack with each other.

mod common;

use common::observe::{free_addr, get, samples};
use common::process::{read_all, restart_postgres, RawRecord, Worker};
use common::{eventually, unique, TestEnv};
use gavel_runtime::dlq::header as dlq_header;
use gavel_runtime::{kafka, postgres, Shutdown};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Held for reading by every test of this binary, for writing by the one that
/// restarts Postgres: that restart would break the others' connections.
static STACK: RwLock<()> = RwLock::const_new(());

enum StackUse {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// A test's outbox: the table migrated the way an upstream service ships it,
/// and the topic its rows name.
struct Outbox {
    env: TestEnv,
    topic: String,
    _stack: StackUse,
}

impl Outbox {
    async fn new(batch: i64) -> Self {
        Self::create(batch, StackUse::Shared(STACK.read().await)).await
    }

    /// `new`, with no other test of this binary running meanwhile.
    async fn alone(batch: i64) -> Self {
        Self::create(batch, StackUse::Alone(STACK.write().await)).await
    }

    async fn create(batch: i64, stack: StackUse) -> Self {
        let mut env = TestEnv::new(3).await;
        env.config.outbox_batch = batch;
        env.config.outbox_poll = Duration::from_millis(20);
        let topic = format!("{}.orders", env.config.instance_id);
        let spec = kafka::TopicSpec {
            name: topic.clone(),
            partitions: env.config.partitions,
            configs: Vec::new(),
        };
        kafka::create_topics(&env.config, &[spec])
            .await
            .expect("data topic");
        env.config.outbox_allowed = vec![topic.clone()];
        let mut client = env.pg().await;
        let migrations = gavel_producers::outbox::migrations();
        postgres::migrate(&mut client, &env.config.outbox_schema, &migrations)
            .await
            .expect("outbox migration");
        Self {
            env,
            topic,
            _stack: stack,
        }
    }

    async fn insert_round(&self, client: &tokio_postgres::Client, aggregates: &[String], seq: u32) {
        let schema = &self.env.config.outbox_schema;
        insert_round(client, schema, &self.topic, aggregates, seq).await;
    }

    async fn count(&self, condition: &str) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM {}.outbox WHERE {condition}",
            self.env.config.outbox_schema
        );
        self.env
            .pg()
            .await
            .query_one(&sql, &[])
            .await
            .expect("count")
            .get(0)
    }

    async fn wait_until_all_sent(&self, timeout: Duration) {
        let done = eventually(timeout, || async {
            (self.count("sent_at IS NULL").await == 0).then_some(())
        })
        .await;
        let left = self.count("sent_at IS NULL").await;
        assert!(done.is_some(), "{left} outbox rows never sent");
    }

    /// Records on the data topic: the sum of its partitions' high watermarks.
    fn records_on_topic(&self) -> i64 {
        let consumer = kafka::client_config(&self.env.config)
            .create()
            .expect("consumer");
        high_watermarks(&consumer, &self.topic, self.env.config.partitions)
    }

    /// Makes the broker reject every record on the data topic, or take them
    /// again: `message.timestamp.before.max.ms` 0 refuses any record stamped
    /// before the broker's clock, as a relay host whose clock runs behind
    /// would be refused. INVALID_TIMESTAMP is no error librdkafka retries, so
    /// the relay gets it. (A broker refusing writes with a retriable error,
    /// min.insync.replicas above the replicas, is clamped away by Kafka 4.)
    async fn reject_records(&self, reject: bool) {
        use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> = kafka::client_config(&self.env.config)
            .create()
            .expect("admin client");
        let before_max_ms = if reject { "0" } else { "9223372036854775807" };
        let config = AlterConfig::new(ResourceSpecifier::Topic(&self.topic))
            .set("message.timestamp.before.max.ms", before_max_ms);
        let results = admin
            .alter_configs([&config], &AdminOptions::new())
            .await
            .expect("alter topic config");
        for result in results {
            result.expect("message.timestamp.before.max.ms set");
        }
    }

    async fn stop(self) {
        let c = &self.env.config;
        let topics = [self.topic.as_str(), c.outbox_dlq_topic.as_str()];
        let _ = kafka::delete_topics(c, &topics).await;
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", c.outbox_schema);
        let _ = self.env.pg().await.batch_execute(&drop).await;
        self.env.stop().await;
    }
}

fn aggregates(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("agg-{i}")).collect()
}

/// Row `seq` of every aggregate, in one statement (one round).
async fn insert_round(
    client: &tokio_postgres::Client,
    schema: &str,
    topic: &str,
    aggregates: &[String],
    seq: u32,
) {
    try_insert_rounds(client, schema, topic, aggregates, seq..=seq)
        .await
        .expect("insert outbox rows");
}

/// Rows `seqs` of every aggregate in one statement, round after round: ids
/// follow the rounds, so each aggregate's rows are in `seq` order.
fn high_watermarks(
    consumer: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    partitions: i32,
) -> i64 {
    use rdkafka::consumer::Consumer;
    (0..partitions)
        .map(|p| {
            let (_, high) = kafka::retry_leaderless(|| {
                consumer.fetch_watermarks(topic, p, Duration::from_secs(10))
            })
            .expect("watermarks");
            high
        })
        .sum()
}

/// Watches a relay from outside: records the broker holds minus rows marked
/// sent. Every publish adds a record and every committed mark a sent row, so
/// this counts publishes whose commit never came: it grows exactly when a
/// relay dies between publish and commit, and while a live relay is inside
/// that window.
struct UnmarkedProbe {
    consumer: rdkafka::consumer::BaseConsumer,
    client: tokio_postgres::Client,
    topic: String,
    partitions: i32,
    sent: String,
}

impl UnmarkedProbe {
    async fn new(outbox: &Outbox) -> Self {
        Self {
            consumer: kafka::client_config(&outbox.env.config)
                .create()
                .expect("consumer"),
            client: outbox.env.pg().await,
            topic: outbox.topic.clone(),
            partitions: outbox.env.config.partitions,
            sent: format!(
                "SELECT count(*) FROM {}.outbox WHERE sent_at IS NOT NULL",
                outbox.env.config.outbox_schema
            ),
        }
    }

    async fn unmarked(&self) -> i64 {
        // Records first: marks only grow, so reading them second can only
        // make the figure smaller, never invent an unmarked publish.
        let records = high_watermarks(&self.consumer, &self.topic, self.partitions);
        let sent: i64 = self
            .client
            .query_one(&self.sent, &[])
            .await
            .expect("sent rows")
            .get(0);
        records - sent
    }

    /// Waits (up to `limit`) until the relay is seen between a publish and
    /// its commit: more unmarked publishes than `settled`.
    async fn wait_inside_batch(&self, settled: i64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.unmarked().await > settled {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }
}

async fn try_insert_rounds(
    client: &tokio_postgres::Client,
    schema: &str,
    topic: &str,
    aggregates: &[String],
    seqs: RangeInclusive<u32>,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO {schema}.outbox (aggregate_id, topic, payload, headers, event_id)
         SELECT a, $2, convert_to(a || ':' || s, 'UTF8'),
                jsonb_build_object('seq', s::text, 'source', 'outbox-test'), a || '-' || s
         FROM generate_series($3::int4, $4::int4) AS s, unnest($1::text[]) AS a
         ORDER BY s"
    );
    let (first, last) = (*seqs.start() as i32, *seqs.end() as i32);
    client
        .execute(&sql, &[&aggregates, &topic, &first, &last])
        .await
}

/// Inserts rounds `seqs` of every aggregate, one round every `pause`.
fn spawn_inserts(
    outbox: &Outbox,
    aggregates: Vec<String>,
    seqs: RangeInclusive<u32>,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let (config, topic) = (outbox.env.config.clone(), outbox.topic.clone());
    tokio::spawn(async move {
        let client = postgres::connect(&config).await.expect("postgres");
        for seq in seqs {
            insert_round(&client, &config.outbox_schema, &topic, &aggregates, seq).await;
            tokio::time::sleep(pause).await;
        }
    })
}

/// `spawn_inserts` as an upstream service lives through a Postgres outage: a
/// failed round is retried on a new connection, unless it did commit (the
/// connection can break after the commit): a round is one statement, so one
/// of its event ids tells.
fn spawn_resilient_inserts(
    outbox: &Outbox,
    aggregates: Vec<String>,
    rounds: u32,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let (config, topic) = (outbox.env.config.clone(), outbox.topic.clone());
    tokio::spawn(async move {
        let schema = &config.outbox_schema;
        let mut client = postgres::connect(&config).await.ok();
        for seq in 1..=rounds {
            while !round_inserted(client.as_ref(), schema, &topic, &aggregates, seq).await {
                tokio::time::sleep(Duration::from_millis(200)).await;
                client = postgres::connect(&config).await.ok();
            }
            tokio::time::sleep(pause).await;
        }
    })
}

/// Inserts round `seq` unless it is in already; false when Postgres failed.
async fn round_inserted(
    client: Option<&tokio_postgres::Client>,
    schema: &str,
    topic: &str,
    aggregates: &[String],
    seq: u32,
) -> bool {
    let Some(client) = client else { return false };
    let exists = format!("SELECT EXISTS (SELECT 1 FROM {schema}.outbox WHERE event_id = $1)");
    let first = format!("{}-{seq}", aggregates[0]);
    match client.query_one(&exists, &[&first]).await {
        Ok(row) if row.get::<_, bool>(0) => true,
        Ok(_) => try_insert_rounds(client, schema, topic, aggregates, seq..=seq)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// One sample of the relay's metric `name` (summed over label sets), scraped.
async fn scrape(addr: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (_, text) = get(addr, "/metrics").await?;
    let found = samples(&text, name, labels);
    (!found.is_empty()).then(|| found.iter().sum())
}

/// SIGTERM; the relay must exit by itself with status 0 within `grace`.
/// Returns how long it took.
fn terminate_within(relay: &mut Worker, grace: Duration) -> Duration {
    let asked = Instant::now();
    relay.signal("TERM");
    assert!(
        relay.exited_within(grace),
        "{} still running {grace:?} after SIGTERM",
        relay.name
    );
    let status = relay.child.try_wait().expect("exit status");
    assert!(
        status.is_some_and(|s| s.success()),
        "{} exited with {status:?}",
        relay.name
    );
    asked.elapsed()
}

/// What the topic shows per aggregate: `first occurrences` must be 1, 2, 3, ...
/// with no gap; a repeat is allowed only as a re-send run (it rewinds, then
/// continues one by one) and must carry the row's own event id.
#[derive(Debug, Default)]
struct Check {
    rows_per_key: BTreeMap<String, u32>,
    resent: usize,
}

fn check_order(records: &[RawRecord]) -> Result<Check, String> {
    let mut check = Check::default();
    let mut previous: BTreeMap<String, u32> = BTreeMap::new();
    for record in records {
        let key = record.key.clone().ok_or("record without key")?;
        let payload = String::from_utf8_lossy(&record.payload).into_owned();
        let (aggregate, seq) = payload.split_once(':').ok_or("payload not agg:seq")?;
        let seq: u32 = seq.parse().map_err(|_| format!("bad seq in {payload}"))?;
        if aggregate != key {
            return Err(format!("{payload} under key {key}"));
        }
        if record.header("event_id") != Some(&format!("{key}-{seq}")) {
            return Err(format!(
                "{payload} carries event_id {:?}",
                record.header("event_id")
            ));
        }
        let next = check.rows_per_key.entry(key.clone()).or_default();
        let prev = previous.insert(key.clone(), seq).unwrap_or(0);
        if seq == *next + 1 {
            *next = seq;
            if seq != prev + 1 && prev != 0 {
                return Err(format!("{key}: new {seq} right after {prev}"));
            }
        } else if seq <= *next && (seq == prev + 1 || seq <= prev) {
            check.resent += 1;
        } else {
            return Err(format!("{key}: {seq} after {prev} (highest so far {next})"));
        }
    }
    Ok(check)
}

/// The whole data topic: in order, `rows_each` rows of every aggregate, and
/// nothing more than re-sends.
fn assert_relayed(outbox: &Outbox, aggregates: &[String], rows_each: u32) -> Check {
    let records = read_all(&outbox.env, &outbox.topic);
    let check = check_order(&records).expect("per-aggregate order on the topic");
    assert_complete(&check, aggregates, rows_each);
    let rows = aggregates.len() * rows_each as usize;
    assert_eq!(records.len(), rows + check.resent, "records on the topic");
    check
}

fn assert_complete(check: &Check, aggregates: &[String], rows_each: u32) {
    for aggregate in aggregates {
        assert_eq!(
            check.rows_per_key.get(aggregate),
            Some(&rows_each),
            "{aggregate}: rows on the topic"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_relay_every_row_once_in_aggregate_order() {
    let outbox = Outbox::new(50).await;
    let shutdown = Shutdown::new();
    let _stop_on_panic = common::TriggerOnDrop(shutdown.clone());
    let replicas: Vec<_> = ["relay-a", "relay-b"]
        .into_iter()
        .map(|instance| {
            let mut config = outbox.env.config.clone();
            config.instance_id = format!("{}-{instance}", config.instance_id);
            tokio::spawn(gavel_producers::outbox::run(config, shutdown.clone()))
        })
        .collect();
    let aggregates = aggregates(200);
    let started = Instant::now();
    spawn_inserts(
        &outbox,
        aggregates.clone(),
        1..=20,
        Duration::from_millis(30),
    )
    .await
    .expect("inserts");
    outbox.wait_until_all_sent(Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    shutdown.trigger();
    let mut published = Vec::new();
    for replica in replicas {
        let stats = replica.await.expect("relay task").expect("relay");
        published.push(stats.published);
    }
    let records = read_all(&outbox.env, &outbox.topic);
    let check = check_order(&records).expect("per-aggregate order on the topic");
    assert_complete(&check, &aggregates, 20);
    assert_eq!(records.len(), 4000 + check.resent);
    assert_eq!(published.iter().sum::<u64>(), records.len() as u64);
    assert!(
        published.iter().all(|&p| p > 0),
        "both replicas relayed: {published:?}"
    );
    assert_eq!(outbox.count("dead_letter_reason IS NOT NULL").await, 0);
    println!(
        "4000 rows by two replicas {published:?} in {:.1} s, {} re-sent",
        elapsed.as_secs_f64(),
        check.resent
    );
    outbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_again_and_again_loses_and_reorders_nothing() {
    // Half the rows wait before the first relay starts and the rest keep
    // coming, so a relay is nearly always inside a batch when it is killed,
    // however fast this machine inserts. (Rows inserted only as the relays ran,
    // one round every millisecond, were drained as they came on a loaded CI
    // machine: the relay sat idle and 60 kills never landed mid-batch.)
    let outbox = Outbox::new(500).await;
    let aggregates = aggregates(200);
    let (rounds, total) = (400, 200 * 400);
    let client = outbox.env.pg().await;
    let schema = &outbox.env.config.outbox_schema;
    // Marking a batch sent takes 30 ms longer, as on a slow disk: the window
    // between a batch's publish and its commit is then wide enough that kills
    // land in it on any machine, however fast it publishes (a loaded CI
    // machine drained the rows so fast that 60 kills missed it).
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {schema}.slow_mark() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(0.03); RETURN NULL; END $$;
             CREATE TRIGGER slow_mark AFTER UPDATE ON {schema}.outbox
                 FOR EACH STATEMENT EXECUTE FUNCTION {schema}.slow_mark();"
        ))
        .await
        .expect("slow marks");
    try_insert_rounds(&client, schema, &outbox.topic, &aggregates, 1..=rounds / 2)
        .await
        .expect("insert the backlog");
    let started = Instant::now();
    let inserts = spawn_inserts(
        &outbox,
        aggregates.clone(),
        rounds / 2 + 1..=rounds,
        Duration::from_millis(1),
    );
    let probe = UnmarkedProbe::new(&outbox).await;
    let (mut kills, mut mid_batch, mut settled) = (0, 0, 0);
    while !inserts.is_finished() || kills < 10 || (mid_batch == 0 && kills < 60) {
        let relay = Worker::spawn(&outbox.env, "outbox-relay", &unique("relay"));
        let lifetime = 400 + (kills * 337) % 800;
        tokio::time::sleep(Duration::from_millis(lifetime)).await;
        // Every third kill, the first included (the backlog is largest then),
        // is aimed: it waits until the relay is seen between a publish and
        // its commit.
        if kills % 3 == 0 {
            probe
                .wait_inside_batch(settled, Duration::from_secs(5))
                .await;
        }
        relay.kill_9();
        kills += 1;
        // A COMMIT or a produce request already on the wire when the process
        // died still lands: let it, before reading where the relay stopped.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let unmarked = probe.unmarked().await;
        if unmarked > settled {
            mid_batch += 1;
            settled = unmarked;
        }
    }
    inserts.await.expect("inserts");
    let last = Worker::spawn(&outbox.env, "outbox-relay", "relay-last");
    outbox.wait_until_all_sent(Duration::from_secs(120)).await;
    let elapsed = started.elapsed();
    last.stop();
    let records = read_all(&outbox.env, &outbox.topic);
    let check = check_order(&records).expect("per-aggregate order on the topic");
    assert_complete(&check, &aggregates, rounds);
    assert_eq!(records.len(), total as usize + check.resent);
    println!(
        "{total} rows through {kills} kill -9s ({mid_batch} between publish and commit) in {:.1} s ({:.0} rows/s overall), {} re-sent",
        elapsed.as_secs_f64(),
        f64::from(total) / elapsed.as_secs_f64(),
        check.resent
    );
    assert!(mid_batch > 0, "no kill landed between publish and commit");
    assert!(
        check.resent > 0,
        "a kill between publish and commit re-sends"
    );
    outbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpublishable_rows_are_dead_lettered_and_their_aggregates_move_on() {
    let mut outbox = Outbox::new(100).await;
    let schema = outbox.env.config.outbox_schema.clone();
    let client = outbox.env.pg().await;
    let good = aggregates(20);
    for seq in 1..=3 {
        outbox.insert_round(&client, &good, seq).await;
    }
    let missing = format!("{}.no-such-topic", outbox.env.config.instance_id);
    // Allowed, so the relay asks Kafka, which does not know it.
    outbox.env.config.outbox_allowed.push(missing.clone());
    let sql = format!(
        "INSERT INTO {schema}.outbox (aggregate_id, topic, payload, headers, event_id) VALUES
         ('bad', $1, 'bad:1', '{{}}', 'bad-1'),
         ('bad', $2, 'bad:2', '{{}}', 'bad-2'),
         ('bad', $1, 'bad:3', '{{}}', 'bad-3'),
         ('odd', $1, 'odd:1', '{{\"n\": 1}}', 'odd-1'),
         ('odd', $1, 'odd:2', '{{}}', 'odd-2')"
    );
    client
        .execute(&sql, &[&outbox.topic, &missing])
        .await
        .expect("bad rows");
    for seq in 4..=5 {
        outbox.insert_round(&client, &good, seq).await;
    }
    let shutdown = Shutdown::new();
    let _stop_on_panic = common::TriggerOnDrop(shutdown.clone());
    let relay = tokio::spawn(gavel_producers::outbox::run(
        outbox.env.config.clone(),
        shutdown.clone(),
    ));
    let started = Instant::now();
    outbox.wait_until_all_sent(Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    shutdown.trigger();
    let stats = relay.await.expect("relay task").expect("relay");
    assert_eq!(stats.dead_lettered, 2, "{stats:?}");

    let records = read_all(&outbox.env, &outbox.topic);
    let seqs = |key: &str| -> Vec<String> {
        let own = records.iter().filter(|r| r.key.as_deref() == Some(key));
        own.map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect()
    };
    assert_eq!(seqs("bad"), ["bad:1", "bad:3"]);
    assert_eq!(seqs("odd"), ["odd:2"]);
    let check = check_order(
        &records
            .into_iter()
            .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with("agg-")))
            .collect::<Vec<_>>(),
    )
    .expect("good aggregates in order");
    assert_complete(&check, &good, 5);

    let letters = read_all(&outbox.env, &outbox.env.config.outbox_dlq_topic);
    assert_eq!(letters.len(), 2);
    let letter = |event_id: &str| {
        letters
            .iter()
            .find(|l| l.header("event_id") == Some(event_id))
            .unwrap_or_else(|| panic!("no dead letter for {event_id}"))
    };
    let unknown = letter("bad-2");
    assert_eq!(
        unknown.header(dlq_header::ORIGINAL_TOPIC),
        Some(missing.as_str())
    );
    assert_eq!(unknown.payload, b"bad:2");
    let reason = unknown
        .header(dlq_header::ERROR_MESSAGE)
        .unwrap_or_default();
    assert!(reason.starts_with("unknown-topic"), "{reason}");
    let reason = letter("odd-1")
        .header(dlq_header::ERROR_MESSAGE)
        .unwrap_or_default();
    assert!(reason.contains("header n is not a string"), "{reason}");

    let marked = outbox
        .count("dead_letter_reason IS NOT NULL AND sent_at IS NOT NULL AND event_id IN ('bad-2', 'odd-1')")
        .await;
    assert_eq!(marked, 2);
    let dead = &gavel_runtime::observe::metrics::outbox_relay().dead_letters;
    assert_eq!(dead.with_label_values(&["unknown-topic"]).get(), 1);
    assert_eq!(dead.with_label_values(&["invalid-row"]).get(), 1);
    println!(
        "missing topic dead-lettered after {:.1} s",
        elapsed.as_secs_f64()
    );
    outbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_while_relaying_loses_and_reorders_nothing() {
    let outbox = Outbox::alone(200).await;
    let addr = free_addr();
    let relay = Worker::spawn_with_env(
        &outbox.env,
        "outbox-relay",
        "relay-pg",
        &[("GAVEL_METRICS_ADDR", addr.as_str())],
    );
    let aggregates = aggregates(100);
    let rounds = 300;
    let inserts = spawn_resilient_inserts(
        &outbox,
        aggregates.clone(),
        rounds,
        Duration::from_millis(20),
    );
    // Postgres must go away while the relay is at work: some rows out, more coming.
    let relaying = eventually(Duration::from_secs(60), || async {
        (outbox.count("sent_at IS NOT NULL").await > 0).then_some(())
    })
    .await;
    assert!(relaying.is_some(), "the relay never sent a row");
    assert!(
        !inserts.is_finished(),
        "rows stopped coming before the outage"
    );
    let started = Instant::now();
    tokio::task::spawn_blocking(restart_postgres)
        .await
        .expect("restart postgres");
    let outage = started.elapsed();
    inserts.await.expect("inserts");
    outbox.wait_until_all_sent(Duration::from_secs(120)).await;
    let caught_up = started.elapsed();
    let label = [("kind", "postgres-unavailable")];
    let errors = scrape(&addr, "gavel_outbox_relay_errors_total", &label).await;
    assert!(
        errors.is_some_and(|n| n >= 1.0),
        "the relay did not count the outage: {errors:?}"
    );
    // Exit code 0: the relay that lived through the restart reconnected, never died.
    relay.stop();
    let check = assert_relayed(&outbox, &aggregates, rounds);
    assert_eq!(outbox.count("dead_letter_reason IS NOT NULL").await, 0);
    println!(
        "postgres restart took {:.1} s; all {} rows sent {:.1} s after it began, {} re-sent",
        outage.as_secs_f64(),
        100 * rounds,
        caught_up.as_secs_f64(),
        check.resent
    );
    outbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_stay_unsent_while_the_broker_rejects_them_then_go_out_in_order() {
    let outbox = Outbox::new(100).await;
    let client = outbox.env.pg().await;
    let aggregates = aggregates(20);
    outbox.reject_records(true).await;
    for seq in 1..=5 {
        outbox.insert_round(&client, &aggregates, seq).await;
    }
    let addr = free_addr();
    let relay = Worker::spawn_with_env(
        &outbox.env,
        "outbox-relay",
        "relay-rejected",
        &[("GAVEL_METRICS_ADDR", addr.as_str())],
    );
    // Every batch fails and goes again: counted, /ready says so, and the
    // backlog gauges keep moving meanwhile.
    let kafka_errors = [("kind", "kafka")];
    let failing = eventually(Duration::from_secs(60), || async {
        let failed = scrape(&addr, "gavel_outbox_relay_errors_total", &kafka_errors).await?;
        let oldest = scrape(&addr, "gavel_outbox_relay_oldest_unsent_age_seconds", &[]).await?;
        (failed >= 3.0 && oldest >= 5.0).then_some((failed, oldest))
    })
    .await;
    assert!(
        failing.is_some(),
        "no failed batches counted or no growing unsent age while records are rejected"
    );
    let ready = get(&addr, "/ready").await.map(|(status, _)| status);
    assert_eq!(ready, Some(503), "/ready while Kafka rejects the batches");
    for seq in 6..=8 {
        outbox.insert_round(&client, &aggregates, seq).await;
    }
    assert_eq!(outbox.count("sent_at IS NULL").await, 20 * 8);
    assert_eq!(
        outbox.records_on_topic(),
        0,
        "the broker took a rejected record"
    );
    let accepted_at = Instant::now();
    outbox.reject_records(false).await;
    outbox.wait_until_all_sent(Duration::from_secs(60)).await;
    let recovered = accepted_at.elapsed();
    let ready = eventually(Duration::from_secs(10), || async {
        let (status, _) = get(&addr, "/ready").await?;
        (status == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "/ready never came back after Kafka did");
    relay.stop();
    let check = assert_relayed(&outbox, &aggregates, 8);
    assert_eq!(outbox.count("dead_letter_reason IS NOT NULL").await, 0);
    println!(
        "rejected: {failing:?} (failed batches, oldest unsent s); all sent {:.1} s after the topic took records again, {} re-sent",
        recovered.as_secs_f64(),
        check.resent
    );
    outbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_batch_exits_cleanly_and_the_next_relay_sends_the_rest() {
    let outbox = Outbox::new(500).await;
    let aggregates = aggregates(200);
    let rounds = 150;
    let inserts = spawn_inserts(
        &outbox,
        aggregates.clone(),
        1..=rounds,
        Duration::from_millis(10),
    );
    // Rows keep coming: each SIGTERM finds the relay busy; it finishes its
    // batch and exits.
    let (mut stopped_in, mut busy) = (Vec::new(), 0);
    for lifetime in [600, 800, 1000, 1200, 1400] {
        let mut relay = Worker::spawn(&outbox.env, "outbox-relay", &unique("relay-term"));
        tokio::time::sleep(Duration::from_millis(lifetime)).await;
        busy += usize::from(outbox.count("sent_at IS NULL").await > 0);
        stopped_in.push(terminate_within(&mut relay, Duration::from_secs(15)));
    }
    assert!(busy > 0, "no SIGTERM came while rows were waiting");
    inserts.await.expect("inserts");
    // Now batches Kafka rejects: SIGTERM while they fail and go again.
    outbox.reject_records(true).await;
    let client = outbox.env.pg().await;
    outbox.insert_round(&client, &aggregates, rounds + 1).await;
    let addr = free_addr();
    let mut relay = Worker::spawn_with_env(
        &outbox.env,
        "outbox-relay",
        "relay-rejected",
        &[("GAVEL_METRICS_ADDR", addr.as_str())],
    );
    let failing = eventually(Duration::from_secs(60), || async {
        let failed = scrape(&addr, "gavel_outbox_relay_errors_total", &[]).await?;
        (failed >= 1.0).then_some(())
    })
    .await;
    assert!(
        failing.is_some(),
        "no batch failed while records are rejected"
    );
    let sent_before = outbox.count("sent_at IS NOT NULL").await;
    let failing_stopped_in = terminate_within(&mut relay, Duration::from_secs(15));
    assert_eq!(
        outbox.count("sent_at IS NOT NULL").await,
        sent_before,
        "a rejected batch was marked sent"
    );
    outbox.reject_records(false).await;
    let last = Worker::spawn(&outbox.env, "outbox-relay", "relay-last");
    outbox.wait_until_all_sent(Duration::from_secs(120)).await;
    last.stop();
    let check = assert_relayed(&outbox, &aggregates, rounds + 1);
    println!(
        "SIGTERM: busy relays ({busy} of 5 with rows waiting) exited after {stopped_in:?}, a failing one after {failing_stopped_in:?}; {} re-sent",
        check.resent
    );
    outbox.stop().await;
}

/// Backends of other sessions waiting on a lock in a statement that locks
/// this outbox's rows (the relay's claim).
async fn claims_waiting_on_a_lock(client: &tokio_postgres::Client, schema: &str) -> i64 {
    let sql = "SELECT count(*) FROM pg_stat_activity
               WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock'
                 AND query LIKE '%' || $1 || '.outbox%FOR UPDATE%'";
    client
        .query_one(sql, &[&schema])
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_while_postgres_holds_the_claim_exits_within_the_grace_and_loses_nothing() {
    let outbox = Outbox::new(500).await;
    let aggregates = aggregates(50);
    let schema = outbox.env.config.outbox_schema.clone();
    let client = outbox.env.pg().await;
    outbox.insert_round(&client, &aggregates, 1).await;
    // An upstream transaction holds the rows: the relay claims their
    // aggregates, then its statement waits for the rows behind that lock.
    let mut upstream = outbox.env.pg().await;
    let holding = upstream.transaction().await.expect("upstream transaction");
    let hold = format!("SELECT id FROM {schema}.outbox WHERE sent_at IS NULL FOR UPDATE");
    holding.batch_execute(&hold).await.expect("rows held");
    let mut relay = Worker::spawn(&outbox.env, "outbox-relay", &unique("relay-held"));
    let waiting = eventually(Duration::from_secs(60), || async {
        (claims_waiting_on_a_lock(&client, &schema).await > 0).then_some(())
    })
    .await;
    assert!(
        waiting.is_some(),
        "the relay's claim never waited on the held rows"
    );
    let stopped_in = terminate_within(&mut relay, Duration::from_secs(25));
    assert_eq!(
        outbox.count("sent_at IS NULL").await,
        50,
        "rows marked while held"
    );
    holding.rollback().await.expect("upstream rollback");
    outbox.insert_round(&client, &aggregates, 2).await;
    let next = Worker::spawn(&outbox.env, "outbox-relay", "relay-after-held");
    outbox.wait_until_all_sent(Duration::from_secs(60)).await;
    next.stop();
    let check = assert_relayed(&outbox, &aggregates, 2);
    assert_eq!(check.resent, 0, "nothing of the held batch was published");
    println!("SIGTERM while the claim waited on Postgres: exited after {stopped_in:?}");
    outbox.stop().await;
}
