//! The routing configuration as IoT Hub stores it: the JSON of a hub's `properties.routing`
//! (routes, endpoints, fallbackRoute, enrichments), read unchanged — also when it sits inside
//! a full ARM resource, an ARM template, or `az iot hub show` output.
//!
//! Reading is lenient about shape (every problem is collected, none stops the read) so that
//! `hubroute check` can report them all at once; [`super::validate`] then applies IoT Hub's
//! rules.

use super::diagnostic::{ConfigDiagnostic, DiagnosticLog};
use serde_json::Value;

/// A route (`RouteProperties`).
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSpec {
    /// Where in the document it was (`routes[3]`), for messages.
    pub location: String,
    /// `name`.
    pub name: String,
    /// `source`, as written.
    pub source: String,
    /// `condition`; `None` means `true`.
    pub condition: Option<String>,
    /// `endpointNames` (IoT Hub allows exactly one).
    pub endpoint_names: Vec<String>,
    /// `isEnabled` (`None` when missing, which IoT Hub rejects).
    pub is_enabled: Option<bool>,
}

/// Kinds of endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// The built-in `events` endpoint.
    BuiltIn,
    /// `eventHubs`.
    EventHub,
    /// `serviceBusQueues`.
    ServiceBusQueue,
    /// `serviceBusTopics`.
    ServiceBusTopic,
    /// `storageContainers`.
    StorageContainer,
    /// `cosmosDBSqlContainers`.
    CosmosDb,
}

impl EndpointKind {
    /// The key of the list in `endpoints` (or `events` for the built-in endpoint).
    pub fn key(self) -> &'static str {
        match self {
            EndpointKind::BuiltIn => "events",
            EndpointKind::EventHub => "eventHubs",
            EndpointKind::ServiceBusQueue => "serviceBusQueues",
            EndpointKind::ServiceBusTopic => "serviceBusTopics",
            EndpointKind::StorageContainer => "storageContainers",
            EndpointKind::CosmosDb => "cosmosDBSqlContainers",
        }
    }

    const CUSTOM: [EndpointKind; 5] = [
        EndpointKind::EventHub,
        EndpointKind::ServiceBusQueue,
        EndpointKind::ServiceBusTopic,
        EndpointKind::StorageContainer,
        EndpointKind::CosmosDb,
    ];
}

/// Storage endpoint settings (`RoutingStorageContainerProperties`).
#[derive(Clone, Debug, PartialEq)]
pub struct StorageSettings {
    /// `containerName`.
    pub container_name: Option<String>,
    /// `encoding`: `avro` (default), `avrodeflate` or `json`, as written.
    pub encoding: Option<String>,
    /// `fileNameFormat` (default `{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}`).
    pub file_name_format: Option<String>,
    /// `batchFrequencyInSeconds` (60–720, default 300).
    pub batch_frequency_in_seconds: Option<i64>,
    /// `maxChunkSizeInBytes` (10485760–524288000, default 314572800).
    pub max_chunk_size_in_bytes: Option<i64>,
}

/// A custom endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointSpec {
    /// Where in the document it was.
    pub location: String,
    /// `name`.
    pub name: String,
    /// Which list it came from.
    pub kind: EndpointKind,
    /// For storage containers, their settings.
    pub storage: Option<StorageSettings>,
}

/// The fallback route (`FallbackRouteProperties`).
#[derive(Clone, Debug, PartialEq)]
pub struct FallbackSpec {
    /// `name` (optional).
    pub name: Option<String>,
    /// `source` (must be DeviceMessages).
    pub source: Option<String>,
    /// `condition` (default true).
    pub condition: Option<String>,
    /// `endpointNames`.
    pub endpoint_names: Vec<String>,
    /// `isEnabled`.
    pub is_enabled: Option<bool>,
}

