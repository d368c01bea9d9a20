//! What a decision writes into the open transaction: events, the outcome, the
//! changelog records of the aggregates it touched, and dead letters (see poison).

use super::handler::{handle, Decision};
use super::session::{Batch, Session};
use crate::ProcessorError;
use gavel_domain::Timestamp;
use gavel_runtime::auction_codec::{event_to_avro, outcome_to_avro, CommandOutcome};
use gavel_runtime::envelope::{header, CommandMeta};
use gavel_runtime::observe::metrics;
use rdkafka::message::{OwnedHeaders, ToBytes};
use rdkafka::producer::BaseRecord;

impl Session<'_> {
    pub(super) fn decide(
        &mut self,
        partition: i32,
        command: &gavel_domain::auction::AuctionCommand,
        meta: &CommandMeta,
        now: Timestamp,
        batch: &mut Batch,
    ) -> Result<(), ProcessorError> {
        let key = command.auction_id().as_str();
        let stored = self.store.checkout(&mut batch.pending, partition, key);
        let decision = handle(stored, command, meta, now);
        if stored.auction.is_none() {
            batch.pending.settle(partition, key);
        }
        match decision {
            Decision::Duplicate(outcome) => {
                self.stats.duplicates += 1;
                self.send_outcome(partition, &outcome)
            }
            Decision::Decided { events, outcome } => {
                for (event, envelope) in &events {
                    let record = gavel_runtime::auction_codec::event_record_name(event);
                    let bytes = self
                        .writers
                        .event(record)?
                        .encode(&event_to_avro(event, envelope))?;
                    self.send(
                        &self.config.topics.events,
                        partition,
                        key,
                        &bytes,
                        envelope.headers(event.type_name()),
                    )?;
                }
                self.stats.events += events.len() as u64;
                metrics::aggregate()
                    .produced
                    .inc_by(events.len() as u64 + 1);
                if !outcome.accepted {
                    self.stats.rejections += 1;
                }
                self.send_outcome(partition, &outcome)
            }
        }
    }

    pub(super) fn send_outcome(
        &self,
        partition: i32,
        outcome: &CommandOutcome,
    ) -> Result<(), ProcessorError> {
        let bytes = self.writers.outcome.encode(&outcome_to_avro(outcome))?;
        let headers = OwnedHeaders::new().insert(rdkafka::message::Header {
            key: header::COMMAND_ID,
            value: Some(outcome.command_id.as_bytes()),
        });
        let sent = self.send(
            &self.config.topics.outcomes,
            partition,
            &outcome.aggregate_id,
            &bytes,
            headers,
        );
        match sent {
            // Inputs are bounded before an outcome is built, so this is a
            // broker with a tiny limit: the command is decided (or
            // dead-lettered) all the same; only its answer is lost.
            Err(error) if crate::txn::is_too_large(&error) => {
                metrics::aggregate()
                    .errors
                    .with_label_values(&["outcome-too-large"])
                    .inc();
                tracing::warn!(%error, bytes = bytes.len(), "outcome too large for the broker: not sent");
                Ok(())
            }
            other => other,
        }
    }

    /// One changelog record per aggregate touched in this batch: its latest
    /// state, or a tombstone for one retired (compaction then drops it).
    pub(super) fn write_changelog(&self, batch: &Batch) -> Result<(), ProcessorError> {
        let topic = &self.config.topics.changelog;
        for ((partition, key), state) in &batch.pending.writes {
            let bytes = state
                .to_bytes()
                .map_err(|e| ProcessorError::Encode(format!("state of {key}: {e}")))?;
            self.send(topic, *partition, key, &bytes, OwnedHeaders::new())?;
        }
        for (partition, key) in &batch.pending.retired {
            let tombstone: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic)
                .partition(*partition)
                .key(key.as_str());
            self.send_record(tombstone)?;
        }
        Ok(())
    }

    pub(super) fn send(
        &self,
        topic: &str,
        partition: i32,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), ProcessorError> {
        let record = BaseRecord::to(topic)
            .partition(partition)
            .key(key)
            .payload(payload)
            .headers(headers);
        self.send_record(record)
    }

    /// Sends into the open transaction, waiting while the local queue is full.
    pub(super) fn send_record<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
        &self,
        record: BaseRecord<'_, K, P>,
    ) -> Result<(), ProcessorError> {
        crate::txn::send_record(&self.producer, record)
    }
}
