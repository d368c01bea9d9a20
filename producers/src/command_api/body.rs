//! Request bodies to domain commands, checked for everything that needs no
//! state (shape, money, ids, who may act). Stateful rules (is the auction
//! active, is the bid high enough) are the aggregate's and come back as outcomes.
//!
//! The acting user always comes from the token: the seller of a new auction and
//! the bidder of a bid are the token's `sub`. A body may repeat them, but naming
//! someone else is a 403, not a silent override.

use super::auth::User;
use super::error::ApiError;
use super::fields::{valid_id, Fields};
use crate::produce::now;
use axum::body::Bytes;
use gavel_domain::auction::{
    limits, AuctionCommand, CancelAuction, CreateAuction, PlaceBid, StartAuction,
};
use gavel_domain::{AuctionId, Currency, Money, Timestamp, UserId};

/// The longest an auction may run when created through the API.
const MAX_DURATION_SECS: i64 = 90 * 24 * 3600;
const MAX_TITLE_CHARS: usize = 200;
const DEFAULT_CANCEL_REASON: &str = "cancelled by the seller";

/// A command ready to send, with the version the client based it on.
pub struct Parsed {
    pub command: AuctionCommand,
    pub expected_version: Option<u64>,
}

/// `POST /auctions`; `new_auction_id` names the auction when the body does not.
pub fn create(user: &User, body: &Bytes, new_auction_id: String) -> Result<Parsed, ApiError> {
    let mut f = Fields::parse(body)?;
    acting_as(&mut f, "seller_id", user)?;
    let auction_id = match f.optional_string("auction_id") {
        Some(id) if !valid_id(&id) => {
            f.fail(
                "auction_id",
                "must be 1..=128 characters of A-Z a-z 0-9 . _ : -",
            );
            id
        }
        Some(id) => id,
        None => new_auction_id,
    };
    let title = f.string("title").unwrap_or_default();
    if title.chars().count() > MAX_TITLE_CHARS {
        f.fail(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        );
    } else if title.trim().is_empty() {
        // Also reached when the title is missing; the first reason recorded wins.
        f.fail("title", "must not be empty");
    }
    let currency = currency(&mut f);
    let starting = f.int("starting_price");
    let starting = f.positive("starting_price", starting);
    let increment = f.int("min_increment");
    let increment = f.positive("min_increment", increment);
    let reserve = f.optional_int("reserve_price");
    let reserve = f.positive("reserve_price", reserve);
    let end_time = end_time(&mut f);
    let expected_version = f.optional_version("expected_version");
    f.finish()?;
    let (Some(currency), Some(starting), Some(increment), Some(end_time)) =
        (currency, starting, increment, end_time)
    else {
        return Err(ApiError::internal("create body passed checks with a gap"));
    };
    let money = |minor: i64| Money::new(minor, currency).map_err(ApiError::internal);
    bounded(Parsed {
        command: AuctionCommand::Create(CreateAuction {
            auction_id: AuctionId::new(auction_id),
            seller_id: UserId::new(user.id.clone()),
            title,
            starting_price: money(starting)?,
            reserve_price: reserve.map(money).transpose()?,
            min_increment: money(increment)?,
            end_time,
        }),
        expected_version,
    })
}

/// `POST /auctions/{id}/start`.
pub fn start(auction_id: AuctionId, body: &Bytes) -> Result<Parsed, ApiError> {
    let mut f = Fields::parse(body)?;
    let expected_version = f.optional_version("expected_version");
    f.finish()?;
    Ok(Parsed {
        command: AuctionCommand::Start(StartAuction { auction_id }),
        expected_version,
    })
}

