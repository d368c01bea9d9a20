//! Given/when/then tests of who may act (`authorize`) and of the input bounds
//! (`limits`): what a hostile or careless producer sends is refused with a code.

use super::limits::{MAX_AMOUNT_MINOR, MAX_AUCTION_MILLIS, MAX_ID_LEN, MAX_TITLE_CHARS};
use super::*;
use crate::{AuctionId, Currency, Money, Timestamp, UserId};

const T0: i64 = 1_700_000_000_000;

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
}

fn user(name: &str) -> UserId {
    UserId::new(name)
}

fn create_by(seller: &str) -> AuctionCommand {
    AuctionCommand::Create(CreateAuction {
        auction_id: AuctionId::new("a-1"),
        seller_id: user(seller),
        title: "Still life".into(),
        starting_price: eur(1_000),
        reserve_price: None,
        min_increment: eur(100),
        end_time: Timestamp::from_millis(T0 + 60_000),
    })
}

fn start() -> AuctionCommand {
    AuctionCommand::Start(StartAuction {
        auction_id: AuctionId::new("a-1"),
    })
}

fn cancel() -> AuctionCommand {
    AuctionCommand::Cancel(CancelAuction {
        auction_id: AuctionId::new("a-1"),
        reason: "withdrawn".into(),
    })
}

fn bid(bidder: &str, minor: i64) -> AuctionCommand {
    AuctionCommand::PlaceBid(PlaceBid {
        auction_id: AuctionId::new("a-1"),
        bidder_id: user(bidder),
        amount: eur(minor),

        max_amount: None,
    })
}

fn now() -> Timestamp {
    Timestamp::from_millis(T0)
}

/// The state after `commands`, each accepted as sent by `actor`.
fn given(commands: &[(AuctionCommand, &str)]) -> Option<Auction> {
    let mut state = None;
    for (command, actor) in commands {
        let events = decide_versioned(state.as_ref(), command, &user(actor), None, now())
            .expect("given commands are accepted");
        for event in &events {
            state = evolve(state, &AuctionId::new("a-1"), event);
        }
    }
    state
}

fn code_of(state: Option<&Auction>, command: &AuctionCommand, actor: &str) -> &'static str {
    match decide_versioned(state, command, &user(actor), None, now()) {
        Ok(_) => "ACCEPTED",
        Err(rejection) => rejection.code(),
    }
}

#[test]
fn a_command_without_an_actor_is_refused() {
    assert_eq!(code_of(None, &create_by("sam"), ""), "MISSING_ACTOR");
    assert_eq!(code_of(None, &create_by("sam"), "  "), "MISSING_ACTOR");
}

#[test]
fn an_auction_is_created_only_by_the_seller_it_names() {
    assert_eq!(code_of(None, &create_by("sam"), "eve"), "ACTOR_MISMATCH");
    assert_eq!(code_of(None, &create_by("sam"), "sam"), "ACCEPTED");
}

#[test]
fn only_the_seller_starts_or_cancels() {
    let draft = given(&[(create_by("sam"), "sam")]);
    assert_eq!(code_of(draft.as_ref(), &start(), "eve"), "NOT_SELLER");
    assert_eq!(code_of(draft.as_ref(), &cancel(), "eve"), "NOT_SELLER");
    assert_eq!(code_of(draft.as_ref(), &start(), "sam"), "ACCEPTED");
    assert_eq!(code_of(draft.as_ref(), &cancel(), "sam"), "ACCEPTED");
}

#[test]
fn a_bid_is_placed_only_by_the_bidder_it_names_and_never_by_the_seller() {
    let active = given(&[(create_by("sam"), "sam"), (start(), "sam")]);
    assert_eq!(
        code_of(active.as_ref(), &bid("bob", 1_000), "eve"),
        "ACTOR_MISMATCH"
    );
    assert_eq!(
        code_of(active.as_ref(), &bid("sam", 1_000), "sam"),
        "SELLER_CANNOT_BID"
    );
    assert_eq!(
        code_of(active.as_ref(), &bid("bob", 1_000), "bob"),
        "ACCEPTED"
    );
}

