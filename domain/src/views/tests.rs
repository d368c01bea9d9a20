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
        max_amount: None,
        automatic: false,
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

/// The state after `given`, applied in order.
fn given(events: &[AuctionEvent]) -> Option<AuctionProjection> {
    events.iter().enumerate().fold(None, |state, (i, event)| {
        project(state, &meta(i as u64 + 1), event).0
    })
}

/// Applies `given` in order, then returns the changes of `when`.
fn given_when(events: &[AuctionEvent], when: AuctionEvent) -> Option<ViewChanges> {
    project(given(events), &meta(events.len() as u64 + 1), &when).1
}

fn names(bidders: &[BidderSummary]) -> Vec<&str> {
    bidders.iter().map(|b| b.user_id.as_str()).collect()
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
            ("bob".into(), UserBidStatus::Won),
            ("ann".into(), UserBidStatus::Lost)
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
    let state = given(&[created(), started()]);
    let (after, changes) = project(state.clone(), &meta(2), &started());
    assert_eq!((after, changes), (state, None));
}

#[test]
fn an_event_of_an_auction_never_created_changes_nothing() {
    assert_eq!(project(None, &meta(3), &bid("bob", 1_000)), (None, None));
}

/// `count` bidders, the n-th bidding 1_000 + 100 n.
fn bidding_war(count: usize) -> Vec<AuctionEvent> {
    let mut events = vec![created(), started()];
    events.extend((0..count).map(|n| bid(&format!("u{n:02}"), 1_000 + 100 * n as i64)));
    events
}

#[test]
fn a_running_auction_lists_only_its_top_bidders_highest_first() {
    let changes = given_when(&bidding_war(14), bid("u03", 9_000)).unwrap();
    let top = &changes.details.bidders;
    assert_eq!(top.len(), TOP_BIDDERS);
    assert_eq!(names(top)[..3], ["u03", "u13", "u12"]);
    assert!(
        !names(top).contains(&"u04"),
        "u04 is 11th: {:?}",
        names(top)
    );
    assert_eq!(changes.details.bidder_count, 14);
}

#[test]
fn closing_settles_every_bidder_and_still_lists_only_the_top() {
    let changes = given_when(&bidding_war(14), ended(Some("u13"), 2_300)).unwrap();
    let top = &changes.details.bidders;
    assert_eq!((top.len(), changes.details.bidder_count), (TOP_BIDDERS, 14));
    assert_eq!(names(top)[0], "u13");
    assert_eq!(changes.user_bids.len(), 14);
    let won: Vec<&str> = changes
        .user_bids
        .iter()
        .filter(|row| row.status == UserBidStatus::Won)
        .map(|row| row.user_id.as_str())
        .collect();
    assert_eq!(won, ["u13"]);
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
    // More bidders than the details record lists while running.
    let bids = prop::collection::vec((0..TOP_BIDDERS + 4, 1..5i64), 0..40);
    (bids, 0..3u8).prop_map(|(bids, close)| {
        let mut price = 1_000;
        let mut leader = None;
        let mut events = vec![created(), started()];
        for (who, step) in bids {
            price += step * 100;
            let name = format!("u{who:02}");
            events.push(bid(&name, price));
            leader = Some(name);
        }
        match close {
            0 => events.push(ended(leader.as_deref(), price)),
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
        let mut state: Option<AuctionProjection> = None;
        let mut listed: Option<AuctionListItem> = None;
        let mut rows: HashMap<String, UserBid> = HashMap::new();
        for (i, event) in events.iter().enumerate() {
            let (after, changes) = project(state, &meta(i as u64 + 1), event);
            let changes = changes.unwrap();
            state = after;
            match changes.list {
                ListChange::Upsert(item) => listed = Some(item),
                ListChange::Delete { .. } => listed = None,
                ListChange::Unchanged => {}
            }
            for row in changes.user_bids {
                rows.insert(row.key(), row);
            }
            let now = state.as_ref().unwrap();
            // The top list kept by promotion is the top of a full sort.
            let mut sorted = now.bidders.highest_first();
            sorted.truncate(TOP_BIDDERS);
            prop_assert_eq!(&now.details.bidders, &sorted);
            prop_assert_eq!(changes.details, now.details.clone());
        }
        let last = state.unwrap();
        prop_assert_eq!(listed, AuctionListItem::of(&last.details));
        prop_assert_eq!(rows.len(), last.bidders.len());
        for bidder in last.bidders.highest_first() {
            let derived = UserBid::of(&last.details, &bidder);
            prop_assert_eq!(derived.summary(), bidder);
            let mut stored = rows[&derived.key()].clone();
            // Rows not touched by the last events keep their older version.
            stored.version = derived.version;
            prop_assert_eq!(stored, derived);
        }
    }
}
