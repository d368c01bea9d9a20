//! Every stage that writes to Postgres sorts what it cannot do into poison
//! (dead-lettered with its coordinates while the records around it land),
//! transient (retried, unready meanwhile, nothing dead-lettered) or fatal (the
//! worker exits non-zero with the reason): a test per class per stage, on the
//! real stack. Transient outages are made with a Postgres role of the test's
//! own (its sessions ended, its connections capped), so no other test's
//! connections are touched; fatal ones by taking a right from that role.

#[path = "../common/mod.rs"]
mod common;

mod event_store;
mod outbox;
mod participants;
mod views;

use common::process::{read_all, RawRecord, Worker};
use common::{eventually, TestEnv};
use gavel_runtime::dlq::{self, header};
use gavel_runtime::observe::Readiness;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// The dead letters of `topic`, once there are `count` (all of them after that).
async fn letters(env: &TestEnv, topic: &str, count: usize) -> Vec<RawRecord> {
    let dlq = dlq::topic_for(topic);
    let found = eventually(WAIT, || async {
        let letters = read_all(env, &dlq);
        (letters.len() >= count).then_some(letters)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "{count} dead letters on {dlq}: {:?}",
            summary(&read_all(env, &dlq))
        )
    })
}

/// Asserts that nothing of `topic` was dead-lettered (transient and fatal
/// failures never are).
fn assert_no_letters(env: &TestEnv, topic: &str) {
    let letters = read_all(env, &dlq::topic_for(topic));
    assert!(letters.is_empty(), "dead-lettered: {:?}", summary(&letters));
}

/// Class, original offset and reason of each letter, for failure messages.
fn summary(letters: &[RawRecord]) -> Vec<(String, String, String)> {
    letters
        .iter()
        .map(|l| {
            let get = |key| l.header(key).unwrap_or("").to_owned();
            (
                get(header::ERROR_CLASS),
                get(header::ORIGINAL_OFFSET),
                get(header::ERROR_MESSAGE),
            )
        })
        .collect()
}

/// The letter of the record at `offset` of `topic`; asserts its class and
/// that its reason contains `reason`.
fn assert_letter(letters: &[RawRecord], topic: &str, offset: i64, class: &str, reason: &str) {
    let offset = offset.to_string();
    let letter = letters
        .iter()
        .find(|l| {
            l.header(header::ORIGINAL_TOPIC) == Some(topic)
                && l.header(header::ORIGINAL_OFFSET) == Some(offset.as_str())
        })
        .unwrap_or_else(|| panic!("no letter for {topic}@{offset}: {:?}", summary(letters)));
    assert_eq!(letter.header(header::ERROR_CLASS), Some(class));
    let message = letter.header(header::ERROR_MESSAGE).unwrap_or("");
    assert!(message.contains(reason), "{message:?} lacks {reason:?}");
}

/// Waits until `readiness` says ready (true) or not, and returns its report's reasons.
async fn readiness_becomes(readiness: &Readiness, ready: bool) -> Vec<String> {
    let report = eventually(WAIT, || async {
        let report = readiness.report();
        (report.ready == ready).then_some(report)
    })
    .await;
    let report = report.unwrap_or_else(|| panic!("ready={ready}: {:?}", readiness.report()));
    report.reasons
}

/// Waits until the worker reports Postgres unreachable (and so not ready).
async fn waits_for_postgres(readiness: &Readiness) {
    let reasons = readiness_becomes(readiness, false).await;
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("postgres unreachable")),
        "{reasons:?}"
    );
}

/// A worker process that must exit by itself, non-zero, saying `reason`.
fn assert_exits_with(mut worker: Worker, reason: &str) {
    let (status, log) = worker.exit_within(WAIT);
    assert!(!status.success(), "{} exited with {status}", worker.name);
    let tail = log.char_indices().rev().nth(2000).map_or(0, |(at, _)| at);
    assert!(
        log.contains(reason),
        "{} exited without {reason:?}; log tail: {}",
        worker.name,
        &log[tail..]
    );
}
