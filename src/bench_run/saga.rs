//! The payment saga as separate processes on a private pipeline: `gavel saga
//! run payment` and `gavel participant all` (failure rate 0: the happy path),
//! fed sold-auction trigger records first at a fixed rate (latency without a
//! backlog), then flat out (throughput), each phase measured until every saga
//! has a final state on the saga changelog, while both processes are sampled.

use super::resources::{self, ProcessUse};
use super::sampler::Sampler;
use super::workers::{ready_all, stop_all, Worker};
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
use gavel_runtime::avro::AvroCodec;
use gavel_runtime::view_binary;
use gavel_runtime::view_wire::AUCTION_DETAILS_RECORD;
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
/// How long every saga of a phase may take to reach a final state before the
/// stage fails.
const FINAL_WITHIN: Duration = Duration::from_secs(300);
/// The participants refuse nothing: the figures are the happy path's.
const FAILURE_RATE: &str = "0";

/// What the stage runs: `saga_rate` sagas/s for `saga_rate_secs` (under what
/// the shared 2-core machine sustains), then `sagas` flat out.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct SagaSpec {
    /// Payment sagas started flat out in the saga stage (orchestrator + participants).
    #[arg(long, default_value_t = DEFAULT_SAGAS)]
    pub sagas: u64,
    /// Sagas/s of the saga stage's paced latency phase (0: skip it).
    #[arg(long, default_value_t = 20.0)]
    pub saga_rate: f64,
    /// Seconds the paced saga phase sends for.
    #[arg(long, default_value_t = 10.0)]
    pub saga_rate_secs: f64,
}

#[derive(Debug, Serialize)]
pub struct SagaRun {
    pub kind: &'static str,
    pub participant_failure_rate: f64,
    /// Triggers at a fixed rate; None when `--saga-rate` is 0.
    pub paced: Option<Phase>,
    /// Every trigger at once.
    pub flat_out: Phase,
    /// `gavel saga status payment` afterwards: sagas of both phases by final status.
    pub census: BTreeMap<String, i64>,
    pub processes: Vec<ProcessUse>,
}

/// One batch of sagas, from the first trigger sent until every one is final.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub sagas: u64,
    /// Triggers/s sent; None: flat out.
    pub rate: Option<f64>,
    /// Seconds to send every trigger record (acknowledged by the broker).
    pub trigger_send_s: f64,
    /// From the first trigger sent until the last saga's final state was
    /// readable (read_committed) on the changelog.
    pub seconds: f64,
    pub sagas_per_s: f64,
    /// Trigger record timestamp to final changelog record timestamp.
    pub trigger_to_final: Summary,
    /// Saga start (the orchestrator read its trigger) to final record timestamp.
    pub start_to_final: Summary,
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

pub async fn run(base: &Config, spec: &SagaSpec) -> Result<SagaRun> {
    let pipeline = PrivatePipeline::create(base).await?;
    let result = with_pipeline(&pipeline.config, spec).await;
    pipeline.remove().await?;
    result
}

async fn with_pipeline(config: &Config, spec: &SagaSpec) -> Result<SagaRun> {
    let mut workers = Vec::new();
    let result = match spawn_all(config, &mut workers).await {
        Ok(()) => measure(config, spec, &workers).await,
        Err(error) => Err(error),
    };
    stop_all(workers, STOP_GRACE);
    result
}

async fn spawn_all(config: &Config, workers: &mut Vec<Worker>) -> Result<()> {
    for (_, role, args) in PROCESSES {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        workers.push(Worker::spawn(config, role, &args)?);
    }
    ready_all(workers, READY_WITHIN).await
}

async fn measure(config: &Config, spec: &SagaSpec, workers: &[Worker]) -> Result<SagaRun> {
    let sampler = Sampler::start(workers.iter().map(Worker::pid).collect(), Vec::new());
    let phases = both_phases(config, spec).await;
    let samples = sampler.finish();
    let (paced, flat_out) = phases?;
    let census = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || saga::census(&config, &Payment)).await??
    };
    Ok(SagaRun {
        kind: "payment",
        participant_failure_rate: FAILURE_RATE.parse()?,
        paced,
        flat_out,
        census,
        processes: PROCESSES
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| resources::process_use(&samples, i, name))
            .collect(),
    })
}

