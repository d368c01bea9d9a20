//! The payment saga (seed 000): the happy path, a failure at every step, the trigger.

use super::*;
use crate::auction::{evolve as evolve_auction, AuctionEvent};
use crate::saga::payment::*;
use crate::{AuctionId, Currency, Money, UserId};
use PaymentStep::*;

pub fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
}

/// Auction a-1, sold by `seller` to `bob` for EUR 123.45; carol, dave and bob were outbid.
pub fn sold() -> AuctionSold {
    AuctionSold {
        auction_id: AuctionId::new("a-1"),
        seller_id: UserId::new("seller"),
        winner_id: UserId::new("bob"),
        final_price: eur(12_345),
        outbid_user_ids: ["carol", "dave", "bob", "carol"].map(UserId::new).to_vec(),
    }
}

fn payment_commands(run: &Run<PaymentSaga>) -> Vec<PaymentCommand> {
    run.events
        .iter()
        .filter_map(|e| match e {
            SagaEvent::CommandIssued(c) => Some(c.command.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_definition_is_well_formed() {
    assert_well_formed(&PaymentSaga::default(), &sold());
}

#[test]
fn happy_path_charges_pays_out_marks_paid_transfers_and_notifies() {
    let mut run = Run::started(PaymentSaga::default(), sold());
    for _ in 0..4 {
        run.succeed();
    }
    let actions = run.succeed();
    assert_eq!(
        actions,
        vec![SagaAction::CancelDeadline, SagaAction::Complete]
    );
    assert_eq!(run.status(), &SagaStatus::Completed);
    let split = Split {
        payout: eur(11_358),
        commission: eur(987),
    };
    let (a, bob, seller) = (
        AuctionId::new("a-1"),
        UserId::new("bob"),
        UserId::new("seller"),
    );
    let notice = |who: &str, kind| Notice {
        recipient: UserId::new(who),
        kind,
    };
    assert_eq!(
        payment_commands(&run),
        vec![
            PaymentCommand::ChargeWinner {
                auction_id: a.clone(),
                winner_id: bob.clone(),
                amount: eur(12_345)
            },
            PaymentCommand::PayoutSeller {
                auction_id: a.clone(),
                seller_id: seller.clone(),
                split
            },
            PaymentCommand::MarkAuctionPaid {
                auction_id: a.clone()
            },
            PaymentCommand::TransferOwnership {
                auction_id: a.clone(),
                from: seller,
                to: bob
            },
            PaymentCommand::NotifyParties {
                auction_id: a,
                notices: vec![
                    notice("bob", NoticeKind::Won { price: eur(12_345) }),
                    notice(
                        "seller",
                        NoticeKind::Sold {
                            payout: eur(11_358)
                        }
                    ),
                    notice("carol", NoticeKind::Outbid),
                    notice("dave", NoticeKind::Outbid),
                ],
            },
        ]
    );
    let ledger = PaymentLedger::of(run.saga());
    assert_eq!(
        (ledger.charged, ledger.paid_out, ledger.commission),
        (12_345, 11_358, 987)
    );
    assert!(ledger.is_conserved());
}

#[test]
fn a_refused_step_compensates_exactly_the_completed_steps_in_reverse_order() {
    let expected: [&[PaymentStep]; 4] = [
        &[],
        &[ChargeWinner],
        &[PayoutSeller, ChargeWinner],
        &[MarkAuctionPaid, PayoutSeller, ChargeWinner],
    ];
    for (failing, compensations) in expected.iter().enumerate() {
        let mut run = Run::started(PaymentSaga::default(), sold());
        for _ in 0..failing {
            run.succeed();
        }
        run.fail(false);
        while matches!(run.status(), SagaStatus::Compensating { .. }) {
            run.succeed();
        }
        assert!(
            matches!(run.status(), SagaStatus::Compensated { .. }),
            "step {failing}"
        );
        assert_eq!(
            run.compensations_sent(),
            compensations.to_vec(),
            "step {failing}"
        );
        assert_eq!(run.sent().len(), failing + 1 + compensations.len());
        let ledger = PaymentLedger::of(run.saga());
        assert!(ledger.is_conserved());
        assert_eq!(ledger.refunded, ledger.charged);
    }
}

#[test]
fn a_transfer_with_an_unknown_outcome_is_reversed_along_with_everything_before_it() {
    let mut run = Run::started(PaymentSaga::default(), sold());
    for _ in 0..3 {
        run.succeed();
    }
    while matches!(run.status(), SagaStatus::Running) {
        run.fire_timer();
    }
    while matches!(run.status(), SagaStatus::Compensating { .. }) {
        run.succeed();
    }
    assert_eq!(
        run.compensations_sent(),
        vec![
            TransferOwnership,
            MarkAuctionPaid,
            PayoutSeller,
            ChargeWinner
        ]
    );
    let commands = payment_commands(&run);
    assert!(
        commands.contains(&PaymentCommand::ReverseOwnershipTransfer {
            auction_id: AuctionId::new("a-1"),
            from: UserId::new("bob"),
            to: UserId::new("seller"),
        })
    );
    assert!(PaymentLedger::of(run.saga()).is_conserved());
}

#[test]
fn a_notification_failure_undoes_nothing_and_needs_attention() {
    let mut run = Run::started(PaymentSaga::default(), sold());
    for _ in 0..4 {
        run.succeed();
    }
    let actions = run.fail(false);
    assert!(
        matches!(actions.last(), Some(SagaAction::Fail { reason }) if reason.contains("point of no return"))
    );
    assert!(run.compensations_sent().is_empty());
    assert!(PaymentLedger::of(run.saga()).is_conserved());
}

#[test]
fn the_trigger_comes_from_an_ended_auction_with_a_winner_only() {
    let id = AuctionId::new("a-1");
    let created = AuctionEvent::Created {
        seller_id: UserId::new("seller"),
        title: "Blue".into(),
        starting_price: eur(100),
        reserve_price: None,
        min_increment: eur(10),
        end_time: Timestamp::from_millis(T0 + 1),
    };
    let ended = |winner: Option<&str>| AuctionEvent::Ended {
        winner_id: winner.map(UserId::new),
        final_price: eur(100),
        reserve_met: winner.is_some(),
        ended_at: Timestamp::from_millis(T0 + 1),
    };
    let created_state = evolve_auction(None, &id, &created).unwrap();
    assert_eq!(
        AuctionSold::from_ended_auction(&created_state, vec![]),
        None
    );
    let unsold = evolve_auction(Some(created_state.clone()), &id, &ended(None)).unwrap();
    assert_eq!(AuctionSold::from_ended_auction(&unsold, vec![]), None);
    let won = evolve_auction(Some(created_state), &id, &ended(Some("bob"))).unwrap();
    let trigger = AuctionSold::from_ended_auction(&won, vec![]).unwrap();
    assert_eq!(
        (trigger.winner_id.as_str(), trigger.final_price),
        ("bob", eur(100))
    );
}
