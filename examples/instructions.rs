//! One pass of routing over `../shared/bench`'s messages, for counting instructions with
//! callgrind: `scripts/instructions.sh` runs it. Timings on a shared machine move by tens of
//! percent from one run to the next; instruction counts move by well under one, so they show
//! what a change to the hot path did.
//!
//! `cargo run --release --example instructions -- WORKLOAD` routes every message once with
//! WORKLOAD one of `routes-10`, `routes-100`, `properties-only` (the criterion bench's tables),
//! or validates every body with `serde_json`'s `IgnoredAny` (`floor`), and prints the number
//! of messages. Only the functions named `measured_*` are meant to be counted.

#[path = "../benches/workload/mod.rs"]
mod workload;

use hubroute::message::{Message, Source};
use hubroute::route::{Router, Routing};
use std::hint::black_box;

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

fn main() {
    let workload = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "routes-10".into());
    let messages = workload::messages();
    let config = match workload.as_str() {
        "floor" => {
            let bodies = workload::bodies(&messages);
            black_box(measured_floor(&bodies));
            println!("{}", messages.len());
            return;
        }
        "properties-only" => workload::properties_only(),
        "routes-10" | "routes-100" => workload::read(&format!("{workload}.json")),
        other => {
            eprintln!(
                "unknown workload '{other}': routes-10, routes-100, properties-only or floor"
            );
            std::process::exit(2);
        }
    };
    let table = workload::table(&config);
    let mut router = table.router();
    // A first pass, not counted, grows the scratch buffers, as a long-running router's are.
    black_box(route_all(&mut router, &messages));
    black_box(measured_route(&mut router, &messages));
    println!("{}", messages.len());
}
