//! `gavel bench state`: the aggregate's resident memory per live auction.
//! An aggregate process on a private pipeline takes `--auctions` auctions,
//! each created, started and bid on `--bids-per-auction` times; its VmRSS is
//! read before (the empty process), after it has committed every command, and
//! after a kill -9 and a restart as the same replica has restored the state
//! from the changelog. The differences divided by the auctions are the bytes
//! one live auction costs. Prints one JSON report and a summary on stderr.

use crate::bench::{wait_until_committed, PrivatePipeline};
use crate::bench_run::workers::{sample_pid, ticks_per_second, Worker};
use anyhow::{Context, Result};
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_producers::produce::now;
use gavel_producers::CommandProducer;
use gavel_runtime::Config;
use serde::Serialize;
use std::time::Duration;

#[derive(clap::Args, Clone)]
pub struct StateSpec {
    #[arg(long, default_value_t = 50_000)]
    pub auctions: usize,
    #[arg(long, default_value_t = 3)]
    pub bids_per_auction: usize,
}

#[derive(Debug, Serialize)]
pub struct StateRun {
    pub auctions: usize,
    pub commands: usize,
    pub empty_rss_mib: f64,
    pub processed_rss_mib: f64,
    pub restored_rss_mib: f64,
    /// (processed - empty) / auctions: what one auction costs while running.
    pub bytes_per_auction_running: f64,
    /// (restored - empty) / auctions: what one auction costs after a restart.
    pub bytes_per_auction_restored: f64,
}

const READY_WITHIN: Duration = Duration::from_secs(120);
/// Lets the allocator and librdkafka's buffers settle before a reading: longer
/// than the workers' periodic return of freed C memory (`memory.rs`, 10 s),
/// so a reading is the steady state, not the last burst's high-water mark.
const SETTLE: Duration = Duration::from_secs(12);

pub async fn print(base: &Config, spec: &StateSpec) -> Result<()> {
    let pipeline = PrivatePipeline::create(base).await?;
    let result = measure(&pipeline.config, spec).await;
    pipeline.remove().await?;
    let run = result?;
    println!("{}", serde_json::to_string_pretty(&run)?);
    eprintln!(
        "{} live auctions ({} commands): {:.0} bytes each while running, {:.0} after a restore \
         (RSS {:.1} MiB empty, {:.1} MiB processed, {:.1} MiB restored)",
        run.auctions,
        run.commands,
        run.bytes_per_auction_running,
        run.bytes_per_auction_restored,
        run.empty_rss_mib,
        run.processed_rss_mib,
        run.restored_rss_mib
    );
    Ok(())
}

async fn measure(config: &Config, spec: &StateSpec) -> Result<StateRun> {
    let mut aggregate = Worker::spawn(config, "aggregate", &[])?;
    aggregate.ready(READY_WITHIN).await?;
    let empty = settled_rss(&aggregate).await?;
    let commands = send(config, spec).await?;
    let topics = [config.topics.commands.as_str()];
    wait_until_committed(config, &config.aggregate_group, &topics, commands as i64).await?;
    let processed = settled_rss(&aggregate).await?;
    let instance = aggregate.instance.clone();
    aggregate.child.kill()?;
    aggregate.child.wait()?;
    let mut restarted = Worker::spawn_as(config, "aggregate", &instance, &[])?;
    restarted.ready(READY_WITHIN).await?;
    let restored = settled_rss(&restarted).await?;
    restarted.stop(Duration::from_secs(30))?;
    let per_auction = |rss: f64| (rss - empty) * 1024.0 * 1024.0 / spec.auctions as f64;
    Ok(StateRun {
        auctions: spec.auctions,
        commands,
        empty_rss_mib: empty,
        processed_rss_mib: processed,
        restored_rss_mib: restored,
        bytes_per_auction_running: per_auction(processed),
        bytes_per_auction_restored: per_auction(restored),
    })
}

/// Creates, starts and bids on every auction, as fast as Kafka takes them;
/// the number of commands sent. The auctions end long after the run.
async fn send(config: &Config, spec: &StateSpec) -> Result<usize> {
    let load = LoadSpec {
        run_id: config.instance_id.clone(),
        tenant: "state".into(),
        auctions: spec.auctions,
        bids: spec.auctions * spec.bids_per_auction,
        duration_ms: 3_600_000,
        seed: 5,
    };
    let workload = generate(&load, now());
    let mut producer = CommandProducer::connect(config).await?;
    let mut sent = 0;
    for (command, meta) in workload.setup.iter().chain(&workload.bids) {
        producer.send(command, meta).await?;
        sent += 1;
    }
    producer.flush().await?;
    Ok(sent)
}

async fn settled_rss(worker: &Worker) -> Result<f64> {
    tokio::time::sleep(SETTLE).await;
    sample_pid(worker.pid(), ticks_per_second())
        .map(|s| s.rss_mib)
        .with_context(|| format!("the {} process is gone", worker.role))
}
