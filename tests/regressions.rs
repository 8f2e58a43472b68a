//! Replays every case in `tests/regressions/`: inputs that crashed, hung or made two
//! evaluators disagree (found by the fuzz targets in `fuzz/`, or written by hand for the
//! limits), each checked with the same oracle as the fuzz target it belongs to.
//!
//! One case per file, `<target>-<what>.json`:
//!
//! ```json
//! {
//!   "target": "parse" | "condition" | "message" | "routing_config",
//!   "input": "text" | ["text", {"repeat": "(", "times": 100000}, ...],
//!   "input_base64": "...",            // instead of input, for bytes (read as lossy UTF-8)
//!   "options": "iot_hub" | "edge_none",   // condition: default iot_hub
//!   "message": { ...message JSON... },    // condition, routing_config: default {};
//!                                         // its "body" may be given in parts like input
//!   "expect": { ... },                    // per target, see `check_*`
//!   "found_by": "fuzz target or test", "note": "what went wrong and what fixed it"
//! }
//! ```

use std::path::{Path, PathBuf};

use base64::Engine;
use hubroute::eval::EvalContext;
use hubroute::message::{Message, Protocol, Source};
use hubroute::route::RouteTable;
use hubroute::syntax::{parse, parse_with_limits, Limits};
use hubroute::{Bool3, Condition, Options};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions")
}

/// `input` as text: a string, or a list of strings and `{"repeat": s, "times": n}` parts
/// (so a 200 KB input stays a one-line file); or `input_base64`, decoded as lossy UTF-8.
fn input(case: &Value) -> String {
    if let Some(b64) = case["input_base64"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("input_base64 is base64");
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    expand(&case["input"])
}

/// A string, or a list of strings and `{"repeat": s, "times": n}` parts.
fn expand(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                p => p["repeat"]
                    .as_str()
                    .expect("repeat")
                    .repeat(p["times"].as_u64().expect("times") as usize),
            })
            .collect(),
        other => panic!("input must be a string or a list, not {other}"),
    }
}

fn bool3(s: &str) -> Bool3 {
    match s {
        "true" => Bool3::True,
        "false" => Bool3::False,
        "undefined" => Bool3::Undefined,
        other => panic!("unknown result {other:?}"),
    }
}

fn message(case: &Value) -> Message {
    match case.get("message") {
        None => Message::default(),
        Some(m) => {
            // `body` may be given in parts, like `input`.
            let mut m = m.clone();
            if let Some(body) = m.get_mut("body").filter(|b| b.is_array()) {
                *body = Value::String(expand(body));
            }
            Message::from_json_value(&m).expect("case message loads")
        }
    }
}

fn unlimited_length() -> Limits {
    Limits {
        max_length: usize::MAX,
        ..Limits::default()
    }
}

/// The `parse` fuzz target's oracle: no panic under any limits; what parses prints to text
/// that reparses to the same printed text; what compiles evaluates the same in both
/// evaluators. `expect`: `{"code": "E…"}` or `{"printed": "…"}`.
fn check_parse(case: &Value, text: &str) {
    let _ = parse_with_limits(
        text,
        &Limits {
            max_length: 256,
            max_depth: 4,
        },
    );
    let expect = &case["expect"];
    match parse(text) {
        Err(e) => {
            let code = e.0[0].code;
            assert_eq!(Some(code), expect["code"].as_str(), "unexpected error {e}");
        }
        Ok(ast) => {
            assert!(expect.get("code").is_none(), "expected an error");
            let printed = ast.to_string();
            if let Some(want) = expect["printed"].as_str() {
                assert_eq!(printed, want);
            }
            let again = parse_with_limits(&printed, &unlimited_length())
                .unwrap_or_else(|e| panic!("printed {printed:?} does not reparse: {e}"));
            assert_eq!(again.to_string(), printed, "printing is not canonical");
        }
    }
    for options in [Options::iot_hub(), Options::edge_none()] {
        if let Ok(cond) = Condition::compile(text, &options) {
            let msg = Message::default();
            assert_eq!(
                cond.eval(&msg),
                cond.eval_reference(&EvalContext::new(&msg))
            );
        }
    }
}

