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
        match handle(stored, command, meta, now) {
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
        self.send(
            &self.config.topics.outcomes,
            partition,
            &outcome.aggregate_id,
            &bytes,
            headers,
        )
    }

    /// One changelog record per aggregate touched in this batch: its latest state.
    pub(super) fn write_changelog(&self, batch: &Batch) -> Result<(), ProcessorError> {
        for ((partition, key), state) in &batch.pending.writes {
            self.send(
                &self.config.topics.changelog,
                *partition,
                key,
                &state.to_bytes(),
                OwnedHeaders::new(),
            )?;
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
