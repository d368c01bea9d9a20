//! The projector's state: the AuctionDetails of every running auction on the
//! assigned partitions, restored from the `view.auction_details` topic itself
//! (its latest record per auction is exactly this state, so no separate
//! changelog is needed). Ended and cancelled auctions are dropped from memory:
//! the aggregate emits no event after those, so nothing can read them again.

use crate::restore::read_to_end;
use crate::ProcessorError;
use gavel_domain::auction::AuctionStatus;
use gavel_domain::views::AuctionDetails;
use gavel_runtime::Config;
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Partition = i32;

#[derive(Default)]
pub struct ViewState {
    partitions: HashMap<Partition, HashMap<String, AuctionDetails>>,
}

/// Details changed by the open transaction, applied on commit only.
#[derive(Default)]
pub struct Pending {
    pub writes: HashMap<(Partition, String), AuctionDetails>,
}

pub struct RestoreStats {
    pub records: u64,
    pub running: usize,
    pub elapsed: Duration,
}

fn is_running(details: &AuctionDetails) -> bool {
    !matches!(
        details.status,
        AuctionStatus::Ended | AuctionStatus::Cancelled
    )
}

impl ViewState {
    pub fn is_restored(&self, partition: Partition) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// The current details of `key`: the open transaction's first.
    pub fn get<'a>(
        &'a self,
        pending: &'a Pending,
        partition: Partition,
        key: &str,
    ) -> Option<&'a AuctionDetails> {
        pending
            .writes
            .get(&(partition, key.to_owned()))
            .or_else(|| self.partitions.get(&partition)?.get(key))
    }

    pub fn commit(&mut self, pending: Pending) {
        for ((partition, key), details) in pending.writes {
            let state = self.partitions.entry(partition).or_default();
            if is_running(&details) {
                state.insert(key, details);
            } else {
                state.remove(&key);
            }
        }
    }

    pub fn release(&mut self, partition: Partition) {
        self.partitions.remove(&partition);
    }

    pub fn restore(
        &mut self,
        config: &Config,
        partitions: &[Partition],
    ) -> Result<RestoreStats, ProcessorError> {
        let started = Instant::now();
        let mut restored: HashMap<Partition, HashMap<String, AuctionDetails>> =
            partitions.iter().map(|p| (*p, HashMap::new())).collect();
        let counts = read_to_end(
            config,
            &format!("{}-restore", config.project_group),
            &config.topics.view_details,
            partitions,
            |partition, key, payload| {
                let state = restored.entry(partition).or_default();
                let Some(bytes) = payload else {
                    state.remove(key);
                    return Ok(());
                };
                // Only the projector writes this topic; a record it cannot read
                // was put there by something else and is not its state.
                let details: AuctionDetails = match serde_json::from_slice(bytes) {
                    Ok(details) => details,
                    Err(error) => {
                        tracing::warn!(partition, key, %error, "unreadable view record skipped by restore");
                        return Ok(());
                    }
                };
                if is_running(&details) {
                    state.insert(key.to_owned(), details);
                } else {
                    state.remove(key);
                }
                Ok(())
            },
        )?;
        let stats = RestoreStats {
            records: counts.values().sum(),
            running: restored.values().map(HashMap::len).sum(),
            elapsed: started.elapsed(),
        };
        self.partitions.extend(restored);
        Ok(stats)
    }
}