/// The `eval` / `differential` oracle on one condition and message: compiled program and
/// reference interpreter agree, and the printed form evaluates the same.
/// `expect`: `{"code": "E…"}` (compile error) or `{"result": "true|false|undefined"}`.
fn check_condition(case: &Value, text: &str) {
    let options = match case["options"].as_str().unwrap_or("iot_hub") {
        "iot_hub" => Options::iot_hub(),
        "edge_none" => Options::edge_none(),
        other => panic!("unknown options {other:?}"),
    };
    let expect = &case["expect"];
    let cond = match Condition::compile(text, &options) {
        Err(e) => {
            assert_eq!(Some(e.0[0].code), expect["code"].as_str(), "{e}");
            return;
        }
        Ok(c) => c,
    };
    assert!(expect.get("code").is_none(), "expected a compile error");
    let msg = message(case);
    let fast = cond.eval(&msg);
    assert_eq!(
        fast,
        cond.eval_reference(&EvalContext::new(&msg)),
        "compiled vs reference"
    );
    if let Some(want) = expect["result"].as_str() {
        assert_eq!(fast, bool3(want));
    }
    let printed = cond.ast().to_string();
    let reprinted = Condition::compile_with_limits(&printed, &options, &unlimited_length())
        .unwrap_or_else(|e| panic!("printed {printed:?} no longer compiles: {e}"));
    assert_eq!(reprinted.eval(&msg), fast, "printed {printed:?}");
}

/// The `message` oracle: loading gives a coded error or a message that validates and
/// round-trips. `expect`: `{"code": "E03…"}` or `{"violations": ["E03…", ...]}` (MQTT).
fn check_message(case: &Value, text: &str) {
    let expect = &case["expect"];
    match Message::from_json_str(text) {
        Err(e) => assert_eq!(Some(e.code()), expect["code"].as_str(), "{e}"),
        Ok(m) => {
            assert!(expect.get("code").is_none(), "expected a load error");
            let codes: Vec<&str> = m
                .validate(Protocol::Mqtt)
                .into_iter()
                .map(|v| v.code)
                .collect();
            if let Some(want) = expect["violations"].as_array() {
                let want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
                assert_eq!(codes, want);
            }
            let back = Message::from_json_value(&m.to_json_value()).expect("round trip");
            assert_eq!(back.body, m.body);
        }
    }
}

/// The `routing_config` oracle: coded diagnostics, and a built table routes the message
/// from every source as `explain` says. `expect`: `{"codes": [...]}` (each must appear),
/// `{"table": true|false}`, `{"endpoints": [...]}` (device messages).
fn check_routing_config(case: &Value, text: &str) {
    let expect = &case["expect"];
    let build = RouteTable::from_json(text, "hub");
    let codes: Vec<&str> = build.diagnostics.iter().map(|d| d.code).collect();
    for want in expect["codes"].as_array().into_iter().flatten() {
        let want = want.as_str().unwrap();
        assert!(codes.contains(&want), "{want} not in {codes:?}");
    }
    if let Some(want) = expect["table"].as_bool() {
        assert_eq!(build.table.is_some(), want, "{:?}", build.diagnostics);
    }
    let Some(table) = build.table else { return };
    let msg = message(case);
    for source in Source::ALL {
        let routing = table.route(&msg, source);
        let names: Vec<&str> = routing
            .endpoints
            .iter()
            .map(|&id| table.endpoint(id).name.as_str())
            .collect();
        assert_eq!(names, table.explain(&msg, source, None).endpoints);
        if source == Source::DeviceMessages {
            if let Some(want) = expect["endpoints"].as_array() {
                let want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
                assert_eq!(names, want);
            }
        }
    }
}

fn run(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let input = input(&case);
    let target = case["target"].as_str().unwrap_or_default().to_string();
    let outcome = std::panic::catch_unwind(|| match target.as_str() {
        "parse" => check_parse(&case, &input),
        "condition" => check_condition(&case, &input),
        "message" => check_message(&case, &input),
        "routing_config" => check_routing_config(&case, &input),
        other => panic!("unknown target {other:?}"),
    });
    outcome.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn every_regression_case_passes() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/regressions exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no regression cases found");
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| run(p).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} regression cases failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
}
