//! What a user (or the auction clock) asks of an auction.

use crate::{AuctionId, Money, Timestamp, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAuction {
    pub auction_id: AuctionId,
    pub seller_id: UserId,
    pub title: String,
    pub starting_price: Money,
    /// Below this the auction ends without a winner. `None`: no reserve.
    pub reserve_price: Option<Money>,
    pub min_increment: Money,
    pub end_time: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartAuction {
    pub auction_id: AuctionId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceBid {
    pub auction_id: AuctionId,
    pub bidder_id: UserId,
    pub amount: Money,
    /// Proxy bidding (PlaceBid v2): the most the bidder will pay. When someone
    /// outbids them, the auction bids for them in minimum increments up to
    /// this. `None` (every v1 command): a plain bid of `amount`.
    #[serde(default)]
    pub max_amount: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAuction {
    pub auction_id: AuctionId,
    pub reason: String,
}

/// Sent by the auction clock (the processor's punctuator) or an operator once the end time passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndAuction {
    pub auction_id: AuctionId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuctionCommand {
    Create(CreateAuction),
    Start(StartAuction),
    PlaceBid(PlaceBid),
    Cancel(CancelAuction),
    End(EndAuction),
}

impl AuctionCommand {
    pub fn auction_id(&self) -> &AuctionId {
        match self {
            Self::Create(c) => &c.auction_id,
            Self::Start(c) => &c.auction_id,
            Self::PlaceBid(c) => &c.auction_id,
            Self::Cancel(c) => &c.auction_id,
            Self::End(c) => &c.auction_id,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Create(_) => "CreateAuction",
            Self::Start(_) => "StartAuction",
            Self::PlaceBid(_) => "PlaceBid",
            Self::Cancel(_) => "CancelAuction",
            Self::End(_) => "EndAuction",
        }
    }
}
