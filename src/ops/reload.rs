//! [`LiveTable`]: the route table a running router uses, replaced in one atomic step.
//!
//! A router takes the current table once per message (or per batch) and routes and fans that
//! message out with it; a reload builds and validates the new table completely off to the
//! side and then swaps a pointer (`arc-swap`: a lock-free read, so routing never waits for a
//! reload). So a message in flight finishes on the table it started with, the next one uses
//! the new table, and a configuration with any error never replaces a working one.

use super::codes;
use super::snapshot::TableSnapshot;
use crate::route::{ConfigDiagnostic, RouteTable};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// A route table with the generation it belongs to.
#[derive(Debug)]
pub struct Versioned {
    /// 1 for the table the router started with, +1 per successful reload.
    pub generation: u64,
    /// The table.
    pub table: RouteTable,
    /// When it was loaded (seconds since the Unix epoch).
    pub loaded_at: f64,
}

/// The current route table of a running router; see the module documentation.
#[derive(Debug)]
pub struct LiveTable {
    current: ArcSwap<Versioned>,
    reloads: AtomicU64,
    failed: AtomicU64,
}

/// What a successful reload changed.
#[derive(Debug)]
pub struct Reloaded {
    /// The new table's generation.
    pub generation: u64,
    /// The new configuration's warnings (it had no errors).
    pub warnings: Vec<ConfigDiagnostic>,
    /// Endpoints some enabled route can reach now and could not before.
    pub endpoints_added: Vec<String>,
    /// Endpoints no enabled route can reach any more (their backlog still drains).
    pub endpoints_removed: Vec<String>,
    /// Routes added, removed or changed (by name).
    pub routes_changed: Vec<String>,
}

