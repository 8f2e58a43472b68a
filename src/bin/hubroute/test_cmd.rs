//! `hubroute test`: like `az iot hub message-route test` and IoT Hub's REST test-route API,
//! offline, with no hidden defaults and with `--explain`.
//!
//! Input: a message JSON file, or the request body of `routing/routes/$testall`
//! (`{routingSource, message: {body, appProperties, systemProperties}, twin: {tags, properties}}`)
//! or `routing/routes/$testnew` (`{message, route: {name, source, condition, endpointNames,
//! isEnabled}, twin}`), plus the inline flags of `az iot hub message-route test` (`--body`,
//! `--app-property`, `--system-property`, `--route`, `--source`). `--format json` answers in the
//! API's response shapes (`{routes: [{properties: …}]}` for test-all, `{result, details:
//! {compilationErrors}}` for one route), so a pipeline written against the cloud runs unchanged.

use crate::output::{errln, outln};
use crate::routes_cmd::{load_table_in, render_config};
use clap::{Args, ValueEnum};
use hubroute::eval::TwinLookup;
use hubroute::message::naming::canonical_name;
use hubroute::message::{Message, Source};
use hubroute::route::config::{EndpointKind, EndpointSpec, RouteSpec, RoutingConfig};
use hubroute::route::{
    DirTwinStore, EnrichmentValue, Explanation, FixedTwin, NodeExplanation, Outcome, RouteTable,
    TwinResolver,
};
use hubroute::span::SourceMap;
use hubroute::Dialect;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// IoT Hub's REST response shapes: `{"routes": [...]}`, or `{"result", "details"}` for one
    /// route.
    Json,
    /// The message and every route's explanation as JSON.
    ExplainJson,
}

#[derive(Args)]
pub struct TestArgs {
    /// The routing configuration: a hub's `properties.routing` JSON, an ARM resource or
    /// template, or `az iot hub show` output. Not needed for a `$testnew` request, which brings
    /// its route.
    #[arg(long)]
    pub routes: Option<PathBuf>,
    /// The message as JSON ({"systemProperties": {...}, "appProperties": {...}, "body": "..."}),
    /// or a request body of IoT Hub's `$testall` or `$testnew` API; `-` reads standard input.
    #[arg(long, short)]
    pub message: Option<PathBuf>,
    /// The message body (replaces the file's).
    #[arg(long, short)]
    pub body: Option<String>,
    /// An application property NAME=VALUE (repeat the flag).
    #[arg(long = "app-property", value_name = "NAME=VALUE")]
    pub app_properties: Vec<String>,
    /// A system property NAME=VALUE, in any of IoT Hub's spellings (contentType,
    /// content-type, iothub-connection-device-id, ...; repeat the flag).
    #[arg(long = "system-property", value_name = "NAME=VALUE")]
    pub system_properties: Vec<String>,
    /// Test this route of the configuration only, as `$testnew` does (answers true, false or
    /// undefined, whether or not the route is enabled).
    #[arg(long)]
    pub route: Option<String>,
    /// The message's source (default: the request's `routingSource`, the message's own
    /// "source", else DeviceMessages).
    #[arg(long)]
    pub source: Option<String>,
    /// The query language of the conditions: hub (IoT Hub, as Learn documents it) or edge
    /// (the IoT Edge engine, with body queries and twin_change_includes on).
    #[arg(long, default_value = "hub")]
    pub dialect: Dialect,
    /// Show, for every route, the sub-expressions and values that decided it.
    #[arg(long)]
    pub explain: bool,
    /// A directory of device twins (`<deviceId>.json`) for `$twin` references and enrichments.
    #[arg(long)]
    pub twin_dir: Option<PathBuf>,
    /// The hub name for `$iothubname` when the configuration does not name the hub.
    #[arg(long, default_value = "hubroute")]
    pub hub_name: String,
    /// Expect exactly these endpoints (repeat the flag); exit 1 otherwise. `--expect none`
    /// expects the message to go nowhere.
    #[arg(long)]
    pub expect: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Same as `--format explain-json` (kept for existing scripts).
    #[arg(long, hide = true)]
    pub json: bool,
}

/// What the input asked for.
struct Request {
    message: Message,
    /// `routingSource` of a `$testall` request.
    source: Option<Source>,
    /// The `route` of a `$testnew` request.
    route: Option<RouteSpec>,
    /// The request's `twin`.
    twin: Option<FixedTwin>,
}

/// Whether a JSON document is a REST request body rather than a message.
fn is_rest_request(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.contains_key("routingSource")
            || o.contains_key("route")
            || o.contains_key("twin")
            || o.get("message").is_some_and(Value::is_object)
    })
}

