//! The JSON-lines command format of `gavel produce`, parsed and checked for what
//! can be checked without state (shape, money, ids). Stateful rules are the
//! aggregate's job and come back as rejection outcomes.
//!
//! ```json
//! {"type":"CreateAuction","auction_id":"a-1","seller_id":"s-1","title":"Lot 1","currency":"EUR",
//!  "starting_price":10000,"min_increment":500,"reserve_price":null,"ends_in_secs":60}
//! {"type":"StartAuction","auction_id":"a-1"}
//! {"type":"PlaceBid","auction_id":"a-1","bidder_id":"u-7","amount":10500,"currency":"EUR"}
//! {"type":"CancelAuction","auction_id":"a-1","reason":"withdrawn"}
//! {"type":"EndAuction","auction_id":"a-1"}
//! ```
//! Optional on every line: `command_id`, `correlation_id`, `tenant_id`, `expected_version`,
//! `actor_id` (the acting user; by default the seller of a CreateAuction and the bidder of a
//! PlaceBid; a StartAuction or CancelAuction without one is refused `MISSING_ACTOR` by the
//! aggregate, which accepts them only from the auction's seller).
//! Amounts are integer minor units (cents).

use gavel_domain::auction::{
    AuctionCommand, CancelAuction, CreateAuction, EndAuction, PlaceBid, StartAuction,
};
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use gavel_runtime::envelope::CommandMeta;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum Line {
    CreateAuction {
        #[serde(flatten)]
        common: Common,
        seller_id: String,
        title: String,
        currency: String,
        starting_price: i64,
        min_increment: i64,
        #[serde(default)]
        reserve_price: Option<i64>,
        #[serde(default)]
        end_time: Option<i64>,
        #[serde(default)]
        ends_in_secs: Option<i64>,
    },
    StartAuction {
        #[serde(flatten)]
        common: Common,
    },
    PlaceBid {
        #[serde(flatten)]
        common: Common,
        bidder_id: String,
        amount: i64,
        currency: String,
        /// Proxy bidding (PlaceBid v2).
        #[serde(default)]
        max_amount: Option<i64>,
    },
    CancelAuction {
        #[serde(flatten)]
        common: Common,
        reason: String,
    },
    EndAuction {
        #[serde(flatten)]
        common: Common,
    },
}

#[derive(Debug, Deserialize)]
struct Common {
    auction_id: String,
    #[serde(default)]
    command_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    expected_version: Option<u64>,
    #[serde(default)]
    actor_id: Option<String>,
}

/// Parses one line. `now` resolves `ends_in_secs`; `default_tenant` fills a missing tenant.
pub fn parse_line(
    line: &str,
    now: Timestamp,
    default_tenant: &str,
) -> Result<(AuctionCommand, CommandMeta), String> {
    let parsed: Line =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON command: {e}"))?;
    let (command, common) = to_command(parsed, now)?;
    if common.auction_id.trim().is_empty() {
        return Err("auction_id must not be empty".into());
    }
    let actor = match common.actor_id {
        Some(actor) => UserId::new(actor),
        None => command
            .named_user()
            .cloned()
            .unwrap_or_else(|| UserId::new("")),
    };
    let mut meta = CommandMeta::new(
        TenantId::new(
            common
                .tenant_id
                .unwrap_or_else(|| default_tenant.to_owned()),
        ),
        actor,
    );
    if let Some(id) = common.command_id {
        meta.command_id = id.clone();
        meta.correlation_id = id;
    }
    if let Some(correlation) = common.correlation_id {
        meta.correlation_id = correlation;
    }
    meta.expected_version = common.expected_version;
    Ok((command, meta))
}

