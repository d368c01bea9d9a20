//! The whole pipeline as separate worker processes on a private pipeline:
//! end-to-end throughput flat out, then latency at fixed rates, while every
//! worker's memory and CPU time and every stage's progress are sampled.

use super::sampler::{Sample, Sampler, Stage};
use super::visible::{self, Visibility};
use super::workers::{free_address, ready_all, stop_all, Worker};
use crate::bench::{transactional_end, wait_until_committed, PrivatePipeline};
use crate::load_cmd::{run_load, LoadArgs, Via};
use anyhow::Result;
use gavel_producers::load::{LoadReport, Summary};
use gavel_runtime::Config;
use gavel_sinks::views::rebuild::Source;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const ROLES: [&str; 4] = ["aggregate", "project", "sink", "event-store"];
const READY_WITHIN: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(20);
/// After a rate that overloaded a stage, how long the backlog may take to clear
/// before the next rate starts anyway (noted as not settled).
const SETTLE_WITHIN: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct PipelineSpec {
    pub commands: u64,
    pub auctions: usize,
    pub rates: Vec<f64>,
    pub rate_secs: f64,
    pub via: Via,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageDone {
    pub stage: &'static str,
    pub records: i64,
    /// Seconds from the first command sent until the stage had committed all of it.
    pub done_s: f64,
    pub records_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Throughput {
    pub commands: u64,
    pub events: i64,
    pub view_records: i64,
    pub seconds: f64,
    pub commands_per_s: f64,
    pub events_per_s: f64,
    pub stages: Vec<StageDone>,
    pub load: LoadReport,
    /// Every view rebuilt from the throughput run's view topics (offset 0,
    /// shadow tables, swap) while the live sink runs; why not, if it failed.
    pub rebuild: Result<FullRebuild, String>,
    /// Every view rebuilt from the run's events (offset 0, the projection,
    /// shadow tables, swap) while the live sink runs.
    pub rebuild_from_events: Result<FullRebuild, String>,
    /// The same, reading the events from the Postgres event store.
    pub rebuild_from_event_store: Result<FullRebuild, String>,
}

#[derive(Debug, Serialize)]
pub struct FullRebuild {
    pub records: u64,
    pub rows: u64,
    pub seconds: f64,
    pub records_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct RateRun {
    pub target_rate: f64,
    pub via: &'static str,
    pub load: LoadReport,
    pub command_to_outcome: Summary,
    pub command_to_row: Summary,
    pub outcome_to_row: Summary,
    /// Accepted changes whose row had not shown the drain time after the last outcome.
    pub rows_not_seen_in_drain: u64,
    /// Whether every stage had caught up before the next rate began.
    pub settled: bool,
    pub started_s: f64,
    pub ended_s: f64,
}

pub struct PipelineRun {
    pub throughput: Throughput,
    pub rates: Vec<RateRun>,
    pub samples: Vec<Sample>,
    pub roles: Vec<&'static str>,
    pub stage_names: Vec<&'static str>,
    /// Sampler time when the latency runs began.
    pub latency_from_s: f64,
}

pub async fn run(base: &Config, spec: &PipelineSpec) -> Result<PipelineRun> {
    let pipeline = PrivatePipeline::create(base).await?;
    let result = with_pipeline(&pipeline.config, spec).await;
    pipeline.remove().await?;
    result
}

async fn with_pipeline(config: &Config, spec: &PipelineSpec) -> Result<PipelineRun> {
    let api = free_address()?;
    let mut workers = Vec::new();
    let result = match spawn_all(config, spec, &api, &mut workers).await {
        Ok(()) => measure(config, spec, &api, &workers).await,
        Err(error) => Err(error),
    };
    stop_all(workers, STOP_GRACE);
    result
}

async fn spawn_all(
    config: &Config,
    spec: &PipelineSpec,
    api: &str,
    workers: &mut Vec<Worker>,
) -> Result<()> {
    for role in ROLES {
        workers.push(Worker::spawn(config, role, &[])?);
    }
    if spec.via == Via::Http {
        let args = ["--listen".to_owned(), api.to_owned()];
        workers.push(Worker::spawn(config, "command-api", &args)?);
    }
    ready_all(workers, READY_WITHIN).await
}

fn stages(config: &Config) -> Result<Vec<Stage>> {
    let events = [config.topics.events.as_str()];
    let store_group = gavel_sinks::event_store::consumer_group(config);
    Ok(vec![
        Stage::new(
            config,
            "aggregate",
            &config.aggregate_group,
            &[&config.topics.commands],
        )?,
        Stage::new(config, "project", &config.project_group, &events)?,
        Stage::new(config, "sink", &config.sink_group, &config.topics.views())?,
        Stage::new(config, "event-store", &store_group, &events)?,
    ])
}

async fn measure(
    config: &Config,
    spec: &PipelineSpec,
    api: &str,
    workers: &[Worker],
) -> Result<PipelineRun> {
    let stages = stages(config)?;
    let stage_names = stages.iter().map(|s| s.name).collect();
    let sampler = Sampler::start(workers.iter().map(Worker::pid).collect(), stages);
    let throughput = throughput(config, spec).await;
    let latency_from_s = sampler.started.elapsed().as_secs_f64();
    let mut rates = Vec::new();
    let mut failed = throughput.as_ref().err().map(|e| anyhow::anyhow!("{e:#}"));
    if failed.is_none() {
        for rate in &spec.rates {
            match at_rate(config, spec, api, *rate, sampler.started).await {
                Ok(run) => rates.push(run),
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
    }
    let samples = sampler.finish();
    if let Some(error) = failed {
        return Err(error);
    }
    Ok(PipelineRun {
        throughput: throughput?,
        rates,
        samples,
        roles: workers.iter().map(|w| w.role).collect(),
        stage_names,
        latency_from_s,
    })
}

fn load_args(spec: &PipelineSpec, via: Via, api: &str, rate: f64, commands: u64) -> LoadArgs {
    LoadArgs {
        via,
        url: format!("http://{api}"),
        rate,
        commands,
        auctions: spec.auctions.min((commands / 10) as usize).max(1),
        users: 10_000,
        zipf: 1.0,
        seed: rate as u64 + 1,
        tenant: "bench".into(),
        concurrency: if rate > 0.0 { 512 } else { 20_000 },
        timeout_secs: 120,
        no_wait: false,
    }
}

/// Every command flat out straight to Kafka; each stage is done when its
/// consumer group has committed everything upstream of it.
async fn throughput(config: &Config, spec: &PipelineSpec) -> Result<Throughput> {
    let args = load_args(spec, Via::Kafka, "", 0.0, spec.commands);
    let started = Instant::now();
    let load = {
        let (config, args) = (config.clone(), args.clone());
        tokio::spawn(async move { run_load(&config, &args, None).await })
    };
    let commands = spec.commands as i64;
    let topics = &config.topics;
    let (_, aggregate_done) = wait_until_committed(
        config,
        &config.aggregate_group,
        &[&topics.commands],
        commands,
    )
    .await?;
    let events = transactional_end(config, &[&topics.events])?;
    let store_group = gavel_sinks::event_store::consumer_group(config);
    let event_topic = [topics.events.as_str()];
    let (projected, stored) = tokio::join!(
        wait_until_committed(config, &config.project_group, &event_topic, events),
        wait_until_committed(config, &store_group, &event_topic, events),
    );
    let (_, project_done) = projected?;
    let (_, store_done) = stored?;
    let views = topics.views();
    let view_records = transactional_end(config, &views)?;
    let (_, sink_done) =
        wait_until_committed(config, &config.sink_group, &views, view_records).await?;
    let load = load.await??;
    let done = |stage, records: i64, at: Instant| {
        let done_s = (at - started).as_secs_f64();
        StageDone {
            stage,
            records,
            done_s,
            records_per_s: records as f64 / done_s,
        }
    };
    let stages = vec![
        done("aggregate", commands, aggregate_done),
        done("project", events, project_done),
        done("sink", view_records, sink_done),
        done("event-store", events, store_done),
    ];
    let seconds = stages.iter().map(|s| s.done_s).fold(0.0, f64::max);
    println!("[bench] rebuilding every view from the throughput run's events");
    let rebuild_from_events = rebuild_all(config, Source::Events)
        .await
        .map_err(|e| format!("{e:#}"));
    println!("[bench] rebuilding every view from the throughput run's events in the event store");
    let rebuild_from_event_store = rebuild_all(config, Source::EventStore)
        .await
        .map_err(|e| format!("{e:#}"));
    println!("[bench] rebuilding every view from the throughput run's view topics");
    let rebuild = rebuild_all(config, Source::ViewTopic)
        .await
        .map_err(|e| format!("{e:#}"));
    Ok(Throughput {
        commands: spec.commands,
        events,
        view_records,
        seconds,
        commands_per_s: commands as f64 / seconds,
        events_per_s: events as f64 / seconds,
        stages,
        load,
        rebuild,
        rebuild_from_events,
        rebuild_from_event_store,
    })
}

/// Rebuilds every view from `source`, as `gavel rebuild all --from ...` does.
async fn rebuild_all(config: &Config, source: Source) -> Result<FullRebuild> {
    let views = gavel_sinks::views::View::ALL;
    let report = gavel_sinks::views::rebuild::rebuild(config, &views, source).await?;
    let seconds = report.elapsed.as_secs_f64();
    Ok(FullRebuild {
        records: report.records,
        rows: report.rows,
        seconds,
        records_per_s: report.records_per_second(),
    })
}

async fn at_rate(
    config: &Config,
    spec: &PipelineSpec,
    api: &str,
    rate: f64,
    sampler_start: Instant,
) -> Result<RateRun> {
    let commands = (rate * spec.rate_secs).max(1.0) as u64;
    let args = load_args(spec, spec.via, api, rate, commands);
    let (sender, receiver) = mpsc::unbounded_channel();
    let watcher = {
        let config = config.clone();
        tokio::spawn(async move { visible::watch(&config, receiver).await })
    };
    let started_s = sampler_start.elapsed().as_secs_f64();
    println!(
        "[bench] latency at {rate:.0} commands/s for {:.0} s ({commands} commands)",
        spec.rate_secs
    );
    let load = run_load(config, &args, Some(sender)).await;
    let Visibility {
        command_to_row,
        outcome_to_row,
        never_seen,
    } = watcher.await??;
    let load = load?;
    let settled = tokio::time::timeout(SETTLE_WITHIN, settle(config))
        .await
        .is_ok_and(|r| r.is_ok());
    Ok(RateRun {
        target_rate: rate,
        via: load.via,
        command_to_outcome: load.outcome_latency,
        command_to_row: command_to_row.summary(),
        outcome_to_row: outcome_to_row.summary(),
        rows_not_seen_in_drain: never_seen,
        settled,
        started_s,
        ended_s: sampler_start.elapsed().as_secs_f64(),
        load,
    })
}

/// Waits until the projector, view sink and event store have caught up with
/// everything written so far, so one rate's backlog does not slow the next.
async fn settle(config: &Config) -> Result<()> {
    let topics = &config.topics;
    let events = [topics.events.as_str()];
    let event_end = transactional_end(config, &events)?;
    let store_group = gavel_sinks::event_store::consumer_group(config);
    wait_until_committed(config, &config.project_group, &events, event_end).await?;
    wait_until_committed(config, &store_group, &events, event_end).await?;
    let views = topics.views();
    let view_end = transactional_end(config, &views)?;
    wait_until_committed(config, &config.sink_group, &views, view_end).await?;
    Ok(())
}
