//! Rebuild from a view's compacted topic: its records from offset 0, exactly
//! up to the live sink's stored offsets on that topic.

use super::replay::TopicReplay;
use super::{
    connect_migrated, lock_for_swap, progress_bar, sink_positions, total, RebuildReport, Shadow,
    BATCH, FLUSH_ROWS,
};
use crate::views::changes::{read_row, Changes};
use crate::views::View;
use crate::{batch, SinkError};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::Config;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::time::Instant;
use tokio_postgres::{Client, GenericClient};

pub async fn rebuild_from_topic(config: &Config, view: View) -> Result<RebuildReport, SinkError> {
    let started = Instant::now();
    let mut client = connect_migrated(config).await?;
    let shadow = Shadow::create(&client, &config.postgres_schema, view).await?;
    let built = copy_and_swap(&mut client, config, &shadow).await;
    let shadows = std::slice::from_ref(&shadow);
    let mut report = Shadow::discard_if_failed(&client, shadows, built).await?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Copies the view's records into the shadow up to the live sink's offsets,
/// then, with the live sink held off, the ones it applied meanwhile, and swaps.
async fn copy_and_swap(
    client: &mut Client,
    config: &Config,
    shadow: &Shadow,
) -> Result<RebuildReport, SinkError> {
    let view = shadow.view;
    let group = format!("{}-rebuild", config.sink_group);
    let mut replay = TopicReplay::open(config, view.topic(config), &group)?;
    let mut report = RebuildReport::default();

    let targets = stored_offsets(&*client, config, view).await?;
    let progress = progress_bar(total(&targets), "records");
    let codec = AvroCodec::for_topics(&config.registry, &[view.topic(config)]);
    let mut copy = Copy {
        replay: &mut replay,
        codec: &codec,
        shadow,
        progress: &progress,
        report: &mut report,
    };
    copy.run(&*client, &targets).await?;
    shadow.finish_indexes(client).await?;

    let tx = client.transaction().await?;
    lock_for_swap(&tx, &config.postgres_schema, &[view]).await?;
    let targets = stored_offsets(&tx, config, view).await?;
    progress.set_length(total(&targets));
    copy.run(&tx, &targets).await?;
    shadow.swap(&tx, config).await?;
    tx.commit().await?;
    progress.finish_and_clear();
    Ok(report)
}

/// The live sink's next offsets on the view's topic.
async fn stored_offsets(
    client: &impl GenericClient,
    config: &Config,
    view: View,
) -> Result<HashMap<i32, i64>, SinkError> {
    let positions = sink_positions(client, config, view).await?;
    Ok(positions
        .into_iter()
        .map(|(p, next, _)| (p, next))
        .collect())
}

struct Copy<'a> {
    replay: &'a mut TopicReplay,
    codec: &'a AvroCodec,
    shadow: &'a Shadow,
    progress: &'a ProgressBar,
    report: &'a mut RebuildReport,
}

impl Copy<'_> {
    /// Applies the view records below `targets` to the shadow table, the
    /// newest per row kept across batches and written every `FLUSH_ROWS`.
    async fn run(
        &mut self,
        client: &impl GenericClient,
        targets: &HashMap<i32, i64>,
    ) -> Result<(), SinkError> {
        let view = self.shadow.view;
        let mut changes = Changes::default();
        loop {
            let records = self.replay.next_batch(targets, BATCH).await?;
            if records.is_empty() || changes.len() >= FLUSH_ROWS {
                let pending = std::mem::take(&mut changes);
                self.report.rows += pending.write(client, view, &self.shadow.name).await?;
            }
            if records.is_empty() {
                return Ok(());
            }
            for message in &records {
                let read = match read_row(self.codec, view, message).await? {
                    Ok(row) => changes.add(view, message, row),
                    Err(reason) => Err(reason),
                };
                if let Err(reason) = read {
                    self.report.skipped += 1;
                    batch::log_skipped(
                        message,
                        &reason,
                        "unreadable view record skipped by rebuild",
                    );
                }
            }
            self.report.records += records.len() as u64;
            self.progress.inc(records.len() as u64);
        }
    }
}
