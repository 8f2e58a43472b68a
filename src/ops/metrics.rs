//! A [`Snapshot`] in the Prometheus text format (version 0.0.4), encoded by the official Rust
//! client `prometheus-client` so that escaping, `_total` suffixes and histogram buckets follow
//! the format exactly.
//!
//! Every metric is named `hubroute_…` after Prometheus conventions (base units, `_total` on
//! counters) and corresponds to one of IoT Hub's routing metrics; [`METRICS`] is that table,
//! which the README shows.
//!
//! ```
//! use hubroute::ops::{metrics, Snapshot};
//! let mut s = Snapshot::default();
//! s.read = 3;
//! s.invalid.insert("E0301".into(), 1);
//! let text = metrics::encode(&s);
//! assert!(text.contains("hubroute_messages_read_total 3\n"));
//! assert!(text.contains("hubroute_messages_invalid_total{code=\"E0301\"} 1\n"));
//! ```

use super::snapshot::{Health, Snapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One exported metric: its full name as scraped, its help text, and the IoT Hub metric it
/// corresponds to.
#[derive(Clone, Copy, Debug)]
pub struct MetricInfo {
    /// The name as it appears in the scrape (with `_total` for counters).
    pub name: &'static str,
    /// Its labels.
    pub labels: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// IoT Hub's metric (or resource) with the same meaning.
    pub iot_hub: &'static str,
}

macro_rules! metric {
    ($name:literal, $labels:literal, $help:literal, $hub:literal) => {
        MetricInfo {
            name: $name,
            labels: $labels,
            help: $help,
            iot_hub: $hub,
        }
    };
}

/// Every metric [`encode`] writes, in the order it writes them.
pub const METRICS: &[MetricInfo] = &[
    metric!("hubroute_messages_read_total", "", "Messages read from the inputs.", "d2c.telemetry.ingress.allProtocol"),
    metric!("hubroute_messages_accepted_total", "", "Messages that passed IoT Hub's message rules and were accepted for routing.", "d2c.telemetry.ingress.success"),
    metric!("hubroute_messages_invalid_total", "code", "Messages rejected as invalid, by error code.", "d2c.telemetry.egress.invalid"),
    metric!("hubroute_route_messages_total", "route", "Messages each route sent to its endpoint.", "(none: per route only in the routes resource logs)"),
    metric!("hubroute_messages_fallback_total", "", "Messages that matched no route and went to the fallback route.", "d2c.telemetry.egress.fallback"),
    metric!("hubroute_messages_orphaned_total", "", "Messages that matched no route and no fallback, and were dropped.", "d2c.telemetry.egress.orphaned"),
    metric!("hubroute_route_undefined_total", "route", "Route evaluations that were undefined (with --log-undefined).", "routes resource log UndefinedRouteEvaluation"),
    metric!("hubroute_endpoint_routed_total", "endpoint", "Copies routed to each endpoint.", "(none: IoT Hub counts deliveries, not routed copies)"),
    metric!("hubroute_endpoint_delivered_total", "endpoint", "Copies each endpoint's sink accepted.", "d2c.endpoints.egress.{builtIn.events,storage,eventHubs,serviceBusQueues,serviceBusTopics}; summed: d2c.telemetry.egress.success"),
    metric!("hubroute_endpoint_retries_total", "endpoint", "Delivery attempts repeated after a retryable error.", "(none: IoT Hub retries silently)"),
    metric!("hubroute_endpoint_dead_lettered_total", "endpoint", "Copies written to the dead letter instead of the endpoint.", "d2c.telemetry.egress.dropped"),
    metric!("hubroute_endpoint_backlog_messages", "endpoint", "Copies waiting for delivery.", "(none: IoT Hub's is internal)"),
    metric!("hubroute_endpoint_health", "endpoint, state", "1 for each endpoint's current health state (unknown, healthy, unhealthy, degraded, dead), 0 for the others.", "endpoint health (az iot hub routing-endpoint health)"),
    metric!("hubroute_endpoint_delivery_latency_seconds", "endpoint", "Time from acceptance to delivery.", "d2c.endpoints.latency.{builtIn.events,storage,eventHubs,serviceBusQueues,serviceBusTopics}"),
    metric!("hubroute_store_bytes", "", "Bytes the store holds for messages not yet delivered everywhere.", "(none)"),
    metric!("hubroute_store_messages", "", "Messages the store holds.", "(none)"),
    metric!("hubroute_store_max_bytes", "", "The store size at which the input pauses (0: no limit).", "(none)"),
    metric!("hubroute_store_commits_total", "", "Group commits: each one write and sync of the store's log, shared by the batches that arrived meanwhile (the sync rate behind the accept rate).", "(none)"),
    metric!("hubroute_input_lag_seconds", "", "How far the router is behind its input: at the last durable commit, the age of the batch's oldest message (since the hub enqueued it).", "(none)"),
    metric!("hubroute_route_table_generation", "", "The route table in use: 1 at start, +1 per reload.", "(none: routes change in place)"),
    metric!("hubroute_route_table_reloads_total", "result", "Configuration reloads, by result (ok, error).", "(none)"),
    metric!("hubroute_route_table_loaded_timestamp_seconds", "", "When the route table in use was loaded (Unix time).", "(none)"),
    metric!("hubroute_ready", "", "1 when the inputs are connected and the store is open.", "(none)"),
];

/// The snapshot in the Prometheus text format.
pub fn encode(snapshot: &Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail, and no label or name here is refused by the encoder.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// Encodes one snapshot on a scrape.
#[derive(Debug)]
struct SnapshotCollector(Snapshot);

/// The descriptor name of a metric: the scraped name without the `_total` the encoder adds to
/// counters.
fn base(info: &MetricInfo) -> &'static str {
    info.name.strip_suffix("_total").unwrap_or(info.name)
}

fn info(name: &str) -> &'static MetricInfo {
    // Every name passed here is a literal of METRICS (a unit test encodes every metric).
    METRICS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or(&METRICS[0])
}

