//! The benchmark workload, shared by the criterion benches, the instruction-count driver
//! (`examples/instructions.rs`) and `tests/alloc.rs`: `../shared/bench`'s messages and route
//! tables, and the properties-only table derived from routes-10.

#![allow(dead_code)] // Each user takes what it needs.

use hubroute::message::{Message, Source};
use hubroute::route::RouteTable;
use serde_json::Value;
use std::path::PathBuf;

pub fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench")
}

pub fn read(name: &str) -> String {
    std::fs::read_to_string(bench_dir().join(name)).unwrap()
}

pub fn messages() -> Vec<(Message, Source)> {
    read("messages-1k.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let m = Message::from_json_str(l).unwrap();
            let s = m.source.unwrap_or(Source::DeviceMessages);
            (m, s)
        })
        .collect()
}

pub fn table(text: &str) -> RouteTable {
    RouteTable::from_json(text, "hub").table.unwrap()
}

/// routes-10 with every condition replaced by one that reads only properties.
pub fn properties_only() -> String {
    let mut config: Value = serde_json::from_str(&read("routes-10.json")).unwrap();
    let conditions = [
        "processingPath = 'hot' AND $contentType = 'application/json'",
        "level = 'warning' AND NOT (temperatureAlert = 'false')",
        "messageType = 'alert' AND as_number(priority) >= 5",
        "starts_with($connectionDeviceId, 'pump-') AND messageType = 'telemetry'",
        "is_defined($connectionModuleId) AND $connectionModuleId <> 'opcPublisher'",
        "NOT is_defined($contentType) OR lower($contentType) <> 'application/json'",
        "site = 'plant-munich-03' AND env = 'prod'",
        "contains($connectionAuthMethod, 'x509Certificate') AND tenant = 'woodgrove'",
        "firmwareChannel = 'beta' OR region = 'westeurope'",
        "as_number(priority) % 2 = 1 AND sensorType = 'environment'",
    ];
    for (route, cond) in config["routes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(conditions)
    {
        route["condition"] = Value::from(cond);
    }
    config.to_string()
}

/// The queryable bodies' text (R23), decoded once up front for the baselines.
pub fn bodies(messages: &[(Message, Source)]) -> Vec<Option<String>> {
    messages
        .iter()
        .map(|(m, _)| m.body_text().ok().map(|t| t.into_owned()))
        .collect()
}
