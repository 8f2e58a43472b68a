//! `--sink NAME=URL`: each endpoint bound to the sink its URL names (`file:`, `stdout:`,
//! `storage:`, or a broker), every endpoint a route can reach bound exactly once.

use hubroute::route::{EndpointId, RouteTable};
use hubroute::sink::{JsonLinesSink, Sink, StorageConfig, StorageEncoding, StorageSink};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::run_args::shown;

/// The sinks of `--sink` arguments by endpoint name; refuses a malformed or repeated binding,
/// an unknown URL, and a reachable endpoint left unbound (a name the routes lack is bound with a
/// note: a reload may add its endpoint).
pub(crate) fn bind(
    sinks: &[String],
    table: &RouteTable,
) -> Result<BTreeMap<String, Box<dyn Sink>>, String> {
    let mut bound: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    for raw in sinks {
        // What error messages may print: a broker URL without its secrets.
        let spec = &shown(raw);
        let (name, url) = raw
            .split_once('=')
            .ok_or_else(|| format!("--sink {spec}: expected NAME=URL"))?;
        if bound.contains_key(name) {
            return Err(format!(
                "--sink {spec}: endpoint '{name}' is already bound; give each endpoint one --sink"
            ));
        }
        if name.is_empty() {
            return Err(format!("--sink {spec}: the endpoint name is empty"));
        }
        let endpoint = table.endpoint_id(name).map(|id| table.endpoint(id));
        if endpoint.is_none() {
            // A name the routes lack is an endpoint a reload will add (issue 17): bind it now
            // so the reload can route to it. A typo is still caught: the endpoint it misspells
            // stays unbound, which the check below refuses if a route reaches it; and this
            // line names it either way.
            crate::logging::say(
                crate::logging::Level::Info,
                &format!("sink for endpoint {name} is bound; no route uses it yet"),
            );
        }
        bound.insert(
            name.to_string(),
            make_sink(name, endpoint, table.hub_name(), url)?,
        );
    }
    let missing: Vec<&str> = reachable(table)
        .into_iter()
        .map(|id| table.endpoint(id).name.as_str())
        .filter(|n| !bound.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "refusing to start: no sink bound for endpoint{} {} (add --sink NAME=file:PATH, stdout: or storage:DIR)",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    Ok(bound)
}

/// The sink `url` names for endpoint `name`; `ep` is its definition in the starting routes
/// (its Storage settings and its kind's property naming), `None` for an endpoint only a
/// reloaded configuration defines (then Storage defaults and the URL's own naming).
fn make_sink(
    name: &str,
    ep: Option<&hubroute::route::Endpoint>,
    hub_name: &str,
    url: &str,
) -> Result<Box<dyn Sink>, String> {
    if url == "stdout:" || url == "stdout" {
        return Ok(Box::new(JsonLinesSink::stdout()));
    }
    if let Some(path) = url.strip_prefix("file:") {
        if path.is_empty() {
            return Err(format!(
                "--sink {}={url}: the file path is empty (file:PATH, e.g. file:out/{}.jsonl)",
                name, name
            ));
        }
        return JsonLinesSink::to_path(PathBuf::from(path))
            .map(|s| Box::new(s) as Box<dyn Sink>)
            .map_err(|e| format!("--sink {}: {e}", name));
    }
    if let Some(dir) = url.strip_prefix("storage:") {
        let mut config = StorageConfig::new(PathBuf::from(dir), hub_name);
        if let Some(s) = ep.and_then(|e| e.storage.as_ref()) {
            if let Some(e) = &s.encoding {
                config.encoding = e
                    .parse::<StorageEncoding>()
                    .map_err(|e| format!("--sink {}: {e}", name))?;
            }
            if let Some(f) = &s.file_name_format {
                config.file_name_format = f.clone();
            }
            if let Some(secs) = s.batch_frequency_in_seconds {
                config.batch_frequency = Duration::from_secs(secs.max(0) as u64);
            }
            if let Some(bytes) = s.max_chunk_size_in_bytes {
                config.max_chunk_size_bytes = bytes.max(0) as u64;
            }
        }
        return StorageSink::new(config)
            .map(|s| Box::new(s) as Box<dyn Sink>)
            .map_err(|e| format!("--sink {}: {e}", name));
    }
    if url.contains("://") {
        // A broker sink stands in for the endpoint: it names system properties as that kind does.
        let url = match ep {
            Some(ep) => hubroute::message::naming::with_endpoint_naming(url, ep.kind.key()),
            None => url.to_string(),
        };
        return broker_sink(name, &url);
    }
    let url = shown(url);
    Err(format!(
        "--sink {}={url}: unknown sink URL (use file:PATH, stdout:, storage:DIR, \
         mqtt://HOST:PORT/TOPIC, nats://HOST:PORT/SUBJECT or jetstream://HOST:PORT/SUBJECT)",
        name
    ))
}

/// Endpoints some enabled route (or the enabled fallback) can send to.
fn reachable(table: &RouteTable) -> Vec<EndpointId> {
    let mut ids: Vec<EndpointId> = table
        .routes()
        .iter()
        .chain(table.fallback())
        .filter(|r| r.enabled)
        .map(|r| r.endpoint)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// The sink for a broker URL (`mqtt://`, `nats://`, `jetstream://`).
pub(crate) fn broker_sink(endpoint: &str, url: &str) -> Result<Box<dyn Sink>, String> {
    #[cfg(any(feature = "mqtt", feature = "nats"))]
    {
        use hubroute::broker::{BrokerUrl, Scheme};
        let parsed = BrokerUrl::parse(url).map_err(|e| format!("--sink {endpoint}: {e}"))?;
        let sink: Result<Box<dyn Sink>, hubroute::sink::SinkError> = match parsed.scheme {
            #[cfg(feature = "mqtt")]
            Scheme::Mqtt => hubroute::broker::mqtt::MqttSink::new(
                &parsed,
                &format!("hubroute-sink-{endpoint}-{}", std::process::id()),
            )
            .map(|s| Box::new(s) as Box<dyn Sink>),
            #[cfg(feature = "nats")]
            Scheme::Nats | Scheme::JetStream => {
                hubroute::broker::nats::NatsSink::new(&parsed).map(|s| Box::new(s) as Box<dyn Sink>)
            }
            #[allow(unreachable_patterns)]
            _ => return Err(not_built(url)),
        };
        sink.map_err(|e| format!("--sink {endpoint}: {e}"))
    }
    #[cfg(not(any(feature = "mqtt", feature = "nats")))]
    {
        let _ = endpoint;
        Err(not_built(url))
    }
}

#[allow(dead_code)]
pub(crate) fn not_built(url: &str) -> String {
    let url = crate::run_args::shown(url);
    format!("{url}: this hubroute was built without the cargo feature for this broker (mqtt, nats)")
}
