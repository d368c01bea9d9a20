//! The auction clock. End times are durable timers kept in the aggregate state;
//! when one is due, the processor decides an EndAuction for it in a transaction
//! of its own, with the partition's committed offsets attached so a zombie
//! instance is fenced here as it is for commands. After a restart the restored
//! state still holds the ACTIVE auction, so an overdue end fires once, then.
//!
//! The same clock retires closed auctions once `GAVEL_CLOSED_RETENTION_SECS`
//! has passed after their end time: removed from memory and tombstoned in the
//! changelog, in a transaction carrying the partitions' offsets like a timer's.

use super::record::wall_clock;
use super::session::Session;
use crate::ProcessorError;
use gavel_domain::auction::{AuctionCommand, EndAuction, CLOCK_ACTOR};
use gavel_domain::{AuctionId, TenantId, Timestamp, UserId};
use gavel_runtime::envelope::CommandMeta;
use std::collections::HashMap;

impl Session<'_> {
    pub(super) fn fire_due_timers(&mut self) -> Result<(), ProcessorError> {
        let now = wall_clock();
        // A timer fires only once every command appended before its end time has
        // been decided, so a bid made a moment before the end is never beaten by it.
        let mut drained: HashMap<i32, bool> = HashMap::new();
        let mut due = Vec::new();
        for (partition, key, end_time) in self.store.due_timers(now, self.config.batch_max) {
            let ready = self.stream_passed(partition, end_time)
                || *drained
                    .entry(partition)
                    .or_insert_with(|| self.drained(partition));
            if ready {
                due.push((partition, key));
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        self.in_transaction(|session, batch| {
            for (partition, key) in &due {
                let Some((tenant, end_time)) = session
                    .store
                    .get(&batch.pending, *partition, key)
                    .and_then(|s| {
                        s.auction
                            .as_ref()
                            .map(|a| (s.tenant_id.clone().unwrap_or_default(), a.end_time))
                    })
                else {
                    continue;
                };
                // Deterministic id: a retried firing is deduplicated like any command.
                let command_id = format!("timer:{key}:{}", end_time.millis());
                let meta = CommandMeta {
                    command_id: command_id.clone(),
                    correlation_id: command_id,
                    tenant_id: TenantId::new(tenant),
                    actor_id: UserId::new(CLOCK_ACTOR),
                    expected_version: None,
                };
                let command = AuctionCommand::End(EndAuction {
                    auction_id: AuctionId::new(key.as_str()),
                });
                session.decide(*partition, &command, &meta, now, batch)?;
                if let Some(position) = session.positions.get(partition) {
                    batch.offsets.insert(*partition, *position);
                }
            }
            Ok(())
        })?;
        self.stats.timers_fired += due.len() as u64;
        tracing::info!(count = due.len(), "auction end timers fired");
        Ok(())
    }

    /// Forgets closed auctions past their retention, and changelog records
    /// without an auction found at restore (state kept before that rule).
    pub(super) fn retire_closed(&mut self) -> Result<(), ProcessorError> {
        let retention = i64::try_from(self.config.closed_retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = Timestamp::from_millis(wall_clock().millis().saturating_sub(retention));
        let mut due = self.store.due_retirements(cutoff, self.config.batch_max);
        let orphans = self
            .config
            .batch_max
            .saturating_sub(due.len())
            .min(self.store.orphans.len());
        due.extend(self.store.orphans.drain(..orphans));
        if due.is_empty() {
            return Ok(());
        }
        self.in_transaction(|session, batch| {
            for (partition, key) in &due {
                batch.pending.retired.insert((*partition, key.clone()));
                if let Some(position) = session.positions.get(partition) {
                    batch.offsets.insert(*partition, *position);
                }
            }
            Ok(())
        })?;
        self.stats.retired += due.len() as u64;
        tracing::info!(count = due.len(), "closed auctions retired from state");
        Ok(())
    }
}
