//! The projector's pure step: one event applied to an auction's details gives
//! the changes of all three views. The details are the state; the list row and
//! the user rows are derived from them, so the views can never disagree.

use super::{AuctionDetails, AuctionListItem, EventMeta, UserBid};
use crate::auction::{AuctionEvent, AuctionStatus};
use crate::UserId;

/// What one event changes in the views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChanges {
    pub details: AuctionDetails,
    pub list: ListChange,
    pub user_bids: Vec<UserBid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListChange {
    Unchanged,
    Upsert(AuctionListItem),
    /// The auction left the list; `version` guards the delete against replays.
    Delete {
        version: u64,
    },
}

/// Applies `event` to `before`. `None` when it changes nothing: a redelivered
/// event (version not newer) or an event for an auction never created.
pub fn project(
    before: Option<&AuctionDetails>,
    meta: &EventMeta,
    event: &AuctionEvent,
) -> Option<ViewChanges> {
    let after = AuctionDetails::reduce(before.cloned(), meta, event)?;
    if before.is_some_and(|b| b.version >= after.version) {
        return None;
    }
    let list = list_change(before, &after);
    let user_bids = touched_users(before, &after, event)
        .iter()
        .filter_map(|user| UserBid::of(&after, user))
        .collect();
    Some(ViewChanges {
        details: after,
        list,
        user_bids,
    })
}

fn list_change(before: Option<&AuctionDetails>, after: &AuctionDetails) -> ListChange {
    match AuctionListItem::of(after) {
        Some(item) => ListChange::Upsert(item),
        None if before.is_some_and(|b| b.status == AuctionStatus::Active) => ListChange::Delete {
            version: after.version,
        },
        None => ListChange::Unchanged,
    }
}

/// The users whose row the event changes: the bidder and the leader they
/// displaced on a bid; everyone who bid when the auction closes.
fn touched_users(
    before: Option<&AuctionDetails>,
    after: &AuctionDetails,
    event: &AuctionEvent,
) -> Vec<UserId> {
    match event {
        AuctionEvent::BidPlaced { bidder_id, .. } => {
            let displaced = before
                .and_then(|b| b.leading_bidder.clone())
                .filter(|leader| leader != bidder_id);
            std::iter::once(bidder_id.clone())
                .chain(displaced)
                .collect()
        }
        AuctionEvent::Ended { .. } | AuctionEvent::Cancelled { .. } => {
            after.bidders.iter().map(|b| b.user_id.clone()).collect()
        }
        AuctionEvent::Created { .. } | AuctionEvent::Started { .. } => Vec::new(),
    }
}
