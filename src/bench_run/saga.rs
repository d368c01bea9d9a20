//! The payment saga as separate processes on a private pipeline: `gavel saga
//! run payment` and `gavel participant all` (failure rate 0: the happy path),
//! fed sold-auction trigger records flat out, measured until every saga has a
//! final state on the saga changelog, while both processes are sampled.

use super::resources::{self, ProcessUse};
use super::sampler::Sampler;
use super::workers::Worker;
use crate::bench::PrivatePipeline;
use anyhow::{bail, Result};
use gavel_domain::auction::AuctionStatus;
use gavel_domain::saga::payment::PaymentSaga;
use gavel_domain::saga::SagaState;
use gavel_domain::views::{AuctionDetails, BidderSummary};
use gavel_domain::{AuctionId, Currency, Money, TenantId, UserId};
use gavel_processors::saga::kind::Payment;
use gavel_processors::saga::{self, SagaTopics};
use gavel_producers::load::{Latencies, Summary};
use gavel_producers::produce::now;
use gavel_runtime::{kafka, Config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sized so the stage takes well under a minute on the shared 2-core machine
/// (about 65 sagas/s there under other builds' load).
pub const DEFAULT_SAGAS: u64 = 2_000;
const READY_WITHIN: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long every saga may take to reach a final state before the stage fails.
const FINAL_WITHIN: Duration = Duration::from_secs(300);
/// The participants refuse nothing: the figures are the happy path's.
const FAILURE_RATE: &str = "0";

#[derive(Debug, Serialize)]
pub struct SagaRun {
    pub kind: &'static str,
    pub sagas: u64,
    pub participant_failure_rate: f64,
    /// Seconds to send every trigger record (acknowledged by the broker).
    pub trigger_send_s: f64,
    /// From the first trigger sent until the last saga's final state was
    /// readable (read_committed) on the changelog.
    pub seconds: f64,
    pub sagas_per_s: f64,
    /// `gavel saga status payment` afterwards: sagas by final status.
    pub census: BTreeMap<String, i64>,
    /// Trigger record timestamp to final changelog record timestamp.
    pub trigger_to_final: Summary,
    /// Saga start (the orchestrator read its trigger) to final record timestamp.
    pub start_to_final: Summary,
    pub processes: Vec<ProcessUse>,
}

/// The processes of the stage: name in the report, `gavel` role and arguments.
const PROCESSES: [(&str, &str, &[&str]); 2] = [
    ("saga run payment", "saga", &["run", "payment"]),
    (
        "participant all",
        "participant",
        &["all", "--failure-rate", FAILURE_RATE, "--latency-ms", "0"],
    ),
];

pub async fn run(base: &Config, sagas: u64) -> Result<SagaRun> {
    let pipeline = PrivatePipeline::create(base).await?;
    let result = with_pipeline(&pipeline.config, sagas).await;
    pipeline.remove().await?;
    result
}

async fn with_pipeline(config: &Config, sagas: u64) -> Result<SagaRun> {
    let mut workers = Vec::new();
    let result = match spawn_all(config, &mut workers).await {
        Ok(()) => measure(config, sagas, &workers).await,
        Err(error) => Err(error),
    };
    for worker in workers {
        let role = worker.role;
        if let Err(error) = worker.stop(STOP_GRACE) {
            tracing::warn!(%error, role, "stopping a saga bench worker");
        }
    }
    result
}

async fn spawn_all(config: &Config, workers: &mut Vec<Worker>) -> Result<()> {
    for (_, role, args) in PROCESSES {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        workers.push(Worker::spawn(config, role, &args)?);
    }
    for worker in workers.iter_mut() {
        worker.ready(READY_WITHIN).await?;
    }
    Ok(())
}

async fn measure(config: &Config, sagas: u64, workers: &[Worker]) -> Result<SagaRun> {
    let sampler = Sampler::start(workers.iter().map(Worker::pid).collect(), Vec::new());
    // The tail reads from the changelog's beginning, so it may start before
    // the first trigger without missing anything.
    let abandon = Arc::new(AtomicBool::new(false));
    let tail = {
        let (config, abandon) = (config.clone(), Arc::clone(&abandon));
        tokio::task::spawn_blocking(move || tail_until_final(&config, sagas, &abandon))
    };
    let started = Instant::now();
    let sent = send_triggers(config, sagas).await;
    // Not every saga will start: the tail must not wait out FINAL_WITHIN.
    abandon.store(sent.is_err(), Ordering::Relaxed);
    let trigger_send_s = started.elapsed().as_secs_f64();
    let finals = tail.await?;
    let seconds = started.elapsed().as_secs_f64();
    let samples = sampler.finish();
    let (sent, finals) = (sent?, finals?);
    let census = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || saga::census(&config, &Payment)).await??
    };
    let (trigger_to_final, start_to_final) = latencies(&sent, &finals);
    Ok(SagaRun {
        kind: "payment",
        sagas,
        participant_failure_rate: FAILURE_RATE.parse()?,
        trigger_send_s,
        seconds,
        sagas_per_s: sagas as f64 / seconds,
        census,
        trigger_to_final,
        start_to_final,
        processes: PROCESSES
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| resources::process_use(&samples, i, name))
            .collect(),
    })
}

