//! The projector's state: every running auction on the assigned partitions,
//! its details and every bidder's summary. It is restored from the projector's
//! own output, so no separate changelog is needed: the latest
//! `view.auction_details` record per auction is its details, and the latest
//! `view.user_bids` record per (user, auction) is that bidder's summary (both
//! topics hold the records of an event's partition on the same partition).
//! Ended and cancelled auctions are dropped from memory: the aggregate emits no
//! event after those, so nothing can read them again.
//!
//! The session changes this state as it applies events, before its transaction
//! commits. That is safe because a failed transaction ends the session and its
//! state with it; the next session restores from what was committed.

use crate::restore::read_to_end;
use crate::ProcessorError;
use gavel_domain::views::{AuctionDetails, AuctionProjection, Bidders, UserBid};
use gavel_runtime::avro::{json, AvroCodec};
use gavel_runtime::dlq::ErrorClass;
use gavel_runtime::view_wire::{legacy_json, AUCTION_DETAILS_RECORD, USER_BID_RECORD};
use gavel_runtime::{Config, RuntimeError};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::time::{Duration, Instant};

type Partition = i32;
type Auctions = HashMap<String, AuctionProjection>;

#[derive(Default)]
pub struct ViewState {
    partitions: HashMap<Partition, Auctions>,
}

pub struct RestoreStats {
    pub records: u64,
    pub running: usize,
    pub elapsed: Duration,
}

impl ViewState {
    pub fn is_restored(&self, partition: Partition) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Takes an auction's state out to apply an event to it (moved, not
    /// cloned: a hot auction holds thousands of bidders).
    pub fn take(&mut self, partition: Partition, key: &str) -> Option<AuctionProjection> {
        self.partitions.get_mut(&partition)?.remove(key)
    }

    /// Puts an auction's state back; one that has closed is forgotten.
    pub fn put(&mut self, partition: Partition, key: String, state: AuctionProjection) {
        if state.is_running() {
            self.partitions
                .entry(partition)
                .or_default()
                .insert(key, state);
        }
    }

    pub fn release(&mut self, partition: Partition) {
        self.partitions.remove(&partition);
    }

    pub fn restore(
        &mut self,
        config: &Config,
        views: &ViewReader<'_>,
        partitions: &[Partition],
    ) -> Result<RestoreStats, ProcessorError> {
        let started = Instant::now();
        let group = format!("{}-restore", config.project_group);
        let mut restored: HashMap<Partition, Auctions> =
            partitions.iter().map(|p| (*p, HashMap::new())).collect();
        let mut records = views.read(
            config,
            &group,
            (&config.topics.view_details, AUCTION_DETAILS_RECORD),
            partitions,
            |partition, key, row: Option<AuctionDetails>| {
                let auctions = restored.entry(partition).or_default();
                match row.filter(AuctionDetails::is_running) {
                    Some(details) => auctions.insert(key.to_owned(), from_details(details)),
                    None => auctions.remove(key),
                };
            },
        )?;
        // Read after the details: a user row (as new as or newer than the
        // details' top list) replaces the bidder's entry.
        records += views.read(
            config,
            &group,
            (&config.topics.view_user_bids, USER_BID_RECORD),
            partitions,
            |partition, _key, row: Option<UserBid>| {
                let auction = row.as_ref().and_then(|row| {
                    restored
                        .get_mut(&partition)?
                        .get_mut(row.auction_id.as_str())
                });
                if let (Some(auction), Some(row)) = (auction, &row) {
                    auction.bidders.restore(row.summary());
                }
            },
        )?;
        let running = restored.values().map(HashMap::len).sum();
        for auctions in restored.values() {
            auctions.values().for_each(warn_if_bidders_missing);
        }
        self.partitions.extend(restored);
        Ok(RestoreStats {
            records,
            running,
            elapsed: started.elapsed(),
        })
    }
}

/// A running auction's state as far as its details record tells: the bidders
/// it lists (a record written before the top-list limit lists every bidder).
fn from_details(details: AuctionDetails) -> AuctionProjection {
    let mut bidders = Bidders::default();
    for summary in details.bidders.iter().cloned() {
        bidders.restore(summary);
    }
    AuctionProjection { details, bidders }
}

fn warn_if_bidders_missing(auction: &AuctionProjection) {
    let details = &auction.details;
    if details.bidder_count as usize > auction.bidders.len() {
        tracing::warn!(
            auction = %details.auction_id,
            expected = details.bidder_count,
            found = auction.bidders.len(),
            "restore found fewer bidder rows than the details record counts"
        );
    }
}

/// How the restore reads the projector's own view records: Avro through a
/// codec admitting the view topics' schemas (a JSON row of an earlier
/// release too, see `view_wire::legacy_json`).
pub struct ViewReader<'a> {
    pub codec: &'a AvroCodec,
    pub runtime: &'a tokio::runtime::Handle,
}

impl ViewReader<'_> {
    /// Reads a view topic's partitions to the end, decoding each record
    /// (`topic`, its record name); a record it cannot read was not written by
    /// the projector and is skipped. A registry that cannot be asked fails the
    /// restore (the session retries it).
    fn read<T: DeserializeOwned>(
        &self,
        config: &Config,
        group: &str,
        (topic, record): (&str, &str),
        partitions: &[Partition],
        mut on_row: impl FnMut(Partition, &str, Option<T>),
    ) -> Result<u64, ProcessorError> {
        let counts = read_to_end(
            config,
            group,
            topic,
            partitions,
            |partition, key, payload| {
                let row = match payload.map(|bytes| self.decode(bytes, record)).transpose() {
                    Ok(row) => row,
                    Err(Unreadable::Poison(error)) => {
                        tracing::warn!(partition, key, topic, %error, "unreadable view record skipped by restore");
                        return Ok(());
                    }
                    Err(Unreadable::Transient(error)) => return Err(error.into()),
                };
                on_row(partition, key, row);
                Ok(())
            },
        )?;
        Ok(counts.values().sum())
    }

    fn decode<T: DeserializeOwned>(&self, payload: &[u8], record: &str) -> Result<T, Unreadable> {
        if let Some(row) = legacy_json(payload) {
            return Ok(row);
        }
        let decoded = self.codec.decode_on(self.runtime, payload);
        decoded
            .and_then(|d| json::decode(d, record))
            .map_err(|error| match ErrorClass::of(&error) {
                Some(_) => Unreadable::Poison(error),
                None => Unreadable::Transient(error),
            })
    }
}

enum Unreadable {
    Poison(RuntimeError),
    Transient(RuntimeError),
}
