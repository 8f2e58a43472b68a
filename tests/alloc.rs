//! Steady-state routing allocates nothing (DESIGN.md, "Performance design"), and the
//! allocation-free router, `RouteTable::route` and batches give exactly the answers of the
//! unplanned reference path.
//!
//! A counting global allocator wraps the system allocator; only allocations made on the
//! measuring thread while measuring are counted, so the test harness's other threads do not
//! disturb the count.

use hubroute::eval::EvalContext;
use hubroute::message::{Message, Source};
use hubroute::route::{RouteTable, Routing};
use hubroute::Bool3;

/// The benchmarks' workload: `../shared/bench`'s messages and tables.
#[path = "../benches/workload/mod.rs"]
mod workload;

mod counting;
use counting::counted;

use workload::messages;

/// A table of `../shared/bench`.
fn table(name: &str) -> RouteTable {
    workload::table(&workload::read(name))
}

/// Allocations (count, bytes) per message over one pass, after a warm-up pass.
fn allocations(table: &RouteTable, messages: &[(Message, Source)]) -> (f64, f64) {
    let mut router = table.router();
    let mut out = Routing::default();
    for (m, s) in messages {
        router.route_into(m, *s, &mut out);
    }
    let mut matched = 0usize;
    let (count, bytes) = counted(|| {
        for (m, s) in messages {
            router.route_into(m, *s, &mut out);
            matched += out.endpoints.len();
        }
    });
    assert!(matched > 0);
    let n = messages.len() as f64;
    (count as f64 / n, bytes as f64 / n)
}

#[test]
fn routing_allocates_nothing_per_message() {
    let messages = messages();
    for name in ["routes-10.json", "routes-100.json"] {
        let (count, bytes) = allocations(&table(name), &messages);
        eprintln!("{name}: {count} allocations/message, {bytes} bytes/message");
        assert_eq!(count, 0.0, "{name}: {bytes} bytes/message");
    }
}

/// `RouteTable::route` keeps its buffers per thread: after a warm-up it allocates only a
/// result that does not fit its inline space (more than four endpoints).
#[test]
fn table_route_allocates_only_results_that_spill() {
    let messages = messages();
    for name in ["routes-10.json", "routes-100.json"] {
        let table = table(name);
        for (m, s) in &messages {
            table.route(m, *s);
        }
        let mut spilled = 0;
        let mut matched = 0;
        let (count, _) = counted(|| {
            for (m, s) in &messages {
                let routing = table.route(m, *s);
                spilled += usize::from(routing.endpoints.spilled());
                matched += routing.endpoints.len();
            }
        });
        assert!(matched > 0);
        assert_eq!(count, spilled, "{name}");
    }
}

#[test]
fn router_table_route_and_batch_agree_with_the_reference() {
    let messages = messages();
    for name in ["routes-10.json", "routes-100.json"] {
        let table = table(name);
        let mut router = table.router();
        let batch = table.route_batch(&messages);
        for (i, (m, s)) in messages.iter().enumerate() {
            // The reference: no plan, the body parsed whole.
            let reference = table.route_in(&EvalContext::new(m), *s);
            assert_eq!(router.route(m, *s), reference, "{name} message {i}");
            assert_eq!(table.route(m, *s), reference, "{name} message {i} (table)");
            assert_eq!(batch[i], reference, "{name} message {i} (batch)");
        }
    }
}

/// The per-route match counts `../shared/bench/README.md` lists for routes-10.
#[test]
fn routes_10_match_counts() {
    let messages = messages();
    let table = table("routes-10.json");
    let expected = [28, 50, 42, 37, 35, 90, 472, 3, 272, 34];
    for (route, want) in table.routes().iter().zip(expected) {
        let cond = route.condition.as_ref().unwrap();
        let got = messages
            .iter()
            .filter(|(m, _)| cond.eval(m) == Bool3::True)
            .count();
        assert_eq!(got, want, "{}", route.name);
    }
}
