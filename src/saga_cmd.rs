//! `gavel saga <kind>`, `gavel saga status <kind>`, `gavel participant <name>`
//! and `gavel orders`: the saga roles and their demo input.

use anyhow::{bail, Result};
use gavel_domain::saga::order::{OrderCreated, OrderLine};
use gavel_domain::saga::{OrderId, Participant};
use gavel_domain::{Currency, Money, UserId};
use gavel_processors::saga::kind::{Order, Payment};
use gavel_processors::saga::{self, Stats};
use gavel_runtime::avro::{json, AvroCodec};
use gavel_runtime::observe::{self, Readiness};
use gavel_runtime::saga_wire::ORDER_CREATED_RECORD;
use gavel_runtime::{kafka, Config, Shutdown};
use gavel_sinks::participants::{self, Chaos, Settings};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SagaKindArg {
    /// On a sold auction: charge, payout 92/8, mark paid, transfer ownership, notify.
    Payment,
    /// On order.created: reserve inventory, charge, ship.
    Order,
}

#[derive(clap::Args)]
pub struct ChaosArgs {
    /// Share of forward commands refused without applying anything (0..1).
    #[arg(long, env = "GAVEL_PARTICIPANT_FAILURE_RATE", default_value_t = 0.0)]
    failure_rate: f64,
    /// Share of those refusals that are transient (retried by the saga).
    #[arg(long, env = "GAVEL_PARTICIPANT_TRANSIENT_SHARE", default_value_t = 0.5)]
    transient_share: f64,
    /// Delay before each reply, in ms.
    #[arg(long, env = "GAVEL_PARTICIPANT_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, env = "GAVEL_PARTICIPANT_SEED", default_value_t = 0)]
    seed: u64,
    /// Stock of a SKU the inventory participant has never seen.
    #[arg(long, env = "GAVEL_INVENTORY_INITIAL_STOCK", default_value_t = 100)]
    initial_stock: i32,
}

pub async fn orchestrate(config: Config, kind: SagaKindArg, shutdown: Shutdown) -> Result<()> {
    let name = match kind {
        SagaKindArg::Payment => "saga-payment",
        SagaKindArg::Order => "saga-order",
    };
    let obs = observe::serve(&config, name).await?;
    let readiness = obs.readiness.clone();
    let stats = match kind {
        SagaKindArg::Payment => saga::run(config, Payment, shutdown, readiness).await?,
        SagaKindArg::Order => saga::run(config, Order, shutdown, readiness).await?,
    };
    print_stats(&stats);
    Ok(())
}

fn print_stats(stats: &Stats) {
    println!(
        "sagas started {}, completed {}, compensated {}, failed {}; {} commands sent, {} timers fired, {} inputs rejected, {} dead-lettered",
        stats.started, stats.completed, stats.compensated, stats.failed,
        stats.commands_sent, stats.timers_fired, stats.rejected, stats.dead_letters
    );
}

/// Counts every saga of `kind` on its changelog by status.
pub async fn status(config: Config, kind: SagaKindArg) -> Result<()> {
    let counts = tokio::task::spawn_blocking(move || match kind {
        SagaKindArg::Payment => saga::census(&config, &Payment),
        SagaKindArg::Order => saga::census(&config, &Order),
    })
    .await??;
    let line: Vec<String> = counts.iter().map(|(s, n)| format!("{s}={n}")).collect();
    println!(
        "{}",
        if line.is_empty() {
            "no sagas".into()
        } else {
            line.join(" ")
        }
    );
    Ok(())
}

/// One participant, or (`all`) every participant as tasks of this process.
pub async fn participate(
    config: Config,
    name: &str,
    chaos: ChaosArgs,
    shutdown: Shutdown,
) -> Result<()> {
    let chosen: Vec<Participant> = match name {
        "all" => Participant::ALL.to_vec(),
        one => match Participant::parse(one) {
            Some(p) => vec![p],
            None => bail!("unknown participant {one:?}: one of payment, payout, auction, ownership, notifications, inventory, shipping, all"),
        },
    };
    let obs = observe::serve(&config, &format!("participant-{name}")).await?;
    let mut tasks = Vec::new();
    for participant in chosen {
        let settings = Settings {
            participant,
            chaos: Chaos {
                failure_rate: chaos.failure_rate,
                transient_share: chaos.transient_share,
                latency: Duration::from_millis(chaos.latency_ms),
                seed: chaos.seed,
            },
            initial_stock: chaos.initial_stock,
        };
        let readiness = if name == "all" {
            Readiness::new(&format!("participant-{}", participant.as_str()))
        } else {
            obs.readiness.clone()
        };
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tasks.push(tokio::spawn(participants::run(
            config, settings, shutdown, readiness,
        )));
    }
    if name == "all" {
        obs.readiness.set_started();
    }
    // The first participant to fail ends the process with its reason (a
    // fatal misconfiguration must not wait behind the others still running).
    let finished = tasks.into_iter().map(|task| async move {
        let stats = task.await??;
        tracing::info!(?stats, "participant finished");
        Ok::<_, anyhow::Error>(())
    });
    futures::future::try_join_all(finished).await?;
    Ok(())
}

/// `count` order.created records on the order topic: a few SKUs, some orders
/// large enough to run out of stock, so some order sagas compensate.
pub async fn orders(config: &Config, count: usize, seed: u64) -> Result<()> {
    let producer: FutureProducer = kafka::producer_config(config).create()?;
    let writer = AvroCodec::new(&config.registry)
        .writer_for(&config.topics.orders, ORDER_CREATED_RECORD)
        .await?;
    let mut rng = StdRng::seed_from_u64(seed);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut acks = Vec::with_capacity(count);
    for i in 0..count {
        let order = OrderCreated {
            order_id: OrderId::new(format!("order-{}-{i}", &run[20..])),
            customer_id: UserId::new(format!("customer-{}", rng.gen_range(0..50))),
            lines: vec![OrderLine {
                sku: format!("sku-{}", rng.gen_range(0..5)),
                quantity: rng.gen_range(1..=12),
            }],
            total: Money::new(rng.gen_range(500..50_000), Currency::parse("EUR")?)?,
            shipping_address: format!("{} Gallery Road", rng.gen_range(1..200)),
        };
        let payload = json::encode(&writer, &order)?;
        let key = order.order_id.to_string();
        let record = FutureRecord::to(&config.topics.orders)
            .key(&key)
            .payload(&payload);
        acks.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for ack in acks {
        ack.await?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(10))?;
    println!(
        "{count} order.created records sent to {}",
        config.topics.orders
    );
    Ok(())
}
