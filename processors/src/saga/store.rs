//! The orchestrator's saga instances, by partition, restored from the kind's
//! compacted changelog (one record per saga: its whole state as JSON), with an
//! index of the one timer each open saga may have. The timers are derived from
//! the state, so they survive restarts with it: a deadline that passed while
//! the orchestrator was down fires once, right after the restore.

use crate::restore::read_to_end;
use crate::ProcessorError;
use gavel_domain::saga::{AttemptRef, Pending, SagaDefinition, SagaId, SagaState};
use gavel_runtime::Config;
use std::collections::{BTreeSet, HashMap, HashSet};

pub struct SagaStore<D: SagaDefinition> {
    sagas: HashMap<SagaId, (i32, SagaState<D>)>,
    /// (due at, saga): the pending reply deadline or retry backoff of each saga.
    timers: BTreeSet<(i64, SagaId)>,
    restored: HashSet<i32>,
}

/// A timer that is due: feed `DeadlineExpired { timer }` to the saga.
pub struct DueTimer<S> {
    pub partition: i32,
    pub saga: SagaId,
    pub timer: AttemptRef<S>,
}

impl<D: SagaDefinition> Default for SagaStore<D> {
    fn default() -> Self {
        Self {
            sagas: HashMap::new(),
            timers: BTreeSet::new(),
            restored: HashSet::new(),
        }
    }
}

impl<D: SagaDefinition> SagaStore<D> {
    pub fn get(&self, saga: &SagaId) -> Option<&SagaState<D>> {
        self.sagas.get(saga).map(|(_, state)| state)
    }

    pub fn is_restored(&self, partition: i32) -> bool {
        self.restored.contains(&partition)
    }

    /// Keeps `state` as the saga's current state on `partition`.
    pub fn put(&mut self, partition: i32, state: SagaState<D>) {
        if let Some((_, old)) = self.sagas.get(&state.id) {
            if let Some(due) = due_at(old) {
                self.timers.remove(&(due, old.id.clone()));
            }
        }
        if let Some(due) = due_at(&state) {
            self.timers.insert((due, state.id.clone()));
        }
        self.sagas.insert(state.id.clone(), (partition, state));
    }

    /// The timers due at `now`, oldest first, at most `limit`.
    pub fn due(&self, now: i64, limit: usize) -> Vec<DueTimer<D::Step>> {
        self.timers
            .iter()
            .take_while(|(due, _)| *due <= now)
            .filter_map(|(_, saga)| {
                let (partition, state) = self.sagas.get(saga)?;
                Some(DueTimer {
                    partition: *partition,
                    saga: saga.clone(),
                    timer: state.pending.as_ref()?.attempt(),
                })
            })
            .take(limit)
            .collect()
    }

    /// Reads `partitions` of the changelog to its end (read_committed).
    pub fn restore(
        &mut self,
        config: &Config,
        changelog: &str,
        partitions: &[i32],
    ) -> Result<u64, ProcessorError> {
        let group = format!("{}-restore", config.saga_group);
        let mut records = 0;
        read_to_end(
            config,
            &group,
            changelog,
            partitions,
            |partition, key, payload| {
                records += 1;
                if let Some(payload) = payload {
                    let state: SagaState<D> =
                        serde_json::from_slice(payload).map_err(|e| ProcessorError::Changelog {
                            key: key.to_owned(),
                            reason: e.to_string(),
                        })?;
                    self.put(partition, state);
                }
                Ok(())
            },
        )?;
        self.restored.extend(partitions);
        Ok(records)
    }

    /// Forgets the sagas of a partition given to another replica.
    pub fn release(&mut self, partition: i32) {
        let gone: Vec<SagaId> = self
            .sagas
            .iter()
            .filter(|(_, (p, _))| *p == partition)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some((_, state)) = self.sagas.remove(&id) {
                if let Some(due) = due_at(&state) {
                    self.timers.remove(&(due, id));
                }
            }
        }
        self.restored.remove(&partition);
    }

    /// Open sagas by status name, and the start (ms) of the oldest open one.
    pub fn census(&self) -> (HashMap<&'static str, i64>, Option<i64>) {
        let mut counts = HashMap::new();
        let mut oldest = None;
        for (_, state) in self.sagas.values() {
            *counts.entry(state.status.as_str()).or_insert(0) += 1;
            if !state.status.is_terminal() {
                let started = state.started_at.millis();
                oldest = Some(oldest.map_or(started, |o: i64| o.min(started)));
            }
        }
        (counts, oldest)
    }
}

/// When the saga's timer fires: its reply deadline or its retry backoff.
fn due_at<D: SagaDefinition>(state: &SagaState<D>) -> Option<i64> {
    if state.status.is_terminal() {
        return None;
    }
    match state.pending.as_ref()? {
        Pending::Reply(command) => Some(command.deadline.millis()),
        Pending::Backoff { until, .. } => Some(until.millis()),
    }
}