fn load_request(path: &Path) -> Result<Request, String> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("reading stdin: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    };
    let fail = |m: String| format!("{}: {m}", path.display());
    // The message loader keeps property order and says what is wrong, with its code.
    let plain =
        |text: &str| Message::from_json_str(text).map_err(|e| fail(format!("[{}] {e}", e.code())));
    let mut req = Request {
        message: Message::default(),
        source: None,
        route: None,
        twin: None,
    };
    let value = match serde_json::from_str::<Value>(&text) {
        Ok(v) if is_rest_request(&v) => v,
        _ => {
            req.message = plain(&text)?;
            return Ok(req);
        }
    };
    // Members as raw text, so the message's properties keep their order.
    let members = serde_json::from_str::<std::collections::BTreeMap<String, &RawValue>>(&text)
        .map_err(|e| fail(e.to_string()))?;
    for (key, raw) in members {
        let v = &value[key.as_str()];
        match key.as_str() {
            "routingSource" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| fail("'routingSource' must be a string".into()))?;
                req.source = Some(s.parse().map_err(|e| fail(format!("routingSource: {e}")))?);
            }
            "message" if !v.is_null() => {
                req.message = Message::from_json_str(raw.get())
                    .map_err(|e| fail(format!("message: [{}] {e}", e.code())))?;
            }
            "twin" if !v.is_null() => {
                req.twin = Some(FixedTwin::parse(raw.get()).map_err(fail)?);
            }
            "route" => req.route = Some(route_spec(v).map_err(fail)?),
            "message" | "twin" => {}
            other => {
                return Err(fail(format!(
                "unknown request field '{other}'; expected routingSource, message, twin or route"
            )))
            }
        }
    }
    Ok(req)
}

/// The `route` of a `$testnew` request (`RouteProperties`).
fn route_spec(v: &Value) -> Result<RouteSpec, String> {
    let o = v.as_object().ok_or("'route' must be an object")?;
    let string = |k: &str| -> Result<Option<String>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("route.{k} must be a string")),
        }
    };
    let endpoint_names = match o.get("endpointNames") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|e| {
                e.as_str()
                    .map(str::to_string)
                    .ok_or("route.endpointNames must be strings")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("route.endpointNames must be an array of names".into()),
    };
    Ok(RouteSpec {
        location: "route".into(),
        name: string("name")?.unwrap_or_else(|| "route".into()),
        source: string("source")?.unwrap_or_else(|| "DeviceMessages".into()),
        condition: string("condition")?,
        endpoint_names,
        is_enabled: Some(o.get("isEnabled").and_then(Value::as_bool).unwrap_or(true)),
    })
}

/// Applies `--body`, `--app-property` and `--system-property`.
fn apply_inline(args: &TestArgs, message: &mut Message) -> Result<(), String> {
    if let Some(b) = &args.body {
        message.body = b.clone().into_bytes();
    }
    let split = |flag: &str, spec: &str| -> Result<(String, String), String> {
        spec.split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("--{flag} {spec}: expected NAME=VALUE"))
    };
    for spec in &args.app_properties {
        let (k, v) = split("app-property", spec)?;
        message.app_properties.insert(k, Some(v));
    }
    for spec in &args.system_properties {
        let (k, v) = split("system-property", spec)?;
        let name = canonical_name(&k).map_or(k, str::to_string);
        message.system_properties.insert(name, Some(v));
    }
    Ok(())
}

/// One route as a table of its own, as `$testnew` tests it: enabled, with its endpoints
/// standing as Event Hubs endpoints (the endpoint's kind does not change the answer).
fn single_route_table(
    route: &RouteSpec,
    hub_name: &str,
    dialect: Dialect,
) -> hubroute::route::Build {
    let mut route = route.clone();
    route.is_enabled = Some(true);
    let endpoints = route
        .endpoint_names
        .iter()
        .filter(|n| n.as_str() != "events")
        .enumerate()
        .map(|(i, n)| EndpointSpec {
            location: format!("endpoints.eventHubs[{i}]"),
            name: n.clone(),
            kind: EndpointKind::EventHub,
            storage: None,
        })
        .collect();
    let config = RoutingConfig {
        routes: vec![route],
        endpoints,
        ..RoutingConfig::default()
    };
    RouteTable::build_in(&config, hub_name, dialect)
}

