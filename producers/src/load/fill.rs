//! `gavel load --no-wait`: the same traffic straight to the command topic,
//! without reading a single outcome. For filling a topic before a benchmark
//! or a test, when no aggregate runs (the outcomes would never come).

use super::traffic::Planned;
use super::{send_all, Dispatch, RunSpec};
use crate::{CommandProducer, ProducerError};
use gavel_domain::TenantId;
use gavel_runtime::envelope::CommandMeta;
use gavel_runtime::Config;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct FillReport {
    pub topic: String,
    /// Commands acknowledged by Kafka.
    pub commands: u64,
    /// Commands by type (CreateAuction, StartAuction, PlaceBid, ...).
    pub by_type: BTreeMap<&'static str, u64>,
    pub auctions: usize,
    pub elapsed_s: f64,
    pub sent_rate: f64,
}

impl FillReport {
    pub fn print(&self) {
        let kinds: Vec<String> = self
            .by_type
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        println!(
            "{} commands sent to {} and acknowledged in {:.1} s ({:.0}/s), outcomes not awaited: {} ({} auctions)",
            self.commands,
            self.topic,
            self.elapsed_s,
            self.sent_rate,
            kinds.join(", "),
            self.auctions
        );
    }
}

/// Sends every command of `spec` on its schedule and returns once Kafka has
/// acknowledged them all.
pub async fn run(config: &Config, spec: &RunSpec) -> Result<FillReport, ProducerError> {
    let started = Instant::now();
    let mut sender = FillDispatch {
        producer: CommandProducer::connect(config).await?,
        tenant: TenantId::new(spec.tenant.clone()),
        by_type: BTreeMap::new(),
    };
    send_all(spec, &mut sender, || {}).await?;
    let elapsed = started.elapsed().as_secs_f64();
    Ok(FillReport {
        topic: config.topics.commands.clone(),
        commands: sender.producer.sent,
        by_type: sender.by_type,
        auctions: spec.traffic.auctions,
        elapsed_s: elapsed,
        sent_rate: spec.commands as f64 / elapsed.max(f64::EPSILON),
    })
}

struct FillDispatch {
    producer: CommandProducer,
    tenant: TenantId,
    by_type: BTreeMap<&'static str, u64>,
}

impl Dispatch for FillDispatch {
    async fn dispatch(&mut self, planned: Planned, _due: Instant) -> Result<(), ProducerError> {
        let meta = CommandMeta::new(self.tenant.clone(), planned.user.clone());
        self.producer.send(&planned.command, &meta).await?;
        *self.by_type.entry(planned.command.type_name()).or_insert(0) += 1;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ProducerError> {
        self.producer.flush().await
    }
}
