//! Given/when/then tests of the projection: which rows each event changes, and
//! a property that the incremental changes add up to the views derived from the
//! final state.

use super::*;
use crate::auction::AuctionEvent;
use crate::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use proptest::prelude::*;
use std::collections::HashMap;

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
}

fn user(name: &str) -> UserId {
    UserId::new(name)
}

fn created() -> AuctionEvent {
    AuctionEvent::Created {
        seller_id: user("seller"),
        title: "Nocturne".into(),
        starting_price: eur(1_000),
        reserve_price: None,
        min_increment: eur(100),
        end_time: Timestamp::from_millis(90_000),
    }
}

fn started() -> AuctionEvent {
    AuctionEvent::Started {
        started_at: Timestamp::from_millis(2),
    }
}

fn bid(bidder: &str, minor: i64) -> AuctionEvent {
    AuctionEvent::BidPlaced {
        bidder_id: user(bidder),
        amount: eur(minor),
        previous_price: eur(0),
        placed_at: Timestamp::from_millis(minor),
    }
}

fn ended(winner: Option<&str>, price: i64) -> AuctionEvent {
    AuctionEvent::Ended {
        winner_id: winner.map(user),
        final_price: eur(price),
        reserve_met: winner.is_some(),
        ended_at: Timestamp::from_millis(90_000),
    }
}

fn cancelled() -> AuctionEvent {
    AuctionEvent::Cancelled {
        reason: "withdrawn".into(),
    }
}

/// Applies `given` in order, then returns the changes of `when`.
fn given_when(given: &[AuctionEvent], when: AuctionEvent) -> Option<ViewChanges> {
    let mut state: Option<AuctionDetails> = None;
    for (i, event) in given.iter().enumerate() {
        state = project(state.as_ref(), &meta(i as u64 + 1), event)
            .map(|c| c.details)
            .or(state);
    }
    project(state.as_ref(), &meta(given.len() as u64 + 1), &when)
}

fn meta(version: u64) -> EventMeta {
    EventMeta {
        aggregate_id: AuctionId::new("a-1"),
        tenant_id: TenantId::new("t-1"),
        version,
        occurred_at: Timestamp::from_millis(version as i64),
    }
}

fn standings(changes: &ViewChanges) -> Vec<(String, UserBidStatus)> {
    changes
        .user_bids
        .iter()
        .map(|row| (row.user_id.to_string(), row.status))
        .collect()
}

#[test]
fn a_draft_auction_is_not_listed() {
    let changes = given_when(&[], created()).unwrap();
    assert_eq!(changes.list, ListChange::Unchanged);
    assert!(changes.user_bids.is_empty());
    assert_eq!(changes.details.version, 1);
}

#[test]
fn starting_lists_the_auction() {
    let changes = given_when(&[created()], started()).unwrap();
    let ListChange::Upsert(item) = changes.list else {
        panic!("expected a list row");
    };
    assert_eq!((item.bid_count, item.current_price), (0, eur(1_000)));
}

#[test]
fn a_first_bid_makes_the_bidder_lead() {
    let changes = given_when(&[created(), started()], bid("bob", 1_000)).unwrap();
    assert_eq!(
        standings(&changes),
        [("bob".into(), UserBidStatus::Leading)]
    );
    assert!(matches!(changes.list, ListChange::Upsert(ref i) if i.bid_count == 1));
}

#[test]
fn a_higher_bid_outbids_the_leader_and_touches_only_those_two() {
    let given = [created(), started(), bid("ann", 1_000), bid("bob", 1_100)];
    let changes = given_when(&given, bid("cid", 1_200)).unwrap();
    assert_eq!(
        standings(&changes),
        [
            ("cid".into(), UserBidStatus::Leading),
            ("bob".into(), UserBidStatus::Outbid)
        ]
    );
}

#[test]
fn raising_ones_own_lead_touches_one_row() {
    let given = [created(), started(), bid("bob", 1_000)];
    let changes = given_when(&given, bid("bob", 1_500)).unwrap();
    assert_eq!(changes.user_bids.len(), 1);
    let row = &changes.user_bids[0];
    assert_eq!((row.highest_bid, row.bid_count), (eur(1_500), 2));
}

