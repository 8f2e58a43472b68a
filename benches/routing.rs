//! Routing benchmarks on `../shared/bench` (see its README): ns/message and messages/s for
//! routes-10 and routes-100 over messages-1k, a properties-only table, single-threaded and
//! rayon batch routing, and in the same group two baselines on the same data: a naive
//! `serde_json::Value` filter for routes-10 and the `IgnoredAny` validation floor. Also the
//! compile time of routes-100.
//!
//! Run with a short measurement time on the shared 2-core machine:
//! `cargo bench --bench routing -- --warm-up-time 1 --measurement-time 3`.

mod workload;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hubroute::eval::EvalContext;
use hubroute::message::Message;
use hubroute::route::Routing;
use serde_json::Value;
use std::hint::black_box;
use workload::{bodies, messages, properties_only, read, table};

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn boolean(v: &Value, path: &[&str]) -> Option<bool> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_bool()
}

/// The naive filter: parse the body with serde_json, then routes-10's conditions written
/// by hand with "a missing value never matches" semantics (which routes-10 is written to
/// agree with). Returns a bit set of matched routes.
fn naive(m: &Message, body: Option<&str>) -> u16 {
    let app = |n: &str| m.app_properties.get(n).flatten();
    let sys = |n: &str| m.system_properties.get(n).flatten();
    let doc: Option<Value> = body.and_then(|b| serde_json::from_str(b).ok());
    let null = Value::Null;
    let d = doc.as_ref().unwrap_or(&null);
    let priority = app("priority").and_then(|p| p.trim().parse::<f64>().ok());
    let telemetry = text(d, &["type"]) == Some("telemetry");
    let rules = [
        sys("contentType") == Some("application/json")
            && telemetry
            && num(d, &["Weather", "Temperature"]).is_some_and(|t| t > 50.0)
            && app("processingPath") == Some("hot"),
        num(d, &["battery", "level"]).is_some_and(|l| l < 20.0)
            && boolean(d, &["battery", "charging"]) != Some(true),
        app("messageType") == Some("alert")
            && (text(d, &["alert", "severity"]) == Some("critical")
                || priority.is_some_and(|p| p >= 5.0)),
        sys("connectionDeviceId").is_some_and(|id| id.starts_with("pump-"))
            && telemetry
            && num(d, &["pump", "vibration", "rms"]).is_some_and(|v| v > 4.5),
        sys("connectionModuleId").is_some_and(|id| id != "opcPublisher"),
        sys("contentType").is_none_or(|t| t.to_lowercase() != "application/json"),
        boolean(d, &["status", "online"]) == Some(true)
            && text(d, &["status", "state"]) == Some("running"),
        num(d, &["cargo", "tempC"]).is_some_and(|t| t > 7.0)
            && text(d, &["cargo", "load"]) == Some("pharma"),
        app("firmwareChannel") == Some("beta")
            || text(d, &["firmware", "version"]).is_some_and(|v| v.starts_with("3.")),
        boolean(d, &["maintenance", "requested"]) == Some(true)
            || (num(d, &["Weather", "Humidity"]).is_some_and(|h| (h - 50.0).abs() > 30.0)
                && priority.is_some_and(|p| p % 2.0 == 1.0)),
    ];
    rules
        .iter()
        .enumerate()
        .fold(0, |acc, (i, &r)| acc | (u16::from(r) << i))
}

fn routing(c: &mut Criterion) {
    let messages = messages();
    let bodies = bodies(&messages);
    let routes10 = table(&read("routes-10.json"));
    let routes100 = table(&read("routes-100.json"));
    let props = table(&properties_only());
    let n = messages.len() as u64;

    let mut g = c.benchmark_group("route messages-1k");
    g.throughput(Throughput::Elements(n));
    for (name, t) in [
        ("routes-10", &routes10),
        ("routes-100", &routes100),
        ("properties-only", &props),
    ] {
        g.bench_function(name, |b| {
            let mut router = t.router();
            let mut out = Routing::default();
            b.iter(|| {
                let mut matched = 0;
                for (m, s) in &messages {
                    router.route_into(m, *s, &mut out);
                    matched += out.endpoints.len();
                }
                matched
            })
        });
    }
    g.bench_function("routes-10 RouteTable::route", |b| {
        b.iter(|| {
            messages
                .iter()
                .map(|(m, s)| routes10.route(m, *s).endpoints.len())
                .sum::<usize>()
        })
    });
    g.bench_function("routes-10 reference (no plan, body parsed whole)", |b| {
        b.iter(|| {
            messages
                .iter()
                .map(|(m, s)| {
                    let ctx = EvalContext::new(m);
                    routes10.route_in(&ctx, *s).endpoints.len()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("baseline naive serde_json::Value filter (routes-10)", |b| {
        b.iter(|| {
            messages
                .iter()
                .zip(&bodies)
                .map(|((m, _), body)| naive(m, body.as_deref()).count_ones())
                .sum::<u32>()
        })
    });
    g.bench_function("floor serde_json IgnoredAny", |b| {
        b.iter(|| {
            bodies
                .iter()
                .flatten()
                .filter(|body| {
                    serde_json::from_str::<serde::de::IgnoredAny>(black_box(body)).is_ok()
                })
                .count()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("batch messages-1k");
    g.throughput(Throughput::Elements(n));
    for (name, t) in [("routes-10", &routes10), ("routes-100", &routes100)] {
        g.bench_function(format!("{name} single-threaded"), |b| {
            let mut router = t.router();
            b.iter(|| {
                messages
                    .iter()
                    .map(|(m, s)| router.route(m, *s))
                    .collect::<Vec<_>>()
            })
        });
        g.bench_function(format!("{name} rayon route_batch"), |b| {
            b.iter(|| t.route_batch(&messages))
        });
    }
    g.finish();

    let text100 = read("routes-100.json");
    let mut g = c.benchmark_group("compile");
    g.bench_function("routes-100", |b| {
        b.iter_batched(|| text100.clone(), |t| table(&t), BatchSize::SmallInput)
    });
    g.finish();

    // A cheap end-to-end check that the naive filter and the engine agree on routes-10.
    let mut naive_counts = [0usize; 10];
    for ((m, _), body) in messages.iter().zip(&bodies) {
        let bits = naive(m, body.as_deref());
        for (i, c) in naive_counts.iter_mut().enumerate() {
            *c += usize::from(bits >> i & 1 == 1);
        }
    }
    eprintln!("naive routes-10 match counts: {naive_counts:?}");
}

criterion_group!(benches, routing);
criterion_main!(benches);
