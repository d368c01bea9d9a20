//! The 92 % / 8 % split and its rounding, and refunds on compensation.

use super::payment::{eur, sold};
use super::*;
use crate::saga::payment::*;
use proptest::prelude::*;

#[test]
fn the_commission_is_rounded_down_and_the_seller_gets_the_rounding_cent() {
    let cases = [
        (0, 0),
        (1, 0),
        (12, 0),
        (13, 1),
        (100, 8),
        (12_345, 987),
        (99_999, 7_999),
    ];
    for (charge, commission) in cases {
        let split = split_charge(eur(charge));
        assert_eq!(split.commission, eur(commission), "charge {charge}");
        assert_eq!(split.payout, eur(charge - commission), "charge {charge}");
    }
}

proptest! {
    /// payout + commission == charge, commission == floor(charge * 8 / 100).
    #[test]
    fn the_split_always_sums_to_the_charge(charge in 0..=i64::MAX) {
        let split = split_charge(eur(charge));
        prop_assert_eq!(split.payout.minor() + split.commission.minor(), charge);
        prop_assert_eq!(i128::from(split.commission.minor()), i128::from(charge) * 8 / 100);
        prop_assert!(split.commission.minor() <= split.payout.minor());
    }

    /// Fail at a random step with a random kind of failure; after compensation the
    /// refund equals the charge and the ledger balances.
    #[test]
    fn refunds_on_compensation_equal_the_charge(
        charge in 0..10_000_000i64,
        failing in 0usize..4,
        timed_out in any::<bool>(),
    ) {
        let mut trigger = sold();
        trigger.final_price = eur(charge);
        let mut run = Run::started(PaymentSaga::default(), trigger);
        for _ in 0..failing {
            run.succeed();
        }
        while matches!(run.status(), SagaStatus::Running) {
            if timed_out { run.fire_timer(); } else { run.fail(false); }
        }
        while matches!(run.status(), SagaStatus::Compensating { .. }) {
            run.succeed();
        }
        let ledger = PaymentLedger::of(run.saga());
        prop_assert!(matches!(run.status(), SagaStatus::Compensated { .. }), "not compensated: {:?}", run.status());
        prop_assert_eq!(ledger.refunded, ledger.charged);
        prop_assert!(ledger.is_conserved());
    }
}
