//! `gavel sink`: materializes the projector's compacted `view.*` topics into
//! Postgres tables (auction_details, auction_list, user_bids). Each batch: the
//! newest row per view id, one version-guarded multi-row statement per table,
//! and the consumed offsets, in one Postgres transaction; then a best-effort
//! Kafka commit so lag dashboards stay true.

mod changes;
mod columns;
mod details_sql;
mod list_sql;
pub mod rebuild;
mod sink;
mod user_bids_sql;
pub mod verify;
pub mod versions;

pub use sink::{run, run_with, SinkStats};

use gavel_runtime::postgres::{self, Migration};
use gavel_runtime::Config;

/// A read model the view sink maintains: one topic, one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    AuctionDetails,
    AuctionList,
    UserBids,
}

impl View {
    pub const ALL: [View; 3] = [View::AuctionDetails, View::AuctionList, View::UserBids];

    pub fn name(self) -> &'static str {
        match self {
            Self::AuctionDetails => "auction_details",
            Self::AuctionList => "auction_list",
            Self::UserBids => "user_bids",
        }
    }

    /// The live table, schema-qualified.
    pub fn table(self, schema: &str) -> String {
        format!("{schema}.{}", self.name())
    }

    pub fn topic(self, config: &Config) -> &str {
        match self {
            Self::AuctionDetails => &config.topics.view_details,
            Self::AuctionList => &config.topics.view_list,
            Self::UserBids => &config.topics.view_user_bids,
        }
    }

    pub fn of_topic(config: &Config, topic: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.topic(config) == topic)
    }

    /// Every write to the live table holds this lock shared; a rebuild holds it
    /// exclusively for the instant it swaps the tables, so no batch straddles it.
    pub fn swap_lock_key(self, schema: &str) -> i64 {
        postgres::advisory_key(&self.table(schema))
    }
}

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "sink_offsets",
            sql: crate::offsets::MIGRATION_SQL,
        },
        Migration {
            version: 2,
            name: "auction_details",
            sql: details_sql::MIGRATION_SQL,
        },
        Migration {
            version: 3,
            name: "auction_details_bidders",
            sql: details_sql::BIDDERS_SQL,
        },
        Migration {
            version: 4,
            name: "auction_list",
            sql: list_sql::MIGRATION_SQL,
        },
        Migration {
            version: 5,
            name: "user_bids",
            sql: user_bids_sql::MIGRATION_SQL,
        },
        Migration {
            version: 6,
            name: "auction_details_bidder_count",
            sql: details_sql::BIDDER_COUNT_SQL,
        },
        Migration {
            version: 7,
            name: "sink_offsets_source_next_offset",
            sql: crate::offsets::SOURCE_OFFSET_SQL,
        },
        Migration {
            version: 8,
            name: "auction_details_last_bid_automatic",
            sql: details_sql::LAST_BID_AUTOMATIC_SQL,
        },
    ]
}
