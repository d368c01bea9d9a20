//! A steady command load for the recovery benchmark: the auctions are created
//! and started at once, then bids go out at a fixed rate until stopped. The
//! workload predicts the exact read model of whatever part of it was sent.

use anyhow::Result;
use gavel_domain::auction::Auction;
use gavel_domain::AuctionId;
use gavel_producers::loadgen::{generate, LoadSpec, Workload};
use gavel_producers::produce::now;
use gavel_producers::CommandProducer;
use gavel_runtime::Config;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Bids go out in small bursts this often.
const TICK: Duration = Duration::from_millis(10);

pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    sending: JoinHandle<Result<(Workload, usize)>>,
}

/// What was sent, and the read model it must produce.
pub struct Sent {
    pub commands: usize,
    pub expected: BTreeMap<AuctionId, Auction>,
}

impl SteadyLoad {
    /// Starts sending: `auctions` set up first, then bids at `rate` per second
    /// (for at most `max_secs`; the auctions end long after).
    pub fn start(config: &Config, auctions: usize, rate: u64, max_secs: u64) -> Self {
        let spec = LoadSpec {
            run_id: config.instance_id.clone(),
            tenant: "recovery".into(),
            auctions,
            bids: (rate * max_secs) as usize,
            duration_ms: (max_secs as i64 + 600) * 1000,
            seed: 19,
        };
        let workload = generate(&spec, now());
        let stop = Arc::new(AtomicBool::new(false));
        let (config, flag) = (config.clone(), stop.clone());
        let sending = tokio::spawn(async move {
            let sent = send(&config, &workload, rate, &flag).await?;
            Ok::<_, anyhow::Error>((workload, sent))
        });
        Self { stop, sending }
    }

    /// Stops sending; every command sent is acknowledged by Kafka on return.
    pub async fn stop(self) -> Result<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        let (mut workload, bids) = self.sending.await??;
        workload.bids.truncate(bids);
        Ok(Sent {
            commands: workload.setup.len() + bids,
            expected: workload.expected_before_end(),
        })
    }
}

/// Sends the setup, then the bids on schedule until `stop`; the bids sent.
async fn send(config: &Config, workload: &Workload, rate: u64, stop: &AtomicBool) -> Result<usize> {
    let mut producer = CommandProducer::connect(config).await?;
    for (command, meta) in &workload.setup {
        producer.send(command, meta).await?;
    }
    producer.flush().await?;
    let started = Instant::now();
    let mut sent = 0;
    while sent < workload.bids.len() && !stop.load(Ordering::SeqCst) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as usize;
        for (command, meta) in &workload.bids[sent..due.min(workload.bids.len())] {
            producer.send(command, meta).await?;
            sent += 1;
        }
        tokio::time::sleep(TICK).await;
    }
    producer.flush().await?;
    Ok(sent)
}
