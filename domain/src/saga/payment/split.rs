//! The seller / platform split of a winning bid, and the money ledger of one payment
//! saga, from which conservation is checked.

use super::{PaymentSaga, PaymentStep};
use crate::saga::{SagaState, StepDone};
use crate::Money;
use serde::{Deserialize, Serialize};

/// The platform keeps 8 % of the winning bid.
pub const COMMISSION_BASIS_POINTS: i64 = 800;

/// Rounding rule: `commission = floor(charge * 8 / 100)` in minor units, and the
/// seller gets the rest, `payout = charge - commission`. So the parts always sum to
/// the charge, and a rounding cent always goes to the seller (12 345 → 987 + 11 358).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub payout: Money,
    pub commission: Money,
}

pub fn split_charge(charge: Money) -> Split {
    let (commission, payout) = charge.split_share(COMMISSION_BASIS_POINTS);
    Split { payout, commission }
}

/// Every movement of money one payment saga has confirmed, in minor units. Money
/// flows into escrow by the charge and by reversed payouts and commissions, and out
/// of it by payouts, commissions and refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaymentLedger {
    pub charged: i128,
    pub refunded: i128,
    pub paid_out: i128,
    pub payout_reversed: i128,
    pub commission: i128,
    pub commission_reversed: i128,
}

impl PaymentLedger {
    /// A step counts once its success is confirmed. A step whose outcome was in doubt
    /// and has been compensated counts as done and undone: the participant either
    /// undid it or never did it, and both net to zero.
    pub fn of(state: &SagaState<PaymentSaga>) -> Self {
        let price = i128::from(state.trigger.final_price.minor());
        let split = split_charge(state.trigger.final_price);
        let (payout, commission) = (
            i128::from(split.payout.minor()),
            i128::from(split.commission.minor()),
        );
        let mut ledger = Self::default();
        let was_done = |step: PaymentStep| state.completed.iter().any(|d| d.step == step);
        let in_doubt_then_undone = state
            .compensated
            .iter()
            .filter(|d| !was_done(d.step))
            .map(|d: &StepDone<PaymentStep>| d.step);
        let done = state
            .completed
            .iter()
            .map(|d| d.step)
            .chain(in_doubt_then_undone);
        for step in done {
            match step {
                PaymentStep::ChargeWinner => ledger.charged += price,
                PaymentStep::PayoutSeller => {
                    ledger.paid_out += payout;
                    ledger.commission += commission;
                }
                _ => {}
            }
        }
        for undone in &state.compensated {
            match undone.step {
                PaymentStep::ChargeWinner => ledger.refunded += price,
                PaymentStep::PayoutSeller => {
                    ledger.payout_reversed += payout;
                    ledger.commission_reversed += commission;
                }
                _ => {}
            }
        }
        ledger
    }

    /// What escrow holds now: charged + reversals − payouts − commissions − refunds.
    /// Never negative; zero for a COMPLETED or COMPENSATED saga.
    pub fn escrow_balance(&self) -> i128 {
        let into = self.charged + self.payout_reversed + self.commission_reversed;
        let out = self.paid_out + self.commission + self.refunded;
        into - out
    }

    /// Conservation: `charged == (paid_out − payout_reversed) + (commission −
    /// commission_reversed) + refunded`, i.e. every cent charged went to the seller,
    /// to the platform or back to the winner.
    pub fn is_conserved(&self) -> bool {
        self.escrow_balance() == 0
    }
}
