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

/// The operated state of one router process.
pub struct Observed {
    /// The route table, swapped by reloads.
    pub live: Arc<LiveTable>,
    /// The router's counts, which survive reloads.
    pub counters: Arc<Counters>,
    input_connected: Arc<AtomicBool>,
    bound: Vec<String>,
    /// Per-route counts cost a little per message; only kept when someone can see them.
    per_route: AtomicBool,
}

impl Observed {
    /// Starts from `table`, with sinks bound for `bound`.
    pub fn new(table: RouteTable, bound: &BTreeSet<String>) -> Self {
        Observed {
            live: Arc::new(LiveTable::new(table)),
            counters: Arc::new(Counters::default()),
            input_connected: Arc::new(AtomicBool::new(false)),
            bound: bound.iter().cloned().collect(),
            per_route: AtomicBool::new(false),
        }
    }

    /// Marks the input connected (ready) or gone.
    pub fn set_input_connected(&self, connected: bool) {
        self.input_connected.store(connected, Ordering::Relaxed);
    }

    /// A snapshot source for the metrics server.
    fn source(&self) -> SnapshotSource {
        let live = Arc::clone(&self.live);
        let counters = Arc::clone(&self.counters);
        let connected = Arc::clone(&self.input_connected);
        let bound = self.bound.clone();
        Arc::new(move || {
            let mut s = Snapshot::default();
            for name in &bound {
                s.endpoints.entry(name.clone()).or_default();
            }
            counters.fill(&mut s);
            s.table = live.snapshot();
            s.readiness = Readiness {
                inputs_connected: connected.load(Ordering::Relaxed),
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
        undefined: Option<(&RateLimit, usize)>,
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
        if let Some((limit, line)) = undefined {
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
                        line,
                        suppressed_since_last = suppressed,
                        "route '{}' evaluated to undefined: {reason}",
                        route.name
                    );
                }
            }
        }
    }
}

/// With a broker input the route table is fixed for the run: SIGHUP is answered with a log
/// line saying so, rather than the default of ending the process.
pub fn refuse_reload_for_broker_inputs() -> Result<signal_hook::iterator::Handle, String> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("hubroute-sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                tracing::error!(
                    code = hubroute::ops::codes::RELOAD_UNREADABLE,
                    "reload refused: with a broker input the routes are fixed for the run in this build; restart to change them"
                );
            }
        })
        .map_err(|e| format!("cannot start the SIGHUP thread: {e}"))?;
    Ok(handle)
}
