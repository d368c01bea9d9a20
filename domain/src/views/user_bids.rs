//! The UserBids read model: one row per (user, auction) the user bid on, with
//! the user's highest bid and where they stand. The auction's current price is
//! deliberately absent: it changes with every bid, and carrying it would rewrite
//! every bidder's row on each bid instead of two.

use super::{AuctionDetails, BidderSummary};
use crate::auction::AuctionStatus;
use crate::{AuctionId, Money, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserBidStatus {
    /// The auction runs and this user holds the highest bid.
    Leading,
    /// The auction runs and someone else bid higher.
    Outbid,
    Won,
    /// The auction ended and this user did not win (outbid, or reserve not met).
    Lost,
    /// The auction was cancelled after this user bid.
    Cancelled,
}

impl UserBidStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leading => "LEADING",
            Self::Outbid => "OUTBID",
            Self::Won => "WON",
            Self::Lost => "LOST",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Leading,
            Self::Outbid,
            Self::Won,
            Self::Lost,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserBid {
    pub user_id: UserId,
    pub auction_id: AuctionId,
    pub tenant_id: TenantId,
    pub title: String,
    pub highest_bid: Money,
    pub bid_count: u32,
    pub status: UserBidStatus,
    pub end_time: Timestamp,
    pub last_bid_at: Timestamp,
    /// The auction's version this row reflects: the sink's replay guard.
    pub version: u64,
}

impl UserBid {
    /// The view id: one row per user and auction.
    pub fn key(&self) -> String {
        format!("{}/{}", self.user_id, self.auction_id)
    }

    /// The row of the bidder `summary` describes in the auction of `details`.
    pub fn of(details: &AuctionDetails, summary: &BidderSummary) -> Self {
        let user = &summary.user_id;
        Self {
            user_id: user.clone(),
            auction_id: details.auction_id.clone(),
            tenant_id: details.tenant_id.clone(),
            title: details.title.clone(),
            highest_bid: summary.highest_bid,
            bid_count: summary.bid_count,
            status: standing(details, user),
            end_time: details.end_time,
            last_bid_at: summary.last_bid_at,
            version: details.version,
        }
    }
}

impl UserBid {
    /// The bidder's summary this row carries (the projector's restore).
    pub fn summary(&self) -> BidderSummary {
        BidderSummary {
            user_id: self.user_id.clone(),
            highest_bid: self.highest_bid,
            bid_count: self.bid_count,
            last_bid_at: self.last_bid_at,
        }
    }
}

fn standing(details: &AuctionDetails, user: &UserId) -> UserBidStatus {
    match details.status {
        AuctionStatus::Ended if details.winner_id.as_ref() == Some(user) => UserBidStatus::Won,
        AuctionStatus::Ended => UserBidStatus::Lost,
        AuctionStatus::Cancelled => UserBidStatus::Cancelled,
        AuctionStatus::Draft | AuctionStatus::Active => {
            if details.leading_bidder.as_ref() == Some(user) {
                UserBidStatus::Leading
            } else {
                UserBidStatus::Outbid
            }
        }
    }
}
