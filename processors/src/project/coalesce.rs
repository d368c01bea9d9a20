//! The view records of one transaction, coalesced per row: a read model
//! needs each row's last state per commit, not one record per event. A hot
//! auction's details row changes with every bid; within a batch only its last
//! version is published, which is what a compacted view topic keeps anyway.
//! Rows are independent (the sinks guard each by its version), but the order
//! of the records still matters to whoever asks how far a reader of a view
//! topic has come: the records go out in the order of each row's last change,
//! so the last record of a batch on each view partition carries the batch's
//! latest source offset there, as it did with one record per event (a rebuild
//! stops where a stopped sink stands by exactly that offset).

//! A row is kept typed, with its source event's provenance, and encoded only
//! when the transaction commits: a replaced row costs no encoding.

use super::records::{Provenance, ViewRow};
use std::collections::hash_map::{Entry, HashMap};
use std::rc::Rc;

/// One row's latest change in the open transaction.
pub struct PendingView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub key: String,
    pub row: ViewRow,
    pub provenance: Rc<Provenance>,
}

/// The rows changed in the open transaction, each with its latest record.
#[derive(Default)]
pub struct Coalesced<'a> {
    /// In order of change; a replaced record leaves a `None` behind.
    rows: Vec<Option<PendingView<'a>>>,
    /// (topic, key) → index of the row's latest record in `rows`.
    index: HashMap<(&'a str, String), usize>,
    /// Records replaced by a later one of the same row.
    replaced: u64,
}

impl<'a> Coalesced<'a> {
    /// Keeps `record` as its row's latest, replacing an earlier one.
    pub fn put(&mut self, record: PendingView<'a>) {
        let at = self.rows.len();
        match self.index.entry((record.topic, record.key.clone())) {
            Entry::Occupied(mut entry) => {
                let before = entry.insert(at);
                if let Some(slot) = self.rows.get_mut(before) {
                    *slot = None;
                }
                self.replaced += 1;
            }
            Entry::Vacant(slot) => {
                slot.insert(at);
            }
        }
        self.rows.push(Some(record));
    }

    /// How many records later ones of the same row replaced.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Rows changed, i.e. records to send.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The rows' latest records, in the order of each row's last change.
    pub fn drain(&mut self) -> impl Iterator<Item = PendingView<'a>> + '_ {
        self.index.clear();
        self.rows.drain(..).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_domain::views::{UserBid, UserBidStatus};

    fn source() -> Rc<Provenance> {
        Rc::new(Provenance {
            version: 1,
            source_offset: 0,
            tenant_id: gavel_domain::TenantId::new("t"),
            correlation_id: "c".into(),
            event_id: "e".into(),
        })
    }

    /// A row told apart by its `label` (a user row's bidder).
    fn record(topic: &'static str, key: &str, label: &str) -> PendingView<'static> {
        let eur = gavel_domain::Currency::parse("EUR").expect("currency");
        let row = UserBid {
            user_id: gavel_domain::UserId::new(label),
            auction_id: gavel_domain::AuctionId::new(key),
            tenant_id: gavel_domain::TenantId::new("t"),
            title: String::new(),
            highest_bid: gavel_domain::Money::new(1, eur).expect("money"),
            bid_count: 1,
            status: UserBidStatus::Leading,
            end_time: gavel_domain::Timestamp::from_millis(1),
            last_bid_at: gavel_domain::Timestamp::from_millis(1),
            version: 1,
        };
        PendingView {
            topic,
            partition: 0,
            key: key.to_owned(),
            row: ViewRow::UserBid(row),
            provenance: source(),
        }
    }

    fn label(row: &ViewRow) -> String {
        match row {
            ViewRow::UserBid(row) => row.user_id.to_string(),
            ViewRow::Tombstone => "tombstone".into(),
            _ => "other".into(),
        }
    }

    #[test]
    fn given_two_versions_of_a_row_when_coalesced_then_only_the_last_remains() {
        let mut batch = Coalesced::default();
        batch.put(record("details", "a1", "v1"));
        batch.put(record("list", "a1", "l1"));
        batch.put(record("details", "a1", "v2"));
        batch.put(record("details", "a2", "w1"));
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.replaced(), 1);
        let rows: Vec<(&str, String, String)> = batch
            .drain()
            .map(|r| (r.topic, r.key, label(&r.row)))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("list", "a1".to_owned(), "l1".to_owned()),
                ("details", "a1".to_owned(), "v2".to_owned()),
                ("details", "a2".to_owned(), "w1".to_owned()),
            ],
            "in the order of each row's last change"
        );
        assert_eq!(batch.len(), 0);
    }

    #[test]
    fn given_a_tombstone_after_an_upsert_when_coalesced_then_the_tombstone_wins() {
        let mut batch = Coalesced::default();
        batch.put(record("list", "a1", "l1"));
        batch.put(PendingView {
            row: ViewRow::Tombstone,
            ..record("list", "a1", "")
        });
        let rows: Vec<String> = batch.drain().map(|r| label(&r.row)).collect();
        assert_eq!(rows, vec!["tombstone".to_owned()]);
    }
}
