//! Every bidder of one auction with their bid summary: the projector's memory
//! of a running auction beyond what its details record carries.

use super::auction_details::{BidderSummary, TOP_BIDDERS};
use crate::{Money, Timestamp, UserId};
use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bidders {
    by_user: HashMap<UserId, BidderSummary>,
}

impl Bidders {
    /// Counts an accepted bid; returns the bidder's summary after it.
    pub fn record(&mut self, bidder: &UserId, amount: Money, at: Timestamp) -> &BidderSummary {
        let summary = self
            .by_user
            .entry(bidder.clone())
            .and_modify(|summary| {
                // Accepted bids only ever rise, so the latest is the highest.
                summary.highest_bid = amount;
                summary.bid_count += 1;
                summary.last_bid_at = at;
            })
            .or_insert_with(|| BidderSummary {
                user_id: bidder.clone(),
                highest_bid: amount,
                bid_count: 1,
                last_bid_at: at,
            });
        summary
    }

    /// Adds a summary read back from a view (restore); a later one replaces an
    /// earlier one of the same user.
    pub fn restore(&mut self, summary: BidderSummary) {
        self.by_user.insert(summary.user_id.clone(), summary);
    }

    pub fn get(&self, user: &UserId) -> Option<&BidderSummary> {
        self.by_user.get(user)
    }

    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// Every bidder, highest bid first (ties by the later bid, then user id, so
    /// the order is the same however the map was built).
    pub fn highest_first(&self) -> Vec<BidderSummary> {
        let mut all: Vec<BidderSummary> = self.by_user.values().cloned().collect();
        all.sort_by(|a, b| {
            b.highest_bid
                .minor()
                .cmp(&a.highest_bid.minor())
                .then(b.last_bid_at.millis().cmp(&a.last_bid_at.millis()))
                .then(a.user_id.as_str().cmp(b.user_id.as_str()))
        });
        all
    }
}

/// Puts `summary` (the bidder of the newest, hence highest, accepted bid) at
/// the head of a highest-first top list: O(TOP_BIDDERS) per bid instead of a
/// sort of every bidder.
pub fn promote(top: &mut Vec<BidderSummary>, summary: &BidderSummary) {
    top.retain(|b| b.user_id != summary.user_id);
    top.insert(0, summary.clone());
    top.truncate(TOP_BIDDERS);
}
