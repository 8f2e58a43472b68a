//! The `hubroute` binary as users and harnesses run it: exit codes, rendered diagnostics,
//! and the `eval --jsonl` line contract over the whole conformance corpus.

use serde_json::Value as Json;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn hubroute(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hubroute");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn eval_on_the_bundled_example() {
    let q = "$contentType = 'application/json' AND $body.Weather.Temperature > 50 AND processingPath = 'hot'";
    let o = hubroute(
        &["eval", "--message", "examples/messages/weather-hot.json", q],
        "",
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o).trim(), "true");
    let o = hubroute(
        &[
            "eval",
            "--message",
            "examples/messages/weather-no-content-type.json",
            "$body.Weather.Temperature > 50",
        ],
        "",
    );
    assert_eq!(stdout(&o).trim(), "undefined");
}

#[test]
fn eval_reports_compile_errors_with_exit_1_and_io_errors_with_exit_2() {
    let o = hubroute(
        &[
            "eval",
            "--message",
            "examples/messages/weather-hot.json",
            "3 + '4' = 7",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("error[E0101]"), "{err}");
    assert!(err.contains("1 | 3 + '4' = 7"), "{err}");
    let o = hubroute(&["eval", "--message", "no/such/file.json", "true"], "");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_renders_carets_and_json() {
    let o = hubroute(&["check", "true AND key1 = 3"], "");
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("error[E0101]: Invalid operands to binary operator '='"),
        "{out}"
    );
    let caret_line = format!("  | {}^", " ".repeat(14));
    assert!(
        out.lines().any(|l| l == caret_line),
        "caret under '=': {out}"
    );
    let o = hubroute(
        &["check", "--format", "json", "true garbage", "key1 = 'a'"],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "warnings alone pass");
    let report: Json = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["errors"], 0);
    assert_eq!(report["warnings"], 1);
    assert_eq!(report["queries"][0]["diagnostics"][0]["code"], "W0001");
    let o = hubroute(&["check", "--deny-warnings", "true garbage"], "");
    assert_eq!(o.status.code(), Some(1));
    let o = hubroute(&["check", "--file", "examples/queries.txt"], "");
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("checked 3 queries: 0 errors, 0 warnings"));
}

#[test]
fn fmt_prints_canonical_form() {
    let o = hubroute(&["fmt", "a=1 and (b  <>  'x' /* c */ or not c)"], "");
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "a = 1 AND (b <> 'x' OR NOT c)");
}

#[test]
fn jsonl_contract_over_the_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases");
    let mut input = String::new();
    let mut expected = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("conformance corpus beside the repo") {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
        {
            let case: Json = serde_json::from_str(line).unwrap();
            input.push_str(line);
            input.push('\n');
            expected.push(case);
        }
    }
    // A malformed line in the middle must yield an error and not stop the stream.
    input.push_str("{not json\n");
    input.push_str(
        "{\"id\": \"x-1\", \"query\": \"true\", \"message\": {\"bodyBase64\": \"***\"}}\n",
    );
    input.push_str("{\"id\": \"x-2\", \"query\": \"key1 = 'a'\", \"message\": {\"appProperties\": {\"key1\": \"a\"}}}\n");
    let o = hubroute(&["eval", "--jsonl"], &input);
    assert!(o.status.success());
    let lines: Vec<Json> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len() + 3);
    let mut failures = Vec::new();
    for (case, got) in expected.iter().zip(&lines) {
        assert_eq!(case["id"], got["id"]);
        let ok = match (case["kind"].as_str(), case["expect"].as_str()) {
            (Some(kind), _) => got["skipped"] == kind,
            (None, Some("compile_error")) => got["error"]["code"]
                .as_str()
                .is_some_and(|c| c.starts_with('E')),
            (None, Some(e)) => got["result"] == e,
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: {got}", case["id"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let n = expected.len();
    assert_eq!(lines[n]["id"], Json::Null);
    assert!(lines[n]["error"]["code"].is_string());
    assert_eq!(lines[n + 1]["id"], "x-1");
    assert!(lines[n + 1]["error"]["code"]
        .as_str()
        .unwrap()
        .starts_with("E03"));
    assert_eq!(
        lines[n + 2],
        serde_json::json!({"id": "x-2", "result": "true"})
    );
}
