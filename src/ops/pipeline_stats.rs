//! A [`crate::pipeline::Pipeline`]'s numbers in a [`Snapshot`]: the durable pipeline keeps
//! its own counters and health (its summary prints them); a scrape copies them here.

use super::latency::{HistogramSnapshot, LATENCY_BUCKETS};
use super::snapshot::{EndpointSnapshot, Health, Snapshot, StoreSnapshot};
use crate::pipeline::{self, PipelineStats};

/// The pipeline's health state as the metrics name it.
fn health(h: pipeline::Health) -> Health {
    match h {
        pipeline::Health::Unknown => Health::Unknown,
        pipeline::Health::Healthy => Health::Healthy,
        pipeline::Health::Degraded => Health::Degraded,
        pipeline::Health::Unhealthy => Health::Unhealthy,
        pipeline::Health::Dead => Health::Dead,
    }
}

/// The pipeline's latency buckets (bucket `i` up to 2^((i+1)/4) µs) regrouped into
/// [`LATENCY_BUCKETS`]: each count goes to the first bound at or above its bucket's upper
/// edge, so a count may sit one bound higher than its exact value would (the pipeline's
/// buckets are 19% wide). The sum takes each bucket's geometric middle.
pub fn latency(buckets: &[u64]) -> HistogramSnapshot {
    let mut counts = vec![0u64; LATENCY_BUCKETS.len() + 1];
    let mut sum = 0.0;
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let upper = 2f64.powf((i + 1) as f64 / 4.0) / 1e6;
        let j = LATENCY_BUCKETS
            .iter()
            .position(|&b| upper <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        counts[j] += n;
        sum += n as f64 * 2f64.powf((i as f64 + 0.5) / 4.0) / 1e6;
    }
    HistogramSnapshot {
        counts,
        sum_seconds: sum,
    }
}

impl Snapshot {
    /// Copies the pipeline's acceptance, store and per-endpoint numbers (`max_store_bytes`:
    /// the pipeline's configured limit).
    pub fn fill_from_pipeline(&mut self, stats: &PipelineStats, max_store_bytes: u64) {
        self.accepted = stats.accepted + stats.unrouted;
        self.fallback = stats.fallback;
        self.orphaned = stats.unrouted;
        self.input_lag_seconds = stats.input_lag.map(|d| d.as_secs_f64());
        self.store = Some(StoreSnapshot {
            bytes: stats.stored_bytes,
            messages: stats.stored_records,
            max_bytes: max_store_bytes,
            commits: stats.commits,
        });
        for e in &stats.endpoints {
            self.endpoints.insert(
                e.name.clone(),
                EndpointSnapshot {
                    routed: e.routed,
                    delivered: e.delivered,
                    retries: e.retries,
                    dead_lettered: e.dead_lettered_total(),
                    backlog: e.backlog,
                    health: health(e.health),
                    reason: e.reason.clone(),
                    latency: latency(&e.latency_buckets),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_regroup_into_the_exported_bounds() {
        // Bucket 39 ends at 2^10 µs = 1.024 ms: above the first bound (1 ms), in the second.
        let mut b = vec![0u64; 160];
        b[39] = 3;
        b[0] = 1; // up to 1.19 µs: the first bound
        let h = latency(&b);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 3);
        assert_eq!(h.count(), 4);
        // 3 × 2^(39.5/4) µs + 2^(0.5/4) µs: each bucket's geometric middle.
        assert!((h.sum_seconds - 0.002819).abs() < 1e-5, "{}", h.sum_seconds);
    }
}
