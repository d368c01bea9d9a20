//! What the aggregate processor keeps per auction: the domain state, the tenant,
//! and a compact record of recent commands so a redelivered command id gets its
//! original answer. This is the changelog record (the snapshot), so it is kept
//! small: every changed aggregate is written once per transaction and read back
//! on restore.
//!
//! Record format 2: `0x02`, the tenant (`0` or `1` + text), the auction (`0`
//! or `1` + length + its JSON, small and evolvable with serde), then the packed
//! recent commands (`recent.rs`) to the end. Format 1 was one JSON object, so
//! it starts with `{`: records written by earlier releases still restore.

use super::recent::{put_str, put_varint, Malformed, Reader, RecentCommands};
use gavel_domain::auction::Auction;
use gavel_domain::Timestamp;
use gavel_runtime::auction_codec::CommandOutcome;
use serde::Deserialize;

#[cfg(test)]
pub use super::recent::REMEMBERED_COMMANDS;

const FORMAT_2: u8 = 2;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredAggregate {
    pub tenant_id: Option<String>,
    pub auction: Option<Auction>,
    pub recent: RecentCommands,
}

/// Why a changelog record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateDecodeError {
    #[error("format 1 (JSON) state: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Packed(#[from] Malformed),
    #[error("unknown state format {0:#04x}")]
    UnknownFormat(u8),
    #[error("empty state record")]
    Empty,
}

impl StoredAggregate {
    pub fn version(&self) -> u64 {
        self.auction.as_ref().map_or(0, |a| a.version)
    }

    /// The original outcome of `command_id`, if it is within the window.
    pub fn outcome_of(
        &self,
        command_id: &str,
        aggregate_id: &str,
        tenant_id: &str,
    ) -> Option<CommandOutcome> {
        self.recent.find(command_id, aggregate_id, tenant_id)
    }

    pub fn remember(&mut self, outcome: &CommandOutcome) {
        self.recent.push(outcome);
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let auction = self.auction.as_ref().map(serde_json::to_vec).transpose()?;
        let packed = self.recent.packed();
        let mut out = Vec::with_capacity(packed.len() + auction.as_ref().map_or(0, Vec::len) + 64);
        out.push(FORMAT_2);
        match &self.tenant_id {
            Some(tenant) => {
                out.push(1);
                put_str(&mut out, tenant);
            }
            None => out.push(0),
        }
        match &auction {
            Some(json) => {
                out.push(1);
                put_varint(&mut out, json.len() as u64);
                out.extend_from_slice(json);
            }
            None => out.push(0),
        }
        out.extend_from_slice(packed);
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        match bytes.first() {
            Some(&FORMAT_2) => Self::from_format_2(&bytes[1..]),
            Some(b'{') => Ok(serde_json::from_slice::<Format1>(bytes)?.into()),
            Some(other) => Err(StateDecodeError::UnknownFormat(*other)),
            None => Err(StateDecodeError::Empty),
        }
    }

    fn from_format_2(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        let mut reader = Reader::new(bytes);
        let tenant_id = match reader.byte()? {
            0 => None,
            _ => Some(reader.str()?.to_owned()),
        };
        let auction = match reader.byte()? {
            0 => None,
            _ => {
                let len = reader.len()?;
                Some(serde_json::from_slice(reader.take(len)?)?)
            }
        };
        let recent = RecentCommands::from_packed(reader.rest())?;
        Ok(Self {
            tenant_id,
            auction,
            recent,
        })
    }
}

/// Format 1: the whole state as JSON. The aliases read the first release's
/// records, which stored whole outcomes.
#[derive(Deserialize)]
struct Format1 {
    tenant_id: Option<String>,
    auction: Option<Auction>,
    recent: Vec<Format1Remembered>,
}

#[derive(Deserialize)]
struct Format1Remembered {
    #[serde(rename = "i", alias = "command_id")]
    command_id: String,
    #[serde(rename = "c", alias = "correlation_id")]
    correlation_id: String,
    #[serde(rename = "a", default)]
    actor_id: String,
    #[serde(rename = "t", alias = "command_type")]
    command_type: String,
    #[serde(rename = "v", alias = "new_version", default)]
    new_version: Option<u64>,
    #[serde(rename = "n", alias = "event_count")]
    event_count: i32,
    #[serde(rename = "rc", alias = "rejection_code", default)]
    rejection_code: Option<String>,
    #[serde(rename = "rr", alias = "reason", default)]
    reason: Option<String>,
    #[serde(rename = "at", alias = "decided_at")]
    decided_at: i64,
}

