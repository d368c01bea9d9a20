//! `gavel demo-load`: a generated auction workload sent through the running
//! pipeline, then the read model compared with the pure-domain prediction.

use crate::token_cmd;
use anyhow::{bail, Context, Result};
use gavel_domain::auction::AuctionStatus;
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_runtime::{postgres, Config};
use gavel_sinks::views::verify;
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
    let schema = &config.postgres_schema;
    let (comparison, disagreements) = loop {
        let comparison = verify::compare(&client, schema, &expected).await?;
        let disagreements = if comparison.all_match() {
            verify::derived_views_disagreements(&client, schema).await?
        } else {
            Vec::new()
        };
        let done = comparison.all_match() && disagreements.is_empty();
        if done || started.elapsed() > timeout {
            break (comparison, disagreements);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let count = |table: &str| {
        let sql = format!("SELECT count(*) FROM {schema}.{table}");
        let client = &client;
        async move {
            client
                .query_one(&sql, &[])
                .await
                .map(|r| r.get::<_, i64>(0))
        }
    };
    let (listed, user_rows) = (count("auction_list").await?, count("user_bids").await?);
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
        "user_bids rows     {:>8}  (one per bidder and auction), auction_list rows {} (active now)",
        user_rows, listed
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
    if !comparison.all_match() || !disagreements.is_empty() {
        for diff in comparison.differences.iter().chain(&disagreements).take(10) {
            eprintln!("  mismatch: {diff}");
        }
        bail!(
            "read models did not catch up within {timeout:?}: {} missing, {} different, {} derived-view disagreements",
            comparison.missing,
            comparison.differences.len(),
            disagreements.len()
        );
    }
    println!("\nread models caught up: every auction_details row equals the pure-domain replay,");
    println!("and auction_list and user_bids agree with it row for row.");
    Ok(())
}

/// The three highest-priced ended auctions of `tenant`, read through the query
/// API the way a client does: with a bearer token (and refused without one).
pub async fn top_auctions(config: &Config, base: &str, tenant: &str) -> Result<()> {
    let url = format!("{base}/auctions?status=ENDED&sort=current_price&order=desc&limit=3");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let anonymous = http
        .get(&url)
        .send()
        .await
        .context("query API unreachable")?;
    let token = token_cmd::hs256(config, "demo-viewer", tenant, &[], 600)?;
    let response = http.get(&url).bearer_auth(&token).send().await?;
    let status = response.status();
    let page: serde_json::Value = response.json().await?;
    if !status.is_success() {
        bail!("query API answered {status}: {page}");
    }
    println!(
        "\nquery API, top ended auctions of tenant {tenant} (with a token; without one: {}):",
        anonymous.status()
    );
    for item in page["items"].as_array().into_iter().flatten() {
        println!(
            "  {}  {:<34} {:>10} {}  winner {}",
            item["auction_id"].as_str().unwrap_or("?"),
            item["title"].as_str().unwrap_or("?"),
            item["current_price"]["amount_minor"],
            item["current_price"]["currency"].as_str().unwrap_or(""),
            item["winner_id"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}