pub fn test(args: TestArgs) -> Result<ExitCode, String> {
    let mut req = match &args.message {
        Some(p) => load_request(p)?,
        None => Request {
            message: Message::default(),
            source: None,
            route: None,
            twin: None,
        },
    };
    apply_inline(&args, &mut req.message)?;
    let format = if args.json {
        Format::ExplainJson
    } else {
        args.format
    };

    // The route under test, when one is: `--route NAME` of the configuration, or the request's.
    let origin: PathBuf;
    let build = match (&req.route, &args.route, &args.routes) {
        (Some(route), _, _) => {
            origin = args.message.clone().unwrap_or_default();
            Some((
                single_route_table(route, &args.hub_name, args.dialect),
                route.clone(),
            ))
        }
        (None, Some(name), Some(routes)) => {
            origin = routes.clone();
            let text = std::fs::read_to_string(routes)
                .map_err(|e| format!("cannot read {}: {e}", routes.display()))?;
            let (config, _) = hubroute::route::config::read(&text);
            let route = config
                .routes
                .iter()
                .find(|r| r.name == *name)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
                    format!(
                        "--route {name}: no such route in {} (routes: {})",
                        routes.display(),
                        names.join(", ")
                    )
                })?;
            Some((
                single_route_table(&route, &args.hub_name, args.dialect),
                route,
            ))
        }
        (None, _, None) => {
            return Err(
                "--routes FILE is needed (or a $testnew request with its route as --message)"
                    .into(),
            )
        }
        (None, None, Some(routes)) => {
            origin = routes.clone();
            None
        }
    };

    let (table, single) = match build {
        Some((b, route)) => match b.table {
            Some(t) => (t, Some(route)),
            None => return report_compile_errors(&origin, &b.diagnostics, format),
        },
        None => match load_table_in(&origin, &args.hub_name, args.dialect)? {
            Ok(t) => (t, None),
            Err(code) => return Ok(code),
        },
    };

    let source = match &args.source {
        Some(s) => s.parse::<Source>().map_err(|e| format!("--source: {e}"))?,
        None => req
            .source
            .or(req.message.source)
            .or_else(|| single.as_ref().and_then(|r| r.source.parse().ok()))
            .unwrap_or(Source::DeviceMessages),
    };

    // Twins: the request's, else the directory's; what could not be used is said.
    let store = args.twin_dir.as_ref().map(DirTwinStore::new);
    let resolver = store.as_ref().map(|s| TwinResolver::new(s));
    let twin: Option<&dyn TwinLookup> = match (&req.twin, &resolver) {
        (Some(t), _) => Some(t),
        (None, Some(r)) => Some(r),
        (None, None) => None,
    };
    let explanation = table.explain(&req.message, source, twin);
    let mut warnings = Vec::new();
    if let Some(s) = &store {
        warnings.extend(
            s.directory_problem()
                .map(|p| format!("warning[{}]: {p}", p.code())),
        );
        warnings.extend(
            s.problems()
                .iter()
                .map(|p| format!("warning[{}]: {p}", p.code())),
        );
    } else if req.twin.is_none() && reads_twin(&table) {
        warnings.push(
            "warning[W0804]: the routes read $twin but no --twin-dir was given; every $twin value is undefined"
                .to_string(),
        );
    }

    match format {
        Format::Text => {
            print_message(&req.message, source);
            print_explanation(&explanation, args.explain);
            for w in &warnings {
                if args.explain {
                    outln!("{w}");
                } else {
                    errln!("{w}");
                }
            }
        }
        Format::ExplainJson => {
            for w in &warnings {
                errln!("{w}");
            }
            let doc = json!({"message": req.message.to_json_value(), "result": explanation, "warnings": warnings});
            outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
        Format::Json => {
            for w in &warnings {
                errln!("{w}");
            }
            let doc = match &single {
                Some(_) => {
                    let outcome = explanation.routes.first().map(|r| r.outcome.clone());
                    json!({"result": match outcome {
                        Some(Outcome::True) => "true",
                        Some(Outcome::Undefined) => "undefined",
                        _ => "false",
                    }, "details": {"compilationErrors": []}})
                }
                None => test_all_response(&table, &explanation),
            };
            outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        }
    }
    check_expected(&args.expect, &explanation)
}

/// Whether a condition or an enrichment of the table reads the device twin.
fn reads_twin(table: &RouteTable) -> bool {
    table
        .routes()
        .iter()
        .chain(table.fallback())
        .filter_map(|r| r.condition.as_ref())
        .any(|c| c.source().to_ascii_lowercase().contains("$twin"))
        || table
            .enrichments()
            .iter()
            .any(|e| matches!(e.value, EnrichmentValue::Twin { .. }))
}

