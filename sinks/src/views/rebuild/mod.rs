//! `gavel rebuild`: a read model rebuilt into shadow tables while the live
//! tables keep serving, then swapped in atomically, standing exactly where the
//! live view sink stands, so the sink resumes on the new tables from its own
//! stored offsets and nothing is applied twice or skipped.
//!
//! Three sources:
//! * the events (`auction.events` from offset 0) through the pure projection:
//!   what a changed reducer, a new column or a damaged view topic needs;
//! * the same events from the Postgres event store, by the topic coordinates
//!   it keeps with each (for a topic whose retention has dropped old events);
//! * a view's compacted topic from offset 0: fewer records, for a lost or
//!   damaged table.
//!
//! Both build in two phases: first up to where the live sink stood when the
//! rebuild began, then, holding the views' swap locks (which pause the live
//! sink's writes for that instant), up to where it stands now, and swap in the
//! same transaction. Readers see the old table or the new one, never a
//! half-built one.

mod event_source;
mod from_events;
mod from_topic;
mod replay;
mod shadow;

pub use from_events::{rebuild_from_event_store, rebuild_from_events};
pub use from_topic::rebuild_from_topic;
use shadow::Shadow;

use super::{migrations, View};
use crate::{offsets, SinkError};
use gavel_runtime::{postgres, Config};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::{Client, GenericClient, Transaction};

/// Records read per batch.
const BATCH: usize = 10_000;

/// Rows of changes held in memory (newest per row) before they are written to
/// a shadow table: a few hundred bytes each.
const FLUSH_ROWS: usize = 100_000;

/// How long a rebuild from the event store waits for the store to consume
/// the events as far as the live view sink has applied them.
pub const STORE_CATCH_UP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Events,
    EventStore,
    ViewTopic,
}

#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    /// Records read and applied (events, or view records).
    pub records: u64,
    /// Row writes into the shadow tables.
    pub rows: u64,
    /// Records that could not be read, logged with their coordinates.
    pub skipped: u64,
    pub elapsed: Duration,
}

impl RebuildReport {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Rebuilds `views` from `source`: from the events (topic or store) all of them in one pass,
/// from the view topics one after the other.
pub async fn rebuild(
    config: &Config,
    views: &[View],
    source: Source,
) -> Result<RebuildReport, SinkError> {
    match source {
        Source::Events => rebuild_from_events(config, views).await,
        Source::EventStore => rebuild_from_event_store(config, views, STORE_CATCH_UP).await,
        Source::ViewTopic => {
            let mut total = RebuildReport::default();
            for view in views {
                let report = rebuild_from_topic(config, *view).await?;
                total.records += report.records;
                total.rows += report.rows;
                total.skipped += report.skipped;
                total.elapsed += report.elapsed;
            }
            Ok(total)
        }
    }
}

async fn connect_migrated(config: &Config) -> Result<Client, SinkError> {
    let client = postgres::connect(config).await?;
    postgres::require_migrated(&client, &config.postgres_schema, &migrations()).await?;
    Ok(client)
}

/// Stops the live sink's writes to `views` until the transaction ends. Taken
/// in `View::ALL` order, as the sink takes its shared locks, so the two never
/// wait on each other in a cycle.
async fn lock_for_swap(
    tx: &Transaction<'_>,
    schema: &str,
    views: &[View],
) -> Result<(), SinkError> {
    for view in View::ALL.into_iter().filter(|v| views.contains(v)) {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&view.swap_lock_key(schema)],
        )
        .await?;
    }
    Ok(())
}

/// The live sink's stored position on a view topic, per partition: the next
/// view offset and one past the event offset of the last record it applied.
async fn sink_positions(
    client: &impl GenericClient,
    config: &Config,
    view: View,
) -> Result<Vec<(i32, i64, Option<i64>)>, SinkError> {
    let (schema, group) = (&config.postgres_schema, &config.sink_group);
    Ok(offsets::stored_positions(client, schema, group, view.topic(config)).await?)
}

fn total(targets: &HashMap<i32, i64>) -> u64 {
    targets.values().map(|o| (*o).max(0) as u64).sum()
}

fn progress_bar(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
