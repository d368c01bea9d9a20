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
use std::collections::{HashMap, HashSet};
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
    Shadow::discard_if_failed(&client, &shadows, built).await?;
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

    /// How far the last phase reads each event partition: the furthest cut
    /// of any view (events past a view's own cut are not applied to it).
    fn furthest(&self) -> HashMap<i32, i64> {
        self.per_partition(i64::max)
    }

    /// How far the first phase reads: the nearest cut of any view (0 for a
    /// view with no position on the partition yet). Reading further would
    /// pass events that a view behind the others must still get once its cut
    /// moves on, and the replay never reads an event twice.
    fn nearest(&self) -> HashMap<i32, i64> {
        self.per_partition(i64::min)
    }

    fn per_partition(&self, pick: fn(i64, i64) -> i64) -> HashMap<i32, i64> {
        let partitions: HashSet<i32> = self.0.values().flat_map(|p| p.keys().copied()).collect();
        partitions
            .into_iter()
            .map(|partition| {
                let cuts = self
                    .0
                    .values()
                    .map(|p| p.get(&partition).copied().unwrap_or(0));
                (partition, cuts.reduce(pick).unwrap_or(0))
            })
            .collect()
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
    /// Phase one up to where the live sink stood (on every view), then phase
    /// two and the swap under the swap locks, up to where it stands now.
    async fn build_and_swap(
        &mut self,
        client: &mut Client,
        config: &Config,
        views: &[View],
        shadows: &[Shadow],
    ) -> Result<(), SinkError> {
        let cuts = Cuts::read(&*client, config, views).await?;
        let targets = cuts.nearest();
        let progress = progress_bar(total(&targets), "events");
        self.run(&*client, &cuts, &targets, shadows, &progress)
            .await?;
        for shadow in shadows {
            shadow.finish_indexes(client).await?;
        }

        let tx = client.transaction().await?;
        lock_for_swap(&tx, &config.postgres_schema, views).await?;
        let cuts = Cuts::read(&tx, config, views).await?;
        let targets = cuts.furthest();
        progress.set_length(total(&targets));
        self.run(&tx, &cuts, &targets, shadows, &progress).await?;
        for shadow in shadows {
            shadow.swap(&tx, config).await?;
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
        targets: &HashMap<i32, i64>,
        shadows: &[Shadow],
        progress: &ProgressBar,
    ) -> Result<(), SinkError> {
        let mut writing = Changes::default();
        loop {
            let mut filling = Changes::default();
            let (written, reached) = tokio::join!(
                write(client, shadows, &writing),
                self.fill(targets, cuts, shadows, &mut filling, progress)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(entries: &[(View, &[(i32, i64)])]) -> Cuts {
        Cuts(
            entries
                .iter()
                .map(|(view, parts)| (*view, parts.iter().copied().collect()))
                .collect(),
        )
    }

    #[test]
    fn the_first_phase_stops_at_the_view_furthest_behind_and_the_last_at_the_one_ahead() {
        let cuts = cuts(&[
            (View::AuctionDetails, &[(0, 10), (1, 7)]),
            (View::UserBids, &[(0, 5), (1, 9)]),
        ]);
        assert_eq!(cuts.nearest(), HashMap::from([(0, 5), (1, 7)]));
        assert_eq!(cuts.furthest(), HashMap::from([(0, 10), (1, 9)]));
    }

    #[test]
    fn a_view_without_a_position_on_a_partition_holds_the_first_phase_back_to_zero() {
        let cuts = cuts(&[
            (View::AuctionDetails, &[(0, 10), (1, 7)]),
            (View::AuctionList, &[(0, 4)]),
        ]);
        assert_eq!(cuts.nearest(), HashMap::from([(0, 4), (1, 0)]));
        assert!(cuts.includes(View::AuctionDetails, 1, 6));
        assert!(!cuts.includes(View::AuctionList, 1, 0));
    }
}
