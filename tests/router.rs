//! The router on real configurations: reading (bare, ARM resource, `az iot hub show`, ARM
//! template), IoT Hub's validation rules, endpoint sets, fallback, enrichments, `$twin`, and
//! explanations.

use hubroute::eval::TwinLookup;
use hubroute::message::{Message, Source};
use hubroute::route::{DirTwinStore, Outcome, RouteTable, TwinResolver};
use serde_json::json;

fn table(config: serde_json::Value) -> RouteTable {
    let build = RouteTable::from_json(&config.to_string(), "testhub");
    build
        .table
        .unwrap_or_else(|| panic!("{:#?}", build.diagnostics))
}

fn codes(config: serde_json::Value) -> Vec<&'static str> {
    RouteTable::from_json(&config.to_string(), "testhub")
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect()
}

fn route(name: &str, source: &str, condition: &str, endpoint: &str) -> serde_json::Value {
    json!({"name": name, "source": source, "condition": condition, "endpointNames": [endpoint], "isEnabled": true})
}

fn msg(app: serde_json::Value) -> Message {
    Message::from_json_value(&json!({"appProperties": app})).unwrap()
}

fn names(t: &RouteTable, m: &Message, s: Source) -> Vec<String> {
    t.route(m, s)
        .endpoints
        .iter()
        .map(|&e| t.endpoint(e).name.clone())
        .collect()
}

fn two_queues() -> serde_json::Value {
    json!({"serviceBusQueues": [{"name": "q1"}, {"name": "q2"}]})
}

#[test]
fn reads_every_document_shape() {
    let routing = json!({"routes": [route("r", "DeviceMessages", "true", "events")]});
    let shapes = [
        routing.clone(),
        json!({"name": "hub1", "properties": {"routing": routing.clone()}}),
        json!({"resources": [{"type": "Microsoft.Storage/storageAccounts"}, {"type": "Microsoft.Devices/IotHubs", "name": "hub2", "properties": {"routing": routing.clone()}}]}),
    ];
    for doc in shapes {
        let t = table(doc);
        assert_eq!(t.routes().len(), 1);
    }
    let t = table(json!({"name": "hub1", "properties": {"routing": routing}}));
    assert_eq!(t.hub_name(), "hub1");
    assert_eq!(codes(json!({"something": 1})), vec!["E0402"]);
    assert_eq!(codes(json!(null)), vec!["E0402"]);
    assert_eq!(
        RouteTable::from_json("{oops", "h").diagnostics[0].code,
        "E0401"
    );
}

#[test]
fn validation_reports_every_problem_with_codes() {
    let config = json!({
        "endpoints": {
            "storageContainers": [
                {"name": "events", "fileNameFormat": "{iothub}/{YYYY}", "batchFrequencyInSeconds": 5, "maxChunkSizeInBytes": 1, "encoding": "xml"}
            ]
        },
        "routes": [
            {"name": "bad name!", "source": "Nope", "condition": "3 + '4' = 7", "endpointNames": ["missing", "also"]},
            route("dup", "DeviceMessages", "true", "events"),
            route("DUP", "DeviceMessages", "true", "events")
        ],
        "fallbackRoute": {"source": "TwinChangeEvents", "endpointNames": ["events"], "isEnabled": true},
        "enrichments": [{"key": "k", "value": "$twin.nope.x", "endpointNames": ["events"]}]
    });
    let got = codes(config);
    for code in [
        "E0420", "E0422", "E0423", "E0424", "E0425", "E0426", "E0410", "E0411", "E0412", "E0413",
        "E0414", "E0101", "E0430", "E0440",
    ] {
        assert!(got.contains(&code), "{code} missing from {got:?}");
    }
    let build = RouteTable::from_json(
        &json!({"routes": [route("r", "DeviceMessages", "a = (b", "events")]}).to_string(),
        "h",
    );
    let d = build
        .diagnostics
        .iter()
        .find(|d| d.code == "E0004")
        .expect("condition error");
    assert_eq!(d.location, "routes[0].condition");
    assert_eq!(d.name.as_deref(), Some("r"));
    let (text, cd) = d.condition.as_ref().unwrap();
    assert_eq!(&text[cd.span.range()], "(");
    let many: Vec<_> = (0..101)
        .map(|i| route(&format!("r{i}"), "DeviceMessages", "true", "events"))
        .collect();
    assert!(codes(json!({"routes": many})).contains(&"E0415"));
}

