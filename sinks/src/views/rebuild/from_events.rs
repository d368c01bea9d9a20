//! Rebuild from the events: `auction.events` from offset 0, or the Postgres
//! event store, through the pure `project` step (the projector's own
//! reducer), every chosen view in one pass.
//!
//! Where to stop: each view record carries the event-topic offset it was
//! projected from, and the live sink stores, per view partition, one past the
//! source offset of the last record it applied. A view's shadow takes the
//! changes of exactly the events below that point (view partition p holds the
//! records of event partition p, in event order). So the shadow equals what the
//! live table holds, or what the current reducer makes of the same events,
//! and the records the sink reads next are those of the following events. A
//! record of the boundary event it already applied, if the sink's batch split
//! that event's records, comes again with a version the table has and is a
//! no-op under the version guard.

use super::event_source::EventSource;
use super::{connect_migrated, lock_for_swap, progress_bar, sink_positions, total};
use super::{RebuildReport, Shadow, BATCH, FLUSH_ROWS};
use crate::event_store::StoredEvent;
use crate::views::changes::Changes;
use crate::views::View;
use crate::SinkError;
use gavel_domain::views::{project, AuctionProjection, ViewChanges};
use gavel_runtime::Config;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, GenericClient};

pub async fn rebuild_from_events(
    config: &Config,
    views: &[View],
) -> Result<RebuildReport, SinkError> {
    let source = EventSource::topic(config)?;
    rebuild_by_projection(config, views, source).await
}

/// The same rebuild, reading the events from the Postgres event store, which
/// must have consumed them as far as the live view sink has applied them:
/// it is waited for up to `catch_up`, then the rebuild is refused.
pub async fn rebuild_from_event_store(
    config: &Config,
    views: &[View],
    catch_up: Duration,
) -> Result<RebuildReport, SinkError> {
    let source = EventSource::store(config, catch_up).await?;
    rebuild_by_projection(config, views, source).await
}

async fn rebuild_by_projection(
    config: &Config,
    views: &[View],
    source: EventSource,
) -> Result<RebuildReport, SinkError> {
    let started = Instant::now();
    let schema = &config.postgres_schema;
    let mut client = connect_migrated(config).await?;
    let mut shadows = Vec::with_capacity(views.len());
    for view in views {
        shadows.push(Shadow::create(&client, schema, *view).await?);
    }
    let mut fold = EventFold {
        source,
        running: HashMap::new(),
        report: RebuildReport::default(),
    };
    let built = fold
        .build_and_swap(&mut client, config, views, &shadows)
        .await;
    if built.is_err() {
        // The live tables are untouched; leave no half-built shadow behind.
        for shadow in &shadows {
            shadow.discard(&client).await;
        }
    }
    built?;
    fold.report.elapsed = started.elapsed();
    Ok(fold.report)
}

/// Per view and event partition: the events whose changes the view's table
/// holds are those below this offset.
struct Cuts(HashMap<View, HashMap<i32, i64>>);

impl Cuts {
    async fn read(
        client: &impl GenericClient,
        config: &Config,
        views: &[View],
    ) -> Result<Self, SinkError> {
        let mut cuts = HashMap::new();
        for view in views {
            let mut partitions = HashMap::new();
            for (partition, next, source) in sink_positions(client, config, *view).await? {
                let source = source.ok_or_else(|| {
                    SinkError::Rebuild(format!(
                        "{} partition {partition}: the live sink stands at offset {next}, but the \
                         records it applied do not say which event they come from (written by a \
                         projector older than source offsets); rebuild this view from its topic \
                         (--from view-topic) until the sink has applied newer records",
                        view.topic(config)
                    ))
                })?;
                partitions.insert(partition, source);
            }
            cuts.insert(*view, partitions);
        }
        Ok(Self(cuts))
    }

    fn includes(&self, view: View, partition: i32, offset: i64) -> bool {
        let cut = self.0.get(&view).and_then(|p| p.get(&partition));
        offset < cut.copied().unwrap_or(0)
    }

    /// How far to read each event partition: the furthest cut of any view.
    fn read_targets(&self) -> HashMap<i32, i64> {
        let mut targets: HashMap<i32, i64> = HashMap::new();
        for (partition, cut) in self.0.values().flatten() {
            let target = targets.entry(*partition).or_insert(0);
            *target = (*target).max(*cut);
        }
        targets
    }
}

