//! `gavel participant <name>`: a saga participant. It takes step commands from
//! its topic in order, applies each effect at most once per (effect key,
//! direction) in Postgres, and answers on the reply topic the command names.
//! The effect and its `participant_effects` row commit together; the reply is
//! sent after, and the Kafka offset committed after the replies are
//! acknowledged. A crash in between repeats the command, which finds its row
//! and gets the same answer again: replies may repeat, effects never do.

mod chaos;
mod effects;
mod reply;
mod sql;
mod wire;

pub use chaos::{Chaos, Roll};
pub use effects::ledger_hash;
pub use sql::migrations;

use crate::batch::{self, BatchSource};
use crate::SinkError;
use effects::{Applied, Target};
use gavel_domain::saga::Participant;
use gavel_runtime::dlq::{self, DeadLetter, DeadLetters, ErrorClass};
use gavel_runtime::failure::{self, Failure};
use gavel_runtime::observe::{metrics, Readiness};
use gavel_runtime::saga_wire::{ReplyOutcome, StepCommand};
use gavel_runtime::{kafka, Config, RuntimeError, Shutdown};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
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
    wire: wire::Wire,
    dead_letters: DeadLetters,
    readiness: Readiness,
    stats: ParticipantStats,
}

/// The consumer group of one participant (`payment`, `inventory`, ...).
pub fn consumer_group(config: &Config, participant: &str) -> String {
    format!("{}-participant-{participant}", config.saga_group)
}

pub async fn run(
    config: Config,
    settings: Settings,
    shutdown: Shutdown,
    readiness: Readiness,
) -> Result<ParticipantStats, SinkError> {
    let name = settings.participant.as_str();
    let topic = config.topics.participant_commands(name);
    let group = consumer_group(&config, name);
    dlq::require_topics(&config, &[&topic]).await?;
    let client = batch::connect_migrated(&config, &migrations(), &shutdown).await?;
    // A registry away at start is waited for (unready, naming it), not a reason to exit.
    let wire = readiness
        .wait_for(
            "schema-registry",
            &shutdown,
            |e: &SinkError| matches!(e, SinkError::Runtime(r) if r.is_transient()),
            || wire::Wire::load(&config, &topic),
        )
        .await?;
    let Some(wire) = wire else {
        return Ok(ParticipantStats::default());
    };
    let source = BatchSource::subscribe(&config, &group, &topic)?;
    let mut worker = Worker {
        replies: kafka::producer_config(&config).create()?,
        wire,
        dead_letters: DeadLetters::new(
            &config,
            &format!("participant-{name}/{}", config.instance_id),
        )?,
        config,
        settings,
        client,
        readiness,
        stats: ParticipantStats::default(),
    };
    tracing::info!(participant = name, %topic, "saga participant started");
    worker.readiness.set_started();
    let served = serve(&mut worker, &source, &shutdown).await;
    // Leave on a failure too (see the view sink).
    source.leave().await;
    served?;
    tracing::info!(participant = name, stats = ?worker.stats, "saga participant stopped");
    Ok(worker.stats)
}

async fn serve(
    worker: &mut Worker,
    source: &BatchSource,
    shutdown: &Shutdown,
) -> Result<(), SinkError> {
    while !shutdown.is_triggered() {
        worker.readiness.beat();
        let records = source.collect(shutdown).await;
        if records.is_empty() {
            continue;
        }
        let mut next: HashMap<i32, i64> = HashMap::new();
        let mut acks = Vec::with_capacity(records.len());
        for message in &records {
            if let Some(reply) = worker.handle(message, shutdown).await? {
                acks.push((message, reply));
            }
            next.insert(message.partition(), message.offset() + 1);
        }
        for (message, ack) in acks {
            worker.settle_delivery(message, ack).await?;
        }
        metrics::participant()
            .stage
            .consumed
            .inc_by(records.len() as u64);
        source.commit(&next);
    }
    Ok(())
}

type Ack = rdkafka::producer::DeliveryFuture;

impl batch::PostgresStage for Worker {
    fn client(&self) -> &Client {
        &self.client
    }

    fn reconnected(&mut self, client: Client) {
        self.client = client;
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    fn metrics(&self) -> &'static metrics::Stage {
        &metrics::participant().stage
    }
}

