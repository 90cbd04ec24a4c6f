//! Latency samples and how they are summarised: nearest-rank percentiles over every sample.
//! Separate so each measurement reports p50 and p99 the same way; nothing here is estimated
//! from buckets, since a few thousand samples fit in memory.

use std::time::Duration;

/// A set of latency samples, kept sorted so percentiles are a lookup.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    /// Takes `samples` in any order.
    pub fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The nearest-rank percentile `percent` (0 to 100), or zero without samples.
    pub fn percentile(&self, percent: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        // Nearest rank: the smallest sample with at least `percent` of all samples at or below it.
        let rank = (percent / 100.0 * self.sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.sorted.len()) - 1;
        self.sorted[index]
    }

    /// The median.
    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }

    /// How many samples are zero.
    pub fn count_zero(&self) -> usize {
        self.sorted
            .iter()
            .take_while(|sample| sample.is_zero())
            .count()
    }

    /// The largest sample, or zero without samples.
    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }
}

/// `duration` in milliseconds with a precision that suits its size, e.g. `0.42 ms`, `12.3 ms`.
pub fn millis(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis < 10.0 {
        format!("{millis:.2} ms")
    } else if millis < 100.0 {
        format!("{millis:.1} ms")
    } else {
        format!("{millis:.0} ms")
    }
}

/// `value` with commas between groups of three digits, e.g. `100,000`, so rates read at a glance.
pub fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let latencies = Latencies::new(samples);
        assert_eq!(latencies.p50(), Duration::from_millis(50));
        assert_eq!(latencies.p99(), Duration::from_millis(99));
        assert_eq!(latencies.percentile(100.0), Duration::from_millis(100));
        assert_eq!(latencies.percentile(0.0), Duration::from_millis(1));
        assert_eq!(latencies.max(), Duration::from_millis(100));
    }

    #[test]
    fn percentiles_of_nothing_are_zero() {
        let latencies = Latencies::default();
        assert_eq!(latencies.p99(), Duration::ZERO);
        assert_eq!(latencies.max(), Duration::ZERO);
    }

    #[test]
    fn grouped_puts_commas_every_three_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(100_000), "100,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn millis_keeps_three_significant_digits() {
        assert_eq!(millis(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(millis(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(millis(Duration::from_millis(250)), "250 ms");
    }
}
