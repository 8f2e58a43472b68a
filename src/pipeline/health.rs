//! Endpoint health, as IoT Hub reports it (`research/azure-routing.md` §3.5), and the per
//! endpoint numbers of a [`super::Pipeline`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// IoT Hub's endpoint health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No delivery attempted yet (nothing routed to it since the start).
    Unknown,
    /// The last attempt succeeded and the endpoint keeps up.
    Healthy,
    /// The last attempt succeeded, but the oldest copy waiting for it is older than
    /// [`super::PipelineConfig::degraded_after`]: it is delivering, but falling behind (or
    /// catching up after an outage). IoT Hub does not document its meaning; this is ours.
    Degraded,
    /// The last attempt failed; the endpoint is being retried with backoff.
    Unhealthy,
    /// Failing without a success for longer than [`super::Retention::time`]: copies that
    /// outlive their retention go to the dead letter. Still probed, and healthy again on the
    /// first success.
    Dead,
}

impl Health {
    /// The name IoT Hub's `EndpointHealthData.healthStatus` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
            Health::Dead => "dead",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One endpoint's numbers at one moment ([`super::Pipeline::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSnapshot {
    /// The endpoint's name.
    pub name: String,
    /// Health now.
    pub health: Health,
    /// Why it is not healthy: the last error, when the last attempt failed or the endpoint
    /// falls behind.
    pub reason: Option<String>,
    /// The last error seen, even if a later attempt succeeded (IoT Hub's `lastKnownError`).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_time: Option<SystemTime>,
    /// When a batch was last delivered.
    pub last_success_time: Option<SystemTime>,
    /// Copies accepted for it in this run (plus those found in the store at start).
    pub routed: u64,
    /// Copies its sink accepted and flushed.
    pub delivered: u64,
    /// Copies sent to the dead letter, by code.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Attempts repeated after a retryable error.
    pub retries: u64,
    /// Copies waiting in the store for it.
    pub backlog: u64,
    /// Bytes of the records waiting for it.
    pub backlog_bytes: u64,
    /// Age of the oldest copy it is working on (zero when caught up).
    pub oldest_age: Duration,
    /// Acceptance to delivery, median (approximate: within a factor of 2^(1/4)).
    pub latency_p50: Option<Duration>,
    /// Acceptance to delivery, 99th percentile (approximate likewise).
    pub latency_p99: Option<Duration>,
    /// Acceptance to delivery, every copy: `latency_buckets[i]` copies took at most
    /// 2^((i+1)/4) µs (and more than the bucket before); for a Prometheus histogram.
    pub latency_buckets: Vec<u64>,
}

impl EndpointSnapshot {
    /// All dead-lettered copies, whatever the code.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.values().sum()
    }
}

/// The whole pipeline at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PipelineStats {
    /// Messages durably accepted (stored) in this run.
    pub accepted: u64,
    /// Valid messages that matched no route (and no fallback): counted, not stored.
    pub unrouted: u64,
    /// Messages that went to the fallback route.
    pub fallback: u64,
    /// Records in the store now.
    pub stored_records: u64,
    /// Bytes of the records in the store now.
    pub stored_bytes: u64,
    /// How often acceptance waited because the store was full.
    pub backpressure_episodes: u64,
    /// Durable commits of records in this run, each a write and sync of the store's log
    /// (batches that arrive together share one; see [`super::GATHER_BELOW`]).
    pub commits: u64,
    /// Copies found in the store at start (not yet delivered by an earlier run).
    pub recovered_copies: u64,
    /// How far the router is behind its input: at the last durable commit, how long ago the
    /// batch's oldest message was enqueued (by the hub: the bridge, this router's MQTT input,
    /// or the message's own `enqueuedTime`). `None` before the first commit.
    pub input_lag: Option<Duration>,
    /// Per endpoint, in the table's order.
    pub endpoints: Vec<EndpointSnapshot>,
}

/// A lock-free latency histogram: buckets a quarter of a power of two wide, from 1 µs.
pub(crate) struct Latency {
    buckets: Vec<AtomicU64>,
}

const BUCKETS: usize = 4 * 40;

