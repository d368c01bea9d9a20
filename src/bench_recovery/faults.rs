//! The faults of the recovery benchmark, measured from outside as an operator
//! would: a stage's consumer lag before a kill -9, while it is down, and
//! after a restart as the same replica; and per partition, how long records
//! wait while one of several aggregates is scaled in (SIGTERM).

use crate::bench_run::workers::Worker;
use anyhow::{Context, Result};
use gavel_runtime::observe::lag::Monitor;
use gavel_runtime::observe::PartitionLag;
use gavel_runtime::Config;
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often lag is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How long the lag before a fault is watched to find its usual level.
const BASELINE: Duration = Duration::from_secs(3);
/// A stage not back within this is reported as not recovered.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// One consumer group and what it reads, with its own lag clients.
pub struct StageLag {
    group: String,
    topics: Vec<String>,
    monitor: Monitor,
}

impl StageLag {
    pub fn new(config: &Config, group: &str, topics: &[&str]) -> Self {
        Self {
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            monitor: Monitor::new(config.clone()),
        }
    }

    fn partitions(&mut self) -> Result<Vec<PartitionLag>> {
        self.monitor
            .measure(&self.group, &self.topics)
            .with_context(|| format!("lag of {}", self.group))
    }

    /// Records the group has still to process, over all its partitions.
    pub fn total(&mut self) -> Result<i64> {
        Ok(self.partitions()?.iter().map(|p| p.records).sum())
    }

    /// `total`, or None for a reading the broker did not answer in time (a
    /// busy machine): one missed sample is no reason to end the run.
    fn sample(&mut self) -> Option<i64> {
        self.total()
            .map_err(|error| tracing::warn!(error = format!("{error:#}"), "lag not read"))
            .ok()
    }

    /// True once the group has committed an offset on any partition.
    pub fn has_committed(&mut self) -> Result<bool> {
        Ok(self.partitions()?.iter().any(|p| p.committed.is_some()))
    }

    /// The highest lag read while watching for `during`; None when no
    /// reading was answered. A reading the broker did not answer is left
    /// out, never counted as 0: a baseline of 0 that was really a series of
    /// timeouts would ask the restarted stage for a lag it never had.
    fn highest_for(&mut self, during: Duration) -> Option<i64> {
        let until = Instant::now() + during;
        let mut highest = None;
        while Instant::now() < until {
            if let Some(lag) = self.sample() {
                highest = Some(highest.map_or(lag, |h: i64| h.max(lag)));
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
        highest
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub stage: &'static str,
    /// The highest lag read in the 3 s before the kill.
    pub highest_lag_before: i64,
    /// The level to get back to: `highest_lag_before`, or a quarter second of
    /// traffic if that is higher.
    pub pre_fault_lag: i64,
    pub down_s: f64,
    /// The highest lag seen while the stage was down or catching up.
    pub peak_lag: i64,
    /// From the restart until the lag was back at its pre-fault level; None
    /// when it was not within 60 s.
    pub recovered_s: Option<f64>,
}

/// kill -9 of `workers[index]`, `down` later a restart as the same replica;
/// how long after the restart its stage's lag is back where it was. "Where it
/// was" is the highest lag of the 3 s before the kill, or a quarter second of
/// traffic (`rate` commands/s) if that is higher: a caught-up stage's lag
/// moves by that much from one transaction to the next, and a baseline
/// below the noise would measure when the noise dips, not the recovery.
pub fn kill_and_restart(
    config: &Config,
    workers: &mut [Worker],
    index: usize,
    lag: &mut StageLag,
    down: Duration,
    rate: u64,
) -> Result<Recovery> {
    let highest_before = lag
        .highest_for(BASELINE)
        .with_context(|| format!("{}: no lag reading answered before the kill", lag.group))?;
    let pre_fault_lag = highest_before.max((rate / 4) as i64);
    let (role, instance) = (workers[index].role, workers[index].instance.clone());
    workers[index].child.kill()?;
    workers[index].child.wait()?;
    let mut peak_lag = lag.highest_for(down).unwrap_or(pre_fault_lag);
    workers[index] = Worker::spawn_as(config, role, &instance, &[])?;
    let restarted = Instant::now();
    let mut recovered_s = None;
    while restarted.elapsed() < GIVE_UP_AFTER {
        let Some(now) = lag.sample() else { continue };
        peak_lag = peak_lag.max(now);
        if now <= pre_fault_lag {
            recovered_s = Some(restarted.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    Ok(Recovery {
        stage: role,
        highest_lag_before: highest_before,
        pre_fault_lag,
        down_s: down.as_secs_f64(),
        peak_lag,
        recovered_s,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleIn {
    pub aggregates_before: usize,
    /// The longest any partition had records waiting without its committed
    /// offset moving, from the SIGTERM on.
    pub max_partition_stall_s: f64,
    /// How long the stopped aggregate took to exit.
    pub exit_s: f64,
}

/// How long each partition has had records waiting without progress.
#[derive(Default)]
struct Stalls {
    /// Per partition: committed offset last seen and when it last moved (or
    /// had nothing to do).
    progress: HashMap<(String, i32), (Option<i64>, Instant)>,
    longest: Duration,
}

impl Stalls {
    fn observe(&mut self, partitions: &[PartitionLag], since: Instant) {
        let now = Instant::now();
        for p in partitions {
            let key = (p.topic.clone(), p.partition);
            let entry = self.progress.entry(key).or_insert((p.committed, since));
            if p.records == 0 || p.committed != entry.0 {
                *entry = (p.committed, now);
            } else {
                self.longest = self.longest.max(now - entry.1);
            }
        }
    }
}

/// The longest any partition of `lag`'s group had records waiting without
/// its committed offset moving, watched for `watch` from now.
pub fn longest_stall(lag: &mut StageLag, watch: Duration) -> Duration {
    let since = Instant::now();
    let mut stalls = Stalls::default();
    while since.elapsed() < watch {
        match lag.partitions() {
            Ok(partitions) => stalls.observe(&partitions, since),
            Err(error) => tracing::warn!(error = format!("{error:#}"), "lag not read"),
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    stalls.longest
}

/// SIGTERM to `leaving`, one of `aggregates_before` aggregates, while the
/// others run on: the longest time any partition then waits, watched for `watch`.
pub fn scale_in(
    leaving: Worker,
    aggregates_before: usize,
    lag: &mut StageLag,
    watch: Duration,
) -> Result<ScaleIn> {
    let signalled = Instant::now();
    let stopping = std::thread::spawn(move || {
        let result = leaving.stop(Duration::from_secs(30));
        (result, signalled.elapsed())
    });
    let longest = longest_stall(lag, watch);
    let (stopped, exit) = stopping
        .join()
        .map_err(|_| anyhow::anyhow!("stopping the aggregate panicked"))?;
    stopped?;
    Ok(ScaleIn {
        aggregates_before,
        max_partition_stall_s: longest.as_secs_f64(),
        exit_s: exit.as_secs_f64(),
    })
}
