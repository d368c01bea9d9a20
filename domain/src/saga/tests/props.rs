//! Property tests: random interleavings of participant outcomes, lost, late,
//! reordered and repeated replies, timers (current and old) and forged replies,
//! followed by a drain in which participants behave. Every saga ends in exactly one
//! terminal state, no command id is sent twice, duplicates change nothing,
//! compensations run once each in reverse order, and money is conserved, both in the
//! saga's own ledger and in the simulated world.

use super::payment::{eur, sold};
use super::sim::{Op, Sim};
use super::world::{Outcome, World};
use super::*;
use crate::saga::order::{OrderCreated, OrderLine, OrderSaga, OrderStep};
use crate::saga::payment::{split_charge, PaymentLedger, PaymentSaga, PaymentStep};
use crate::UserId;
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        5 => Just(Outcome::Apply),
        1 => Just(Outcome::ApplyReplyLost),
        2 => Just(Outcome::Transient),
        1 => Just(Outcome::Permanent),
    ];
    prop_oneof![
        6 => (any::<usize>(), outcome).prop_map(|(i, o)| Op::Process(i, o)),
        4 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Redeliver),
        2 => Just(Op::FireTimer),
        1 => any::<usize>().prop_map(Op::OldTimer),
        1 => Just(Op::Forged),
    ]
}

fn payment_world_is_conserved(world: &World<PaymentSaga>, price: i64) -> bool {
    let split = split_charge(eur(price));
    let count = |dir| {
        (
            world.applied_count(PaymentStep::ChargeWinner, dir),
            world.applied_count(PaymentStep::PayoutSeller, dir),
        )
    };
    let ((charges, payouts), (refunds, reversals)) = (count(Direction::Do), count(Direction::Undo));
    let price = i128::from(price);
    let seller_and_platform = i128::from(split.payout.minor() + split.commission.minor());
    charges * price == (payouts - reversals) * seller_and_platform + refunds * price
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn payment_sagas_end_once_and_conserve_money(price in 0..1_000_000i64, ops in prop::collection::vec(op(), 0..150)) {
        let mut trigger = sold();
        trigger.final_price = eur(price);
        let mut sim = Sim::start(PaymentSaga::default(), trigger);
        for op in ops {
            sim.apply(op);
            prop_assert!(PaymentLedger::of(sim.run.saga()).escrow_balance() >= 0);
        }
        sim.drain();
        let def = PaymentSaga::default();
        sim.check_structure(|s| def.spec(s).kind);
        sim.check_world(def.steps(), &[PaymentStep::NotifyParties]);
        let ledger = PaymentLedger::of(sim.run.saga());
        if matches!(sim.run.status(), SagaStatus::Completed | SagaStatus::Compensated { .. }) {
            prop_assert!(ledger.is_conserved(), "{:?}", ledger);
            prop_assert!(payment_world_is_conserved(&sim.world, price));
        }
        if matches!(sim.run.status(), SagaStatus::Compensated { .. }) {
            prop_assert_eq!(ledger.refunded, ledger.charged);
        }
    }

    #[test]
    fn order_sagas_end_once_and_undo_everything_when_compensated(ops in prop::collection::vec(op(), 0..120)) {
        let order = OrderCreated {
            order_id: OrderId::new("o-1"),
            customer_id: UserId::new("alice"),
            lines: vec![OrderLine { sku: "print".into(), quantity: 1 }],
            total: eur(2_500),
            shipping_address: "Paris".into(),
        };
        let mut sim = Sim::start(OrderSaga::default(), order);
        for op in ops {
            sim.apply(op);
        }
        sim.drain();
        let def = OrderSaga::default();
        sim.check_structure(|s| def.spec(s).kind);
        sim.check_world(def.steps(), &[]);
        if matches!(sim.run.status(), SagaStatus::Compensated { .. }) {
            prop_assert_eq!(sim.world.net(OrderStep::Ship), 0);
        }
    }
}
