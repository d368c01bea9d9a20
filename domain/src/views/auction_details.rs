//! The AuctionDetails read model: one row per auction with price, bids, a
//! per-bidder summary and the outcome. It is also the projector's state: the
//! AuctionList and UserBids views are derived from it.

use crate::auction::{AuctionEvent, AuctionStatus};
use crate::{AuctionId, Money, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// The envelope fields a reducer needs from each event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub aggregate_id: AuctionId,
    pub tenant_id: TenantId,
    pub version: u64,
    pub occurred_at: Timestamp,
}

/// One bidder's part in an auction: the bid history summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidderSummary {
    pub user_id: UserId,
    pub highest_bid: Money,
    pub bid_count: u32,
    pub last_bid_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionDetails {
    pub auction_id: AuctionId,
    pub tenant_id: TenantId,
    pub seller_id: UserId,
    pub title: String,
    pub status: AuctionStatus,
    pub starting_price: Money,
    pub reserve_price: Option<Money>,
    pub min_increment: Money,
    pub current_price: Money,
    pub bid_count: u32,
    pub leading_bidder: Option<UserId>,
    pub winner_id: Option<UserId>,
    pub end_time: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The version of the last event applied: the row's guard against replays.
    pub version: u64,
    /// How many distinct users bid.
    #[serde(default)]
    pub bidder_count: u32,
    /// The `TOP_BIDDERS` highest bidders, highest bid first. Bounded because
    /// the record is rewritten on every bid: carrying every bidder made a hot
    /// auction's n-th bid cost O(n) bytes to publish and store (quadratic over
    /// its life), and a closing record naming 10,000 bidders broke Kafka's
    /// 1 MB record limit. Every bidder's own figures live in UserBids.
    #[serde(default)]
    pub bidders: Vec<BidderSummary>,
    /// True when the auction placed the last bid for the leader, up to their
    /// proxy maximum (PlaceBid v2). The maximum itself is never shown.
    #[serde(default)]
    pub last_bid_automatic: bool,
}

/// Bidders listed in a running auction's details record.
pub const TOP_BIDDERS: usize = 10;

impl AuctionDetails {
    /// False once the auction ended or was cancelled: no event follows those.
    pub fn is_running(&self) -> bool {
        !matches!(self.status, AuctionStatus::Ended | AuctionStatus::Cancelled)
    }

    /// The row an auction's creation makes; `None` for any other event.
    pub(super) fn from_creation(meta: &EventMeta, event: &AuctionEvent) -> Option<Self> {
        let AuctionEvent::Created {
            seller_id,
            title,
            starting_price,
            reserve_price,
            min_increment,
            end_time,
        } = event
        else {
            return None;
        };
        Some(Self {
            auction_id: meta.aggregate_id.clone(),
            tenant_id: meta.tenant_id.clone(),
            seller_id: seller_id.clone(),
            title: title.clone(),
            status: AuctionStatus::Draft,
            starting_price: *starting_price,
            reserve_price: *reserve_price,
            min_increment: *min_increment,
            current_price: *starting_price,
            bid_count: 0,
            leading_bidder: None,
            winner_id: None,
            end_time: *end_time,
            created_at: meta.occurred_at,
            updated_at: meta.occurred_at,
            version: meta.version,
            bidder_count: 0,
            bidders: Vec::new(),
            last_bid_automatic: false,
        })
    }

    /// The auction-wide fields of `event`; the bidders are the projection's.
    pub(super) fn apply(&mut self, meta: &EventMeta, event: &AuctionEvent) {
        self.version = meta.version;
        self.updated_at = meta.occurred_at;
        match event {
            AuctionEvent::Created { .. } => {}
            AuctionEvent::Started { .. } => self.status = AuctionStatus::Active,
            AuctionEvent::BidPlaced {
                bidder_id,
                amount,
                automatic,
                ..
            } => {
                self.current_price = *amount;
                self.leading_bidder = Some(bidder_id.clone());
                self.bid_count += 1;
                self.last_bid_automatic = *automatic;
            }
            AuctionEvent::Cancelled { .. } => self.status = AuctionStatus::Cancelled,
            AuctionEvent::Ended {
                winner_id,
                final_price,
                ..
            } => {
                self.status = AuctionStatus::Ended;
                self.winner_id = winner_id.clone();
                self.current_price = *final_price;
            }
        }
    }
}
