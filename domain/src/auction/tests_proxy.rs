//! Proxy bidding (PlaceBid v2), given/when/then, and the properties every
//! sequence of proxy bids keeps: the highest maximum leads, pays at most one
//! increment above the runner-up's maximum and never above its own.

use super::*;
use crate::{AuctionId, Currency, Money, Timestamp, UserId};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;
const INCREMENT: i64 = 500;
const START: i64 = 10_000;

fn id() -> AuctionId {
    AuctionId::new("a-1")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_millis(T0)
}

fn running_auction() -> Option<Auction> {
    running_auction_with_reserve(None)
}

fn running_auction_with_reserve(reserve: Option<i64>) -> Option<Auction> {
    let create = AuctionCommand::Create(CreateAuction {
        auction_id: id(),
        seller_id: UserId::new("seller"),
        title: "Blue Period study".into(),
        starting_price: eur(START),
        reserve_price: reserve.map(eur),
        min_increment: eur(INCREMENT),
        end_time: Timestamp::from_millis(T0 + 60_000),
    });
    let start = AuctionCommand::Start(StartAuction { auction_id: id() });
    [create, start].iter().fold(None, |state, command| {
        let events = decide(state.as_ref(), command, now()).expect("accepted");
        events.iter().fold(state, |s, e| evolve(s, &id(), e))
    })
}

fn proxy_bid(bidder: &str, amount: i64, max: Option<i64>) -> AuctionCommand {
    AuctionCommand::PlaceBid(PlaceBid {
        auction_id: id(),
        bidder_id: UserId::new(bidder),
        amount: eur(amount),
        max_amount: max.map(eur),
    })
}

/// Applies `command` to `state`: the events and the state after them.
fn when(state: Option<Auction>, command: AuctionCommand) -> (Vec<AuctionEvent>, Option<Auction>) {
    let events = decide(state.as_ref(), &command, now()).expect("the bid is accepted");
    let after = events.iter().fold(state, |s, e| evolve(s, &id(), e));
    (events, after)
}

/// Given: ann bid the starting price with maximum `max`, and leads.
fn given_ann_leads_with_max(max: i64) -> Option<Auction> {
    when(running_auction(), proxy_bid("ann", START, Some(max))).1
}

/// (bidder, amount, automatic) of each event.
fn bids(events: &[AuctionEvent]) -> Vec<(String, i64, bool)> {
    events
        .iter()
        .map(|event| match event {
            AuctionEvent::BidPlaced {
                bidder_id,
                amount,
                automatic,
                ..
            } => (bidder_id.to_string(), amount.minor(), *automatic),
            other => panic!("not a bid: {other:?}"),
        })
        .collect()
}

#[test]
fn a_first_proxy_bid_costs_only_its_amount() {
    let (events, state) = when(running_auction(), proxy_bid("ann", START, Some(50_000)));
    assert_eq!(bids(&events), [("ann".into(), START, false)]);
    let state = state.unwrap();
    assert_eq!(state.current_price, eur(START));
    assert_eq!(state.leading_max, Some(eur(50_000)));
}

#[test]
fn a_lower_challenger_is_answered_one_increment_above_their_bid() {
    let state = given_ann_leads_with_max(50_000);
    let (events, state) = when(state, proxy_bid("bob", 12_000, None));
    assert_eq!(
        bids(&events),
        [("bob".into(), 12_000, false), ("ann".into(), 12_500, true)]
    );
    let state = state.unwrap();
    assert_eq!(state.leading_bidder, Some(UserId::new("ann")));
    assert_eq!(state.leading_max, Some(eur(50_000)));
}

#[test]
fn a_challenger_with_a_lower_maximum_bids_it_all_and_is_answered_above_it() {
    let state = given_ann_leads_with_max(50_000);
    let (events, _) = when(state, proxy_bid("bob", 12_000, Some(30_000)));
    assert_eq!(
        bids(&events),
        [("bob".into(), 30_000, true), ("ann".into(), 30_500, true)]
    );
}

