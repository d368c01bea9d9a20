//! `gavel dlq list|show|replay`: inspect and replay dead-letter topics.

use anyhow::Result;
use clap::Subcommand;
use gavel_runtime::{dlq, Config};

#[derive(Subcommand)]
pub enum DlqAction {
    /// This pipeline's dead-letter topics with their record counts.
    List,
    /// The records of one dead-letter topic, with their headers.
    Show {
        topic: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Re-produce a dead-letter topic's records to their original topic and
    /// partition. Idempotent: a second replay finds nothing new to send.
    Replay { topic: String },
}

pub async fn run(config: &Config, action: DlqAction) -> Result<()> {
    let config = config.clone();
    // The DLQ tools use blocking Kafka clients: keep them off the async workers.
    tokio::task::spawn_blocking(move || run_blocking(&config, action)).await?
}

fn run_blocking(config: &Config, action: DlqAction) -> Result<()> {
    match action {
        DlqAction::List => {
            let summaries = dlq::list(config)?;
            if summaries.is_empty() {
                println!("no dead-letter topics");
            }
            for summary in summaries {
                println!("{:<60} {:>10} records", summary.topic, summary.records);
            }
        }
        DlqAction::Show { topic, limit } => {
            let records = dlq::show(config, &topic, limit)?;
            println!("{topic}: {} record(s) shown (limit {limit})", records.len());
            for record in records {
                print_record(&record);
            }
        }
        DlqAction::Replay { topic } => {
            let report = dlq::replay(config, &topic)?;
            println!(
                "{topic}: {} record(s) replayed to their original topics, {} without origin skipped",
                report.replayed, report.skipped
            );
        }
    }
    Ok(())
}

fn print_record(record: &dlq::DlqRecord) {
    let get = |key| record.header(key).unwrap_or("-");
    println!();
    println!(
        "partition {} offset {}  key {}  {} payload bytes",
        record.partition,
        record.offset,
        record.key.as_deref().unwrap_or("-"),
        record.payload_bytes
    );
    println!(
        "  {} from {}/{}/{} (attempt {}, worker {})",
        get(dlq::header::ERROR_CLASS),
        get(dlq::header::ORIGINAL_TOPIC),
        get(dlq::header::ORIGINAL_PARTITION),
        get(dlq::header::ORIGINAL_OFFSET),
        get(dlq::header::ATTEMPT),
        get(dlq::header::WORKER),
    );
    println!("  error: {}", get(dlq::header::ERROR_MESSAGE));
    for (key, value) in &record.headers {
        if !key.starts_with(dlq::header::PREFIX) {
            println!("  {key}: {value}");
        }
    }
}
