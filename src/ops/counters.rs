//! [`Counters`]: the router's own counts (read, accepted, invalid, per route and endpoint),
//! shared by its threads and kept outside the route table, so that they survive a reload.

use super::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counts updated as messages are read and routed; [`Counters::fill`] copies them into a
/// [`Snapshot`]. Scalars are atomics; the keyed counts (by code, route, endpoint) take a
/// short lock, once per batch with [`Counters::add`].
#[derive(Debug, Default)]
pub struct Counters {
    read: AtomicU64,
    accepted: AtomicU64,
    fallback: AtomicU64,
    orphaned: AtomicU64,
    keyed: Mutex<Keyed>,
}

#[derive(Debug, Default)]
struct Keyed {
    invalid: BTreeMap<String, u64>,
    routes: BTreeMap<String, u64>,
    undefined: BTreeMap<String, u64>,
    endpoints: BTreeMap<String, u64>,
}

/// Counts of one batch (or one message), added to [`Counters`] at once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Messages read.
    pub read: u64,
    /// Messages accepted.
    pub accepted: u64,
    /// Messages routed by the fallback route.
    pub fallback: u64,
    /// Messages that matched nothing.
    pub orphaned: u64,
    /// Invalid messages by code.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Messages per route name.
    pub routes: BTreeMap<String, u64>,
    /// Undefined evaluations per route name.
    pub undefined: BTreeMap<String, u64>,
    /// Copies per endpoint name.
    pub endpoints: BTreeMap<String, u64>,
}

fn merge<K: AsRef<str>>(into: &mut BTreeMap<String, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        match into.get_mut(k.as_ref()) {
            Some(n) => *n += v,
            None => {
                into.insert(k.as_ref().to_string(), *v);
            }
        }
    }
}

impl Counters {
    /// Adds a batch's counts.
    pub fn add(&self, batch: &Batch) {
        self.read.fetch_add(batch.read, Ordering::Relaxed);
        self.accepted.fetch_add(batch.accepted, Ordering::Relaxed);
        self.fallback.fetch_add(batch.fallback, Ordering::Relaxed);
        self.orphaned.fetch_add(batch.orphaned, Ordering::Relaxed);
        let mut k = self.keyed.lock().unwrap_or_else(|p| p.into_inner());
        merge(&mut k.invalid, &batch.invalid);
        merge(&mut k.routes, &batch.routes);
        merge(&mut k.undefined, &batch.undefined);
        merge(&mut k.endpoints, &batch.endpoints);
    }

    /// Copies the counts into `snapshot` (endpoint entries get their `routed` count).
    pub fn fill(&self, snapshot: &mut Snapshot) {
        snapshot.read = self.read.load(Ordering::Relaxed);
        snapshot.accepted = self.accepted.load(Ordering::Relaxed);
        snapshot.fallback = self.fallback.load(Ordering::Relaxed);
        snapshot.orphaned = self.orphaned.load(Ordering::Relaxed);
        let k = self.keyed.lock().unwrap_or_else(|p| p.into_inner());
        snapshot.invalid.clone_from(&k.invalid);
        snapshot.routes.clone_from(&k.routes);
        snapshot.undefined.clone_from(&k.undefined);
        for (name, n) in &k.endpoints {
            snapshot.endpoints.entry(name.clone()).or_default().routed = *n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_add_up() {
        let c = Counters::default();
        let mut b = Batch {
            read: 3,
            accepted: 2,
            orphaned: 1,
            ..Batch::default()
        };
        b.invalid.insert("E0301", 1);
        b.routes.insert("r".into(), 2);
        b.endpoints.insert("a".into(), 2);
        c.add(&b);
        c.add(&b);
        let mut s = Snapshot::default();
        c.fill(&mut s);
        assert_eq!((s.read, s.accepted, s.orphaned, s.fallback), (6, 4, 2, 0));
        assert_eq!(s.invalid["E0301"], 2);
        assert_eq!(s.routes["r"], 4);
        assert_eq!(s.endpoints["a"].routed, 4);
    }
}
