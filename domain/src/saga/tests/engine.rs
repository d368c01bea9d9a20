//! The generic engine rules, exercised through the payment saga: start, retries with
//! backoff, deadlines, exhausted retries, compensation failures, restart, storage.

use super::payment::sold;
use super::*;
use crate::saga::payment::{PaymentSaga, PaymentStep};
use PaymentStep::*;

fn given_payment_started() -> Run<PaymentSaga> {
    Run::started(PaymentSaga::default(), sold())
}

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

#[test]
fn starting_sends_the_first_step_with_deterministic_ids_and_arms_its_deadline() {
    let mut run = Run::new(PaymentSaga::default());
    let actions = run.when(SagaInput::Start { trigger: sold() }).unwrap();
    let [SagaAction::SendCommand(command), SagaAction::ScheduleDeadline { timer, at: due }] =
        &actions[..]
    else {
        panic!("unexpected actions {actions:?}");
    };
    assert_eq!(command.command_id, CommandId::new("a-1/charge-winner/do/1"));
    assert_eq!(command.effect_key, EffectKey::new("a-1/charge-winner"));
    assert_eq!(command.participant, Participant::Payment);
    assert_eq!(command.correlation_id(), &SagaId::new("a-1"));
    assert_eq!(command.causation_id, MessageId::new("m1"));
    assert_eq!(command.deadline, at(5_000));
    assert_eq!((*timer, *due), (command.attempt, command.deadline));
    assert_eq!(run.status(), &SagaStatus::Running);
}

#[test]
fn a_transient_failure_is_retried_after_backoff_with_a_new_attempt_id_then_succeeds() {
    let mut run = given_payment_started();
    let actions = run.fail(true);
    let retry = AttemptRef {
        step: ChargeWinner,
        direction: Direction::Do,
        attempt: 2,
    };
    assert_eq!(
        actions,
        vec![
            SagaAction::CancelDeadline,
            SagaAction::ScheduleDeadline {
                timer: retry,
                at: at(200)
            }
        ]
    );
    let actions = run.fire_timer();
    let resent = sent_commands(&actions);
    assert_eq!(
        resent[0].command_id,
        CommandId::new("a-1/charge-winner/do/2")
    );
    assert_eq!(resent[0].effect_key, EffectKey::new("a-1/charge-winner"));
    run.succeed();
    assert_eq!(run.awaited().attempt.step, PayoutSeller);
}

#[test]
fn backoff_doubles_per_attempt_up_to_the_cap() {
    let policy = RetryPolicy::STANDARD;
    let delays: Vec<i64> = (1..=8).map(|n| policy.backoff_after(n)).collect();
    assert_eq!(delays, [200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]);
    assert_eq!(policy.backoff_after(u32::MAX), 10_000);
    assert!(policy.allows_another_attempt_after(3));
    assert!(!policy.allows_another_attempt_after(4));
}

#[test]
fn exhausted_retries_compensate_the_completed_steps() {
    let mut run = given_payment_started();
    run.succeed(); // charged
    for _ in 0..3 {
        run.fail(true);
        run.fire_timer();
    }
    let actions = run.fail(true); // 4th attempt of the payout
    let refund = sent_commands(&actions);
    assert_eq!(refund.len(), 1);
    assert_eq!(
        refund[0].command_id,
        CommandId::new("a-1/charge-winner/undo/1")
    );
    assert!(
        matches!(run.status(), SagaStatus::Compensating { reason } if reason.contains("after 4 attempts"))
    );
    let actions = run.succeed();
    assert!(
        matches!(actions.last(), Some(SagaAction::Compensated { reason }) if reason.starts_with("payout-seller failed"))
    );
    assert_eq!(run.compensations_sent(), vec![ChargeWinner]);
}

#[test]
fn a_missed_deadline_retries_the_step_with_backoff() {
    let mut run = given_payment_started();
    let actions = run.fire_timer(); // no reply by the deadline
    assert!(matches!(
        &actions[..],
        [SagaAction::ScheduleDeadline { timer, at: due }] if timer.attempt == 2 && *due == at(5_200)
    ));
    let actions = run.fire_timer();
    assert_eq!(sent_commands(&actions)[0].attempt.attempt, 2);
}

