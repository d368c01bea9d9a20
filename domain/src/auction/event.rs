//! What happened to an auction. Immutable facts; the envelope (ids, version, time)
//! is added by the runtime, not here.

use crate::{Money, Timestamp, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionWon {
    pub winning_bid: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuctionEvent {
    Created {
        seller_id: UserId,
        title: String,
        starting_price: Money,
        reserve_price: Option<Money>,
        min_increment: Money,
        end_time: Timestamp,
    },
    Started {
        started_at: Timestamp,
    },
    BidPlaced {
        bidder_id: UserId,
        amount: Money,
        previous_price: Money,
        placed_at: Timestamp,
        /// The bidder's proxy maximum from now on (v2; `None` in v1 events
        /// and for plain bids). Part of the aggregate's state, never of a view:
        /// a maximum is secret until it is bid.
        max_amount: Option<Money>,
        /// True when the auction placed this bid on the bidder's behalf, up
        /// to their maximum (v2; false in v1 events).
        automatic: bool,
    },
    Cancelled {
        reason: String,
    },
    Ended {
        /// The highest bidder, when there was a bid and the reserve was met.
        winner_id: Option<UserId>,
        /// The price the auction closed at (current price, even without a winner).
        final_price: Money,
        reserve_met: bool,
        ended_at: Timestamp,
    },
}

impl AuctionEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "AuctionCreated",
            Self::Started { .. } => "AuctionStarted",
            Self::BidPlaced { .. } => "BidPlaced",
            Self::Cancelled { .. } => "AuctionCancelled",
            Self::Ended { .. } => "AuctionEnded",
        }
    }
}
