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

use rdkafka::message::OwnedHeaders;
use std::collections::hash_map::{Entry, HashMap};

/// One row's latest record in the open transaction.
pub struct PendingView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub key: String,
    /// `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
    pub headers: OwnedHeaders,
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

    fn record(topic: &'static str, key: &str, payload: &str) -> PendingView<'static> {
        PendingView {
            topic,
            partition: 0,
            key: key.to_owned(),
            payload: Some(payload.as_bytes().to_vec()),
            headers: OwnedHeaders::new(),
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
        let rows: Vec<(&str, String, Vec<u8>)> = batch
            .drain()
            .map(|r| (r.topic, r.key, r.payload.unwrap_or_default()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("list", "a1".to_owned(), b"l1".to_vec()),
                ("details", "a1".to_owned(), b"v2".to_vec()),
                ("details", "a2".to_owned(), b"w1".to_vec()),
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
            payload: None,
            ..record("list", "a1", "")
        });
        let rows: Vec<Option<Vec<u8>>> = batch.drain().map(|r| r.payload).collect();
        assert_eq!(rows, vec![None]);
    }
}
