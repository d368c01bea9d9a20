//! Open-loop send times. At a target rate, command i is due at
//! `start + i / rate` whatever happened to the commands before it, and its
//! latency is measured from that due time: a stalled system is charged for the
//! commands it kept waiting (no coordinated omission). Flat out (rate 0),
//! each command is due when it is actually sent.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    /// Commands per second; 0 means as fast as possible.
    rate: f64,
}

impl Schedule {
    pub fn new(start: Instant, rate: f64) -> Self {
        Self {
            start,
            rate: if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                0.0
            },
        }
    }

    pub fn is_open_loop(&self) -> bool {
        self.rate > 0.0
    }

    /// When command `index` is due after the start; None flat out.
    pub fn offset(&self, index: u64) -> Option<Duration> {
        self.is_open_loop()
            .then(|| Duration::from_secs_f64(index as f64 / self.rate))
    }

    /// The instant command `index` is due; flat out, `now`.
    pub fn due(&self, index: u64, now: Instant) -> Instant {
        self.offset(index).map_or(now, |offset| self.start + offset)
    }

    /// How long a run of `commands` takes at the target rate; None flat out.
    pub fn planned_duration(&self, commands: u64) -> Option<Duration> {
        self.offset(commands)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_fixed_by_the_rate_from_the_start() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 1_000.0);
        assert!(schedule.is_open_loop());
        assert_eq!(schedule.offset(0), Some(Duration::ZERO));
        assert_eq!(schedule.offset(1), Some(Duration::from_millis(1)));
        assert_eq!(schedule.offset(2_500), Some(Duration::from_millis(2_500)));
        // Late or not, the due time does not move with the clock.
        let late = start + Duration::from_secs(60);
        assert_eq!(schedule.due(10, late), start + Duration::from_millis(10));
        assert_eq!(
            schedule.planned_duration(5_000),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn flat_out_is_due_when_sent() {
        let start = Instant::now();
        for rate in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            let schedule = Schedule::new(start, rate);
            assert!(!schedule.is_open_loop());
            let now = start + Duration::from_millis(7);
            assert_eq!(schedule.due(123, now), now);
            assert_eq!(schedule.planned_duration(10), None);
        }
    }
}
