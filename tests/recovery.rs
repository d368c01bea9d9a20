//! Recovery in seconds: `gavel bench recovery` runs aggregate, projector and
//! view sink as real processes under a steady load, kills each with -9 and
//! restarts it as the same replica, then scales in one of three aggregates
//! with SIGTERM. Nothing may be lost or answered twice, and each stage must be
//! back before the 10 s session timeout a dynamic member would have cost:
//! that is what static membership and the explicit leave buy. The 3 s
//! recovery target itself is a figure `gavel bench recovery` prints and
//! bench/README.md reports, not a timed assertion.

use serde_json::Value;
use std::process::Command;
use std::sync::Mutex;

/// The classic protocol's session timeout Gavel sets (runtime::membership).
const SESSION_TIMEOUT_S: f64 = 10.0;
/// Bids per second: a steady load this shared 2-core machine carries with
/// every stage caught up, so the pre-fault level is a low one.
const RATE: i64 = 100;

/// The runs share the machine's two cores: one at a time, or each would
/// measure the other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn bench_recovery(membership: &str, rate: i64, extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_gavel"))
        .args(["bench", "recovery", "--membership", membership])
        .args(["--rate", &rate.to_string()])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GAVEL_LOG", "warn")
        .output()
        .expect("run gavel bench recovery");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "gavel bench recovery failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("report is JSON ({e}): {stdout}"))
}

/// Whatever the timing, every command has exactly one outcome and the read
/// model is what was sent.
fn assert_nothing_lost(report: &Value) {
    let sent = report["commands_sent"].as_u64().expect("sent");
    assert!(sent > 1_000, "a real load ran: {sent}");
    assert_eq!(
        report["commands_answered"].as_u64(),
        Some(sent),
        "every command answered"
    );
    assert_eq!(report["outcomes"].as_u64(), Some(sent), "and answered once");
    assert_eq!(
        report["rows_wrong_or_missing"].as_u64(),
        Some(0),
        "the read model equals the prediction of what was sent"
    );
}

/// What was too slow (or not measurable), if anything.
fn too_slow(report: &Value) -> Vec<String> {
    let faults = report["faults"].as_array().expect("faults");
    let stages: Vec<&str> = faults.iter().filter_map(|f| f["stage"].as_str()).collect();
    assert_eq!(stages, ["aggregate", "project", "sink"]);
    let mut slow = Vec::new();
    for fault in faults {
        let (pre, peak) = (&fault["pre_fault_lag"], &fault["peak_lag"]);
        if peak.as_i64() <= pre.as_i64() {
            slow.push(format!(
                "the kill was not felt (no lag rise while down): {fault}"
            ));
        }
        let recovered = fault["recovered_s"].as_f64();
        if !recovered.is_some_and(|s| s < SESSION_TIMEOUT_S) {
            slow.push(format!("not back before a session timeout: {fault}"));
        }
    }
    let stall = report["scale_in"]["max_partition_stall_s"].as_f64();
    if !stall.is_some_and(|s| s < SESSION_TIMEOUT_S) {
        slow.push(format!(
            "a partition waited out a session timeout while an aggregate left: {}",
            report["scale_in"]
        ));
    }
    slow
}

/// A recovery can only be measured from a steady state: every stage at most
/// two seconds of traffic behind before its fault. On a machine so loaded that
/// the pipeline was already falling behind, the run measured the load.
fn was_steady(report: &Value) -> bool {
    report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .all(|f| {
            f["highest_lag_before"]
                .as_i64()
                .is_some_and(|l| l <= 2 * RATE)
        })
}

#[test]
fn killed_workers_are_back_before_a_session_timeout_and_nothing_is_lost() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // One more run only when the first did not start from a steady state.
    for attempt in 1..=2 {
        let report = bench_recovery("static", RATE, &[]);
        eprintln!("attempt {attempt}: {report:#}");
        assert_nothing_lost(&report);
        let slow = too_slow(&report);
        if slow.is_empty() {
            return;
        }
        assert!(
            !was_steady(&report) && attempt == 1,
            "recovery too slow (or the kill not felt) from a steady state: {slow:#?}"
        );
        eprintln!("attempt {attempt} did not start from a steady state: measuring again");
    }
}

/// Two aggregates join while a loaded one is in the middle of its
/// transactions, so partitions are revoked mid-batch: that batch must abort
/// rather than commit records of a partition whose new owner may already
/// have restored it (an earlier version of the recovery run, growing the
/// group under load, saw 4-5 of 200 rows end wrong). And no partition may
/// be left without an owner: a session that restarted in the middle of the
/// cooperative rebalance once left four of six unowned until the next one.
#[test]
fn aggregates_joining_under_load_lose_nothing() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let report = bench_recovery("static", 2 * RATE, &["--grow-under-load"]);
    eprintln!("{report:#}");
    assert_nothing_lost(&report);
    let grow_stall = report["grow_max_partition_stall_s"].as_f64();
    assert!(
        grow_stall.is_some_and(|s| s < SESSION_TIMEOUT_S),
        "no partition is left without an owner while the group grows: {grow_stall:?}"
    );
    assert!(
        report["scale_in"]["max_partition_stall_s"]
            .as_f64()
            .is_some(),
        "the grown group was scaled in again: {}",
        report["scale_in"]
    );
}
