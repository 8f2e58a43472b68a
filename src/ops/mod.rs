//! Operating a running router: what it reports and how it is changed without a restart.
//!
//! A router that runs for weeks is watched through its metrics and changed in place, as IoT
//! Hub's users do with the hub's metrics and routes. This module holds the pieces that do not
//! depend on how messages flow through the router, so that any pipeline (the command line's,
//! or a stream processor embedding hubroute) can use them:
//!
//! * [`Snapshot`]: plain numbers describing the router at one instant — messages read,
//!   accepted, invalid by code, routed per route and endpoint, fallback, orphaned, each
//!   endpoint's deliveries, retries, dead letters, latency histogram, health and backlog, the
//!   store's size and the input's lag. The pipeline fills one whenever asked.
//! * [`metrics`]: encodes a snapshot in the Prometheus text format with the official
//!   `prometheus-client` crate, under names that map one to one to IoT Hub's metrics.
//! * [`OpsServer`]: a small HTTP server (hyper) answering `/metrics`, `/healthz`, `/livez`
//!   and `/readyz` from a snapshot source.
//! * [`Counters`]: the router's own counters, shared by its threads, and [`LatencyHistogram`]:
//!   lock-free delivery latencies.
//! * [`LiveTable`]: the route table, swapped atomically between messages when a new
//!   configuration has been validated completely.
//! * [`RateLimit`]: at most N events per interval, for logs that a flood of messages must not
//!   turn into a flood of lines.
//! * [`redact`]: secrets out of URLs before they are logged.

mod counters;
mod http;
mod latency;
pub mod metrics;
pub mod observe;
#[cfg(feature = "store")]
pub mod pipeline_stats;
mod ratelimit;
pub mod redact;
mod reload;
mod snapshot;

pub use counters::{Batch, Counters};
pub use http::{OpsServer, SnapshotSource};
pub use latency::{HistogramSnapshot, LatencyHistogram, LATENCY_BUCKETS};
pub use ratelimit::RateLimit;
pub use reload::{reachable_endpoints, LiveTable, ReloadError, Reloaded, Versioned};
pub use snapshot::{EndpointSnapshot, Health, Readiness, Snapshot, StoreSnapshot, TableSnapshot};

/// Error codes of operations (configuration reloads, the metrics server).
pub mod codes {
    /// A reloaded routing configuration has errors; the old table keeps routing.
    pub const RELOAD_INVALID: &str = "E0801";
    /// A reloaded configuration routes to an endpoint with no sink bound; the old table keeps
    /// routing.
    pub const RELOAD_UNBOUND: &str = "E0802";
    /// The routes file or config file could not be read on reload.
    pub const RELOAD_UNREADABLE: &str = "E0803";
    /// The metrics server could not listen on its address.
    pub const METRICS_BIND: &str = "E0804";
    /// The process config file is malformed (with its line and column).
    pub const CONFIG_INVALID: &str = "E0805";
}
