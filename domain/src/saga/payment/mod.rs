//! The auction payment saga (seed 000). On AuctionEnded with a winner:
//! charge the winner → pay the seller 92 % and keep 8 % commission → mark the auction
//! paid → transfer ownership → notify winner, seller and outbid bidders.
//! Compensations: reverse ownership transfer, unmark paid, reverse payout, refund.

mod command;
mod split;

pub use command::{Notice, NoticeKind, PaymentCommand};
pub use split::{split_charge, PaymentLedger, Split, COMMISSION_BASIS_POINTS};

use super::{Direction, Participant, Receipt, SagaDefinition, SagaId, SagaStep};
use super::{StepKind, StepPolicies, StepSpec};
use crate::auction::{Auction, AuctionStatus};
use crate::{AuctionId, Money, UserId};
use serde::{Deserialize, Serialize};

/// The data of an AuctionEnded event with a winner, plus who was outbid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionSold {
    pub auction_id: AuctionId,
    pub seller_id: UserId,
    pub winner_id: UserId,
    pub final_price: Money,
    /// The runners-up to notify: the other bidders the closing details record
    /// lists (the highest ones; a record naming every bidder of a hot auction
    /// would not fit in Kafka). The winner and duplicates are left out of notices.
    pub outbid_user_ids: Vec<UserId>,
}

impl AuctionSold {
    /// From an ended auction's state; `None` when it has not ended or has no winner.
    pub fn from_ended_auction(auction: &Auction, outbid_user_ids: Vec<UserId>) -> Option<Self> {
        if auction.status != AuctionStatus::Ended {
            return None;
        }
        Some(Self {
            auction_id: auction.id.clone(),
            seller_id: auction.seller_id.clone(),
            winner_id: auction.winner_id.clone()?,
            final_price: auction.current_price,
            outbid_user_ids,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentStep {
    ChargeWinner,
    PayoutSeller,
    MarkAuctionPaid,
    TransferOwnership,
    NotifyParties,
}

impl SagaStep for PaymentStep {
    fn name(self) -> &'static str {
        match self {
            Self::ChargeWinner => "charge-winner",
            Self::PayoutSeller => "payout-seller",
            Self::MarkAuctionPaid => "mark-auction-paid",
            Self::TransferOwnership => "transfer-ownership",
            Self::NotifyParties => "notify-parties",
        }
    }
}

/// The payment saga announces nothing itself: its participants' replies and the
/// notices are the record. (An empty enum: no value exists.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentMilestone {}

const STEPS: [PaymentStep; 5] = [
    PaymentStep::ChargeWinner,
    PaymentStep::PayoutSeller,
    PaymentStep::MarkAuctionPaid,
    PaymentStep::TransferOwnership,
    PaymentStep::NotifyParties,
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentSaga {
    pub policies: StepPolicies<PaymentStep>,
}

impl SagaDefinition for PaymentSaga {
    type Trigger = AuctionSold;
    type Step = PaymentStep;
    type Command = PaymentCommand;
    type Milestone = PaymentMilestone;

    fn kind(&self) -> &'static str {
        "payment"
    }

    /// One payment saga per auction: the saga id is the auction id.
    fn saga_id(&self, trigger: &AuctionSold) -> SagaId {
        SagaId::new(trigger.auction_id.as_str())
    }

    fn validate(&self, trigger: &AuctionSold) -> Result<(), String> {
        if trigger.winner_id == trigger.seller_id {
            return Err("the winner cannot be the seller".into());
        }
        Ok(())
    }

    fn steps(&self) -> &[PaymentStep] {
        &STEPS
    }

    fn spec(&self, step: PaymentStep) -> StepSpec {
        let (kind, participant) = match step {
            PaymentStep::ChargeWinner => (StepKind::Compensable, Participant::Payment),
            PaymentStep::PayoutSeller => (StepKind::Compensable, Participant::Payout),
            PaymentStep::MarkAuctionPaid => (StepKind::Compensable, Participant::Auction),
            PaymentStep::TransferOwnership => (StepKind::Compensable, Participant::Ownership),
            // No compensation: a notice once delivered cannot be unsent, and it changes
            // nothing the sale depends on. It runs after the sale is final, so a
            // notification outage is retried and then flagged, never a reason to undo
            // a sale. (TransferOwnership's compensation still exists: it runs when the
            // transfer itself fails with an unknown outcome.)
            PaymentStep::NotifyParties => (StepKind::Retriable, Participant::Notifications),
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
        sold: &AuctionSold,
        step: PaymentStep,
        direction: Direction,
    ) -> Option<PaymentCommand> {
        let auction_id = sold.auction_id.clone();
        let (winner, seller) = (sold.winner_id.clone(), sold.seller_id.clone());
        let split = split_charge(sold.final_price);
        let amount = sold.final_price;
        Some(match (step, direction) {
            (PaymentStep::ChargeWinner, Direction::Do) => PaymentCommand::ChargeWinner {
                auction_id,
                winner_id: winner,
                amount,
            },
            (PaymentStep::ChargeWinner, Direction::Undo) => PaymentCommand::RefundWinner {
                auction_id,
                winner_id: winner,
                amount,
            },
            (PaymentStep::PayoutSeller, Direction::Do) => PaymentCommand::PayoutSeller {
                auction_id,
                seller_id: seller,
                split,
            },
            (PaymentStep::PayoutSeller, Direction::Undo) => PaymentCommand::ReversePayout {
                auction_id,
                seller_id: seller,
                split,
            },
            (PaymentStep::MarkAuctionPaid, Direction::Do) => {
                PaymentCommand::MarkAuctionPaid { auction_id }
            }
            (PaymentStep::MarkAuctionPaid, Direction::Undo) => {
                PaymentCommand::UnmarkAuctionPaid { auction_id }
            }
            (PaymentStep::TransferOwnership, Direction::Do) => PaymentCommand::TransferOwnership {
                auction_id,
                from: seller,
                to: winner,
            },
            (PaymentStep::TransferOwnership, Direction::Undo) => {
                PaymentCommand::ReverseOwnershipTransfer {
                    auction_id,
                    from: winner,
                    to: seller,
                }
            }
            (PaymentStep::NotifyParties, Direction::Do) => PaymentCommand::NotifyParties {
                auction_id,
                notices: command::notices(sold, split),
            },
            (PaymentStep::NotifyParties, Direction::Undo) => return None,
        })
    }

    fn milestone(
        &self,
        _: &AuctionSold,
        _: PaymentStep,
        _: Direction,
        _: &Receipt,
    ) -> Option<PaymentMilestone> {
        None
    }
}