#[test]
fn endpoints_once_each_in_order_and_disabled_routes_skipped() {
    let t = table(json!({
        "endpoints": two_queues(),
        "routes": [
            route("a", "DeviceMessages", "k = '1'", "q2"),
            route("b", "DeviceMessages", "true", "q1"),
            route("c", "DeviceMessages", "k = '1'", "q2"),
            {"name": "d", "source": "DeviceMessages", "endpointNames": ["events"], "isEnabled": false},
            route("e", "TwinChangeEvents", "true", "events")
        ]
    }));
    assert_eq!(
        names(&t, &msg(json!({"k": "1"})), Source::DeviceMessages),
        ["q2", "q1"]
    );
    assert_eq!(
        names(&t, &msg(json!({"k": "2"})), Source::DeviceMessages),
        ["q1"]
    );
    assert_eq!(
        names(&t, &msg(json!({})), Source::TwinChangeEvents),
        ["events"]
    );
}

#[test]
fn fallback_only_for_unmatched_device_messages() {
    let t = table(json!({
        "endpoints": two_queues(),
        "routes": [route("hot", "DeviceMessages", "path = 'hot'", "q1"), route("twin", "TwinChangeEvents", "false", "q2")],
        "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": true}
    }));
    let r = t.route(&msg(json!({"path": "hot"})), Source::DeviceMessages);
    assert!(!r.fallback);
    assert_eq!(
        names(&t, &msg(json!({"path": "cold"})), Source::DeviceMessages),
        ["events"]
    );
    assert!(
        t.route(&msg(json!({"path": "cold"})), Source::DeviceMessages)
            .fallback
    );
    assert!(
        t.route(&msg(json!({})), Source::TwinChangeEvents)
            .endpoints
            .is_empty(),
        "fallback covers device messages only"
    );
    let off = table(
        json!({"routes": [], "fallbackRoute": {"source": "DeviceMessages", "endpointNames": ["events"], "isEnabled": false}}),
    );
    assert!(off
        .route(&msg(json!({})), Source::DeviceMessages)
        .endpoints
        .is_empty());
}

fn twin_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/twins")
}

#[test]
fn twin_conditions_and_enrichments() {
    let t = table(json!({
        "name": "contoso",
        "properties": {"routing": {
            "endpoints": two_queues(),
            "routes": [route("prod", "DeviceMessages", "$twin.tags.environment = 'production' AND $twin.properties.reported.battery > 50", "q1")],
            "enrichments": [
                {"key": "hub", "value": "$iothubname", "endpointNames": ["q1", "q2"]},
                {"key": "where", "value": "$twin.tags.location", "endpointNames": ["q1"]},
                {"key": "battery", "value": "$twin.properties.reported.battery", "endpointNames": ["q1"]},
                {"key": "nothing", "value": "$twin.tags.nothing", "endpointNames": ["q1"]},
                {"key": "fixed", "value": "v2", "endpointNames": ["q2"]}
            ]
        }}
    }));
    let store = DirTwinStore::new(twin_dir());
    let resolver = TwinResolver::new(&store);
    let m = Message::from_json_value(
        &json!({"systemProperties": {"connectionDeviceId": "thermostat-17"}}),
    )
    .unwrap();
    let unknown =
        Message::from_json_value(&json!({"systemProperties": {"connectionDeviceId": "nobody"}}))
            .unwrap();
    let q1 = t.endpoint_id("q1").unwrap();
    assert_eq!(
        t.route_with_twin(&m, Source::DeviceMessages, &resolver)
            .endpoints
            .as_slice(),
        [q1]
    );
    assert!(t
        .route_with_twin(&unknown, Source::DeviceMessages, &resolver)
        .endpoints
        .is_empty());
    assert!(
        t.route(&m, Source::DeviceMessages).endpoints.is_empty(),
        "no twin store: $twin is undefined"
    );
    let lookup: &dyn TwinLookup = &resolver;
    let e = t.enrich(&m, q1, Source::DeviceMessages, Some(lookup));
    let app = &e.app_properties;
    assert_eq!(app.get("hub"), Some(Some("contoso")));
    assert_eq!(app.get("where"), Some(Some("building-43")));
    assert_eq!(app.get("battery"), Some(Some("87")));
    assert_eq!(
        app.get("nothing"),
        Some(Some("$twin.tags.nothing")),
        "missing twin path stamps the path"
    );
    assert_eq!(app.get("fixed"), None, "enrichments are per endpoint");
    let e2 = t.enrich(
        &unknown,
        t.endpoint_id("q2").unwrap(),
        Source::DeviceMessages,
        Some(lookup),
    );
    assert_eq!(e2.app_properties.get("fixed"), Some(Some("v2")));
    let dt = t.enrich(&m, q1, Source::DigitalTwinChangeEvents, Some(lookup));
    assert!(
        dt.app_properties.is_empty(),
        "digital twin change events are not enriched"
    );
}

