//! `gavel load --via kafka`: commands produced straight to the command topic;
//! each command's outcome is read back from the outcome topic, correlated by
//! command id (the command API's outcome reader, shared).

use super::tally::{Completion, Tally};
use super::traffic::Planned;
use super::{drive, AcceptedSink, Dispatch, LoadReport, RunSpec};
use crate::command_api::outcomes::{self, Outcomes};
use crate::{CommandProducer, ProducerError};
use gavel_domain::TenantId;
use gavel_runtime::envelope::CommandMeta;
use gavel_runtime::{Config, Shutdown};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub async fn run(
    config: &Config,
    spec: &RunSpec,
    accepted: AcceptedSink,
) -> Result<LoadReport, ProducerError> {
    let outcomes = Outcomes::new();
    let reader_stop = Shutdown::new();
    // Positioned at the end before the first command goes out: no outcome is missed.
    let reader = outcomes::start(config, Arc::clone(&outcomes), reader_stop.clone()).await?;
    let tally = Arc::new(Tally::new(spec.commands, accepted));
    let mut dispatcher = KafkaDispatch {
        producer: CommandProducer::connect(config).await?,
        outcomes,
        tally: Arc::clone(&tally),
        tenant: TenantId::new(spec.tenant.clone()),
        timeout: spec.outcome_timeout,
        // Flat out, in-flight commands are bounded; on a schedule nothing may hold the sender back.
        limit: (spec.rate <= 0.0).then(|| Arc::new(Semaphore::new(spec.concurrency.max(1)))),
    };
    let report = drive(spec, "kafka", &tally, &mut dispatcher).await;
    reader_stop.trigger();
    if reader.await.is_err() {
        tracing::warn!("outcome reader ended abnormally");
    }
    report
}

struct KafkaDispatch {
    producer: CommandProducer,
    outcomes: Arc<Outcomes>,
    tally: Arc<Tally>,
    tenant: TenantId,
    timeout: Duration,
    limit: Option<Arc<Semaphore>>,
}

impl Dispatch for KafkaDispatch {
    async fn dispatch(&mut self, planned: Planned, due: Instant) -> Result<(), ProducerError> {
        let permit = match &self.limit {
            Some(limit) => Some(
                Arc::clone(limit)
                    .acquire_owned()
                    .await
                    .map_err(|e| ProducerError::Load(e.to_string()))?,
            ),
            None => None,
        };
        // Flat out there is no schedule: a command is due once it may go.
        let due = if permit.is_some() {
            Instant::now()
        } else {
            due
        };
        let meta = CommandMeta::new(self.tenant.clone(), planned.user.clone());
        // Registered before producing, so the outcome cannot slip past.
        let waiter = self.outcomes.register(&meta.command_id);
        self.producer.send(&planned.command, &meta).await?;
        let tally = Arc::clone(&self.tally);
        let timeout = self.timeout;
        tokio::spawn(async move {
            let completion = match waiter.wait(timeout).await {
                Some(outcome) => match (outcome.accepted, outcome.new_version) {
                    (true, Some(version)) => Completion::Accepted {
                        aggregate_id: outcome.aggregate_id,
                        version,
                    },
                    _ => Completion::Rejected,
                },
                None => Completion::TimedOut,
            };
            tally.complete(due, completion);
            drop(permit);
        });
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ProducerError> {
        self.producer.flush().await
    }
}
