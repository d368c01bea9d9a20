//! The AuctionDetails read model: one row per auction with price, bids, a
//! per-bidder summary and the outcome. It is also the projector's state: the
//! AuctionList and UserBids views are derived from it.

use crate::auction::{AuctionEvent, AuctionStatus};
use crate::{AuctionId, Money, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// The envelope fields a reducer needs from each event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub aggregate_id: AuctionId,
    pub tenant_id: TenantId,
    pub version: u64,
    pub occurred_at: Timestamp,
}

/// One bidder's part in an auction: the bid history summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidderSummary {
    pub user_id: UserId,
    pub highest_bid: Money,
    pub bid_count: u32,
    pub last_bid_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionDetails {
    pub auction_id: AuctionId,
    pub tenant_id: TenantId,
    pub seller_id: UserId,
    pub title: String,
    pub status: AuctionStatus,
    pub starting_price: Money,
    pub reserve_price: Option<Money>,
    pub min_increment: Money,
    pub current_price: Money,
    pub bid_count: u32,
    pub leading_bidder: Option<UserId>,
    pub winner_id: Option<UserId>,
    pub end_time: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The version of the last event applied: the row's guard against replays.
    pub version: u64,
    /// Every bidder once, in the order of their first bid.
    #[serde(default)]
    pub bidders: Vec<BidderSummary>,
}

impl AuctionDetails {
    /// Applies `event` unless the row already reflects its version (a redelivery),
    /// so reducing the same events twice gives the same row.
    pub fn reduce(row: Option<Self>, meta: &EventMeta, event: &AuctionEvent) -> Option<Self> {
        match row {
            Some(row) if meta.version <= row.version => Some(row),
            Some(mut row) => {
                row.apply(event);
                row.version = meta.version;
                row.updated_at = meta.occurred_at;
                Some(row)
            }
            None => Self::from_creation(meta, event),
        }
    }

    fn from_creation(meta: &EventMeta, event: &AuctionEvent) -> Option<Self> {
        let AuctionEvent::Created {
            seller_id,
            title,
            starting_price,
            reserve_price,
            min_increment,
            end_time,
        } = event
        else {
            return None;
        };
        Some(Self {
            auction_id: meta.aggregate_id.clone(),
            tenant_id: meta.tenant_id.clone(),
            seller_id: seller_id.clone(),
            title: title.clone(),
            status: AuctionStatus::Draft,
            starting_price: *starting_price,
            reserve_price: *reserve_price,
            min_increment: *min_increment,
            current_price: *starting_price,
            bid_count: 0,
            leading_bidder: None,
            winner_id: None,
            end_time: *end_time,
            created_at: meta.occurred_at,
            updated_at: meta.occurred_at,
            version: meta.version,
            bidders: Vec::new(),
        })
    }

    fn apply(&mut self, event: &AuctionEvent) {
        match event {
            AuctionEvent::Created { .. } => {}
            AuctionEvent::Started { .. } => self.status = AuctionStatus::Active,
            AuctionEvent::BidPlaced {
                bidder_id,
                amount,
                placed_at,
                ..
            } => {
                self.current_price = *amount;
                self.leading_bidder = Some(bidder_id.clone());
                self.bid_count += 1;
                self.record_bid(bidder_id, *amount, *placed_at);
            }
            AuctionEvent::Cancelled { .. } => self.status = AuctionStatus::Cancelled,
            AuctionEvent::Ended {
                winner_id,
                final_price,
                ..
            } => {
                self.status = AuctionStatus::Ended;
                self.winner_id = winner_id.clone();
                self.current_price = *final_price;
            }
        }
    }
}

impl AuctionDetails {
    fn record_bid(&mut self, bidder: &UserId, amount: Money, at: Timestamp) {
        match self.bidders.iter_mut().find(|b| &b.user_id == bidder) {
            Some(summary) => {
                // Accepted bids only ever rise, so the latest is the highest.
                summary.highest_bid = amount;
                summary.bid_count += 1;
                summary.last_bid_at = at;
            }
            None => self.bidders.push(BidderSummary {
                user_id: bidder.clone(),
                highest_bid: amount,
                bid_count: 1,
                last_bid_at: at,
            }),
        }
    }

    pub fn bidder(&self, user: &UserId) -> Option<&BidderSummary> {
        self.bidders.iter().find(|b| &b.user_id == user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
    }

    fn meta(version: u64) -> EventMeta {
        EventMeta {
            aggregate_id: AuctionId::new("a-1"),
            tenant_id: TenantId::new("t-1"),
            version,
            occurred_at: Timestamp::from_millis(1_000 + version as i64),
        }
    }

    fn history() -> Vec<AuctionEvent> {
        vec![
            AuctionEvent::Created {
                seller_id: UserId::new("seller"),
                title: "Still life".into(),
                starting_price: eur(1_000),
                reserve_price: None,
                min_increment: eur(100),
                end_time: Timestamp::from_millis(9_000),
            },
            AuctionEvent::Started {
                started_at: Timestamp::from_millis(1_002),
            },
            AuctionEvent::BidPlaced {
                bidder_id: UserId::new("bob"),
                amount: eur(1_000),
                previous_price: eur(1_000),
                placed_at: Timestamp::from_millis(1_003),
            },
            AuctionEvent::Ended {
                winner_id: Some(UserId::new("bob")),
                final_price: eur(1_000),
                reserve_met: true,
                ended_at: Timestamp::from_millis(9_000),
            },
        ]
    }

    fn reduce_all(
        events: &[AuctionEvent],
        versions: impl Iterator<Item = u64>,
    ) -> Option<AuctionDetails> {
        events
            .iter()
            .zip(versions)
            .fold(None, |row, (event, version)| {
                AuctionDetails::reduce(row, &meta(version), event)
            })
    }

    #[test]
    fn a_full_history_gives_the_winner_price_and_version() {
        let row = reduce_all(&history(), 1..).unwrap();
        assert_eq!(row.status, AuctionStatus::Ended);
        assert_eq!(row.winner_id, Some(UserId::new("bob")));
        assert_eq!(row.current_price, eur(1_000));
        assert_eq!(row.bid_count, 1);
        assert_eq!(row.version, 4);
        assert_eq!(row.updated_at, Timestamp::from_millis(1_004));
        let bob = row.bidder(&UserId::new("bob")).unwrap();
        assert_eq!((bob.highest_bid, bob.bid_count), (eur(1_000), 1));
    }

    #[test]
    fn redelivered_events_change_nothing() {
        let once = reduce_all(&history(), 1..).unwrap();
        let bid = &history()[2];
        let again = AuctionDetails::reduce(Some(once.clone()), &meta(3), bid).unwrap();
        assert_eq!(again, once);
    }

    #[test]
    fn events_before_creation_give_no_row() {
        assert_eq!(AuctionDetails::reduce(None, &meta(2), &history()[1]), None);
    }
}