#[test]
fn the_answer_never_exceeds_the_leaders_maximum_and_an_equal_maximum_keeps_the_earlier_bidder() {
    let state = given_ann_leads_with_max(30_200);
    let (events, _) = when(state.clone(), proxy_bid("bob", 12_000, Some(30_000)));
    assert_eq!(bids(&events)[1], ("ann".into(), 30_200, true));
    let (events, after) = when(state, proxy_bid("bob", 12_000, Some(30_200)));
    assert_eq!(
        bids(&events),
        [("bob".into(), 30_200, true), ("ann".into(), 30_200, true)]
    );
    assert_eq!(after.unwrap().leading_bidder, Some(UserId::new("ann")));
}

#[test]
fn a_higher_maximum_takes_the_lead_one_increment_above_the_old_one() {
    let state = given_ann_leads_with_max(30_000);
    let (events, state) = when(state, proxy_bid("bob", 12_000, Some(80_000)));
    assert_eq!(
        bids(&events),
        [("ann".into(), 30_000, true), ("bob".into(), 30_500, true)]
    );
    let state = state.unwrap();
    assert_eq!(state.leading_bidder, Some(UserId::new("bob")));
    assert_eq!(state.leading_max, Some(eur(80_000)));
    assert_eq!(state.bid_count, 3);
}

#[test]
fn a_new_maximum_just_above_the_old_one_pays_only_its_maximum() {
    let state = given_ann_leads_with_max(30_000);
    let (events, _) = when(state, proxy_bid("bob", 12_000, Some(30_100)));
    assert_eq!(bids(&events)[1], ("bob".into(), 30_100, true));
}

#[test]
fn a_plain_bid_above_every_maximum_stands_at_its_amount() {
    let state = given_ann_leads_with_max(30_000);
    let (events, _) = when(state, proxy_bid("bob", 90_000, None));
    assert_eq!(
        bids(&events),
        [("ann".into(), 30_000, true), ("bob".into(), 90_000, false)]
    );
}

#[test]
fn a_spent_maximum_is_not_answered_again() {
    let state = given_ann_leads_with_max(12_000);
    let (_, state) = when(state, proxy_bid("bob", 11_000, None));
    let (events, state) = when(state, proxy_bid("bob", 12_000, None));
    // ann answers at her maximum, and keeps the lead on the tie.
    assert_eq!(bids(&events)[1], ("ann".into(), 12_000, true));
    let (events, _) = when(state, proxy_bid("bob", 12_500, None));
    assert_eq!(bids(&events), [("bob".into(), 12_500, false)]);
}

#[test]
fn a_plain_re_bid_by_the_leader_keeps_their_standing_maximum() {
    let state = given_ann_leads_with_max(30_000);
    let (events, state) = when(state, proxy_bid("ann", 10_500, None));
    assert_eq!(bids(&events), [("ann".into(), 10_500, false)]);
    assert_eq!(state.as_ref().unwrap().leading_max, Some(eur(30_000)));
    // ... and it still answers a challenger.
    let (events, _) = when(state, proxy_bid("bob", 11_000, None));
    assert_eq!(bids(&events)[1], ("ann".into(), 11_500, true));
}

#[test]
fn a_maximum_that_covers_the_reserve_bids_up_to_it_at_once() {
    let (events, state) = when(
        running_auction_with_reserve(Some(25_000)),
        proxy_bid("ann", START, Some(30_000)),
    );
    assert_eq!(bids(&events), [("ann".into(), 25_000, true)]);
    assert!(state.unwrap().reserve_met());
    // A maximum below the reserve bids only its amount.
    let (events, _) = when(
        running_auction_with_reserve(Some(25_000)),
        proxy_bid("ann", START, Some(20_000)),
    );
    assert_eq!(bids(&events), [("ann".into(), START, false)]);
}

#[test]
fn the_leader_raising_their_own_bid_meets_no_proxy() {
    let state = given_ann_leads_with_max(30_000);
    let (events, state) = when(state, proxy_bid("ann", 10_500, Some(40_000)));
    assert_eq!(bids(&events), [("ann".into(), 10_500, false)]);
    assert_eq!(state.unwrap().leading_max, Some(eur(40_000)));
}

