//! `decide`: the auction rules. Given the current state, a command and the time
//! the command was issued, either the events it causes or why it is refused.

use super::authorize::authorize;
use super::limits;
use super::proxy;
use super::state::Auction;
use super::{AuctionCommand, AuctionEvent, AuctionStatus, CancelAuction, CreateAuction, Rejection};
use crate::{Timestamp, UserId};

/// Optimistic concurrency: a command that names the version it was based on is
/// refused when the aggregate has moved on. A missing auction has version 0.
pub fn check_version(state: Option<&Auction>, expected: Option<u64>) -> Result<(), Rejection> {
    let actual = state.map_or(0, |a| a.version);
    match expected {
        Some(expected) if expected != actual => {
            Err(Rejection::VersionConflict { expected, actual })
        }
        _ => Ok(()),
    }
}

/// A command as the aggregate receives it: who acts (`authorize`), on which
/// version (`check_version`), then the rules (`decide`).
pub fn decide_versioned(
    state: Option<&Auction>,
    command: &AuctionCommand,
    actor: &UserId,
    expected_version: Option<u64>,
    now: Timestamp,
) -> Result<Vec<AuctionEvent>, Rejection> {
    authorize(state, command, actor)?;
    check_version(state, expected_version)?;
    decide(state, command, now)
}

pub fn decide(
    state: Option<&Auction>,
    command: &AuctionCommand,
    now: Timestamp,
) -> Result<Vec<AuctionEvent>, Rejection> {
    limits::check(command, now)?;
    match (state, command) {
        (None, AuctionCommand::Create(create)) => create_auction(create, now),
        (Some(_), AuctionCommand::Create(create)) => {
            Err(Rejection::AuctionAlreadyExists(create.auction_id.clone()))
        }
        (None, other) => Err(Rejection::AuctionNotFound(other.auction_id().clone())),
        (Some(auction), AuctionCommand::Start(_)) => start(auction, now),
        (Some(auction), AuctionCommand::PlaceBid(bid)) => proxy::place_bid(auction, bid, now),
        (Some(auction), AuctionCommand::Cancel(cancel)) => cancel_auction(auction, cancel),
        (Some(auction), AuctionCommand::End(_)) => end(auction, now),
    }
}

fn create_auction(c: &CreateAuction, now: Timestamp) -> Result<Vec<AuctionEvent>, Rejection> {
    if c.min_increment.minor() <= 0 {
        return Err(Rejection::InvalidAuction(
            "minimum increment must be positive".into(),
        ));
    }
    c.starting_price.same_currency(c.min_increment)?;
    if let Some(reserve) = c.reserve_price {
        c.starting_price.same_currency(reserve)?;
    }
    if c.end_time <= now {
        return Err(Rejection::EndTimePassed {
            end_time: c.end_time,
            now,
        });
    }
    Ok(vec![AuctionEvent::Created {
        seller_id: c.seller_id.clone(),
        title: c.title.clone(),
        starting_price: c.starting_price,
        reserve_price: c.reserve_price,
        min_increment: c.min_increment,
        end_time: c.end_time,
    }])
}

fn start(auction: &Auction, now: Timestamp) -> Result<Vec<AuctionEvent>, Rejection> {
    require_status(auction, AuctionStatus::Draft)?;
    if now >= auction.end_time {
        return Err(Rejection::EndTimePassed {
            end_time: auction.end_time,
            now,
        });
    }
    Ok(vec![AuctionEvent::Started { started_at: now }])
}

fn cancel_auction(
    auction: &Auction,
    cancel: &CancelAuction,
) -> Result<Vec<AuctionEvent>, Rejection> {
    if !matches!(auction.status, AuctionStatus::Draft | AuctionStatus::Active) {
        return Err(Rejection::InvalidStatus {
            expected: "DRAFT or ACTIVE",
            actual: auction.status.as_str(),
        });
    }
    if auction.bid_count > 0 {
        return Err(Rejection::HasBids);
    }
    Ok(vec![AuctionEvent::Cancelled {
        reason: cancel.reason.clone(),
    }])
}

fn end(auction: &Auction, now: Timestamp) -> Result<Vec<AuctionEvent>, Rejection> {
    require_status(auction, AuctionStatus::Active)?;
    if now < auction.end_time {
        return Err(Rejection::NotYetEnded {
            end_time: auction.end_time,
            now,
        });
    }
    let reserve_met = auction.reserve_met();
    Ok(vec![AuctionEvent::Ended {
        winner_id: if reserve_met {
            auction.leading_bidder.clone()
        } else {
            None
        },
        final_price: auction.current_price,
        reserve_met,
        ended_at: now,
    }])
}

pub(super) fn require_status(auction: &Auction, expected: AuctionStatus) -> Result<(), Rejection> {
    if auction.status == expected {
        Ok(())
    } else {
        Err(Rejection::InvalidStatus {
            expected: expected.as_str(),
            actual: auction.status.as_str(),
        })
    }
}
