//! What the aggregate processor keeps per auction: the domain state, the tenant,
//! and a compact record of recent commands so a redelivered command id gets its
//! original answer. This is the changelog record (the snapshot), so it is kept
//! small: every changed aggregate is written once per transaction and read back
//! on restore.

use gavel_domain::auction::Auction;
use gavel_domain::Timestamp;
use gavel_runtime::auction_codec::CommandOutcome;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many command outcomes per auction are remembered for deduplication.
/// Retries come within seconds; a window of this many commands per auction
/// covers them under any realistic bidding rate.
pub const REMEMBERED_COMMANDS: usize = 32;

/// An outcome without what the aggregate already knows (id, tenant). The
/// aliases read the first release's records, which stored whole outcomes:
/// state written by an older Gavel must restore in a newer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    #[serde(rename = "i", alias = "command_id")]
    command_id: String,
    #[serde(rename = "c", alias = "correlation_id")]
    correlation_id: String,
    /// Who sent it (absent in records written before actors existed).
    #[serde(rename = "a", default, skip_serializing_if = "String::is_empty")]
    actor_id: String,
    #[serde(rename = "t", alias = "command_type")]
    command_type: String,
    #[serde(
        rename = "v",
        alias = "new_version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    new_version: Option<u64>,
    #[serde(rename = "n", alias = "event_count")]
    event_count: i32,
    #[serde(
        rename = "rc",
        alias = "rejection_code",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    rejection_code: Option<String>,
    #[serde(
        rename = "rr",
        alias = "reason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    reason: Option<String>,
    #[serde(rename = "at", alias = "decided_at")]
    decided_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAggregate {
    pub tenant_id: Option<String>,
    pub auction: Option<Auction>,
    pub recent: VecDeque<Remembered>,
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
        self.recent
            .iter()
            .find(|r| r.command_id == command_id)
            .map(|r| CommandOutcome {
                command_id: r.command_id.clone(),
                correlation_id: r.correlation_id.clone(),
                tenant_id: tenant_id.to_owned(),
                actor_id: r.actor_id.clone(),
                aggregate_id: aggregate_id.to_owned(),
                command_type: r.command_type.clone(),
                accepted: r.rejection_code.is_none(),
                new_version: r.new_version,
                event_count: r.event_count,
                rejection_code: r.rejection_code.clone(),
                reason: r.reason.clone(),
                decided_at: Timestamp::from_millis(r.decided_at),
            })
    }

    pub fn remember(&mut self, outcome: &CommandOutcome) {
        if self.recent.len() == REMEMBERED_COMMANDS {
            self.recent.pop_front();
        }
        self.recent.push_back(Remembered {
            command_id: outcome.command_id.clone(),
            correlation_id: outcome.correlation_id.clone(),
            actor_id: outcome.actor_id.clone(),
            command_type: outcome.command_type.clone(),
            new_version: outcome.new_version,
            event_count: outcome.event_count,
            rejection_code: outcome.rejection_code.clone(),
            reason: outcome.reason.clone(),
            decided_at: outcome.decided_at.millis(),
        });
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A changelog record as the first release wrote it (whole outcomes).
    const FIRST_RELEASE: &str = r#"{"tenant_id":"t1","auction":null,"recent":[{"command_id":"c1","correlation_id":"c1","tenant_id":"t1","aggregate_id":"a1","command_type":"PlaceBid","accepted":false,"new_version":null,"event_count":0,"rejection_code":"AUCTION_NOT_FOUND","reason":"auction a1 does not exist","decided_at":17}]}"#;

    #[test]
    fn state_written_by_the_first_release_still_restores() {
        let stored = StoredAggregate::from_bytes(FIRST_RELEASE.as_bytes()).unwrap();
        let outcome = stored.outcome_of("c1", "a1", "t1").unwrap();
        assert_eq!(outcome.rejection_code.as_deref(), Some("AUCTION_NOT_FOUND"));
        assert_eq!(outcome.decided_at, Timestamp::from_millis(17));
        assert!(!outcome.accepted);
    }

    #[test]
    fn the_compact_form_round_trips() {
        let mut stored = StoredAggregate::from_bytes(FIRST_RELEASE.as_bytes()).unwrap();
        let outcome = stored.outcome_of("c1", "a1", "t1").unwrap();
        stored.remember(&CommandOutcome {
            command_id: "c2".into(),
            ..outcome
        });
        let again = StoredAggregate::from_bytes(&stored.to_bytes().unwrap()).unwrap();
        assert_eq!(again, stored);
        assert!(again.outcome_of("c2", "a1", "t1").is_some());
    }
}
