//! Rebuild from the events: `auction.events` from offset 0 through the pure
//! `project` step (the projector's own reducer), every chosen view in one pass.
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

use super::replay::TopicReplay;
use super::{connect_migrated, lock_for_swap, progress_bar, sink_positions, total};
use super::{RebuildReport, Shadow, BATCH, FLUSH_ROWS};
use crate::views::changes::Changes;
use crate::views::View;
use crate::{batch, SinkError};
use gavel_domain::views::{project, AuctionProjection, ViewChanges};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::Config;
use indicatif::ProgressBar;
use rdkafka::message::{Message, OwnedMessage};
use std::collections::HashMap;
use std::time::Instant;
use tokio_postgres::GenericClient;

pub async fn rebuild_from_events(
    config: &Config,
    views: &[View],
) -> Result<RebuildReport, SinkError> {
    let started = Instant::now();
    let schema = &config.postgres_schema;
    let mut client = connect_migrated(config).await?;
    let mut shadows = Vec::with_capacity(views.len());
    for view in views {
        shadows.push(Shadow::create(&client, schema, *view).await?);
    }
    let group = format!("{}-rebuild", config.sink_group);
    let mut fold = EventFold {
        codec: AvroCodec::new(&config.registry_url),
        replay: TopicReplay::open(config, &config.topics.events, &group)?,
        running: HashMap::new(),
        report: RebuildReport::default(),
    };

    let cuts = Cuts::read(&client, config, views).await?;
    let progress = progress_bar(total(&cuts.read_targets()), "events");
    fold.run(&client, &cuts, &shadows, &progress).await?;
    for shadow in &shadows {
        shadow.finish_indexes(&client).await?;
    }

    let tx = client.transaction().await?;
    lock_for_swap(&tx, schema, views).await?;
    let cuts = Cuts::read(&tx, config, views).await?;
    progress.set_length(total(&cuts.read_targets()));
    fold.run(&tx, &cuts, &shadows, &progress).await?;
    for shadow in &shadows {
        shadow.swap(&tx).await?;
    }
    tx.commit().await?;
    progress.finish_and_clear();
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
    codec: AvroCodec,
    replay: TopicReplay,
    running: HashMap<String, AuctionProjection>,
    report: RebuildReport,
}

impl EventFold {
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
            let events = self.replay.next_batch(targets, BATCH).await?;
            if events.is_empty() {
                return Ok(true);
            }
            for message in &events {
                let Some(projected) = self.project(message).await? else {
                    continue;
                };
                let (partition, offset) = (message.partition(), message.offset());
                changes.add_projected(projected, |view| {
                    shadows.iter().any(|s| s.view == view) && cuts.includes(view, partition, offset)
                });
            }
            self.report.records += events.len() as u64;
            progress.inc(events.len() as u64);
        }
        Ok(false)
    }

    /// The view changes of one event. A registry that cannot be reached stops
    /// the rebuild (the live tables are untouched); an event that will never
    /// decode is skipped with its coordinates, as the projector dead-letters it.
    async fn project(&mut self, message: &OwnedMessage) -> Result<Option<ViewChanges>, SinkError> {
        let (event, envelope) = match batch::decode_event(&self.codec, message).await {
            Ok(decoded) => decoded,
            Err(error) if error.is_transient() => return Err(error.into()),
            Err(error) => {
                self.report.skipped += 1;
                batch::log_skipped(
                    message,
                    &error.to_string(),
                    "undecodable event skipped by rebuild",
                );
                return Ok(None);
            }
        };
        let meta = envelope.view_meta();
        let key = envelope.aggregate_id.as_str();
        let before = self.running.remove(key);
        let (after, changes) = project(before, &meta, &event);
        if let Some(after) = after.filter(AuctionProjection::is_running) {
            self.running.insert(key.to_owned(), after);
        }
        Ok(changes)
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
