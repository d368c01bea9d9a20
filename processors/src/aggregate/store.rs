//! The processor's state store: aggregates in memory, per assigned partition,
//! restored from the compacted changelog when a partition is first seen and
//! released when it is revoked. Writes of a transaction stay in `Pending` until
//! the transaction commits, so an abort never leaves half-applied state behind.
//!
//! Each partition also indexes the end times of its ACTIVE auctions: these are
//! the durable timers. They live in the state (and so in the changelog), so a
//! restart restores them and fires the overdue ones. Ended and cancelled
//! auctions are indexed too, by end time, so they leave memory and the
//! changelog (a tombstone) once the retention after it has passed: the store
//! holds the auctions that exist and are recent, never what a stranger asked
//! about (a command on an unknown id leaves nothing behind).

use super::stored::StoredAggregate;
use crate::restore::read_to_end;
use crate::ProcessorError;
use gavel_domain::auction::AuctionStatus;
use gavel_domain::Timestamp;
use gavel_runtime::Config;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

type Partition = i32;

/// The store's maps are keyed by auction ids that clients choose, so they
/// keep a per-process random seed (foldhash, several times cheaper than
/// SipHash on these short keys, which was a tenth of the aggregate's time).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

#[derive(Default)]
struct PartitionState {
    aggregates: Map<String, StoredAggregate>,
    /// (end time, auction id) of every ACTIVE auction.
    timers: BTreeSet<(Timestamp, String)>,
    /// (end time, auction id) of every ENDED or CANCELLED auction.
    closed: BTreeSet<(Timestamp, String)>,
}

impl PartitionState {
    fn put(&mut self, key: String, state: StoredAggregate) {
        if let Some(old) = self.aggregates.get(&key) {
            unindex(&mut self.timers, &mut self.closed, &key, old);
        }
        match index_of(&key, &state) {
            Some((Index::Timer, entry)) => self.timers.insert(entry),
            Some((Index::Closed, entry)) => self.closed.insert(entry),
            None => false,
        };
        self.aggregates.insert(key, state);
    }

    fn take(&mut self, key: &str) -> Option<StoredAggregate> {
        let state = self.aggregates.remove(key)?;
        unindex(&mut self.timers, &mut self.closed, key, &state);
        Some(state)
    }
}

enum Index {
    Timer,
    Closed,
}

fn index_of(key: &str, state: &StoredAggregate) -> Option<(Index, (Timestamp, String))> {
    let auction = state.auction.as_ref()?;
    let index = match auction.status {
        AuctionStatus::Active => Index::Timer,
        AuctionStatus::Ended | AuctionStatus::Cancelled => Index::Closed,
        AuctionStatus::Draft => return None,
    };
    Some((index, (auction.end_time, key.to_owned())))
}

fn unindex(
    timers: &mut BTreeSet<(Timestamp, String)>,
    closed: &mut BTreeSet<(Timestamp, String)>,
    key: &str,
    state: &StoredAggregate,
) {
    match index_of(key, state) {
        Some((Index::Timer, entry)) => timers.remove(&entry),
        Some((Index::Closed, entry)) => closed.remove(&entry),
        None => false,
    };
}

#[derive(Default)]
pub struct StateStore {
    partitions: Map<Partition, PartitionState>,
    /// Changelog records of aggregates without an auction, found at restore.
    pub orphans: Vec<(Partition, String)>,
}

/// Writes of the open transaction, by partition and aggregate id.
#[derive(Default)]
pub struct Pending {
    pub writes: Map<(Partition, String), StoredAggregate>,
    /// Aggregates to forget: removed from the store and tombstoned in the
    /// changelog when the transaction commits.
    pub retired: Set<(Partition, String)>,
    /// Checked out of the store (so they have a changelog record to tombstone
    /// if they turn out empty).
    existing: Set<(Partition, String)>,
}

