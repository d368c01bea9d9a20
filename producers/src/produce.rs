//! `gavel produce`: JSON lines in, Avro commands out. A bad line is reported with
//! its number and reason and the rest still flows.

use crate::json_command::parse_line;
use crate::progress::Progress;
use crate::{CommandProducer, ProducerError};
use gavel_domain::Timestamp;
use gavel_runtime::{Config, Shutdown};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProduceReport {
    pub lines: u64,
    pub sent: u64,
    /// (line number, reason) of every line that was not sent.
    pub rejected: Vec<(u64, String)>,
}

pub async fn run<R: AsyncBufRead + Unpin>(
    config: &Config,
    input: R,
    default_tenant: &str,
    shutdown: &Shutdown,
) -> Result<ProduceReport, ProducerError> {
    run_with_progress(config, input, default_tenant, shutdown, Progress::hidden()).await
}

/// `run`, showing `progress` (see [`Progress::for_stderr`]).
pub async fn run_with_progress<R: AsyncBufRead + Unpin>(
    config: &Config,
    input: R,
    default_tenant: &str,
    shutdown: &Shutdown,
    mut progress: Progress,
) -> Result<ProduceReport, ProducerError> {
    let started = Instant::now();
    let mut producer = CommandProducer::connect(config).await?;
    let mut report = ProduceReport::default();
    let mut lines = input.lines();
    while let Some(line) = lines.next_line().await? {
        if shutdown.is_triggered() {
            break;
        }
        report.lines += 1;
        progress.line(line.len());
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, now(), default_tenant) {
            Ok((command, meta)) => producer.send(&command, &meta).await?,
            Err(reason) => {
                progress.report(&format!("line {}: {reason}", report.lines));
                report.rejected.push((report.lines, reason));
            }
        }
    }
    producer.flush().await?;
    progress.finish();
    report.sent = producer.sent;
    tracing::info!(
        lines = report.lines,
        sent = report.sent,
        rejected = report.rejected.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "produce finished"
    );
    Ok(report)
}

pub fn now() -> Timestamp {
    Timestamp::from_millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
}
