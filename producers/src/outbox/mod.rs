//! `gavel outbox-relay`: drains an upstream service's Postgres outbox table
//! into Kafka. One Postgres transaction per batch: claim unsent rows (per
//! aggregate, under an advisory lock no other replica can share), publish them
//! in id order with the idempotent producer, wait for every acknowledgement,
//! mark them sent, commit. A crash before the commit re-sends the batch: the
//! only duplicates are re-sends carrying the row's `event_id` header.
//! A row Kafka can never take (missing topic, too large, malformed headers)
//! or naming a topic outside `GAVEL_OUTBOX_ALLOWED_TOPICS` is dead-lettered
//! to `GAVEL_OUTBOX_DLQ_TOPIC` and marked with the reason, so its aggregate
//! moves on; a transient failure retries the whole batch; anything else
//! (privileges, a missing table) stops the relay with its reason.

mod publish;
mod store;

pub use publish::Outcome;
pub use store::migrations;

use crate::ProducerError;
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::{failure, kafka, postgres, Config, RuntimeError, Shutdown};
use publish::Publisher;
use std::time::{Duration, Instant};
use store::Statements;
use tokio_postgres::Client;
use tracing::Instrument;

/// After shutdown is asked for, how long a batch's Postgres statement (a
/// claim waiting on a lock, a commit on a stalled server) may keep the relay
/// from exiting: longer than the acknowledgement grace, so a batch waiting on
/// Kafka is given up by that one first, and inside Kubernetes' 30 s.
const STATEMENT_GRACE: Duration = Duration::from_secs(15);

/// How often the backlog gauges are refreshed.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayStats {
    pub batches: u64,
    pub published: u64,
    pub dead_lettered: u64,
    /// Batches given up unmarked at shutdown (Kafka or Postgres did not
    /// answer in time).
    pub abandoned: u64,
}

struct Relay {
    config: Config,
    client: Client,
    sql: Statements,
    publisher: Publisher,
    readiness: Readiness,
    /// A batch failed on Kafka and none has succeeded since (`/ready` says so).
    kafka_failing: bool,
    stats: RelayStats,
}

pub async fn run(config: Config, shutdown: Shutdown) -> Result<RelayStats, ProducerError> {
    run_with(config, shutdown, Readiness::new("outbox-relay")).await
}

/// `run`, reporting Postgres and Kafka trouble to `readiness`.
pub async fn run_with(
    config: Config,
    shutdown: Shutdown,
    readiness: Readiness,
) -> Result<RelayStats, ProducerError> {
    // Made by `gavel topics create` and `gavel migrate`: the relay's
    // principal and role may not create topics or tables.
    let dlq = config.outbox_dlq_topic.clone();
    let checked = config.clone();
    tokio::task::spawn_blocking(move || kafka::partition_count(&checked, &dlq))
        .await
        .map_err(|e| RuntimeError::Admin(format!("checking the dead-letter topic: {e}")))??;
    let client = postgres::connect(&config).await?;
    postgres::require_migrated(&client, &config.outbox_schema, &migrations()).await?;
    let mut relay = Relay {
        sql: Statements::new(&config.outbox_schema),
        publisher: Publisher::new(&config)?,
        client,
        config,
        readiness,
        kafka_failing: false,
        stats: RelayStats::default(),
    };
    relay.readiness.set_started();
    tracing::info!(schema = %relay.config.outbox_schema, batch = relay.config.outbox_batch, "outbox relay started");
    let sampler = tokio::spawn(sample_backlog(relay.config.clone(), shutdown.clone()));
    let ended = relay.run_loop(&shutdown).await;
    sampler.abort();
    ended?;
    tracing::info!(stats = ?relay.stats, "outbox relay stopped");
    Ok(relay.stats)
}

impl Relay {
    async fn run_loop(&mut self, shutdown: &Shutdown) -> Result<(), ProducerError> {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_triggered() {
            self.readiness.beat();
            let batch = tokio::select! {
                batch = self.relay_batch(shutdown) => batch,
                () = shutdown.grace_over(STATEMENT_GRACE) => {
                    // Dropping the batch drops its connection's transaction:
                    // Postgres rolls it back, the rows stay unsent.
                    tracing::warn!(
                        "shutdown while Postgres had not answered the batch: given up, its rows go again"
                    );
                    self.stats.abandoned += 1;
                    return Ok(());
                }
            };
            let pause = match batch {
                Ok(0) => self.config.outbox_poll,
                Ok(_) => Duration::ZERO,
                Err(error) => {
                    self.recover(error, shutdown).await?;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff
                }
            };
            if pause.is_zero() {
                backoff = Duration::from_millis(100);
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.triggered() => {}
            }
        }
        Ok(())
    }

