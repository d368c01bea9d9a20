//! Inputs that change nothing: duplicates, stale (out-of-order) replies and timers,
//! unknown commands and sagas, bad triggers. Each returns its own rejection code.

use super::payment::sold;
use super::*;
use crate::saga::payment::{PaymentSaga, PaymentStep};
use crate::UserId;

fn given_payment_started() -> Run<PaymentSaga> {
    Run::started(PaymentSaga::default(), sold())
}

/// Then: `input` is refused with `code`, and the saga is exactly as before.
fn refused(run: &mut Run<PaymentSaga>, input: SagaInput<PaymentSaga>, code: &str) {
    let before = (run.state.clone(), run.events.len());
    let rejection = run.when(input).unwrap_err();
    assert_eq!(rejection.code(), code, "{rejection}");
    assert_eq!((run.state.clone(), run.events.len()), before);
}

fn ok_reply(command: &OutgoingCommand<PaymentSaga>) -> SagaInput<PaymentSaga> {
    SagaInput::StepSucceeded {
        step: command.attempt.step,
        command_id: command.command_id.clone(),
        receipt: Receipt::new("r"),
    }
}

fn failed_reply(command: &OutgoingCommand<PaymentSaga>) -> SagaInput<PaymentSaga> {
    SagaInput::StepFailed {
        step: command.attempt.step,
        command_id: command.command_id.clone(),
        reason: "busy".into(),
        transient: true,
    }
}

#[test]
fn a_second_trigger_is_a_duplicate() {
    let mut run = given_payment_started();
    refused(&mut run, SagaInput::Start { trigger: sold() }, "DUPLICATE");
}

#[test]
fn a_trigger_where_the_winner_is_the_seller_starts_nothing() {
    let mut trigger = sold();
    trigger.winner_id = UserId::new("seller");
    let mut run = Run::new(PaymentSaga::default());
    let rejection = run.when(SagaInput::Start { trigger }).unwrap_err();
    assert_eq!(rejection.code(), "INVALID_TRIGGER");
    assert!(run.state.is_none());
}

#[test]
fn replies_and_timers_for_a_saga_never_started_are_refused() {
    let started = given_payment_started();
    let command = started.awaited();
    let mut run = Run::new(PaymentSaga::default());
    assert_eq!(
        run.when(ok_reply(&command)),
        Err(SagaRejection::UnknownSaga)
    );
    let timer = SagaInput::DeadlineExpired {
        timer: command.attempt,
    };
    assert_eq!(run.when(timer), Err(SagaRejection::UnknownSaga));
}

#[test]
fn a_repeated_reply_is_a_duplicate() {
    let mut run = given_payment_started();
    let charge = run.awaited();
    run.succeed();
    refused(&mut run, ok_reply(&charge), "DUPLICATE");
    refused(&mut run, failed_reply(&charge), "DUPLICATE");
}

#[test]
fn a_reply_to_a_command_never_sent_or_naming_another_step_is_unknown() {
    let mut run = given_payment_started();
    let mut forged = run.awaited();
    forged.command_id = CommandId::new("a-1/payout-seller/do/1");
    refused(&mut run, ok_reply(&forged), "UNKNOWN");
    let mut wrong_step = run.awaited();
    wrong_step.attempt.step = PaymentStep::PayoutSeller;
    refused(&mut run, ok_reply(&wrong_step), "UNKNOWN");
}

#[test]
fn a_late_success_of_a_timed_out_attempt_is_taken_and_the_newer_attempt_then_is_a_duplicate() {
    let mut run = given_payment_started();
    let first = run.awaited();
    run.fire_timer(); // deadline
    run.fire_timer(); // backoff: attempt 2 sent
    let second = run.awaited();
    run.reply_ok(&first).unwrap();
    assert_eq!(run.awaited().attempt.step, PaymentStep::PayoutSeller);
    refused(&mut run, ok_reply(&second), "DUPLICATE");
}

#[test]
fn a_late_failure_of_a_superseded_attempt_is_stale() {
    let mut run = given_payment_started();
    let first = run.awaited();
    run.fire_timer();
    refused(&mut run, failed_reply(&first), "STALE");
    run.fire_timer();
    refused(&mut run, failed_reply(&first), "STALE");
}

#[test]
fn a_late_success_for_a_step_no_longer_awaited_is_stale() {
    let mut run = given_payment_started();
    run.succeed();
    for _ in 0..4 {
        run.fire_timer(); // payout reply deadline
        if matches!(run.status(), SagaStatus::Running) {
            run.fire_timer(); // backoff
        }
    }
    assert!(matches!(run.status(), SagaStatus::Compensating { .. }));
    let late_payout = run
        .events
        .iter()
        .find_map(|e| match e {
            SagaEvent::CommandIssued(c) if c.attempt.step == PaymentStep::PayoutSeller => {
                Some(c.clone())
            }
            _ => None,
        })
        .unwrap();
    refused(&mut run, ok_reply(&late_payout), "STALE");
}

#[test]
fn a_timer_that_is_not_the_current_one_or_not_yet_due_is_stale() {
    let mut run = given_payment_started();
    let charge = run.awaited();
    refused(
        &mut run,
        SagaInput::DeadlineExpired {
            timer: charge.attempt,
        },
        "STALE",
    );
    run.succeed();
    run.now = run.now.plus_millis(60_000);
    refused(
        &mut run,
        SagaInput::DeadlineExpired {
            timer: charge.attempt,
        },
        "STALE",
    );
}

#[test]
fn every_reply_and_timer_after_the_end_changes_nothing() {
    let mut run = given_payment_started();
    let charge = run.awaited();
    run.fail(false);
    assert!(matches!(run.status(), SagaStatus::Compensated { .. }));
    refused(&mut run, ok_reply(&charge), "DUPLICATE");
    refused(
        &mut run,
        SagaInput::DeadlineExpired {
            timer: charge.attempt,
        },
        "STALE",
    );
    refused(&mut run, SagaInput::Start { trigger: sold() }, "DUPLICATE");
}
