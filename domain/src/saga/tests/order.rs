//! The order saga (seed 001): reserve → charge → ship with milestones carrying
//! correlation and causation ids; failures refund and release in reverse order.

use super::payment::eur;
use super::*;
use crate::saga::order::*;
use crate::UserId;
use OrderStep::*;

fn order_created() -> OrderCreated {
    OrderCreated {
        order_id: OrderId::new("o-7"),
        customer_id: UserId::new("alice"),
        lines: vec![OrderLine {
            sku: "print-42".into(),
            quantity: 2,
        }],
        total: eur(5_000),
        shipping_address: "1 Rue de Rivoli, Paris".into(),
    }
}

fn given_order_started() -> Run<OrderSaga> {
    Run::started(OrderSaga::default(), order_created())
}

fn announcements(actions: &[SagaAction<OrderSaga>]) -> Vec<Announcement<OrderSaga>> {
    actions
        .iter()
        .filter_map(|a| match a {
            SagaAction::Publish(announcement) => Some(announcement.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_definition_is_well_formed() {
    assert_well_formed(&OrderSaga::default(), &order_created());
}

#[test]
fn happy_path_reserves_charges_ships_and_announces_each_step() {
    let mut run = given_order_started();
    let mut published = Vec::new();
    for _ in 0..3 {
        let reply_id = run.next_message_id();
        for announcement in announcements(&run.succeed()) {
            assert_eq!(announcement.correlation_id, SagaId::new("o-7"));
            assert_eq!(announcement.causation_id, reply_id);
            published.push(announcement.milestone);
        }
    }
    assert_eq!(run.status(), &SagaStatus::Completed);
    let types: Vec<_> = published.iter().map(OrderMilestone::event_type).collect();
    assert_eq!(types, ["inventory.reserved", "order.paid", "order.shipped"]);
    assert_eq!(
        published[1],
        OrderMilestone::OrderPaid {
            order_id: OrderId::new("o-7"),
            amount: eur(5_000),
            payment_id: "ref-o-7/charge-payment/do/1".into(),
        }
    );
    let participants: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match e {
            SagaEvent::CommandIssued(c) => Some(c.participant),
            _ => None,
        })
        .collect();
    assert_eq!(
        participants,
        [
            Participant::Inventory,
            Participant::Payment,
            Participant::Shipping
        ]
    );
}

#[test]
fn a_refused_step_refunds_then_releases_what_was_done() {
    let expected: [&[OrderStep]; 3] =
        [&[], &[ReserveInventory], &[ChargePayment, ReserveInventory]];
    for (failing, compensations) in expected.iter().enumerate() {
        let mut run = given_order_started();
        for _ in 0..failing {
            run.succeed();
        }
        run.fail(false);
        let mut undone = Vec::new();
        while matches!(run.status(), SagaStatus::Compensating { .. }) {
            let actions = run.succeed();
            undone.extend(
                announcements(&actions)
                    .into_iter()
                    .map(|a| a.milestone.event_type()),
            );
        }
        assert!(
            matches!(run.status(), SagaStatus::Compensated { reason } if reason.contains("declined"))
        );
        assert_eq!(
            run.compensations_sent(),
            compensations.to_vec(),
            "step {failing}"
        );
        let expected_events: Vec<&str> = compensations
            .iter()
            .map(|step| match step {
                ChargePayment => "payment.refunded",
                _ => "inventory.released",
            })
            .collect();
        assert_eq!(undone, expected_events);
    }
}

#[test]
fn compensation_commands_carry_the_order_as_correlation_and_the_failure_as_causation() {
    let mut run = given_order_started();
    run.succeed();
    run.succeed();
    let failure_id = run.next_message_id();
    let actions = run.fail(false);
    let refund = &sent_commands(&actions)[0];
    assert_eq!(
        refund.command,
        OrderCommand::RefundPayment {
            order_id: OrderId::new("o-7"),
            customer_id: UserId::new("alice"),
            amount: eur(5_000),
        }
    );
    assert_eq!(refund.correlation_id(), &SagaId::new("o-7"));
    assert_eq!(refund.causation_id, failure_id);
}

#[test]
fn shipping_with_an_unknown_outcome_undoes_nothing_and_needs_attention() {
    let mut run = given_order_started();
    run.succeed();
    run.succeed();
    while matches!(run.status(), SagaStatus::Running) {
        run.fire_timer();
    }
    assert!(
        matches!(run.status(), SagaStatus::Failed { reason } if reason.contains("pivot step ship"))
    );
    assert!(run.compensations_sent().is_empty());
}

#[test]
fn shipping_that_keeps_failing_transiently_refunds_and_releases() {
    let mut run = given_order_started();
    run.succeed();
    run.succeed();
    while matches!(run.status(), SagaStatus::Running) {
        run.fail(true);
        if matches!(run.status(), SagaStatus::Running) {
            run.fire_timer();
        }
    }
    while matches!(run.status(), SagaStatus::Compensating { .. }) {
        run.succeed();
    }
    assert!(
        matches!(run.status(), SagaStatus::Compensated { reason } if reason.contains("after 4 attempts"))
    );
    assert_eq!(
        run.compensations_sent(),
        vec![ChargePayment, ReserveInventory]
    );
}

#[test]
fn an_order_without_lines_or_with_a_zero_quantity_starts_nothing() {
    let mut empty = order_created();
    empty.lines.clear();
    let mut zero = order_created();
    zero.lines[0].quantity = 0;
    for trigger in [empty, zero] {
        let mut run = Run::new(OrderSaga::default());
        let rejection = run.when(SagaInput::Start { trigger }).unwrap_err();
        assert_eq!(rejection.code(), "INVALID_TRIGGER");
    }
}
