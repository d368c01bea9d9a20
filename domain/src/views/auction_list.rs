//! The AuctionList read model: one small row per active auction, for browsing.
//! An auction enters the list when it starts and leaves it (a delete) when it
//! ends or is cancelled.

use super::AuctionDetails;
use crate::auction::AuctionStatus;
use crate::{AuctionId, Money, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionListItem {
    pub auction_id: AuctionId,
    pub tenant_id: TenantId,
    pub seller_id: UserId,
    pub title: String,
    pub current_price: Money,
    pub bid_count: u32,
    pub end_time: Timestamp,
    pub version: u64,
}

impl AuctionListItem {
    /// The list row of an auction, or `None` when it is not active (not listed).
    pub fn of(details: &AuctionDetails) -> Option<Self> {
        (details.status == AuctionStatus::Active).then(|| Self {
            auction_id: details.auction_id.clone(),
            tenant_id: details.tenant_id.clone(),
            seller_id: details.seller_id.clone(),
            title: details.title.clone(),
            current_price: details.current_price,
            bid_count: details.bid_count,
            end_time: details.end_time,
            version: details.version,
        })
    }
}