#[test]
fn explain_says_why() {
    let t = table(json!({
        "endpoints": two_queues(),
        "routes": [
            route("hot", "DeviceMessages", "$body.t > 50 AND path = 'hot'", "q1"),
            {"name": "off", "source": "DeviceMessages", "endpointNames": ["q2"], "isEnabled": false}
        ],
        "fallbackRoute": {"source": "DeviceMessages", "endpointNames": ["events"], "isEnabled": true}
    }));
    let m =
        Message::from_json_value(&json!({"appProperties": {"path": "hot"}, "body": "{\"t\": 60}"}))
            .unwrap();
    let e = t.explain(&m, Source::DeviceMessages, None);
    assert_eq!(e.routes[0].outcome, Outcome::Undefined);
    assert_eq!(e.routes[1].outcome, Outcome::Disabled);
    assert!(e.fell_back);
    assert_eq!(e.endpoints, ["events"]);
    assert!(
        e.notes.iter().any(|n| n.contains("body is not queryable")),
        "{:?}",
        e.notes
    );
    assert!(
        e.notes.iter().any(|n| n.starts_with("fell back")),
        "{:?}",
        e.notes
    );
    let tree = e.routes[0].condition.as_ref().unwrap();
    assert_eq!(tree.value, "undefined");
    let body_leaf = &tree.children[0].children[0];
    assert_eq!(
        (body_leaf.text.as_str(), body_leaf.value.as_str()),
        ("$body.t", "undefined")
    );
    let ok = Message::from_json_value(&json!({
        "systemProperties": {"contentType": "application/json", "contentEncoding": "utf-8"},
        "appProperties": {"path": "hot"}, "body": "{\"t\": 60}"
    }))
    .unwrap();
    let e = t.explain(&ok, Source::DeviceMessages, None);
    assert_eq!(e.routes[0].outcome, Outcome::True);
    assert_eq!(
        e.routes[0].condition.as_ref().unwrap().children[0].children[0].value,
        "60"
    );
    assert!(!e.fell_back);
}

#[test]
fn cli_test_and_check_routes() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let o = run(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--message",
        "examples/messages/weather-hot.json",
        "--expect",
        "hotpath",
        "--expect",
        "alerts",
        "--expect",
        "coldstorage",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("system properties: contentType=application/json"),
        "{out}"
    );
    let o = run(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--message",
        "examples/messages/weather-no-content-type.json",
        "--explain",
        "--expect",
        "hotpath",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("$body.Weather.Temperature  => undefined"),
        "{out}"
    );
    let o = run(&[
        "check",
        "--routes",
        "examples/routing.json",
        "--format",
        "json",
    ]);
    assert!(o.status.success());
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["errors"], 0);
    let o = run(&["fmt", "--routes", "examples/routing.json"]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("alerts: as_number(severity) <= 2"), "{out}");
}

