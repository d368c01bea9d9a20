//! The auction's current state and `evolve`, the only way it changes.

use super::AuctionEvent;
use crate::{AuctionId, Money, Timestamp, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuctionStatus {
    Draft,
    Active,
    Ended,
    Cancelled,
}

impl AuctionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Active => "ACTIVE",
            Self::Ended => "ENDED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    pub id: AuctionId,
    pub seller_id: UserId,
    pub title: String,
    pub status: AuctionStatus,
    pub starting_price: Money,
    pub reserve_price: Option<Money>,
    pub min_increment: Money,
    pub end_time: Timestamp,
    /// The highest bid so far, or the starting price before any bid.
    pub current_price: Money,
    pub leading_bidder: Option<UserId>,
    /// The leading bidder's proxy maximum, when they gave one (v2): the
    /// auction bids for them up to this when someone outbids them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leading_max: Option<Money>,
    pub bid_count: u32,
    pub winner_id: Option<UserId>,
    /// Number of events applied: the aggregate version, gapless from 1.
    pub version: u64,
}

impl Auction {
    /// The lowest bid `decide` accepts now: the starting price for the first bid,
    /// then the current price plus the minimum increment; `None` when that
    /// sum does not fit (no bid can then be high enough).
    pub fn minimum_bid(&self) -> Option<Money> {
        if self.bid_count == 0 {
            Some(self.starting_price)
        } else {
            self.current_price.checked_add(self.min_increment).ok()
        }
    }

    pub fn reserve_met(&self) -> bool {
        self.bid_count > 0
            && self
                .reserve_price
                .is_none_or(|reserve| self.current_price.minor() >= reserve.minor())
    }
}

/// Applies one event. `None` is the state before the auction exists.
/// An event that does not fit the state (a bug upstream) leaves it unchanged
/// except for the version, so replays stay total.
pub fn evolve(state: Option<Auction>, id: &AuctionId, event: &AuctionEvent) -> Option<Auction> {
    match (state, event) {
        (
            None,
            AuctionEvent::Created {
                seller_id,
                title,
                starting_price,
                reserve_price,
                min_increment,
                end_time,
            },
        ) => Some(Auction {
            id: id.clone(),
            seller_id: seller_id.clone(),
            title: title.clone(),
            status: AuctionStatus::Draft,
            starting_price: *starting_price,
            reserve_price: *reserve_price,
            min_increment: *min_increment,
            end_time: *end_time,
            current_price: *starting_price,
            leading_bidder: None,
            leading_max: None,
            bid_count: 0,
            winner_id: None,
            version: 1,
        }),
        (None, _) => None,
        (Some(mut auction), event) => {
            apply(&mut auction, event);
            auction.version += 1;
            Some(auction)
        }
    }
}

fn apply(auction: &mut Auction, event: &AuctionEvent) {
    match event {
        AuctionEvent::Created { .. } => {}
        AuctionEvent::Started { .. } => auction.status = AuctionStatus::Active,
        AuctionEvent::BidPlaced {
            bidder_id,
            amount,
            max_amount,
            ..
        } => {
            auction.current_price = *amount;
            auction.leading_bidder = Some(bidder_id.clone());
            auction.leading_max = *max_amount;
            auction.bid_count += 1;
        }
        AuctionEvent::Cancelled { .. } => auction.status = AuctionStatus::Cancelled,
        AuctionEvent::Ended { winner_id, .. } => {
            auction.status = AuctionStatus::Ended;
            auction.winner_id = winner_id.clone();
        }
    }
}

/// Rebuilds state from an event history.
pub fn replay<'a>(
    id: &AuctionId,
    events: impl IntoIterator<Item = &'a AuctionEvent>,
) -> Option<Auction> {
    events
        .into_iter()
        .fold(None, |state, event| evolve(state, id, event))
}
