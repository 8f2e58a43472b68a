//! What the live inputs (MQTT, JetStream, HTTPS) share: the rule for
//! acknowledging, the in-flight window, the hooks an embedder (or the CLI's metrics) plugs in,
//! and the report.
//!
//! The rule is IoT Hub's: a message is acknowledged once the router has *durably accepted* it —
//! written and synced to its store ([`Pipeline::accept_then`]) — or dead-lettered it as
//! invalid. Endpoints then deliver from the store on their own cursors, so a down endpoint
//! never holds the input's window. Until acceptance the broker keeps the message and
//! redelivers it after a crash; after it, the store does. At most `max_in_flight` messages are
//! read and not yet settled; beyond that, reading waits (and says so), it never drops.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::InvalidLog;
use crate::eval::TwinLookup;
use crate::message::Message;
use crate::pipeline::{Pipeline, Prepared};
use crate::route::Router;

/// Hooks into a broker input, for metrics and readiness. Every method does nothing by default;
/// implement the ones you want ([`NoHooks`] implements none). A table reloaded while the input
/// runs ([`Pipeline::tables`]) needs no hook: the input routes each message with the current
/// one.
pub trait InputHooks: Send + Sync {
    /// One message was read: `None` when it is valid, else its invalid code.
    fn read(&self, invalid: Option<&'static str>) {
        let _ = invalid;
    }

    /// The input is connected and subscribed (`true`), or lost its connection (`false`).
    fn connected(&self, up: bool) {
        let _ = up;
    }

    /// The bridge: one message was confirmed by the stream.
    fn appended(&self) {}
}

/// [`InputHooks`] that add nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl InputHooks for NoHooks {}

/// A broker input's view of the pipeline: where messages go, and how.
pub struct LiveInput<'a> {
    /// Where valid messages are accepted.
    pub pipeline: &'a Pipeline,
    /// Device twins for `$twin` and enrichments.
    pub twin: Option<&'a (dyn TwinLookup + Sync)>,
    /// Where invalid inputs go (acknowledged once recorded there).
    pub invalid: &'a Mutex<InvalidLog>,
    /// Metrics and readiness; [`NoHooks`] by default.
    pub hooks: &'a dyn InputHooks,
    /// Messages read and not yet settled (accepted or dead-lettered), at most.
    pub max_in_flight: usize,
    /// Stop after this long without a message (`None`: run until the stop future resolves).
    pub idle_timeout: Option<Duration>,
    /// The router's live twins: with them, the MQTT input also takes devices' reported
    /// property patches ([`crate::twin::mqtt_topic`]).
    pub twins: Option<&'a crate::twin::LiveTwins>,
}

