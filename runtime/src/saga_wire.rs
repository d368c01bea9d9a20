//! The records between saga orchestrators and participants, Avro under the
//! registry (`schemas/saga-commands/StepCommand.avsc`,
//! `schemas/saga-replies/StepReply.avsc`, FULL_TRANSITIVE: a participant
//! written by another team codes against them). A participant needs nothing
//! of the saga that sent a command: it applies `command` once per
//! (`effect_key`, `direction`) and answers on `reply_to`, keyed by the saga id
//! so the reply lands on the orchestrator partition that owns the saga.

use crate::{Result, RuntimeError};
use serde::{Deserialize, Serialize};

pub const STEP_COMMAND_RECORD: &str = "dev.gavel.saga.StepCommand";
pub const STEP_REPLY_RECORD: &str = "dev.gavel.saga.StepReply";
pub const SAGA_FAILED_RECORD: &str = "dev.gavel.saga.SagaFailed";
/// `order.created` on the orders topic (written by the command API, another
/// team's order service or its outbox): starts an order saga.
pub const ORDER_CREATED_RECORD: &str = "dev.gavel.order.events.OrderCreated";
/// Namespace of the order saga's milestone records (one record per milestone).
pub const ORDER_MILESTONES: &str = "dev.gavel.order.milestones";

/// One attempt of a step (or of its compensation) for one participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepCommand {
    pub saga_kind: String,
    /// Also the correlation id and the Kafka key.
    pub saga_id: String,
    pub step: String,
    /// `do` or `undo`.
    pub direction: String,
    pub attempt: u32,
    /// Unique per attempt; echoed in the reply.
    pub command_id: String,
    /// Shared by every attempt of a step and its compensation.
    pub effect_key: String,
    pub causation_id: String,
    /// The topic and partition the reply goes to (the orchestrator replica
    /// owning the saga holds that partition).
    pub reply_to: String,
    pub reply_partition: i32,
    /// When the orchestrator stops waiting for this attempt (Unix ms).
    pub deadline_ms: i64,
    /// The saga definition's command, as its serde JSON (`{"Ship": {..}}`):
    /// on the wire, the union branch of that name.
    pub command: serde_json::Value,
}

impl StepCommand {
    pub fn is_undo(&self) -> bool {
        self.direction == "undo"
    }
}

/// A participant's answer to one `StepCommand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReply {
    pub saga_kind: String,
    pub saga_id: String,
    pub step: String,
    pub command_id: String,
    pub participant: String,
    pub outcome: ReplyOutcome,
}

/// Externally tagged: the variant names the union branch of `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyOutcome {
    /// Applied now or before (a repeat is answered the same way).
    Succeeded { reference: String },
    /// Nothing applied. `transient`: the orchestrator may retry.
    Failed { reason: String, transient: bool },
}

/// A saga that ended FAILED and needs a person (on `{prefix}.{kind}.failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaFailed {
    pub saga_kind: String,
    pub saga_id: String,
    pub reason: String,
    /// The orchestrator's whole state of the saga, as JSON.
    pub state_json: String,
}

/// An externally tagged enum value (`{"Variant": {..}}`) split into the
/// variant's name and its fields: a milestone published as its own record.
pub fn untag(tagged: serde_json::Value) -> Result<(String, serde_json::Value)> {
    match tagged {
        serde_json::Value::Object(object) if object.len() == 1 => object
            .into_iter()
            .next()
            .ok_or_else(|| RuntimeError::Avro("empty variant".into())),
        other => Err(RuntimeError::Avro(format!(
            "not one tagged variant: {other}"
        ))),
    }
}

