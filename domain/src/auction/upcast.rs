//! Event versions and the upcasters between them. An event is stored in the
//! shape of the release that wrote it; readers of stored history (the event
//! store's replay, `audit as-of`, rebuilds from it) lift each payload to the
//! current shape here, one version step at a time, before decoding it. So an
//! old event never has to be rewritten (its hash stays valid), and a new
//! release reads every event any earlier release wrote.
//!
//! A payload is the event store's JSON object (amounts as
//! `{"minor", "currency"}`, times as epoch millis). To change an event:
//! bump its version in [`UPCASTERS`] by adding the step that turns the old
//! shape into the new one, and cover it in the tests below.

use serde_json::{Map, Value};

/// One step: turns `event_type`'s payload at `from` into version `from + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: i32,
    pub step: fn(&mut Map<String, Value>),
}

/// Every step, in version order per event type.
pub const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "BidPlaced",
    from: 1,
    step: bid_placed_v1_to_v2,
}];

/// BidPlaced v2 (proxy bidding) adds the bidder's maximum and whether the
/// auction placed the bid for them: a v1 bid was a plain bid.
fn bid_placed_v1_to_v2(payload: &mut Map<String, Value>) {
    payload.entry("max_amount").or_insert(Value::Null);
    payload.entry("automatic").or_insert(Value::Bool(false));
}

/// The version this release writes `event_type` at (1 for an event type
/// that never changed).
pub fn current_version(event_type: &str) -> i32 {
    UPCASTERS
        .iter()
        .filter(|u| u.event_type == event_type)
        .map(|u| u.from + 1)
        .max()
        .unwrap_or(1)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error(
        "{event_type} v{version} was written by a newer release (this one reads up to v{current})"
    )]
    Newer {
        event_type: String,
        version: i32,
        current: i32,
    },
    #[error("{event_type} has no version {version}")]
    Unknown { event_type: String, version: i32 },
}

/// Lifts `payload`, stored at `version`, to [`current_version`].
pub fn upcast(
    event_type: &str,
    version: i32,
    payload: &mut Map<String, Value>,
) -> Result<(), UpcastError> {
    let current = current_version(event_type);
    if version > current {
        return Err(UpcastError::Newer {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    if version < 1 {
        return Err(UpcastError::Unknown {
            event_type: event_type.to_owned(),
            version,
        });
    }
    for upcaster in UPCASTERS
        .iter()
        .filter(|u| u.event_type == event_type && u.from >= version)
    {
        (upcaster.step)(payload);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn bid_placed_is_at_version_2_and_the_other_events_at_1() {
        assert_eq!(current_version("BidPlaced"), 2);
        assert_eq!(current_version("AuctionCreated"), 1);
    }

    #[test]
    fn a_v1_bid_becomes_a_plain_v2_bid() {
        let mut payload =
            object(json!({"bidder_id": "ann", "amount": {"minor": 5, "currency": "EUR"}}));
        upcast("BidPlaced", 1, &mut payload).unwrap();
        assert_eq!(payload["automatic"], json!(false));
        assert_eq!(payload["max_amount"], Value::Null);
        assert_eq!(payload["bidder_id"], json!("ann"));
    }

    #[test]
    fn a_current_payload_is_left_as_it_is() {
        let stored = json!({"bidder_id": "ann", "automatic": true, "max_amount": {"minor": 9, "currency": "EUR"}});
        let mut payload = object(stored.clone());
        upcast("BidPlaced", 2, &mut payload).unwrap();
        assert_eq!(Value::Object(payload), stored);
    }

    #[test]
    fn a_version_from_the_future_or_below_one_is_refused_with_a_reason() {
        let error = upcast("BidPlaced", 3, &mut Map::new()).unwrap_err();
        assert!(error.to_string().contains("newer release"), "{error}");
        assert!(upcast("AuctionEnded", 0, &mut Map::new()).is_err());
    }
}