impl From<Format1> for StoredAggregate {
    fn from(old: Format1) -> Self {
        let mut stored = StoredAggregate {
            tenant_id: old.tenant_id,
            auction: old.auction,
            recent: RecentCommands::default(),
        };
        for r in old.recent {
            stored.remember(&CommandOutcome {
                accepted: r.rejection_code.is_none(),
                command_id: r.command_id,
                correlation_id: r.correlation_id,
                tenant_id: String::new(),
                actor_id: r.actor_id,
                aggregate_id: String::new(),
                command_type: r.command_type,
                new_version: r.new_version,
                event_count: r.event_count,
                rejection_code: r.rejection_code,
                reason: r.reason,
                decided_at: Timestamp::from_millis(r.decided_at),
            });
        }
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_domain::auction::AuctionStatus;
    use gavel_domain::{AuctionId, Currency, Money, UserId};

    /// A changelog record as the first release wrote it (whole outcomes).
    const FIRST_RELEASE: &str = r#"{"tenant_id":"t1","auction":null,"recent":[{"command_id":"c1","correlation_id":"c1","tenant_id":"t1","aggregate_id":"a1","command_type":"PlaceBid","accepted":false,"new_version":null,"event_count":0,"rejection_code":"AUCTION_NOT_FOUND","reason":"auction a1 does not exist","decided_at":17}]}"#;

    /// Format 1 as releases up to December 2026 wrote it (compact JSON).
    const FORMAT_1_COMPACT: &str = r#"{"tenant_id":"t1","auction":{"id":"a1","seller_id":"s","title":"Vase","status":"Active","starting_price":{"minor":100,"currency":"EUR"},"reserve_price":null,"min_increment":{"minor":10,"currency":"EUR"},"end_time":99,"current_price":{"minor":120,"currency":"EUR"},"leading_bidder":"b","bid_count":2,"winner_id":null,"version":4},"recent":[{"i":"0192f0c4-7d1e-7a3b-9c2d-4e5f60718293","c":"0192f0c4-7d1e-7a3b-9c2d-4e5f60718293","a":"b","t":"PlaceBid","v":4,"n":1,"at":42},{"i":"c9","c":"k","t":"PlaceBid","n":0,"rc":"BID_TOO_LOW","rr":"too low","at":43}]}"#;

    #[test]
    fn state_written_by_the_first_release_still_restores() {
        let stored = StoredAggregate::from_bytes(FIRST_RELEASE.as_bytes()).unwrap();
        let outcome = stored.outcome_of("c1", "a1", "t1").unwrap();
        assert_eq!(outcome.rejection_code.as_deref(), Some("AUCTION_NOT_FOUND"));
        assert_eq!(outcome.decided_at, Timestamp::from_millis(17));
        assert!(!outcome.accepted);
    }

    #[test]
    fn compact_json_state_restores_and_is_rewritten_in_format_2() {
        let stored = StoredAggregate::from_bytes(FORMAT_1_COMPACT.as_bytes()).unwrap();
        let auction = stored.auction.clone().unwrap();
        assert_eq!((auction.version, auction.bid_count), (4, 2));
        let accepted = stored
            .outcome_of("0192f0c4-7d1e-7a3b-9c2d-4e5f60718293", "a1", "t1")
            .unwrap();
        assert_eq!(
            (accepted.new_version, accepted.actor_id.as_str()),
            (Some(4), "b")
        );
        let refused = stored.outcome_of("c9", "a1", "t1").unwrap();
        assert_eq!(refused.correlation_id, "k");
        assert_eq!(refused.reason.as_deref(), Some("too low"));
        let bytes = stored.to_bytes().unwrap();
        assert_eq!(bytes[0], FORMAT_2);
        assert!(bytes.len() < FORMAT_1_COMPACT.len());
        assert_eq!(StoredAggregate::from_bytes(&bytes).unwrap(), stored);
    }

    #[test]
    fn format_2_round_trips_with_and_without_parts() {
        let eur = |minor| Money::new(minor, Currency::parse("EUR").unwrap()).unwrap();
        let mut full = StoredAggregate::from_bytes(FIRST_RELEASE.as_bytes()).unwrap();
        full.auction = Some(Auction {
            id: AuctionId::new("a1"),
            seller_id: UserId::new("s"),
            title: "Ein \"Bild\"".into(),
            status: AuctionStatus::Ended,
            starting_price: eur(100),
            reserve_price: Some(eur(500)),
            min_increment: eur(10),
            end_time: Timestamp::from_millis(5),
            current_price: eur(600),
            leading_bidder: Some(UserId::new("b")),
            bid_count: 7,
            winner_id: Some(UserId::new("b")),
            version: 9,
            leading_max: None,
        });
        // A proxy bidder's standing maximum (PlaceBid v2) survives a restore.
        let mut proxy = full.clone();
        if let Some(auction) = proxy.auction.as_mut() {
            auction.leading_max = Some(eur(900));
        }
        for stored in [full, proxy, StoredAggregate::default()] {
            let again = StoredAggregate::from_bytes(&stored.to_bytes().unwrap()).unwrap();
            assert_eq!(again, stored);
        }
    }

    #[test]
    fn unreadable_records_are_errors() {
        assert!(matches!(
            StoredAggregate::from_bytes(b""),
            Err(StateDecodeError::Empty)
        ));
        assert!(matches!(
            StoredAggregate::from_bytes(&[9, 0, 0]),
            Err(StateDecodeError::UnknownFormat(9))
        ));
        assert!(StoredAggregate::from_bytes(&[FORMAT_2, 1, 200]).is_err());
        assert!(StoredAggregate::from_bytes(&[FORMAT_2, 0, 1, 3, b'{', b'}', b'x']).is_err());
    }
}
