//! The rough edges a newcomer hit (issue 18, item 5), each pinned: fmt of a broken query,
//! check --file positions, one sink per endpoint, an empty file: path, JSON error positions said
//! once, eval --twin-dir, and twin warnings.

use std::process::{Command, Output};

fn hubroute(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run hubroute")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp(name: &str, text: &str) -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rough-edges");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn fmt_of_a_syntax_error_exits_1_with_the_diagnostic() {
    for q in ["a = (b", "'abc", "(a = '1'))"] {
        let o = hubroute(&["fmt", q]);
        assert_eq!(o.status.code(), Some(1), "{q}: {}", out(&o));
        assert!(
            out(&o).is_empty(),
            "{q}: nothing printed as if it were fine"
        );
        assert!(err(&o).contains("error[E000"), "{q}: {}", err(&o));
    }
    // Type errors still have a canonical form.
    let o = hubroute(&["fmt", "severity=2"]);
    assert!(o.status.success());
    assert_eq!(out(&o), "severity = 2\n");
    let routes = tmp(
        "fmt-routes.json",
        r#"{"routes": [{"name": "r", "source": "DeviceMessages", "condition": "a = (b", "endpointNames": ["events"], "isEnabled": true}]}"#,
    );
    let o = hubroute(&["fmt", "--routes", &routes]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("E0004"), "{}", err(&o));
}

#[test]
fn check_file_reports_the_files_own_line_numbers() {
    let file = tmp("queries.txt", "# comment\na = '1'\n\nb = (c\n");
    let o = hubroute(&["check", "--file", &file]);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(text.contains(&format!("--> {file}:4:5\n")), "{text}");
    assert!(text.contains("\n4 | b = (c\n"), "{text}");
}

#[test]
fn the_second_error_that_only_follows_from_the_first_is_not_shown() {
    let o = hubroute(&["check", "3 + '4' = 7"]);
    let text = out(&o);
    assert_eq!(text.matches("error[").count(), 1, "{text}");
    assert!(text.contains("1 error, 0 warnings"));
    let o = hubroute(&["check", "--format", "json", "3 + '4' = 7"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["queries"][0]["diagnostics"][1]["follows"], true,
        "JSON keeps it, marked"
    );
}

#[test]
fn an_endpoint_is_bound_once_and_file_needs_a_path() {
    let o = hubroute(&[
        "run",
        "--routes",
        "examples/routing.json",
        "--input",
        "/dev/null",
        "--sink",
        "hotpath=stdout:",
        "--sink",
        "hotpath=stdout:",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("endpoint 'hotpath' is already bound"),
        "{}",
        err(&o)
    );
    let o = hubroute(&[
        "run",
        "--routes",
        "examples/routing.json",
        "--input",
        "/dev/null",
        "--sink",
        "hotpath=file:",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("the file path is empty"), "{}", err(&o));
}

#[test]
fn json_errors_say_their_position_once() {
    let msg = tmp("bad-message.json", "{\"body\": x}");
    let o = hubroute(&["eval", "--message", &msg, "true"]);
    let e = err(&o);
    assert_eq!(e.matches("line 1").count(), 1, "{e}");
    let routes = tmp("bad-routes.json", "{\"routes\": [}");
    let o = hubroute(&["check", "--routes", &routes]);
    let text = out(&o);
    assert_eq!(text.matches("line 1").count(), 1, "{text}");
}

#[test]
fn eval_reads_twins_and_says_when_it_cannot() {
    let q = "$twin.tags.location = 'building-43'";
    let o = hubroute(&[
        "eval",
        "--message",
        "examples/messages/weather-hot.json",
        "--twin-dir",
        "examples/twins",
        q,
    ]);
    assert_eq!(out(&o), "true\n");
    let o = hubroute(&["eval", "--message", "examples/messages/weather-hot.json", q]);
    assert_eq!(out(&o), "undefined\n");
    assert!(err(&o).contains("warning[W0804]"));
    let o = hubroute(&[
        "eval",
        "--message",
        "examples/messages/weather-hot.json",
        "--twin-dir",
        "no/such",
        q,
    ]);
    assert_eq!(out(&o), "undefined\n");
    assert!(err(&o).contains("warning[W0801]"), "{}", err(&o));
}

#[test]
fn run_help_says_where_files_go() {
    let o = hubroute(&["run", "--help"]);
    let text = out(&o);
    for needle in [
        "hubroute-dead-letter.jsonl",
        "appends across",
        "`-1`",
        "hubroute inspect",
    ] {
        assert!(text.contains(needle), "{needle} missing from run --help");
    }
}
