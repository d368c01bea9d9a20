//! Where a rebuild by projection reads the events: `auction.events` from
//! offset 0, or the Postgres event store, which holds the same events with
//! the topic coordinates they were consumed from. Either way a batch is
//! events with their partition and offset, below per-partition targets.

use super::replay::TopicReplay;
use super::RebuildReport;
use crate::event_store::{self, StoredEvent};
use crate::{batch, offsets, SinkError};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::{postgres, Config};
use rdkafka::message::Message;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

pub enum EventSource {
    Topic(Box<TopicEvents>),
    Store(Box<StoreReader>),
}

/// The events topic, decoded.
pub struct TopicEvents {
    replay: TopicReplay,
    codec: AvroCodec,
}

/// A batch: the events to project, and how many records were read for them
/// (0 once every partition stands at its target).
pub struct EventBatch {
    pub events: Vec<StoredEvent>,
    pub read: usize,
}

impl EventSource {
    pub fn topic(config: &Config) -> Result<Self, SinkError> {
        let group = format!("{}-rebuild", config.sink_group);
        Ok(Self::Topic(Box::new(TopicEvents {
            replay: TopicReplay::open(config, &config.topics.events, &group)?,
            codec: AvroCodec::for_topics(&config.registry, &[&config.topics.events]),
        })))
    }

    /// The event store, waited for up to `catch_up` whenever it has not yet
    /// consumed as far as a read must go.
    pub async fn store(config: &Config, catch_up: Duration) -> Result<Self, SinkError> {
        Ok(Self::Store(Box::new(
            StoreReader::open(config, catch_up).await?,
        )))
    }

    /// The next events below `targets`, in offset order per partition.
    pub async fn next_batch(
        &mut self,
        targets: &HashMap<i32, i64>,
        max: usize,
        report: &mut RebuildReport,
    ) -> Result<EventBatch, SinkError> {
        match self {
            Self::Topic(topic) => topic.next_batch(targets, max, report).await,
            Self::Store(reader) => {
                let events = reader.next_batch(targets, max).await?;
                let read = events.len();
                Ok(EventBatch { events, read })
            }
        }
    }
}

impl TopicEvents {
    async fn next_batch(
        &mut self,
        targets: &HashMap<i32, i64>,
        max: usize,
        report: &mut RebuildReport,
    ) -> Result<EventBatch, SinkError> {
        let messages = self.replay.next_batch(targets, max).await?;
        let mut events = Vec::with_capacity(messages.len());
        for message in &messages {
            match batch::decode_event(&self.codec, message).await {
                Ok((event, envelope)) => events.push(StoredEvent {
                    partition: message.partition(),
                    offset: message.offset(),
                    meta: envelope.view_meta(),
                    event,
                }),
                Err(error) if error.is_transient() => return Err(error.into()),
                // An event that will never decode is skipped with its
                // coordinates, as the projector dead-letters it.
                Err(error) => {
                    report.skipped += 1;
                    let reason = error.to_string();
                    batch::log_skipped(message, &reason, "undecodable event skipped by rebuild");
                }
            }
        }
        Ok(EventBatch {
            events,
            read: messages.len(),
        })
    }
}

/// Reads the `events` table by topic coordinates, on a connection of its own
/// (the rebuild's writes to the shadows go on at the same time on another).
pub struct StoreReader {
    client: Client,
    schema: String,
    topic: String,
    group: String,
    catch_up: Duration,
    /// Next offset to read per partition.
    position: HashMap<i32, i64>,
    /// How far the event store had consumed each partition when last asked:
    /// it only moves on, so targets below it need no asking again.
    stored: HashMap<i32, i64>,
}

impl StoreReader {
    async fn open(config: &Config, catch_up: Duration) -> Result<Self, SinkError> {
        let client = postgres::connect(config).await?;
        let schema = config.postgres_schema.clone();
        postgres::require_migrated(&client, &schema, &event_store::migrations()).await?;
        let unplaced = event_store::rows_without_source(&client, &schema).await?;
        if unplaced > 0 {
            return Err(SinkError::Rebuild(format!(
                "{schema}.events holds rows that do not say which topic offset they were \
                 consumed from ({unplaced} of them), so a rebuild from the event store cannot \
                 stop where the live sink stands; rebuild from the events topic (--from events)"
            )));
        }
        Ok(Self {
            client,
            schema,
            topic: config.topics.events.clone(),
            group: event_store::consumer_group(config),
            catch_up,
            position: HashMap::new(),
            stored: HashMap::new(),
        })
    }

    async fn next_batch(
        &mut self,
        targets: &HashMap<i32, i64>,
        max: usize,
    ) -> Result<Vec<StoredEvent>, SinkError> {
        if !self.behind(targets).is_empty() {
            self.wait_until_stored(targets).await?;
        }
        let mut events = Vec::new();
        let mut partitions: Vec<_> = targets.iter().map(|(p, t)| (*p, *t)).collect();
        partitions.sort_unstable();
        for (partition, target) in partitions {
            let from = self.position.get(&partition).copied().unwrap_or(0);
            let room = max.saturating_sub(events.len());
            if from >= target || room == 0 {
                continue;
            }
            let limit = i64::try_from(room).unwrap_or(i64::MAX);
            let range = (from, target);
            let read = event_store::read_range(
                &self.client,
                &self.schema,
                &self.topic,
                partition,
                range,
                limit,
            )
            .await?;
            // Fewer than asked: nothing more is stored below the target
            // (offsets without a row were transaction markers or events the
            // store dead-lettered).
            let next = match read.last() {
                Some(last) if read.len() == room => last.offset + 1,
                _ => target,
            };
            self.position.insert(partition, next);
            events.extend(read);
        }
        Ok(events)
    }

    /// Waits until the event store has consumed every partition up to its
    /// target: the rows below it are committed with those offsets, so none
    /// is still on its way. Refuses if it stays behind.
    async fn wait_until_stored(&mut self, targets: &HashMap<i32, i64>) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.catch_up;
        loop {
            let positions =
                offsets::stored_positions(&self.client, &self.schema, &self.group, &self.topic)
                    .await?;
            self.stored = positions
                .into_iter()
                .map(|(p, next, _)| (p, next))
                .collect();
            let behind = self.behind(targets);
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SinkError::Rebuild(format!(
                    "the event store has not consumed {} as far as the live view sink has \
                     applied it ({}), after waiting {} s; is the event-store sink running? \
                     Rebuild from the events topic (--from events) meanwhile",
                    self.topic,
                    behind.join(", "),
                    self.catch_up.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The partitions whose target lies past what the store was last known
    /// to have consumed, each said with both positions.
    fn behind(&self, targets: &HashMap<i32, i64>) -> Vec<String> {
        targets
            .iter()
            .filter_map(|(p, target)| {
                let at = self.stored.get(p).copied().unwrap_or(0);
                (at < *target)
                    .then(|| format!("partition {p} at offset {at}, the view sink at {target}"))
            })
            .collect()
    }
}
