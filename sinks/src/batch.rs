//! What every sink worker shares: a group consumer that hands out batches, the
//! Postgres-offset filter that makes redelivered records no-ops, event decoding,
//! and the best-effort Kafka commit that keeps lag tooling honest.

use crate::offsets::OffsetStore;
use crate::SinkError;
use futures::future::BoxFuture;
use gavel_domain::auction::AuctionEvent;
use gavel_runtime::auction_codec::event_from_avro;
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::envelope::EventEnvelope;
use gavel_runtime::failure::Failure;
use gavel_runtime::kafka::{self, RevocationLog};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::{Config, RuntimeError, Shutdown};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::GenericClient;

/// A subscribed group consumer that yields batches of at most `batch_max`
/// records, waiting at most `batch_linger` after the first one.
pub struct BatchSource {
    consumer: StreamConsumer<RevocationLog>,
    /// The first subscribed topic: the one `commit` is for.
    topic: String,
    batch_max: usize,
    batch_linger: Duration,
}

impl BatchSource {
    pub fn subscribe(config: &Config, group: &str, topic: &str) -> Result<Self, SinkError> {
        Self::subscribe_all(config, group, &[topic])
    }

    pub fn subscribe_all(config: &Config, group: &str, topics: &[&str]) -> Result<Self, SinkError> {
        let consumer: StreamConsumer<RevocationLog> = kafka::member_config(config, group, false)
            .create_with_context(RevocationLog::default())?;
        consumer.subscribe(topics)?;
        Ok(Self {
            consumer,
            topic: topics.first().copied().unwrap_or_default().to_owned(),
            batch_max: config.batch_max,
            batch_linger: config.batch_linger,
        })
    }

    /// Up to `batch_max` records, waiting at most `batch_linger` after the first.
    pub async fn collect(&self, shutdown: &Shutdown) -> Vec<OwnedMessage> {
        let mut batch = Vec::new();
        let mut deadline = Instant::now() + Duration::from_millis(200);
        while batch.len() < self.batch_max {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                received = tokio::time::timeout(left, self.consumer.recv()) => match received {
                    Ok(Ok(message)) => {
                        if batch.is_empty() {
                            deadline = Instant::now() + self.batch_linger;
                        }
                        batch.push(message.detach());
                    }
                    Ok(Err(error)) => tracing::warn!(%error, "consumer error"),
                    Err(_) => break,
                },
                _ = shutdown.triggered() => break,
            }
        }
        batch
    }

    /// Leaves the group on purpose (shutdown): the partitions move to the
    /// other members at once instead of after the session timeout.
    pub async fn leave(&self) {
        gavel_runtime::membership::leave_group_stream(&self.consumer).await;
    }

    /// Partitions revoked since the last call: their cached offsets must be
    /// re-read from Postgres if they come back.
    pub fn revoked(&self) -> Vec<i32> {
        self.consumer.context().take()
    }

    /// Best effort: Postgres holds the truth, Kafka's offsets only feed lag tooling.
    pub fn commit(&self, offsets: &HashMap<i32, i64>) {
        self.commit_topic(&self.topic, offsets);
    }

    pub fn commit_topic(&self, topic: &str, offsets: &HashMap<i32, i64>) {
        let mut list = TopicPartitionList::new();
        for (partition, next) in offsets {
            if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(*next))
            {
                tracing::warn!(%error, "offset list");
            }
        }
        if let Err(error) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(%error, "kafka offset commit failed (postgres holds the truth)");
        }
    }
}

/// The records of a batch that Postgres has not seen yet, and the offsets to
/// store with their rows.
pub struct Unapplied<'a> {
    pub records: Vec<&'a OwnedMessage>,
    pub next_offsets: HashMap<i32, i64>,
    /// Records below the stored offset: redelivered after a crash or rebalance.
    pub replays: u64,
}

pub async fn unapplied<'a>(
    offsets: &mut OffsetStore,
    client: &impl GenericClient,
    batch: &'a [OwnedMessage],
) -> Result<Unapplied<'a>, SinkError> {
    let mut fresh = Unapplied {
        records: Vec::with_capacity(batch.len()),
        next_offsets: HashMap::new(),
        replays: 0,
    };
    for message in batch {
        let stored_next = offsets.next_offset(client, message.partition()).await?;
        if message.offset() < stored_next {
            // Not recorded: storing a redelivered offset would move it back.
            fresh.replays += 1;
        } else {
            fresh
                .next_offsets
                .insert(message.partition(), message.offset() + 1);
            fresh.records.push(message);
        }
    }
    Ok(fresh)
}

/// One event record to its domain event and envelope.
pub async fn decode_event(
    codec: &AvroCodec,
    message: &OwnedMessage,
) -> Result<(AuctionEvent, EventEnvelope), RuntimeError> {
    let payload = message
        .payload()
        .ok_or_else(|| RuntimeError::Mapping("record has no payload".into()))?;
    let decoded = codec.decode(payload).await?;
    event_from_avro(&decoded.schema.name, decoded.value)
}

