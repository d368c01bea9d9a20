//! Given/when/then tests of every auction rule and every rejection, plus a
//! property test that replaying the emitted events rebuilds the same state.

use super::*;
use crate::{AuctionId, Currency, Money, Timestamp, UserId};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;
const END: i64 = T0 + 60_000;

fn bob() -> UserId {
    UserId::new("bob")
}

fn id() -> AuctionId {
    AuctionId::new("a-1")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
}

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

fn create_with_reserve(reserve: Option<i64>) -> AuctionCommand {
    AuctionCommand::Create(CreateAuction {
        auction_id: id(),
        seller_id: UserId::new("seller"),
        title: "Blue Period study".into(),
        starting_price: eur(10_000),
        reserve_price: reserve.map(eur),
        min_increment: eur(500),
        end_time: Timestamp::from_millis(END),
    })
}

fn create() -> AuctionCommand {
    create_with_reserve(None)
}

fn start() -> AuctionCommand {
    AuctionCommand::Start(StartAuction { auction_id: id() })
}

fn bid(bidder: &str, minor: i64) -> AuctionCommand {
    AuctionCommand::PlaceBid(PlaceBid {
        auction_id: id(),
        bidder_id: UserId::new(bidder),
        amount: eur(minor),

        max_amount: None,
    })
}

fn end() -> AuctionCommand {
    AuctionCommand::End(EndAuction { auction_id: id() })
}

fn cancel() -> AuctionCommand {
    AuctionCommand::Cancel(CancelAuction {
        auction_id: id(),
        reason: "withdrawn".into(),
    })
}

/// Given the commands (all accepted, at `at(0)`), when `command` arrives at `now`.
struct Scenario {
    state: Option<Auction>,
}

fn given(commands: &[AuctionCommand]) -> Scenario {
    let mut state = None;
    for command in commands {
        let events = decide(state.as_ref(), command, at(0)).expect("given commands are accepted");
        for event in &events {
            state = evolve(state, &id(), event);
        }
    }
    Scenario { state }
}

impl Scenario {
    fn when(
        &self,
        command: AuctionCommand,
        now: Timestamp,
    ) -> Result<Vec<AuctionEvent>, Rejection> {
        decide(self.state.as_ref(), &command, now)
    }
}

#[test]
fn creating_an_auction_starts_it_in_draft_at_the_starting_price() {
    let events = given(&[]).when(create(), at(0)).unwrap();
    assert_eq!(events.len(), 1);
    let state = replay(&id(), &events).unwrap();
    assert_eq!(state.status, AuctionStatus::Draft);
    assert_eq!(state.current_price, eur(10_000));
    assert_eq!(state.version, 1);
}

#[test]
fn an_auction_cannot_be_created_twice() {
    let rejection = given(&[create()]).when(create(), at(0)).unwrap_err();
    assert_eq!(rejection, Rejection::AuctionAlreadyExists(id()));
}

#[test]
fn creation_needs_a_title_a_positive_increment_one_currency_and_a_future_end() {
    let mut no_title = create();
    let mut zero_increment = create();
    let mut mixed_currency = create();
    if let AuctionCommand::Create(c) = &mut no_title {
        c.title = "  ".into();
    }
    if let AuctionCommand::Create(c) = &mut zero_increment {
        c.min_increment = eur(0);
    }
    if let AuctionCommand::Create(c) = &mut mixed_currency {
        c.min_increment = Money::new(500, Currency::parse("USD").unwrap()).unwrap();
    }
    let empty = given(&[]);
    assert_eq!(
        empty.when(no_title, at(0)).unwrap_err(),
        Rejection::InvalidField {
            field: "title",
            problem: "must not be empty".into()
        }
    );
    assert_eq!(
        empty.when(zero_increment, at(0)).unwrap_err().code(),
        "INVALID_AUCTION"
    );
    assert_eq!(
        empty.when(mixed_currency, at(0)).unwrap_err().code(),
        "INVALID_MONEY"
    );
    assert_eq!(
        empty.when(create(), at(60_000)).unwrap_err().code(),
        "END_TIME_PASSED"
    );
}

#[test]
fn commands_to_a_missing_auction_are_refused() {
    for command in [start(), bid("bob", 10_000), cancel(), end()] {
        assert_eq!(
            given(&[]).when(command, at(0)).unwrap_err(),
            Rejection::AuctionNotFound(id())
        );
    }
}

