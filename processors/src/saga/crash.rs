//! Fault injection for the kill-at-every-step-boundary tests: with
//! `GAVEL_SAGA_CRASH_AT=<point>:<n>` the orchestrator aborts the process (no
//! unwinding, no cleanup, like kill -9) the n-th time it reaches that point.
//! Unset in every deployment; the points name the boundaries of one batch.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// A saga's new state was written to the (open) transaction.
    AfterStateWrite,
    /// A step command was sent into the transaction.
    AfterCommandSend,
    /// Everything of the batch is sent; the commit is next.
    BeforeCommit,
    /// The transaction committed; the in-memory state is not updated yet.
    AfterCommit,
}

impl CrashPoint {
    fn name(self) -> &'static str {
        match self {
            Self::AfterStateWrite => "after-state-write",
            Self::AfterCommandSend => "after-command-send",
            Self::BeforeCommit => "before-commit",
            Self::AfterCommit => "after-commit",
        }
    }
}

pub struct Crash {
    armed: Option<(String, u64)>,
    hits: AtomicU64,
}

impl Crash {
    pub fn from_env() -> Self {
        let armed = std::env::var("GAVEL_SAGA_CRASH_AT").ok().and_then(|value| {
            let (point, n) = value.split_once(':')?;
            Some((point.to_owned(), n.parse().ok()?))
        });
        if let Some((point, n)) = &armed {
            tracing::warn!(point, n, "fault injection armed: the process aborts there");
        }
        Self {
            armed,
            hits: AtomicU64::new(0),
        }
    }

    pub fn at(&self, point: CrashPoint) {
        let Some((armed, n)) = &self.armed else {
            return;
        };
        if armed == point.name() && self.hits.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            eprintln!("fault injection: aborting at {}", point.name());
            std::process::abort();
        }
    }
}