/// Why a reload was refused; the old table keeps routing.
#[derive(Debug)]
pub struct ReloadError {
    /// [`codes::RELOAD_INVALID`], [`codes::RELOAD_UNBOUND`] or [`codes::RELOAD_UNREADABLE`].
    pub code: &'static str,
    /// Every diagnostic of the configuration (errors and warnings).
    pub diagnostics: Vec<ConfigDiagnostic>,
    /// Endpoints the new configuration routes to that have no sink.
    pub unbound: Vec<String>,
    /// A one-line summary.
    pub message: String,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Names of the endpoints some enabled route (or the enabled fallback) of `table` can send to,
/// sorted.
pub fn reachable_endpoints(table: &RouteTable) -> Vec<String> {
    let mut names: Vec<String> = table
        .routes()
        .iter()
        .chain(table.fallback())
        .filter(|r| r.enabled)
        .map(|r| table.endpoint(r.endpoint).name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A route's identity for "did it change": everything that decides where it sends.
fn route_key(table: &RouteTable, r: &crate::route::Route) -> String {
    format!(
        "{:?}|{}|{}|{}",
        r.source,
        r.condition.as_ref().map(|c| c.source()).unwrap_or("true"),
        table.endpoint(r.endpoint).name,
        r.enabled
    )
}

impl LiveTable {
    /// Starts with `table` as generation 1.
    pub fn new(table: RouteTable) -> Self {
        LiveTable {
            current: ArcSwap::from_pointee(Versioned {
                generation: 1,
                table,
                loaded_at: now(),
            }),
            reloads: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// The current table; route and fan out one message (or batch) with the same one.
    pub fn load(&self) -> Arc<Versioned> {
        self.current.load_full()
    }

    /// Builds the configuration `text` completely (every route compiled, every rule IoT Hub
    /// applies) and, if it has no error and every endpoint it can route to `is_bound` to a
    /// sink, makes it the current table. Otherwise the current table stays and the error
    /// holds every diagnostic.
    pub fn reload(
        &self,
        text: &str,
        hub_name: &str,
        is_bound: &dyn Fn(&str) -> bool,
    ) -> Result<Reloaded, ReloadError> {
        let build = RouteTable::from_json(text, hub_name);
        let table = match build.table {
            Some(t) => t,
            None => {
                let errors = build.diagnostics.iter().filter(|d| d.is_error()).count();
                return Err(self.refuse(ReloadError {
                    code: codes::RELOAD_INVALID,
                    message: format!(
                        "the new routing configuration has {errors} error{}; the current routes stay in use",
                        if errors == 1 { "" } else { "s" }
                    ),
                    diagnostics: build.diagnostics,
                    unbound: Vec::new(),
                }));
            }
        };
        let now_reachable = reachable_endpoints(&table);
        let unbound: Vec<String> = now_reachable
            .iter()
            .filter(|n| !is_bound(n))
            .cloned()
            .collect();
        if !unbound.is_empty() {
            return Err(self.refuse(ReloadError {
                code: codes::RELOAD_UNBOUND,
                message: format!(
                    "the new routing configuration routes to endpoint{} with no sink: {} (bind with --sink NAME=URL or the config file's [sinks]); the current routes stay in use",
                    if unbound.len() == 1 { "" } else { "s" },
                    unbound.join(", ")
                ),
                diagnostics: build.diagnostics,
                unbound,
            }));
        }
        Ok(self.swap(table, build.diagnostics))
    }

    /// Makes `table` (already validated) the current table.
    pub fn swap(&self, table: RouteTable, warnings: Vec<ConfigDiagnostic>) -> Reloaded {
        let old = self.load();
        let before = reachable_endpoints(&old.table);
        let after = reachable_endpoints(&table);
        let keys = |t: &RouteTable| -> std::collections::BTreeMap<String, String> {
            t.routes()
                .iter()
                .chain(t.fallback())
                .map(|r| (r.name.clone(), route_key(t, r)))
                .collect()
        };
        let (old_keys, new_keys) = (keys(&old.table), keys(&table));
        let mut routes_changed: Vec<String> = old_keys
            .iter()
            .filter(|(name, key)| new_keys.get(*name) != Some(key))
            .map(|(name, _)| name.clone())
            .chain(
                new_keys
                    .keys()
                    .filter(|name| !old_keys.contains_key(*name))
                    .cloned(),
            )
            .collect();
        routes_changed.sort();
        routes_changed.dedup();
        // One writer at a time: concurrent reloads each take the generation after the one they
        // replace.
        let mut generation = 0;
        self.current.rcu(|current| {
            generation = current.generation + 1;
            Versioned {
                generation,
                table: table.clone(),
                loaded_at: now(),
            }
        });
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Reloaded {
            generation,
            warnings,
            endpoints_added: after
                .iter()
                .filter(|n| !before.contains(n))
                .cloned()
                .collect(),
            endpoints_removed: before
                .iter()
                .filter(|n| !after.contains(n))
                .cloned()
                .collect(),
            routes_changed,
        }
    }

    /// Counts a reload refused before it reached [`LiveTable::reload`] (an unreadable file).
    pub fn refuse(&self, error: ReloadError) -> ReloadError {
        self.failed.fetch_add(1, Ordering::Relaxed);
        error
    }

    /// The table's part of a [`super::Snapshot`].
    pub fn snapshot(&self) -> TableSnapshot {
        let current = self.current.load();
        TableSnapshot {
            generation: current.generation,
            reloads: self.reloads.load(Ordering::Relaxed),
            failed_reloads: self.failed.load(Ordering::Relaxed),
            loaded_at: current.loaded_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, Source};

    fn config(condition: &str, endpoint: &str) -> String {
        format!(
            r#"{{"endpoints": {{"storageContainers": [], "eventHubs": [{{"name": "a"}}, {{"name": "b"}}]}},
               "routes": [{{"name": "r", "source": "DeviceMessages", "condition": "{condition}",
                            "endpointNames": ["{endpoint}"], "isEnabled": true}}]}}"#
        )
    }

    fn table(text: &str) -> RouteTable {
        RouteTable::from_json(text, "hub").table.unwrap()
    }

    fn endpoints_of(live: &LiveTable, msg: &Message) -> Vec<String> {
        let current = live.load();
        let routing = current.table.route(msg, Source::DeviceMessages);
        routing
            .endpoints
            .iter()
            .map(|&id| current.table.endpoint(id).name.clone())
            .collect()
    }

    #[test]
    fn a_valid_configuration_replaces_the_table_and_says_what_changed() {
        let live = LiveTable::new(table(&config("true", "a")));
        let msg = Message::from_json_str("{}").unwrap();
        assert_eq!(endpoints_of(&live, &msg), ["a"]);
        let held = live.load();
        let done = live.reload(&config("true", "b"), "hub", &|_| true).unwrap();
        assert_eq!(done.generation, 2);
        assert_eq!(done.endpoints_added, ["b"]);
        assert_eq!(done.endpoints_removed, ["a"]);
        assert_eq!(done.routes_changed, ["r"]);
        assert_eq!(endpoints_of(&live, &msg), ["b"]);
        // A message that took the old table before the swap still routes with it.
        let routing = held.table.route(&msg, Source::DeviceMessages);
        assert_eq!(held.table.endpoint(routing.endpoints[0]).name, "a");
        let s = live.snapshot();
        assert_eq!((s.generation, s.reloads, s.failed_reloads), (2, 1, 0));
    }

    #[test]
    fn a_configuration_with_an_error_keeps_the_old_table_and_reports_every_diagnostic() {
        let live = LiveTable::new(table(&config("true", "a")));
        let err = live
            .reload(&config("a = (b", "b"), "hub", &|_| true)
            .unwrap_err();
        assert_eq!(err.code, codes::RELOAD_INVALID);
        assert!(err.diagnostics.iter().any(|d| d.is_error()), "{err:?}");
        let err = live.reload("{not json", "hub", &|_| true).unwrap_err();
        assert_eq!(err.code, codes::RELOAD_INVALID);
        let msg = Message::from_json_str("{}").unwrap();
        assert_eq!(endpoints_of(&live, &msg), ["a"]);
        let s = live.snapshot();
        assert_eq!((s.generation, s.reloads, s.failed_reloads), (1, 0, 2));
    }

    #[test]
    fn an_endpoint_without_a_sink_is_refused() {
        let live = LiveTable::new(table(&config("true", "a")));
        let err = live
            .reload(&config("true", "b"), "hub", &|name| name == "a")
            .unwrap_err();
        assert_eq!(err.code, codes::RELOAD_UNBOUND);
        assert_eq!(err.unbound, ["b"]);
        assert!(err.to_string().contains("E0802"), "{err}");
        assert_eq!(live.load().generation, 1);
    }
}
