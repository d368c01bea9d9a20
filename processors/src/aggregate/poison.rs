//! Records the processor cannot decide: poison goes to the command topic's DLQ
//! inside the batch's transaction (exactly once, with the consumed offset) and
//! is answered with a MALFORMED_COMMAND outcome when its headers name it; a
//! registry outage holds the partition at the record until the registry is back.

use super::handler::malformed_outcome;
use super::record::BorrowedMessageOwned;
use super::session::Session;
use crate::ProcessorError;
use gavel_domain::auction::{limits, AuctionCommand};
use gavel_domain::{TenantId, Timestamp, UserId};
use gavel_runtime::auction_codec::{decode_command, UnreadableCommand};
use gavel_runtime::dlq::{DeadLetter, ErrorClass};
use gavel_runtime::envelope::{header, loggable, CommandMeta};
use gavel_runtime::observe::metrics;
use rdkafka::consumer::Consumer;
use rdkafka::Offset;
use std::time::Duration;

/// Waits between registry attempts: doubling from the first, capped at the last.
pub(super) const FIRST_PAUSE: Duration = Duration::from_millis(250);
pub(super) const MAX_PAUSE: Duration = Duration::from_secs(5);

pub(super) enum Decoded {
    Command(AuctionCommand, CommandMeta),
    /// Never decidable: dead-letter it and move on (answering it when its
    /// body or headers say which command it was).
    Poison {
        class: ErrorClass,
        reason: String,
        meta: Option<CommandMeta>,
    },
    /// The registry is away: retry this very record later.
    Unavailable(String),
}

impl Session<'_> {
    pub(super) fn decode(&self, message: &BorrowedMessageOwned) -> Decoded {
        let Some(payload) = message.payload.as_deref() else {
            return Decoded::Poison {
                class: ErrorClass::Undecodable,
                reason: "record has no payload".into(),
                meta: None,
            };
        };
        let decoded = self.codec.decode_on(&self.runtime, payload);
        let result = decoded
            .map_err(UnreadableCommand::from)
            .and_then(|d| decode_command(&d.schema.name, d.value));
        match result {
            Ok((command, meta)) => Decoded::Command(command, meta),
            Err(UnreadableCommand { error, meta }) => match ErrorClass::of(&error) {
                Some(class) => Decoded::Poison {
                    class,
                    reason: error.to_string(),
                    meta: meta.map(|m| *m),
                },
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

    /// Dead-letters the record in the open transaction and, when its body or
    /// headers name the command, answers it with a MALFORMED_COMMAND outcome.
    pub(super) fn reject_malformed(
        &mut self,
        message: &BorrowedMessageOwned,
        class: ErrorClass,
        reason: String,
        body_meta: Option<CommandMeta>,
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
            aggregate_id = loggable(message.key().unwrap_or("")),
            correlation_id = loggable(message.header(header::CORRELATION_ID).unwrap_or("")),
            causation_id = loggable(message.header(header::COMMAND_ID).unwrap_or("")),
            class = class.as_str(), reason = loggable(&reason), "{}", class.log_message());
        self.send_dead_letter(&message.dead_letter(topic, class, &reason))?;
        let Some(meta) = body_meta.or_else(|| meta_from_headers(message)) else {
            return Ok(());
        };
        let key = message.key().unwrap_or("").to_owned();
        let outcome = malformed_outcome(&meta, &key, reason, now);
        self.send_outcome(message.partition, &outcome)
    }

    fn send_dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), ProcessorError> {
        crate::txn::send_letter(&self.producer, letter, &self.worker)
    }
}

/// The command a record's headers name, for an answer when its body is unreadable.
/// Only ids within the bounds every command meets: an answer must fit.
fn meta_from_headers(message: &BorrowedMessageOwned) -> Option<CommandMeta> {
    let bounded = |key: &str| {
        message
            .header(key)
            .filter(|value| limits::id(key_field(key), value).is_ok())
    };
    let command_id = bounded(header::COMMAND_ID)?;
    Some(CommandMeta {
        command_id: command_id.to_owned(),
        correlation_id: bounded(header::CORRELATION_ID)
            .unwrap_or(command_id)
            .to_owned(),
        tenant_id: TenantId::new(bounded(header::TENANT_ID).unwrap_or("")),
        actor_id: UserId::new(""),
        expected_version: None,
    })
}

fn key_field(key: &str) -> &'static str {
    match key {
        header::COMMAND_ID => "command_id",
        header::CORRELATION_ID => "correlation_id",
        _ => "tenant_id",
    }
}
