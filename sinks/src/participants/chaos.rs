//! Injected failures and latency, so compensation paths run in tests and the
//! demo. The roll is a hash of the command id and a seed: the same attempt
//! always gets the same answer (a redelivered command is not re-rolled), and a
//! retry, which has a new command id, gets a fresh chance.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    /// Share of forward commands refused without applying anything (0..=1).
    pub failure_rate: f64,
    /// Share of those refusals that are transient (retried by the saga).
    pub transient_share: f64,
    /// Added before each reply.
    pub latency: Duration,
    pub seed: u64,
}

impl Default for Chaos {
    fn default() -> Self {
        Self {
            failure_rate: 0.0,
            transient_share: 0.5,
            latency: Duration::ZERO,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roll {
    Apply,
    Refuse { transient: bool },
}

impl Chaos {
    pub fn roll(&self, command_id: &str) -> Roll {
        let failure = unit(self.seed, command_id, 1);
        if failure >= self.failure_rate {
            return Roll::Apply;
        }
        Roll::Refuse {
            transient: unit(self.seed, command_id, 2) < self.transient_share,
        }
    }
}

/// A uniform number in [0, 1) from (seed, text, salt): FNV-1a, then a
/// splitmix64 finaliser so nearby ids do not give nearby numbers.
fn unit(seed: u64, text: &str, salt: u64) -> f64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_failure_rate_applies_everything() {
        let chaos = Chaos::default();
        assert!((0..1000).all(|i| chaos.roll(&format!("c{i}")) == Roll::Apply));
    }

    #[test]
    fn the_failure_rate_is_roughly_honoured_and_the_roll_is_stable() {
        let chaos = Chaos {
            failure_rate: 0.2,
            ..Chaos::default()
        };
        let refused = (0..10_000)
            .filter(|i| chaos.roll(&format!("saga-{i}/charge/do/1")) != Roll::Apply)
            .count();
        assert!((1_700..2_300).contains(&refused), "{refused}");
        assert_eq!(chaos.roll("x/1"), chaos.roll("x/1"));
    }

    #[test]
    fn transient_share_splits_the_refusals() {
        let chaos = Chaos {
            failure_rate: 1.0,
            transient_share: 0.0,
            ..Chaos::default()
        };
        assert_eq!(chaos.roll("a"), Roll::Refuse { transient: false });
        let all_transient = Chaos {
            transient_share: 1.0,
            ..chaos
        };
        assert_eq!(all_transient.roll("a"), Roll::Refuse { transient: true });
    }
}
