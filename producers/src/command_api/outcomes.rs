//! Request/reply over the outcome topic. One consumer per process reads every
//! partition of `auction.outcomes` (committed records only) from where it ended
//! at start-up, and hands each outcome to the requests waiting for its command
//! id, then keeps it a while for `GET /commands/{id}`.
//!
//! A request registers its waiter BEFORE its command is produced, so an outcome
//! cannot arrive in the gap between sending and starting to wait.

use super::recent::Recent;
use crate::ProducerError;
use gavel_runtime::auction_codec::{outcome_from_avro, CommandOutcome};
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::registry_endpoint::RegistryEndpoint;
use gavel_runtime::{kafka, Config, Shutdown};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How many outcomes `GET /commands/{id}` can find, and for how long.
const RECENT_CAPACITY: usize = 100_000;
const RECENT_TTL: Duration = Duration::from_secs(600);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

type Senders = Vec<(u64, oneshot::Sender<CommandOutcome>)>;

pub struct Outcomes {
    /// Several requests may wait for one command id (concurrent retries).
    waiters: Mutex<HashMap<String, Senders>>,
    next_waiter: AtomicU64,
    recent: Mutex<Recent>,
}

impl Outcomes {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            waiters: Mutex::new(HashMap::new()),
            next_waiter: AtomicU64::new(0),
            recent: Mutex::new(Recent::new(RECENT_CAPACITY, RECENT_TTL)),
        })
    }

    /// Starts waiting for `command_id`'s outcome; call before producing it.
    pub fn register(self: &Arc<Self>, command_id: &str) -> Waiter {
        let (sender, receiver) = oneshot::channel();
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(command_id.to_owned())
            .or_default()
            .push((id, sender));
        Waiter {
            outcomes: Arc::clone(self),
            command_id: command_id.to_owned(),
            id,
            receiver,
        }
    }

    /// A recently seen outcome.
    pub fn recent(&self, command_id: &str) -> Option<CommandOutcome> {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(command_id, Instant::now())
    }

    fn complete(&self, outcome: CommandOutcome) {
        let waiting = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&outcome.command_id);
        for (_, sender) in waiting.unwrap_or_default() {
            // The request may have given up in the meantime; it polls instead.
            let _ = sender.send(outcome.clone());
        }
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(&outcome, Instant::now());
    }

    fn forget(&self, command_id: &str, id: u64) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(senders) = waiters.get_mut(command_id) {
            senders.retain(|(other, _)| *other != id);
            if senders.is_empty() {
                waiters.remove(command_id);
            }
        }
    }
}

/// One request's wait; dropping it (timeout, client gone) unregisters it.
pub struct Waiter {
    outcomes: Arc<Outcomes>,
    command_id: String,
    id: u64,
    receiver: oneshot::Receiver<CommandOutcome>,
}

impl Waiter {
    /// The outcome, or None when `timeout` passed first.
    pub async fn wait(mut self, timeout: Duration) -> Option<CommandOutcome> {
        tokio::time::timeout(timeout, &mut self.receiver)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.outcomes.forget(&self.command_id, self.id);
    }
}

/// Positions a consumer at the current end of every outcome partition, then
/// reads in a task until `stop`. Returns once positioned, so every command sent
/// after this returns has its outcome seen.
pub async fn start(
    config: &Config,
    outcomes: Arc<Outcomes>,
    stop: Shutdown,
) -> Result<JoinHandle<()>, ProducerError> {
    let codec = AvroCodec::for_topics(&config.registry, &[&config.topics.outcomes]);
    let config = config.clone();
    let consumer = tokio::task::spawn_blocking(move || positioned_consumer(&config))
        .await
        .map_err(|e| ProducerError::CommandApi(format!("outcome consumer setup: {e}")))??;
    Ok(tokio::spawn(read(consumer.0, codec, outcomes, stop)))
}

/// Blocking metadata calls: the partition count and each partition's end
/// (for read_committed, the last stable offset).
fn positioned_consumer(
    config: &Config,
) -> Result<(StreamConsumer, RegistryEndpoint), ProducerError> {
    let topic = &config.topics.outcomes;
    let mut client = kafka::client_config(config);
    client
        // Required by librdkafka; nothing is ever committed under it.
        .set("group.id", kafka::reader_group(config, "command-api"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "latest")
        // A waiting HTTP request is on the other end: fetch as soon as data is there.
        .set("fetch.wait.max.ms", "5");
    let consumer: StreamConsumer = client.create()?;
    let partitions = kafka::partition_count(config, topic)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let (_, end) = kafka::retry_leaderless(|| {
            consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT)
        })?;
        assignment.add_partition_offset(topic, partition, Offset::Offset(end))?;
    }
    consumer.assign(&assignment)?;
    tracing::info!(%topic, partitions, "outcome consumer positioned at the end");
    Ok((consumer, config.registry.clone()))
}

async fn read(consumer: StreamConsumer, codec: AvroCodec, outcomes: Arc<Outcomes>, stop: Shutdown) {
    loop {
        let message = tokio::select! {
            _ = stop.triggered() => break,
            message = consumer.recv() => message.map(|m| m.detach()),
        };
        match message {
            Ok(message) => match decode(&codec, &message).await {
                Ok(outcome) => outcomes.complete(outcome),
                Err(error) => tracing::warn!(
                    %error,
                    partition = message.partition(),
                    offset = message.offset(),
                    "outcome not readable; its request will answer 202"
                ),
            },
            Err(error) => {
                tracing::warn!(%error, "outcome consumer");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracing::info!("outcome consumer stopped");
}

async fn decode(codec: &AvroCodec, message: &OwnedMessage) -> Result<CommandOutcome, String> {
    let payload = message.payload().ok_or("empty outcome record")?;
    let decoded = codec.decode(payload).await.map_err(|e| e.to_string())?;
    outcome_from_avro(decoded.value).map_err(|e| e.to_string())
}
