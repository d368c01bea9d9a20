//! The view records written straight from the domain's rows into Avro binary,
//! in the field order of `schemas/views/`. The projector publishes one of
//! these per changed row and transaction; going through serde JSON and a
//! generic Avro value tree cost several allocations per field. The tests
//! hold every byte equal to the generic mapping (`avro::json`), so a schema
//! change that this file does not follow fails them.

use crate::avro::CachedSchema;
use crate::{Result, RuntimeError};
use gavel_domain::auction::AuctionStatus;
use gavel_domain::views::{AuctionDetails, AuctionListItem, BidderSummary, UserBid, UserBidStatus};
use gavel_domain::Money;

/// A Confluent-framed record being written.
struct Record(Vec<u8>);

impl Record {
    fn start(writer: &CachedSchema) -> Self {
        let mut out = Vec::with_capacity(256);
        out.push(0);
        out.extend_from_slice(&writer.id.to_be_bytes());
        Self(out)
    }

    /// Avro's zig-zag variable-length long.
    fn long(&mut self, value: i64) {
        let mut n = ((value << 1) ^ (value >> 63)) as u64;
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn string(&mut self, value: &str) {
        self.long(value.len() as i64);
        self.0.extend_from_slice(value.as_bytes());
    }

    fn boolean(&mut self, value: bool) {
        self.0.push(u8::from(value));
    }

    fn money(&mut self, money: &Money) {
        self.long(money.minor());
        let currency = money.currency();
        self.string(currency.as_str());
    }

    /// `["null", T]`: branch 0 for none, 1 then the value.
    fn optional<T>(&mut self, value: Option<&T>, write: impl FnOnce(&mut Self, &T)) {
        match value {
            None => self.long(0),
            Some(value) => {
                self.long(1);
                write(self, value);
            }
        }
    }
}

/// A `u64` as Avro's long, refused (as the generic mapping refuses it) above `i64::MAX`.
fn long(field: &str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| RuntimeError::Avro(format!(".{field}: expected a long")))
}

/// The name serde gives the status, which the view records carry.
fn auction_status(status: AuctionStatus) -> &'static str {
    match status {
        AuctionStatus::Draft => "Draft",
        AuctionStatus::Active => "Active",
        AuctionStatus::Ended => "Ended",
        AuctionStatus::Cancelled => "Cancelled",
    }
}

fn user_bid_status(status: UserBidStatus) -> &'static str {
    match status {
        UserBidStatus::Leading => "Leading",
        UserBidStatus::Outbid => "Outbid",
        UserBidStatus::Won => "Won",
        UserBidStatus::Lost => "Lost",
        UserBidStatus::Cancelled => "Cancelled",
    }
}

pub fn details(writer: &CachedSchema, row: &AuctionDetails) -> Result<Vec<u8>> {
    let mut out = Record::start(writer);
    out.string(row.auction_id.as_str());
    out.string(row.tenant_id.as_str());
    out.string(row.seller_id.as_str());
    out.string(&row.title);
    out.string(auction_status(row.status));
    out.money(&row.starting_price);
    out.optional(row.reserve_price.as_ref(), Record::money);
    out.money(&row.min_increment);
    out.money(&row.current_price);
    out.long(i64::from(row.bid_count));
    out.optional(row.leading_bidder.as_ref(), |out, id| {
        out.string(id.as_str())
    });
    out.optional(row.winner_id.as_ref(), |out, id| out.string(id.as_str()));
    out.long(row.end_time.millis());
    out.long(row.created_at.millis());
    out.long(row.updated_at.millis());
    out.long(long("version", row.version)?);
    out.long(i64::from(row.bidder_count));
    bidders(&mut out, &row.bidders);
    out.boolean(row.last_bid_automatic);
    Ok(out.0)
}

/// An array as one block (its length, the items) and the end marker.
fn bidders(out: &mut Record, bidders: &[BidderSummary]) {
    if !bidders.is_empty() {
        out.long(bidders.len() as i64);
        for bidder in bidders {
            out.string(bidder.user_id.as_str());
            out.money(&bidder.highest_bid);
            out.long(i64::from(bidder.bid_count));
            out.long(bidder.last_bid_at.millis());
        }
    }
    out.long(0);
}

pub fn list_item(writer: &CachedSchema, row: &AuctionListItem) -> Result<Vec<u8>> {
    let mut out = Record::start(writer);
    out.string(row.auction_id.as_str());
    out.string(row.tenant_id.as_str());
    out.string(row.seller_id.as_str());
    out.string(&row.title);
    out.money(&row.current_price);
    out.long(i64::from(row.bid_count));
    out.long(row.end_time.millis());
    out.long(long("version", row.version)?);
    Ok(out.0)
}

