//! Samples, every half second while the pipeline runs, each worker's memory
//! and CPU time and each stage's committed consumer offsets: the data of the
//! resource figures and of the throughput-over-time plot.

use super::workers::{sample_pid, ticks_per_second, ProcSample};
use crate::bench::CommittedOffsets;
use anyhow::Result;
use gavel_runtime::Config;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(500);

/// A consumer group whose progress is a stage's progress.
pub struct Stage {
    pub name: &'static str,
    offsets: CommittedOffsets,
}

impl Stage {
    pub fn new(config: &Config, name: &'static str, group: &str, topics: &[&str]) -> Result<Self> {
        Ok(Self {
            name,
            offsets: CommittedOffsets::new(config, group, topics)?,
        })
    }

    fn committed(&self) -> Option<i64> {
        self.offsets.sum(Duration::from_secs(2))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: f64,
    /// Per worker, in the order given; None when it could not be read.
    #[serde(skip)]
    pub procs: Vec<Option<ProcSample>>,
    /// Per stage, committed offsets (None: not answered this time).
    pub committed: Vec<Option<i64>>,
}

pub struct Sampler {
    pub started: Instant,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(pids: Vec<u32>, stages: Vec<Stage>) -> Self {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        // Blocking Kafka calls: a thread of its own, not the async runtime's.
        let handle = std::thread::spawn(move || {
            let ticks = ticks_per_second();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples.push(Sample {
                    t_s: started.elapsed().as_secs_f64(),
                    procs: pids.iter().map(|pid| sample_pid(*pid, ticks)).collect(),
                    committed: stages.iter().map(Stage::committed).collect(),
                });
                std::thread::sleep(INTERVAL);
            }
            samples
        });
        Self {
            started,
            stop,
            handle,
        }
    }

    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Records/s of stage `index` between consecutive samples: `(t_s, rate)`.
pub fn rates(samples: &[Sample], index: usize) -> Vec<(f64, f64)> {
    let points: Vec<(f64, i64)> = samples
        .iter()
        .filter_map(|s| Some((s.t_s, s.committed.get(index).copied().flatten()?)))
        .collect();
    points
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| (w[1].0, (w[1].1 - w[0].1).max(0) as f64 / (w[1].0 - w[0].0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_offset_deltas_over_time_and_skip_gaps() {
        let sample = |t_s: f64, c: Option<i64>| Sample {
            t_s,
            procs: Vec::new(),
            committed: vec![c],
        };
        let samples = [
            sample(0.0, Some(0)),
            sample(0.5, Some(500)),
            sample(1.0, None),
            sample(1.5, Some(1_500)),
        ];
        assert_eq!(rates(&samples, 0), vec![(0.5, 1_000.0), (1.5, 1_000.0)]);
        assert!(rates(&samples, 1).is_empty());
    }
}
