//! The order saga (seed 001). On order.created: reserve inventory → charge payment →
//! ship, announcing inventory.reserved, order.paid and order.shipped. A failure
//! refunds and releases the inventory, in that (reverse) order. Shipping is the pivot:
//! once shipped nothing is undone. Every command and announcement carries the order
//! id as correlation id and the causing message's id as causation id.

use super::{Direction, OrderId, Participant, Receipt, SagaDefinition, SagaId, SagaStep};
use super::{StepKind, StepPolicies, StepSpec};
use crate::{Money, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: u32,
}

/// The order.created event's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order_id: OrderId,
    pub customer_id: UserId,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub shipping_address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStep {
    ReserveInventory,
    ChargePayment,
    Ship,
}

impl SagaStep for OrderStep {
    fn name(self) -> &'static str {
        match self {
            Self::ReserveInventory => "reserve-inventory",
            Self::ChargePayment => "charge-payment",
            Self::Ship => "ship",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    ReserveInventory {
        order_id: OrderId,
        lines: Vec<OrderLine>,
    },
    ReleaseInventory {
        order_id: OrderId,
        lines: Vec<OrderLine>,
    },
    ChargePayment {
        order_id: OrderId,
        customer_id: UserId,
        amount: Money,
    },
    RefundPayment {
        order_id: OrderId,
        customer_id: UserId,
        amount: Money,
    },
    Ship {
        order_id: OrderId,
        lines: Vec<OrderLine>,
        address: String,
    },
}

/// What the order saga announces; `event_type` is the topic-level name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderMilestone {
    InventoryReserved {
        order_id: OrderId,
        lines: Vec<OrderLine>,
        reservation_id: String,
    },
    OrderPaid {
        order_id: OrderId,
        amount: Money,
        payment_id: String,
    },
    OrderShipped {
        order_id: OrderId,
        tracking_number: String,
    },
    PaymentRefunded {
        order_id: OrderId,
        amount: Money,
    },
    InventoryReleased {
        order_id: OrderId,
    },
}

impl OrderMilestone {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::InventoryReserved { .. } => "inventory.reserved",
            Self::OrderPaid { .. } => "order.paid",
            Self::OrderShipped { .. } => "order.shipped",
            Self::PaymentRefunded { .. } => "payment.refunded",
            Self::InventoryReleased { .. } => "inventory.released",
        }
    }
}

const STEPS: [OrderStep; 3] = [
    OrderStep::ReserveInventory,
    OrderStep::ChargePayment,
    OrderStep::Ship,
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderSaga {
    pub policies: StepPolicies<OrderStep>,
}

impl SagaDefinition for OrderSaga {
    type Trigger = OrderCreated;
    type Step = OrderStep;
    type Command = OrderCommand;
    type Milestone = OrderMilestone;

    fn kind(&self) -> &'static str {
        "order"
    }

    /// The saga id is the order id, which is also the correlation id.
    fn saga_id(&self, order: &OrderCreated) -> SagaId {
        SagaId::new(order.order_id.as_str())
    }

    fn validate(&self, order: &OrderCreated) -> Result<(), String> {
        if order.lines.is_empty() {
            return Err("an order needs at least one line".into());
        }
        if order.lines.iter().any(|l| l.quantity == 0) {
            return Err("every order line needs a positive quantity".into());
        }
        Ok(())
    }

    fn steps(&self) -> &[OrderStep] {
        &STEPS
    }

    fn spec(&self, step: OrderStep) -> StepSpec {
        let (kind, participant) = match step {
            OrderStep::ReserveInventory => (StepKind::Compensable, Participant::Inventory),
            OrderStep::ChargePayment => (StepKind::Compensable, Participant::Payment),
            OrderStep::Ship => (StepKind::Pivot, Participant::Shipping),
        };
        StepSpec {
            kind,
            participant,
            policy: self.policies.forward(&step),
            compensation_policy: self.policies.compensation,
        }
    }

    fn command(
        &self,
        order: &OrderCreated,
        step: OrderStep,
        dir: Direction,
    ) -> Option<OrderCommand> {
        let order_id = order.order_id.clone();
        let lines = order.lines.clone();
        let (customer_id, amount) = (order.customer_id.clone(), order.total);
        Some(match (step, dir) {
            (OrderStep::ReserveInventory, Direction::Do) => {
                OrderCommand::ReserveInventory { order_id, lines }
            }
            (OrderStep::ReserveInventory, Direction::Undo) => {
                OrderCommand::ReleaseInventory { order_id, lines }
            }
            (OrderStep::ChargePayment, Direction::Do) => OrderCommand::ChargePayment {
                order_id,
                customer_id,
                amount,
            },
            (OrderStep::ChargePayment, Direction::Undo) => OrderCommand::RefundPayment {
                order_id,
                customer_id,
                amount,
            },
            (OrderStep::Ship, Direction::Do) => OrderCommand::Ship {
                order_id,
                lines,
                address: order.shipping_address.clone(),
            },
            (OrderStep::Ship, Direction::Undo) => return None,
        })
    }

    fn milestone(
        &self,
        order: &OrderCreated,
        step: OrderStep,
        dir: Direction,
        receipt: &Receipt,
    ) -> Option<OrderMilestone> {
        let order_id = order.order_id.clone();
        let reference = receipt.reference.clone();
        Some(match (step, dir) {
            (OrderStep::ReserveInventory, Direction::Do) => OrderMilestone::InventoryReserved {
                order_id,
                lines: order.lines.clone(),
                reservation_id: reference,
            },
            (OrderStep::ChargePayment, Direction::Do) => OrderMilestone::OrderPaid {
                order_id,
                amount: order.total,
                payment_id: reference,
            },
            (OrderStep::Ship, Direction::Do) => OrderMilestone::OrderShipped {
                order_id,
                tracking_number: reference,
            },
            (OrderStep::ChargePayment, Direction::Undo) => OrderMilestone::PaymentRefunded {
                order_id,
                amount: order.total,
            },
            (OrderStep::ReserveInventory, Direction::Undo) => {
                OrderMilestone::InventoryReleased { order_id }
            }
            (OrderStep::Ship, Direction::Undo) => return None,
        })
    }
}
