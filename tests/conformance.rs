//! Runs every line of the shared conformance corpus (`../shared/conformance/cases/*.jsonl`):
//! condition records through the compiled evaluator *and* the reference interpreter, JSONPath
//! records through the validators, complexity records through the parser, operator records
//! through the engine's operator algebra. Fails listing every mismatching id.

use hubroute::body::{validate_body_path, validate_twin_change_path};
use hubroute::check::Ty;
use hubroute::eval::dynamic::{self, Dyn};
use hubroute::eval::{EvalContext, Value};
use hubroute::message::Message;
use hubroute::span::SourceMap;
use hubroute::{Bool3, Condition, Dialect, Options};
use serde_json::Value as Json;
use std::path::PathBuf;

fn cases_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases");
    assert!(
        dir.is_dir(),
        "conformance corpus not found at {}: the shared/ folder must sit beside the repository",
        dir.display()
    );
    dir
}

fn load_cases() -> Vec<Json> {
    let mut files: Vec<_> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        for (i, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let case: Json = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", f.display(), i + 1));
            cases.push(case);
        }
    }
    cases
}

fn has_flag(case: &Json, flag: &str) -> bool {
    case["flags"]
        .as_array()
        .is_some_and(|fs| fs.iter().any(|f| f == flag))
}

/// The compiler options a case's flags and source ask for (the corpus convention), in a
/// dialect: the corpus is the Edge engine's, and the hub dialect must give the same answers
/// except where Microsoft Learn documents otherwise (a condition relying on a
/// [`hubroute::check::HubRule`]).
fn options(case: &Json, dialect: Dialect) -> Options {
    Options {
        body_query: has_flag(case, "body_query"),
        twin_change_includes: has_flag(case, "twin_change_includes"),
        twin_change_source: case["message"]["source"] == "twinChangeEvents",
        dialect,
    }
}

fn dyn_value(v: &Json) -> Dyn {
    if v.get("op").is_some() {
        return apply_op(v).expect("nested operator defined");
    }
    match v["type"].as_str().unwrap() {
        "null" => Dyn::Null,
        "undefined" => Dyn::Undefined,
        "string" => Dyn::String(v["value"].as_str().unwrap().to_string()),
        "bool" => Dyn::Bool(match v["value"].as_str().unwrap() {
            "true" => Bool3::True,
            "false" => Bool3::False,
            _ => Bool3::Undefined,
        }),
        "number" => Dyn::Number(match &v["value"] {
            Json::String(s) if s == "NaN" => f64::NAN,
            Json::String(s) if s == "Infinity" => f64::INFINITY,
            Json::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
            n => n.as_f64().unwrap(),
        }),
        t => panic!("unknown type {t}"),
    }
}

fn apply_op(v: &Json) -> Option<Dyn> {
    let operands: Vec<Dyn> = v["operands"]
        .as_array()
        .unwrap()
        .iter()
        .map(dyn_value)
        .collect();
    dynamic::apply(v["op"].as_str().unwrap(), &operands)
}

fn same_dyn(a: &Dyn, b: &Dyn) -> bool {
    match (a, b) {
        (Dyn::Number(x), Dyn::Number(y)) => (x.is_nan() && y.is_nan()) || x == y,
        _ => a == b,
    }
}

/// The condition's value as a typed corpus value (an undefined number is NaN, R27).
fn value_as_dyn(ty: Ty, v: &Value<'_>) -> Dyn {
    match v {
        Value::Undefined if ty == Ty::Number => Dyn::Number(f64::NAN),
        Value::Undefined if ty == Ty::Bool => Dyn::Bool(Bool3::Undefined),
        Value::Undefined => Dyn::Undefined,
        Value::Null | Value::Missing => Dyn::Null,
        Value::Bool(b) => Dyn::Bool(Bool3::from_bool(*b)),
        Value::Number(n) => Dyn::Number(*n),
        Value::Str(s) => Dyn::String(s.to_string()),
        Value::NullStr => Dyn::Null,
    }
}

