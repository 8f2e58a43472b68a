//! [`LatencyHistogram`]: delivery latencies counted into fixed buckets with atomics, so that a
//! delivery worker records without a lock and a scrape reads without stopping it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the latency buckets: from a millisecond (a local file) to five
/// minutes (an endpoint retrying through an outage); IoT Hub reports endpoint latency in
/// milliseconds with the same span.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A histogram of durations over [`LATENCY_BUCKETS`] (plus one bucket above the last bound).
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// The sum of all observations, in microseconds (an integer, so it can be atomic).
    sum_micros: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    /// Counts one observation.
    pub fn record(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A histogram's counts: `counts[i]` observations in bucket `i` of [`LATENCY_BUCKETS`] (not
/// cumulative), the last one above every bound.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bucket; empty when nothing was recorded yet.
    pub counts: Vec<u64>,
    /// The sum of all observations, in seconds.
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// Observations in all buckets.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound, count)` per bucket, the last bound infinite, as the Prometheus encoder
    /// takes them.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, bound)| (bound, self.counts.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_micros(500)); // <= 1 ms
        h.record(Duration::from_millis(1)); // == 1 ms, still the first bucket
        h.record(Duration::from_millis(30)); // <= 50 ms
        h.record(Duration::from_secs(3600)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count(), 4);
        assert_eq!(s.counts[0], 2);
        assert_eq!(s.counts[5], 1);
        assert_eq!(s.counts[LATENCY_BUCKETS.len()], 1);
        assert!(
            (s.sum_seconds - 3600.0315).abs() < 1e-9,
            "{}",
            s.sum_seconds
        );
        let buckets = s.buckets();
        assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
    }

    #[test]
    fn an_empty_snapshot_has_every_bucket_at_zero() {
        let s = HistogramSnapshot::default();
        assert_eq!(s.count(), 0);
        assert!(s.buckets().iter().all(|&(_, n)| n == 0));
    }
}
