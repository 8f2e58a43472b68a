//! IoT Hub's rules for a routing configuration (`research/azure-routing.md` §2–§4), applied
//! while building the table, every problem reported with a code and a location.
//!
//! | code | rule |
//! |---|---|
//! | E0410 | route name: `^[A-Za-z0-9-._]{1,64}$`, unique (case-insensitively) |
//! | E0411 | route source: one of the IoT Hub sources |
//! | E0412 | `endpointNames`: exactly one |
//! | E0413 | an endpoint name that no endpoint has |
//! | E0414 | `isEnabled` missing |
//! | E0415 | more than 100 routes |
//! | E0420 | endpoint name: pattern, unique across types, not reserved (`events`, `fileNotifications`, `$default`) |
//! | E0421 | more than 10 custom endpoints |
//! | E0422 | storage: `containerName` missing |
//! | E0423 | storage: `fileNameFormat` lacks a token or has an unknown one |
//! | E0424 | storage: `batchFrequencyInSeconds` outside 60–720 |
//! | E0425 | storage: `maxChunkSizeInBytes` outside 10485760–524288000 |
//! | E0426 | storage: `encoding` not avro / avrodeflate / json (avro ones need the `avro` feature, as the sink does) |
//! | E0430 | fallback: source other than DeviceMessages |
//! | E0440 | enrichment: key or value missing, or a `$twin` path outside tags/desired/reported |
//! | E0441 | more than 10 enrichments, or a key used twice |
//! | W0442 | enrichment key with characters other than alphanumerics, `-`, `_`, `.` |
//! | W0006 | a route reads `$body` but does not check `$contentType` |

use super::config::{EndpointKind, RoutingConfig, StorageSettings};
use super::diagnostic::{ConfigDiagnostic, DiagnosticLog};
use super::enrich::{Enrichment, EnrichmentValue};
use super::table::{condition_options_in, Build, Endpoint, EndpointId, Route, RouteTable};
use crate::check::Dialect;
use crate::diagnostic::codes;
use crate::message::Source;
use crate::sink::StorageEncoding;
use crate::Condition;
use std::collections::{HashMap, HashSet};

const MAX_ROUTES: usize = 100;
const MAX_ENDPOINTS: usize = 10;
const MAX_ENRICHMENTS: usize = 10;

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// How many diagnostics a [`Build`] keeps: the rest are only counted, so that memory and
/// output stay bounded for a configuration of any size (100,000 empty routes are 400,000
/// problems; IoT Hub allows 100 routes).
pub const MAX_DIAGNOSTICS: usize = 100;

/// A build's result from its diagnostics: the table only when there are no errors.
pub(super) fn into_build(log: DiagnosticLog, table: Option<RouteTable>) -> Build {
    let (errors, warnings, omitted) = (log.errors(), log.warnings(), log.omitted());
    Build {
        table: table.filter(|_| errors == 0),
        diagnostics: log.into_kept(),
        errors,
        warnings,
        omitted,
    }
}

struct Builder<'c> {
    config: &'c RoutingConfig,
    dialect: Dialect,
    out: DiagnosticLog,
    endpoints: Vec<Endpoint>,
    /// Endpoint names (as written) to their ids, for `endpointNames` references.
    endpoint_ids: HashMap<String, EndpointId>,
}

pub(super) fn build(config: &RoutingConfig, hub_name: &str, dialect: Dialect) -> Build {
    let mut b = Builder {
        config,
        dialect,
        out: DiagnosticLog::new(MAX_DIAGNOSTICS),
        endpoints: vec![Endpoint {
            name: "events".into(),
            kind: EndpointKind::BuiltIn,
            storage: None,
        }],
        endpoint_ids: HashMap::from([("events".to_string(), EndpointId(0))]),
    };
    b.endpoints();
    let mut routes = b.routes();
    let mut fallback = b.fallback();
    let enrichments = b.enrichments();
    if b.out.errors() > 0 {
        // No table: nothing to share or plan.
        return into_build(b.out, None);
    }
    let mut programs: Vec<&mut crate::compile::Program> = routes
        .iter_mut()
        .chain(fallback.as_mut())
        .filter_map(|r| r.condition.as_mut().map(crate::Condition::program_mut))
        .collect();
    crate::compile::share(&mut programs);
    let table = Some(RouteTable {
        plan: super::router::plan_of(&routes, fallback.as_ref()),
        routes,
        endpoints: b.endpoints,
        fallback,
        enrichments,
        hub_name: config
            .hub_name
            .clone()
            .unwrap_or_else(|| hub_name.to_string()),
    });
    into_build(b.out, table)
}

