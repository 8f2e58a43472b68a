//! [`Snapshot`]: the numbers a running router reports, as plain data.
//!
//! Plain data rather than live metric handles: the pipeline keeps its own counters (which its
//! summary prints too), and a scrape copies them here. So the metrics can never disagree with
//! the summary, and counters survive a reload of the route table because they never belonged
//! to it.

use super::latency::HistogramSnapshot;
use std::collections::BTreeMap;

/// Everything `/metrics` and `/healthz` report, at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Messages (input records, lines) read from the inputs.
    pub read: u64,
    /// Messages that passed IoT Hub's message rules and were routed (and, with a store,
    /// durably accepted).
    pub accepted: u64,
    /// Messages rejected as invalid, by error code (`E0301`, `E0603`, ...).
    pub invalid: BTreeMap<String, u64>,
    /// Messages each route sent to its endpoint, by route name (the fallback route included
    /// under its own name).
    pub routes: BTreeMap<String, u64>,
    /// Messages that matched no route and went to the fallback route's endpoint.
    pub fallback: u64,
    /// Messages that matched no route (and no fallback) and were dropped.
    pub orphaned: u64,
    /// Route evaluations that were undefined (only counted with undefined-route logging on),
    /// by route name.
    pub undefined: BTreeMap<String, u64>,
    /// Per endpoint, by name.
    pub endpoints: BTreeMap<String, EndpointSnapshot>,
    /// The durable store, when the pipeline has one.
    pub store: Option<StoreSnapshot>,
    /// How far behind its input the router is: the age of the oldest message read but not
    /// yet accepted, or the input's own measure (a stream consumer's pending count is not a
    /// time and is not reported here).
    pub input_lag_seconds: Option<f64>,
    /// The route table in use and its reloads.
    pub table: TableSnapshot,
    /// Whether the router can do its work.
    pub readiness: Readiness,
}

/// One endpoint's deliveries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointSnapshot {
    /// Copies routed to it (enqueued for delivery).
    pub routed: u64,
    /// Copies its sink accepted.
    pub delivered: u64,
    /// Attempts repeated after a retryable error.
    pub retries: u64,
    /// Copies written to the dead letter instead.
    pub dead_lettered: u64,
    /// Copies waiting for delivery.
    pub backlog: u64,
    /// Its health, as IoT Hub reports an endpoint's.
    pub health: Health,
    /// Why it is not healthy (the last error), if it is not.
    pub reason: Option<String>,
    /// Time from acceptance to delivery.
    pub latency: HistogramSnapshot,
}

/// An endpoint's health, with IoT Hub's four states and `unknown` before any attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Nothing attempted yet.
    #[default]
    Unknown,
    /// Delivering.
    Healthy,
    /// Failing now, retrying.
    Unhealthy,
    /// Delivering, but falling behind.
    Degraded,
    /// Failing for longer than the dead threshold; copies go to the dead letter.
    Dead,
}

impl Health {
    /// Every state, in the order the metrics list them.
    pub const ALL: [Health; 5] = [
        Health::Unknown,
        Health::Healthy,
        Health::Unhealthy,
        Health::Degraded,
        Health::Dead,
    ];

    /// IoT Hub's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Degraded => "degraded",
            Health::Dead => "dead",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The durable store's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreSnapshot {
    /// Bytes on disk (or held) for messages not yet delivered everywhere.
    pub bytes: u64,
    /// Messages held.
    pub messages: u64,
    /// The size at which the input is paused (0: no limit).
    pub max_bytes: u64,
    /// Group commits so far (each a write and sync of the log).
    pub commits: u64,
}

/// The route table in use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableSnapshot {
    /// 1 for the table the router started with, +1 per successful reload.
    pub generation: u64,
    /// Reloads that swapped the table.
    pub reloads: u64,
    /// Reloads refused because the new configuration had errors (the old table kept routing).
    pub failed_reloads: u64,
    /// Seconds since the Unix epoch when the table in use was loaded.
    pub loaded_at: f64,
}

/// Whether the router is alive and ready. A router is live while it answers at all; it is
/// ready when its inputs are connected and its store (if any) is open, so that a load
/// balancer or orchestrator sends it work only then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Every input is connected (a file or standard input is connected once opened).
    pub inputs_connected: bool,
    /// The store is open (true when the pipeline has no store).
    pub store_open: bool,
}

impl Readiness {
    /// Ready to take work.
    pub fn is_ready(&self) -> bool {
        self.inputs_connected && self.store_open
    }
}