#[test]
fn refusals_about_the_sender_are_marked_as_such() {
    assert!(Rejection::NotSeller.is_about_the_sender());
    assert!(Rejection::MissingActor.is_about_the_sender());
    assert!(!Rejection::HasBids.is_about_the_sender());
}

#[test]
fn an_amount_past_the_bound_is_refused_naming_the_field() {
    let active = given(&[(create_by("sam"), "sam"), (start(), "sam")]);
    let huge = decide_versioned(
        active.as_ref(),
        &bid("bob", MAX_AMOUNT_MINOR + 1),
        &user("bob"),
        None,
        now(),
    )
    .unwrap_err();
    assert!(matches!(
        huge,
        Rejection::InvalidField {
            field: "amount",
            ..
        }
    ));
    assert_eq!(
        code_of(active.as_ref(), &bid("bob", i64::MAX), "bob"),
        "INVALID_FIELD"
    );
}

#[test]
fn an_overflowing_minimum_can_neither_tie_nor_win() {
    // State built past the bounds (as an old changelog could hold it): the
    // next minimum does not fit in i64, so no bid is high enough.
    let mut state = given(&[(create_by("sam"), "sam"), (start(), "sam")]).unwrap();
    state.current_price = eur(i64::MAX - 10);
    state.bid_count = 1;
    state.leading_bidder = Some(user("bob"));
    let rejection = decide(Some(&state), &bid("carol", MAX_AMOUNT_MINOR), now()).unwrap_err();
    assert_eq!(rejection, Rejection::Money(crate::MoneyError::Overflow));
    assert_eq!(state.minimum_bid(), None);
    let mut capped = state.clone();
    capped.current_price = eur(MAX_AMOUNT_MINOR);
    let overflow = decide(Some(&capped), &bid("carol", MAX_AMOUNT_MINOR), now()).unwrap_err();
    assert_eq!(
        overflow.code(),
        "BID_TOO_LOW",
        "an equal amount never takes the lead"
    );
}

#[test]
fn text_fields_are_bounded_and_free_of_control_characters() {
    let with_title = |title: String| {
        let AuctionCommand::Create(mut c) = create_by("sam") else {
            unreachable!()
        };
        c.title = title;
        AuctionCommand::Create(c)
    };
    for title in [
        "nul \u{0} inside".to_owned(),
        "bell \u{7}".to_owned(),
        "x".repeat(MAX_TITLE_CHARS + 1),
    ] {
        let rejection = decide(None, &with_title(title), now()).unwrap_err();
        assert!(
            matches!(rejection, Rejection::InvalidField { field: "title", .. }),
            "{rejection}"
        );
    }
    assert!(decide(None, &with_title("é".repeat(MAX_TITLE_CHARS)), now()).is_ok());
}

#[test]
fn ids_are_bounded_and_visible() {
    let long_bidder = "b".repeat(MAX_ID_LEN + 1);
    let active = given(&[(create_by("sam"), "sam"), (start(), "sam")]);
    let rejection = decide(active.as_ref(), &bid(&long_bidder, 1_000), now()).unwrap_err();
    assert!(matches!(
        rejection,
        Rejection::InvalidField {
            field: "bidder_id",
            ..
        }
    ));
    let rejection = decide(active.as_ref(), &bid("bo\nb", 1_000), now()).unwrap_err();
    assert!(matches!(
        rejection,
        Rejection::InvalidField {
            field: "bidder_id",
            ..
        }
    ));
}

#[test]
fn an_end_time_more_than_a_year_ahead_is_refused() {
    let far = |millis: i64| {
        let AuctionCommand::Create(mut c) = create_by("sam") else {
            unreachable!()
        };
        c.end_time = Timestamp::from_millis(millis);
        AuctionCommand::Create(c)
    };
    let rejection = decide(None, &far(10_i64.pow(16)), now()).unwrap_err();
    assert!(matches!(
        rejection,
        Rejection::InvalidField {
            field: "end_time",
            ..
        }
    ));
    assert!(decide(None, &far(T0 + MAX_AUCTION_MILLIS), now()).is_ok());
    assert!(decide(None, &far(i64::MAX), now()).is_err());
}