#[test]
fn a_step_whose_last_attempt_timed_out_is_compensated_first_as_it_may_have_happened() {
    let mut run = given_payment_started();
    run.succeed(); // charged
    run.succeed(); // paid out
    for _ in 0..3 {
        run.fire_timer(); // reply deadline
        run.fire_timer(); // backoff
    }
    run.fire_timer(); // 4th reply deadline: the mark-paid is in doubt
    assert_eq!(
        run.saga().compensation_plan,
        vec![MarkAuctionPaid, PayoutSeller, ChargeWinner]
    );
    run.succeed();
    run.succeed();
    run.succeed();
    assert!(matches!(run.status(), SagaStatus::Compensated { .. }));
    assert_eq!(
        run.compensations_sent(),
        vec![MarkAuctionPaid, PayoutSeller, ChargeWinner]
    );
}

#[test]
fn a_compensation_that_keeps_failing_ends_the_saga_failed_needing_attention() {
    let mut run = given_payment_started();
    run.succeed(); // charged
    run.fail(false); // payout refused: refund
    for _ in 0..7 {
        run.fail(true);
        run.fire_timer();
    }
    let actions = run.fail(true); // 8th attempt of the refund
    assert!(
        matches!(&actions[..], [SagaAction::CancelDeadline, SagaAction::Fail { reason }] if reason.contains("compensation of charge-winner failed"))
    );
    assert!(matches!(run.status(), SagaStatus::Failed { .. }));
}

#[test]
fn a_compensation_refused_for_good_fails_the_saga_at_once() {
    let mut run = given_payment_started();
    run.succeed();
    run.fail(false);
    let actions = run.fail(false);
    assert!(matches!(actions.last(), Some(SagaAction::Fail { .. })));
    assert_eq!(run.sent().len(), 3);
}

#[test]
fn per_step_policies_apply_to_that_step_only() {
    let quick = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::STANDARD
    };
    let def = PaymentSaga {
        policies: StepPolicies::default().with_override(PayoutSeller, quick),
    };
    let mut run = Run::started(def, sold());
    run.fail(true); // charge: retried
    run.fire_timer();
    run.succeed();
    run.fail(true); // payout: one attempt only
    assert_eq!(run.saga().compensation_plan, vec![ChargeWinner]);
}

#[test]
fn commands_caused_by_a_reply_carry_that_reply_as_causation() {
    let mut run = given_payment_started();
    let reply_id = run.next_message_id();
    let actions = run.succeed();
    let payout = &sent_commands(&actions)[0];
    assert_eq!(payout.causation_id, reply_id);
    assert_eq!(payout.correlation_id(), &SagaId::new("a-1"));
}

#[test]
fn resuming_re_sends_the_awaited_command_unchanged_and_re_arms_its_timer() {
    let mut run = given_payment_started();
    let awaited = run.awaited();
    assert_eq!(
        resume_actions(run.saga()),
        vec![
            SagaAction::SendCommand(awaited.clone()),
            SagaAction::ScheduleDeadline {
                timer: awaited.attempt,
                at: awaited.deadline
            }
        ]
    );
    run.fail(true);
    assert!(matches!(
        &resume_actions(run.saga())[..],
        [SagaAction::ScheduleDeadline { .. }]
    ));
    run.fire_timer();
    for _ in 0..5 {
        run.succeed();
    }
    assert_eq!(run.status(), &SagaStatus::Completed);
    assert!(resume_actions(run.saga()).is_empty());
}

#[test]
fn state_and_events_round_trip_through_json_and_replay_rebuilds_the_state() {
    let mut run = given_payment_started();
    run.fail(true);
    run.fire_timer();
    run.succeed();
    run.fire_timer();
    let json = serde_json::to_string(&run.events).unwrap();
    let events: Vec<SagaEvent<PaymentSaga>> = serde_json::from_str(&json).unwrap();
    assert_eq!(events, run.events);
    assert_eq!(replay(&events).as_ref(), run.state.as_ref());
    let state_json = serde_json::to_string(run.saga()).unwrap();
    let state: SagaState<PaymentSaga> = serde_json::from_str(&state_json).unwrap();
    assert_eq!(&state, run.saga());
    assert_eq!(state.version, run.events.len() as u64);
}
