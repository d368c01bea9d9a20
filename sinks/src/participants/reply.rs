//! A participant's answer to a step command, and where it may go. A command
//! names its reply topic (`reply_to`), but whoever can write a participant's
//! command topic could name any topic there and make the participant write to
//! it; so a reply goes only to the replies topic of the command's own saga
//! kind, one of the kinds this pipeline runs.

use crate::SinkError;
use gavel_runtime::avro::{json, CachedSchema};
use gavel_runtime::config::Topics;
use gavel_runtime::kafka::SAGA_KINDS;
use gavel_runtime::observe::metrics;
use gavel_runtime::saga_wire::{ReplyOutcome, StepCommand, StepReply, TYPE_HEADER};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

/// `Ok` when `command` asks for its reply on its saga kind's replies topic
/// (`{saga_prefix}.{kind}.replies`, kind one of [`SAGA_KINDS`]); otherwise why not.
pub fn check_reply_to(topics: &Topics, command: &StepCommand) -> Result<(), String> {
    let kind = command.saga_kind.as_str();
    if !SAGA_KINDS.contains(&kind) {
        return Err(format!(
            "saga kind {kind:?} is not one of {SAGA_KINDS:?}: no reply topic allowed"
        ));
    }
    let allowed = topics.saga(kind, "replies");
    if command.reply_to != allowed {
        return Err(format!(
            "reply_to {:?} refused: a {kind} step is answered only on {allowed}",
            command.reply_to
        ));
    }
    if command.reply_partition < 0 {
        return Err(format!(
            "reply_partition {} refused: not a partition",
            command.reply_partition
        ));
    }
    Ok(())
}

/// Sends the reply to `command` (checked with [`check_reply_to`]) on the
/// partition it names, keyed by the saga id; the acknowledgement to await.
pub fn send(
    producer: &FutureProducer,
    writer: &CachedSchema,
    participant: &str,
    command: &StepCommand,
    outcome: ReplyOutcome,
) -> Result<DeliveryFuture, SinkError> {
    let reply = StepReply {
        saga_kind: command.saga_kind.clone(),
        saga_id: command.saga_id.clone(),
        step: command.step.clone(),
        command_id: command.command_id.clone(),
        participant: participant.to_owned(),
        outcome,
    };
    let payload = json::encode(writer, &reply).map_err(|e| SinkError::Encode(e.to_string()))?;
    let headers = OwnedHeaders::new().insert(Header {
        key: TYPE_HEADER,
        value: Some("StepReply"),
    });
    let record = FutureRecord::to(&command.reply_to)
        .partition(command.reply_partition)
        .key(&command.saga_id)
        .payload(&payload)
        .headers(headers);
    metrics::participant().stage.produced.inc();
    producer
        .send_result(record)
        .map_err(|(error, _)| SinkError::Kafka(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_runtime::Config;

    fn command(kind: &str, reply_to: &str, partition: i32) -> StepCommand {
        StepCommand {
            saga_kind: kind.into(),
            saga_id: "s-1".into(),
            step: "charge-winner".into(),
            direction: "do".into(),
            attempt: 1,
            command_id: "s-1/charge-winner/do/1".into(),
            effect_key: "s-1/charge-winner".into(),
            causation_id: "c".into(),
            reply_to: reply_to.into(),
            reply_partition: partition,
            deadline_ms: 0,
            command: serde_json::Value::Null,
        }
    }

    #[test]
    fn only_the_own_saga_kinds_replies_topic_is_allowed() {
        let topics = Config::defaults().expect("defaults").topics;
        assert_eq!(
            check_reply_to(&topics, &command("payment", "saga.payment.replies", 3)),
            Ok(())
        );
        assert!(check_reply_to(&topics, &command("order", "saga.order.replies", 0)).is_ok());
        for (kind, topic, partition) in [
            ("payment", "auction.commands", 0),
            ("payment", "saga.order.replies", 0),
            ("payment", "saga.payment.replies.dlq", 0),
            ("refund", "saga.refund.replies", 0),
            ("payment", "saga.payment.replies", -1),
        ] {
            let refused = check_reply_to(&topics, &command(kind, topic, partition));
            assert!(refused.is_err(), "{kind} {topic} {partition}");
        }
        let reason = check_reply_to(&topics, &command("payment", "view.auction_details", 0))
            .expect_err("a view topic");
        assert!(reason.contains("saga.payment.replies"), "{reason}");
    }
}
