//! A private pipeline per test against the real local stack: random topic
//! names, consumer groups, registry subjects and Postgres schema, with the
//! aggregate processor and the sink running as tasks; all removed at the end.

#![allow(dead_code)]

pub mod api;
pub mod events;
pub mod observe;
pub mod process;
pub mod role;
pub mod roles;
pub mod tokens;
pub mod wire;

use gavel_runtime::auction_codec::{outcome_from_avro, CommandOutcome};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::registry::{load_schema_dir, RegistryClient};
use gavel_runtime::{kafka, postgres, Config, Shutdown};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub struct TestEnv {
    pub config: Config,
    shutdown: Shutdown,
    workers: Vec<JoinHandle<()>>,
    subjects: Vec<String>,
    /// Set once `stop` removed the topics, schema and subjects.
    removed: bool,
    _watchdog: Watchdog,
}

/// Trips a shutdown token when dropped: a test that panics before it stops
/// its blocking workers (aggregate, projector) would otherwise hang the
/// runtime's shutdown forever instead of reporting the panic.
pub struct TriggerOnDrop(pub Shutdown);

impl Drop for TriggerOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// Ends the whole test process when one test runs longer than
/// GAVEL_TEST_TIMEOUT_SECS (default 600): a hang fails fast with the test's
/// id instead of eating the CI budget.
struct Watchdog {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    fn start(id: &str) -> Self {
        let limit = std::env::var("GAVEL_TEST_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600u64);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, id) = (done.clone(), id.to_owned());
        let started = Instant::now();
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                if started.elapsed() > Duration::from_secs(limit) {
                    eprintln!("test {id} still running after {limit} s: aborting this test binary");
                    std::process::exit(124);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Self { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

impl TestEnv {
    /// Topics, schemas and Postgres schema of our own; workers not started yet.
    pub async fn new(partitions: i32) -> Self {
        Self::new_with(partitions, &[]).await
    }

    /// `new` with some settings replaced (as `GAVEL_*` names), e.g. the
    /// secured transports of the local stack. The base is the environment's
    /// configuration (`GAVEL_KAFKA_BOOTSTRAP` ... point tests at another stack).
    pub async fn new_with(partitions: i32, overrides: &[(String, String)]) -> Self {
        let mut env = Self::bare(partitions, overrides).await;
        migrate(&env.config);
        env.register_schemas(&schema_dir()).await;
        env
    }

    /// Settings and topics of our own, nothing else: no Postgres schema, no
    /// registered schemas (a test that sets up as an older release does).
    pub async fn bare(partitions: i32, overrides: &[(String, String)]) -> Self {
        std::mem::forget(gavel_runtime::telemetry::init_tracing("gavel-test"));
        let id = unique("t");
        let base = Config::load()
            .expect("configuration")
            .with_overrides(overrides.iter().map(|(k, v)| (k, v.as_str())))
            .expect("overrides are valid settings");
        let mut config = base.isolated(&id);
        config.partitions = partitions;
        config.postgres_schema = format!("test_{id}");
        config.batch_linger = Duration::from_millis(5);
        // A key of test strength (>= 32 bytes), as a deployment must have.
        config.jwt_secret =
            gavel_runtime::config::Secret::new(format!("{id}-test-jwt-key-0123456789abcdef"));
        require_stack(&config).await;
        kafka::create_topics(&config, &kafka::auction_topics(&config))
            .await
            .expect("create topics");
        Self {
            config,
            shutdown: Shutdown::new(),
            workers: Vec::new(),
            subjects: Vec::new(),
            removed: false,
            _watchdog: Watchdog::start(&id),
        }
    }

    /// Registers every schema under `dir` on this test's topics.
    pub async fn register_schemas(&mut self, dir: &Path) {
        let registry = RegistryClient::new(&self.config.registry);
        let files = load_schema_dir(dir, &self.config.topics).expect("schema files");
        for file in &files {
            registry.register(file).await.expect("register schema");
        }
        self.remove_subjects_of(dir);
    }

    /// The subjects of the schemas under `dir` are removed with the topics
    /// (for schemas registered by another process).
    pub fn remove_subjects_of(&mut self, dir: &Path) {
        let files = load_schema_dir(dir, &self.config.topics).expect("schema files");
        for file in &files {
            let subject = file.subject();
            if !self.subjects.contains(&subject) {
                self.subjects.push(subject);
            }
        }
    }

    /// `new` plus the aggregate processor and the sink running.
    pub async fn with_workers(partitions: i32) -> Self {
        let mut env = Self::new(partitions).await;
        env.start_aggregate();
        env.start_project();
        env.start_sink();
        env
    }

    pub fn start_aggregate(&mut self) {
        let (config, shutdown) = (self.config.clone(), self.shutdown.clone());
        self.workers.push(tokio::spawn(async move {
            gavel_processors::aggregate::run(config, shutdown)
                .await
                .expect("aggregate processor");
        }));
    }

    pub fn start_project(&mut self) {
        let (config, shutdown) = (self.config.clone(), self.shutdown.clone());
        self.workers.push(tokio::spawn(async move {
            gavel_processors::project::run(config, shutdown)
                .await
                .expect("projector");
        }));
    }

    pub fn start_sink(&mut self) {
        let (config, shutdown) = (self.config.clone(), self.shutdown.clone());
        self.workers.push(tokio::spawn(async move {
            gavel_sinks::views::run(config, shutdown)
                .await
                .expect("sink");
        }));
    }

    pub async fn pg(&self) -> tokio_postgres::Client {
        postgres::connect(&self.config).await.expect("postgres")
    }

    /// Raw bytes onto a topic, for poison-record tests.
    pub fn produce_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: rdkafka::message::OwnedHeaders,
    ) {
        let producer: ThreadedProducer<DefaultProducerContext> =
            kafka::producer_config(&self.config)
                .create()
                .expect("producer");
        producer
            .send(
                BaseRecord::to(topic)
                    .key(key)
                    .payload(payload)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("send raw");
        producer.flush(Duration::from_secs(10)).expect("flush");
    }

    /// Every record on `topic` (all partitions), read_committed, until `count` or `timeout`.
    pub fn read_topic(
        &self,
        topic: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<(Option<String>, Vec<u8>)> {
        let mut client = kafka::client_config(&self.config);
        client
            .set("group.id", unique("reader"))
            .set("isolation.level", "read_committed");
        let consumer: BaseConsumer = client.create().expect("consumer");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..self.config.partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        while records.len() < count && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                let key = message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned());
                records.push((key, message.payload().unwrap_or_default().to_vec()));
            }
        }
        records
    }

    pub async fn outcomes(&self, count: usize, timeout: Duration) -> Vec<CommandOutcome> {
        let codec = AvroCodec::new(&self.config.registry);
        let mut outcomes = Vec::new();
        for (_, payload) in self.read_topic(&self.config.topics.outcomes, count, timeout) {
            let decoded = codec.decode(&payload).await.expect("outcome decodes");
            outcomes.push(outcome_from_avro(decoded.value).expect("outcome maps"));
        }
        outcomes
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        for worker in self.workers.drain(..) {
            worker.await.expect("worker ended cleanly");
        }
        remove_resources(&self.config, &self.subjects).await;
        self.removed = true;
    }

    /// The event-store sink as a worker, stopped by `stop`.
    pub fn start_event_store(&mut self) {
        let handle = self.spawn_event_store(&self.shutdown.clone());
        self.workers.push(tokio::spawn(async move {
            handle.await.expect("event store sink");
        }));
    }

    /// An event-store sink with its own shutdown token, so a test can stop or
    /// abort one instance and start another on the same group; yields its stats.
    /// Stop it before `stop`, which deletes the topics and the schema.
    pub fn spawn_event_store(
        &self,
        shutdown: &Shutdown,
    ) -> JoinHandle<gavel_sinks::event_store::EventStoreStats> {
        let (config, shutdown) = (self.config.clone(), shutdown.clone());
        tokio::spawn(async move {
            gavel_sinks::event_store::run(config, shutdown)
                .await
                .expect("event store sink")
        })
    }

    /// Rows in the event store, of one auction or all (0 before the table exists).
    pub async fn event_rows(&self, auction: Option<&str>) -> i64 {
        let sql = format!(
            "SELECT count(*) FROM {}.events WHERE $1::text IS NULL OR aggregate_id = $1",
            self.config.postgres_schema
        );
        match self.pg().await.query_one(&sql, &[&auction]).await {
            Ok(row) => row.get(0),
            Err(_) => 0,
        }
    }

    /// Waits until the event store holds exactly `rows` rows (of `auction`, or all).
    pub async fn wait_for_event_rows(&self, auction: Option<&str>, rows: i64) {
        let reached = eventually(Duration::from_secs(60), || async {
            (self.event_rows(auction).await == rows).then_some(())
        })
        .await;
        assert!(
            reached.is_some(),
            "{auction:?} never reached {rows} event rows"
        );
    }

    /// The next offsets a sink consumer group stored in Postgres, by partition.
    pub async fn stored_offsets(&self, group: &str) -> Vec<(i32, i64)> {
        let sql = format!(
            "SELECT partition, next_offset FROM {}.sink_offsets
             WHERE consumer_group = $1 ORDER BY partition",
            self.config.postgres_schema
        );
        let rows = self
            .pg()
            .await
            .query(&sql, &[&group])
            .await
            .expect("offsets");
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// The event ids on the events topic (reading until `count` or 10 s).
    pub async fn event_ids_on_topic(&self, count: usize) -> std::collections::BTreeSet<String> {
        let codec = AvroCodec::new(&self.config.registry);
        let mut ids = std::collections::BTreeSet::new();
        let topic = &self.config.topics.events;
        for (_, payload) in self.read_topic(topic, count, Duration::from_secs(10)) {
            let decoded = codec.decode(&payload).await.expect("event decodes");
            let (_, envelope) =
                gavel_runtime::auction_codec::event_from_avro(&decoded.schema.name, decoded.value)
                    .expect("event maps");
            ids.insert(envelope.event_id);
        }
        ids
    }
}

/// A test that panics never reaches `stop`. The aggregate and projector run
/// on blocking threads the runtime must wait for when it shuts down, so
/// without this the failed test would hang forever instead of reporting its
/// panic. Its topics, schema and subjects are removed here too (on a thread
/// of its own: this may run inside the test's runtime), so failed runs do not
/// pile topics up on the stack.
impl Drop for TestEnv {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if self.removed {
            return;
        }
        let (config, subjects) = (self.config.clone(), std::mem::take(&mut self.subjects));
        block_on_own_thread(async move { remove_resources(&config, &subjects).await });
    }
}

/// `gavel migrate` on the test's schemas, as the set-up step runs it: the
/// tables, then each role's grants. Workers only check that it ran.
pub fn migrate(config: &Config) {
    gavel(config, &["migrate"]);
}

/// Runs `gavel <args>` with exactly `config`'s settings; panics with its
/// output unless it succeeds.
pub fn gavel(config: &Config, args: &[&str]) -> std::process::Output {
    run_binary(Path::new(env!("CARGO_BIN_EXE_gavel")), config, args)
}

/// `gavel`, of another `gavel` binary (an older release).
pub fn run_binary(binary: &Path, config: &Config, args: &[&str]) -> std::process::Output {
    let output = std::process::Command::new(binary)
        .args(args)
        .envs(config.to_env())
        .output()
        .expect("run gavel");
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        binary.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `cleanup` to its end on a thread and runtime of its own: a `Drop`
/// may run inside the test's runtime, which cannot block on a future.
pub fn block_on_own_thread(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    let thread = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(cleanup);
        }
    });
    let _ = thread.join();
}

/// Deletes a test's topics, Postgres schema and registry subjects.
async fn remove_resources(config: &Config, subjects: &[String]) {
    let _ = kafka::delete_auction_topics(config).await;
    if let Ok(client) = postgres::connect(config).await {
        let _ = client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
                config.postgres_schema, config.outbox_schema
            ))
            .await;
    }
    let registry = RegistryClient::new(&config.registry);
    for subject in subjects {
        let _ = registry.delete_subject(subject).await;
    }
}

