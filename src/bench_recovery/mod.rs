//! `gavel bench recovery`: how long a pipeline takes to recover from the loss
//! of a worker, under a steady load, with the workers as separate processes on
//! a private pipeline. Each of aggregate, projector and view sink is killed
//! with -9 and restarted as the same replica (same GAVEL_INSTANCE_ID); then
//! one of three aggregates is scaled in with SIGTERM. Afterwards the read
//! model must equal the pure-domain prediction of what was sent and every
//! command must have exactly one outcome: nothing lost. Prints one JSON report.

mod faults;
mod outcomes;
mod traffic;

use crate::bench::PrivatePipeline;
use crate::bench_run::workers::{ready_all, stop_all, Worker};
use anyhow::{Context, Result};
use faults::{Recovery, ScaleIn, StageLag};
use gavel_runtime::membership::Membership;
use gavel_runtime::{postgres, Config};
use serde::Serialize;
use std::time::{Duration, Instant};
use traffic::SteadyLoad;

#[derive(clap::Args, Clone)]
pub struct RecoverySpec {
    /// Group membership of the workers (GAVEL_GROUP_MEMBERSHIP): static,
    /// dynamic, consumer (KIP-848) or consumer-static.
    #[arg(long, default_value = "static")]
    pub membership: String,
    /// Bids per second during the whole run.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    #[arg(long, default_value_t = 200)]
    pub auctions: usize,
    /// How long a killed worker stays down before its restart.
    #[arg(long, default_value_t = 2.0)]
    pub down_secs: f64,
    /// Leave out the scale-in of one of three aggregates.
    #[arg(long)]
    pub no_scale_in: bool,
    /// Start the two extra aggregates of the scale-in under load, after the
    /// faults, rather than with the others: partitions then move away from a
    /// busy aggregate in the middle of its transactions.
    #[arg(long)]
    pub grow_under_load: bool,
}

#[derive(Debug, Serialize)]
pub struct RecoveryRun {
    pub membership: &'static str,
    pub rate: u64,
    pub partitions: i32,
    pub faults: Vec<Recovery>,
    /// With `--grow-under-load`: the longest any partition of the command
    /// topic waited while the two aggregates joined (watched for 15 s).
    pub grow_max_partition_stall_s: Option<f64>,
    pub scale_in: Option<ScaleIn>,
    pub commands_sent: usize,
    /// Distinct commands answered on the outcome topic, and answers in all.
    pub commands_answered: usize,
    pub outcomes: usize,
    /// auction_details rows equal to the prediction, and those that are not.
    pub rows_matching: usize,
    pub rows_wrong_or_missing: usize,
    /// How the first few wrong rows differ from the prediction.
    pub wrong_rows: Vec<String>,
    pub elapsed_s: f64,
}

const READY_WITHIN: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(30);
const SCALE_IN_WATCH: Duration = Duration::from_secs(15);
/// Bids are generated for this long at most.
const MAX_RUN_SECS: u64 = 600;

pub async fn run(base: &Config, spec: &RecoverySpec) -> Result<RecoveryRun> {
    let mut base = base.clone();
    base.membership = Membership::parse(&spec.membership)?;
    let pipeline = PrivatePipeline::create(&base).await?;
    let result = with_pipeline(&pipeline.config, spec).await;
    pipeline.remove().await?;
    result
}

async fn with_pipeline(config: &Config, spec: &RecoverySpec) -> Result<RecoveryRun> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for role in ["aggregate", "project", "sink"] {
        workers.push(Worker::spawn(config, role, &[])?);
    }
    // The replicas of the scale-in run from the start, unless the run is
    // about a group growing under load.
    if !spec.no_scale_in && !spec.grow_under_load {
        workers.extend(spawn_replicas(config)?);
    }
    let outcome = match ready_all(&mut workers, READY_WITHIN).await {
        Ok(()) => under_load(config, spec, workers).await,
        Err(error) => {
            stop_all(workers, STOP_GRACE);
            Err(error)
        }
    };
    let mut run = outcome?;
    run.elapsed_s = started.elapsed().as_secs_f64();
    Ok(run)
}

