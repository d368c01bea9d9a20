//! The per-aggregate hash chain. Each event's hash covers its predecessor's
//! hash and its own content, so editing, removing or reordering a stored event
//! breaks every later link of that aggregate: `verify` recomputes and sees it.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The `prev_hash` of an aggregate's version 1.
pub const GENESIS: [u8; 32] = [0; 32];

/// Versions the byte layout below, so a future layout can coexist with this one.
const LAYOUT: &[u8] = b"gavel.event-store.v1";

/// The hashed content of one event, exactly as the store keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    pub tenant_id: &'a str,
    pub aggregate_id: &'a str,
    pub version: i64,
    pub event_type: &'a str,
    /// The canonical payload JSON text (`payload::canonical`).
    pub payload: &'a str,
    pub occurred_at_ms: i64,
}

impl Link<'_> {
    /// SHA-256(prev_hash || content). Strings are length-prefixed so no two
    /// different field splits produce the same bytes.
    pub fn hash(&self, prev_hash: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash);
        hasher.update(LAYOUT);
        for text in [self.aggregate_id, self.event_type] {
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        }
        hasher.update(self.version.to_be_bytes());
        hasher.update((self.payload.len() as u64).to_be_bytes());
        hasher.update(self.payload.as_bytes());
        hasher.update(self.occurred_at_ms.to_be_bytes());
        hasher.update((self.tenant_id.len() as u64).to_be_bytes());
        hasher.update(self.tenant_id.as_bytes());
        hasher.finalize().into()
    }
}

/// An event ready for the store, not yet chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub tenant_id: String,
    pub aggregate_id: String,
    pub version: i64,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub envelope: String,
    pub occurred_at_ms: i64,
    /// Kafka coordinates, for logs.
    pub partition: i32,
    pub offset: i64,
}

impl NewEvent {
    pub fn link(&self) -> Link<'_> {
        Link {
            tenant_id: &self.tenant_id,
            aggregate_id: &self.aggregate_id,
            version: self.version,
            event_type: &self.event_type,
            payload: &self.payload,
            occurred_at_ms: self.occurred_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEvent {
    pub event: NewEvent,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// A batch after chaining: rows to append, and what could not be.
#[derive(Debug, Default)]
pub struct Chained {
    pub rows: Vec<ChainedEvent>,
    /// Already in the store (a redelivery the offsets did not catch).
    pub duplicates: u64,
    /// Their predecessor is neither stored nor in the batch: chaining them
    /// would hide a hole in the history, so they are refused.
    pub gaps: Vec<NewEvent>,
}

/// Hashes already stored, keyed by (aggregate id, version).
pub type KnownHashes = HashMap<(String, i64), Vec<u8>>;

/// Chains `events` (in consumption order, which is version order per
/// aggregate) onto the stored hashes in `known`.
pub fn chain(events: Vec<NewEvent>, mut known: KnownHashes) -> Chained {
    let mut chained = Chained::default();
    for event in events {
        let key = (event.aggregate_id.clone(), event.version);
        if known.contains_key(&key) {
            chained.duplicates += 1;
            continue;
        }
        let prev_hash = if event.version == 1 {
            Some(GENESIS)
        } else {
            known
                .get(&(event.aggregate_id.clone(), event.version - 1))
                .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        };
        let Some(prev_hash) = prev_hash else {
            chained.gaps.push(event);
            continue;
        };
        let hash = event.link().hash(&prev_hash);
        known.insert(key, hash.to_vec());
        chained.rows.push(ChainedEvent {
            event,
            prev_hash,
            hash,
        });
    }
    chained
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(aggregate: &str, version: i64, payload: &str) -> NewEvent {
        NewEvent {
            tenant_id: "t".into(),
            aggregate_id: aggregate.into(),
            version,
            event_id: format!("{aggregate}-{version}"),
            event_type: "BidPlaced".into(),
            payload: payload.into(),
            envelope: "{}".into(),
            occurred_at_ms: version * 10,
            partition: 0,
            offset: version,
        }
    }

    #[test]
    fn a_batch_chains_from_genesis_and_in_memory() {
        let chained = chain(
            vec![event("a", 1, "{}"), event("a", 2, "{}")],
            HashMap::new(),
        );
        assert_eq!(chained.rows.len(), 2);
        assert_eq!(chained.rows[0].prev_hash, GENESIS);
        assert_eq!(chained.rows[1].prev_hash, chained.rows[0].hash);
        assert_eq!(
            chained.rows[1].hash,
            chained.rows[1].event.link().hash(&chained.rows[0].hash)
        );
    }

    #[test]
    fn a_later_batch_chains_onto_the_stored_hash() {
        let first = chain(vec![event("a", 1, "{}")], HashMap::new());
        let known = HashMap::from([(("a".to_owned(), 1), first.rows[0].hash.to_vec())]);
        let second = chain(vec![event("a", 1, "{}"), event("a", 2, "{}")], known);
        assert_eq!(second.duplicates, 1);
        assert_eq!(second.rows.len(), 1);
        assert_eq!(second.rows[0].prev_hash, first.rows[0].hash);
    }

    #[test]
    fn a_missing_predecessor_is_refused_not_chained() {
        let chained = chain(
            vec![event("a", 3, "{}"), event("a", 4, "{}")],
            HashMap::new(),
        );
        assert!(chained.rows.is_empty());
        assert_eq!(chained.gaps.len(), 2);
    }

    #[test]
    fn any_content_change_changes_the_hash() {
        let base = event("a", 2, r#"{"x":1}"#);
        let hash = base.link().hash(&GENESIS);
        let mut changed = base.clone();
        changed.payload = r#"{"x":2}"#.into();
        assert_ne!(changed.link().hash(&GENESIS), hash);
        changed = base.clone();
        changed.tenant_id = "other".into();
        assert_ne!(changed.link().hash(&GENESIS), hash);
        assert_ne!(base.link().hash(&[1; 32]), hash);
        // Length prefixes: moving a character between fields is a change too.
        let (mut a, mut b) = (base.clone(), base);
        (a.aggregate_id, a.event_type) = ("ab".into(), "c".into());
        (b.aggregate_id, b.event_type) = ("a".into(), "bc".into());
        assert_ne!(a.link().hash(&GENESIS), b.link().hash(&GENESIS));
    }
}
