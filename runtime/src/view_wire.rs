//! The view topics' records, Avro under the registry (`schemas/views/`,
//! FULL_TRANSITIVE): the projector writes them; the view sink, the payment
//! saga and other teams' consumers read them, each upgrading on its own.

use crate::avro::{AvroCodec, CachedSchema};
use crate::config::Topics;
use crate::Result;
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub const AUCTION_DETAILS_RECORD: &str = "dev.gavel.views.AuctionDetails";
pub const AUCTION_LIST_RECORD: &str = "dev.gavel.views.AuctionListItem";
pub const USER_BID_RECORD: &str = "dev.gavel.views.UserBid";

/// A view row as releases before the Avro contract wrote it (JSON). The
/// compacted view topics keep such a record until its row changes again, and
/// a reader upgraded before its projector meets new ones, so readers still
/// take them; `None` for anything else.
pub fn legacy_json<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    if payload.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(payload).ok()
}

/// This build's schema of each view record under its topic's subject.
pub struct ViewWriters {
    pub details: Arc<CachedSchema>,
    pub list: Arc<CachedSchema>,
    pub user_bids: Arc<CachedSchema>,
}

impl ViewWriters {
    pub async fn load(codec: &AvroCodec, topics: &Topics) -> Result<Self> {
        Ok(Self {
            details: codec
                .writer_for(&topics.view_details, AUCTION_DETAILS_RECORD)
                .await?,
            list: codec
                .writer_for(&topics.view_list, AUCTION_LIST_RECORD)
                .await?,
            user_bids: codec
                .writer_for(&topics.view_user_bids, USER_BID_RECORD)
                .await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::json;
    use gavel_domain::views::{AuctionDetails, AuctionListItem, UserBid};
    use serde_json::json;

    fn eur(minor: i64) -> serde_json::Value {
        json!({"minor": minor, "currency": "EUR"})
    }

    /// `record` through this build's schema of `name` and back, unchanged.
    fn round_trips<T>(name: &str, record: serde_json::Value)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let typed: T = serde_json::from_value(record).expect("the domain's shape");
        let shape = json::shape(name).expect("shape");
        let value = shape
            .to_avro(&serde_json::to_value(&typed).expect("json"))
            .expect("to avro");
        let read = json::written_and_read(shape.schema(), &value);
        let back: T = serde_json::from_value(shape.from_avro(read).expect("json")).expect("typed");
        assert_eq!(back, typed);
    }

    #[test]
    fn every_view_row_travels_unchanged() {
        let details = |reserve: serde_json::Value, leader: serde_json::Value| {
            json!({
                "auction_id": "a-1", "tenant_id": "t", "seller_id": "s", "title": "Print",
                "status": "Ended", "starting_price": eur(100), "reserve_price": reserve,
                "min_increment": eur(10), "current_price": eur(250), "bid_count": 7,
                "leading_bidder": leader, "winner_id": leader, "end_time": 1_700_000_000_000_i64,
                "created_at": 1, "updated_at": 2, "version": 9, "bidder_count": 2,
                "bidders": [{"user_id": "u", "highest_bid": eur(250), "bid_count": 4, "last_bid_at": 3}],
                "last_bid_automatic": true
            })
        };
        round_trips::<AuctionDetails>(AUCTION_DETAILS_RECORD, details(eur(200), json!("u")));
        round_trips::<AuctionDetails>(
            AUCTION_DETAILS_RECORD,
            details(serde_json::Value::Null, serde_json::Value::Null),
        );
        round_trips::<AuctionListItem>(
            AUCTION_LIST_RECORD,
            json!({"auction_id": "a-1", "tenant_id": "t", "seller_id": "s", "title": "Print",
                   "current_price": eur(250), "bid_count": 7, "end_time": 5, "version": 9}),
        );
        round_trips::<UserBid>(
            USER_BID_RECORD,
            json!({"user_id": "u", "auction_id": "a-1", "tenant_id": "t", "title": "Print",
                   "highest_bid": eur(250), "bid_count": 4, "status": "Leading",
                   "end_time": 5, "last_bid_at": 3, "version": 9}),
        );
    }
}
