//! What the in-flight commands of a run report when they complete: latency
//! from their due time, outcome counts, accepted versions (for read-model
//! visibility), and the progress bar.

use super::report::{Counts, Latencies};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::{mpsc, Notify};

/// An accepted command: its auction now has at least `version`, from `due` on.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub aggregate_id: String,
    pub version: u64,
    pub due: Instant,
    pub decided: Instant,
}

/// How one command ended.
#[derive(Debug, Clone)]
pub enum Completion {
    Accepted { aggregate_id: String, version: u64 },
    Rejected,
    Pending,
    TimedOut,
    Error(String),
}

pub struct Tally {
    inner: Mutex<Inner>,
    done: Notify,
    progress: ProgressBar,
    accepted: Option<mpsc::UnboundedSender<Accepted>>,
}

struct Inner {
    latencies: Latencies,
    counts: Counts,
    completed: u64,
    first_error: Option<String>,
}

impl Tally {
    pub fn new(total: u64, accepted: Option<mpsc::UnboundedSender<Accepted>>) -> Self {
        let progress = ProgressBar::new(total);
        progress.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} {per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            inner: Mutex::new(Inner {
                latencies: Latencies::new(),
                counts: Counts::default(),
                completed: 0,
                first_error: None,
            }),
            done: Notify::new(),
            progress,
            accepted,
        }
    }

    pub fn sent(&self) {
        self.lock().counts.sent += 1;
    }

    /// Records a completion of a command due at `due`. Answers (accepted,
    /// rejected) go into the latency histogram; the rest are only counted.
    pub fn complete(&self, due: Instant, completion: Completion) {
        let now = Instant::now();
        let mut inner = self.lock();
        match completion {
            Completion::Accepted {
                aggregate_id,
                version,
            } => {
                inner.counts.accepted += 1;
                inner.latencies.record(now - due);
                if let Some(sender) = &self.accepted {
                    // The receiver may have stopped listening; then nobody needs it.
                    let _ = sender.send(Accepted {
                        aggregate_id,
                        version,
                        due,
                        decided: now,
                    });
                }
            }
            Completion::Rejected => {
                inner.counts.rejected += 1;
                inner.latencies.record(now - due);
            }
            Completion::Pending => inner.counts.pending += 1,
            Completion::TimedOut => inner.counts.timed_out += 1,
            Completion::Error(error) => {
                inner.counts.errors += 1;
                inner.first_error.get_or_insert(error);
            }
        }
        inner.completed += 1;
        drop(inner);
        self.progress.inc(1);
        self.done.notify_waiters();
    }

    /// Waits until every sent command has completed.
    pub async fn all_completed(&self) {
        loop {
            let notified = self.done.notified();
            {
                let inner = self.lock();
                if inner.completed >= inner.counts.sent {
                    break;
                }
            }
            notified.await;
        }
        self.progress.finish_and_clear();
    }

    pub fn finish(&self) -> (Latencies, Counts, Option<String>) {
        let inner = self.lock();
        (
            inner.latencies.clone(),
            inner.counts,
            inner.first_error.clone(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
