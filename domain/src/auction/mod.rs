//! The auction aggregate: DRAFT → ACTIVE → ENDED, or → CANCELLED while it has no bids.
//!
//! `decide(state, command, now)` returns the events a command causes or a typed
//! `Rejection`; `evolve(state, event)` applies one event. Both are pure.

mod authorize;
mod command;
mod decide;
mod event;
pub mod limits;
mod proxy;
mod rejection;
mod state;
pub mod upcast;

pub use authorize::{authorize, CLOCK_ACTOR};
pub use command::{
    AuctionCommand, CancelAuction, CreateAuction, EndAuction, PlaceBid, StartAuction,
};
pub use decide::{check_version, decide, decide_versioned};
pub use event::{AuctionEvent, AuctionWon};
pub use rejection::Rejection;
pub use state::{evolve, replay, Auction, AuctionStatus};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_proxy;
