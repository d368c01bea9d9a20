//! Recovery in seconds: `gavel bench recovery` runs aggregate, projector and
//! view sink as real processes under a steady load, kills each with -9 and
//! restarts it as the same replica, then scales in one of three aggregates
//! with SIGTERM. Each stage's lag must be back at its pre-fault level within
//! 3 s of the restart, no partition may wait more than 5 s during the
//! scale-in, and nothing may be lost. (Its own binary: the timings need the
//! machine to themselves as far as a test can have it.)

use serde_json::Value;
use std::process::Command;

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
fn killed_workers_are_back_within_3_s_and_a_scale_in_stalls_no_partition_for_5_s() {
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
            recovered.is_some_and(|s| s <= 3.0),
            "lag back at its pre-fault level within 3 s of the restart: {fault}"
        );
    }
    let stall = report["scale_in"]["max_partition_stall_s"].as_f64();
    assert!(
        stall.is_some_and(|s| s <= 5.0),
        "no partition waits more than 5 s while an aggregate leaves: {}",
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
