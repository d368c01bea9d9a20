//! `gavel aggregate`: consume `auction.commands`, decide with the pure auction
//! rules, and write events, outcomes, state changelog and offsets in one Kafka
//! transaction per batch.

mod emit;
mod handler;
mod poison;
mod punctuator;
mod recent;
mod record;
mod routing;
mod session;
mod store;
mod stored;
mod writers;

pub use handler::{handle, Decision};
pub use store::read_changelog;
pub use stored::StoredAggregate;

use crate::ProcessorError;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::observe::Readiness;
use gavel_runtime::{dlq, Config, Shutdown};
use std::time::Duration;

/// Counters of one processor run, logged at shutdown.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub commands: u64,
    pub events: u64,
    pub rejections: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub transactions: u64,
    pub restored_records: u64,
    pub timers_fired: u64,
    /// Closed auctions (and empty legacy records) forgotten after retention.
    pub retired: u64,
    pub sessions: u64,
}

/// [`run_with`] without probes (tests, benchmarks, the demo).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<Stats, ProcessorError> {
    run_with(config, shutdown, Readiness::new("aggregate")).await
}

/// Runs until `shutdown`, reporting restores and registry outages to
/// `readiness`; a failed session (aborted transaction, fenced producer) is
/// replaced by a fresh one that resumes from committed offsets.
pub async fn run_with(
    config: Config,
    shutdown: Shutdown,
    readiness: Readiness,
) -> Result<Stats, ProcessorError> {
    dlq::require_topics(&config, &[&config.topics.commands]).await?;
    let codec = AvroCodec::for_topics(&config.registry, &[&config.topics.commands]);
    // A registry away at start is waited for (unready, naming it), not a reason to exit.
    let writers = readiness
        .wait_for(
            "schema-registry",
            &shutdown,
            gavel_runtime::RuntimeError::is_transient,
            || writers::Writers::load(&codec, &config),
        )
        .await?;
    let Some(writers) = writers else {
        return Ok(Stats::default());
    };
    let runtime = tokio::runtime::Handle::current();
    let worker = tokio::task::spawn_blocking(move || {
        let mut stats = Stats::default();
        while !shutdown.is_triggered() {
            stats.sessions += 1;
            let outcome = session::Session::start(
                &config,
                &codec,
                &writers,
                runtime.clone(),
                &mut stats,
                readiness.clone(),
            )
            .and_then(|mut session| session.run(&shutdown));
            match outcome {
                Ok(()) => break,
                Err(error) if error.is_recoverable() => {
                    tracing::warn!(%error, "session failed: restarting from committed offsets");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(error) => return Err(error),
            }
        }
        tracing::info!(?stats, "aggregate processor stopped");
        Ok(stats)
    });
    worker
        .await
        .map_err(|e| ProcessorError::Join(e.to_string()))?
}
