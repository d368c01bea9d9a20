//! Records the processor cannot decide: poison goes to the command topic's DLQ
//! inside the batch's transaction (exactly once, with the consumed offset) and
//! is answered with a MALFORMED_COMMAND outcome when its headers name it; a
//! registry outage holds the partition at the record until the registry is back.

use super::handler::malformed_outcome;
use super::record::BorrowedMessageOwned;
use super::session::Session;
use crate::ProcessorError;
use gavel_domain::auction::AuctionCommand;
use gavel_domain::{TenantId, Timestamp};
use gavel_runtime::auction_codec::command_from_avro;
use gavel_runtime::dlq::{DeadLetter, ErrorClass};
use gavel_runtime::envelope::{header, CommandMeta};
use gavel_runtime::observe::metrics;
use gavel_runtime::RuntimeError;
use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use std::time::Duration;

/// Waits between registry attempts: doubling from the first, capped at the last.
pub(super) const FIRST_PAUSE: Duration = Duration::from_millis(250);
pub(super) const MAX_PAUSE: Duration = Duration::from_secs(5);

pub(super) enum Decoded {
    Command(AuctionCommand, CommandMeta),
    /// Never decidable: dead-letter it and move on.
    Poison(ErrorClass, String),
    /// The registry is away: retry this very record later.
    Unavailable(String),
}

impl Session<'_> {
    pub(super) fn decode(&self, message: &BorrowedMessageOwned) -> Decoded {
        let Some(payload) = message.payload.as_deref() else {
            return Decoded::Poison(ErrorClass::Undecodable, "record has no payload".into());
        };
        let decoded = match self.codec.decode_cached(payload) {
            Err(RuntimeError::UnknownSchema(id)) => self
                .runtime
                .block_on(self.codec.fetch_schema(id))
                .and_then(|_| self.codec.decode_cached(payload)),
            other => other,
        };
        let result = decoded.and_then(|d| command_from_avro(&d.schema.name, d.value));
        match result {
            Ok((command, meta)) => Decoded::Command(command, meta),
            Err(error) => match ErrorClass::of(&error) {
                Some(class) => Decoded::Poison(class, error.to_string()),
                None => Decoded::Unavailable(error.to_string()),
            },
        }
    }

    /// Rewinds the partition to `message` so it is read again after a pause;
    /// nothing after it in the partition is processed meanwhile.
    pub(super) fn hold_back(
        &mut self,
        message: &BorrowedMessageOwned,
        reason: String,
    ) -> Result<(), ProcessorError> {
        let topic = &self.config.topics.commands;
        self.consumer.seek(
            topic,
            message.partition,
            Offset::Offset(message.offset),
            Duration::from_secs(10),
        )?;
        let pause = self
            .registry_pause
            .map_or(FIRST_PAUSE, |p| (p * 2).min(MAX_PAUSE));
        self.registry_pause = Some(pause);
        self.held_at = Some((message.partition, message.offset));
        metrics::aggregate()
            .retries
            .with_label_values(&["registry-unavailable"])
            .inc();
        tracing::warn!(topic = %topic, partition = message.partition, offset = message.offset,
            %reason, ?pause, "schema registry unavailable: holding the partition at this record");
        self.readiness
            .set_dependency("schema-registry", Err(reason));
        Ok(())
    }

    /// Dead-letters the record in the open transaction and, when its headers
    /// name the command, answers it with a MALFORMED_COMMAND outcome.
    pub(super) fn reject_malformed(
        &mut self,
        message: &BorrowedMessageOwned,
        class: ErrorClass,
        reason: String,
        now: Timestamp,
    ) -> Result<(), ProcessorError> {
        self.stats.malformed += 1;
        let stage = metrics::aggregate();
        stage.errors.with_label_values(&[class.as_str()]).inc();
        stage
            .dead_letters
            .with_label_values(&[class.as_str()])
            .inc();
        let topic = &self.config.topics.commands;
        tracing::warn!(%topic, partition = message.partition, offset = message.offset,
            aggregate_id = message.key().unwrap_or(""),
            correlation_id = message.header(header::CORRELATION_ID).unwrap_or(""),
            causation_id = message.header(header::COMMAND_ID).unwrap_or(""),
            class = class.as_str(), %reason, "undecodable command dead-lettered");
        self.send_dead_letter(&message.dead_letter(topic, class, &reason))?;
        let Some(command_id) = message.header(header::COMMAND_ID) else {
            return Ok(());
        };
        let meta = CommandMeta {
            command_id: command_id.to_owned(),
            correlation_id: message
                .header(header::CORRELATION_ID)
                .unwrap_or(command_id)
                .to_owned(),
            tenant_id: TenantId::new(message.header(header::TENANT_ID).unwrap_or("")),
            expected_version: None,
        };
        let key = message.key().unwrap_or("").to_owned();
        let outcome = malformed_outcome(&meta, &key, reason, now);
        self.send_outcome(message.partition, &outcome)
    }

    fn send_dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), ProcessorError> {
        let topic = letter.dlq_topic();
        self.send_record(letter.record(&topic, &self.worker))
    }
}