    /// One transaction: claim, publish, dead-letter, mark, commit. Returns the
    /// number of rows claimed (0: the outbox is empty or every aggregate in it
    /// is held by another replica).
    async fn relay_batch(&mut self, shutdown: &Shutdown) -> Result<usize, ProducerError> {
        let started = Instant::now();
        let tx = self.client.transaction().await?;
        let rows = self.sql.claim(&tx, self.config.outbox_batch).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let m = metrics::outbox_relay();
        m.claimed.inc_by(rows.len() as u64);
        let span = tracing::info_span!("outbox_batch", rows = rows.len(), first_id = rows[0].id);
        // Acknowledgements never time out: waiting for a broker that refuses
        // writes is the loop still turning, not a hung relay to restart.
        let publish = self.publisher.publish(&rows, shutdown);
        let published = self
            .readiness
            .beating(publish.instrument(span.clone()))
            .await?;
        let Some(outcomes) = published else {
            // Dropping the transaction rolls it back: the rows stay unsent.
            tracing::warn!(
                rows = rows.len(),
                "shutdown before Kafka acknowledged the batch: left unsent, to be re-sent"
            );
            self.stats.abandoned += 1;
            return Ok(rows.len());
        };
        let (mut sent, mut dead) = (Vec::with_capacity(rows.len()), 0);
        for (row, outcome) in rows.iter().zip(&outcomes) {
            match outcome {
                Outcome::Sent => sent.push(row.id),
                Outcome::Dead { reason, detail } => {
                    let letter = dead_letter(&self.publisher, &self.sql, &tx, row, reason, detail);
                    letter.instrument(span.clone()).await?;
                    dead += 1;
                }
            }
        }
        self.sql.mark_sent(&tx, &sent).await?;
        tx.commit().await?;
        m.published.inc_by(sent.len() as u64);
        m.batch_rows.observe(rows.len() as f64);
        m.batch_seconds.observe(started.elapsed().as_secs_f64());
        self.stats.batches += 1;
        self.stats.published += sent.len() as u64;
        self.stats.dead_lettered += dead;
        if self.kafka_failing {
            self.kafka_failing = false;
            self.readiness.set_dependency("kafka", Ok(()));
        }
        Ok(rows.len())
    }

    /// After a failed batch (rolled back: its rows go again): reconnect to
    /// Postgres or renew the producer; errors no retry can cure end the relay.
    async fn recover(
        &mut self,
        error: ProducerError,
        shutdown: &Shutdown,
    ) -> Result<(), ProducerError> {
        let errors = &metrics::outbox_relay().errors;
        match error {
            // The relay reads rows with statements that hold for any value
            // a row can have, and writes only its own bookkeeping: a Postgres
            // error that is not transient is the deployment's (privileges,
            // a missing table, a constraint added to the outbox), not a row's.
            ProducerError::Postgres(e) if postgres::is_transient(&e) || self.client.is_closed() => {
                let reason = failure::describe_postgres(&e);
                tracing::warn!(error = %reason, "postgres unavailable: reconnecting, the batch goes again");
                errors.with_label_values(&["postgres-unavailable"]).inc();
                self.readiness.set_dependency("postgres", Err(reason));
                let reconnect = postgres::reconnect(&self.config, shutdown);
                if let Some(client) = self.readiness.beating(reconnect).await? {
                    self.client = client;
                    self.readiness.set_dependency("postgres", Ok(()));
                }
                Ok(())
            }
            ProducerError::Kafka(e) | ProducerError::Runtime(RuntimeError::Kafka(e)) => {
                tracing::warn!(error = %e, "kafka did not take the batch: it goes again");
                errors.with_label_values(&["kafka"]).inc();
                self.readiness.set_dependency("kafka", Err(e.to_string()));
                self.kafka_failing = true;
                // A fresh producer: after a fatal idempotence error the old one is unusable.
                self.publisher = Publisher::new(&self.config)?;
                Ok(())
            }
            other => Err(other),
        }
    }
}

/// Refreshes the backlog gauges every few seconds on a connection of its own:
/// they must stay current while a batch waits for Kafka, which is when the
/// alert on the oldest unsent row has to fire. Reconnects quietly; while
/// Postgres is away the gauges keep their last value.
async fn sample_backlog(config: Config, shutdown: Shutdown) {
    let sql = Statements::new(&config.outbox_schema);
    let mut client: Option<Client> = None;
    while !shutdown.is_triggered() {
        if client.as_ref().is_none_or(Client::is_closed) {
            client = postgres::connect(&config).await.ok();
        }
        if let Some(client) = &client {
            match sql.backlog(client).await {
                Ok((rows, oldest)) => {
                    let m = metrics::outbox_relay();
                    m.backlog_rows.set(rows);
                    m.oldest_unsent_seconds.set(oldest);
                }
                Err(error) => tracing::debug!(%error, "outbox backlog not measured"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(BACKLOG_EVERY) => {}
            _ = shutdown.triggered() => {}
        }
    }
}

/// Dead-letters one row and marks it, inside the batch's transaction: a
/// crash before the commit repeats the letter, never loses it.
async fn dead_letter(
    publisher: &Publisher,
    sql: &Statements,
    tx: &tokio_postgres::Transaction<'_>,
    row: &store::OutboxRow,
    reason: &'static str,
    detail: &str,
) -> Result<(), ProducerError> {
    tracing::warn!(id = row.id, aggregate_id = %row.aggregate_id, topic = %row.topic, %detail, "outbox row dead-lettered");
    publisher.dead_letter(row, detail).await?;
    sql.mark_dead(tx, row.id, detail).await?;
    metrics::outbox_relay()
        .dead_letters
        .with_label_values(&[reason])
        .inc();
    Ok(())
}