impl Worker {
    /// Applies one command (riding out Postgres outages) and sends its reply;
    /// `None` for a record that went to the DLQ without a reply. A command
    /// whose values Postgres refuses is dead-lettered and answered as failed
    /// (not transient), so its saga compensates instead of waiting for it.
    async fn handle(
        &mut self,
        message: &OwnedMessage,
        shutdown: &Shutdown,
    ) -> Result<Option<Ack>, SinkError> {
        let read = self
            .wire
            .command(message, &self.readiness, shutdown)
            .await?;
        let command = match read {
            Ok(command) => command,
            Err(reason) => {
                self.dead_letter(message, ErrorClass::Undecodable, &reason)
                    .await?;
                return Ok(None);
            }
        };
        if let Err(reason) = reply::check_reply_to(&self.config.topics, &command) {
            self.dead_letter(message, ErrorClass::Invalid, &reason)
                .await?;
            return Ok(None);
        }
        let settled = batch::retrying(self, shutdown, &command, |worker, command, _| {
            Box::pin(worker.settle_or_refuse(command))
        })
        .await?;
        let outcome = match settled {
            Ok(outcome) => outcome,
            Err(reason) => {
                self.dead_letter(message, ErrorClass::Invalid, &reason)
                    .await?;
                ReplyOutcome::Failed {
                    reason,
                    transient: false,
                }
            }
        };
        if !self.settings.chaos.latency.is_zero() {
            tokio::time::sleep(self.settings.chaos.latency).await;
        }
        let participant = self.settings.participant.as_str();
        let writer = self.wire.reply_writer(&command.reply_to)?;
        Ok(Some(reply::send(
            &self.replies,
            writer,
            participant,
            &command,
            outcome,
        )?))
    }

    /// Waits for a reply's acknowledgement. A reply Kafka can never take (too
    /// large, its partition gone) dead-letters its command; an outage is an
    /// error, and the batch is consumed again after a restart (replies may
    /// repeat, effects never do).
    async fn settle_delivery(&mut self, message: &OwnedMessage, ack: Ack) -> Result<(), SinkError> {
        let error = match ack.await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err((error, _))) => error,
            Err(_) => return Err(RuntimeError::Mapping("reply producer closed".into()).into()),
        };
        match failure::kafka_record_refusal(&error) {
            Some(kind) => {
                let reason = format!("reply not deliverable ({kind}): {error}");
                self.dead_letter(message, ErrorClass::Invalid, &reason)
                    .await
            }
            None => Err(SinkError::Kafka(error)),
        }
    }

    async fn dead_letter(
        &mut self,
        message: &OwnedMessage,
        class: ErrorClass,
        reason: &str,
    ) -> Result<(), SinkError> {
        self.stats.dead_letters += 1;
        metrics::participant()
            .stage
            .dead_letters
            .with_label_values(&[class.as_str()])
            .inc();
        batch::log_skipped(message, reason, "step command dead-lettered");
        self.dead_letters
            .send(&DeadLetter::of(message, class, reason))
            .await?;
        Ok(())
    }

    /// `settle`, with a command whose values Postgres refuses sorted out as
    /// `Err(reason)`: nothing of it was applied (its transaction rolled back).
    async fn settle_or_refuse(
        &mut self,
        command: &StepCommand,
    ) -> Result<Result<ReplyOutcome, String>, SinkError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.settle(command).await {
                Ok(outcome) => return Ok(Ok(outcome)),
                // Another worker recorded the same effect between our look
                // and our insert (both held the command during a rebalance):
                // looking again finds it, and answers it as a repeat.
                Err(error) if recorded_meanwhile(&error) && attempts < 3 => {}
                Err(error) if error.class() == Failure::Poison => return Ok(Err(error.reason())),
                Err(error) => return Err(error),
            }
        }
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
}

fn succeeded(reference: String) -> ReplyOutcome {
    ReplyOutcome::Succeeded { reference }
}

/// A unique violation on `participant_effects`: the effect was recorded by
/// someone else after this transaction looked for it.
fn recorded_meanwhile(error: &SinkError) -> bool {
    let SinkError::Postgres(error) = error else {
        return false;
    };
    error.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            && db.table() == Some("participant_effects")
    })
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