#[test]
fn cli_run_routes_a_stream_and_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("hubroute-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = |name: &str| dir.join(name).display().to_string();
    let sink = |name: &str, url: String| format!("{name}={url}");
    let args = vec![
        "run".to_string(),
        "--routes".into(),
        "examples/routing.json".into(),
        "--input".into(),
        "examples/messages.jsonl".into(),
        "--twin-dir".into(),
        "examples/twins".into(),
        "--dead-letter".into(),
        p("dead.jsonl"),
        "--store".into(),
        p("store"),
        "--sink".into(),
        sink("hotpath", format!("file:{}", p("hot.jsonl"))),
        "--sink".into(),
        sink("alerts", format!("file:{}", p("alerts.jsonl"))),
        "--sink".into(),
        sink("events", format!("file:{}", p("events.jsonl"))),
        "--sink".into(),
        sink("coldstorage", format!("storage:{}", p("cold"))),
    ];
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{stderr}");
    let lines = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // 14 lines: 2 invalid (line 6: body and bodyBase64; line 10: not JSON), 12 valid.
    let dead = lines("dead.jsonl");
    assert_eq!(
        dead.iter()
            .map(|d| d["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [6, 10]
    );
    assert!(
        stderr.contains("examples/messages.jsonl:6: invalid message [E0305]"),
        "{stderr}"
    );
    assert!(stderr.contains("invalid: 2"), "{stderr}");
    // hot-path: processingPath hot (every 3rd) with a readable body and Temperature > 50.
    let hot = lines("hot.jsonl");
    assert_eq!(hot.len(), 2);
    assert!(
        hot.iter().all(|h| h["Properties"]["pipeline"] == "v2"),
        "enrichment on hotpath"
    );
    // alerts: severity <= 2.
    assert_eq!(lines("alerts.jsonl").len(), 6);
    // Everything valid is archived, enriched with the hub name and the twin's location.
    let cold: Vec<_> = std::fs::read_dir(dir.join("cold/contoso-hub/0"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert_eq!(cold, [1], "one year directory under hub/partition");
    assert!(
        stderr.contains("coldstorage: routed 12, delivered 12"),
        "{stderr}"
    );
    // Nothing fell back: every valid message matched archive-everything.
    assert!(lines("events.jsonl").is_empty());
    // Refuses to start with an endpoint unbound.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args([
            "run",
            "--routes",
            "examples/routing.json",
            "--input",
            "examples/messages.jsonl",
            "--sink",
            "hotpath=stdout:",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no sink bound for endpoints"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A twin lookup that itself routes a message through the same table while the outer message
/// is being routed: `RouteTable::route` then cannot use its thread's scratch buffers (the outer
/// call holds them) and must route the inner message with fresh ones, with the same answers.
#[test]
fn a_twin_lookup_may_route_through_the_same_table() {
    struct Reentrant<'t> {
        table: &'t RouteTable,
        inner: Message,
    }
    impl TwinLookup for Reentrant<'_> {
        fn twin_value<'v>(
            &'v self,
            _: &Message,
            _: &hubroute::body::BodyPath,
        ) -> hubroute::eval::Value<'v> {
            let inner = self.table.route(&self.inner, Source::DeviceMessages);
            hubroute::eval::Value::Number(inner.endpoints.len() as f64)
        }
    }
    let t = table(json!({
        "endpoints": {"eventHubs": [{"name": "hot"}, {"name": "twin"}]},
        "routes": [
            route("hot", "DeviceMessages", "$body.t > 50", "hot"),
            route("twin", "DeviceMessages", "$body.t > 0 AND $twin.tags.n = 1", "twin"),
        ],
    }));
    let with_body = |t: u32| {
        Message::from_json_value(&json!({
            "systemProperties": {"contentType": "application/json", "contentEncoding": "utf-8"},
            "body": format!("{{\"t\": {t}}}"),
        }))
        .unwrap()
    };
    let twin = Reentrant {
        table: &t,
        inner: with_body(90),
    };
    let outer = with_body(10);
    let names = |r: hubroute::route::Routing| -> Vec<String> {
        r.endpoints
            .iter()
            .map(|&e| t.endpoint(e).name.clone())
            .collect()
    };
    // The inner message goes to `hot` (one endpoint: `$twin.tags.n` is 1), so the outer one,
    // not hot, goes to `twin`; twice, to see that the thread's buffers were left usable.
    for _ in 0..2 {
        assert_eq!(
            names(t.route_with_twin(&outer, Source::DeviceMessages, &twin)),
            ["twin"]
        );
        assert_eq!(
            names(t.route(&with_body(90), Source::DeviceMessages)),
            ["hot"]
        );
    }
}
