//! What the aggregate processor keeps per auction: the domain state, the tenant,
//! and the outcomes of recent commands so a redelivered command id gets its
//! original answer. This is the changelog record (the snapshot).

use gavel_domain::auction::Auction;
use gavel_runtime::auction_codec::CommandOutcome;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many command outcomes per auction are remembered for deduplication.
pub const REMEMBERED_COMMANDS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAggregate {
    pub tenant_id: Option<String>,
    pub auction: Option<Auction>,
    pub recent: VecDeque<CommandOutcome>,
}

impl StoredAggregate {
    pub fn version(&self) -> u64 {
        self.auction.as_ref().map_or(0, |a| a.version)
    }

    pub fn outcome_of(&self, command_id: &str) -> Option<&CommandOutcome> {
        self.recent.iter().find(|o| o.command_id == command_id)
    }

    pub fn remember(&mut self, outcome: CommandOutcome) {
        if self.recent.len() == REMEMBERED_COMMANDS {
            self.recent.pop_front();
        }
        self.recent.push_back(outcome);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