pub fn schema_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

async fn require_stack(config: &Config) {
    let reachable = postgres::connect(config).await.is_ok()
        && std::net::TcpStream::connect_timeout(
            &config
                .kafka_bootstrap
                .parse()
                .expect("bootstrap is host:port"),
            Duration::from_secs(2),
        )
        .is_ok();
    assert!(
        reachable,
        "the local stack is not running: `make stack-up` (or `make test`, which starts it)"
    );
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until auction_list and user_bids agree with auction_details; panics
/// with the disagreements when they never do.
pub async fn assert_views_agree(client: &tokio_postgres::Client, schema: &str) {
    let agreed = eventually(Duration::from_secs(30), || async {
        let found = gavel_sinks::views::verify::derived_views_disagreements(client, schema)
            .await
            .ok()?;
        found.is_empty().then_some(())
    })
    .await;
    assert!(
        agreed.is_some(),
        "auction_list and user_bids agree with auction_details: {:?}",
        gavel_sinks::views::verify::derived_views_disagreements(client, schema).await
    );
}

/// Waits until auction_details equals `expected`; panics with the differences.
pub async fn assert_read_model(
    client: &tokio_postgres::Client,
    schema: &str,
    expected: &std::collections::BTreeMap<gavel_domain::AuctionId, gavel_domain::auction::Auction>,
) -> gavel_sinks::views::verify::Comparison {
    let matched = eventually(Duration::from_secs(120), || async {
        let comparison = gavel_sinks::views::verify::compare(client, schema, expected)
            .await
            .ok()?;
        comparison.all_match().then_some(comparison)
    })
    .await;
    match matched {
        Some(comparison) => comparison,
        None => {
            let last = gavel_sinks::views::verify::compare(client, schema, expected)
                .await
                .expect("compare");
            panic!(
                "read model differs: {} missing, {:?}",
                last.missing,
                &last.differences[..last.differences.len().min(5)]
            );
        }
    }
}
