//! `gavel participant <name>`: a saga participant. It takes step commands from
//! its topic in order, applies each effect at most once per (effect key,
//! direction) in Postgres, and answers on the reply topic the command names.
//! The effect and its `participant_effects` row commit together; the reply is
//! sent after, and the Kafka offset committed after the replies are
//! acknowledged. A crash in between repeats the command, which finds its row
//! and gets the same answer again: replies may repeat, effects never do.

mod chaos;
mod effects;
mod sql;

pub use chaos::{Chaos, Roll};
pub use effects::ledger_hash;
pub use sql::migrations;

use crate::batch::{self, BatchSource};
use crate::SinkError;
use effects::{Applied, Target};
use gavel_domain::saga::Participant;
use gavel_runtime::dlq::{self, DeadLetter, DeadLetters, ErrorClass};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::saga_wire::{ReplyOutcome, StepCommand, StepReply, TYPE_HEADER};
use gavel_runtime::{kafka, postgres, Config, RuntimeError, Shutdown};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use tokio_postgres::Client;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParticipantStats {
    pub applied: u64,
    /// Commands whose effect was already recorded (redelivered or re-sent).
    pub repeats: u64,
    pub refused: u64,
    pub injected_failures: u64,
    /// Forward commands that arrived after their compensation.
    pub blocked: u64,
    pub dead_letters: u64,
}

pub struct Settings {
    pub participant: Participant,
    pub chaos: Chaos,
    /// Stock of a SKU the inventory participant has never seen.
    pub initial_stock: i32,
}

struct Worker {
    config: Config,
    settings: Settings,
    client: Client,
    replies: FutureProducer,
    dead_letters: DeadLetters,
    stats: ParticipantStats,
}

pub async fn run(
    config: Config,
    settings: Settings,
    shutdown: Shutdown,
    readiness: Readiness,
) -> Result<ParticipantStats, SinkError> {
    let name = settings.participant.as_str();
    let topic = config.topics.participant_commands(name);
    let group = format!("{}-participant-{name}", config.saga_group);
    dlq::require_topics(&config, &[&topic]).await?;
    let client = batch::connect_migrated(&config, &migrations(), &shutdown).await?;
    let source = BatchSource::subscribe(&config, &group, &topic)?;
    let mut worker = Worker {
        replies: kafka::producer_config(&config).create()?,
        dead_letters: DeadLetters::new(
            &config,
            &format!("participant-{name}/{}", config.instance_id),
        )?,
        config,
        settings,
        client,
        stats: ParticipantStats::default(),
    };
    tracing::info!(participant = name, %topic, "saga participant started");
    readiness.set_started();
    while !shutdown.is_triggered() {
        readiness.beat();
        let records = source.collect(&shutdown).await;
        if records.is_empty() {
            continue;
        }
        let mut next: HashMap<i32, i64> = HashMap::new();
        let mut acks = Vec::with_capacity(records.len());
        for message in &records {
            if let Some(reply) = worker.handle(message, &shutdown).await? {
                acks.push(reply);
            }
            next.insert(message.partition(), message.offset() + 1);
        }
        for ack in acks {
            ack.await
                .map_err(|_| RuntimeError::Mapping("reply producer closed".into()))?
                .map_err(|(error, _)| RuntimeError::Kafka(error))?;
        }
        metrics::participant()
            .stage
            .consumed
            .inc_by(records.len() as u64);
        source.commit(&next);
    }
    tracing::info!(participant = name, stats = ?worker.stats, "saga participant stopped");
    Ok(worker.stats)
}

type Ack = rdkafka::producer::DeliveryFuture;

impl Worker {
    /// Applies one command (reconnecting to Postgres as often as needed) and
    /// sends its reply; `None` for a record that went to the DLQ.
    async fn handle(
        &mut self,
        message: &OwnedMessage,
        shutdown: &Shutdown,
    ) -> Result<Option<Ack>, SinkError> {
        let command = match read(message) {
            Ok(command) => command,
            Err(reason) => {
                self.stats.dead_letters += 1;
                metrics::participant()
                    .stage
                    .dead_letters
                    .with_label_values(&[ErrorClass::Undecodable.as_str()])
                    .inc();
                let letter = DeadLetter::of(message, ErrorClass::Undecodable, &reason);
                self.dead_letters.send(&letter).await?;
                return Ok(None);
            }
        };
        let outcome = loop {
            match self.settle(&command).await {
                Err(error) if batch::needs_reconnect(&error, &self.client) => {
                    tracing::warn!(%error, "postgres unavailable: reconnecting");
                    let reconnect = postgres::reconnect(&self.config, shutdown);
                    self.client = reconnect.await.ok_or(error)?;
                }
                other => break other?,
            }
        };
        if !self.settings.chaos.latency.is_zero() {
            tokio::time::sleep(self.settings.chaos.latency).await;
        }
        Ok(Some(self.reply(&command, outcome)?))
    }