impl Latency {
    pub(crate) fn new() -> Self {
        Latency {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The bucket of a latency: floor(4·log2(µs)), at least 0, at most the last.
    ///
    /// Why in integers: floor(4·log2(m)) is floor(log2(m⁴)), the highest set bit of m⁴, so
    /// no float logarithm is taken per delivered copy (about 40 instructions with its call).
    /// m⁴ fits in 128 bits below 2³² µs (71 minutes); beyond, rare, the float logarithm.
    fn bucket(d: Duration) -> usize {
        let micros = d
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(d.subsec_micros()))
            .max(1);
        let log = match u32::try_from(micros) {
            Ok(m) => {
                let square = u128::from(u64::from(m) * u64::from(m));
                127 - (square * square).leading_zeros() as usize
            }
            Err(_) => ((micros as f64).log2() * 4.0) as usize,
        };
        log.min(BUCKETS - 1)
    }

    #[cfg(test)]
    pub(crate) fn record(&self, d: Duration, n: u64) {
        self.buckets[Self::bucket(d)].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one copy per latency of `ages`: a run of copies in the same bucket (a batch's
    /// copies mostly are) with one atomic add, not one per copy.
    pub(crate) fn record_all(&self, ages: impl IntoIterator<Item = Duration>) {
        let mut run: Option<(usize, u64)> = None;
        for age in ages {
            let bucket = Self::bucket(age);
            match &mut run {
                Some((b, n)) if *b == bucket => *n += 1,
                _ => {
                    if let Some((b, n)) = run.replace((bucket, 1)) {
                        self.buckets[b].fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
        }
        if let Some((b, n)) = run {
            self.buckets[b].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The count of each bucket (see [`EndpointSnapshot::latency_buckets`]).
    pub(crate) fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// The upper edge of the bucket holding quantile `q`.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let micros = 2f64.powf((i + 1) as f64 / 4.0);
                return Some(Duration::from_secs_f64(micros / 1e6));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket() {
        let l = Latency::new();
        assert_eq!(l.quantile(0.5), None);
        l.record(Duration::from_millis(10), 99);
        l.record(Duration::from_secs(2), 1);
        let p50 = l.quantile(0.5).unwrap();
        assert!(
            p50 >= Duration::from_millis(10) && p50 < Duration::from_millis(13),
            "{p50:?}"
        );
        let p99 = l.quantile(0.99).unwrap();
        assert!(p99 < Duration::from_millis(13), "{p99:?}");
        let max = l.quantile(1.0).unwrap();
        assert!(max >= Duration::from_secs(2), "{max:?}");
    }

    /// The float formula the integer bucket replaces, the reference.
    fn float_bucket(d: Duration) -> usize {
        let micros = d.as_micros().max(1) as f64;
        ((micros.log2() * 4.0) as usize).min(BUCKETS - 1)
    }

    /// Every latency up to 2^20 µs, every bucket edge's neighbours, and large and extreme
    /// ones fall into the bucket the float logarithm gives.
    #[test]
    fn integer_buckets_are_the_float_buckets() {
        let check = |micros: u64| {
            let d = Duration::from_micros(micros);
            assert_eq!(Latency::bucket(d), float_bucket(d), "{micros} µs");
        };
        (0..1 << 20).for_each(check);
        for i in 0..BUCKETS as i32 + 8 {
            let edge = 2f64.powf(f64::from(i) / 4.0) as u64;
            (edge.saturating_sub(2)..edge.saturating_add(3)).for_each(check);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(x >> (x % 40));
        }
        for d in [Duration::ZERO, Duration::from_nanos(999), Duration::MAX] {
            assert_eq!(Latency::bucket(d), float_bucket(d), "{d:?}");
        }
    }

    /// Runs of one bucket are counted as the copies one by one are.
    #[test]
    fn recording_runs_counts_every_copy() {
        let ages: Vec<Duration> = [5, 5, 5, 900, 900, 5, 3_000_000, 1, 1, 900]
            .iter()
            .map(|&m| Duration::from_micros(m))
            .collect();
        let (runs, singles) = (Latency::new(), Latency::new());
        runs.record_all(ages.iter().copied());
        for &a in &ages {
            singles.record(a, 1);
        }
        assert_eq!(runs.counts(), singles.counts());
        assert_eq!(runs.counts().iter().sum::<u64>(), ages.len() as u64);
        runs.record_all([]);
        assert_eq!(runs.counts(), singles.counts());
    }
}