#[test]
fn ending_delists_and_settles_every_bidder() {
    let given = [created(), started(), bid("ann", 1_000), bid("bob", 1_100)];
    let changes = given_when(&given, ended(Some("bob"), 1_100)).unwrap();
    assert_eq!(changes.list, ListChange::Delete { version: 5 });
    assert_eq!(
        standings(&changes),
        [
            ("ann".into(), UserBidStatus::Lost),
            ("bob".into(), UserBidStatus::Won)
        ]
    );
}

#[test]
fn ending_below_reserve_loses_for_everyone() {
    let given = [created(), started(), bid("ann", 1_000)];
    let changes = given_when(&given, ended(None, 1_000)).unwrap();
    assert_eq!(standings(&changes), [("ann".into(), UserBidStatus::Lost)]);
}

#[test]
fn cancelling_delists_and_marks_bids_cancelled() {
    let given = [created(), started(), bid("ann", 1_000)];
    let changes = given_when(&given, cancelled()).unwrap();
    assert!(matches!(changes.list, ListChange::Delete { .. }));
    assert_eq!(
        standings(&changes),
        [("ann".into(), UserBidStatus::Cancelled)]
    );
}

#[test]
fn cancelling_a_draft_changes_no_list() {
    let changes = given_when(&[created()], cancelled()).unwrap();
    assert_eq!(changes.list, ListChange::Unchanged);
}

#[test]
fn a_redelivered_event_changes_nothing() {
    let first = given_when(&[created()], started()).unwrap();
    assert_eq!(project(Some(&first.details), &meta(2), &started()), None);
}

#[test]
fn the_views_round_trip_through_json() {
    let changes = given_when(&[created(), started()], bid("bob", 1_000)).unwrap();
    let json = serde_json::to_string(&changes.details).unwrap();
    let back: AuctionDetails = serde_json::from_str(&json).unwrap();
    assert_eq!(back, changes.details);
    let json = serde_json::to_string(&changes.user_bids[0]).unwrap();
    assert_eq!(
        serde_json::from_str::<UserBid>(&json).unwrap(),
        changes.user_bids[0]
    );
}

fn history() -> impl Strategy<Value = Vec<AuctionEvent>> {
    let bids = prop::collection::vec((0..5usize, 1..5i64), 0..30);
    (bids, 0..3u8).prop_map(|(bids, close)| {
        let names = ["ann", "bob", "cid", "dee", "eve"];
        let mut price = 1_000;
        let mut leader = None;
        let mut events = vec![created(), started()];
        for (who, step) in bids {
            price += step * 100;
            leader = Some(names[who]);
            events.push(bid(names[who], price));
        }
        match close {
            0 => events.push(ended(leader, price)),
            1 => events.push(cancelled()),
            _ => {}
        }
        events
    })
}

proptest! {
    /// Upserting every change in order gives exactly the rows derived from the
    /// final state: no bidder's row is ever left stale.
    #[test]
    fn incremental_changes_equal_the_views_of_the_final_state(events in history()) {
        let mut state: Option<AuctionDetails> = None;
        let mut listed: Option<AuctionListItem> = None;
        let mut rows: HashMap<String, UserBid> = HashMap::new();
        for (i, event) in events.iter().enumerate() {
            let changes = project(state.as_ref(), &meta(i as u64 + 1), event).unwrap();
            match changes.list {
                ListChange::Upsert(item) => listed = Some(item),
                ListChange::Delete { .. } => listed = None,
                ListChange::Unchanged => {}
            }
            for row in changes.user_bids {
                rows.insert(row.key(), row);
            }
            state = Some(changes.details);
        }
        let last = state.unwrap();
        prop_assert_eq!(listed, AuctionListItem::of(&last));
        prop_assert_eq!(rows.len(), last.bidders.len());
        for bidder in &last.bidders {
            let derived = UserBid::of(&last, &bidder.user_id).unwrap();
            let mut stored = rows[&derived.key()].clone();
            // Rows not touched by the last events keep their older version.
            stored.version = derived.version;
            prop_assert_eq!(stored, derived);
        }
    }
}
