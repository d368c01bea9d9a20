//! Who may do what to an auction. The acting user travels with every command
//! (set from the bearer token by the command API, required from any other
//! producer), and the aggregate, which alone knows the seller, decides:
//! only the seller creates (as themself), starts or cancels; a bid is placed by
//! the bidder it names; the seller never bids (`decide` says so); the auction
//! clock, or an operator, may ask an auction to end, which succeeds only once
//! its end time has passed, whoever asks.

use super::state::Auction;
use super::{AuctionCommand, Rejection};
use crate::UserId;

/// The actor of the EndAuction commands the processor's own clock decides.
pub const CLOCK_ACTOR: &str = "gavel:auction-clock";

impl AuctionCommand {
    /// The user a command names as the one acting (the seller of a new
    /// auction, the bidder of a bid), which its actor must be.
    pub fn named_user(&self) -> Option<&UserId> {
        match self {
            Self::Create(c) => Some(&c.seller_id),
            Self::PlaceBid(c) => Some(&c.bidder_id),
            Self::Start(_) | Self::Cancel(_) | Self::End(_) => None,
        }
    }
}

pub fn authorize(
    state: Option<&Auction>,
    command: &AuctionCommand,
    actor: &UserId,
) -> Result<(), Rejection> {
    if actor.as_str().trim().is_empty() {
        return Err(Rejection::MissingActor);
    }
    match command {
        AuctionCommand::Create(c) if &c.seller_id != actor => {
            Err(Rejection::ActorMismatch { role: "seller_id" })
        }
        AuctionCommand::PlaceBid(c) if &c.bidder_id != actor => {
            Err(Rejection::ActorMismatch { role: "bidder_id" })
        }
        AuctionCommand::Start(_) | AuctionCommand::Cancel(_) => match state {
            Some(auction) if &auction.seller_id != actor => Err(Rejection::NotSeller),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}