/// `$testall`'s answer: the routes that matched, as `RouteProperties` (the fallback route too
/// when it fired, as the service reports it).
fn test_all_response(table: &RouteTable, e: &Explanation) -> Value {
    let fallback = e.fallback.iter().filter(|_| e.fell_back);
    let matched = e
        .routes
        .iter()
        .chain(fallback)
        .filter(|r| r.outcome == Outcome::True);
    let routes: Vec<Value> = matched
        .filter_map(|r| {
            let route = table
                .routes()
                .iter()
                .chain(table.fallback())
                .find(|t| t.name == r.name)?;
            Some(json!({"properties": {
                "name": route.name,
                "source": route.source.arm_name(),
                "condition": route.condition.as_ref().map_or("true", |c| c.source()),
                "endpointNames": [table.endpoint(route.endpoint).name],
                "isEnabled": route.enabled,
            }}))
        })
        .collect();
    json!({ "routes": routes })
}

/// A route that does not compile: `$testnew`'s `compilationErrors` (JSON), or the diagnostics.
fn report_compile_errors(
    origin: &Path,
    diagnostics: &[hubroute::route::ConfigDiagnostic],
    format: Format,
) -> Result<ExitCode, String> {
    if format == Format::Json {
        let errors: Vec<Value> = diagnostics
            .iter()
            .map(|d| match &d.condition {
                Some((text, cd)) => {
                    let (start, end) = cd.range(&SourceMap::new(text));
                    json!({"message": cd.message, "severity": cd.severity,
                        "location": {"start": {"line": start.line, "column": start.column},
                                     "end": {"line": end.line, "column": end.column}}})
                }
                None => json!({"message": d.message, "severity": d.severity,
                    "location": {"start": {"line": 0, "column": 0}, "end": {"line": 0, "column": 0}}}),
            })
            .collect();
        let doc = json!({"result": "undefined", "details": {"compilationErrors": errors}});
        outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    } else {
        for d in diagnostics
            .iter()
            .filter(|d| d.is_error() && !crate::routes_cmd::follows(d))
        {
            errln!("{}", render_config(origin, d));
        }
    }
    Ok(ExitCode::from(1))
}

fn check_expected(expect: &[String], explanation: &Explanation) -> Result<ExitCode, String> {
    if expect.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut want: Vec<&str> = expect
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "none")
        .collect();
    let mut got: Vec<&str> = explanation.endpoints.iter().map(String::as_str).collect();
    want.sort_unstable();
    got.sort_unstable();
    if want == got {
        Ok(ExitCode::SUCCESS)
    } else {
        errln!(
            "test failed: expected endpoints [{}], got [{}]",
            want.join(", "),
            got.join(", ")
        );
        Ok(ExitCode::from(1))
    }
}

/// What the message really has: no hidden defaults (the portal adds contentEncoding).
fn print_message(m: &Message, source: Source) {
    outln!("message (source {source})");
    let props = |p: &hubroute::message::Properties| {
        if p.is_empty() {
            return "(none)".to_string();
        }
        p.iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => format!("{k}=null"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    outln!("  system properties: {}", props(&m.system_properties));
    outln!("  application properties: {}", props(&m.app_properties));
    let readable = match m.body_text() {
        Ok(_) => "queryable with $body".to_string(),
        Err(e) => format!("not queryable with $body: {e}"),
    };
    outln!("  body: {} bytes, {readable}", m.body.len());
}

fn print_explanation(e: &Explanation, explain: bool) {
    outln!("routes:");
    for r in e.routes.iter().chain(&e.fallback) {
        let mark = match r.outcome {
            Outcome::True => "match   ",
            Outcome::False => "false   ",
            Outcome::Undefined => "undefined",
            Outcome::Disabled => "disabled",
            Outcome::SourceMismatch => "other source",
        };
        outln!("  {mark:<12} {} -> {}", r.name, r.endpoint);
        if explain {
            if let Some(c) = &r.condition {
                print_node(c, 2);
            }
        }
        for n in &r.notes {
            outln!("               note: {n}");
        }
    }
    for n in &e.notes {
        outln!("note: {n}");
    }
    if e.endpoints.is_empty() {
        outln!("endpoints: (none)");
    } else {
        outln!("endpoints: {}", e.endpoints.join(", "));
    }
}

fn print_node(n: &NodeExplanation, depth: usize) {
    outln!("{}{}  => {}", "    ".repeat(depth), n.text, n.value);
    for c in &n.children {
        print_node(c, depth + 1);
    }
}