/// The `expected` record `payload` holds (any serde type its schema mirrors,
/// see `gavel_runtime::avro::json`), or why it never will be one. A registry
/// outage is waited out, unready, so a good record is never skipped;
/// shutdown during the wait is an error, so its offset is not committed.
pub async fn decode_patiently<T: serde::de::DeserializeOwned>(
    codec: &AvroCodec,
    payload: &[u8],
    expected: &str,
    readiness: &Readiness,
    stage: &metrics::Stage,
    shutdown: &Shutdown,
) -> Result<Result<T, String>, SinkError> {
    use gavel_runtime::avro::json;
    use gavel_runtime::dlq::ErrorClass;
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        let decoded = codec.decode(payload).await;
        let error = match decoded.and_then(|d| json::decode(d, expected)) {
            Ok(record) => {
                readiness.set_dependency("schema-registry", Ok(()));
                return Ok(Ok(record));
            }
            Err(error) if ErrorClass::of(&error).is_some() => return Ok(Err(error.to_string())),
            Err(error) => error,
        };
        tracing::warn!(%error, ?pause, "schema registry unavailable, retrying");
        stage
            .retries
            .with_label_values(&["registry-unavailable"])
            .inc();
        readiness.set_dependency("schema-registry", Err(error.to_string()));
        readiness.beat();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.triggered() => {
                return Err(RuntimeError::RegistryUnavailable(error.to_string()).into())
            }
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
}

/// Logs a skipped record with its coordinates, so it can be found and replayed.
pub fn log_skipped(message: &OwnedMessage, reason: &str, what: &str) {
    tracing::warn!(
        topic = message.topic(),
        partition = message.partition(),
        offset = message.offset(),
        %reason,
        "{what}"
    );
}

/// Connects and checks that `migrations` are applied (`gavel migrate` applies
/// them; a worker's role may not), waiting out a Postgres that is down or
/// restarting: a worker started during a failover keeps trying instead of
/// exiting (it reconnects the same way once running). Other errors return.
pub async fn connect_migrated(
    config: &Config,
    migrations: &[gavel_runtime::postgres::Migration],
    shutdown: &Shutdown,
) -> Result<tokio_postgres::Client, SinkError> {
    use gavel_runtime::postgres;
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        let attempt = async {
            let client = postgres::connect(config).await?;
            postgres::require_migrated(&client, &config.postgres_schema, migrations).await?;
            Ok::<_, RuntimeError>(client)
        };
        match attempt.await {
            Ok(client) => return Ok(client),
            Err(RuntimeError::Postgres(error))
                if postgres::is_transient(&error) && !shutdown.is_triggered() =>
            {
                tracing::warn!(%error, "postgres unavailable at start: retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A worker that writes its batches to Postgres through one connection.
pub trait PostgresStage {
    fn client(&self) -> &tokio_postgres::Client;
    /// Takes a new connection; whatever was cached from the old one (stored
    /// offsets) must be read again: nobody knows whether its last commit landed.
    fn reconnected(&mut self, client: tokio_postgres::Client);
    fn config(&self) -> &Config;
    fn readiness(&self) -> &Readiness;
    /// The stage's metrics (`retries_total{kind}` counts the retries here).
    fn metrics(&self) -> &'static metrics::Stage;
}

/// One attempt of a stage's work on `context` (its batch, its command). A
/// plain function returning a boxed future, not an async closure: a future
/// that holds an async closure over borrowed arguments is not provably `Send`.
pub type Attempt<S, C, T> =
    for<'a> fn(&'a mut S, &'a C, &'a Shutdown) -> BoxFuture<'a, Result<T, SinkError>>;

/// Runs `attempt` until it succeeds. A transient failure (Postgres restarting,
/// a killed backend, a deadlock, too many connections, Kafka away) marks its
/// dependency unready, waits with a growing backoff, reconnects when it was
/// Postgres, and tries again: nothing is dead-lettered for it. Anything else
/// is returned. Poison never gets here (a stage narrows its batch to the
/// records at fault), so what is returned is fatal: the worker exits with it.
pub async fn retrying<S: PostgresStage, C: ?Sized, T>(
    stage: &mut S,
    shutdown: &Shutdown,
    context: &C,
    attempt: Attempt<S, C, T>,
) -> Result<T, SinkError> {
    let mut pause = Duration::from_millis(100);
    let mut waiting_for = None;
    loop {
        let error = match attempt(stage, context, shutdown).await {
            Ok(done) => {
                if let Some(dependency) = waiting_for {
                    stage.readiness().set_dependency(dependency, Ok(()));
                }
                return Ok(done);
            }
            Err(error) => error,
        };
        let dependency = error.dependency();
        let lost_connection = dependency == "postgres" && stage.client().is_closed();
        if (error.class() != Failure::Transient && !lost_connection) || shutdown.is_triggered() {
            return Err(error);
        }
        let reason = error.reason();
        tracing::warn!(%reason, dependency, ?pause, "transient failure: retrying the batch");
        stage
            .metrics()
            .retries
            .with_label_values(&[&format!("{dependency}-unavailable")])
            .inc();
        stage.readiness().set_dependency(dependency, Err(reason));
        waiting_for = Some(dependency);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.triggered() => return Err(error),
        }
        pause = (pause * 2).min(Duration::from_secs(5));
        if dependency == "postgres" {
            let readiness = stage.readiness().clone();
            let reconnect = gavel_runtime::postgres::reconnect(stage.config(), shutdown);
            match readiness.beating(reconnect).await? {
                Some(client) => stage.reconnected(client),
                None => return Err(error),
            }
        }
    }
}
