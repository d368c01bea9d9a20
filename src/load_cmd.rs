//! `gavel load`: realistic auction traffic through the HTTP command API or
//! straight to Kafka, at a target rate (open loop) or flat out; prints the
//! command -> outcome latency summary and one JSON line.

use anyhow::Result;
use clap::{Args, ValueEnum};
use gavel_producers::load::traffic::TrafficSpec;
use gavel_producers::load::{self, http::HttpTarget, LoadReport, RunSpec};
use gavel_runtime::Config;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// The command API: one authenticated request per command.
    Http,
    /// The command topic; outcomes read back from the outcome topic.
    Kafka,
}

#[derive(Args, Clone)]
pub struct LoadArgs {
    #[arg(long, value_enum, default_value = "kafka")]
    pub via: Via,
    /// Command API base URL (with --via http).
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    pub url: String,
    /// Commands per second, scheduled from the start (0 = flat out).
    #[arg(long, default_value_t = 1_000.0)]
    pub rate: f64,
    /// Commands in all (the first 2 x auctions create and start the auctions).
    #[arg(long, default_value_t = 20_000)]
    pub commands: u64,
    #[arg(long, default_value_t = 1_000)]
    pub auctions: usize,
    /// Distinct bidders.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Zipf exponent of auction popularity.
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "load")]
    pub tenant: String,
    /// Flat out: commands in flight at most; HTTP: connections.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// How long one command may wait for its outcome.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Only fill the command topic (--via kafka): send every command, wait for
    /// Kafka's acknowledgements, print what was sent; read no outcome (none
    /// come while no aggregate runs).
    #[arg(long)]
    pub no_wait: bool,
}

/// Auctions end this long after the planned run, so the last bids still land.
const END_MARGIN_MS: i64 = 10_000;
/// Flat out, the run length is unknown; auction end times assume this rate.
const FLAT_OUT_GUESS: f64 = 10_000.0;

impl LoadArgs {
    pub fn spec(&self) -> RunSpec {
        let run_id = format!("load{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        RunSpec {
            commands: self.commands,
            rate: self.rate,
            tenant: self.tenant.clone(),
            traffic: TrafficSpec {
                run_id,
                auctions: self.auctions,
                users: self.users,
                zipf_s: self.zipf,
                seed: self.seed,
                planned_ms: load::planned_ms(self.commands, self.rate, FLAT_OUT_GUESS),
                margin_ms: END_MARGIN_MS,
            },
            outcome_timeout: Duration::from_secs(self.timeout_secs),
            concurrency: self.concurrency,
        }
    }
}

/// Runs the load with `accepted` told of every accepted command.
pub async fn run_load(
    config: &Config,
    args: &LoadArgs,
    accepted: load::AcceptedSink,
) -> Result<LoadReport> {
    let spec = args.spec();
    anyhow::ensure!(
        spec.commands > 2 * spec.traffic.auctions as u64,
        "--commands must exceed 2 x --auctions (create + start each auction first)"
    );
    Ok(match args.via {
        Via::Kafka => load::kafka::run(config, &spec, accepted).await?,
        Via::Http => {
            let target = HttpTarget {
                url: args.url.clone(),
                jwt_secret: config.jwt_secret.expose().to_owned(),
            };
            load::http::run(&target, &spec, accepted).await?
        }
    })
}

pub async fn load(config: &Config, args: &LoadArgs) -> Result<()> {
    if args.no_wait {
        anyhow::ensure!(
            args.via == Via::Kafka,
            "--no-wait fills the command topic: it needs --via kafka (the command API answers every request itself)"
        );
        let report = load::fill::run(config, &args.spec()).await?;
        report.print();
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let report = run_load(config, args, None).await?;
    report.print();
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
