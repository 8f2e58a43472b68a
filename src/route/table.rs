//! The route table: every condition of a configuration compiled once, evaluated per message
//! to the set of endpoints it goes to.

use super::config::{EndpointKind, RoutingConfig, StorageSettings};
use super::diagnostic::{ConfigDiagnostic, DiagnosticLog};
use super::enrich::Enrichment;
use super::router::route_with_plan;
use super::validate;
use crate::check::{Dialect, Options};
use crate::eval::{BodyPlan, BodyScratch, Bool3, EvalContext, TwinLookup};
use crate::message::{Message, Source};
use crate::Condition;
use smallvec::SmallVec;
use std::cell::RefCell;

/// Index of an endpoint in [`RouteTable::endpoints`]. The built-in `events` endpoint is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u16);

/// An endpoint a route can name.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Its name (`events` for the built-in one).
    pub name: String,
    /// What kind of endpoint it is in IoT Hub.
    pub kind: EndpointKind,
    /// Storage settings, for storage containers.
    pub storage: Option<StorageSettings>,
}

/// A compiled route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Its name.
    pub name: String,
    /// Which messages it sees.
    pub source: Source,
    /// Its condition; `None` is `true` (no condition given).
    pub condition: Option<Condition>,
    /// Where it sends.
    pub endpoint: EndpointId,
    /// Disabled routes are skipped.
    pub enabled: bool,
}

/// The endpoints one message goes to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// Each endpoint at most once, in the order the first route naming it matched.
    pub endpoints: SmallVec<[EndpointId; 4]>,
    /// Whether they came from the fallback route (no route matched).
    pub fallback: bool,
}

/// All routes of a configuration, compiled. `Send + Sync`: share one table across threads.
#[derive(Clone, Debug)]
pub struct RouteTable {
    pub(super) routes: Vec<Route>,
    pub(super) endpoints: Vec<Endpoint>,
    pub(super) fallback: Option<Route>,
    pub(super) enrichments: Vec<Enrichment>,
    pub(super) hub_name: String,
    /// Every `$body` path and property name of the routes (then the fallback), interned
    /// once when the table is built: program `i` of the plan is route `i`, and the fallback
    /// is program `routes.len()`.
    pub(super) plan: BodyPlan,
}

/// The largest buffer [`RouteTable::route`] keeps for its thread between messages: IoT Hub's
/// messages are at most 256 KB, so this holds any of them, decoded from UTF-16 included.
const KEPT_SCRATCH: usize = 1 << 20;

/// The result of building a table: the table if there were no errors, and the diagnostics.
#[derive(Debug)]
pub struct Build {
    /// The table, unless the configuration has errors.
    pub table: Option<RouteTable>,
    /// Errors and warnings, in document order: the first
    /// [`MAX_DIAGNOSTICS`](super::validate::MAX_DIAGNOSTICS); the rest are counted in
    /// `omitted`, so a configuration of any size keeps bounded memory.
    pub diagnostics: Vec<ConfigDiagnostic>,
    /// All errors, kept or omitted.
    pub errors: usize,
    /// All warnings, kept or omitted.
    pub warnings: usize,
    /// Diagnostics counted but not kept in `diagnostics`.
    pub omitted: usize,
}

/// The options a route's condition compiles with: IoT Hub's (body queries, `$twin`,
/// `twin_change_includes` for twin-change routes).
pub fn condition_options(source: Source) -> Options {
    condition_options_in(source, Dialect::Hub)
}

/// [`condition_options`] in a dialect: in the Edge dialect, the engine with body queries and
/// `twin_change_includes` on (`RouteCompilerFlags.All`), as a routing configuration needs.
pub fn condition_options_in(source: Source, dialect: Dialect) -> Options {
    Options {
        twin_change_source: source == Source::TwinChangeEvents,
        dialect,
        ..Options::iot_hub()
    }
}

impl RouteTable {
    /// Validates and compiles a configuration. `hub_name` is used for `$iothubname` when the
    /// document does not name the hub.
    pub fn build(config: &RoutingConfig, hub_name: &str) -> Build {
        validate::build(config, hub_name, Dialect::Hub)
    }

    /// [`RouteTable::build`] with conditions in a dialect.
    pub fn build_in(config: &RoutingConfig, hub_name: &str, dialect: Dialect) -> Build {
        validate::build(config, hub_name, dialect)
    }

