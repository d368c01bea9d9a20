//! Command -> read-model row latency: every accepted command (its auction and
//! the version it produced) is watched for in `auction_details`, polled every
//! few milliseconds; once the row holds that version or a newer one, the
//! latency from the command's due time is recorded. The figure is an upper
//! bound of the true one by at most one poll interval plus one query.

use anyhow::Result;
use gavel_producers::load::{Accepted, Latencies};
use gavel_runtime::{postgres, Config};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const POLL: Duration = Duration::from_millis(10);
/// After the load ends, how long rows may take to show up before they count as missing.
pub const DRAIN: Duration = Duration::from_secs(60);

pub struct Visibility {
    /// From the command's due time to the row showing its version.
    pub command_to_row: Latencies,
    /// From the outcome's arrival to the row showing its version.
    pub outcome_to_row: Latencies,
    /// Accepted commands whose row never showed within the drain time.
    pub never_seen: u64,
}

/// Watches until `accepted` closes (the load is over) and every change is
/// seen, or `DRAIN` has passed since then.
pub async fn watch(
    config: &Config,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
) -> Result<Visibility> {
    let client = postgres::connect(config).await?;
    let mut pending: HashMap<String, Vec<Accepted>> = HashMap::new();
    let mut command_to_row = Latencies::new();
    let mut outcome_to_row = Latencies::new();
    let mut closed_at: Option<Instant> = None;
    loop {
        while let Ok(change) = accepted.try_recv() {
            pending
                .entry(change.aggregate_id.clone())
                .or_default()
                .push(change);
        }
        if closed_at.is_none() && accepted.is_closed() && accepted.is_empty() {
            closed_at = Some(Instant::now());
        }
        if pending.is_empty() && closed_at.is_some() {
            break;
        }
        if closed_at.is_some_and(|at| at.elapsed() > DRAIN) {
            break;
        }
        if !pending.is_empty() {
            let ids: Vec<String> = pending.keys().cloned().collect();
            let rows = gavel_sinks::views::versions::details_versions(
                &client,
                &config.postgres_schema,
                &ids,
            )
            .await?;
            let now = Instant::now();
            for (id, version) in rows {
                let Some(waiting) = pending.get_mut(&id) else {
                    continue;
                };
                waiting.retain(|change| {
                    let visible = change.version as i64 <= version;
                    if visible {
                        command_to_row.record(now - change.due);
                        outcome_to_row.record(now.saturating_duration_since(change.decided));
                    }
                    !visible
                });
                if waiting.is_empty() {
                    pending.remove(&id);
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(Visibility {
        command_to_row,
        outcome_to_row,
        never_seen: pending.values().map(|v| v.len() as u64).sum(),
    })
}
