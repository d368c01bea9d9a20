//! What the generic orchestrator needs to know of one saga definition: where
//! its triggers come from and how to read them, and how its milestones look
//! on the wire.

use super::wire::Wire;
use crate::ProcessorError;
use gavel_domain::auction::AuctionStatus;
use gavel_domain::saga::order::{OrderCreated, OrderMilestone, OrderSaga};
use gavel_domain::saga::payment::{AuctionSold, PaymentSaga};
use gavel_domain::saga::SagaDefinition;
use gavel_domain::views::AuctionDetails;
use gavel_runtime::saga_wire::{self, ORDER_CREATED_RECORD, ORDER_MILESTONES};
use gavel_runtime::view_wire::{legacy_json, AUCTION_DETAILS_RECORD};
use gavel_runtime::Config;

pub trait SagaKind: Send + 'static {
    type Def: SagaDefinition + Send + Sync + 'static;

    fn definition(&self) -> Self::Def;
    fn trigger_topic(&self, config: &Config) -> String;
    /// `Ok(Ok(None))` for a record that starts nothing (an auction that has
    /// not ended with a winner); `Ok(Err(reason))` for a record that cannot
    /// be read; `Err` when the registry could not be asked.
    fn trigger(
        &self,
        wire: &Wire,
        payload: &[u8],
    ) -> Read<Option<<Self::Def as SagaDefinition>::Trigger>>;
    /// The milestone's event type, the full name of its record and the
    /// record's fields (serde JSON of the variant).
    fn milestone(
        &self,
        milestone: &<Self::Def as SagaDefinition>::Milestone,
    ) -> Result<Milestone, String>;
    /// Every milestone record the kind may publish: their writer schemas are
    /// looked up before the orchestrator starts.
    fn milestone_records(&self) -> &'static [&'static str];
}

/// A record read: `Ok(Err(reason))` when it never will be (poison), `Err`
/// when the registry could not be asked.
pub type Read<T> = Result<Result<T, String>, ProcessorError>;

pub struct Milestone {
    pub event_type: &'static str,
    pub record: String,
    pub fields: serde_json::Value,
}

/// The payment saga starts from the projector's AuctionDetails record of an
/// ended auction with a winner: AuctionEnded alone lacks the seller and the
/// runners-up, and the closing details record lists the highest bidders, once per
/// version, on the auction's partition.
pub struct Payment;

impl SagaKind for Payment {
    type Def = PaymentSaga;

    fn definition(&self) -> PaymentSaga {
        PaymentSaga::default()
    }

    fn trigger_topic(&self, config: &Config) -> String {
        config.topics.view_details.clone()
    }

    fn trigger(&self, wire: &Wire, payload: &[u8]) -> Read<Option<AuctionSold>> {
        if let Some(details) = legacy_json::<AuctionDetails>(payload) {
            return Ok(Ok(sold(details)));
        }
        let details: AuctionDetails = match wire.decode(payload, AUCTION_DETAILS_RECORD)? {
            Ok(details) => details,
            Err(reason) => return Ok(Err(format!("not an AuctionDetails record: {reason}"))),
        };
        Ok(Ok(sold(details)))
    }

    fn milestone(
        &self,
        milestone: &<PaymentSaga as SagaDefinition>::Milestone,
    ) -> Result<Milestone, String> {
        match *milestone {}
    }

    fn milestone_records(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The sale an ended auction's details record announces, if it has a winner.
fn sold(details: AuctionDetails) -> Option<AuctionSold> {
    if details.status != AuctionStatus::Ended {
        return None;
    }
    let winner_id = details.winner_id.clone()?;
    let outbid_user_ids = details
        .bidders
        .iter()
        .map(|b| b.user_id.clone())
        .filter(|user| user != &winner_id)
        .collect();
    Some(AuctionSold {
        auction_id: details.auction_id,
        seller_id: details.seller_id,
        winner_id,
        final_price: details.current_price,
        outbid_user_ids,
    })
}

/// The order saga starts from `order.created` on the order topic; other order
/// events (the saga's own milestones, if routed there) start nothing.
pub struct Order;

impl SagaKind for Order {
    type Def = OrderSaga;

    fn definition(&self) -> OrderSaga {
        OrderSaga::default()
    }

    fn trigger_topic(&self, config: &Config) -> String {
        config.topics.orders.clone()
    }

    fn trigger(&self, wire: &Wire, payload: &[u8]) -> Read<Option<OrderCreated>> {
        // Other order events registered on the topic start nothing.
        let read = wire.decode_if(payload, ORDER_CREATED_RECORD)?;
        Ok(read.map_err(|e| format!("not an order.created record: {e}")))
    }

    fn milestone(&self, milestone: &OrderMilestone) -> Result<Milestone, String> {
        let tagged = serde_json::to_value(milestone).map_err(|e| e.to_string())?;
        let (variant, fields) = saga_wire::untag(tagged).map_err(|e| e.to_string())?;
        Ok(Milestone {
            event_type: milestone.event_type(),
            record: format!("{ORDER_MILESTONES}.{variant}"),
            fields,
        })
    }

    fn milestone_records(&self) -> &'static [&'static str] {
        &[
            "dev.gavel.order.milestones.InventoryReserved",
            "dev.gavel.order.milestones.OrderPaid",
            "dev.gavel.order.milestones.OrderShipped",
            "dev.gavel.order.milestones.PaymentRefunded",
            "dev.gavel.order.milestones.InventoryReleased",
        ]
    }
}
