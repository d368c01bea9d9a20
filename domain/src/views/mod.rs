//! Pure reducers from auction events to read-model rows. The sinks load a row,
//! reduce the events of a batch into it and upsert the result.

mod auction_details;

pub use auction_details::{AuctionDetails, EventMeta};
