//! What a worker tells its probes: liveness (the loop still turns) and
//! readiness (partitions restored, dependencies reachable), with the reasons.

use super::metrics;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A loop that has not beaten for this long is reported dead: longer than any
/// bounded retry pause (10 s) plus a slow transaction commit (30 s).
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared, cheap to clone; every clone updates the same state.
#[derive(Clone)]
pub struct Readiness {
    worker: String,
    state: Arc<Mutex<State>>,
}

struct State {
    started: bool,
    restoring: bool,
    /// Dependency name -> why it is unreachable; absent when reachable.
    unreachable: BTreeMap<String, String>,
    last_beat: Option<Instant>,
}

/// The body of `/ready` and `/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    pub worker: String,
    pub ready: bool,
    pub live: bool,
    /// Why the worker is not ready (empty when ready).
    pub reasons: Vec<String>,
}

impl Readiness {
    /// Not ready until the worker says [`Readiness::set_started`].
    pub fn new(worker: &str) -> Self {
        let readiness = Self {
            worker: worker.to_owned(),
            state: Arc::new(Mutex::new(State {
                started: false,
                restoring: false,
                unreachable: BTreeMap::new(),
                last_beat: None,
            })),
        };
        readiness.publish();
        readiness
    }

    /// The worker's loop is running (consumer subscribed, producers initialised).
    pub fn set_started(&self) {
        self.update(|s| s.started = true);
    }

    /// True while assigned partitions are being restored: not ready meanwhile.
    pub fn set_restoring(&self, restoring: bool) {
        self.update(|s| s.restoring = restoring);
    }

    /// `Err(reason)` marks dependency `name` unreachable, `Ok(())` reachable again.
    pub fn set_dependency(&self, name: &str, status: Result<(), String>) {
        self.update(|s| match status {
            Ok(()) => {
                s.unreachable.remove(name);
            }
            Err(reason) => {
                s.unreachable.insert(name.to_owned(), reason);
            }
        });
    }

    /// Called once per loop turn: `/health` fails when beats stop.
    pub fn beat(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.last_beat = Some(Instant::now());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::worker()
            .heartbeat_seconds
            .with_label_values(&[&self.worker])
            .set(now);
    }

    /// Awaits `work`, beating meanwhile: a long wait on a dependency (a
    /// reconnect loop) is the loop still turning, not a hung worker.
    pub async fn beating<F: std::future::Future>(&self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            self.beat();
            tokio::select! {
                output = &mut work => return output,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// Runs `attempt` until it succeeds, again and again with a backoff (0.5 s
    /// doubling to 10 s) while it fails only because `dependency` is away
    /// (`is_transient`), which stays marked unreachable meanwhile, with the
    /// failure as the reason. A start-up step such as resolving the writer
    /// schemas waits this way instead of exiting. Any other failure returns
    /// at once; `None` when shutdown comes first.
    pub async fn wait_for<T, E, Fut>(
        &self,
        dependency: &str,
        shutdown: &crate::Shutdown,
        is_transient: impl Fn(&E) -> bool,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<Option<T>, E>
    where
        E: std::fmt::Display,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut backoff = Duration::from_millis(500);
        loop {
            self.beat();
            match attempt().await {
                Ok(value) => {
                    self.set_dependency(dependency, Ok(()));
                    return Ok(Some(value));
                }
                Err(error) if is_transient(&error) => {
                    tracing::warn!(%error, dependency, retry_in_ms = backoff.as_millis() as u64,
                        "dependency unavailable at start: waiting for it");
                    self.set_dependency(dependency, Err(error.to_string()));
                }
                Err(error) => return Err(error),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.triggered() => return Ok(None),
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    pub fn report(&self) -> Report {
        let Ok(state) = self.state.lock() else {
            return Report {
                worker: self.worker.clone(),
                ready: false,
                live: false,
                reasons: vec!["readiness state poisoned by a panicked thread".into()],
            };
        };
        let mut reasons = Vec::new();
        if !state.started {
            reasons.push("starting".to_owned());
        }
        if state.restoring {
            reasons.push("restoring assigned partitions".to_owned());
        }
        for (name, why) in &state.unreachable {
            reasons.push(format!("{name} unreachable: {why}"));
        }
        // Before the first beat the worker is starting, which is alive.
        let live = state
            .last_beat
            .is_none_or(|beat| beat.elapsed() < LIVENESS_TIMEOUT);
        Report {
            worker: self.worker.clone(),
            ready: reasons.is_empty(),
            live,
            reasons,
        }
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.state.lock() {
            change(&mut state);
        }
        self.publish();
    }

    fn publish(&self) {
        let ready = i64::from(self.report().ready);
        metrics::worker()
            .ready
            .with_label_values(&[&self.worker])
            .set(ready);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_started_restored_and_dependencies_reachable() {
        let readiness = Readiness::new("unit");
        assert_eq!(readiness.report().reasons, vec!["starting".to_owned()]);
        readiness.set_started();
        assert!(readiness.report().ready);
        readiness.set_restoring(true);
        readiness.set_dependency("schema-registry", Err("connection refused".into()));
        let report = readiness.report();
        assert!(!report.ready && report.live);
        assert_eq!(report.reasons.len(), 2, "{report:?}");
        readiness.set_restoring(false);
        readiness.set_dependency("schema-registry", Ok(()));
        assert!(readiness.report().ready);
    }
}
