//! `gavel project`: consumes `auction.events`, applies each event to the
//! auction's details with the pure `project` step, and publishes the changed
//! rows of the AuctionDetails, AuctionList and UserBids views to their compacted
//! `view.*` topics, exactly-once (one Kafka transaction per batch with the
//! consumed offsets). Each view record is written to the event's partition, so
//! the projector's state is restored from its own `view.auction_details` topic.
//! Within a transaction each row is published once, in its latest state (see
//! `coalesce`): a hot auction's many bids in one batch make one details record.

mod coalesce;
mod records;
mod session;
mod state;

use crate::ProcessorError;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::dlq;
use gavel_runtime::observe::Readiness;
use gavel_runtime::view_wire::ViewWriters;
use gavel_runtime::{Config, Shutdown};
use std::time::Duration;

/// Counters of one projector run, logged at shutdown.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub view_records: u64,
    /// View records not sent because a later event of the same batch
    /// changed the same row again.
    pub coalesced: u64,
    /// Redelivered events the views already reflect.
    pub unchanged: u64,
    pub undecodable: u64,
    pub transactions: u64,
    pub restored_records: u64,
    pub sessions: u64,
}

/// Runs until `shutdown`; a failed session (aborted transaction, fenced
/// producer, registry unreachable) is replaced by a fresh one that resumes
/// from the committed offsets.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<Stats, ProcessorError> {
    run_with(config, shutdown, Readiness::new("project")).await
}

/// `run`, reporting restores and registry outages to `readiness`.
pub async fn run_with(
    config: Config,
    shutdown: Shutdown,
    readiness: Readiness,
) -> Result<Stats, ProcessorError> {
    check_co_partitioned(&config)?;
    dlq::require_topics(&config, &[&config.topics.events]).await?;
    let codec = AvroCodec::for_topics(&config.registry, &[&config.topics.events]);
    // A registry away at start is waited for (unready, naming it), not a reason to exit.
    let writers = readiness
        .wait_for(
            "schema-registry",
            &shutdown,
            gavel_runtime::RuntimeError::is_transient,
            || ViewWriters::load(&codec, &config.topics),
        )
        .await?;
    let Some(writers) = writers else {
        return Ok(Stats::default());
    };
    let views = [
        config.topics.view_details.as_str(),
        config.topics.view_user_bids.as_str(),
    ];
    let view_codec = AvroCodec::for_topics(&config.registry, &views);
    let runtime = tokio::runtime::Handle::current();
    let worker = tokio::task::spawn_blocking(move || {
        let mut stats = Stats::default();
        while !shutdown.is_triggered() {
            stats.sessions += 1;
            let outcome = session::Session::start(
                &config,
                &codec,
                &writers,
                &view_codec,
                runtime.clone(),
                &mut stats,
                readiness.clone(),
            )
            .and_then(|mut session| session.run(&shutdown));
            match outcome {
                Ok(()) => break,
                Err(error) if error.is_recoverable() || error.is_registry() => {
                    tracing::warn!(%error, "projector session failed: restarting from committed offsets");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(error) => return Err(error),
            }
        }
        tracing::info!(?stats, "projector stopped");
        Ok(stats)
    });
    worker
        .await
        .map_err(|e| ProcessorError::Join(e.to_string()))?
}

/// The view records of an event go to the event's partition number, so every
/// view topic needs at least as many partitions as the event topic.
fn check_co_partitioned(config: &Config) -> Result<(), ProcessorError> {
    let count = |topic: &str| gavel_runtime::kafka::partition_count(config, topic);
    let events = count(&config.topics.events)?;
    for view in config.topics.views() {
        let partitions = count(view)?;
        if partitions < events {
            return Err(ProcessorError::Topology(format!(
                "{view} has {partitions} partitions but {} has {events}: view topics need at least as many",
                config.topics.events
            )));
        }
    }
    Ok(())
}