/// The faults while the load runs, then the checks that nothing was lost.
async fn under_load(
    config: &Config,
    spec: &RecoverySpec,
    workers: Vec<Worker>,
) -> Result<RecoveryRun> {
    let load = SteadyLoad::start(config, spec.auctions, spec.rate, MAX_RUN_SECS);
    let (blocking, plan) = (config.clone(), spec.clone());
    let (workers, measured) =
        tokio::task::spawn_blocking(move || inflict(&blocking, &plan, workers)).await?;
    // Checked while the workers still run: the read side may be seconds
    // behind the last outcome, and stopped it would stay there.
    let checked = async {
        let sent = load.stop().await?;
        let (answered, outcomes) = count_outcomes(config, sent.commands).await?;
        let comparison = settled_read_model(config, &sent.expected).await?;
        Ok::<_, anyhow::Error>((sent, answered, outcomes, comparison))
    }
    .await;
    stop_all(workers, STOP_GRACE);
    let (faults, grow_max_partition_stall_s, scale_in) = measured?;
    let (sent, commands_answered, outcomes, comparison) = checked?;
    Ok(RecoveryRun {
        membership: config.membership.as_str(),
        rate: spec.rate,
        partitions: config.partitions,
        faults,
        grow_max_partition_stall_s,
        scale_in,
        commands_sent: sent.commands,
        commands_answered,
        outcomes,
        rows_matching: comparison.matching,
        rows_wrong_or_missing: comparison.missing + comparison.differences.len(),
        wrong_rows: comparison.differences.iter().take(5).cloned().collect(),
        elapsed_s: 0.0,
    })
}

/// The faults, the longest stall while the group grew, the scale-in.
type Measured = Result<(Vec<Recovery>, Option<f64>, Option<ScaleIn>)>;

/// Kills and restarts each stage, then scales in one of three aggregates.
/// Returns the workers still running, whatever happened, so they are stopped.
fn inflict(
    config: &Config,
    spec: &RecoverySpec,
    mut workers: Vec<Worker>,
) -> (Vec<Worker>, Measured) {
    let measured = (|| -> Measured {
        let t = &config.topics;
        let mut stages = [
            StageLag::new(config, &config.aggregate_group, &[&t.commands]),
            StageLag::new(config, &config.project_group, &[&t.events]),
            StageLag::new(config, &config.sink_group, &t.views()),
        ];
        wait_until_flowing(&mut stages[2])?;
        let down = Duration::from_secs_f64(spec.down_secs);
        let mut faults = Vec::new();
        for (index, stage) in stages.iter_mut().enumerate() {
            faults.push(faults::kill_and_restart(
                config,
                &mut workers,
                index,
                stage,
                down,
                spec.rate,
            )?);
        }
        if spec.no_scale_in {
            return Ok((faults, None, None));
        }
        let grown = if spec.grow_under_load {
            workers.extend(spawn_replicas(config)?);
            // The group rebalances (twice: cooperative) under the load.
            Some(faults::longest_stall(&mut stages[0], SCALE_IN_WATCH).as_secs_f64())
        } else {
            None
        };
        let leaving = workers.pop().context("no aggregate to scale in")?;
        let scaled = faults::scale_in(leaving, 3, &mut stages[0], SCALE_IN_WATCH)?;
        Ok((faults, grown, Some(scaled)))
    })();
    (workers, measured)
}

/// The two extra aggregates of the scale-in, as replicas 1 and 2.
fn spawn_replicas(config: &Config) -> Result<Vec<Worker>> {
    (1..3)
        .map(|replica| {
            let instance = format!("{}-aggregate-{replica}", config.instance_id);
            Worker::spawn_as(config, "aggregate", &instance, &[])
        })
        .collect()
}

/// Waits until the view sink has committed view records: the pipeline is
/// flowing end to end before the first fault (whose baseline then says how
/// far behind each stage usually is).
fn wait_until_flowing(sink: &mut StageLag) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if sink.has_committed()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("the pipeline did not start flowing within 120 s")
}

/// (distinct command ids answered, outcome records), read until `expected`
/// distinct answers or 60 s.
async fn count_outcomes(config: &Config, expected: usize) -> Result<(usize, usize)> {
    let blocking = config.clone();
    tokio::task::spawn_blocking(move || -> Result<(usize, usize)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (answered, records) = outcomes::answered(&blocking)?;
            if answered >= expected || Instant::now() > deadline {
                return Ok((answered, records));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .await?
}

/// The read model compared with the prediction, once it matches or after 180 s.
async fn settled_read_model(
    config: &Config,
    expected: &std::collections::BTreeMap<gavel_domain::AuctionId, gavel_domain::auction::Auction>,
) -> Result<gavel_sinks::views::verify::Comparison> {
    let client = postgres::connect(config).await?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let comparison =
            gavel_sinks::views::verify::compare(&client, &config.postgres_schema, expected)
                .await
                .context("comparing the read model")?;
        if comparison.all_match() || Instant::now() > deadline {
            return Ok(comparison);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn print(config: &Config, spec: &RecoverySpec) -> Result<()> {
    let run = run(config, spec).await?;
    println!("{}", serde_json::to_string_pretty(&run)?);
    Ok(())
}