/// The replay's state: the running auctions' projections (as the projector
/// keeps them; a closed auction can change no more and is dropped).
struct EventFold {
    source: EventSource,
    running: HashMap<String, AuctionProjection>,
    report: RebuildReport,
}

impl EventFold {
    /// Phase one up to where the live sink stood, then phase two and the swap
    /// under the swap locks, up to where it stands now.
    async fn build_and_swap(
        &mut self,
        client: &mut Client,
        config: &Config,
        views: &[View],
        shadows: &[Shadow],
    ) -> Result<(), SinkError> {
        let cuts = Cuts::read(&*client, config, views).await?;
        let progress = progress_bar(total(&cuts.read_targets()), "events");
        self.run(&*client, &cuts, shadows, &progress).await?;
        for shadow in shadows {
            shadow.finish_indexes(client).await?;
        }

        let tx = client.transaction().await?;
        lock_for_swap(&tx, &config.postgres_schema, views).await?;
        let cuts = Cuts::read(&tx, config, views).await?;
        progress.set_length(total(&cuts.read_targets()));
        self.run(&tx, &cuts, shadows, &progress).await?;
        for shadow in shadows {
            shadow.swap(&tx).await?;
        }
        tx.commit().await?;
        progress.finish_and_clear();
        Ok(())
    }

    /// Projects the events below the cuts into the views' changes and writes
    /// them to the shadows. Changes are kept across batches (newest per row),
    /// so a row that many events touch is written once per flush rather than
    /// once per batch. A flush of `FLUSH_ROWS` rows is written while the next
    /// ones are read and projected: Postgres and this process work at once.
    async fn run(
        &mut self,
        client: &impl GenericClient,
        cuts: &Cuts,
        shadows: &[Shadow],
        progress: &ProgressBar,
    ) -> Result<(), SinkError> {
        let targets = cuts.read_targets();
        let mut writing = Changes::default();
        loop {
            let mut filling = Changes::default();
            let (written, reached) = tokio::join!(
                write(client, shadows, &writing),
                self.fill(&targets, cuts, shadows, &mut filling, progress)
            );
            self.report.rows += written?;
            if reached? {
                self.report.rows += write(client, shadows, &filling).await?;
                return Ok(());
            }
            writing = filling;
        }
    }

    /// Reads and projects batches into `changes` until they hold `FLUSH_ROWS`
    /// rows (false) or every partition stands at its cut (true).
    async fn fill(
        &mut self,
        targets: &HashMap<i32, i64>,
        cuts: &Cuts,
        shadows: &[Shadow],
        changes: &mut Changes,
        progress: &ProgressBar,
    ) -> Result<bool, SinkError> {
        while changes.len() < FLUSH_ROWS {
            let batch = self
                .source
                .next_batch(targets, BATCH, &mut self.report)
                .await?;
            if batch.read == 0 {
                return Ok(true);
            }
            for event in &batch.events {
                let Some(projected) = self.project(event) else {
                    continue;
                };
                let (partition, offset) = (event.partition, event.offset);
                changes.add_projected(projected, |view| {
                    shadows.iter().any(|s| s.view == view) && cuts.includes(view, partition, offset)
                });
            }
            self.report.records += batch.read as u64;
            progress.inc(batch.read as u64);
        }
        Ok(false)
    }

    /// The view changes of one event (none for an event that changes no
    /// view), keeping its auction's projection.
    fn project(&mut self, stored: &StoredEvent) -> Option<ViewChanges> {
        let key = stored.meta.aggregate_id.as_str();
        let before = self.running.remove(key);
        let (after, changes) = project(before, &stored.meta, &stored.event);
        if let Some(after) = after.filter(AuctionProjection::is_running) {
            self.running.insert(key.to_owned(), after);
        }
        changes
    }
}

/// Writes every view's share of `changes` to its shadow; the rows written.
async fn write(
    client: &impl GenericClient,
    shadows: &[Shadow],
    changes: &Changes,
) -> Result<u64, SinkError> {
    let mut rows = 0;
    for shadow in shadows {
        rows += changes.write(client, shadow.view, &shadow.name).await?;
    }
    Ok(rows)
}
