//! `gavel`: one binary, one role per subcommand.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gavel_producers::loadgen::LoadSpec;
use gavel_producers::ProducerError;
use gavel_runtime::registry::{load_schema_dir, RegistryClient};
use gavel_runtime::{config, kafka, observe, telemetry, Config, Shutdown};
use std::path::PathBuf;
use std::time::Duration;

mod audit;
mod bench;
mod bench_decode;
mod bench_recovery;
mod bench_run;
mod bench_sink;
mod bench_state;
mod demo;
mod dlq_cmd;
mod load_cmd;
mod saga_cmd;
mod setup_cmd;
mod status;
mod token_cmd;

#[derive(Parser)]
#[command(
    name = "gavel",
    version,
    about = "Event-sourced CQRS pipeline on Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Topic administration.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Schema registry administration.
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Apply the Postgres migrations as the schema's owner, then grant each
    /// role its rights (deploy/access.txt). Workers only check the schema.
    Migrate,
    /// Kafka users and ACLs of every role, from deploy/access.txt.
    Access {
        #[command(subcommand)]
        action: setup_cmd::AccessAction,
    },
    /// Send commands: JSON lines from a file or stdin, Avro to the command topic.
    Produce {
        /// Read from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Tenant for lines that name none.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Run the auction aggregate processor (commands -> events, exactly-once).
    Aggregate,
    /// Run the projector (events -> compacted view.* topics, exactly-once).
    Project,
    /// Run the view sink (view.* topics -> Postgres tables, effectively-once).
    Sink,
    /// Run the event-store sink (events -> append-only, hash-chained `events` table).
    EventStore,
    /// Relay an upstream service's Postgres outbox table (GAVEL_OUTBOX_SCHEMA) to Kafka.
    OutboxRelay,
    /// Event-store audit: verify the hash chains, or an auction's state as of a time.
    Audit {
        #[command(subcommand)]
        action: audit::AuditAction,
    },
    /// Serve the query API (HTTP JSON + SSE live updates) over the read models.
    QueryApi {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Serve the command API (authenticated HTTP commands, answered with their outcome).
    #[command(name = "command-api")]
    HttpCommands {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
    },
    /// Rebuild read models into shadow tables from the events (topic or event
    /// store) or the view topics, up to where the live sink stands, then swap them in.
    Rebuild {
        #[arg(value_enum)]
        view: View,
        /// events: replay auction.events through the projection (a changed
        /// reducer, a damaged view topic); event-store: the same events from
        /// the Postgres event store (a topic whose retention dropped old
        /// events); view-topic: copy the compacted view topic (faster, for a
        /// lost or damaged table).
        #[arg(long, value_enum, default_value = "events")]
        from: RebuildSource,
    },
    /// Send a generated auction workload and wait until the read model matches it.
    DemoLoad {
        #[arg(long, default_value_t = 300)]
        auctions: usize,
        #[arg(long, default_value_t = 6_000)]
        bids: usize,
        /// Seconds until the auctions end (bids must all be sent before).
        #[arg(long, default_value_t = 10)]
        duration_secs: i64,
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Base URL of a running query API (e.g. http://127.0.0.1:8080): the
        /// top auctions are then read through it, with a token of the demo tenant.
        #[arg(long)]
        query_api: Option<String>,
    },
    /// Realistic auction traffic (Zipf-hot auctions, bid wars) at a target rate or
    /// flat out, via HTTP or Kafka; prints command -> outcome latency percentiles.
    Load(load_cmd::LoadArgs),
    /// Dead-letter topics: list, show, replay.
    Dlq {
        #[command(subcommand)]
        action: dlq_cmd::DlqAction,
    },
    /// Consumer lag per group and topic, DLQ sizes, worker readiness.
    Status {
        /// Worker probe address host:port (repeatable; default GAVEL_STATUS_WORKERS).
        #[arg(long = "worker")]
        workers: Vec<String>,
    },
    /// Serve every pipeline group's consumer lag on /metrics (GAVEL_METRICS_ADDR).
    LagExporter,
    /// Run a saga orchestrator (state on a compacted changelog, durable step deadlines).
    Saga {
        #[command(subcommand)]
        action: SagaAction,
    },
    /// Run a saga participant: payment, payout, auction, ownership,
    /// notifications, inventory, shipping, or `all` of them in one process.
    Participant {
        name: String,
        #[command(flatten)]
        chaos: saga_cmd::ChaosArgs,
    },
    /// Send order.created records (starts order sagas; demo and tests).
    Orders {
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Print every setting with its default.
    Config,
    /// Print an HS256 bearer token for the HTTP APIs (GAVEL_JWT_SECRET).
    Token(token_cmd::TokenArgs),
    /// Benchmarks that print figures (JSON + summary); see deploy/local/bench.sh.
    Bench {
        #[command(subcommand)]
        which: BenchWhich,
    },
}

impl Command {
    /// Roles and tools that need Kafka stop at once when the brokers refuse
    /// their credentials or certificate. Not the ones that work without Kafka
    /// (config, audit, schemas) or report on it being unwell (status, lag
    /// exporter).
    fn fails_fast_on_kafka_rejection(&self) -> bool {
        !matches!(
            self,
            Self::Config
                | Self::Token(_)
                | Self::Audit { .. }
                | Self::Schemas { .. }
                | Self::Migrate
                | Self::Status { .. }
                | Self::LagExporter
        )
    }
}

#[derive(Subcommand)]
enum SagaAction {
    /// Orchestrate sagas of one kind until SIGTERM.
    Run { kind: saga_cmd::SagaKindArg },
    /// Count the sagas of one kind on its changelog, by status.
    Status { kind: saga_cmd::SagaKindArg },
}

#[derive(Subcommand)]
enum BenchWhich {
    /// Every benchmark in one run against raw limits of the same run: JSON +
    /// Markdown + PNG report under bench/reports/ (see bench/README.md).
    Run(bench_run::RunArgs),
    /// Events/s into Postgres by one auction_details sink worker, rebuild rate,
    /// and a plain COPY of as many rows in the same run.
    Sink {
        #[arg(long, default_value_t = 200_000)]
        commands: usize,
        #[arg(long, default_value_t = 20_000)]
        auctions: usize,
    },
    /// Payment sagas/s and start -> final latency, orchestrator and participants
    /// as processes (the saga stage of `bench run`, alone).
    Saga(bench_run::saga::SagaSpec),
    /// Recovery under a steady load: kill -9 and restart of aggregate,
    /// projector and view sink, scale-in of one of three aggregates; one JSON report.
    Recovery(bench_recovery::RecoverySpec),
    /// The aggregate's resident memory per live auction, running and after a
    /// restore from its changelog; one JSON report.
    State(bench_state::StateSpec),
    /// What decoding through this build's reader schemas costs per record,
    /// against the writer schema alone; no broker, one JSON report.
    Decode(bench_decode::DecodeSpec),
    /// Commands/s through the EOS aggregate processor and changelog restore rate.
    Aggregate {
        #[arg(long, default_value_t = 200_000)]
        commands: usize,
        #[arg(long, default_value_t = 20_000)]
        auctions: usize,
        /// Raw producer records/s measured by Kafka's ProducerPerformance in the same run.
        #[arg(long)]
        baseline_produce_rps: Option<f64>,
        /// Raw consumer records/s measured by Kafka's ConsumerPerformance in the same run.
        #[arg(long)]
        baseline_consume_rps: Option<f64>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum View {
    AuctionDetails,
    AuctionList,
    UserBids,
    /// Every view, one after the other.
    All,
}

impl View {
    fn views(self) -> Vec<gavel_sinks::views::View> {
        use gavel_sinks::views::View as V;
        match self {
            Self::AuctionDetails => vec![V::AuctionDetails],
            Self::AuctionList => vec![V::AuctionList],
            Self::UserBids => vec![V::UserBids],
            Self::All => V::ALL.to_vec(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RebuildSource {
    Events,
    EventStore,
    ViewTopic,
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create the pipeline's topics (existing ones are left alone).
    Create,
    /// Delete this pipeline's topics (the ones `create` makes, named from the
    /// configuration); without --yes, list them and exit non-zero.
    Delete {
        /// Really delete them.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum SchemasAction {
    /// Register every schema under `dir` (TopicRecordNameStrategy, each subject at its folder's level).
    Register {
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
    /// Ask the registry whether every schema under `dir` could be registered
    /// (against every registered version of its subject), registering
    /// nothing; exits non-zero with the reason when one could not.
    Check {
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
}

/// mimalloc rather than glibc's malloc: allocation and freeing were about a
/// quarter of the aggregate's CPU under load (perf, bench/README.md), and
/// glibc's per-thread arenas hold freed memory that mimalloc returns.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<()> {
    gavel_runtime::memory::share_c_arenas();
    let cli = Cli::parse();
    // Held until main returns: dropping it flushes the spans still queued.
    let _telemetry = telemetry::init_tracing(&service_name());
    let config = Config::load().context("loading configuration")?;
    // Before anything slow, so a SIGTERM during start-up is a graceful stop.
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    if cli.command.fails_fast_on_kafka_rejection() {
        let (preflight, stop) = (config.clone(), shutdown.clone());
        tokio::task::spawn_blocking(move || {
            gavel_runtime::preflight::check_kafka(&preflight, &stop)
        })
        .await??;
    }
    match cli.command {
        Command::Topics {
            action: TopicsAction::Delete { yes },
        } => delete_topics(&config, yes).await?,
        Command::Topics {
            action: TopicsAction::Create,
        } => {
            let created = kafka::create_topics(&config, &kafka::auction_topics(&config)).await?;
            println!(
                "topics created: {}",
                if created.is_empty() {
                    "none (all exist)".into()
                } else {
                    created.join(", ")
                }
            );
        }
        Command::Schemas {
            action: SchemasAction::Register { dir },
        } => register_schemas(&config, &dir).await?,
        Command::Schemas {
            action: SchemasAction::Check { dir },
        } => check_schemas(&config, &dir).await?,
        Command::Migrate => setup_cmd::migrate(&config).await?,
        Command::Access { action } => {
            let config = config.clone();
            tokio::task::spawn_blocking(move || setup_cmd::access(&config, action)).await??
        }
        Command::Produce { file, tenant } => produce(&config, file, &tenant, &shutdown).await?,
        Command::Aggregate => {
            let mut obs = observe::serve(&config, "aggregate").await?;
            obs.watch_lag(&config.aggregate_group, &[&config.topics.commands]);
            let readiness = obs.readiness.clone();
            gavel_processors::aggregate::run_with(config, shutdown, readiness).await?;
        }
        Command::Project => {
            let mut obs = observe::serve(&config, "project").await?;
            obs.watch_lag(&config.project_group, &[&config.topics.events]);
            let readiness = obs.readiness.clone();
            gavel_processors::project::run_with(config, shutdown, readiness).await?;
        }
        Command::Sink => {
            let mut obs = observe::serve(&config, "sink").await?;
            obs.watch_lag(&config.sink_group, &config.topics.views());
            let readiness = obs.readiness.clone();
            gavel_sinks::views::run_with(config, shutdown, readiness).await?;
        }
        Command::EventStore => {
            let mut obs = observe::serve(&config, "event-store").await?;
            let group = gavel_sinks::event_store::consumer_group(&config);
            obs.watch_lag(&group, &[&config.topics.events]);
            let readiness = obs.readiness.clone();
            gavel_sinks::event_store::run_with(config, shutdown, readiness).await?;
        }
        Command::OutboxRelay => {
            let obs = observe::serve(&config, "outbox-relay").await?;
            let readiness = obs.readiness.clone();
            gavel_producers::outbox::run_with(config, shutdown, readiness).await?;
        }
        Command::Audit { action } => audit::run(&config, action).await?,
        Command::Saga {
            action: SagaAction::Run { kind },
        } => saga_cmd::orchestrate(config, kind, shutdown).await?,
        Command::Saga {
            action: SagaAction::Status { kind },
        } => saga_cmd::status(config, kind).await?,
        Command::Participant { name, chaos } => {
            saga_cmd::participate(config, &name, chaos, shutdown).await?
        }
        Command::Orders { count, seed } => saga_cmd::orders(&config, count, seed).await?,
        Command::QueryApi { listen } => {
            // Metrics on their own port; the API keeps its /healthz and /readyz.
            let obs = observe::serve(&config, "query-api").await?;
            obs.readiness.set_started();
            gavel_sinks::query_api::run(config, listen, shutdown).await?;
        }
        Command::HttpCommands { listen } => {
            // Metrics and probes on their own port, like the query API.
            let obs = observe::serve(&config, "command-api").await?;
            let schemas = obs.readiness.wait_for(
                "schema-registry",
                &shutdown,
                |e: &ProducerError| matches!(e, ProducerError::Runtime(r) if r.is_transient()),
                || gavel_producers::command_writers(&config),
            );
            if schemas.await?.is_none() {
                return Ok(());
            }
            obs.readiness.set_started();
            gavel_producers::command_api::run(config, listen, shutdown).await?;
        }
        Command::Rebuild { view, from } => rebuild(&config, &view.views(), from).await?,
        Command::DemoLoad {
            auctions,
            bids,
            duration_secs,
            timeout_secs,
            seed,
            query_api,
        } => {
            let run_id = format!("demo{}", &uuid::Uuid::now_v7().simple().to_string()[8..16]);
            let spec = LoadSpec {
                run_id,
                tenant: "demo".into(),
                auctions,
                bids,
                duration_ms: duration_secs * 1000,
                seed,
            };
            demo::demo_load(&config, &spec, Duration::from_secs(timeout_secs)).await?;
            if let Some(base) = query_api {
                demo::top_auctions(&config, &base, &spec.tenant).await?;
            }
        }
        Command::Bench {
            which:
                BenchWhich::Aggregate {
                    commands,
                    auctions,
                    baseline_produce_rps,
                    baseline_consume_rps,
                },
        } => {
            let spec = bench::AggregateBench {
                commands,
                auctions,
                baseline_produce_rps,
                baseline_consume_rps,
            };
            bench::aggregate(&config, &spec).await?;
        }
        Command::Bench {
            which: BenchWhich::Sink { commands, auctions },
        } => {
            bench_sink::sink(&config, commands, auctions).await?;
        }
        Command::Bench {
            which: BenchWhich::Saga(spec),
        } => {
            let run = bench_run::saga::run(&config, &spec).await?;
            println!("{}", serde_json::to_string_pretty(&run)?);
        }
        Command::Bench {
            which: BenchWhich::Run(args),
        } => bench_run::run(&config, &args).await?,
        Command::Bench {
            which: BenchWhich::Recovery(spec),
        } => bench_recovery::print(&config, &spec).await?,
        Command::Bench {
            which: BenchWhich::State(spec),
        } => bench_state::print(&config, &spec).await?,
        Command::Bench {
            which: BenchWhich::Decode(spec),
        } => bench_decode::print(&spec)?,
        Command::Load(args) => load_cmd::load(&config, &args).await?,
        Command::Dlq { action } => dlq_cmd::run(&config, action).await?,
        Command::Status { workers } => status::status(&config, workers).await?,
        Command::LagExporter => status::lag_exporter(&config, &shutdown).await?,
        Command::Token(args) => println!("{}", token_cmd::mint(&config, &args)?),
        Command::Config => {
            for (key, default, description) in config::SETTINGS {
                println!("{key:<28} {default:<45} {description}");
            }
        }
    }
    Ok(())
}

/// `gavel topics delete`: this pipeline's existing topics, deleted only with `--yes`.
async fn delete_topics(config: &Config, yes: bool) -> Result<()> {
    let blocking = config.clone();
    let existing =
        tokio::task::spawn_blocking(move || kafka::existing_auction_topics(&blocking)).await??;
    if existing.is_empty() {
        println!("no topics of this pipeline exist");
        return Ok(());
    }
    if !yes {
        println!("would delete {} topics:", existing.len());
        for topic in &existing {
            println!("  {topic}");
        }
        anyhow::bail!("nothing deleted: run `gavel topics delete --yes` to delete them");
    }
    let names: Vec<&str> = existing.iter().map(String::as_str).collect();
    kafka::delete_topics(config, &names).await?;
    println!("deleted {} topics: {}", names.len(), names.join(", "));
    Ok(())
}

async fn register_schemas(config: &Config, dir: &std::path::Path) -> Result<()> {
    let files = load_schema_dir(dir, &config.topics)?;
    let registry = RegistryClient::new(&config.registry);
    registry.set_global_compatibility().await?;
    for file in &files {
        let registered = registry
            .register(file)
            .await
            .with_context(|| format!("registering {}", file.path.display()))?;
        println!("registered {} (id {})", registered.subject, registered.id);
    }
    Ok(())
}

async fn check_schemas(config: &Config, dir: &std::path::Path) -> Result<()> {
    use gavel_runtime::registry::Verdict;
    let files = load_schema_dir(dir, &config.topics)?;
    let registry = RegistryClient::new(&config.registry);
    let mut refused = 0;
    for file in &files {
        let verdict = registry
            .check(file)
            .await
            .with_context(|| format!("checking {}", file.path.display()))?;
        let subject = file.subject();
        match verdict {
            Verdict::NewSubject => println!("new        {subject} (no version registered yet)"),
            Verdict::Compatible { versions: 1 } => {
                println!("compatible {subject} (with its registered version)")
            }
            Verdict::Compatible { versions } => {
                println!("compatible {subject} (with all {versions} registered versions)")
            }
            Verdict::Incompatible { reason } => {
                refused += 1;
                println!("REFUSED    {subject} ({}): {reason}", file.path.display());
            }
        }
    }
    if refused > 0 {
        anyhow::bail!(
            "{refused} of {} schemas would be refused by the registry; nothing was registered",
            files.len()
        );
    }
    Ok(())
}

async fn produce(
    config: &Config,
    file: Option<PathBuf>,
    tenant: &str,
    shutdown: &Shutdown,
) -> Result<()> {
    use gavel_producers::produce::run_with_progress;
    use gavel_producers::progress::Progress;
    let report = match file {
        Some(path) => {
            let input = tokio::fs::File::open(&path)
                .await
                .with_context(|| format!("opening {}", path.display()))?;
            let size = input.metadata().await.ok().map(|m| m.len());
            let input = tokio::io::BufReader::new(input);
            run_with_progress(config, input, tenant, shutdown, Progress::for_stderr(size)).await?
        }
        None => {
            let input = tokio::io::BufReader::new(tokio::io::stdin());
            run_with_progress(config, input, tenant, shutdown, Progress::for_stderr(None)).await?
        }
    };
    println!(
        "{} lines, {} commands sent, {} lines rejected",
        report.lines,
        report.sent,
        report.rejected.len()
    );
    Ok(())
}

/// `gavel-<subcommand>`: the service name exported spans carry.
fn service_name() -> String {
    let role = std::env::args().nth(1).unwrap_or_default();
    format!("gavel-{role}")
}

async fn rebuild(
    config: &Config,
    views: &[gavel_sinks::views::View],
    from: RebuildSource,
) -> Result<()> {
    use gavel_sinks::views::rebuild::{self, Source};
    let (source, what, unit) = match from {
        RebuildSource::Events => (
            Source::Events,
            format!("offset 0 of {}", config.topics.events),
            "events",
        ),
        RebuildSource::EventStore => (
            Source::EventStore,
            format!("the event store ({}.events)", config.postgres_schema),
            "events",
        ),
        RebuildSource::ViewTopic => (
            Source::ViewTopic,
            "offset 0 of their view topics".into(),
            "view records",
        ),
    };
    let report = rebuild::rebuild(config, views, source).await?;
    let names: Vec<&str> = views.iter().map(|v| v.name()).collect();
    println!(
        "{} rebuilt from {what} up to the live sink's position and swapped in: {} {unit}, {} row writes, {} skipped, {:.1} s, {:.0} {unit}/s",
        names.join(", "),
        report.records,
        report.rows,
        report.skipped,
        report.elapsed.as_secs_f64(),
        report.records_per_second()
    );
    Ok(())
}
