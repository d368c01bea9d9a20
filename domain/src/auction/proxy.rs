//! Placing a bid, with proxy bidding (PlaceBid v2): a bidder may give a
//! maximum, and when someone outbids them the auction bids for them in
//! minimum increments up to it, as auction sites do. The highest maximum
//! leads; it pays at most one increment above the runner-up's maximum and
//! never more than its own; between equal maximums the earlier one leads.
//! A maximum at or above the reserve bids up to the reserve at once (so a
//! sole bidder willing to pay it wins), and the leader bidding again keeps
//! the higher of their two maximums.

use super::decide::require_status;
use super::state::Auction;
use super::{AuctionEvent, AuctionStatus, PlaceBid, Rejection};
use crate::{Money, MoneyError, Timestamp, UserId};

pub(super) fn place_bid(
    auction: &Auction,
    bid: &PlaceBid,
    now: Timestamp,
) -> Result<Vec<AuctionEvent>, Rejection> {
    check_bid(auction, bid, now)?;
    let standing = standing_max(auction, bid);
    let own_max = standing.unwrap_or(bid.amount);
    let events = match rival_max(auction, &bid.bidder_id) {
        None => {
            let price = up_to_reserve(auction, bid.amount, own_max);
            vec![placed(auction.current_price, bid, price, standing, now)]
        }
        Some((rival, rival_max)) if own_max.minor() > rival_max.minor() => {
            // The rival's proxy goes to its maximum, and this bidder takes the
            // lead one increment above it (capped at their own maximum).
            let step_above = rival_max
                .checked_add(auction.min_increment)
                .unwrap_or(own_max);
            let price = higher(lower(own_max, step_above), bid.amount);
            let price = up_to_reserve(auction, price, own_max);
            vec![
                automatic(auction.current_price, rival, rival_max, rival_max, now),
                placed(rival_max, bid, price, standing, now),
            ]
        }
        Some((rival, rival_max)) => {
            // This bidder's own proxy goes to its maximum, and the rival's
            // answers one increment above it (capped at the rival's maximum;
            // at an equal maximum the earlier bidder keeps the lead).
            let answer = own_max
                .checked_add(auction.min_increment)
                .map_or(rival_max, |above| lower(above, rival_max));
            let answer = up_to_reserve(auction, answer, rival_max);
            vec![
                placed(auction.current_price, bid, own_max, standing, now),
                automatic(own_max, rival, answer, rival_max, now),
            ]
        }
    };
    Ok(events)
}

/// The bidder's maximum after this bid: the one it gives, or for the leader
/// bidding again the higher of that and their unspent one (a plain re-bid
/// must not throw away a standing maximum).
fn standing_max(auction: &Auction, bid: &PlaceBid) -> Option<Money> {
    let own = auction
        .leading_max
        .filter(|_| auction.leading_bidder.as_ref() == Some(&bid.bidder_id))
        .filter(|max| max.minor() > bid.amount.minor());
    match (bid.max_amount, own) {
        (Some(new), Some(old)) => Some(higher(new, old)),
        (new, old) => new.or(old),
    }
}

/// `price`, raised to the reserve when the bidder's maximum covers it: a
/// proxy bids what it takes to win, and below the reserve nobody wins.
fn up_to_reserve(auction: &Auction, price: Money, max: Money) -> Money {
    match auction.reserve_price {
        Some(reserve) if price.minor() < reserve.minor() && max.minor() >= reserve.minor() => {
            reserve
        }
        _ => price,
    }
}

/// The rules every bid meets, proxy or not.
fn check_bid(auction: &Auction, bid: &PlaceBid, now: Timestamp) -> Result<(), Rejection> {
    require_status(auction, AuctionStatus::Active)?;
    if now >= auction.end_time {
        return Err(Rejection::EndTimePassed {
            end_time: auction.end_time,
            now,
        });
    }
    if bid.bidder_id == auction.seller_id {
        return Err(Rejection::SellerCannotBid);
    }
    auction.current_price.same_currency(bid.amount)?;
    // (A maximum below the amount is refused by `limits`, before any state.)
    if let Some(max) = bid.max_amount {
        auction.current_price.same_currency(max)?;
    }
    // No minimum past i64: an overflow can neither tie nor win.
    let minimum = auction.minimum_bid().ok_or(MoneyError::Overflow)?;
    if bid.amount.minor() < minimum.minor() {
        return Err(Rejection::BidTooLow {
            amount: bid.amount,
            minimum,
        });
    }
    Ok(())
}

/// The leader's proxy, when another bidder leads with a maximum that has not
/// been bid yet: only then does a new bid meet an automatic answer.
fn rival_max<'a>(auction: &'a Auction, bidder: &UserId) -> Option<(&'a UserId, Money)> {
    let leader = auction.leading_bidder.as_ref()?;
    let max = auction.leading_max?;
    (leader != bidder && max.minor() > auction.current_price.minor()).then_some((leader, max))
}

/// The bidder's own bid at `price` (above what they typed only by their
/// proxy), leaving `max` as their maximum.
fn placed(
    previous: Money,
    bid: &PlaceBid,
    price: Money,
    max: Option<Money>,
    now: Timestamp,
) -> AuctionEvent {
    AuctionEvent::BidPlaced {
        bidder_id: bid.bidder_id.clone(),
        amount: price,
        previous_price: previous,
        placed_at: now,
        max_amount: max,
        automatic: price.minor() != bid.amount.minor(),
    }
}

/// A bid the auction places for `bidder` up to their standing maximum.
fn automatic(
    previous: Money,
    bidder: &UserId,
    price: Money,
    max: Money,
    now: Timestamp,
) -> AuctionEvent {
    AuctionEvent::BidPlaced {
        bidder_id: bidder.clone(),
        amount: price,
        previous_price: previous,
        placed_at: now,
        max_amount: Some(max),
        automatic: true,
    }
}

fn lower(a: Money, b: Money) -> Money {
    if a.minor() <= b.minor() {
        a
    } else {
        b
    }
}

fn higher(a: Money, b: Money) -> Money {
    if a.minor() >= b.minor() {
        a
    } else {
        b
    }
}