/// A message enrichment (`EnrichmentProperties`).
#[derive(Clone, Debug, PartialEq)]
pub struct EnrichmentSpec {
    /// Where in the document it was.
    pub location: String,
    /// `key`: the application property it adds.
    pub key: String,
    /// `value`: a static string, `$iothubname` or a `$twin.` path.
    pub value: String,
    /// `endpointNames`: where it applies.
    pub endpoint_names: Vec<String>,
}

/// A whole routing configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutingConfig {
    /// The hub's name when the document says it (ARM `name`), for `$iothubname`.
    pub hub_name: Option<String>,
    /// Routes, in order.
    pub routes: Vec<RouteSpec>,
    /// Custom endpoints, in document order.
    pub endpoints: Vec<EndpointSpec>,
    /// The fallback route.
    pub fallback: Option<FallbackSpec>,
    /// Enrichments.
    pub enrichments: Vec<EnrichmentSpec>,
}

/// Reads a routing configuration from JSON text, collecting every shape problem.
pub fn read(text: &str) -> (RoutingConfig, Vec<ConfigDiagnostic>) {
    let mut log = DiagnosticLog::new(usize::MAX);
    let config = read_into(text, &mut log);
    (config, log.into_kept())
}

/// [`read`] into `log`, which may keep only the first problems (and count the rest).
pub fn read_into(text: &str, log: &mut DiagnosticLog) -> RoutingConfig {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => read_value_into(&v, log),
        Err(e) => {
            log.push(ConfigDiagnostic::error(
                "E0401",
                "document",
                // serde_json's message already ends with its position; say it once.
                format!("not JSON: {e}"),
            ));
            RoutingConfig::default()
        }
    }
}

/// Finds `routing` in a bare routing object, `{properties: {routing}}` (ARM resource or
/// `az iot hub show`), or an ARM template's `resources[]`.
fn locate(v: &Value) -> Option<(&Value, Option<String>)> {
    let name = v.get("name").and_then(Value::as_str).map(String::from);
    if v.get("routes").is_some() || v.get("endpoints").is_some() || v.get("fallbackRoute").is_some()
    {
        return Some((v, None));
    }
    if let Some(r) = v.get("routing") {
        return Some((r, name));
    }
    if let Some(r) = v.get("properties").and_then(|p| p.get("routing")) {
        return Some((r, name));
    }
    v.get("resources")?.as_array()?.iter().find_map(|r| {
        let is_hub = r
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.Devices/IotHubs"));
        if is_hub {
            locate(r)
        } else {
            None
        }
    })
}

/// Reads a routing configuration from parsed JSON.
pub fn read_value(v: &Value) -> (RoutingConfig, Vec<ConfigDiagnostic>) {
    let mut log = DiagnosticLog::new(usize::MAX);
    let config = read_value_into(v, &mut log);
    (config, log.into_kept())
}