#[test]
fn starting_makes_a_draft_active_once_and_only_before_the_end() {
    let scenario = given(&[create()]);
    assert!(matches!(
        scenario.when(start(), at(1)).unwrap()[..],
        [AuctionEvent::Started { .. }]
    ));
    assert_eq!(
        scenario.when(start(), at(60_000)).unwrap_err().code(),
        "END_TIME_PASSED"
    );
    assert_eq!(
        given(&[create(), start()])
            .when(start(), at(1))
            .unwrap_err()
            .code(),
        "INVALID_STATUS"
    );
}

#[test]
fn bids_are_refused_unless_the_auction_is_active() {
    let rejection = given(&[create()])
        .when(bid("bob", 10_000), at(1))
        .unwrap_err();
    assert_eq!(
        rejection,
        Rejection::InvalidStatus {
            expected: "ACTIVE",
            actual: "DRAFT"
        }
    );
}

#[test]
fn the_first_bid_may_equal_the_starting_price() {
    let events = given(&[create(), start()])
        .when(bid("bob", 10_000), at(1))
        .unwrap();
    assert!(
        matches!(&events[..], [AuctionEvent::BidPlaced { previous_price, .. }] if *previous_price == eur(10_000))
    );
}

#[test]
fn the_first_bid_below_the_starting_price_is_too_low() {
    let rejection = given(&[create(), start()])
        .when(bid("bob", 9_999), at(1))
        .unwrap_err();
    assert_eq!(
        rejection,
        Rejection::BidTooLow {
            amount: eur(9_999),
            minimum: eur(10_000)
        }
    );
}

#[test]
fn later_bids_must_beat_the_current_price_by_the_minimum_increment() {
    let scenario = given(&[create(), start(), bid("bob", 10_000)]);
    assert_eq!(
        scenario.when(bid("carol", 10_499), at(1)).unwrap_err(),
        Rejection::BidTooLow {
            amount: eur(10_499),
            minimum: eur(10_500)
        }
    );
    assert!(scenario.when(bid("carol", 10_500), at(1)).is_ok());
}

#[test]
fn the_seller_cannot_bid() {
    let rejection = given(&[create(), start()])
        .when(bid("seller", 20_000), at(1))
        .unwrap_err();
    assert_eq!(rejection, Rejection::SellerCannotBid);
}

#[test]
fn a_bid_in_another_currency_is_refused() {
    let usd_bid = AuctionCommand::PlaceBid(PlaceBid {
        auction_id: id(),
        bidder_id: UserId::new("bob"),
        amount: Money::new(20_000, Currency::parse("USD").unwrap()).unwrap(),

        max_amount: None,
    });
    assert_eq!(
        given(&[create(), start()])
            .when(usd_bid, at(1))
            .unwrap_err()
            .code(),
        "INVALID_MONEY"
    );
}

#[test]
fn bids_at_or_after_the_end_time_are_refused() {
    let rejection = given(&[create(), start()])
        .when(bid("bob", 10_000), at(60_000))
        .unwrap_err();
    assert_eq!(rejection.code(), "END_TIME_PASSED");
}

#[test]
fn an_auction_without_bids_can_be_cancelled_in_draft_or_active() {
    assert!(given(&[create()]).when(cancel(), at(1)).is_ok());
    assert!(given(&[create(), start()]).when(cancel(), at(1)).is_ok());
}

#[test]
fn an_auction_with_bids_cannot_be_cancelled() {
    let rejection = given(&[create(), start(), bid("bob", 10_000)])
        .when(cancel(), at(1))
        .unwrap_err();
    assert_eq!(rejection, Rejection::HasBids);
}

#[test]
fn a_cancelled_auction_takes_no_bids_and_cannot_be_cancelled_again() {
    let scenario = given(&[create(), start(), cancel()]);
    assert_eq!(
        scenario.when(bid("bob", 10_000), at(1)).unwrap_err().code(),
        "INVALID_STATUS"
    );
    assert_eq!(
        scenario.when(cancel(), at(1)).unwrap_err().code(),
        "INVALID_STATUS"
    );
}

#[test]
fn ending_before_the_end_time_is_refused() {
    let rejection = given(&[create(), start()])
        .when(end(), at(59_999))
        .unwrap_err();
    assert_eq!(rejection.code(), "NOT_YET_ENDED");
}

