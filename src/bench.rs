//! `gavel bench aggregate`: commands/s through the aggregate processor with
//! exactly-once transactions, and the state restore rate from the changelog, on
//! private topics. The broker's own limits (measured by deploy/local/bench.sh in
//! the same run) come in as arguments so the figures are printed as ratios too.

use anyhow::Result;
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_producers::CommandProducer;
use gavel_runtime::registry::{load_schema_dir, RegistryClient, SchemaFile};
use gavel_runtime::{kafka, postgres, Config, Shutdown};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct AggregateBench {
    pub commands: usize,
    pub auctions: usize,
    pub baseline_produce_rps: Option<f64>,
    pub baseline_consume_rps: Option<f64>,
}

/// Runs the benchmark on a private pipeline; prints and returns its figures.
pub async fn aggregate(base: &Config, spec: &AggregateBench) -> Result<Value> {
    let pipeline = PrivatePipeline::create(base).await?;
    let result = measure(&pipeline.config, spec).await;
    pipeline.remove().await?;
    result
}

/// Topics, registry subjects and a Postgres schema of a benchmark's own, so it
/// never touches the demo's data; removed afterwards.
pub struct PrivatePipeline {
    pub config: Config,
    files: Vec<SchemaFile>,
}

impl PrivatePipeline {
    pub async fn create(base: &Config) -> Result<Self> {
        let config = private_config(base);
        kafka::create_topics(&config, &kafka::auction_topics(&config)).await?;
        // The workers check the schema; the set-up step makes it, as in a deployment.
        crate::setup_cmd::apply_migrations(&config).await?;
        let files = load_schema_dir(Path::new("schemas"), &config.topics)?;
        let registry = RegistryClient::new(&config.registry);
        for file in &files {
            registry.register(file).await?;
        }
        Ok(Self { config, files })
    }

    pub async fn remove(self) -> Result<()> {
        kafka::delete_auction_topics(&self.config).await?;
        let registry = RegistryClient::new(&self.config.registry);
        for file in &self.files {
            registry.delete_subject(&file.subject()).await?;
        }
        let client = postgres::connect(&self.config).await?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; DROP SCHEMA IF EXISTS {} CASCADE",
                self.config.postgres_schema, self.config.outbox_schema
            ))
            .await?;
        Ok(())
    }
}