    /// Parses, validates and compiles a configuration document (see [`super::config::read`]).
    pub fn from_json(text: &str, hub_name: &str) -> Build {
        Self::from_json_in(text, hub_name, Dialect::Hub)
    }

    /// [`RouteTable::from_json`] with conditions in a dialect.
    pub fn from_json_in(text: &str, hub_name: &str, dialect: Dialect) -> Build {
        let mut log = DiagnosticLog::new(validate::MAX_DIAGNOSTICS);
        let config = super::config::read_into(text, &mut log);
        let build = Self::build_in(&config, hub_name, dialect);
        let kept_errors = build.diagnostics.iter().filter(|d| d.is_error()).count();
        let kept_warnings = build.diagnostics.len() - kept_errors;
        for d in build.diagnostics {
            log.push(d);
        }
        // What the build counted but did not keep.
        log.count_omitted(build.errors - kept_errors, build.warnings - kept_warnings);
        validate::into_build(log, build.table)
    }

    /// The endpoints, built-in `events` first.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// An endpoint by id.
    pub fn endpoint(&self, id: EndpointId) -> &Endpoint {
        &self.endpoints[id.0 as usize]
    }

    /// An endpoint's id by name (case-sensitive, as IoT Hub names are).
    pub fn endpoint_id(&self, name: &str) -> Option<EndpointId> {
        self.endpoints
            .iter()
            .position(|e| e.name == name)
            .map(|i| EndpointId(i as u16))
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The fallback route, if configured.
    pub fn fallback(&self) -> Option<&Route> {
        self.fallback.as_ref()
    }

    /// The hub name used for `$iothubname`.
    pub fn hub_name(&self) -> &str {
        &self.hub_name
    }

    /// Where a message from `source` goes.
    pub fn route(&self, message: &Message, source: Source) -> Routing {
        self.route_planned(message, source, None)
    }

    /// Where a message goes, reading `$twin` from `twin`.
    pub fn route_with_twin(
        &self,
        message: &Message,
        source: Source,
        twin: &dyn TwinLookup,
    ) -> Routing {
        self.route_planned(message, source, Some(twin))
    }

    /// Routes with the table's plan, as a [`super::Router`] does, in this thread's scratch
    /// buffers: the convenient call costs what a router's does, less the result's
    /// allocation. (A twin lookup that routes another message while this one is routed
    /// gets fresh buffers.)
    fn route_planned(
        &self,
        message: &Message,
        source: Source,
        twin: Option<&dyn TwinLookup>,
    ) -> Routing {
        thread_local! {
            static SCRATCH: RefCell<BodyScratch> = RefCell::default();
        }
        let mut out = Routing::default();
        let mut route = |scratch: &mut BodyScratch| {
            route_with_plan(self, scratch, message, source, twin, &mut out)
        };
        let done = SCRATCH
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => {
                    route(&mut scratch);
                    scratch.trim(KEPT_SCRATCH);
                    true
                }
                Err(_) => false,
            })
            .unwrap_or(false);
        if !done {
            route(&mut BodyScratch::default());
        }
        out
    }

    /// Where the context's message goes, evaluated in `ctx` alone: without the table's plan,
    /// so a body a route reads is parsed whole (a [`JsonDoc`](crate::body::JsonDoc)), once.
    /// This is the reference the planned routing ([`RouteTable::route`],
    /// [`super::Router`]) is tested against.
    pub fn route_in(&self, ctx: &EvalContext<'_>, source: Source) -> Routing {
        let mut routing = Routing::default();
        super::router::route_ctx(self, ctx, source, &mut routing);
        routing
    }

    /// Routes a batch of messages in parallel (rayon), each with its source, with the table's
    /// plan; each rayon job reuses one scratch buffer set.
    #[cfg(feature = "parallel")]
    pub fn route_batch(&self, messages: &[(Message, Source)]) -> Vec<Routing> {
        use rayon::prelude::*;
        messages
            .par_iter()
            .map_init(BodyScratch::default, |scratch, (m, s)| {
                let mut out = Routing::default();
                route_with_plan(self, scratch, m, *s, None, &mut out);
                out
            })
            .collect()
    }
}

/// Whether a route's condition is true (a missing condition is).
pub(super) fn route_matches(route: &Route, ctx: &EvalContext<'_>) -> bool {
    match &route.condition {
        Some(c) => c.eval_in(ctx) == Bool3::True,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn table_is_send_and_sync() {
        assert_send_sync::<RouteTable>();
    }
}