#[test]
fn the_highest_bidder_wins_at_the_end_time() {
    let scenario = given(&[create(), start(), bid("bob", 10_000), bid("carol", 12_000)]);
    let events = scenario.when(end(), at(60_000)).unwrap();
    assert_eq!(
        events,
        vec![AuctionEvent::Ended {
            winner_id: Some(UserId::new("carol")),
            final_price: eur(12_000),
            reserve_met: true,
            ended_at: at(60_000),
        }]
    );
}

#[test]
fn an_unmet_reserve_ends_without_a_winner() {
    let scenario = given(&[
        create_with_reserve(Some(15_000)),
        start(),
        bid("bob", 12_000),
    ]);
    let events = scenario.when(end(), at(60_000)).unwrap();
    assert!(matches!(
        &events[..],
        [AuctionEvent::Ended {
            winner_id: None,
            reserve_met: false,
            ..
        }]
    ));
}

#[test]
fn a_met_reserve_has_a_winner() {
    let scenario = given(&[
        create_with_reserve(Some(15_000)),
        start(),
        bid("bob", 15_000),
    ]);
    let events = scenario.when(end(), at(60_000)).unwrap();
    assert!(
        matches!(&events[..], [AuctionEvent::Ended { winner_id: Some(w), .. }] if w.as_str() == "bob")
    );
}

#[test]
fn an_auction_without_bids_ends_without_a_winner() {
    let events = given(&[create(), start()]).when(end(), at(60_000)).unwrap();
    assert!(matches!(
        &events[..],
        [AuctionEvent::Ended {
            winner_id: None,
            reserve_met: false,
            ..
        }]
    ));
}

#[test]
fn an_ended_auction_cannot_end_again() {
    let mut scenario = given(&[create(), start()]);
    for event in scenario.when(end(), at(60_000)).unwrap() {
        scenario.state = evolve(scenario.state, &id(), &event);
    }
    assert_eq!(
        scenario.when(end(), at(60_001)).unwrap_err().code(),
        "INVALID_STATUS"
    );
}

#[test]
fn expected_version_is_enforced() {
    let state = given(&[create(), start()]).state;
    assert_eq!(
        decide_versioned(state.as_ref(), &bid("bob", 10_000), &bob(), Some(1), at(1)).unwrap_err(),
        Rejection::VersionConflict {
            expected: 1,
            actual: 2
        }
    );
    assert!(decide_versioned(state.as_ref(), &bid("bob", 10_000), &bob(), Some(2), at(1)).is_ok());
    let seller = UserId::new("seller");
    assert!(decide_versioned(None, &create(), &seller, Some(0), at(0)).is_ok());
}

#[test]
fn versions_count_events_gaplessly() {
    let state = given(&[create(), start(), bid("bob", 10_000), bid("carol", 11_000)])
        .state
        .unwrap();
    assert_eq!(state.version, 4);
    assert_eq!(state.bid_count, 2);
    assert_eq!(state.leading_bidder, Some(UserId::new("carol")));
}

fn any_command() -> impl Strategy<Value = (AuctionCommand, i64)> {
    let bidders = prop::sample::select(vec!["seller", "bob", "carol", "dave"]);
    prop_oneof![
        Just(create()),
        Just(start()),
        Just(cancel()),
        Just(end()),
        (bidders, 9_000i64..20_000).prop_map(|(who, amount)| bid(who, amount)),
    ]
    .prop_flat_map(|command| (Just(command), 0i64..70_000))
}

proptest! {
    /// Whatever commands arrive, in whatever order, the state kept by applying
    /// each accepted command's events equals a replay of all emitted events, and
    /// the version equals the number of events.
    #[test]
    fn replaying_emitted_events_rebuilds_the_same_state(commands in prop::collection::vec(any_command(), 0..40)) {
        let mut state: Option<Auction> = None;
        let mut history = Vec::new();
        let mut sorted = commands;
        sorted.sort_by_key(|(_, offset)| *offset);
        for (command, offset) in &sorted {
            if let Ok(events) = decide(state.as_ref(), command, at(*offset)) {
                for event in events {
                    state = evolve(state, &id(), &event);
                    history.push(event);
                }
            }
        }
        let replayed = replay(&id(), &history);
        prop_assert_eq!(&replayed, &state);
        prop_assert_eq!(state.map_or(0, |s| s.version), history.len() as u64);
    }
}