#[test]
fn a_maximum_below_the_amount_or_in_another_currency_is_refused() {
    let state = running_auction();
    let rejection = decide(
        state.as_ref(),
        &proxy_bid("ann", 20_000, Some(15_000)),
        now(),
    )
    .unwrap_err();
    assert_eq!(rejection.code(), "INVALID_FIELD");
    assert!(rejection.to_string().contains("max_amount"), "{rejection}");
    let mut usd = proxy_bid("ann", 20_000, None);
    if let AuctionCommand::PlaceBid(bid) = &mut usd {
        bid.max_amount = Some(Money::new(30_000, Currency::parse("USD").unwrap()).unwrap());
    }
    assert_eq!(
        decide(state.as_ref(), &usd, now()).unwrap_err().code(),
        "INVALID_MONEY"
    );
}

#[test]
fn a_maximum_past_the_amount_bound_is_refused() {
    let rejection = decide(
        running_auction().as_ref(),
        &proxy_bid("ann", START, Some(i64::MAX)),
        now(),
    )
    .unwrap_err();
    assert!(rejection.to_string().contains("max_amount"), "{rejection}");
}

#[test]
fn a_maximum_near_the_top_of_i64_neither_overflows_nor_panics() {
    let top = limits::MAX_AMOUNT_MINOR;
    let state = given_ann_leads_with_max(top);
    let (events, _) = when(state, proxy_bid("bob", 10_500, Some(top)));
    assert_eq!(
        bids(&events),
        [("bob".into(), top, true), ("ann".into(), top, true)]
    );
}

proptest! {
    /// Bidders each bid the minimum with a maximum of their own (never while
    /// they lead). Whatever the order: the leader holds the highest maximum
    /// (the earlier one on a tie), pays at most one increment above the best
    /// rival maximum and never more than their own, and the price never falls.
    #[test]
    fn the_highest_maximum_wins_and_pays_at_most_one_increment_above_the_runner_up(
        steps in proptest::collection::vec((0usize..4, 0i64..40_000), 1..30),
    ) {
        let mut state = running_auction();
        let mut maxima: std::collections::HashMap<String, i64> = Default::default();
        let mut price = START;
        for (who, headroom) in steps {
            let bidder = format!("bidder-{who}");
            let auction = state.as_ref().unwrap();
            if auction.leading_bidder.as_ref().map(UserId::as_str) == Some(bidder.as_str()) {
                continue;
            }
            let amount = auction.minimum_bid().unwrap().minor();
            let max = amount + headroom;
            let (events, after) = when(state, proxy_bid(&bidder, amount, Some(max)));
            for event in &events {
                let AuctionEvent::BidPlaced { amount, previous_price, .. } = event else {
                    panic!("not a bid: {event:?}");
                };
                prop_assert!(amount.minor() >= previous_price.minor());
            }
            maxima.insert(bidder, max);
            state = after;
            let now_price = state.as_ref().unwrap().current_price.minor();
            prop_assert!(now_price >= price, "the price fell from {price} to {now_price}");
            price = now_price;
        }
        let auction = state.unwrap();
        if let Some(winner) = &auction.leading_bidder {
            let own = maxima[winner.as_str()];
            let best_rival = maxima
                .iter()
                .filter(|(user, _)| user.as_str() != winner.as_str())
                .map(|(_, max)| *max)
                .max();
            prop_assert!(auction.current_price.minor() <= own, "pays above own maximum");
            if let Some(rival) = best_rival {
                prop_assert!(own >= rival, "a lower maximum ({own}) leads over {rival}");
                prop_assert!(auction.current_price.minor() <= rival + INCREMENT);
                prop_assert!(auction.current_price.minor() >= rival);
            }
        }
        // Replaying the emitted history gives the same state (evolve is total).
        prop_assert_eq!(auction.version as usize, 2 + auction.bid_count as usize);
    }
}
