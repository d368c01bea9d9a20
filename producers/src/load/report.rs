//! Latency and outcome counts of a load run: an HdrHistogram of microseconds
//! (3 significant digits) per measured path, printed as p50/p95/p99/max and as
//! one JSON line.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// The longest latency a histogram records exactly; longer ones are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .unwrap_or_else(|_| unreachable!("the bounds are valid constants"));
        Self { histogram }
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        self.histogram
            .saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail; a failure would only drop samples.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    pub fn summary(&self) -> Summary {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        let at = |q: f64| ms(self.histogram.value_at_quantile(q));
        Summary {
            count: self.histogram.len(),
            mean_ms: self.histogram.mean() / 1_000.0,
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(self.histogram.max()),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// One aligned line, e.g. `command -> outcome  n=1000  p50 1.2 ms ...`.
    pub fn line(&self, label: &str) -> String {
        format!(
            "{label:<24} n={:<8} p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms  max {:>9.2} ms",
            self.count, self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )
    }
}

/// What came back for the commands of a run.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    /// Accepted by the aggregate (events written).
    pub accepted: u64,
    /// Rejected by the auction rules (an outcome, not a failure).
    pub rejected: u64,
    /// HTTP 202: the API gave up waiting; the outcome came later.
    pub pending: u64,
    /// No outcome within the wait (Kafka) or no answer (HTTP).
    pub timed_out: u64,
    /// Transport failures and unexpected HTTP statuses.
    pub errors: u64,
}

impl Counts {
    pub fn answered(&self) -> u64 {
        self.accepted + self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_recorded_latencies() {
        let mut latencies = Latencies::new();
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let s = latencies.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p95_ms - 95.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert!(s.line("x").contains("p99"));
    }

    #[test]
    fn merged_histograms_add_up_and_huge_values_are_clamped() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record(Duration::from_millis(2));
        b.record(Duration::from_secs(10 * 3_600));
        a.merge(&b);
        assert_eq!(a.len(), 2);
        assert!(a.summary().max_ms <= MAX_MICROS as f64 / 1_000.0 * 1.001);
    }
}
