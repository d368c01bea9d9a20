//! `gavel bench run`: every benchmark in one run, each figure beside a raw
//! limit measured in the same run (Kafka's perf tools, passed in by
//! deploy/local/bench.sh, and an rdkafka loop measured here), written as a
//! JSON report, a Markdown summary and a PNG plot under bench/reports/.

mod glyphs;
mod pipeline;
mod plot;
mod raw;
mod report;
mod resources;
pub mod saga;
mod sampler;
mod visible;
pub mod workers;

use crate::load_cmd::Via;
use anyhow::{Context, Result};
use clap::Args;
use gavel_runtime::Config;
use pipeline::{PipelineRun, PipelineSpec};
use report::{KafkaPerf, Part, Report};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Commands sent flat out through the whole pipeline (smaller for a quick run).
    #[arg(long, default_value_t = 1_000_000)]
    pub commands: u64,
    /// Auctions of the throughput run (the fixed-rate runs use at most as many).
    #[arg(long, default_value_t = 2_000)]
    pub auctions: usize,
    /// Fixed rates for the latency runs, commands/s (the latency targets
    /// are set at 1,000/s and up to 4,000/s).
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
    pub rates: Vec<f64>,
    /// Seconds each fixed rate runs.
    #[arg(long, default_value_t = 20.0)]
    pub rate_secs: f64,
    /// How the fixed-rate runs send: through the command API (what a client
    /// sees), or straight to Kafka.
    #[arg(long, value_enum, default_value = "http")]
    pub via: Via,
    /// Commands of the in-process aggregate / read-side benchmarks (restore, rebuild).
    #[arg(long, default_value_t = 50_000)]
    pub stage_commands: usize,
    #[command(flatten)]
    pub saga: saga::SagaSpec,
    /// Records of the raw rdkafka produce/consume loop.
    #[arg(long, default_value_t = 200_000)]
    pub raw_records: u64,
    /// Kafka ProducerPerformance records/s measured in the same run (bench.sh).
    #[arg(long)]
    pub baseline_produce_rps: Option<f64>,
    /// Kafka ConsumerPerformance records/s measured in the same run (bench.sh).
    #[arg(long)]
    pub baseline_consume_rps: Option<f64>,
    /// Record size the Kafka perf tools used.
    #[arg(long, default_value_t = raw::RECORD_BYTES)]
    pub baseline_record_bytes: usize,
    /// Where the report files go.
    #[arg(long, default_value = "bench/reports")]
    pub out: PathBuf,
}

pub async fn run(config: &Config, args: &RunArgs) -> Result<()> {
    let started = Instant::now();
    let load_before = load_average();
    let date = command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default();
    let kafka_perf = match (args.baseline_produce_rps, args.baseline_consume_rps) {
        (Some(p), Some(c)) => Part::Measured(KafkaPerf {
            produce_records_per_s: p,
            consume_records_per_s: c,
            record_bytes: args.baseline_record_bytes,
        }),
        _ => Part::missing(
            "not given (deploy/local/bench.sh runs Kafka's perf tools and passes them)",
        ),
    };
    println!(
        "[bench] raw rdkafka produce/consume loop, {} records",
        args.raw_records
    );
    let rdkafka_raw = part(raw::measure(config, args.raw_records).await);
    println!(
        "[bench] end to end: {} commands flat out, then fixed rates {:?}",
        args.commands, args.rates
    );
    let spec = PipelineSpec {
        commands: args.commands,
        auctions: args.auctions,
        rates: args.rates.clone(),
        rate_secs: args.rate_secs,
        via: args.via,
    };
    let pipeline = pipeline::run(config, &spec).await;
    println!(
        "[bench] aggregate processor and restore, {} commands",
        args.stage_commands
    );
    let aggregate = part(
        crate::bench::aggregate(
            config,
            &crate::bench::AggregateBench {
                commands: args.stage_commands,
                auctions: args.auctions,
                baseline_produce_rps: args.baseline_produce_rps,
                baseline_consume_rps: args.baseline_consume_rps,
            },
        )
        .await,
    );
    println!("[bench] read side: projector, view sink, rebuild, COPY baseline");
    let read_side = part(crate::bench_sink::sink(config, args.stage_commands, args.auctions).await);
    println!("[bench] saga stage: payment saga orchestrator and participants as processes");
    let saga = part(saga::run(config, &args.saga).await);
    println!("[bench] Avro decoding through the reader schemas");
    let decode = part(crate::bench_decode::measure(
        &crate::bench_decode::DecodeSpec { records: 300_000 },
    ));
    let (end_to_end, latency, resources, samples) = split_pipeline(pipeline);
    let mut report = Report {
        gavel_commit: git_commit(),
        date,
        machine: machine(load_before),
        settings: json!({
            "commands": args.commands, "auctions": args.auctions, "rates": args.rates,
            "rate_secs": args.rate_secs, "via": if args.via == Via::Http { "http" } else { "kafka" },
            "stage_commands": args.stage_commands, "raw_records": args.raw_records,
            "sagas": args.saga.sagas, "saga_rate": args.saga.saga_rate,
            "saga_rate_secs": args.saga.saga_rate_secs,
            "partitions": config.partitions,
        }),
        wall_s: 0.0,
        kafka_perf,
        rdkafka_raw,
        end_to_end,
        latency,
        resources,
        aggregate,
        read_side,
        saga,
        decode,
        ratios: Value::Null,
    };
    report.compute_ratios();
    report.wall_s = started.elapsed().as_secs_f64();
    write(&report, &samples, &args.out)
}

