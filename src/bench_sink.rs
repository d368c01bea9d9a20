//! `gavel bench sink`: the read side on a private pipeline filled by the
//! aggregate processor: events/s through the projector, view records/s the
//! view sink writes to Postgres, the rebuild rate of all views, and a plain
//! `COPY` of as many rows into an unindexed table in the same run.

use crate::bench::{produce_and_process, transactional_end, wait_until_committed, PrivatePipeline};
use anyhow::Result;
use bytes::Bytes;
use futures::SinkExt;
use gavel_runtime::{postgres, Config, Shutdown};
use gavel_sinks::views::View;
use serde_json::{json, Value};
use std::time::Instant;

/// Runs the benchmark on a private pipeline; prints and returns its figures.
pub async fn sink(base: &Config, commands: usize, auctions: usize) -> Result<Value> {
    let pipeline = PrivatePipeline::create(base).await?;
    let result = measure(&pipeline.config, commands, auctions).await;
    pipeline.remove().await?;
    result
}

async fn measure(config: &Config, commands: usize, auctions: usize) -> Result<Value> {
    let events = produce_and_process(config, commands, auctions, 2)
        .await?
        .stats
        .events;
    let projected = run_projector(config).await?;
    let client = postgres::connect(config).await?;
    let sunk = run_sink(config).await?;
    let mut rebuilds = Vec::new();
    for view in View::ALL {
        rebuilds.push((
            view,
            gavel_sinks::views::rebuild::rebuild_from_topic(config, view).await?,
        ));
    }
    let rebuilt: u64 = rebuilds.iter().map(|(_, r)| r.records).sum();
    let rebuild_secs: f64 = rebuilds.iter().map(|(_, r)| r.elapsed.as_secs_f64()).sum();
    let from_events = gavel_sinks::views::rebuild::rebuild_from_events(config, &View::ALL).await?;
    let events_rebuild_rate = from_events.records_per_second();
    let copy_rows_per_s = copy_baseline(
        &client,
        &config.postgres_schema,
        sunk.stats.records as usize,
    )
    .await?;
    let project_rate = events as f64 / projected.secs;
    let sink_rate = sunk.stats.records as f64 / sunk.secs;
    let rebuild_rate = rebuilt as f64 / rebuild_secs;
    let report = json!({
            "benchmark": "sink",
            "events": events,
            "projector_events_per_s": project_rate,
            "view_records": projected.view_records,
            "view_records_coalesced": projected.coalesced,
            "sink_view_records": sunk.stats.records,
            "sink_row_writes": sunk.stats.rows_written,
            "sink_batches": sunk.stats.batches,
            "sink_records_per_s": sink_rate,
            "rebuild_records": rebuilt,
            "rebuild_records_per_s": rebuild_rate,
            "rebuild_from_events_events": from_events.records,
            "rebuild_from_events_rows": from_events.rows,
            "rebuild_from_events_per_s": events_rebuild_rate,
            "rebuilds": rebuilds.iter().map(|(v, r)| json!({
                "view": v.name(), "records": r.records, "seconds": r.elapsed.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "baseline_copy_rows_per_s": copy_rows_per_s,
            "sink_vs_copy": sink_rate / copy_rows_per_s,
    });
    println!("{report}");
    println!("{events} events through the read side:");
    println!(
        "  {project_rate:>10.0} events/s projector (EOS), {} view records ({} more coalesced into them)",
        projected.view_records, projected.coalesced
    );
    println!(
        "  {sink_rate:>10.0} view records/s view sink, one worker ({} row writes in {} batches)",
        sunk.stats.rows_written, sunk.stats.batches
    );
    println!("  {rebuild_rate:>10.0} records/s rebuild of all three views from their topics (shadow tables + swap)");
    println!(
        "  {events_rebuild_rate:>10.0} events/s rebuild of all three views from the events ({} events, {} row writes)",
        from_events.records, from_events.rows
    );
    println!(
        "  {copy_rows_per_s:>10.0} rows/s plain COPY of {} rows in the same run",
        sunk.stats.records
    );
    println!(
        "  ratio: sink = {:.1} % of COPY",
        100.0 * sink_rate / copy_rows_per_s
    );
    Ok(report)
}

struct Projected {
    secs: f64,
    view_records: u64,
    coalesced: u64,
}

/// The projector over the whole event topic, from its first commit to its last.
async fn run_projector(config: &Config) -> Result<Projected> {
    let end = transactional_end(config, &[&config.topics.events])?;
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let worker = tokio::spawn(gavel_processors::project::run(
        config.clone(),
        shutdown.clone(),
    ));
    let waited =
        wait_until_committed(config, &config.project_group, &[&config.topics.events], end).await;
    let secs = started.elapsed().as_secs_f64();
    shutdown.trigger();
    let stats = worker.await??;
    waited?;
    Ok(Projected {
        secs,
        view_records: stats.view_records,
        coalesced: stats.coalesced,
    })
}

struct Sunk {
    secs: f64,
    stats: gavel_sinks::views::SinkStats,
}

async fn run_sink(config: &Config) -> Result<Sunk> {
    let topics = config.topics.views();
    let end = transactional_end(config, &topics)?;
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let worker = tokio::spawn(gavel_sinks::views::run(config.clone(), shutdown.clone()));
    let waited = wait_until_committed(config, &config.sink_group, &topics, end).await;
    let secs = started.elapsed().as_secs_f64();
    shutdown.trigger();
    let stats = worker.await??;
    waited?;
    Ok(Sunk { secs, stats })
}

/// `COPY ... FROM STDIN` of `rows` auction-shaped rows into a scratch table.
async fn copy_baseline(client: &tokio_postgres::Client, schema: &str, rows: usize) -> Result<f64> {
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.copy_baseline (LIKE {schema}.auction_details INCLUDING DEFAULTS)"
        ))
        .await?;
    let mut text = String::with_capacity(rows * 160);
    for n in 0..rows {
        text.push_str(&format!(
            "a-{n}\tt\ts-1\tLot {n}\tACTIVE\tEUR\t1000\t\\N\t100\t{}\t{}\tb-{}\t\\N\t2030-01-01 00:00:00+00\t2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\t{}\t[]\n",
            1000 + n, n % 50, n % 500, n + 1
        ));
    }
    let started = Instant::now();
    let sink = client
        .copy_in(&format!(
            // Named columns: a column added to the view later keeps its default.
            "COPY {schema}.copy_baseline (auction_id, tenant_id, seller_id, title, status, currency,
                 starting_price_minor, reserve_price_minor, min_increment_minor, current_price_minor,
                 bid_count, leading_bidder, winner_id, end_time, created_at, updated_at, version, bidders)
             FROM STDIN"
        ))
        .await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(text)).await?;
    sink.finish().await?;
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}
