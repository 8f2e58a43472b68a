//! What `run` adds to its message loop to be operated: the live route table, the counters
//! behind `/metrics`, the metrics server, and undefined-route logs.

use crate::ops_args::ObserveArgs;
use hubroute::eval::TwinLookup;
use hubroute::message::{Message, Source};
use hubroute::ops::{
    observe, redact, Batch, Counters, LiveTable, OpsServer, RateLimit, Readiness, Snapshot,
    SnapshotSource,
};
use hubroute::route::{RouteTable, Routing};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether the process's input is connected: one input per process, and its connection is
/// seen deep in the broker loops, so a process-wide flag.
static INPUT_CONNECTED: AtomicBool = AtomicBool::new(false);

/// Marks the input connected (subscribed, pulling, or a file opened) or not.
pub fn set_input_connected(connected: bool) {
    INPUT_CONNECTED.store(connected, Ordering::Relaxed);
}

/// The operated state of one router process.
pub struct Observed {
    /// The route table, swapped by reloads.
    pub live: Arc<LiveTable>,
    /// The router's counts, which survive reloads.
    pub counters: Arc<Counters>,
    bound: Vec<String>,
    /// Per-route counts cost a little per message; only kept when someone can see them.
    per_route: AtomicBool,
    /// The durable pipeline's numbers (deliveries, health, store), and its store limit.
    pipeline: Option<(hubroute::pipeline::StatsHandle, u64)>,
}

impl Observed {
    /// Starts from `table`, with sinks bound for `bound`.
    pub fn new(table: RouteTable, bound: &BTreeSet<String>) -> Self {
        Observed {
            live: Arc::new(LiveTable::new(table)),
            counters: Arc::new(Counters::default()),
            bound: bound.iter().cloned().collect(),
            per_route: AtomicBool::new(false),
            pipeline: None,
        }
    }

    /// Reports the pipeline's numbers too.
    pub fn with_pipeline(
        mut self,
        pipeline: &hubroute::pipeline::Pipeline,
        max_store_bytes: u64,
    ) -> Self {
        self.pipeline = Some((pipeline.stats_handle(), max_store_bytes));
        self
    }

    /// Marks the input connected (ready) or gone.
    pub fn set_input_connected(&self, connected: bool) {
        set_input_connected(connected);
    }

    /// A snapshot source for the metrics server.
    fn source(&self) -> SnapshotSource {
        let live = Arc::clone(&self.live);
        let counters = Arc::clone(&self.counters);
        let bound = self.bound.clone();
        let pipeline = self.pipeline.clone();
        Arc::new(move || {
            let mut s = Snapshot::default();
            for name in &bound {
                s.endpoints.entry(name.clone()).or_default();
            }
            counters.fill(&mut s);
            if let Some((handle, max_store_bytes)) = &pipeline {
                s.fill_from_pipeline(&handle.stats(), *max_store_bytes);
            }
            s.table = live.snapshot();
            s.readiness = Readiness {
                inputs_connected: INPUT_CONNECTED.load(Ordering::Relaxed),
                store_open: true,
            };
            s
        })
    }

    /// Starts the metrics server if `--metrics` asks for one (and marks the input as
    /// `connected`).
    pub fn serve(&self, args: &ObserveArgs, connected: bool) -> Result<Option<OpsServer>, String> {
        self.set_input_connected(connected);
        let Some(addr) = &args.metrics else {
            return Ok(None);
        };
        let server = OpsServer::start(addr, self.source()).map_err(|e| {
            format!(
                "--metrics {}: [{}] cannot listen: {e}",
                redact::url(addr),
                hubroute::ops::codes::METRICS_BIND
            )
        })?;
        self.per_route.store(true, Ordering::Relaxed);
        let local = server.local_addr();
        tracing::info!(addr = %local, "metrics at http://{local}/metrics, health at http://{local}/healthz");
        Ok(Some(server))
    }

    /// Counts one routed message into `batch`, and with `undefined` (a rate limit and the
    /// message's line) logs the routes that evaluated to undefined.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &self,
        batch: &mut Batch,
        table: &RouteTable,
        message: &Message,
        source: Source,
        twin: Option<&dyn TwinLookup>,
        routing: &Routing,
        undefined: Option<&RateLimit>,
    ) {
        batch.accepted += 1;
        if routing.endpoints.is_empty() {
            batch.orphaned += 1;
        }
        if routing.fallback {
            batch.fallback += 1;
        }
        for &id in &routing.endpoints {
            let name = &table.endpoint(id).name;
            match batch.endpoints.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    batch.endpoints.insert(name.clone(), 1);
                }
            }
        }
        if self.per_route.load(Ordering::Relaxed) {
            for name in observe::matched_routes(table, message, source, twin, routing) {
                *batch.routes.entry(name.to_string()).or_default() += 1;
            }
        }
        if let Some(limit) = undefined {
            for index in observe::undefined_routes(table, message, source, twin) {
                let route = &table.routes()[index];
                *batch.undefined.entry(route.name.clone()).or_default() += 1;
                if let Some(suppressed) = limit.allow() {
                    let reason = observe::undefined_reason(table, message, source, twin, index);
                    let sys = |n: &str| message.system_properties.get(n).flatten().unwrap_or("");
                    tracing::info!(
                        operation = "undefinedRouteEvaluation",
                        route = %route.name,
                        condition = route.condition.as_ref().map(|c| c.source()).unwrap_or("true"),
                        device_id = sys("connectionDeviceId"),
                        message_id = sys("messageId"),
                        suppressed_since_last = suppressed,
                        "route '{}' evaluated to undefined: {reason}",
                        route.name
                    );
                }
            }
        }
    }
}

/// The bridge's metrics server: its counts (read, accepted = appended to the stream, invalid by
/// code) and readiness (subscribed to the devices' broker; the stream writer is open).
#[cfg_attr(not(all(feature = "mqtt", feature = "nats")), allow(dead_code))]
pub fn serve_counters(
    args: &ObserveArgs,
    counters: Arc<Counters>,
) -> Result<Option<OpsServer>, String> {
    let Some(addr) = &args.metrics else {
        return Ok(None);
    };
    let source: SnapshotSource = Arc::new(move || {
        let mut s = Snapshot::default();
        counters.fill(&mut s);
        s.readiness = Readiness {
            inputs_connected: INPUT_CONNECTED.load(Ordering::Relaxed),
            store_open: true,
        };
        s
    });
    let server = OpsServer::start(addr, source).map_err(|e| {
        format!(
            "--metrics {}: [{}] cannot listen: {e}",
            redact::url(addr),
            hubroute::ops::codes::METRICS_BIND
        )
    })?;
    let local = server.local_addr();
    tracing::info!(addr = %local, "metrics at http://{local}/metrics, health at http://{local}/healthz");
    Ok(Some(server))
}