type Split = (
    Part<pipeline::Throughput>,
    Part<Vec<pipeline::RateRun>>,
    Part<Vec<resources::WorkerUse>>,
    Option<(Vec<sampler::Sample>, Vec<&'static str>)>,
);

fn split_pipeline(run: Result<PipelineRun>) -> Split {
    match run {
        Ok(run) => {
            let workers = run
                .roles
                .iter()
                .enumerate()
                .map(|(i, role)| resources::worker_use(&run.samples, i, role, run.latency_from_s))
                .collect();
            (
                Part::Measured(run.throughput),
                Part::Measured(run.rates),
                Part::Measured(workers),
                Some((run.samples, run.stage_names)),
            )
        }
        Err(error) => (
            Part::failed(&error),
            Part::failed(&error),
            Part::failed(&error),
            None,
        ),
    }
}

fn part<T>(result: Result<T>) -> Part<T> {
    match result {
        Ok(value) => Part::Measured(value),
        Err(error) => {
            eprintln!("[bench] failed: {error:#}");
            Part::failed(&error)
        }
    }
}

fn write(
    report: &Report,
    samples: &Option<(Vec<sampler::Sample>, Vec<&'static str>)>,
    out: &Path,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stem = report.date.replace([':', '-'], "");
    let json_path = out.join(format!("{stem}.json"));
    let png_path = out.join(format!("{stem}.png"));
    let md_path = out.join(format!("{stem}.md"));
    let legend = match (samples, report.latency.get()) {
        (Some((samples, stages)), Some(runs)) => plot::draw(&png_path, samples, stages, runs)
            .unwrap_or_else(|e| format!("no plot: {e:#}")),
        _ => "no plot: the pipeline run failed".into(),
    };
    std::fs::write(&json_path, serde_json::to_string_pretty(report)?)?;
    let markdown = report.markdown(&legend);
    std::fs::write(&md_path, &markdown)?;
    println!("\n{markdown}");
    println!("report: {}", json_path.display());
    println!("summary: {}", md_path.display());
    Ok(())
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn git_commit() -> String {
    let commit = command_line("git", &["rev-parse", "--short=12", "HEAD"])
        .unwrap_or_else(|| "unknown".into());
    let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    }
}

/// /proc/loadavg's 1-minute figure: how busy the shared machine was.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// nproc, RAM, kernel and CPU model, from the process's view of the machine,
/// and its load average at the start and the end of the run.
fn machine(load_before: Option<f64>) -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let meminfo = read("/proc/meminfo");
    let ram_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, usize::from),
        "ram_gib": (ram_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "cpu_model": model,
        "loadavg_1m_start": load_before,
        "loadavg_1m_end": load_average(),
    })
}
