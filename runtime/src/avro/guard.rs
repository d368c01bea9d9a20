//! Which writer schemas a consumer accepts. A record names its writer schema
//! by registry id, and any client that reaches the registry can register one:
//! decoding with whatever schema an id names lets a 12-byte record of
//! `array<array<null>>` allocate gigabytes. So a consumer decodes only with
//! schemas registered under its own topic's subjects (`<topic>-<record>`,
//! TopicRecordNameStrategy); any other id is refused as poison.
//!
//! The allowed ids are read from the registry at the first unknown id and
//! again when another unknown id arrives, at most once per `REFRESH_EVERY`
//! (a schema registered for a rolling upgrade is picked up within that), and
//! refused ids are remembered in a bounded cache: a stream of forged ids costs
//! a few registry calls a second at most, never one per record.

use crate::registry::RegistryClient;
use crate::registry_endpoint::RegistryEndpoint;
use crate::Result;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one allow-list refresh in this long.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Refused ids remembered at most (oldest forgotten first).
pub const REFUSED_CAPACITY: usize = 4096;
/// How long a refusal stands before the id may be looked up again.
pub const REFUSED_FOR: Duration = Duration::from_secs(60);

pub struct SchemaGuard {
    registry: RegistryClient,
    prefixes: Vec<String>,
    state: Mutex<GuardState>,
}

#[derive(Default)]
struct GuardState {
    allowed: HashSet<u32>,
    refreshed_at: Option<Instant>,
    refused: RefusedIds,
}

/// A bounded FIFO of refused ids with their time.
#[derive(Default)]
struct RefusedIds {
    at: HashMap<u32, Instant>,
    order: VecDeque<u32>,
}

impl RefusedIds {
    fn holds(&self, id: u32, now: Instant) -> bool {
        self.at
            .get(&id)
            .is_some_and(|at| now.duration_since(*at) < REFUSED_FOR)
    }

    fn insert(&mut self, id: u32, now: Instant) {
        if self.at.insert(id, now).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > REFUSED_CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.at.remove(&oldest);
            }
        }
    }

    fn len(&self) -> usize {
        self.at.len()
    }
}

/// The guard's answer for one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Not registered under the consumed topics' subjects (as of the last look).
    Refused,
}

impl SchemaGuard {
    /// A guard for records of `topics`.
    pub fn new(registry: &RegistryEndpoint, topics: &[&str]) -> Self {
        Self {
            registry: RegistryClient::new(registry),
            prefixes: topics.iter().map(|t| format!("{t}-")).collect(),
            state: Mutex::new(GuardState::default()),
        }
    }

    /// Whether `id` may be decoded. Errors only when the registry must be
    /// asked and does not answer (transient: hold the record and retry).
    pub async fn admit(&self, id: u32) -> Result<Admission> {
        let now = Instant::now();
        let must_refresh = {
            let state = self.lock();
            if state.allowed.contains(&id) {
                return Ok(Admission::Allowed);
            }
            if state.refused.holds(id, now) {
                return Ok(Admission::Refused);
            }
            state
                .refreshed_at
                .is_none_or(|at| now.duration_since(at) >= REFRESH_EVERY)
        };
        if must_refresh {
            let ids = self.registry.ids_under(&self.prefixes).await?;
            let mut state = self.lock();
            state.allowed = ids;
            state.refreshed_at = Some(Instant::now());
        }
        let mut state = self.lock();
        if state.allowed.contains(&id) {
            return Ok(Admission::Allowed);
        }
        state.refused.insert(id, now);
        Ok(Admission::Refused)
    }

    /// Ids refused and remembered now (bounded by `REFUSED_CAPACITY`).
    pub fn refused_count(&self) -> usize {
        self.lock().refused.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        // A panic while holding this lock leaves plain data; keep using it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_ids_are_bounded_and_expire() {
        let start = Instant::now();
        let mut refused = RefusedIds::default();
        for id in 0..(REFUSED_CAPACITY as u32 + 10) {
            refused.insert(id, start);
        }
        assert_eq!(refused.len(), REFUSED_CAPACITY);
        assert!(!refused.holds(0, start), "the oldest were forgotten");
        assert!(refused.holds(REFUSED_CAPACITY as u32 + 9, start));
        assert!(!refused.holds(REFUSED_CAPACITY as u32 + 9, start + REFUSED_FOR));
    }
}
