//! The statistics the benchmark's reports and analyses share: means, interpolated quantiles and
//! percentile-bootstrap intervals (reproducible: a fixed-seed generator, no dependency).

/// xorshift64*: reproducible bootstrap without another dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// 95% percentile-bootstrap interval of a statistic of `n` items (1,000 resamples): `statistic`
/// gets the indices of one resample.
pub fn bootstrap_statistic(n: usize, statistic: impl Fn(&[usize]) -> f64) -> (f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut draws: Vec<f64> = (0..1000)
        .map(|_| {
            let picks: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
            statistic(&picks)
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    (draws[25], draws[974])
}

/// The mean (0 for no values).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// 95% percentile-bootstrap interval of the mean of `values` (1,000 resamples).
pub fn bootstrap_interval(values: &[f64]) -> (f64, f64) {
    bootstrap_statistic(values.len(), |picks| picks.iter().map(|i| values[*i]).sum::<f64>() / values.len() as f64)
}

/// The `q` quantile, interpolated between the two nearest values (the true median for even n).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// The median of the finite values, `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    (!finite.is_empty()).then(|| quantile(&finite, 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_interval_brackets_the_mean_and_narrows_with_n() {
        let small: Vec<f64> = (0..20).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
        let large: Vec<f64> = (0..400).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
        let (a, b) = bootstrap_interval(&small);
        let (c, d) = bootstrap_interval(&large);
        assert!(a < 0.5 && 0.5 < b && c < 0.5 && 0.5 < d);
        assert!(d - c < b - a);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0], 0.5), 2.5, "the true median of an even count");
        assert!((quantile(&[0.0, 10.0], 0.9) - 9.0).abs() < 1e-12);
    }

    #[test]
    fn the_median_ignores_what_is_not_finite() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, f64::INFINITY]), None);
        assert_eq!(median(&[3.0, f64::NAN, -1.0, 1.0]), Some(1.0));
    }
}
