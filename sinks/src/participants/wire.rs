//! The saga contract as a participant sees it: step commands decoded with a
//! codec that admits only its command topic's schemas, replies written with
//! this build's StepReply schema under each replies topic's subject (looked
//! up once, at start).

use crate::{batch, SinkError};
use gavel_runtime::avro::{AvroCodec, CachedSchema};
use gavel_runtime::kafka::SAGA_KINDS;
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::saga_wire::{StepCommand, STEP_COMMAND_RECORD, STEP_REPLY_RECORD};
use gavel_runtime::{Config, Shutdown};
use rdkafka::message::{Message, OwnedMessage};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Wire {
    codec: AvroCodec,
    replies: HashMap<String, Arc<CachedSchema>>,
}

impl Wire {
    pub async fn load(config: &Config, command_topic: &str) -> Result<Self, SinkError> {
        let codec = AvroCodec::for_topics(&config.registry, &[command_topic]);
        let mut replies = HashMap::new();
        for kind in SAGA_KINDS {
            let topic = config.topics.saga(kind, "replies");
            let writer = codec.writer_for(&topic, STEP_REPLY_RECORD).await?;
            replies.insert(topic, writer);
        }
        Ok(Self { codec, replies })
    }

    /// The schema replies on `topic` are written with.
    pub fn reply_writer(&self, topic: &str) -> Result<&CachedSchema, SinkError> {
        self.replies
            .get(topic)
            .map(Arc::as_ref)
            .ok_or_else(|| SinkError::Encode(format!("{topic} is no saga's replies topic")))
    }

    /// The command `message` holds, or why it never will be one (see
    /// [`batch::decode_patiently`]).
    pub async fn command(
        &self,
        message: &OwnedMessage,
        readiness: &Readiness,
        shutdown: &Shutdown,
    ) -> Result<Result<StepCommand, String>, SinkError> {
        let Some(payload) = message.payload() else {
            return Ok(Err("command has no payload".into()));
        };
        let stage = &metrics::participant().stage;
        let read = batch::decode_patiently(
            &self.codec,
            payload,
            STEP_COMMAND_RECORD,
            readiness,
            stage,
            shutdown,
        )
        .await?;
        Ok(read.map_err(|reason| format!("not a StepCommand: {reason}")))
    }
}
