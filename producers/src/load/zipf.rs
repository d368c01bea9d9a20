//! A Zipf sampler over ranks `0..n`: rank k is drawn with probability
//! proportional to `1 / (k + 1)^s`, so a few auctions get most of the bids.
//!
//! Written here rather than taken from a crate: it is a cumulative table and a
//! binary search, exact for the auction counts a load run uses (up to a few
//! hundred thousand ranks, one `f64` each).

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Zipf {
    /// cdf[k] = P(rank <= k); the last entry is 1.0.
    cdf: Vec<f64>,
}

impl Zipf {
    /// `n` ranks with exponent `s` (s = 0 is uniform; about 1 is typical of
    /// popularity). None when there is no rank or `s` is not a finite number >= 0.
    pub fn new(n: usize, s: f64) -> Option<Self> {
        if n == 0 || !s.is_finite() || s < 0.0 {
            return None;
        }
        let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = weights.iter().sum();
        let mut running = 0.0;
        let mut cdf: Vec<f64> = weights
            .iter()
            .map(|w| {
                running += w / total;
                running
            })
            .collect();
        // Rounding may leave the sum a hair under 1; a draw of 0.9999999 must still land.
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Some(Self { cdf })
    }

    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }

    /// The probability of rank `k` (0 outside the range).
    pub fn probability(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf.first().copied().unwrap_or(0.0),
            _ if k < self.cdf.len() => self.cdf[k] - self.cdf[k - 1],
            _ => 0.0,
        }
    }

    /// A rank drawn from a uniform number in [0, 1).
    pub fn rank_of(&self, uniform: f64) -> usize {
        let index = self.cdf.partition_point(|p| *p <= uniform);
        index.min(self.cdf.len() - 1)
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        self.rank_of(rng.gen::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn probabilities_follow_the_power_law_and_sum_to_one() {
        let zipf = Zipf::new(100, 1.0).unwrap();
        let sum: f64 = (0..100).map(|k| zipf.probability(k)).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        // p(rank 1) / p(rank 2) = 2^s / 1^s = 2 for s = 1.
        let ratio = zipf.probability(0) / zipf.probability(1);
        assert!((ratio - 2.0).abs() < 1e-9, "{ratio}");
        assert!((zipf.probability(0) / zipf.probability(9) - 10.0).abs() < 1e-9);
        assert_eq!(zipf.probability(100), 0.0);
    }

    #[test]
    fn uniform_numbers_map_to_ranks_at_the_edges() {
        let zipf = Zipf::new(10, 1.2).unwrap();
        assert_eq!(zipf.rank_of(0.0), 0);
        assert_eq!(zipf.rank_of(0.999_999_999), 9);
        assert_eq!(zipf.rank_of(1.0), 9);
        let p0 = zipf.probability(0);
        assert_eq!(zipf.rank_of(p0 - 1e-12), 0);
        assert_eq!(zipf.rank_of(p0 + 1e-12), 1);
    }

    #[test]
    fn samples_are_skewed_towards_the_first_ranks() {
        let zipf = Zipf::new(1_000, 1.0).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let mut counts = vec![0u32; 1_000];
        for _ in 0..200_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        let expected0 = zipf.probability(0) * 200_000.0;
        assert!((f64::from(counts[0]) - expected0).abs() < expected0 * 0.05);
        let top10: u32 = counts[..10].iter().sum();
        let bottom500: u32 = counts[500..].iter().sum();
        assert!(top10 > bottom500, "{top10} vs {bottom500}");
    }

    #[test]
    fn exponent_zero_is_uniform_and_bad_input_is_refused() {
        let zipf = Zipf::new(4, 0.0).unwrap();
        assert!((0..4).all(|k| (zipf.probability(k) - 0.25).abs() < 1e-12));
        assert!(Zipf::new(0, 1.0).is_none());
        assert!(Zipf::new(5, -1.0).is_none());
        assert!(Zipf::new(5, f64::NAN).is_none());
    }
}