/// The paced phase first, on idle processes, so no backlog is in its figures.
async fn both_phases(config: &Config, spec: &SagaSpec) -> Result<(Option<Phase>, Phase)> {
    let paced = if spec.saga_rate > 0.0 {
        let count = (spec.saga_rate * spec.saga_rate_secs).max(1.0) as u64;
        println!(
            "[bench] saga latency at {:.0} sagas/s for {:.0} s ({count} sagas)",
            spec.saga_rate, spec.saga_rate_secs
        );
        Some(phase(config, "paced", count, Some(spec.saga_rate)).await?)
    } else {
        None
    };
    println!("[bench] saga throughput: {} sagas flat out", spec.sagas);
    let flat_out = phase(config, "flat", spec.sagas, None).await?;
    Ok((paced, flat_out))
}

/// Sends `count` triggers keyed `bench-<label>-<n>` (at `rate`/s, or flat out)
/// and waits until each of those sagas is final.
async fn phase(config: &Config, label: &str, count: u64, rate: Option<f64>) -> Result<Phase> {
    let prefix = format!("bench-{label}-");
    // The tail reads from the changelog's beginning, so it may start before
    // the first trigger without missing anything.
    let abandon = Arc::new(AtomicBool::new(false));
    let tail = {
        let (config, prefix, abandon) = (config.clone(), prefix.clone(), Arc::clone(&abandon));
        tokio::task::spawn_blocking(move || tail_until_final(&config, &prefix, count, &abandon))
    };
    let started = Instant::now();
    let sent = send_triggers(config, &prefix, count, rate).await;
    // Not every saga will start: the tail must not wait out FINAL_WITHIN.
    abandon.store(sent.is_err(), Ordering::Relaxed);
    let trigger_send_s = started.elapsed().as_secs_f64();
    let finals = tail.await?;
    let seconds = started.elapsed().as_secs_f64();
    let (sent, finals) = (sent?, finals?);
    let (trigger_to_final, start_to_final) = latencies(&sent, &finals);
    Ok(Phase {
        sagas: count,
        rate,
        trigger_send_s,
        seconds,
        sagas_per_s: count as f64 / seconds,
        trigger_to_final,
        start_to_final,
    })
}

/// `count` AuctionDetails records of ended auctions with a winner, as the
/// projector writes them, sent to the trigger topic at `rate`/s (open loop:
/// trigger n is due at start + n / rate) or flat out; returns each auction's
/// record timestamp (ms), set at send.
async fn send_triggers(
    config: &Config,
    prefix: &str,
    count: u64,
    rate: Option<f64>,
) -> Result<HashMap<String, i64>> {
    let producer: FutureProducer = kafka::producer_config(config).create()?;
    let topic = SagaTopics::of(config, &Payment).trigger;
    let writer = AvroCodec::new(&config.registry)
        .writer_for(&topic, AUCTION_DETAILS_RECORD)
        .await?;
    let mut sent = HashMap::with_capacity(count as usize);
    let mut acks = Vec::with_capacity(count as usize);
    let start = tokio::time::Instant::now();
    for i in 0..count {
        if let Some(rate) = rate {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        }
        let key = format!("{prefix}{i}");
        let payload = view_binary::details(&writer, &sold(&key, 1_000 + (i % 5_000) as i64)?)?;
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
        // As the projector closes an auction: every bidder, highest first.
        bidder_count: 2,
        bidders: vec![
            bidder(winner.as_str(), price_minor)?,
            bidder(&format!("outbid-{id}"), price_minor - 10)?,
        ],
        last_bid_automatic: false,
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
/// `count` sagas keyed `<prefix>…` have a final state: completed, compensated
/// or failed. Gives up early once `abandon` is set.
fn tail_until_final(
    config: &Config,
    prefix: &str,
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
                "{} of {count} sagas {prefix}* reached a final state within {FINAL_WITHIN:?}",
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
        if !key.starts_with(prefix.as_bytes()) {
            continue;
        }
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
