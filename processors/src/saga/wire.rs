//! The saga contract on the wire for one orchestrator: this build's
//! StepCommand schema under each participant topic's subject (looked up once,
//! before the session starts), and a codec admitting only the schemas of the
//! kind's replies and trigger topics.

use super::SagaTopics;
use crate::ProcessorError;
use gavel_domain::saga::Participant;
use gavel_runtime::avro::{json, AvroCodec, CachedSchema};
use gavel_runtime::dlq::ErrorClass;
use gavel_runtime::saga_wire::{
    StepReply, SAGA_FAILED_RECORD, STEP_COMMAND_RECORD, STEP_REPLY_RECORD,
};
use gavel_runtime::Config;
use rdkafka::message::{Message, OwnedMessage};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;

pub struct Wire {
    codec: AvroCodec,
    /// By participant command topic.
    commands: HashMap<String, Arc<CachedSchema>>,
    /// By milestone record name.
    milestones: HashMap<String, Arc<CachedSchema>>,
    failed: Arc<CachedSchema>,
    runtime: tokio::runtime::Handle,
}

impl Wire {
    pub async fn load(
        config: &Config,
        topics: &SagaTopics,
        milestone_records: &[&str],
    ) -> Result<Self, ProcessorError> {
        let codec = AvroCodec::for_topics(&config.registry, &[&topics.replies, &topics.trigger]);
        let mut commands = HashMap::new();
        for participant in Participant::ALL {
            let topic = config.topics.participant_commands(participant.as_str());
            let writer = codec.writer_for(&topic, STEP_COMMAND_RECORD).await?;
            commands.insert(topic, writer);
        }
        let mut milestones = HashMap::new();
        for record in milestone_records {
            let writer = codec.writer_for(&topics.milestones, record).await?;
            milestones.insert((*record).to_owned(), writer);
        }
        let failed = codec.writer_for(&topics.failed, SAGA_FAILED_RECORD).await?;
        Ok(Self {
            codec,
            commands,
            milestones,
            failed,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub fn milestone_writer(&self, record: &str) -> Result<&CachedSchema, ProcessorError> {
        self.milestones
            .get(record)
            .map(Arc::as_ref)
            .ok_or_else(|| ProcessorError::Encode(format!("{record} is no milestone record")))
    }

    pub fn failed_writer(&self) -> &CachedSchema {
        &self.failed
    }

    /// The schema step commands for `topic` are written with.
    pub fn command_writer(&self, topic: &str) -> Result<&CachedSchema, ProcessorError> {
        self.commands.get(topic).map(Arc::as_ref).ok_or_else(|| {
            ProcessorError::Encode(format!("{topic} is no participant's command topic"))
        })
    }

    /// The reply `message` holds; `Ok(Err(reason))` for a record that will
    /// never be one (it goes to the DLQ), `Err` when the registry could not
    /// be asked (the session is retried).
    pub fn reply(
        &self,
        message: &OwnedMessage,
    ) -> Result<Result<StepReply, String>, ProcessorError> {
        let Some(payload) = message.payload() else {
            return Ok(Err("reply has no payload".into()));
        };
        let read = self.decode(payload, STEP_REPLY_RECORD)?;
        Ok(read.map_err(|reason| format!("not a StepReply: {reason}")))
    }

    /// Like [`Wire::decode`], decoding once, but a record of another type is
    /// `Ok(Ok(None))` rather than poison.
    pub fn decode_if<T: DeserializeOwned>(
        &self,
        payload: &[u8],
        expected: &str,
    ) -> Result<Result<Option<T>, String>, ProcessorError> {
        let decoded = self.codec.decode_on(&self.runtime, payload);
        let read = decoded.and_then(|d| {
            if d.schema.name == expected {
                json::decode(d, expected).map(Some)
            } else {
                Ok(None)
            }
        });
        match read {
            Ok(record) => Ok(Ok(record)),
            Err(error) if ErrorClass::of(&error).is_some() => Ok(Err(error.to_string())),
            Err(error) => Err(error.into()),
        }
    }

    /// The `expected` record `payload` holds, as [`Wire::reply`] reads one.
    pub fn decode<T: DeserializeOwned>(
        &self,
        payload: &[u8],
        expected: &str,
    ) -> Result<Result<T, String>, ProcessorError> {
        let decoded = self.codec.decode_on(&self.runtime, payload);
        match decoded.and_then(|d| json::decode(d, expected)) {
            Ok(record) => Ok(Ok(record)),
            Err(error) if ErrorClass::of(&error).is_some() => Ok(Err(error.to_string())),
            Err(error) => Err(error.into()),
        }
    }
}