/// Writes a counter without labels.
fn counter(enc: &mut DescriptorEncoder, name: &str, value: u64) -> std::fmt::Result {
    let m = info(name);
    let mut e = enc.encode_descriptor(base(m), m.help, None, MetricType::Counter)?;
    e.encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// Writes a counter with one label, one sample per `(label value, count)`.
fn counters<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    label: &str,
    rows: impl IntoIterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    let m = info(name);
    let mut e = enc.encode_descriptor(base(m), m.help, None, MetricType::Counter)?;
    for (value, count) in rows {
        let labels = [(label, value)];
        e.encode_family(&labels)?
            .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
    }
    Ok(())
}

/// Writes a gauge without labels.
fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    value: impl EncodeGaugeValue,
) -> std::fmt::Result {
    let m = info(name);
    enc.encode_descriptor(m.name, m.help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let enc = &mut enc;
        counter(enc, "hubroute_messages_read_total", s.read)?;
        counter(enc, "hubroute_messages_accepted_total", s.accepted)?;
        let invalid = s.invalid.iter().map(|(k, v)| (k.as_str(), *v));
        counters(enc, "hubroute_messages_invalid_total", "code", invalid)?;
        let routes = s.routes.iter().map(|(k, v)| (k.as_str(), *v));
        counters(enc, "hubroute_route_messages_total", "route", routes)?;
        counter(enc, "hubroute_messages_fallback_total", s.fallback)?;
        counter(enc, "hubroute_messages_orphaned_total", s.orphaned)?;
        let undefined = s.undefined.iter().map(|(k, v)| (k.as_str(), *v));
        counters(enc, "hubroute_route_undefined_total", "route", undefined)?;

        let per_endpoint = |f: fn(&super::EndpointSnapshot) -> u64| {
            s.endpoints
                .iter()
                .map(move |(k, e)| (k.as_str(), f(e)))
                .collect::<Vec<_>>()
        };
        counters(
            enc,
            "hubroute_endpoint_routed_total",
            "endpoint",
            per_endpoint(|e| e.routed),
        )?;
        counters(
            enc,
            "hubroute_endpoint_delivered_total",
            "endpoint",
            per_endpoint(|e| e.delivered),
        )?;
        counters(
            enc,
            "hubroute_endpoint_retries_total",
            "endpoint",
            per_endpoint(|e| e.retries),
        )?;
        counters(
            enc,
            "hubroute_endpoint_dead_lettered_total",
            "endpoint",
            per_endpoint(|e| e.dead_lettered),
        )?;
        {
            let m = info("hubroute_endpoint_backlog_messages");
            let mut e = enc.encode_descriptor(m.name, m.help, None, MetricType::Gauge)?;
            for (name, ep) in &s.endpoints {
                let labels = [("endpoint", name.as_str())];
                e.encode_family(&labels)?.encode_gauge(&ep.backlog)?;
            }
        }
        {
            let m = info("hubroute_endpoint_health");
            let mut e = enc.encode_descriptor(m.name, m.help, None, MetricType::Gauge)?;
            for (name, ep) in &s.endpoints {
                for state in Health::ALL {
                    let labels = [("endpoint", name.as_str()), ("state", state.as_str())];
                    e.encode_family(&labels)?
                        .encode_gauge(&i64::from(ep.health == state))?;
                }
            }
        }
        {
            let m = info("hubroute_endpoint_delivery_latency_seconds");
            let mut e = enc.encode_descriptor(m.name, m.help, None, MetricType::Histogram)?;
            for (name, ep) in &s.endpoints {
                let labels = [("endpoint", name.as_str())];
                let h = &ep.latency;
                e.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    h.sum_seconds,
                    h.count(),
                    &h.buckets(),
                    None,
                )?;
            }
        }
        if let Some(store) = &s.store {
            gauge(enc, "hubroute_store_bytes", store.bytes)?;
            gauge(enc, "hubroute_store_messages", store.messages)?;
            gauge(enc, "hubroute_store_max_bytes", store.max_bytes)?;
            counter(enc, "hubroute_store_commits_total", store.commits)?;
        }
        if let Some(lag) = s.input_lag_seconds {
            gauge(enc, "hubroute_input_lag_seconds", lag)?;
        }
        gauge(enc, "hubroute_route_table_generation", s.table.generation)?;
        let reloads = [("ok", s.table.reloads), ("error", s.table.failed_reloads)];
        counters(enc, "hubroute_route_table_reloads_total", "result", reloads)?;
        gauge(
            enc,
            "hubroute_route_table_loaded_timestamp_seconds",
            s.table.loaded_at,
        )?;
        gauge(enc, "hubroute_ready", i64::from(s.readiness.is_ready()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{EndpointSnapshot, LatencyHistogram, Readiness, StoreSnapshot};
    use std::time::Duration;

    fn full() -> Snapshot {
        let mut s = Snapshot {
            read: 10,
            accepted: 8,
            fallback: 1,
            orphaned: 2,
            input_lag_seconds: Some(0.5),
            store: Some(StoreSnapshot {
                bytes: 4096,
                messages: 3,
                max_bytes: 1 << 30,
                commits: 6,
            }),
            readiness: Readiness {
                inputs_connected: true,
                store_open: true,
            },
            ..Snapshot::default()
        };
        s.invalid.insert("E0301".into(), 2);
        s.routes.insert("hot-path".into(), 5);
        s.undefined.insert("hot-path".into(), 1);
        s.table.generation = 2;
        s.table.reloads = 1;
        s.table.failed_reloads = 3;
        let h = LatencyHistogram::default();
        h.record(Duration::from_millis(3));
        s.endpoints.insert(
            "alerts".into(),
            EndpointSnapshot {
                routed: 5,
                delivered: 4,
                retries: 7,
                dead_lettered: 1,
                backlog: 0,
                health: Health::Dead,
                reason: Some("connection refused".into()),
                latency: h.snapshot(),
            },
        );
        s
    }

    #[test]
    fn every_metric_of_the_table_is_written_once_with_help_and_type() {
        let text = encode(&full());
        for m in METRICS {
            let type_line = format!("# TYPE {} ", m.name);
            assert_eq!(text.matches(&type_line).count(), 1, "{}:\n{text}", m.name);
            assert!(text.contains(&format!("# HELP {} ", m.name)), "{}", m.name);
        }
    }

    #[test]
    fn values_and_labels_are_the_snapshot_s() {
        let text = encode(&full());
        for line in [
            "hubroute_messages_read_total 10\n",
            "hubroute_messages_accepted_total 8\n",
            "hubroute_messages_invalid_total{code=\"E0301\"} 2\n",
            "hubroute_route_messages_total{route=\"hot-path\"} 5\n",
            "hubroute_messages_fallback_total 1\n",
            "hubroute_messages_orphaned_total 2\n",
            "hubroute_endpoint_delivered_total{endpoint=\"alerts\"} 4\n",
            "hubroute_endpoint_retries_total{endpoint=\"alerts\"} 7\n",
            "hubroute_endpoint_dead_lettered_total{endpoint=\"alerts\"} 1\n",
            "hubroute_endpoint_health{endpoint=\"alerts\",state=\"dead\"} 1\n",
            "hubroute_endpoint_health{endpoint=\"alerts\",state=\"healthy\"} 0\n",
            "hubroute_endpoint_delivery_latency_seconds_bucket{endpoint=\"alerts\",le=\"0.0025\"} 0\n",
            "hubroute_endpoint_delivery_latency_seconds_bucket{endpoint=\"alerts\",le=\"0.005\"} 1\n",
            "hubroute_endpoint_delivery_latency_seconds_bucket{endpoint=\"alerts\",le=\"+Inf\"} 1\n",
            "hubroute_endpoint_delivery_latency_seconds_count{endpoint=\"alerts\"} 1\n",
            "hubroute_store_bytes 4096\n",
            "hubroute_store_commits_total 6\n",
            "hubroute_input_lag_seconds 0.5\n",
            "hubroute_route_table_generation 2\n",
            "hubroute_route_table_reloads_total{result=\"ok\"} 1\n",
            "hubroute_route_table_reloads_total{result=\"error\"} 3\n",
            "hubroute_ready 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = Snapshot::default();
        s.routes.insert("a\"b\\c\nd".into(), 1);
        let text = encode(&s);
        assert!(
            text.contains(r#"hubroute_route_messages_total{route="a\"b\\c\nd"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn a_router_without_store_or_lag_omits_those_gauges() {
        let text = encode(&Snapshot::default());
        assert!(!text.contains("hubroute_store_bytes"));
        assert!(!text.contains("hubroute_input_lag_seconds"));
        assert!(text.contains("hubroute_ready 0\n"));
    }
}