    /// The answer to `command`, applying its effect if this is its first time.
    async fn settle(&mut self, command: &StepCommand) -> Result<ReplyOutcome, SinkError> {
        let name = self.settings.participant.as_str();
        let (participant, chaos) = (self.settings.participant, self.settings.chaos);
        let initial_stock = self.settings.initial_stock;
        let schema = self.config.postgres_schema.clone();
        let mut tx = self.client.transaction().await?;
        let recorded = tx
            .query(
                &format!(
                    "SELECT direction, reference FROM {schema}.participant_effects
                     WHERE participant = $1 AND effect_key = $2 FOR UPDATE"
                ),
                &[&name, &command.effect_key],
            )
            .await?;
        let find = |direction: &str| {
            recorded
                .iter()
                .find(|row| row.get::<_, &str>(0) == direction)
                .map(|row| row.get::<_, String>(1))
        };
        let (done, undone) = (find("do"), find("undo"));
        let (result, outcome) = match (command.is_undo(), done, undone) {
            (_, _, Some(reference)) if command.is_undo() => ("repeat", succeeded(reference)),
            (false, _, Some(_)) => (
                "blocked",
                ReplyOutcome::Failed {
                    reason: "compensated before it arrived: not applied".into(),
                    transient: false,
                },
            ),
            (false, Some(reference), None) => ("repeat", succeeded(reference)),
            (true, None, None) => {
                // Compensating an effect never applied: a no-op that is
                // recorded, so a late forward command is refused.
                record(&tx, &schema, name, command, "nothing to undo").await?;
                ("applied", succeeded("nothing to undo".into()))
            }
            (undo, _, _) => {
                let roll = if undo {
                    Roll::Apply
                } else {
                    chaos.roll(&command.command_id)
                };
                if let Roll::Refuse { transient } = roll {
                    let reason = format!("injected failure ({name} participant)");
                    tx.rollback().await?;
                    self.count(command, "injected-failure");
                    self.stats.injected_failures += 1;
                    return Ok(ReplyOutcome::Failed { reason, transient });
                }
                let savepoint = tx.transaction().await?;
                let target = Target {
                    tx: &savepoint,
                    schema: &schema,
                    command,
                    initial_stock,
                };
                match effects::apply(participant, &target).await? {
                    Applied::Done(reference) => {
                        savepoint.commit().await?;
                        record(&tx, &schema, name, command, &reference).await?;
                        ("applied", succeeded(reference))
                    }
                    Applied::Refused(reason) => {
                        savepoint.rollback().await?;
                        (
                            "refused",
                            ReplyOutcome::Failed {
                                reason,
                                transient: false,
                            },
                        )
                    }
                }
            }
        };
        tx.commit().await?;
        self.count(command, result);
        match result {
            "applied" => self.stats.applied += 1,
            "repeat" => self.stats.repeats += 1,
            "blocked" => self.stats.blocked += 1,
            _ => self.stats.refused += 1,
        }
        Ok(outcome)
    }

    fn count(&self, command: &StepCommand, result: &str) {
        metrics::participant()
            .commands
            .with_label_values(&[
                self.settings.participant.as_str(),
                &command.direction,
                result,
            ])
            .inc();
    }

    fn reply(&self, command: &StepCommand, outcome: ReplyOutcome) -> Result<Ack, SinkError> {
        let reply = StepReply {
            saga_kind: command.saga_kind.clone(),
            saga_id: command.saga_id.clone(),
            step: command.step.clone(),
            command_id: command.command_id.clone(),
            participant: self.settings.participant.as_str().to_owned(),
            outcome,
        };
        let payload = serde_json::to_vec(&reply).map_err(|e| SinkError::Encode(e.to_string()))?;
        let headers = OwnedHeaders::new().insert(Header {
            key: TYPE_HEADER,
            value: Some("StepReply"),
        });
        let record = FutureRecord::to(&command.reply_to)
            .partition(command.reply_partition)
            .key(&command.saga_id)
            .payload(&payload)
            .headers(headers);
        metrics::participant().stage.produced.inc();
        self.replies
            .send_result(record)
            .map_err(|(error, _)| SinkError::Kafka(error))
    }
}

fn succeeded(reference: String) -> ReplyOutcome {
    ReplyOutcome::Succeeded { reference }
}

fn read(message: &OwnedMessage) -> Result<StepCommand, String> {
    let payload = message.payload().ok_or("command has no payload")?;
    serde_json::from_slice(payload).map_err(|e| format!("not a StepCommand: {e}"))
}

async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    participant: &str,
    command: &StepCommand,
    reference: &str,
) -> Result<(), SinkError> {
    tx.execute(
        &format!(
            "INSERT INTO {schema}.participant_effects
             (participant, effect_key, direction, command_id, saga_kind, saga_id, reference)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ),
        &[
            &participant,
            &command.effect_key,
            &command.direction,
            &command.command_id,
            &command.saga_kind,
            &command.saga_id,
            &reference,
        ],
    )
    .await?;
    Ok(())
}
