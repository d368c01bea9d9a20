//! The outcomes seen lately, for `GET /commands/{id}` after a 202: bounded in
//! count and age, so memory stays flat however many commands flow through.
//! Eviction is in arrival order (a FIFO with a TTL): every entry is written
//! once per outcome and read rarely, so recency of reads buys nothing.
//!
//! Entries are packed (all text of an outcome in one allocation, the command
//! id shared by the index and the queue): at the full 100,000 entries this
//! holds about 30 MiB where plain `CommandOutcome`s took about 100.

use gavel_domain::Timestamp;
use gavel_runtime::auction_codec::CommandOutcome;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Recent {
    capacity: usize,
    ttl: Duration,
    by_id: HashMap<Arc<str>, (Instant, Packed)>,
    order: VecDeque<(Instant, Arc<str>)>,
}

impl Recent {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            by_id: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn insert(&mut self, outcome: &CommandOutcome, now: Instant) {
        let id: Arc<str> = Arc::from(outcome.command_id.as_str());
        self.order.push_back((now, Arc::clone(&id)));
        self.by_id.insert(id, (now, Packed::new(outcome)));
        self.evict(now);
    }

    pub fn get(&self, command_id: &str, now: Instant) -> Option<CommandOutcome> {
        self.by_id
            .get(command_id)
            .filter(|(at, _)| now.duration_since(*at) < self.ttl)
            .map(|(_, packed)| packed.unpack(command_id))
    }

    fn evict(&mut self, now: Instant) {
        while let Some((at, id)) = self.order.front() {
            let expired = now.duration_since(*at) >= self.ttl;
            if !expired && self.order.len() <= self.capacity {
                break;
            }
            // A re-inserted id has a newer queue entry; only that one removes it.
            if self.by_id.get(id).is_some_and(|(seen, _)| seen == at) {
                self.by_id.remove(id);
            }
            self.order.pop_front();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// The text fields of an outcome after its command id, in this order; the two
/// optional ones are present when their bit in `Packed::present` is set.
const CORRELATION: usize = 0;
const TENANT: usize = 1;
const ACTOR: usize = 2;
const AGGREGATE: usize = 3;
const COMMAND_TYPE: usize = 4;
const REJECTION_CODE: usize = 5;
const REASON: usize = 6;
const FIELDS: usize = 7;

/// An outcome without its command id (the key): its text fields concatenated
/// in one buffer, `ends[i]` where field i ends.
struct Packed {
    text: Box<str>,
    ends: [u32; FIELDS],
    present: u8,
    accepted: bool,
    event_count: i32,
    new_version: Option<u64>,
    decided_at: Timestamp,
}

impl Packed {
    fn new(outcome: &CommandOutcome) -> Self {
        let fields: [Option<&str>; FIELDS] = [
            Some(&outcome.correlation_id),
            Some(&outcome.tenant_id),
            Some(&outcome.actor_id),
            Some(&outcome.aggregate_id),
            Some(&outcome.command_type),
            outcome.rejection_code.as_deref(),
            outcome.reason.as_deref(),
        ];
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let mut ends = [0u32; FIELDS];
        let mut present = 0u8;
        for (i, field) in fields.iter().enumerate() {
            if let Some(field) = field {
                text.push_str(field);
                present |= 1 << i;
            }
            // Outcome text is bounded far below 4 GiB (command fields are
            // capped at the API); saturate rather than wrap if it ever is not.
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Self {
            text: text.into_boxed_str(),
            ends,
            present,
            accepted: outcome.accepted,
            event_count: outcome.event_count,
            new_version: outcome.new_version,
            decided_at: outcome.decided_at,
        }
    }

    fn field(&self, i: usize) -> Option<&str> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text.get(start..self.ends[i] as usize)
    }

    fn text(&self, i: usize) -> String {
        self.field(i).unwrap_or_default().to_owned()
    }

    fn unpack(&self, command_id: &str) -> CommandOutcome {
        CommandOutcome {
            command_id: command_id.to_owned(),
            correlation_id: self.text(CORRELATION),
            tenant_id: self.text(TENANT),
            actor_id: self.text(ACTOR),
            aggregate_id: self.text(AGGREGATE),
            command_type: self.text(COMMAND_TYPE),
            accepted: self.accepted,
            new_version: self.new_version,
            event_count: self.event_count,
            rejection_code: self.field(REJECTION_CODE).map(str::to_owned),
            reason: self.field(REASON).map(str::to_owned),
            decided_at: self.decided_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str) -> CommandOutcome {
        CommandOutcome {
            command_id: id.into(),
            correlation_id: id.into(),
            tenant_id: "t".into(),
            actor_id: "u".into(),
            aggregate_id: "a".into(),
            command_type: "PlaceBid".into(),
            accepted: true,
            new_version: Some(1),
            event_count: 1,
            rejection_code: None,
            reason: None,
            decided_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn bounded_by_count_and_age() {
        let start = Instant::now();
        let mut recent = Recent::new(2, Duration::from_secs(10));
        for id in ["a", "b", "c"] {
            recent.insert(&outcome(id), start);
        }
        assert_eq!(recent.len(), 2);
        assert!(recent.get("a", start).is_none());
        assert!(recent.get("c", start).is_some());
        let later = start + Duration::from_secs(11);
        assert!(recent.get("c", later).is_none());
        recent.insert(&outcome("d"), later);
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn a_repeated_outcome_stays_until_its_latest_copy_expires() {
        let start = Instant::now();
        let mut recent = Recent::new(10, Duration::from_secs(10));
        recent.insert(&outcome("a"), start);
        recent.insert(&outcome("a"), start + Duration::from_secs(8));
        recent.insert(&outcome("b"), start + Duration::from_secs(12));
        assert!(recent.get("a", start + Duration::from_secs(12)).is_some());
    }

    #[test]
    fn an_outcome_comes_back_as_it_went_in() {
        let now = Instant::now();
        let mut recent = Recent::new(10, Duration::from_secs(10));
        let accepted = outcome("a");
        let mut refused = outcome("b");
        refused.accepted = false;
        refused.new_version = None;
        refused.rejection_code = Some("BID_TOO_LOW".into());
        refused.reason = Some("bid 100 is below the minimum 110 — sorry".into());
        let mut empty_reason = outcome("c");
        empty_reason.reason = Some(String::new());
        for o in [&accepted, &refused, &empty_reason] {
            recent.insert(o, now);
            assert_eq!(recent.get(&o.command_id, now).as_ref(), Some(o));
        }
    }
}
