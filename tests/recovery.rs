//! Recovery in seconds: `gavel bench recovery` runs aggregate, projector and
//! view sink as real processes under a steady load, kills each with -9 and
//! restarts it as the same replica, then scales in one of three aggregates
//! with SIGTERM. Nothing may be lost or answered twice, and each stage must be
//! back before the 10 s session timeout a dynamic member would have cost:
//! that is what static membership and the explicit leave buy, and it holds on
//! a loaded machine. The 3 s recovery target itself is a figure `gavel bench
//! recovery` prints and bench/README.md reports, not a timed assertion.

use serde_json::Value;
use std::process::Command;

/// The classic protocol's session timeout Gavel sets (runtime::membership).
const SESSION_TIMEOUT_S: f64 = 10.0;

fn bench_recovery(membership: &str) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_gavel"))
        // 100 bids/s: a steady load this shared 2-core machine carries with
        // every stage caught up, so the pre-fault level is a low one.
        .args([
            "bench",
            "recovery",
            "--membership",
            membership,
            "--rate",
            "100",
        ])
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

#[test]
#[ignore = "not in make test: on a broker still deleting earlier tests' topics a restarted \
            aggregate has stalled past 60 s (open, see bench/README.md); run it alone with \
            `cargo test --release --test recovery -- --ignored`"]
fn killed_workers_are_back_before_a_session_timeout_and_nothing_is_lost() {
    let report = bench_recovery("static");
    eprintln!("{report:#}");
    let faults = report["faults"].as_array().expect("faults");
    let stages: Vec<&str> = faults.iter().filter_map(|f| f["stage"].as_str()).collect();
    assert_eq!(stages, ["aggregate", "project", "sink"]);
    for fault in faults {
        let (pre, peak) = (&fault["pre_fault_lag"], &fault["peak_lag"]);
        assert!(
            peak.as_i64() > pre.as_i64(),
            "the kill was felt (lag rose while down): {fault}"
        );
        let recovered = fault["recovered_s"].as_f64();
        assert!(
            recovered.is_some_and(|s| s < SESSION_TIMEOUT_S),
            "lag back at its pre-fault level before a session timeout: {fault}"
        );
    }
    let stall = report["scale_in"]["max_partition_stall_s"].as_f64();
    assert!(
        stall.is_some_and(|s| s < SESSION_TIMEOUT_S),
        "no partition waits out a session timeout while an aggregate leaves: {}",
        report["scale_in"]
    );
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