impl std::fmt::Debug for LiveInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveInput")
            .field("max_in_flight", &self.max_in_flight)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<'a> LiveInput<'a> {
    /// An input into `pipeline` that dead-letters invalid messages to `invalid`, with no
    /// twins, no hooks, 2000 messages in flight and no idle timeout.
    pub fn new(pipeline: &'a Pipeline, invalid: &'a Mutex<InvalidLog>) -> Self {
        LiveInput {
            pipeline,
            twin: None,
            invalid,
            hooks: &NoHooks,
            max_in_flight: 2000,
            idle_timeout: None,
            twins: None,
        }
    }

    /// Validates, routes and encodes one message for the store, or says why it is invalid.
    pub(crate) fn route(
        &self,
        router: &mut Router<'_>,
        message: &Message,
    ) -> Result<Prepared, (&'static str, String)> {
        // The hub's enqueued time is when the bridge (or this router's MQTT input) stamped it.
        let enqueued = message
            .system_properties
            .get(crate::message::names::ENQUEUED_TIME)
            .flatten()
            .and_then(crate::sink::parse_enqueued_time)
            .unwrap_or_else(SystemTime::now);
        // A reloaded table, if any (SIGHUP, --watch), routes from the next message on.
        let prepared = match self.pipeline.reloaded_table() {
            None => self.pipeline.prepare(
                router,
                message,
                self.twin.map(|t| t as &dyn TwinLookup),
                enqueued,
            ),
            Some(table) => {
                let mut router = table.router();
                self.pipeline.prepare_with(
                    &table,
                    &mut router,
                    message,
                    self.twin.map(|t| t as &dyn TwinLookup),
                    enqueued,
                )
            }
        };
        prepared.map_err(|r| (r.code, r.reason))
    }

    /// Accepts a routed message into the store and calls `settle(true)` once it is durable
    /// (`false`: not accepted, do not acknowledge), or records an invalid one (`describe` says
    /// where it came from and what it held) and settles at once. The device servers' (HTTPS,
    /// AMQP) way in; the broker loops batch their own.
    #[cfg_attr(not(any(feature = "https", feature = "amqp")), allow(dead_code))]
    pub(crate) fn deliver(
        &self,
        routed: Result<Prepared, (&'static str, String)>,
        report: &mut LiveReport,
        describe: impl FnOnce() -> (serde_json::Value, serde_json::Value),
        settle: impl FnOnce(bool) + Send + 'static,
    ) {
        self.hooks
            .read(routed.as_ref().err().map(|(code, _)| *code));
        match routed {
            Ok(prepared) => {
                report.valid += 1;
                self.pipeline.accept_then(vec![prepared], move |result| {
                    if let Err(e) = &result {
                        tracing::warn!("not accepted, left for redelivery: {e}");
                    }
                    settle(result.is_ok());
                });
            }
            Err((code, reason)) => {
                *report.invalid.entry(code).or_default() += 1;
                let (origin, raw) = describe();
                settle(self.reject(origin, code, &reason, raw));
            }
        }
    }

    /// [`Self::deliver`] for a message that is part of a batch: a valid one joins `batch` (to
    /// be accepted with the others in one store commit, [`Self::accept_batch`]) and the answer
    /// is `None`; an invalid one is recorded at once and the answer is whether it may be
    /// acknowledged now. The broker loops' (MQTT, JetStream) way in.
    #[cfg_attr(not(any(feature = "mqtt", feature = "nats")), allow(dead_code))]
    pub(crate) fn sort(
        &self,
        routed: Result<Prepared, (&'static str, String)>,
        report: &mut LiveReport,
        describe: impl FnOnce() -> (serde_json::Value, serde_json::Value),
        batch: &mut Vec<Prepared>,
    ) -> Option<bool> {
        self.hooks
            .read(routed.as_ref().err().map(|(code, _)| *code));
        match routed {
            Ok(prepared) => {
                report.valid += 1;
                batch.push(prepared);
                None
            }
            Err((code, reason)) => {
                *report.invalid.entry(code).or_default() += 1;
                let (origin, raw) = describe();
                Some(self.reject(origin, code, &reason, raw))
            }
        }
    }

    /// Accepts the valid messages of a batch ([`Self::sort`]) into the store together, and
    /// calls `settle(true)` once all are durable (`false`: none was accepted, acknowledge none).
    /// One submission for many messages: the store commits (and syncs) them at once, and the
    /// input acknowledges them together, so neither pays per message.
    #[cfg_attr(not(any(feature = "mqtt", feature = "nats")), allow(dead_code))]
    pub(crate) fn accept_batch(
        &self,
        batch: Vec<Prepared>,
        settle: impl FnOnce(bool) + Send + 'static,
    ) {
        self.pipeline.accept_then(batch, move |result| {
            if let Err(e) = &result {
                tracing::warn!("not accepted, left for redelivery: {e}");
            }
            settle(result.is_ok());
        });
    }

    /// Records an invalid input in the dead letter; `false` when even that failed (then the
    /// input must not be acknowledged).
    pub(crate) fn reject(
        &self,
        origin: serde_json::Value,
        code: &str,
        reason: &str,
        message: serde_json::Value,
    ) -> bool {
        tracing::warn!("invalid message [{code}] from {origin}: {reason}");
        let mut log = self.invalid.lock().unwrap_or_else(|p| p.into_inner());
        match log.write_input(origin, code, reason, message) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("cannot write the dead letter {}: {e}", log.path().display());
                false
            }
        }
    }

    /// The in-flight window, at least one message.
    pub(crate) fn capacity(&self) -> usize {
        self.max_in_flight.max(1)
    }
}

/// What a broker input did, for the summary: every message read ends in exactly one of
/// `valid` or `invalid`; every valid one in `acknowledged`, `left_for_redelivery` or
/// `acknowledgements_failed` (or, when the wait for them timed out, none yet).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LiveReport {
    /// Messages read from the broker.
    pub read: u64,
    /// Valid ones, handed to the store.
    pub valid: u64,
    /// Invalid ones by code (dead-lettered).
    pub invalid: BTreeMap<&'static str, u64>,
    /// Acknowledged to the broker (accepted into the store, or dead-lettered as invalid).
    pub acknowledged: u64,
    /// Not accepted: left unacknowledged (MQTT) or negatively acknowledged (JetStream), so the
    /// broker delivers them again.
    pub left_for_redelivery: u64,
    /// Acknowledgements the broker did not take (it redelivers those messages).
    pub acknowledgements_failed: u64,
    /// JetStream: messages the server had delivered before (to this or another process).
    pub redelivered: u64,
    /// JetStream: how often the pull stream was replaced after a failure.
    pub resumed: u64,
    /// Stopping gave up waiting for messages in flight (they stay unacknowledged).
    pub gave_up_waiting: bool,
}

impl LiveReport {
    /// All invalid messages.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }
}

/// Counters shared with acknowledgement tasks.
#[derive(Default)]
pub(crate) struct AckCounts {
    pub acked: AtomicU64,
    pub redeliver: AtomicU64,
    pub failed: AtomicU64,
}

impl AckCounts {
    pub(crate) fn fill_report(&self, report: &mut LiveReport) {
        report.acknowledged = self.acked.load(Ordering::Relaxed);
        report.left_for_redelivery = self.redeliver.load(Ordering::Relaxed);
        report.acknowledgements_failed = self.failed.load(Ordering::Relaxed);
    }
}

/// Sleeps for `idle`, or forever without one.
#[cfg_attr(not(any(feature = "mqtt", feature = "nats")), allow(dead_code))]
pub(crate) async fn idle_timer(idle: Option<Duration>) {
    match idle {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Waits (up to `limit`) until every permit is back, i.e. nothing is in flight; `false` when
/// it gave up.
#[cfg_attr(not(any(feature = "mqtt", feature = "nats")), allow(dead_code))]
pub(crate) async fn settle_all(
    permits: &Arc<tokio::sync::Semaphore>,
    capacity: usize,
    limit: Duration,
) -> bool {
    let all = u32::try_from(capacity).unwrap_or(u32::MAX);
    tokio::time::timeout(limit, permits.acquire_many(all))
        .await
        .is_ok()
}