impl Builder<'_> {
    fn push(&mut self, d: ConfigDiagnostic) {
        self.out.push(d);
    }

    fn err(&mut self, code: &'static str, loc: &str, name: &str, message: String) {
        self.out
            .push(ConfigDiagnostic::error(code, loc, message).named(name));
    }

    fn endpoint_ref(&mut self, names: &[String], loc: &str, owner: &str) -> Option<EndpointId> {
        if names.len() != 1 {
            self.err(
                "E0412",
                &format!("{loc}.endpointNames"),
                owner,
                format!(
                    "endpointNames must hold exactly one endpoint name, not {}",
                    names.len()
                ),
            );
        }
        let name = names.first()?;
        match self.endpoint_ids.get(name) {
            Some(&id) => Some(id),
            None => {
                // Named in full only when there are few (IoT Hub allows 10 custom ones).
                let known: Vec<&str> = self
                    .endpoints
                    .iter()
                    .take(MAX_ENDPOINTS + 1)
                    .map(|e| e.name.as_str())
                    .collect();
                let more = if self.endpoints.len() > known.len() {
                    ", …"
                } else {
                    ""
                };
                self.err(
                    "E0413",
                    &format!("{loc}.endpointNames"),
                    owner,
                    format!(
                        "unknown endpoint '{name}' (defined: {}{more})",
                        known.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn endpoints(&mut self) {
        let specs = &self.config.endpoints;
        if specs.len() > MAX_ENDPOINTS {
            self.err(
                "E0421",
                "endpoints",
                "",
                format!(
                    "{} custom endpoints; IoT Hub allows at most {MAX_ENDPOINTS}",
                    specs.len()
                ),
            );
        }
        let mut seen: HashSet<String> = HashSet::from(["events".to_string()]);
        for spec in specs {
            let reserved = ["events", "fileNotifications", "$default"]
                .iter()
                .any(|r| r.eq_ignore_ascii_case(&spec.name));
            if !valid_name(&spec.name) || reserved {
                self.err(
                    "E0420",
                    &spec.location,
                    &spec.name,
                    format!("invalid endpoint name '{}': use 1-64 of A-Z a-z 0-9 - . _, not events, fileNotifications or $default", spec.name),
                );
            } else if !seen.insert(spec.name.to_ascii_lowercase()) {
                self.err(
                    "E0420",
                    &spec.location,
                    &spec.name,
                    format!(
                        "endpoint name '{}' is used twice (names are unique across endpoint types)",
                        spec.name
                    ),
                );
            }
            if let Some(s) = &spec.storage {
                self.storage(s, &spec.location, &spec.name);
            }
            let id = EndpointId(self.endpoints.len().min(u16::MAX as usize) as u16);
            self.endpoint_ids.entry(spec.name.clone()).or_insert(id);
            self.endpoints.push(Endpoint {
                name: spec.name.clone(),
                kind: spec.kind,
                storage: spec.storage.clone(),
            });
        }
    }

    fn storage(&mut self, s: &StorageSettings, loc: &str, name: &str) {
        if s.container_name.as_deref().is_none_or(str::is_empty) {
            self.err(
                "E0422",
                loc,
                name,
                "storage endpoint needs a containerName".into(),
            );
        }
        if let Some(format) = &s.file_name_format {
            if let Err(why) = crate::sink::validate_file_name_format(format) {
                self.err("E0423", &format!("{loc}.fileNameFormat"), name, why);
            }
        }
        if let Some(f) = s
            .batch_frequency_in_seconds
            .filter(|f| !(60..=720).contains(f))
        {
            self.err(
                "E0424",
                &format!("{loc}.batchFrequencyInSeconds"),
                name,
                format!("batchFrequencyInSeconds is {f}; it must be 60 to 720"),
            );
        }
        if let Some(c) = s
            .max_chunk_size_in_bytes
            .filter(|c| !(10_485_760..=524_288_000).contains(c))
        {
            self.err(
                "E0425",
                &format!("{loc}.maxChunkSizeInBytes"),
                name,
                format!("maxChunkSizeInBytes is {c}; it must be 10485760 to 524288000"),
            );
        }
        if let Some(e) = &s.encoding {
            // The storage sink's own parse, so `run` accepts exactly what passes here.
            match e.parse::<StorageEncoding>() {
                Err(_) => self.err(
                    "E0426",
                    &format!("{loc}.encoding"),
                    name,
                    format!("encoding '{e}' is not avro, avrodeflate or json"),
                ),
                #[cfg(not(feature = "avro"))]
                Ok(StorageEncoding::Avro | StorageEncoding::AvroDeflate) => self.err(
                    "E0426",
                    &format!("{loc}.encoding"),
                    name,
                    format!("encoding '{e}' needs hubroute built with the `avro` feature"),
                ),
                Ok(_) => {}
            }
        }
    }

    fn condition(
        &mut self,
        text: Option<&str>,
        source: Source,
        loc: &str,
        name: &str,
    ) -> Option<Condition> {
        let text = text.filter(|t| !t.trim().is_empty())?;
        let cloc = format!("{loc}.condition");
        match Condition::compile(text, &condition_options_in(source, self.dialect)) {
            Ok(c) => {
                for w in c.warnings() {
                    self.push(ConfigDiagnostic::in_condition(
                        cloc.clone(),
                        name,
                        text,
                        w.clone(),
                    ));
                }
                if source == Source::DeviceMessages
                    && c.program().reads_body()
                    && !mentions_content_type(text)
                {
                    self.push(
                        ConfigDiagnostic::warning(
                            codes::BODY_NEEDS_CONTENT_TYPE,
                            cloc.clone(),
                            "this route reads $body: messages without contentType 'application/json' and contentEncoding utf-8/utf-16/utf-32 never match it (their body is unreadable)",
                        )
                        .named(name),
                    );
                }
                Some(c)
            }
            Err(e) => {
                for d in e.0 {
                    self.push(ConfigDiagnostic::in_condition(cloc.clone(), name, text, d));
                }
                None
            }
        }
    }

    fn routes(&mut self) -> Vec<Route> {
        let config = self.config;
        if config.routes.len() > MAX_ROUTES {
            self.err(
                "E0415",
                "routes",
                "",
                format!(
                    "{} routes; IoT Hub allows at most {MAX_ROUTES}",
                    config.routes.len()
                ),
            );
        }
        let mut routes = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for spec in &config.routes {
            let (loc, name) = (spec.location.as_str(), spec.name.as_str());
            if !valid_name(name) {
                self.err(
                    "E0410",
                    loc,
                    name,
                    format!("invalid route name '{name}': use 1-64 of A-Z a-z 0-9 - . _"),
                );
            } else if !names.insert(name.to_ascii_lowercase()) {
                self.err(
                    "E0410",
                    loc,
                    name,
                    format!("route name '{name}' is used twice"),
                );
            }
            let source = match spec.source.parse::<Source>() {
                Ok(s) => Some(s),
                Err(e) => {
                    self.err("E0411", &format!("{loc}.source"), name, e.to_string());
                    None
                }
            };
            if spec.is_enabled.is_none() {
                self.err(
                    "E0414",
                    &format!("{loc}.isEnabled"),
                    name,
                    "isEnabled is required (true or false)".into(),
                );
            }
            let endpoint = self.endpoint_ref(&spec.endpoint_names, loc, name);
            let condition = self.condition(
                spec.condition.as_deref(),
                source.unwrap_or(Source::DeviceMessages),
                loc,
                name,
            );
            if self.out.errors() > 0 {
                // No table will be built: keep no compiled conditions.
                routes = Vec::new();
            } else if let (Some(source), Some(endpoint)) = (source, endpoint) {
                routes.push(Route {
                    name: name.to_string(),
                    source,
                    condition,
                    endpoint,
                    enabled: spec.is_enabled.unwrap_or(true),
                });
            }
        }
        routes
    }

    fn fallback(&mut self) -> Option<Route> {
        let spec = self.config.fallback.as_ref()?;
        let loc = "fallbackRoute";
        let name = spec.name.clone().unwrap_or_else(|| "$fallback".into());
        if let Some(src) = &spec.source {
            if src.parse::<Source>().ok() != Some(Source::DeviceMessages) {
                self.err(
                    "E0430",
                    "fallbackRoute.source",
                    &name,
                    format!("the fallback route's source must be DeviceMessages, not '{src}'"),
                );
            }
        }
        if spec.is_enabled.is_none() {
            self.err(
                "E0414",
                "fallbackRoute.isEnabled",
                &name,
                "isEnabled is required (true or false)".into(),
            );
        }
        let endpoint = self.endpoint_ref(&spec.endpoint_names, loc, &name)?;
        let condition = self.condition(
            spec.condition.as_deref(),
            Source::DeviceMessages,
            loc,
            &name,
        );
        Some(Route {
            name,
            source: Source::DeviceMessages,
            condition,
            endpoint,
            enabled: spec.is_enabled.unwrap_or(false),
        })
    }

    fn enrichments(&mut self) -> Vec<Enrichment> {
        let config = self.config;
        if config.enrichments.len() > MAX_ENRICHMENTS {
            self.err(
                "E0441",
                "enrichments",
                "",
                format!(
                    "{} enrichments; IoT Hub allows at most {MAX_ENRICHMENTS}",
                    config.enrichments.len()
                ),
            );
        }
        let mut out = Vec::new();
        let mut keys: HashSet<&str> = HashSet::new();
        for spec in &config.enrichments {
            let (loc, key) = (spec.location.as_str(), spec.key.as_str());
            if key.is_empty() || spec.value.is_empty() {
                self.err(
                    "E0440",
                    loc,
                    key,
                    "an enrichment needs a key and a value".into(),
                );
                continue;
            }
            if !keys.insert(key) {
                self.err(
                    "E0441",
                    loc,
                    key,
                    format!("enrichment key '{key}' is used twice"),
                );
            }
            if !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                self.push(
                    ConfigDiagnostic::warning("W0442", loc, format!("enrichment key '{key}' has characters other than A-Z a-z 0-9 - _ . (IoT Hub documents only those)"))
                        .named(key),
                );
            }
            let value = match EnrichmentValue::parse(&spec.value) {
                Ok(v) => v,
                Err(why) => {
                    self.err("E0440", &format!("{loc}.value"), key, why);
                    continue;
                }
            };
            if spec.endpoint_names.is_empty() {
                self.err(
                    "E0412",
                    &format!("{loc}.endpointNames"),
                    key,
                    "an enrichment needs at least one endpoint name".into(),
                );
            }
            let mut endpoints = Vec::new();
            for name in &spec.endpoint_names {
                if let Some(id) = self.endpoint_ref(std::slice::from_ref(name), loc, key) {
                    endpoints.push(id);
                }
            }
            out.push(Enrichment {
                key: key.to_string(),
                value,
                endpoints,
            });
        }
        out
    }
}

/// Whether a condition's text tests `$contentType` (so the author thought about it).
fn mentions_content_type(text: &str) -> bool {
    text.to_ascii_lowercase().contains("$contenttype")
}