pub fn user_bid(writer: &CachedSchema, row: &UserBid) -> Result<Vec<u8>> {
    let mut out = Record::start(writer);
    out.string(row.user_id.as_str());
    out.string(row.auction_id.as_str());
    out.string(row.tenant_id.as_str());
    out.string(&row.title);
    out.money(&row.highest_bid);
    out.long(i64::from(row.bid_count));
    out.string(user_bid_status(row.status));
    out.long(row.end_time.millis());
    out.long(row.last_bid_at.millis());
    out.long(long("version", row.version)?);
    Ok(out.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::json;
    use crate::view_wire::{AUCTION_DETAILS_RECORD, AUCTION_LIST_RECORD, USER_BID_RECORD};
    use gavel_domain::{AuctionId, Currency, TenantId, Timestamp, UserId};

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").expect("EUR")).expect("money")
    }

    fn bidder(name: &str, minor: i64) -> BidderSummary {
        BidderSummary {
            user_id: UserId::new(name),
            highest_bid: eur(minor),
            bid_count: 3,
            last_bid_at: Timestamp::from_millis(1_700_000_000_123),
        }
    }

    fn details_row(status: AuctionStatus, bidders: Vec<BidderSummary>) -> AuctionDetails {
        AuctionDetails {
            auction_id: AuctionId::new("a-1"),
            tenant_id: TenantId::new("t"),
            seller_id: UserId::new("s"),
            title: "Print — ünïcode".into(),
            status,
            starting_price: eur(100),
            reserve_price: None,
            min_increment: eur(10),
            current_price: eur(0),
            bid_count: u32::MAX,
            leading_bidder: None,
            winner_id: Some(UserId::new("w")),
            end_time: Timestamp::from_millis(-5),
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(i64::MAX - 1),
            version: i64::MAX as u64,
            bidder_count: 70,
            bidders,
            last_bid_automatic: true,
        }
    }

    /// Every byte as the generic mapping writes it.
    fn same_as_generic<T: serde::Serialize>(
        name: &str,
        row: &T,
        direct: fn(&CachedSchema, &T) -> Result<Vec<u8>>,
    ) {
        let writer = CachedSchema::compiled_in(77, name).expect("this build's schema");
        let generic = json::encode(&writer, row).expect("generic");
        assert_eq!(direct(&writer, row).expect("direct"), generic, "{name}");
    }

    #[test]
    fn every_view_record_is_written_byte_for_byte_as_the_generic_mapping_writes_it() {
        for status in [
            AuctionStatus::Draft,
            AuctionStatus::Active,
            AuctionStatus::Ended,
            AuctionStatus::Cancelled,
        ] {
            let mut row = details_row(status, vec![bidder("u", 250), bidder("v", 200)]);
            same_as_generic(AUCTION_DETAILS_RECORD, &row, details);
            row.reserve_price = Some(eur(5_000));
            row.leading_bidder = Some(UserId::new("u"));
            row.winner_id = None;
            row.bidders.clear();
            row.last_bid_automatic = false;
            same_as_generic(AUCTION_DETAILS_RECORD, &row, details);
        }
        let row = details_row(AuctionStatus::Active, Vec::new());
        let item = gavel_domain::views::AuctionListItem {
            auction_id: row.auction_id.clone(),
            tenant_id: row.tenant_id.clone(),
            seller_id: row.seller_id.clone(),
            title: row.title.clone(),
            current_price: eur(1_234_567),
            bid_count: 9,
            end_time: Timestamp::from_millis(1),
            version: 64,
        };
        same_as_generic(AUCTION_LIST_RECORD, &item, list_item);
        for status in [
            UserBidStatus::Leading,
            UserBidStatus::Outbid,
            UserBidStatus::Won,
            UserBidStatus::Lost,
            UserBidStatus::Cancelled,
        ] {
            let bid = UserBid {
                user_id: UserId::new("u"),
                auction_id: row.auction_id.clone(),
                tenant_id: row.tenant_id.clone(),
                title: row.title.clone(),
                highest_bid: eur(127),
                bid_count: 128,
                status,
                end_time: Timestamp::from_millis(-64),
                last_bid_at: Timestamp::from_millis(63),
                version: 8_192,
            };
            same_as_generic(USER_BID_RECORD, &bid, user_bid);
        }
    }

    #[test]
    fn a_version_beyond_a_long_is_refused_as_the_generic_mapping_refuses_it() {
        let mut row = details_row(AuctionStatus::Active, Vec::new());
        row.version = u64::MAX;
        let writer = CachedSchema::compiled_in(1, AUCTION_DETAILS_RECORD).expect("schema");
        assert!(json::encode(&writer, &row).is_err());
        assert!(details(&writer, &row).is_err());
    }
}
