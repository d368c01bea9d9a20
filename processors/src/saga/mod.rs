//! `gavel saga <kind>`: the orchestrator of one saga definition. It consumes
//! the kind's triggers and its participants' replies, keeps every saga's state
//! on a compacted changelog, sends step commands to the participants' topics
//! and fires each saga's durable timer (reply deadline or retry backoff), all
//! under Kafka transactions. The rules themselves are the pure state machines
//! of `gavel_domain::saga`.

mod crash;
mod inputs;
pub mod kind;
mod outputs;
mod session;
mod store;
mod wire;

use crate::ProcessorError;
use gavel_domain::saga::SagaDefinition;
use gavel_runtime::observe::Readiness;
use gavel_runtime::{dlq, kafka, Config, Shutdown};
use kind::SagaKind;
use std::time::Duration;

/// The consumer group of the orchestrators of one saga kind (`payment`, `order`).
pub fn consumer_group(config: &Config, kind: &str) -> String {
    format!("{}-{kind}", config.saga_group)
}

/// The topics of one saga kind.
#[derive(Debug, Clone)]
pub struct SagaTopics {
    pub trigger: String,
    pub replies: String,
    pub changelog: String,
    pub milestones: String,
    /// Sagas that ended FAILED and need attention (the saga's DLQ).
    pub failed: String,
}

impl SagaTopics {
    pub fn of<K: SagaKind>(config: &Config, kind: &K) -> Self {
        let name = kind.definition().kind();
        let t = &config.topics;
        Self {
            trigger: kind.trigger_topic(config),
            replies: t.saga(name, "replies"),
            changelog: t.saga(name, "changelog"),
            milestones: t.saga(name, "milestones"),
            failed: t.saga(name, "failed"),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub sessions: u64,
    pub started: u64,
    pub commands_sent: u64,
    pub timers_fired: u64,
    pub completed: u64,
    pub compensated: u64,
    pub failed: u64,
    pub rejected: u64,
    pub ignored: u64,
    pub dead_letters: u64,
    pub restored_records: u64,
}

/// Runs until `shutdown`; a failed session (aborted transaction, fenced
/// producer) is replaced by a fresh one that restores from the changelog and
/// resumes from the committed offsets.
pub async fn run<K: SagaKind>(
    config: Config,
    kind: K,
    shutdown: Shutdown,
    readiness: Readiness,
) -> Result<Stats, ProcessorError> {
    let topics = SagaTopics::of(&config, &kind);
    check_co_partitioned(&config, &topics)?;
    dlq::require_topics(&config, &[&topics.trigger, &topics.replies]).await?;
    // A registry away at start is waited for (unready, naming it), not a reason to exit.
    let wire = readiness
        .wait_for(
            "schema-registry",
            &shutdown,
            |e: &ProcessorError| matches!(e, ProcessorError::Runtime(r) if r.is_transient()),
            || wire::Wire::load(&config, &topics, kind.milestone_records()),
        )
        .await?;
    let Some(wire) = wire else {
        return Ok(Stats::default());
    };
    let worker = tokio::task::spawn_blocking(move || {
        let mut stats = Stats::default();
        while !shutdown.is_triggered() {
            stats.sessions += 1;
            let outcome = session::Session::start(
                &config,
                &kind,
                &topics,
                &wire,
                &mut stats,
                readiness.clone(),
            )
            .and_then(|mut session| session.run(&shutdown));
            match outcome {
                Ok(()) => break,
                // A registry that cannot be asked about a reply's schema
                // may answer the next session.
                Err(error) if error.is_recoverable() || error.is_registry() => {
                    tracing::warn!(%error, "saga session failed: restarting from the changelog");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(error) => return Err(error),
            }
        }
        tracing::info!(
            kind = kind.definition().kind(),
            ?stats,
            "saga orchestrator stopped"
        );
        Ok(stats)
    });
    worker
        .await
        .map_err(|e| ProcessorError::Join(e.to_string()))?
}

/// A saga lives on the partition of its trigger; its replies and its
/// changelog record use the same partition number, so all three topics need
/// the same partition count.
fn check_co_partitioned(config: &Config, topics: &SagaTopics) -> Result<(), ProcessorError> {
    let count = |topic: &str| kafka::partition_count(config, topic);
    let trigger = count(&topics.trigger)?;
    for topic in [&topics.replies, &topics.changelog] {
        let partitions = count(topic)?;
        if partitions != trigger {
            return Err(ProcessorError::Topology(format!(
                "{topic} has {partitions} partitions but {} has {trigger}: saga topics need the same count",
                topics.trigger
            )));
        }
    }
    Ok(())
}

/// Every saga of `kind` on its changelog, counted by status (`gavel saga status`).
pub fn census<K: SagaKind>(
    config: &Config,
    kind: &K,
) -> Result<std::collections::BTreeMap<String, i64>, ProcessorError> {
    let topics = SagaTopics::of(config, kind);
    let partitions: Vec<i32> = (0..kafka::partition_count(config, &topics.changelog)?).collect();
    let mut store = store::SagaStore::<K::Def>::default();
    store.restore(config, &topics.changelog, &partitions)?;
    let (counts, _) = store.census();
    Ok(counts
        .into_iter()
        .map(|(status, n)| (status.to_owned(), n))
        .collect())
}
