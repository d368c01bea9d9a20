//! What the generic orchestrator needs to know of one saga definition: where
//! its triggers come from and how to read them, and how its milestones look
//! on the wire.

use gavel_domain::auction::AuctionStatus;
use gavel_domain::saga::order::{OrderCreated, OrderMilestone, OrderSaga};
use gavel_domain::saga::payment::{AuctionSold, PaymentSaga};
use gavel_domain::saga::SagaDefinition;
use gavel_domain::views::AuctionDetails;
use gavel_runtime::Config;

pub trait SagaKind: Send + 'static {
    type Def: SagaDefinition + Send + Sync + 'static;

    fn definition(&self) -> Self::Def;
    fn trigger_topic(&self, config: &Config) -> String;
    /// `Ok(None)` for a record that starts nothing (an auction that has not
    /// ended with a winner); `Err` for a record that cannot be read.
    fn trigger(
        &self,
        payload: &[u8],
    ) -> Result<Option<<Self::Def as SagaDefinition>::Trigger>, String>;
    /// The milestone's event type and JSON body.
    fn milestone(
        &self,
        milestone: &<Self::Def as SagaDefinition>::Milestone,
    ) -> Result<(&'static str, Vec<u8>), String>;
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

    fn trigger(&self, payload: &[u8]) -> Result<Option<AuctionSold>, String> {
        let details: AuctionDetails = serde_json::from_slice(payload)
            .map_err(|e| format!("not an AuctionDetails record: {e}"))?;
        if details.status != AuctionStatus::Ended {
            return Ok(None);
        }
        let Some(winner_id) = details.winner_id.clone() else {
            return Ok(None);
        };
        let outbid_user_ids = details
            .bidders
            .iter()
            .map(|b| b.user_id.clone())
            .filter(|user| user != &winner_id)
            .collect();
        Ok(Some(AuctionSold {
            auction_id: details.auction_id,
            seller_id: details.seller_id,
            winner_id,
            final_price: details.current_price,
            outbid_user_ids,
        }))
    }

    fn milestone(
        &self,
        milestone: &<PaymentSaga as SagaDefinition>::Milestone,
    ) -> Result<(&'static str, Vec<u8>), String> {
        match *milestone {}
    }
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

    fn trigger(&self, payload: &[u8]) -> Result<Option<OrderCreated>, String> {
        serde_json::from_slice(payload)
            .map(Some)
            .map_err(|e| format!("not an order.created record: {e}"))
    }

    fn milestone(&self, milestone: &OrderMilestone) -> Result<(&'static str, Vec<u8>), String> {
        let body = serde_json::to_vec(milestone).map_err(|e| e.to_string())?;
        Ok((milestone.event_type(), body))
    }
}