fn run_condition(case: &Json, dialect: Dialect) -> Result<(), String> {
    let query = case["query"].as_str().unwrap();
    let expect = case["expect"].as_str().unwrap();
    let compiled = Condition::compile(query, &options(case, dialect));
    if expect == "compile_error" {
        let err = match compiled {
            Ok(_) => return Err("compiled, expected a compile error".into()),
            Err(e) => e,
        };
        if let Some(detail) = case.get("error") {
            let first = err.first();
            if let Some(m) = detail["first_message"].as_str() {
                if first.message != m {
                    return Err(format!("first message {:?}, expected {m:?}", first.message));
                }
            }
            if let Some(range) = detail.get("first_range") {
                let (start, end) = first.range(&SourceMap::new(query));
                let got = (start.line, start.column, end.line, end.column);
                let want = (
                    range["start"]["line"].as_u64().unwrap() as u32,
                    range["start"]["column"].as_u64().unwrap() as u32,
                    range["end"]["line"].as_u64().unwrap() as u32,
                    range["end"]["column"].as_u64().unwrap() as u32,
                );
                if got != want {
                    return Err(format!("first range {got:?}, expected {want:?}"));
                }
            }
            if let Some(count) = detail["count"].as_u64() {
                let got = err.errors().count() as u64;
                if got != count {
                    return Err(format!("{got} errors, expected {count}: {err:?}"));
                }
            }
        }
        return Ok(());
    }
    let cond = compiled.map_err(|e| format!("compile error: {e}"))?;
    let message =
        Message::from_json_value(&case["message"]).map_err(|e| format!("message: {e}"))?;
    let ctx = EvalContext::new(&message);
    let got = cond.eval_in(&ctx);
    let reference = cond.eval_reference(&EvalContext::new(&message));
    if got != reference {
        return Err(format!(
            "compiled {got} but reference interpreter {reference}"
        ));
    }
    if got.as_str() != expect {
        return Err(format!("got {got}, expected {expect}"));
    }
    if let Some(ev) = case.get("expect_value") {
        let value = value_as_dyn(cond.checked().ty, &cond.program().value(&ctx));
        if !same_dyn(&value, &dyn_value(ev)) {
            return Err(format!("value {value:?}, expected {ev}"));
        }
    }
    Ok(())
}

fn run_case(case: &Json, dialect: Dialect) -> Result<(), String> {
    match case["kind"].as_str() {
        None => run_condition(case, dialect),
        Some("jsonpath") => {
            let path = case["path"].as_str().unwrap();
            let valid = match case["validator"].as_str().unwrap() {
                "body" => validate_body_path(path).is_ok(),
                _ => validate_twin_change_path(path).is_ok(),
            };
            let want = case["expect"] == "valid";
            (valid == want)
                .then_some(())
                .ok_or_else(|| format!("valid = {valid}"))
        }
        Some("complexity") => {
            let q = case["query"].as_str().unwrap();
            let ast = hubroute::syntax::parse(q).map_err(|e| e.to_string())?;
            let want = case["expect_complexity"].as_u64().unwrap() as usize;
            (ast.complexity == want)
                .then_some(())
                .ok_or_else(|| format!("complexity {}, expected {want}", ast.complexity))
        }
        Some("operator") => {
            let got = apply_op(case).ok_or("operator not defined")?;
            let want = dyn_value(&case["expect_value"]);
            same_dyn(&got, &want)
                .then_some(())
                .ok_or_else(|| format!("got {got:?}, expected {want:?}"))
        }
        Some(k) => Err(format!("unknown kind {k}")),
    }
}

/// The hub dialect's rules a condition row relied on, if it compiles in that dialect and
/// relied on any.
fn hub_rules(case: &Json, dialect: Dialect) -> Option<Vec<hubroute::check::HubRule>> {
    let query = case["query"].as_str()?;
    let c = Condition::compile(query, &options(case, dialect)).ok()?;
    let rules = c.checked().hub_rules.clone();
    (!rules.is_empty()).then_some(rules)
}

#[test]
fn conformance_corpus() {
    run_corpus(Dialect::Edge);
}

#[test]
fn conformance_corpus_hub_dialect() {
    run_corpus(Dialect::Hub);
}

fn run_corpus(dialect: Dialect) {
    let cases = load_cases();
    assert!(cases.len() > 100, "only {} cases found", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let outcome = std::panic::catch_unwind(|| run_case(case, dialect))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        if let Err(why) = outcome {
            if let Some(rules) = hub_rules(case, dialect) {
                // Learn decides this row for the hub dialect; tests/learn holds such cases.
                println!("{id}: {why}: decided by Learn in the hub dialect ({rules:?})");
                continue;
            }
            failures.push(format!("{id}: {why}  [query: {}]", case["query"]));
        }
    }
    println!(
        "conformance ({dialect:?}): {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
