//! `gavel bench sink`: rows/s the auction_details sink writes to Postgres and
//! the rebuild rate, on a private topic filled by the aggregate processor, next
//! to a plain `COPY` of as many rows into an unindexed table in the same run.

use crate::bench::{wait_until_committed, PrivatePipeline};
use anyhow::Result;
use bytes::Bytes;
use futures::SinkExt;
use gavel_producers::loadgen::{generate, LoadSpec};
use gavel_producers::CommandProducer;
use gavel_runtime::{postgres, Config, Shutdown};
use serde_json::json;
use std::time::{Duration, Instant};

pub async fn sink(base: &Config, commands: usize, auctions: usize) -> Result<()> {
    let pipeline = PrivatePipeline::create(base).await?;
    let result = measure(&pipeline.config, commands, auctions).await;
    pipeline.remove().await?;
    result
}

async fn measure(config: &Config, commands: usize, auctions: usize) -> Result<()> {
    let events = fill_event_topic(config, commands, auctions).await?;
    let client = postgres::connect(config).await?;
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let worker = tokio::spawn(gavel_sinks::auction_details::run(
        config.clone(),
        shutdown.clone(),
    ));
    let sql = format!(
        "SELECT coalesce(sum(version), 0)::int8 FROM {}.auction_details",
        config.postgres_schema
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        let applied: i64 = client
            .query_one(&sql, &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if applied >= events as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sink_secs = started.elapsed().as_secs_f64();
    shutdown.trigger();
    let stats = worker.await??;
    let rebuild = gavel_sinks::auction_details::rebuild::rebuild(config).await?;
    let copy_rows_per_s =
        copy_baseline(&client, &config.postgres_schema, stats.events as usize).await?;
    let sink_rate = stats.events as f64 / sink_secs;
    println!(
        "{}",
        json!({
            "benchmark": "sink",
            "events": stats.events,
            "row_writes": stats.rows_written,
            "batches": stats.batches,
            "sink_events_per_s": sink_rate,
            "sink_row_writes_per_s": stats.rows_written as f64 / sink_secs,
            "rebuild_events": rebuild.events,
            "rebuild_events_per_s": rebuild.events_per_second(),
            "baseline_copy_rows_per_s": copy_rows_per_s,
            "sink_vs_copy": sink_rate / copy_rows_per_s,
        })
    );
    println!(
        "auction_details sink, one worker, {} events ({} row writes in {} batches):",
        stats.events, stats.rows_written, stats.batches
    );
    println!(
        "  {sink_rate:>10.0} events/s applied (each read, reduced and upserted with its offsets)"
    );
    println!(
        "  {:>10.0} events/s rebuild into a shadow table + swap",
        rebuild.events_per_second()
    );
    println!(
        "  {copy_rows_per_s:>10.0} rows/s plain COPY of {} rows in the same run",
        stats.events
    );
    println!(
        "  ratio: sink = {:.1} % of COPY",
        100.0 * sink_rate / copy_rows_per_s
    );
    Ok(())
}

/// Commands through the aggregate processor; returns the number of events.
async fn fill_event_topic(config: &Config, commands: usize, auctions: usize) -> Result<u64> {
    let spec = LoadSpec {
        run_id: "s".into(),
        tenant: "bench".into(),
        auctions,
        bids: commands.saturating_sub(2 * auctions),
        duration_ms: 3_600_000,
        seed: 2,
    };
    let workload = generate(&spec, gavel_producers::produce::now());
    let sent: Vec<_> = workload.setup.iter().chain(&workload.bids).collect();
    let mut producer = CommandProducer::connect(config).await?;
    for (command, meta) in &sent {
        producer.send(command, meta).await?;
    }
    producer.flush().await?;
    let shutdown = Shutdown::new();
    let processor = tokio::spawn(gavel_processors::aggregate::run(
        config.clone(),
        shutdown.clone(),
    ));
    let waited = wait_until_committed(config, sent.len() as i64).await;
    shutdown.trigger();
    let stats = processor.await??;
    waited?;
    Ok(stats.events)
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
            "a-{n}\tt\ts-1\tLot {n}\tACTIVE\tEUR\t1000\t\\N\t100\t{}\t{}\tb-{}\t\\N\t2030-01-01 00:00:00+00\t2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\t{}\n",
            1000 + n, n % 50, n % 500, n + 1
        ));
    }
    let started = Instant::now();
    let sink = client
        .copy_in(&format!("COPY {schema}.copy_baseline FROM STDIN"))
        .await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(text)).await?;
    sink.finish().await?;
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}
