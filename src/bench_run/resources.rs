//! Per-worker memory and CPU figures from the sampler's /proc readings.

use super::sampler::Sample;
use super::workers::ProcSample;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct WorkerUse {
    pub role: &'static str,
    /// VmHWM: the most the process was ever resident.
    pub peak_rss_mib: f64,
    /// Median VmRSS while the fixed-rate latency runs went on (steady load).
    pub steady_rss_mib: f64,
    /// CPU seconds (user + system) in the flat-out throughput run.
    pub cpu_s_throughput: f64,
    /// CPU seconds during the fixed-rate runs.
    pub cpu_s_latency: f64,
    pub cpu_s_total: f64,
}

/// Memory and CPU of one process over a run that has a single phase (the
/// saga stage).
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUse {
    pub process: &'static str,
    /// VmHWM: the most the process was ever resident.
    pub peak_rss_mib: f64,
    /// Median VmRSS over the run.
    pub median_rss_mib: f64,
    /// CPU seconds (user + system) from the first sample to the last.
    pub cpu_s: f64,
}

/// Process `index`'s readings (in sampler order), with their sample times.
fn readings(samples: &[Sample], index: usize) -> Vec<(f64, ProcSample)> {
    samples
        .iter()
        .filter_map(|s| Some((s.t_s, s.procs.get(index).copied().flatten()?)))
        .collect()
}

fn peak_rss(readings: &[(f64, ProcSample)]) -> f64 {
    readings.iter().map(|(_, p)| p.hwm_mib).fold(0.0, f64::max)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Figures for process `index` (in sampler order) over the whole run.
pub fn process_use(samples: &[Sample], index: usize, process: &'static str) -> ProcessUse {
    let readings = readings(samples, index);
    let cpu = |at: Option<&(f64, ProcSample)>| at.map_or(0.0, |(_, p)| p.cpu_s);
    ProcessUse {
        process,
        peak_rss_mib: peak_rss(&readings),
        median_rss_mib: median(readings.iter().map(|(_, p)| p.rss_mib).collect()),
        cpu_s: cpu(readings.last()) - cpu(readings.first()),
    }
}

/// Figures for worker `index` (in sampler order), split at `latency_from_s`.
pub fn worker_use(
    samples: &[Sample],
    index: usize,
    role: &'static str,
    latency_from_s: f64,
) -> WorkerUse {
    let readings = readings(samples, index);
    let cpu_at = |t: f64| {
        readings
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0.0, |(_, p)| p.cpu_s)
    };
    let first_cpu = readings.first().map_or(0.0, |(_, p)| p.cpu_s);
    let last_cpu = readings.last().map_or(0.0, |(_, p)| p.cpu_s);
    let split_cpu = cpu_at(latency_from_s);
    let steady: Vec<f64> = readings
        .iter()
        .filter(|(at, _)| *at >= latency_from_s)
        .map(|(_, p)| p.rss_mib)
        .collect();
    WorkerUse {
        role,
        peak_rss_mib: peak_rss(&readings),
        steady_rss_mib: median(steady),
        cpu_s_throughput: split_cpu - first_cpu,
        cpu_s_latency: last_cpu - split_cpu,
        cpu_s_total: last_cpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_split_at_the_latency_start_and_steady_rss_is_the_median_after() {
        let at = |t_s: f64, rss: f64, cpu: f64| Sample {
            t_s,
            procs: vec![Some(ProcSample {
                rss_mib: rss,
                hwm_mib: 90.0,
                cpu_s: cpu,
            })],
            committed: Vec::new(),
        };
        let samples = [
            at(0.0, 10.0, 1.0),
            at(1.0, 80.0, 3.0),
            at(2.0, 30.0, 4.0),
            at(3.0, 40.0, 4.5),
            at(4.0, 35.0, 5.0),
        ];
        let use_ = worker_use(&samples, 0, "sink", 2.0);
        assert_eq!(use_.peak_rss_mib, 90.0);
        assert_eq!(use_.steady_rss_mib, 35.0);
        assert_eq!(use_.cpu_s_throughput, 3.0);
        assert_eq!(use_.cpu_s_latency, 1.0);
        assert_eq!(use_.cpu_s_total, 5.0);
        let whole = process_use(&samples, 0, "saga");
        assert_eq!(whole.peak_rss_mib, 90.0);
        assert_eq!(whole.median_rss_mib, 35.0);
        assert_eq!(whole.cpu_s, 4.0);
    }
}