fn to_command(line: Line, now: Timestamp) -> Result<(AuctionCommand, Common), String> {
    Ok(match line {
        Line::CreateAuction {
            common,
            seller_id,
            title,
            currency,
            starting_price,
            min_increment,
            reserve_price,
            end_time,
            ends_in_secs,
        } => {
            let currency = Currency::parse(&currency).map_err(|e| e.to_string())?;
            let money = |minor: i64, what: &str| {
                Money::new(minor, currency).map_err(|e| format!("{what}: {e}"))
            };
            let end_time = match (end_time, ends_in_secs) {
                (Some(at), None) => Timestamp::from_millis(at),
                (None, Some(secs)) if secs > 0 => now.plus_millis(secs * 1000),
                (None, Some(_)) => return Err("ends_in_secs must be positive".into()),
                _ => {
                    return Err(
                        "give exactly one of end_time (epoch millis) or ends_in_secs".into(),
                    )
                }
            };
            non_empty(&seller_id, "seller_id")?;
            let command = AuctionCommand::Create(CreateAuction {
                auction_id: AuctionId::new(common.auction_id.clone()),
                seller_id: UserId::new(seller_id),
                title,
                starting_price: money(starting_price, "starting_price")?,
                reserve_price: reserve_price
                    .map(|r| money(r, "reserve_price"))
                    .transpose()?,
                min_increment: money(min_increment, "min_increment")?,
                end_time,
            });
            (command, common)
        }
        Line::StartAuction { common } => (
            AuctionCommand::Start(StartAuction {
                auction_id: AuctionId::new(common.auction_id.clone()),
            }),
            common,
        ),
        Line::PlaceBid {
            common,
            bidder_id,
            amount,
            currency,
            max_amount,
        } => {
            non_empty(&bidder_id, "bidder_id")?;
            let currency = Currency::parse(&currency).map_err(|e| e.to_string())?;
            if amount <= 0 {
                return Err(format!("amount must be positive, got {amount}"));
            }
            let amount = Money::new(amount, currency).map_err(|e| e.to_string())?;
            let max_amount = max_amount
                .map(|max| Money::new(max, currency).map_err(|e| format!("max_amount: {e}")))
                .transpose()?;
            let bid = PlaceBid {
                auction_id: AuctionId::new(common.auction_id.clone()),
                bidder_id: UserId::new(bidder_id),
                amount,
                max_amount,
            };
            (AuctionCommand::PlaceBid(bid), common)
        }
        Line::CancelAuction { common, reason } => {
            let cancel = CancelAuction {
                auction_id: AuctionId::new(common.auction_id.clone()),
                reason,
            };
            (AuctionCommand::Cancel(cancel), common)
        }
        Line::EndAuction { common } => (
            AuctionCommand::End(EndAuction {
                auction_id: AuctionId::new(common.auction_id.clone()),
            }),
            common,
        ),
    })
}

fn non_empty(value: &str, field: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err(format!("{field} must not be empty"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn a_bid_line_becomes_a_command_with_fresh_ids() {
        let (command, meta) =
            parse_line(r#"{"type":"PlaceBid","auction_id":"a1","bidder_id":"u1","amount":1500,"currency":"EUR"}"#, NOW, "t0").unwrap();
        assert!(matches!(command, AuctionCommand::PlaceBid(ref b) if b.amount.minor() == 1500));
        assert_eq!(meta.tenant_id.as_str(), "t0");
        assert_eq!(
            meta.actor_id.as_str(),
            "u1",
            "a bid's actor defaults to its bidder"
        );
        assert!(!meta.command_id.is_empty());
    }

    #[test]
    fn a_start_line_carries_its_actor_or_none() {
        let named = r#"{"type":"StartAuction","auction_id":"a1","actor_id":"sam"}"#;
        assert_eq!(
            parse_line(named, NOW, "t0").unwrap().1.actor_id.as_str(),
            "sam"
        );
        let anonymous = r#"{"type":"StartAuction","auction_id":"a1"}"#;
        assert_eq!(
            parse_line(anonymous, NOW, "t0")
                .unwrap()
                .1
                .actor_id
                .as_str(),
            ""
        );
    }

    #[test]
    fn ends_in_secs_is_relative_to_now() {
        let line = r#"{"type":"CreateAuction","auction_id":"a1","seller_id":"s","title":"t","currency":"EUR","starting_price":100,"min_increment":10,"ends_in_secs":60,"command_id":"c-1","expected_version":0}"#;
        let (command, meta) = parse_line(line, NOW, "t0").unwrap();
        assert!(
            matches!(command, AuctionCommand::Create(ref c) if c.end_time == NOW.plus_millis(60_000))
        );
        assert_eq!(meta.command_id, "c-1");
        assert_eq!(meta.expected_version, Some(0));
    }

    #[test]
    fn bad_lines_say_why() {
        let cases = [
            ("not json", "invalid JSON"),
            (r#"{"type":"Teleport","auction_id":"a"}"#, "invalid JSON"),
            (
                r#"{"type":"PlaceBid","auction_id":"a","bidder_id":"u","amount":-5,"currency":"EUR"}"#,
                "positive",
            ),
            (
                r#"{"type":"PlaceBid","auction_id":"a","bidder_id":"u","amount":5,"currency":"euro"}"#,
                "ISO-4217",
            ),
            (
                r#"{"type":"PlaceBid","auction_id":"","bidder_id":"u","amount":5,"currency":"EUR"}"#,
                "auction_id",
            ),
            (
                r#"{"type":"StartAuction","auction_id":"a","surprise":1}"#,
                "unknown field",
            ),
        ];
        for (line, expected) in cases {
            let error = parse_line(line, NOW, "t0").unwrap_err();
            assert!(error.contains(expected), "{line}: {error}");
        }
    }
}
