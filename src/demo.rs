//! `gavel demo-load`: a generated auction workload sent through the running
//! pipeline, then the read model compared with the pure-domain prediction.

use anyhow::{bail, Result};
use gavel_domain::auction::AuctionStatus;
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_runtime::{postgres, Config};
use gavel_sinks::auction_details::verify;
use std::time::{Duration, Instant};

pub async fn demo_load(config: &Config, spec: &LoadSpec, timeout: Duration) -> Result<()> {
    let workload = generate(spec, gavel_producers::produce::now());
    let expected = workload.expected();
    let started = Instant::now();
    println!(
        "sending {} commands for {} auctions ({} bids); the processor's timers end them in {} s ...",
        workload.setup.len() + workload.bids.len(),
        spec.auctions,
        spec.bids,
        spec.duration_ms / 1000
    );
    let sent = gavel_producers::send_workload(config, &workload, false).await?;
    let client = postgres::connect(config).await?;
    let comparison = loop {
        let comparison = verify::compare(&client, &config.postgres_schema, &expected).await?;
        if comparison.all_match() || started.elapsed() > timeout {
            break comparison;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let elapsed = started.elapsed();
    let events: u64 = expected.values().map(|a| a.version).sum();
    let accepted_bids: u64 = expected.values().map(|a| u64::from(a.bid_count)).sum();
    let ended = expected
        .values()
        .filter(|a| a.status == AuctionStatus::Ended)
        .count();
    let winners = expected.values().filter(|a| a.winner_id.is_some()).count();
    println!();
    println!("== Gavel demo: run {} ==", spec.run_id);
    println!(
        "commands sent      {:>8}  ({} bids, {} rejected by the rules; auctions ended by timers)",
        sent.sent,
        spec.bids,
        spec.bids as u64 - accepted_bids
    );
    println!("events             {:>8}", events);
    println!(
        "auctions           {:>8}  ({} ended, {} with a winner, {} cancelled)",
        expected.len(),
        ended,
        winners,
        expected.len() - ended
    );
    println!(
        "read-model rows    {:>8}  matching the pure-domain replay: {}",
        comparison.rows.len(),
        comparison.matching
    );
    println!(
        "setup+bids sent in {:>8.2} s  ({:.0} commands/s acknowledged)",
        sent.bids_elapsed.as_secs_f64(),
        (workload.setup.len() + workload.bids.len()) as f64 / sent.bids_elapsed.as_secs_f64()
    );
    println!(
        "elapsed            {:>8.2} s  (includes waiting {} s for the auctions to end)",
        elapsed.as_secs_f64(),
        spec.duration_ms / 1000
    );
    println!("\nexample rows (auction_details):");
    for row in comparison.rows.iter().filter(|r| r.bid_count > 0).take(5) {
        println!(
            "  {}  {:<34} {:<9} {:>14}  bids {:>3}  winner {:<28} v{}",
            row.auction_id,
            row.title,
            row.status.as_str(),
            row.current_price.to_string(),
            row.bid_count,
            row.winner_id
                .as_ref()
                .map_or("-".to_owned(), ToString::to_string),
            row.version
        );
    }
    if !comparison.all_match() {
        for diff in comparison.differences.iter().take(10) {
            eprintln!("  mismatch: {diff}");
        }
        bail!(
            "read model did not catch up within {timeout:?}: {} missing, {} different",
            comparison.missing,
            comparison.differences.len()
        );
    }
    println!("\nread model caught up: every row equals the pure-domain replay.");
    Ok(())
}
