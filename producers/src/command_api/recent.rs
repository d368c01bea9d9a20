//! The outcomes seen lately, for `GET /commands/{id}` after a 202: bounded in
//! count and age, so memory stays flat however many commands flow through.
//! Eviction is in arrival order (a FIFO with a TTL): every entry is written
//! once per outcome and read rarely, so recency of reads buys nothing.

use gavel_runtime::auction_codec::CommandOutcome;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct Recent {
    capacity: usize,
    ttl: Duration,
    by_id: HashMap<String, (Instant, CommandOutcome)>,
    order: VecDeque<(Instant, String)>,
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

    pub fn insert(&mut self, outcome: CommandOutcome, now: Instant) {
        self.order.push_back((now, outcome.command_id.clone()));
        self.by_id
            .insert(outcome.command_id.clone(), (now, outcome));
        self.evict(now);
    }

    pub fn get(&self, command_id: &str, now: Instant) -> Option<&CommandOutcome> {
        self.by_id
            .get(command_id)
            .filter(|(at, _)| now.duration_since(*at) < self.ttl)
            .map(|(_, outcome)| outcome)
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

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_domain::Timestamp;

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
            recent.insert(outcome(id), start);
        }
        assert_eq!(recent.len(), 2);
        assert!(recent.get("a", start).is_none());
        assert!(recent.get("c", start).is_some());
        let later = start + Duration::from_secs(11);
        assert!(recent.get("c", later).is_none());
        recent.insert(outcome("d"), later);
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn a_repeated_outcome_stays_until_its_latest_copy_expires() {
        let start = Instant::now();
        let mut recent = Recent::new(10, Duration::from_secs(10));
        recent.insert(outcome("a"), start);
        recent.insert(outcome("a"), start + Duration::from_secs(8));
        recent.insert(outcome("b"), start + Duration::from_secs(12));
        assert!(recent.get("a", start + Duration::from_secs(12)).is_some());
    }
}