fn private_config(base: &Config) -> Config {
    let id = format!("bench{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    base.isolated(&id)
}

/// What one pass of the aggregate processor over a filled command topic did.
pub struct AggregateRun {
    pub commands: usize,
    pub produce_secs: f64,
    /// From the processor's first offset commit to its last.
    pub process_secs: f64,
    pub stats: gavel_processors::aggregate::Stats,
}

/// Sends a generated workload of `commands` on `auctions` to the command
/// topic, then runs the aggregate processor in this process until it has
/// committed every command (the fill step of both read-side benchmarks).
pub async fn produce_and_process(
    config: &Config,
    commands: usize,
    auctions: usize,
    seed: u64,
) -> Result<AggregateRun> {
    let load = LoadSpec {
        run_id: format!("b{seed}"),
        tenant: "bench".into(),
        auctions,
        bids: commands.saturating_sub(2 * auctions),
        duration_ms: 3_600_000,
        seed,
    };
    let workload = generate(&load, gavel_producers::produce::now());
    let sent: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    let produce_started = Instant::now();
    let mut producer = CommandProducer::connect(config).await?;
    for (command, meta) in &sent {
        producer.send(command, meta).await?;
    }
    producer.flush().await?;
    let produce_secs = produce_started.elapsed().as_secs_f64();
    let shutdown = Shutdown::new();
    let processor = tokio::spawn(gavel_processors::aggregate::run(
        config.clone(),
        shutdown.clone(),
    ));
    let waited = wait_until_committed(
        config,
        &config.aggregate_group,
        &[&config.topics.commands],
        sent.len() as i64,
    )
    .await;
    // Stop the processor whatever happened, or its blocking thread outlives main.
    shutdown.trigger();
    let stats = processor.await??;
    let (first_commit, done) = waited?;
    Ok(AggregateRun {
        commands: sent.len(),
        produce_secs,
        process_secs: (done - first_commit).as_secs_f64(),
        stats,
    })
}

async fn measure(config: &Config, spec: &AggregateBench) -> Result<Value> {
    let run = produce_and_process(config, spec.commands, spec.auctions, 1).await?;
    let (stats, process_secs) = (&run.stats, run.process_secs);
    let restore_started = Instant::now();
    let mut restored_records = 0;
    let mut restored_aggregates = 0;
    let partitions: Vec<i32> = (0..config.partitions).collect();
    for (state, records) in
        gavel_processors::aggregate::read_changelog(config, &partitions)?.into_values()
    {
        restored_records += records;
        restored_aggregates += state.len();
    }
    let restore_secs = restore_started.elapsed().as_secs_f64();

    let rate = run.commands as f64 / process_secs;
    let restore_rate = restored_records as f64 / restore_secs;
    let report = json!({
        "benchmark": "aggregate",
        "commands": run.commands,
        "auctions": spec.auctions,
        "partitions": config.partitions,
        "events": stats.events,
        "rejections": stats.rejections,
        "transactions": stats.transactions,
        "avro_produce_commands_per_s": run.commands as f64 / run.produce_secs,
        "eos_commands_per_s": rate,
        "restore_records": restored_records,
        "restore_aggregates": restored_aggregates,
        "restore_records_per_s": restore_rate,
        "baseline_raw_produce_records_per_s": spec.baseline_produce_rps,
        "baseline_raw_consume_records_per_s": spec.baseline_consume_rps,
        "eos_vs_raw_produce": spec.baseline_produce_rps.map(|b| rate / b),
        "restore_vs_raw_consume": spec.baseline_consume_rps.map(|b| restore_rate / b),
        "rss_mib": rss_mib(),
    });
    println!("{report}");
    println!(
        "aggregate processor, EOS, {} partitions, {} commands on {} auctions:",
        config.partitions, run.commands, spec.auctions
    );
    println!("  {:>10.0} commands/s decided (events + outcomes + changelog + offsets per transaction; {} transactions)", rate, stats.transactions);
    println!(
        "  {:>10.0} records/s state restore ({} changelog records, {} aggregates)",
        restore_rate, restored_records, restored_aggregates
    );
    if let (Some(p), Some(c)) = (spec.baseline_produce_rps, spec.baseline_consume_rps) {
        println!("  raw broker limit in the same run: {p:.0} produced/s, {c:.0} consumed/s");
        println!(
            "  ratios: EOS processing = {:.1} % of raw produce; restore = {:.1} % of raw consume",
            100.0 * rate / p,
            100.0 * restore_rate / c
        );
    }
    Ok(report)
}

/// Reads a consumer group's committed offsets on every partition of some topics.
pub struct CommittedOffsets {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl CommittedOffsets {
    pub fn new(config: &Config, group: &str, topics: &[&str]) -> Result<Self> {
        let mut client = kafka::client_config(config);
        // read_uncommitted: otherwise librdkafka asks for stable offsets, and under
        // back-to-back transactions the answer keeps waiting for the next commit.
        client
            .set("group.id", group)
            .set("isolation.level", "read_uncommitted");
        let consumer: BaseConsumer = client.create()?;
        let mut partitions = TopicPartitionList::new();
        for topic in topics {
            for partition in 0..kafka::partition_count(config, topic)? {
                partitions.add_partition(topic, partition);
            }
        }
        Ok(Self {
            consumer,
            partitions,
        })
    }

    /// The committed offsets summed over the partitions; None when the broker
    /// did not answer within `timeout`.
    pub fn sum(&self, timeout: Duration) -> Option<i64> {
        let committed = self
            .consumer
            .committed_offsets(self.partitions.clone(), timeout)
            .ok()?;
        Some(
            committed
                .elements()
                .iter()
                .filter_map(|e| e.offset().to_raw())
                .filter(|o| *o > 0)
                .sum(),
        )
    }
}

/// Waits until `group` has committed `total` offsets summed over every
/// partition of `topics`; returns when the first and the last commit were seen.
pub async fn wait_until_committed(
    config: &Config,
    group: &str,
    topics: &[&str],
    total: i64,
) -> Result<(Instant, Instant)> {
    let offsets = CommittedOffsets::new(config, group, topics)?;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        let Some(sum) = offsets.sum(Duration::from_secs(5)) else {
            continue;
        };
        if sum > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if sum >= total {
            return Ok((first.unwrap_or_else(Instant::now), Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("{group} did not commit {total} offsets on {topics:?} within 600 s")
}

/// The offset sum a consumer commits once it has read a transactionally
/// written topic to its end: each non-empty partition ends with one commit
/// marker, which takes an offset but is never delivered.
pub fn transactional_end(config: &Config, topics: &[&str]) -> Result<i64> {
    let consumer: BaseConsumer = kafka::client_config(config).create()?;
    let mut total = 0;
    for topic in topics {
        for partition in 0..kafka::partition_count(config, topic)? {
            let (_, high) = kafka::retry_leaderless(|| {
                consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))
            })?;
            total += (high - 1).max(0);
        }
    }
    Ok(total)
}

fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
