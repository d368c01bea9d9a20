//! The auction clock. End times are durable timers kept in the aggregate state;
//! when one is due, the processor decides an EndAuction for it in a transaction
//! of its own, with the partition's committed offsets attached so a zombie
//! instance is fenced here as it is for commands. After a restart the restored
//! state still holds the ACTIVE auction, so an overdue end fires once, then.

use super::record::wall_clock;
use super::session::Session;
use crate::ProcessorError;
use gavel_domain::auction::{AuctionCommand, EndAuction};
use gavel_domain::{AuctionId, TenantId};
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
}
