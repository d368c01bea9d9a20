//! The processor's state store: aggregates in memory, per assigned partition,
//! restored from the compacted changelog when a partition is first seen and
//! released when it is revoked. Writes of a transaction stay in `Pending` until
//! the transaction commits, so an abort never leaves half-applied state behind.
//!
//! Each partition also indexes the end times of its ACTIVE auctions: these are
//! the durable timers. They live in the state (and so in the changelog), so a
//! restart restores them and fires the overdue ones.

use super::stored::StoredAggregate;
use crate::restore::read_to_end;
use crate::ProcessorError;
use gavel_domain::auction::AuctionStatus;
use gavel_domain::Timestamp;
use gavel_runtime::Config;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

type Partition = i32;

#[derive(Default)]
struct PartitionState {
    aggregates: HashMap<String, StoredAggregate>,
    /// (end time, auction id) of every ACTIVE auction.
    timers: BTreeSet<(Timestamp, String)>,
}

impl PartitionState {
    fn put(&mut self, key: String, state: StoredAggregate) {
        if let Some(timer) = self
            .aggregates
            .get(&key)
            .and_then(|old| timer_of(&key, old))
        {
            self.timers.remove(&timer);
        }
        if let Some(timer) = timer_of(&key, &state) {
            self.timers.insert(timer);
        }
        self.aggregates.insert(key, state);
    }

    fn take(&mut self, key: &str) -> Option<StoredAggregate> {
        let state = self.aggregates.remove(key)?;
        if let Some(timer) = timer_of(key, &state) {
            self.timers.remove(&timer);
        }
        Some(state)
    }
}

fn timer_of(key: &str, state: &StoredAggregate) -> Option<(Timestamp, String)> {
    state
        .auction
        .as_ref()
        .filter(|a| a.status == AuctionStatus::Active)
        .map(|a| (a.end_time, key.to_owned()))
}

#[derive(Default)]
pub struct StateStore {
    partitions: HashMap<Partition, PartitionState>,
}

/// Writes of the open transaction, by partition and aggregate id.
#[derive(Default)]
pub struct Pending {
    pub writes: HashMap<(Partition, String), StoredAggregate>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreStats {
    pub records: u64,
    pub aggregates: usize,
    pub elapsed: Duration,
}

impl StateStore {
    pub fn is_restored(&self, partition: Partition) -> bool {
        self.partitions.contains_key(&partition)
    }

    pub fn get<'a>(
        &'a self,
        pending: &'a Pending,
        partition: Partition,
        key: &str,
    ) -> Option<&'a StoredAggregate> {
        pending
            .writes
            .get(&(partition, key.to_owned()))
            .or_else(|| {
                self.partitions
                    .get(&partition)
                    .and_then(|p| p.aggregates.get(key))
            })
    }

    /// Moves an aggregate into the open transaction's writes (or starts a new
    /// one there) and lends it out for in-place changes. If the transaction
    /// aborts, the session ends and the store is rebuilt from the changelog, so
    /// nothing needs copying back.
    pub fn checkout<'a>(
        &mut self,
        pending: &'a mut Pending,
        partition: Partition,
        key: &str,
    ) -> &'a mut StoredAggregate {
        pending
            .writes
            .entry((partition, key.to_owned()))
            .or_insert_with(|| {
                self.partitions
                    .get_mut(&partition)
                    .and_then(|p| p.take(key))
                    .unwrap_or_default()
            })
    }

    pub fn commit(&mut self, pending: Pending) {
        for ((partition, key), state) in pending.writes {
            self.partitions
                .entry(partition)
                .or_default()
                .put(key, state);
        }
    }

    pub fn release(&mut self, partition: Partition) {
        self.partitions.remove(&partition);
    }

    /// Auctions whose end time is at or before `now`, at most `limit` of them.
    pub fn due_timers(&self, now: Timestamp, limit: usize) -> Vec<(Partition, String, Timestamp)> {
        let mut due = Vec::new();
        for (partition, state) in &self.partitions {
            for (at, key) in state.timers.iter().take_while(|(at, _)| *at <= now) {
                due.push((*partition, key.clone(), *at));
                if due.len() == limit {
                    return due;
                }
            }
        }
        due
    }

    /// Reads the changelog partitions from the beginning to their end (the last
    /// stable offset: read_committed), keeping the latest state per aggregate.
    /// All partitions are fetched by one consumer, in parallel.
    pub fn restore(
        &mut self,
        config: &Config,
        partitions: &[Partition],
    ) -> Result<RestoreStats, ProcessorError> {
        let started = Instant::now();
        let mut stats = RestoreStats {
            records: 0,
            aggregates: 0,
            elapsed: Duration::ZERO,
        };
        for (partition, (aggregates, records)) in read_changelog(config, partitions)? {
            let mut state = PartitionState::default();
            stats.records += records;
            stats.aggregates += aggregates.len();
            for (key, aggregate) in aggregates {
                state.put(key, aggregate);
            }
            self.partitions.insert(partition, state);
        }
        stats.elapsed = started.elapsed();
        Ok(stats)
    }
}

type Restored = HashMap<Partition, (HashMap<String, StoredAggregate>, u64)>;

/// Reads changelog partitions into maps (latest record per key wins, tombstones
/// delete), with the number of records read. Also used by the restore benchmark.
pub fn read_changelog(
    config: &Config,
    partitions: &[Partition],
) -> Result<Restored, ProcessorError> {
    let mut states: HashMap<Partition, HashMap<String, StoredAggregate>> =
        partitions.iter().map(|p| (*p, HashMap::new())).collect();
    let counts = read_to_end(
        config,
        &format!("{}-restore", config.aggregate_group),
        &config.topics.changelog,
        partitions,
        |partition, key, payload| {
            apply_changelog_record(states.entry(partition).or_default(), key, payload)
        },
    )?;
    Ok(states
        .into_iter()
        .map(|(partition, state)| {
            let records = counts.get(&partition).copied().unwrap_or(0);
            (partition, (state, records))
        })
        .collect())
}

fn apply_changelog_record(
    state: &mut HashMap<String, StoredAggregate>,
    key: &str,
    payload: Option<&[u8]>,
) -> Result<(), ProcessorError> {
    match payload {
        None => {
            state.remove(key);
        }
        Some(bytes) => {
            let stored =
                StoredAggregate::from_bytes(bytes).map_err(|e| ProcessorError::Changelog {
                    key: key.to_owned(),
                    reason: e.to_string(),
                })?;
            state.insert(key.to_owned(), stored);
        }
    }
    Ok(())
}
