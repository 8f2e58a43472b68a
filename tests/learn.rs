//! Every routing example of Microsoft Learn's "IoT Hub message routing query syntax" and
//! "IoT Hub query language" pages (`tests/learn/*.jsonl`, one conformance-format line per
//! example, with the page and section it comes from): in the hub dialect (the default) each
//! compiles and evaluates as Learn says (`expect`), and the Edge dialect still gives the
//! engine's answer (`expect_edge`), so every difference between the two is pinned here.
//!
//! Extra fields beyond the corpus format: `page`, `section`, `twin` (the sender's device twin
//! for `$twin`), `expect_edge` (the Edge engine with body queries on), `warnings` (codes the
//! hub dialect must report).

use hubroute::body::{BodyPath, JsonDoc};
use hubroute::eval::context::selected_value;
use hubroute::eval::{EvalContext, TwinLookup, Value};
use hubroute::message::Message;
use hubroute::{Condition, Dialect, Options};
use serde_json::Value as Json;
use std::path::PathBuf;

/// One device twin for every message, as the examples' single sample device has.
struct OneTwin(JsonDoc);

impl TwinLookup for OneTwin {
    fn twin_value<'t>(&'t self, _: &Message, path: &BodyPath) -> Value<'t> {
        match selected_value(self.0.select(path)) {
            Value::Missing => Value::Undefined,
            v => v,
        }
    }
}

fn options(case: &Json, dialect: Dialect) -> Options {
    let twin_change_source = case["source"] == "TwinChangeEvents";
    match dialect {
        Dialect::Hub => Options {
            twin_change_source,
            ..Options::iot_hub()
        },
        Dialect::Edge => Options {
            body_query: true,
            twin_change_includes: true,
            twin_change_source,
            dialect: Dialect::Edge,
        },
    }
}

fn outcome(case: &Json, dialect: Dialect) -> Result<String, String> {
    let query = case["query"].as_str().ok_or("no query")?;
    let cond = match Condition::compile(query, &options(case, dialect)) {
        Ok(c) => c,
        Err(_) => return Ok("compile_error".into()),
    };
    if dialect == Dialect::Hub {
        let codes: Vec<&str> = cond.warnings().iter().map(|w| w.code).collect();
        let want: Vec<&str> = case["warnings"]
            .as_array()
            .map(|ws| ws.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        if codes != want {
            return Err(format!("warnings {codes:?}, expected {want:?}"));
        }
    }
    let message = Message::from_json_value(&case["message"]).map_err(|e| e.to_string())?;
    let twin = match case.get("twin") {
        Some(t) => Some(OneTwin(
            JsonDoc::parse(&t.to_string()).map_err(|e| format!("twin: {e:?}"))?,
        )),
        None => None,
    };
    let ctx = || match &twin {
        Some(t) => EvalContext::new(&message).with_twin(t),
        None => EvalContext::new(&message),
    };
    let got = cond.eval_in(&ctx());
    let reference = cond.eval_reference(&ctx());
    if got != reference {
        return Err(format!("compiled {got}, reference interpreter {reference}"));
    }
    Ok(got.as_str().to_string())
}

#[test]
fn learn_examples_in_both_dialects() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/learn");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "one file per Learn page");
    let (mut count, mut failures) = (0, Vec::new());
    for file in files {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let case: Json = serde_json::from_str(line).unwrap();
            assert!(
                case["page"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("https://learn.microsoft.com/")),
                "{}: every example names its Learn page",
                case["id"]
            );
            count += 1;
            for (dialect, key) in [(Dialect::Hub, "expect"), (Dialect::Edge, "expect_edge")] {
                let want = case[key].as_str().unwrap();
                match outcome(&case, dialect) {
                    Ok(got) if got == want => {}
                    Ok(got) => failures.push(format!(
                        "{} ({dialect:?}): got {got}, expected {want}  [{}]",
                        case["id"], case["query"]
                    )),
                    Err(e) => failures.push(format!(
                        "{} ({dialect:?}): {e}  [{}]",
                        case["id"], case["query"]
                    )),
                }
            }
        }
    }
    assert!(count >= 30, "only {count} Learn examples");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `--dialect` on the CLI: Learn's example compiles by default and is the Edge engine's
/// E0101 with `--dialect edge` (and `--edge`); a bad dialect name is a usage error.
#[test]
fn cli_dialect_flag() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(args)
            .output()
            .expect("run hubroute");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let q = "$body.Weather.Temperature = 50 AND $body.Weather.IsEnabled";
    assert_eq!(run(&["check", q]).0, Some(0));
    assert_eq!(run(&["check", "--dialect", "hub", q]).0, Some(0));
    let (code, out) = run(&["check", "--dialect", "edge", "--body-query", q]);
    assert_eq!(code, Some(1));
    assert!(out.contains("E0101"), "{out}");
    assert_eq!(run(&["check", "--edge", "--body-query", q]).0, Some(1));
    assert_eq!(run(&["check", "--dialect", "cloud", q]).0, Some(2));
    // The parser commits to an operator: a missing right operand is an error in both.
    for dialect in ["hub", "edge"] {
        let (code, out) = run(&["check", "--dialect", dialect, "a = '1' AND"]);
        assert_eq!(code, Some(1), "{dialect}");
        assert!(out.contains("E0001"), "{out}");
    }
}