/// Header naming the record type on saga topics (`StepCommand`, `StepReply`,
/// a milestone's type), so consumers can filter without decoding.
pub const TYPE_HEADER: &str = "event_type";
pub const CORRELATION_HEADER: &str = "correlation_id";
pub const CAUSATION_HEADER: &str = "causation_id";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::json;
    use gavel_domain::saga::order::OrderCommand;
    use gavel_domain::saga::payment::PaymentCommand;
    use serde::de::DeserializeOwned;
    use serde_json::{json, Value as Json};

    fn eur(minor: i64) -> Json {
        json!({"minor": minor, "currency": "EUR"})
    }

    /// Every command of both sagas, as the domain serialises it.
    fn every_command() -> Vec<Json> {
        let lines =
            json!([{"sku": "A-1", "quantity": 2}, {"sku": "B-7", "quantity": 4_000_000_000_u64}]);
        let split = json!({"payout": eur(9_000), "commission": eur(1_000)});
        let payment = [
            json!({"ChargeWinner": {"auction_id": "a", "winner_id": "w", "amount": eur(10_000)}}),
            json!({"RefundWinner": {"auction_id": "a", "winner_id": "w", "amount": eur(10_000)}}),
            json!({"PayoutSeller": {"auction_id": "a", "seller_id": "s", "split": split}}),
            json!({"ReversePayout": {"auction_id": "a", "seller_id": "s", "split": split}}),
            json!({"MarkAuctionPaid": {"auction_id": "a"}}),
            json!({"UnmarkAuctionPaid": {"auction_id": "a"}}),
            json!({"TransferOwnership": {"auction_id": "a", "from": "s", "to": "w"}}),
            json!({"ReverseOwnershipTransfer": {"auction_id": "a", "from": "s", "to": "w"}}),
            json!({"NotifyParties": {"auction_id": "a", "notices": [
                {"recipient": "w", "kind": {"Won": {"price": eur(10_000)}}},
                {"recipient": "s", "kind": {"Sold": {"payout": eur(9_000)}}},
                {"recipient": "o", "kind": "Outbid"}]}}),
        ];
        let order = [
            json!({"ReserveInventory": {"order_id": "o", "lines": lines}}),
            json!({"ReleaseInventory": {"order_id": "o", "lines": lines}}),
            json!({"ChargePayment": {"order_id": "o", "customer_id": "c", "amount": eur(5)}}),
            json!({"RefundPayment": {"order_id": "o", "customer_id": "c", "amount": eur(5)}}),
            json!({"Ship": {"order_id": "o", "lines": lines, "address": "1 Rue X"}}),
        ];
        for command in &payment {
            let typed: PaymentCommand = serde_json::from_value(command.clone()).expect("payment");
            assert_eq!(&serde_json::to_value(typed).expect("json"), command);
        }
        for command in &order {
            let typed: OrderCommand = serde_json::from_value(command.clone()).expect("order");
            assert_eq!(&serde_json::to_value(typed).expect("json"), command);
        }
        payment.into_iter().chain(order).collect()
    }

    fn step(command: Json) -> StepCommand {
        StepCommand {
            saga_kind: "order".into(),
            saga_id: "s-1".into(),
            step: "ship".into(),
            direction: "do".into(),
            attempt: 3,
            command_id: "s-1/ship/do/3".into(),
            effect_key: "s-1/ship".into(),
            causation_id: "c".into(),
            reply_to: "saga.order.replies".into(),
            reply_partition: 2,
            deadline_ms: 1_700_000_000_000,
            command,
        }
    }

    /// Writes `record` with this build's schema of `name` and reads it back.
    fn through_avro<T: Serialize + DeserializeOwned>(name: &str, record: &T) -> T {
        let shape = json::shape(name).expect("shape");
        let value = shape
            .to_avro(&serde_json::to_value(record).expect("json"))
            .expect("to avro");
        let read = json::written_and_read(shape.schema(), &value);
        serde_json::from_value(shape.from_avro(read).expect("from avro")).expect("typed")
    }

    #[test]
    fn every_saga_command_travels_in_a_step_command_unchanged() {
        for command in every_command() {
            let sent = step(command);
            assert_eq!(through_avro(STEP_COMMAND_RECORD, &sent), sent);
        }
    }

    #[test]
    fn both_reply_outcomes_travel_unchanged() {
        for outcome in [
            ReplyOutcome::Succeeded {
                reference: "pay-1".into(),
            },
            ReplyOutcome::Failed {
                reason: "card declined".into(),
                transient: true,
            },
        ] {
            let reply = StepReply {
                saga_kind: "payment".into(),
                saga_id: "s-1".into(),
                step: "charge-winner".into(),
                command_id: "s-1/charge-winner/do/1".into(),
                participant: "payment".into(),
                outcome,
            };
            assert_eq!(through_avro(STEP_REPLY_RECORD, &reply), reply);
        }
    }

    #[test]
    fn a_command_the_contract_does_not_know_is_refused_before_sending() {
        let error = json::shape(STEP_COMMAND_RECORD)
            .expect("shape")
            .to_avro(&serde_json::to_value(step(json!({"Teleport": {}}))).expect("json"))
            .expect_err("refused");
        assert!(error.to_string().contains(".command"), "{error}");
    }
}
