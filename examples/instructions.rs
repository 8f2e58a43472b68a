//! One pass of routing over `../shared/bench`'s messages, for counting instructions with
//! callgrind: `scripts/instructions.sh` runs it. Timings on a shared machine move by tens of
//! percent from one run to the next; instruction counts move by well under one, so they show
//! what a change to the hot path did.
//!
//! `cargo run --release --example instructions -- WORKLOAD [PASSES]` routes every message once
//! (PASSES times, for a sampling profiler such as `perf record`) with WORKLOAD one of
//! `routes-10`, `routes-100`, `properties-only` (the criterion bench's tables), or validates
//! every body with `serde_json`'s `IgnoredAny` (`floor`), and prints the number
//! of messages. Only the functions named `measured_*` are meant to be counted.
//!
//! `cargo run --release --example instructions -- --time [ROUNDS]` times instead: each round
//! times one pass of every workload in turn, and the best pass of each is printed in ns per
//! message with its ratio to the floor's. Taking each workload's best of interleaved passes
//! keeps a noisy host's slow spells (which criterion's means take in) out of the ratios.
//! `--time ROUNDS FIRST` times on the first FIRST messages only: 50 of them fit the L2 cache,
//! where the 1,000 do not, which shows what the benchmark's cache misses cost each workload.

#[path = "../benches/workload/mod.rs"]
mod workload;

use hubroute::message::{Message, Source};
use hubroute::route::{Router, Routing};
use std::hint::black_box;
use std::time::Instant;

/// The workloads, in the order they are timed.
const WORKLOADS: [&str; 4] = ["routes-10", "routes-100", "properties-only", "floor"];

/// Routes every message once: what is counted for a route table.
#[inline(never)]
fn measured_route(router: &mut Router<'_>, messages: &[(Message, Source)]) -> usize {
    route_all(router, messages)
}

/// Routes every message once; the number of endpoints chosen.
fn route_all(router: &mut Router<'_>, messages: &[(Message, Source)]) -> usize {
    let mut out = Routing::default();
    let mut matched = 0;
    for (m, s) in messages {
        router.route_into(m, *s, &mut out);
        matched += out.endpoints.len();
    }
    matched
}

/// Validates every decoded body: what is counted for the floor.
#[inline(never)]
fn measured_floor(bodies: &[Option<String>]) -> usize {
    bodies
        .iter()
        .flatten()
        .filter(|b| serde_json::from_str::<serde::de::IgnoredAny>(black_box(b)).is_ok())
        .count()
}

/// The routing configuration of a table workload, or why there is none.
fn config(workload: &str) -> Result<String, String> {
    match workload {
        "properties-only" => Ok(workload::properties_only()),
        "routes-10" | "routes-100" => Ok(workload::read(&format!("{workload}.json"))),
        other => Err(format!(
            "unknown workload '{other}': routes-10, routes-100, properties-only or floor"
        )),
    }
}

/// Interleaved best-of timings of every workload over `rounds` rounds, on the first `first`
/// messages (all of them if `None`).
fn time(rounds: usize, first: Option<usize>) {
    let mut messages = workload::messages();
    messages.truncate(first.unwrap_or(messages.len()));
    let bodies = workload::bodies(&messages);
    let tables: Vec<_> = WORKLOADS[..3]
        .iter()
        .map(|w| workload::table(&config(w).expect("a table workload")))
        .collect();
    let mut routers: Vec<Router<'_>> = tables.iter().map(|t| t.router()).collect();
    let mut best = [f64::MAX; WORKLOADS.len()];
    for _ in 0..rounds {
        for (i, b) in best.iter_mut().enumerate() {
            let start = Instant::now();
            match routers.get_mut(i) {
                Some(router) => black_box(route_all(router, &messages)),
                None => black_box(measured_floor(&bodies)),
            };
            *b = b.min(start.elapsed().as_secs_f64() * 1e9 / messages.len() as f64);
        }
    }
    let floor = best[WORKLOADS.len() - 1];
    for (w, b) in WORKLOADS.iter().zip(best) {
        println!("{w:>16}: {b:7.0} ns/message, {:.2}x the floor", b / floor);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--time") {
        let rounds = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(30);
        return time(rounds, args.get(2).and_then(|n| n.parse().ok()));
    }
    let workload = args.first().cloned().unwrap_or_else(|| "routes-10".into());
    let passes: usize = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(1);
    let messages = workload::messages();
    if workload == "floor" {
        let bodies = workload::bodies(&messages);
        for _ in 0..passes {
            black_box(measured_floor(&bodies));
        }
        println!("{}", messages.len());
        return;
    }
    let config = config(&workload).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let table = workload::table(&config);
    let mut router = table.router();
    // A first pass, not counted, grows the scratch buffers, as a long-running router's are.
    black_box(route_all(&mut router, &messages));
    for _ in 0..passes {
        black_box(measured_route(&mut router, &messages));
    }
    println!("{}", messages.len());
}
