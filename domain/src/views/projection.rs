//! The projector's pure step: one event applied to an auction's state gives
//! the changes of all three views. The state is the details row plus every
//! bidder's summary; the list row and the user rows are derived from it, so the
//! views can never disagree.

use super::bidders::{promote, Bidders};
use super::{AuctionDetails, AuctionListItem, EventMeta, UserBid};
use crate::auction::{AuctionEvent, AuctionStatus};
use crate::UserId;

/// What the projector keeps of one auction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuctionProjection {
    pub details: AuctionDetails,
    pub bidders: Bidders,
}

impl AuctionProjection {
    pub fn is_running(&self) -> bool {
        self.details.is_running()
    }

    fn apply(&mut self, meta: &EventMeta, event: &AuctionEvent) {
        self.details.apply(meta, event);
        match event {
            AuctionEvent::BidPlaced {
                bidder_id,
                amount,
                placed_at,
                ..
            } => {
                let summary = self.bidders.record(bidder_id, *amount, *placed_at);
                promote(&mut self.details.bidders, summary);
                self.details.bidder_count = self.bidders.len() as u32;
            }
            AuctionEvent::Created { .. }
            | AuctionEvent::Started { .. }
            | AuctionEvent::Ended { .. }
            | AuctionEvent::Cancelled { .. } => {}
        }
    }
}

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

/// Applies `event` to `state` and returns the state after it with what it
/// changed in the views; no changes for a redelivered event (version not
/// newer) or an event of an auction never created. The state is moved in and
/// out rather than cloned: it holds every bidder of a hot auction.
pub fn project(
    state: Option<AuctionProjection>,
    meta: &EventMeta,
    event: &AuctionEvent,
) -> (Option<AuctionProjection>, Option<ViewChanges>) {
    let (was_active, displaced, state) = match state {
        Some(state) if meta.version <= state.details.version => return (Some(state), None),
        Some(mut state) => {
            let was_active = state.details.status == AuctionStatus::Active;
            let leader = state.details.leading_bidder.clone();
            state.apply(meta, event);
            (was_active, leader, state)
        }
        None => match AuctionDetails::from_creation(meta, event) {
            Some(details) => (
                false,
                None,
                AuctionProjection {
                    details,
                    bidders: Bidders::default(),
                },
            ),
            None => return (None, None),
        },
    };
    let changes = ViewChanges {
        list: list_change(was_active, &state.details),
        user_bids: touched_users(displaced, &state, event)
            .iter()
            .filter_map(|user| state.bidders.get(user))
            .map(|summary| UserBid::of(&state.details, summary))
            .collect(),
        details: state.details.clone(),
    };
    (Some(state), Some(changes))
}

fn list_change(was_active: bool, after: &AuctionDetails) -> ListChange {
    match AuctionListItem::of(after) {
        Some(item) => ListChange::Upsert(item),
        None if was_active => ListChange::Delete {
            version: after.version,
        },
        None => ListChange::Unchanged,
    }
}

/// The users whose row the event changes: the bidder and the leader they
/// displaced on a bid; everyone who bid when the auction closes.
fn touched_users(
    previous_leader: Option<UserId>,
    after: &AuctionProjection,
    event: &AuctionEvent,
) -> Vec<UserId> {
    match event {
        AuctionEvent::BidPlaced { bidder_id, .. } => {
            let displaced = previous_leader.filter(|leader| leader != bidder_id);
            std::iter::once(bidder_id.clone())
                .chain(displaced)
                .collect()
        }
        AuctionEvent::Ended { .. } | AuctionEvent::Cancelled { .. } => after
            .bidders
            .highest_first()
            .into_iter()
            .map(|b| b.user_id)
            .collect(),
        AuctionEvent::Created { .. } | AuctionEvent::Started { .. } => Vec::new(),
    }
}