/// `count` AuctionDetails records of ended auctions with a winner, as the
/// projector writes them, sent flat out to the trigger topic; returns each
/// auction's record timestamp (ms), set at send.
async fn send_triggers(config: &Config, count: u64) -> Result<HashMap<String, i64>> {
    let producer: FutureProducer = kafka::producer_config(config).create()?;
    let topic = SagaTopics::of(config, &Payment).trigger;
    let mut sent = HashMap::with_capacity(count as usize);
    let mut acks = Vec::with_capacity(count as usize);
    for i in 0..count {
        let key = format!("bench-lot-{i}");
        let payload = serde_json::to_vec(&sold(&key, 1_000 + (i % 5_000) as i64)?)?;
        let at = now().millis();
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&payload)
            .timestamp(at);
        acks.push(producer.send_result(record).map_err(|(e, _)| e)?);
        sent.insert(key, at);
    }
    for ack in acks {
        ack.await?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(sent)
}

/// The record the projector writes when an auction ends sold: a seller, a
/// winner and one outbid bidder (who gets a notice).
fn sold(id: &str, price_minor: i64) -> Result<AuctionDetails> {
    let eur = |minor: i64| -> Result<Money> { Ok(Money::new(minor, Currency::parse("EUR")?)?) };
    let at = now();
    let bidder = |user: &str, minor| -> Result<BidderSummary> {
        Ok(BidderSummary {
            user_id: UserId::new(user),
            highest_bid: eur(minor)?,
            bid_count: 1,
            last_bid_at: at,
        })
    };
    let winner = UserId::new(format!("winner-{id}"));
    Ok(AuctionDetails {
        auction_id: AuctionId::new(id),
        tenant_id: TenantId::new("bench"),
        seller_id: UserId::new(format!("seller-{id}")),
        title: "Lot".into(),
        status: AuctionStatus::Ended,
        starting_price: eur(100)?,
        reserve_price: None,
        min_increment: eur(10)?,
        current_price: eur(price_minor)?,
        bid_count: 2,
        leading_bidder: Some(winner.clone()),
        winner_id: Some(winner.clone()),
        end_time: at,
        created_at: at,
        updated_at: at,
        version: 5,
        bidders: vec![
            bidder(&format!("outbid-{id}"), price_minor - 10)?,
            bidder(winner.as_str(), price_minor)?,
        ],
    })
}

/// A saga's first final state on the changelog.
struct Final {
    /// The changelog record's timestamp (written inside the orchestrator's
    /// transaction, which commits right after its batch).
    at_ms: i64,
    started_ms: i64,
}

/// Reads the saga changelog (committed records only) from the beginning until
/// `count` sagas have a final state: completed, compensated or failed.
/// Gives up early once `abandon` is set.
fn tail_until_final(
    config: &Config,
    count: u64,
    abandon: &AtomicBool,
) -> Result<HashMap<String, Final>> {
    let changelog = SagaTopics::of(config, &Payment).changelog;
    let consumer: BaseConsumer =
        kafka::consumer_config(config, &format!("{}-bench-tail", config.saga_group)).create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..kafka::partition_count(config, &changelog)? {
        assignment.add_partition_offset(&changelog, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + FINAL_WITHIN;
    let mut finals = HashMap::new();
    while (finals.len() as u64) < count {
        if abandon.load(Ordering::Relaxed) {
            bail!("abandoned: not every trigger was sent");
        }
        if Instant::now() > deadline {
            bail!(
                "{} of {count} sagas reached a final state within {FINAL_WITHIN:?}",
                finals.len()
            );
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        let (Some(key), Some(payload)) = (message.key(), message.payload()) else {
            continue;
        };
        let state: SagaState<PaymentSaga> = serde_json::from_slice(payload)?;
        if state.status.is_terminal() {
            finals
                .entry(String::from_utf8_lossy(key).into_owned())
                .or_insert(Final {
                    at_ms: message.timestamp().to_millis().unwrap_or(0),
                    started_ms: state.started_at.millis(),
                });
        }
    }
    Ok(finals)
}

/// (trigger → final, start → final): the payment saga's id is its auction id,
/// the trigger record's key.
fn latencies(sent: &HashMap<String, i64>, finals: &HashMap<String, Final>) -> (Summary, Summary) {
    let mut from_trigger = Latencies::new();
    let mut from_start = Latencies::new();
    let span = |from: i64, to: i64| Duration::from_millis(to.saturating_sub(from).max(0) as u64);
    for (saga, done) in finals {
        if let Some(sent_ms) = sent.get(saga) {
            from_trigger.record(span(*sent_ms, done.at_ms));
        }
        from_start.record(span(done.started_ms, done.at_ms));
    }
    (from_trigger.summary(), from_start.summary())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_measured_from_the_trigger_and_from_the_start() {
        let sent = HashMap::from([("a".to_owned(), 1_000), ("b".to_owned(), 1_000)]);
        let finals = HashMap::from([
            (
                "a".to_owned(),
                Final {
                    at_ms: 1_100,
                    started_ms: 1_050,
                },
            ),
            (
                "b".to_owned(),
                Final {
                    at_ms: 1_300,
                    started_ms: 1_200,
                },
            ),
        ]);
        let (trigger, start) = latencies(&sent, &finals);
        assert_eq!(trigger.count, 2);
        assert!((trigger.max_ms - 300.0).abs() < 1.0);
        assert!((start.max_ms - 100.0).abs() < 1.0);
        assert!((start.p50_ms - 50.0).abs() < 1.0);
    }

    #[test]
    fn a_trigger_is_an_ended_auction_with_a_winner() {
        let details = sold("lot-1", 2_000).unwrap();
        assert_eq!(details.status, AuctionStatus::Ended);
        assert!(details.winner_id.is_some());
        assert_eq!(details.bidders.len(), 2);
    }
}