/// `POST /auctions/{id}/bids`.
pub fn bid(user: &User, auction_id: AuctionId, body: &Bytes) -> Result<Parsed, ApiError> {
    let mut f = Fields::parse(body)?;
    acting_as(&mut f, "bidder_id", user)?;
    let amount = f.int("amount");
    let amount = f.positive("amount", amount);
    // Proxy bidding (PlaceBid v2): the most the auction may bid for this user.
    let max_amount = f.optional_int("max_amount");
    let max_amount = f.positive("max_amount", max_amount);
    let currency = currency(&mut f);
    let expected_version = f.optional_version("expected_version");
    f.finish()?;
    let (Some(amount), Some(currency)) = (amount, currency) else {
        return Err(ApiError::internal("bid body passed checks with a gap"));
    };
    let money = |minor| Money::new(minor, currency).map_err(ApiError::internal);
    bounded(Parsed {
        command: AuctionCommand::PlaceBid(PlaceBid {
            auction_id,
            bidder_id: UserId::new(user.id.clone()),
            amount: money(amount)?,
            max_amount: max_amount.map(money).transpose()?,
        }),
        expected_version,
    })
}

/// `POST /auctions/{id}/cancel`.
pub fn cancel(auction_id: AuctionId, body: &Bytes) -> Result<Parsed, ApiError> {
    let mut f = Fields::parse(body)?;
    let reason = f
        .optional_string("reason")
        .unwrap_or_else(|| DEFAULT_CANCEL_REASON.to_owned());
    let expected_version = f.optional_version("expected_version");
    f.finish()?;
    bounded(Parsed {
        command: AuctionCommand::Cancel(CancelAuction { auction_id, reason }),
        expected_version,
    })
}

/// The same bounds the aggregate applies to every producer's commands
/// (`gavel_domain::auction::limits`), answered here as a 422 naming the
/// field, before anything reaches Kafka.
fn bounded(parsed: Parsed) -> Result<Parsed, ApiError> {
    match limits::check(&parsed.command, now()) {
        Ok(()) => Ok(parsed),
        Err(error) => Err(ApiError::invalid_fields(
            [(error.field.to_owned(), error.problem)]
                .into_iter()
                .collect(),
        )),
    }
}

/// A path's auction id, checked like a body's.
pub fn path_auction_id(id: String) -> Result<AuctionId, ApiError> {
    if valid_id(&id) {
        Ok(AuctionId::new(id))
    } else {
        Err(ApiError::not_found("no such auction: invalid auction id"))
    }
}

/// A body naming the acting user (seller, bidder) must name the token's user.
fn acting_as(f: &mut Fields, field: &str, user: &User) -> Result<(), ApiError> {
    match f.optional_string(field) {
        Some(named) if named != user.id => Err(ApiError::forbidden(format!(
            "{field} must be the authenticated user ({}); a user acts only as itself",
            user.id
        ))),
        _ => Ok(()),
    }
}

fn currency(f: &mut Fields) -> Option<Currency> {
    let code = f.string("currency")?;
    match Currency::parse(&code) {
        Ok(currency) => Some(currency),
        Err(error) => {
            f.fail("currency", error.to_string());
            None
        }
    }
}

/// Exactly one of `ends_in_secs` (from now) or `end_time` (epoch millis, future).
fn end_time(f: &mut Fields) -> Option<Timestamp> {
    let now = now();
    let in_secs = f.optional_int("ends_in_secs");
    let at = f.optional_int("end_time");
    match (in_secs, at) {
        (Some(secs), None) if secs > 0 && secs <= MAX_DURATION_SECS => {
            Some(now.plus_millis(secs * 1000))
        }
        (Some(_), None) => {
            f.fail(
                "ends_in_secs",
                format!("must be > 0 and at most {MAX_DURATION_SECS}"),
            );
            None
        }
        (None, Some(millis)) if Timestamp::from_millis(millis) > now => {
            Some(Timestamp::from_millis(millis))
        }
        (None, Some(_)) => {
            f.fail("end_time", "must be in the future (epoch millis)");
            None
        }
        _ => {
            f.fail(
                "ends_in_secs",
                "give exactly one of ends_in_secs or end_time",
            );
            None
        }
    }
}
