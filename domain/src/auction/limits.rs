//! Bounds on what a command may carry, checked where input enters: the command
//! API answers 422 naming the field, the aggregate answers a rejection outcome
//! (`INVALID_FIELD`) for anything a third-party producer sends past them. They
//! keep every value inside what the read side can store (Postgres `text`
//! refuses NUL; `timestamptz` ends in the year 294276; an interval from now to
//! 10^16 ms overflows) and what a person can have meant.

use super::{AuctionCommand, Rejection};
use crate::{Money, Timestamp};

/// Aggregate, user and tenant ids: the Kafka key and a Postgres key column.
pub const MAX_ID_LEN: usize = 128;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_REASON_CHARS: usize = 500;
/// 10^15 minor units (ten trillion euros): far above any auction, far below
/// i64 overflow when an increment is added, and exact in a JSON double (< 2^53).
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;
/// How far ahead an auction may end: a year.
pub const MAX_AUCTION_MILLIS: i64 = 366 * 24 * 60 * 60 * 1000;

/// One field out of bounds: which, and why (for a 422 or a rejection reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl From<FieldError> for Rejection {
    fn from(error: FieldError) -> Self {
        Rejection::InvalidField {
            field: error.field,
            problem: error.problem,
        }
    }
}

/// Every stateless bound of `command` at time `now`.
pub fn check(command: &AuctionCommand, now: Timestamp) -> Result<(), FieldError> {
    id("auction_id", command.auction_id().as_str())?;
    match command {
        AuctionCommand::Create(c) => {
            id("seller_id", c.seller_id.as_str())?;
            text("title", &c.title, MAX_TITLE_CHARS)?;
            if c.title.trim().is_empty() {
                return Err(problem("title", "must not be empty"));
            }
            amount("starting_price", c.starting_price)?;
            amount("min_increment", c.min_increment)?;
            if let Some(reserve) = c.reserve_price {
                amount("reserve_price", reserve)?;
            }
            end_time(c.end_time, now)
        }
        AuctionCommand::PlaceBid(c) => {
            id("bidder_id", c.bidder_id.as_str())?;
            amount("amount", c.amount)?;
            match c.max_amount {
                Some(max) if max.minor() < c.amount.minor() => {
                    Err(problem("max_amount", "must not be below amount"))
                }
                Some(max) => amount("max_amount", max),
                None => Ok(()),
            }
        }
        AuctionCommand::Cancel(c) => text("reason", &c.reason, MAX_REASON_CHARS),
        AuctionCommand::Start(_) | AuctionCommand::End(_) => Ok(()),
    }
}

/// An id: 1..=MAX_ID_LEN bytes of visible characters, no spaces or controls.
pub fn id(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(problem(field, &format!("must be 1 to {MAX_ID_LEN} bytes")));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(problem(
            field,
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

/// Free text: at most `max_chars` characters, no control characters (a NUL
/// cannot be stored in Postgres text; the rest corrupt logs and terminals).
pub fn text(field: &'static str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.chars().count() > max_chars {
        return Err(problem(
            field,
            &format!("must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(problem(field, "must not contain control characters"));
    }
    Ok(())
}

/// An amount in minor units: 0..=MAX_AMOUNT_MINOR (`Money` is never negative).
pub fn amount(field: &'static str, value: Money) -> Result<(), FieldError> {
    if value.minor() > MAX_AMOUNT_MINOR {
        return Err(problem(
            field,
            &format!("must be at most {MAX_AMOUNT_MINOR} minor units"),
        ));
    }
    Ok(())
}

/// An end time after `now` and at most a year ahead. (`decide` answers a past
/// end time with END_TIME_PASSED; here only the far side is bounded, so the
/// rejection stays the more telling one.)
pub fn end_time(value: Timestamp, now: Timestamp) -> Result<(), FieldError> {
    if value.millis() > now.millis().saturating_add(MAX_AUCTION_MILLIS) {
        return Err(problem("end_time", "must be at most 366 days ahead"));
    }
    Ok(())
}

fn problem(field: &'static str, text: &str) -> FieldError {
    FieldError {
        field,
        problem: text.to_owned(),
    }
}
