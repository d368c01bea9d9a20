//! The stored JSON form of an auction event, built here rather than derived
//! from the domain's serde so a refactor of the domain types can never change
//! (and so break the hashes of) events already in the store. Amounts are
//! `{"minor": <integer minor units>, "currency": "EUR"}`, times epoch millis.

use gavel_domain::auction::upcast::upcast;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::{Currency, Money, Timestamp, UserId};
use serde_json::{json, Map, Value};

pub fn to_json(event: &AuctionEvent) -> Value {
    match event {
        AuctionEvent::Created {
            seller_id,
            title,
            starting_price,
            reserve_price,
            min_increment,
            end_time,
        } => json!({
            "seller_id": seller_id.as_str(),
            "title": title,
            "starting_price": money(*starting_price),
            "reserve_price": reserve_price.map(money),
            "min_increment": money(*min_increment),
            "end_time": end_time.millis(),
        }),
        AuctionEvent::Started { started_at } => json!({ "started_at": started_at.millis() }),
        AuctionEvent::BidPlaced {
            bidder_id,
            amount,
            previous_price,
            placed_at,
            max_amount,
            automatic,
        } => json!({
            "bidder_id": bidder_id.as_str(),
            "amount": money(*amount),
            "previous_price": money(*previous_price),
            "placed_at": placed_at.millis(),
            "max_amount": max_amount.map(money),
            "automatic": automatic,
        }),
        AuctionEvent::Cancelled { reason } => json!({ "reason": reason }),
        AuctionEvent::Ended {
            winner_id,
            final_price,
            reserve_met,
            ended_at,
        } => json!({
            "winner_id": winner_id.as_ref().map(UserId::as_str),
            "final_price": money(*final_price),
            "reserve_met": reserve_met,
            "ended_at": ended_at.millis(),
        }),
    }
}

/// The version of a stored payload's shape, from its envelope (rows of the
/// first release all say 1), for [`from_json`].
pub const STORED_VERSION: &str = "COALESCE((envelope->>'schema_version')::int4, 1)";

fn money(m: Money) -> Value {
    json!({ "minor": m.minor(), "currency": m.currency().as_str() })
}

/// The inverse of `to_json`, for replays and temporal queries: a payload
/// stored at an older `version` is first lifted to this release's shape by
/// the domain's upcasters. The error names the field.
pub fn from_json(event_type: &str, version: i32, payload: Value) -> Result<AuctionEvent, String> {
    let Value::Object(mut payload) = payload else {
        return Err(format!("{event_type} payload is not an object"));
    };
    upcast(event_type, version, &mut payload).map_err(|e| e.to_string())?;
    let f = Fields(&payload);
    Ok(match event_type {
        "AuctionCreated" => AuctionEvent::Created {
            seller_id: UserId::new(f.string("seller_id")?),
            title: f.string("title")?,
            starting_price: f.money("starting_price")?,
            reserve_price: f.optional_money("reserve_price")?,
            min_increment: f.money("min_increment")?,
            end_time: f.time("end_time")?,
        },
        "AuctionStarted" => AuctionEvent::Started {
            started_at: f.time("started_at")?,
        },
        "BidPlaced" => AuctionEvent::BidPlaced {
            bidder_id: UserId::new(f.string("bidder_id")?),
            amount: f.money("amount")?,
            previous_price: f.money("previous_price")?,
            placed_at: f.time("placed_at")?,
            // Absent in a v1 payload even when its row says 2: a sink of the
            // previous release labels rows with the record's version while
            // it stores its own (v1) shape, so the v2 fields read as their
            // defaults here as well as through the upcaster.
            max_amount: f.optional_money("max_amount")?,
            automatic: f.optional_boolean("automatic")?.unwrap_or(false),
        },
        "AuctionCancelled" => AuctionEvent::Cancelled {
            reason: f.string("reason")?,
        },
        "AuctionEnded" => AuctionEvent::Ended {
            winner_id: f.optional_string("winner_id")?.map(UserId::new),
            final_price: f.money("final_price")?,
            reserve_met: f.boolean("reserve_met")?,
            ended_at: f.time("ended_at")?,
        },
        other => return Err(format!("unknown event type {other}")),
    })
}

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn field(&self, name: &str) -> Result<&Value, String> {
        self.0.get(name).ok_or_else(|| format!("{name} is missing"))
    }

    fn string(&self, name: &str) -> Result<String, String> {
        self.field(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{name} is not a string"))
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.string(name).map(Some),
        }
    }

    fn optional_boolean(&self, name: &str) -> Result<Option<bool>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.boolean(name).map(Some),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, String> {
        self.field(name)?
            .as_bool()
            .ok_or_else(|| format!("{name} is not a boolean"))
    }

    fn time(&self, name: &str) -> Result<Timestamp, String> {
        self.field(name)?
            .as_i64()
            .map(Timestamp::from_millis)
            .ok_or_else(|| format!("{name} is not epoch millis"))
    }

    fn money(&self, name: &str) -> Result<Money, String> {
        let bad = |why: &str| format!("{name} {why}");
        let value = self.field(name)?;
        let minor = value["minor"].as_i64().ok_or_else(|| bad("has no minor"))?;
        let code = value["currency"]
            .as_str()
            .ok_or_else(|| bad("has no currency"))?;
        let currency = Currency::parse(code).map_err(|e| bad(&e.to_string()))?;
        Money::new(minor, currency).map_err(|e| bad(&e.to_string()))
    }

    fn optional_money(&self, name: &str) -> Result<Option<Money>, String> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.money(name).map(Some),
        }
    }
}

