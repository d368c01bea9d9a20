//! Pure reducers from auction events to read-model rows. The projector applies
//! events to an auction's state with `project` and publishes what changed in
//! each view; the sinks upsert those rows.

mod auction_details;
mod auction_list;
mod bidders;
mod projection;
mod user_bids;

#[cfg(test)]
mod tests;

pub use auction_details::{AuctionDetails, BidderSummary, EventMeta, TOP_BIDDERS};
pub use auction_list::AuctionListItem;
pub use bidders::Bidders;
pub use projection::{project, AuctionProjection, ListChange, ViewChanges};
pub use user_bids::{UserBid, UserBidStatus};
