//! Sends a generated workload: setup and bids at full speed. The auctions are
//! ended by the aggregate processor's durable timers, not by commands; with
//! `explicit_ends` the EndAuction commands are sent too once the end time passed
//! (they race the timers, and whichever comes second is rejected).

use crate::loadgen::Workload;
use crate::produce::now;
use crate::{CommandProducer, ProducerError};
use gavel_runtime::Config;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SendReport {
    pub sent: u64,
    /// Setup + bids, acknowledged by Kafka.
    pub bids_elapsed: Duration,
    pub total_elapsed: Duration,
}

pub async fn send_workload(
    config: &Config,
    workload: &Workload,
    explicit_ends: bool,
) -> Result<SendReport, ProducerError> {
    let started = Instant::now();
    let mut producer = CommandProducer::connect(config).await?;
    for (command, meta) in workload.setup.iter().chain(&workload.bids) {
        producer.send(command, meta).await?;
    }
    producer.flush().await?;
    let bids_elapsed = started.elapsed();
    if !explicit_ends {
        return Ok(SendReport {
            sent: producer.sent,
            bids_elapsed,
            total_elapsed: started.elapsed(),
        });
    }
    let wait = workload.end_time.millis() - now().millis();
    if wait >= 0 {
        // Commands are stamped by the broker (LogAppendTime): wait for real time to pass the end.
        tokio::time::sleep(Duration::from_millis(wait as u64 + 50)).await;
    }
    for (command, meta) in &workload.ends {
        producer.send(command, meta).await?;
    }
    producer.flush().await?;
    Ok(SendReport {
        sent: producer.sent,
        bids_elapsed,
        total_elapsed: started.elapsed(),
    })
}