/// The JSON text that is hashed: object keys sorted, no whitespace. Postgres
/// `jsonb` reorders keys and drops whitespace, so the hash is taken over this
/// form, which the auditor rebuilds identically from what `jsonb` returns.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_domain::auction::upcast::current_version;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn samples() -> Vec<AuctionEvent> {
        vec![
            AuctionEvent::Created {
                seller_id: UserId::new("sam"),
                title: "Bronze \"Hare\" ü".into(),
                starting_price: eur(10_000),
                reserve_price: None,
                min_increment: eur(500),
                end_time: Timestamp::from_millis(1_700_000_000_123),
            },
            AuctionEvent::Started {
                started_at: Timestamp::from_millis(5),
            },
            AuctionEvent::BidPlaced {
                bidder_id: UserId::new("ann"),
                amount: eur(10_500),
                previous_price: eur(10_000),
                placed_at: Timestamp::from_millis(6),
                max_amount: Some(eur(20_000)),
                automatic: true,
            },
            AuctionEvent::Cancelled {
                reason: "withdrawn".into(),
            },
            AuctionEvent::Ended {
                winner_id: Some(UserId::new("ann")),
                final_price: eur(10_500),
                reserve_met: true,
                ended_at: Timestamp::from_millis(7),
            },
        ]
    }

    #[test]
    fn every_event_survives_the_json_round_trip() {
        for event in samples() {
            let text = canonical(&to_json(&event));
            let back: Value = serde_json::from_str(&text).unwrap();
            let version = current_version(event.type_name());
            assert_eq!(from_json(event.type_name(), version, back), Ok(event));
        }
    }

    /// A bid as the first release stored it (no maximum, no flag) reads as a
    /// plain v2 bid through the domain's upcaster.
    #[test]
    fn a_v1_bid_from_the_store_is_read_as_a_plain_v2_bid() {
        let stored = json!({
            "bidder_id": "ann",
            "amount": { "minor": 10_500, "currency": "EUR" },
            "previous_price": { "minor": 10_000, "currency": "EUR" },
            "placed_at": 6,
        });
        let event = from_json("BidPlaced", 1, stored.clone()).unwrap();
        assert_eq!(
            event,
            AuctionEvent::BidPlaced {
                bidder_id: UserId::new("ann"),
                amount: eur(10_500),
                previous_price: eur(10_000),
                placed_at: Timestamp::from_millis(6),
                max_amount: None,
                automatic: false,
            }
        );
        // A previous-release sink labels such a row 2 (the record's version)
        // while storing the v1 shape: it reads the same.
        assert_eq!(from_json("BidPlaced", 2, stored), Ok(event));
        let wrong = json!({ "bidder_id": "ann", "amount": { "minor": 5, "currency": "EUR" },
            "previous_price": { "minor": 5, "currency": "EUR" }, "placed_at": 6, "automatic": "yes" });
        let error = from_json("BidPlaced", 2, wrong).unwrap_err();
        assert!(error.contains("automatic"), "{error}");
    }

    #[test]
    fn an_event_from_a_newer_release_is_refused_with_a_reason() {
        let error = from_json("AuctionStarted", 2, json!({ "started_at": 5 })).unwrap_err();
        assert!(error.contains("newer release"), "{error}");
    }

    #[test]
    fn canonical_text_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), r#"{"a":{"x":null,"y":[1,2]},"b":1}"#);
        assert_eq!(canonical(&a), canonical(&b));
    }

    #[test]
    fn a_broken_payload_names_the_field() {
        let payload = json!({ "bidder_id": "ann", "amount": { "minor": 5 } });
        let error = from_json("BidPlaced", 2, payload).unwrap_err();
        assert!(error.contains("amount"), "{error}");
    }
}