impl Pending {
    /// After a command: an aggregate without an auction is not kept. If it
    /// had a changelog record (state from before this rule), that record is
    /// tombstoned; otherwise nothing at all is written for it.
    pub fn settle(&mut self, partition: Partition, key: &str) {
        let slot = (partition, key.to_owned());
        let empty = self
            .writes
            .get(&slot)
            .is_some_and(|state| state.auction.is_none());
        if !empty {
            return;
        }
        self.writes.remove(&slot);
        if self.existing.contains(&slot) {
            self.retired.insert(slot);
        }
    }
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
        // One hash and one key copy per command: the entry is looked up once.
        match pending.writes.entry((partition, key.to_owned())) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => {
                let taken = self
                    .partitions
                    .get_mut(&partition)
                    .and_then(|p| p.take(key));
                if taken.is_some() {
                    pending.existing.insert(slot.key().clone());
                }
                slot.insert(taken.unwrap_or_default())
            }
        }
    }

    pub fn commit(&mut self, pending: Pending) {
        for (partition, key) in &pending.retired {
            if let Some(state) = self.partitions.get_mut(partition) {
                state.take(key);
            }
        }
        for ((partition, key), state) in pending.writes {
            self.partitions
                .entry(partition)
                .or_default()
                .put(key, state);
        }
    }

    /// Ended or cancelled auctions whose end time is at or before `cutoff`
    /// (now minus the retention), at most `limit` of them.
    pub fn due_retirements(&self, cutoff: Timestamp, limit: usize) -> Vec<(Partition, String)> {
        let mut due = Vec::new();
        for (partition, state) in &self.partitions {
            for (_, key) in state.closed.iter().take_while(|(at, _)| *at <= cutoff) {
                due.push((*partition, key.clone()));
                if due.len() == limit {
                    return due;
                }
            }
        }
        due
    }

    pub fn release(&mut self, partition: Partition) {
        self.partitions.remove(&partition);
        self.orphans.retain(|(p, _)| *p != partition);
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
                if aggregate.auction.is_some() {
                    state.put(key, aggregate);
                } else {
                    // Written before empty aggregates were dropped: tombstoned
                    // by the next retirement pass, never loaded.
                    self.orphans.push((partition, key));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_domain::auction::Auction;
    use gavel_domain::{AuctionId, Currency, Money, UserId};

    fn auction(status: AuctionStatus, end_time: i64) -> StoredAggregate {
        let eur = |minor| Money::new(minor, Currency::parse("EUR").unwrap()).unwrap();
        StoredAggregate {
            tenant_id: Some("t".into()),
            auction: Some(Auction {
                id: AuctionId::new("a"),
                seller_id: UserId::new("s"),
                title: "t".into(),
                status,
                starting_price: eur(100),
                reserve_price: None,
                min_increment: eur(10),
                end_time: Timestamp::from_millis(end_time),
                current_price: eur(100),
                leading_bidder: None,
                bid_count: 0,
                winner_id: None,
                version: 2,
                leading_max: None,
            }),
            recent: Default::default(),
        }
    }

    fn stored(store: &mut StateStore, key: &str, state: StoredAggregate) {
        let mut pending = Pending::default();
        *store.checkout(&mut pending, 0, key) = state;
        pending.settle(0, key);
        store.commit(pending);
    }

    #[test]
    fn closed_auctions_are_due_for_retirement_after_their_end_time() {
        let mut store = StateStore::default();
        stored(&mut store, "ended", auction(AuctionStatus::Ended, 1_000));
        stored(
            &mut store,
            "cancelled",
            auction(AuctionStatus::Cancelled, 5_000),
        );
        stored(&mut store, "active", auction(AuctionStatus::Active, 1_000));
        let due = store.due_retirements(Timestamp::from_millis(2_000), 10);
        assert_eq!(due, vec![(0, "ended".to_owned())]);
        let mut pending = Pending::default();
        pending.retired.insert((0, "ended".to_owned()));
        store.commit(pending);
        assert!(store.get(&Pending::default(), 0, "ended").is_none());
        assert!(store
            .due_retirements(Timestamp::from_millis(2_000), 10)
            .is_empty());
    }

    #[test]
    fn an_aggregate_without_an_auction_is_never_kept_and_a_stored_one_is_tombstoned() {
        let mut store = StateStore::default();
        let mut pending = Pending::default();
        store.checkout(&mut pending, 0, "ghost");
        pending.settle(0, "ghost");
        assert!(
            pending.writes.is_empty() && pending.retired.is_empty(),
            "nothing written"
        );
        // A record kept by an older release: taken out, found empty, tombstoned.
        stored(&mut store, "old", auction(AuctionStatus::Draft, 9_000));
        let mut pending = Pending::default();
        store.checkout(&mut pending, 0, "old").auction = None;
        pending.settle(0, "old");
        assert!(pending.retired.contains(&(0, "old".to_owned())));
        store.commit(pending);
        assert!(store.get(&Pending::default(), 0, "old").is_none());
    }
}