/// [`read_value`] into `log`.
pub fn read_value_into(v: &Value, problems: &mut DiagnosticLog) -> RoutingConfig {
    let mut config = RoutingConfig::default();
    let Some((routing, hub_name)) = locate(v) else {
        problems.push(ConfigDiagnostic::error(
            "E0402",
            "document",
            "no routing configuration found: expected an object with routes/endpoints, or properties.routing (ARM resource, `az iot hub show`), or an ARM template with a Microsoft.Devices/IotHubs resource",
        ));
        return config;
    };
    config.hub_name = hub_name;
    let mut r = Reader { problems };
    for (i, item) in r.array(routing, "routes", "routes").iter().enumerate() {
        let loc = format!("routes[{i}]");
        config.routes.push(RouteSpec {
            name: r.string(item, "name", &loc, true).unwrap_or_default(),
            source: r.string(item, "source", &loc, true).unwrap_or_default(),
            condition: r.string(item, "condition", &loc, false),
            endpoint_names: r.strings(item, "endpointNames", &loc),
            is_enabled: r.bool(item, "isEnabled", &loc),
            location: loc,
        });
    }
    if let Some(endpoints) = routing.get("endpoints") {
        for kind in EndpointKind::CUSTOM {
            for (i, item) in r
                .array(endpoints, kind.key(), "endpoints")
                .iter()
                .enumerate()
            {
                let loc = format!("endpoints.{}[{i}]", kind.key());
                let storage = (kind == EndpointKind::StorageContainer).then(|| StorageSettings {
                    container_name: r.string(item, "containerName", &loc, false),
                    encoding: r.string(item, "encoding", &loc, false),
                    file_name_format: r.string(item, "fileNameFormat", &loc, false),
                    batch_frequency_in_seconds: r.int(item, "batchFrequencyInSeconds", &loc),
                    max_chunk_size_in_bytes: r.int(item, "maxChunkSizeInBytes", &loc),
                });
                config.endpoints.push(EndpointSpec {
                    name: r.string(item, "name", &loc, true).unwrap_or_default(),
                    kind,
                    storage,
                    location: loc,
                });
            }
        }
    }
    if let Some(f) = routing.get("fallbackRoute").filter(|f| !f.is_null()) {
        let loc = "fallbackRoute";
        config.fallback = Some(FallbackSpec {
            name: r.string(f, "name", loc, false),
            source: r.string(f, "source", loc, false),
            condition: r.string(f, "condition", loc, false),
            endpoint_names: r.strings(f, "endpointNames", loc),
            is_enabled: r.bool(f, "isEnabled", loc),
        });
    }
    for (i, item) in r
        .array(routing, "enrichments", "enrichments")
        .iter()
        .enumerate()
    {
        let loc = format!("enrichments[{i}]");
        config.enrichments.push(EnrichmentSpec {
            key: r.string(item, "key", &loc, true).unwrap_or_default(),
            value: r.string(item, "value", &loc, true).unwrap_or_default(),
            endpoint_names: r.strings(item, "endpointNames", &loc),
            location: loc,
        });
    }
    config
}

struct Reader<'p> {
    problems: &'p mut DiagnosticLog,
}

impl Reader<'_> {
    fn bad(&mut self, loc: &str, key: &str, what: &str) {
        self.problems.push(ConfigDiagnostic::error(
            "E0403",
            format!("{loc}.{key}"),
            format!("'{key}' {what}"),
        ));
    }

    fn array<'v>(&mut self, v: &'v Value, key: &str, loc: &str) -> &'v [Value] {
        match v.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.bad(loc, key, "must be an array");
                &[]
            }
        }
    }

    fn string(&mut self, v: &Value, key: &str, loc: &str, required: bool) -> Option<String> {
        match v.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => {
                if required {
                    self.problems.push(ConfigDiagnostic::error(
                        "E0404",
                        format!("{loc}.{key}"),
                        format!("required field '{key}' is missing"),
                    ));
                }
                None
            }
            Some(_) => {
                self.bad(loc, key, "must be a string");
                None
            }
        }
    }

    fn strings(&mut self, v: &Value, key: &str, loc: &str) -> Vec<String> {
        match v.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .filter_map(|(i, x)| match x {
                    Value::String(s) => Some(s.clone()),
                    _ => {
                        self.bad(loc, &format!("{key}[{i}]"), "must be a string");
                        None
                    }
                })
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                self.bad(loc, key, "must be an array of strings");
                Vec::new()
            }
        }
    }

    fn bool(&mut self, v: &Value, key: &str, loc: &str) -> Option<bool> {
        match v.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            None | Some(Value::Null) => None,
            Some(_) => {
                self.bad(loc, key, "must be true or false");
                None
            }
        }
    }

    fn int(&mut self, v: &Value, key: &str, loc: &str) -> Option<i64> {
        match v.get(key) {
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            None | Some(Value::Null) => None,
            Some(_) => {
                self.bad(loc, key, "must be an integer");
                None
            }
        }
    }
}
