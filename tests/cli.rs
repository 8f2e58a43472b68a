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

/// Runs hubroute with `stdin` bytes fed from a thread (so a large output cannot deadlock).
fn hubroute_bytes(args: &[&str], stdin: Vec<u8>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hubroute");
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out
}

#[test]
fn jsonl_accounts_for_every_line_whatever_it_holds() {
    let good = |id: usize| {
        format!(
            "{{\"id\": {id}, \"query\": \"a = '1'\", \"message\": {{\"appProperties\": {{\"a\": \"1\"}}}}}}\n"
        )
    };
    let mut input = Vec::new();
    let mut bad_lines = Vec::new();
    for i in 1..=35 {
        match i % 7 {
            3 => {
                input.extend_from_slice(b"{\"id\": \"\xff\xfe\", \"query\": \"true\"}\n");
                bad_lines.push((i, "E0904"));
            }
            5 => {
                input.extend_from_slice(
                    format!("{{\"id\": {i}, \"query\": \"'{}'\"}}\n", "x".repeat(5000)).as_bytes(),
                );
                bad_lines.push((i, "E0905"));
            }
            6 => {
                input.extend_from_slice(b"[1, 2]\r\n");
                bad_lines.push((i, "E0901"));
            }
            0 => {
                input.extend_from_slice(
                    b"{\"id\": 1, \"query\": \"true\", \"message\": {\"body\": 3}}\n",
                );
                bad_lines.push((i, "E03"));
            }
            _ => input.extend_from_slice(good(i).as_bytes()),
        }
    }
    let o = hubroute_bytes(&["eval", "--jsonl", "--max-line-bytes", "4096"], input);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let lines: Vec<Json> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 35, "one output line per input line");
    for (i, code) in &bad_lines {
        let got = &lines[i - 1];
        assert!(
            got["error"]["code"].as_str().unwrap().starts_with(code),
            "line {i}: {got}"
        );
        assert_eq!(got["line"], *i, "line {i}: {got}");
    }
    let results = lines.iter().filter(|l| l["result"] == "true").count();
    assert_eq!(results + bad_lines.len(), 35);
}

#[test]
fn a_closed_stdout_ends_each_subcommand_quietly() {
    let routes: Vec<String> = (0..20_000).map(|_| "{}".to_string()).collect();
    let config = format!("{{\"routes\": [{}]}}", routes.join(","));
    let jsonl = "{\"id\": 1, \"query\": \"true\"}\n".repeat(50_000);
    let queries = "a = 1\n".repeat(50_000);
    for (args, stdin) in [
        (vec!["check", "--routes", "/dev/stdin"], config.clone()),
        (
            vec!["check", "--routes", "/dev/stdin", "--format", "json"],
            config,
        ),
        (vec!["eval", "--jsonl"], jsonl),
        (vec!["check", "--file", "/dev/stdin"], queries),
        (
            vec![
                "test",
                "--routes",
                "examples/routing.json",
                "--message",
                "/dev/stdin",
                "--explain",
            ],
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/messages/weather-hot.json"),
            )
            .unwrap(),
        ),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hubroute");
        // The reader goes away before any output is written (output follows the input).
        drop(child.stdout.take());
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn check_routes_shows_the_first_100_diagnostics_and_counts_the_rest() {
    let routes: Vec<String> = (0..100_000).map(|_| "{}".to_string()).collect();
    let config = format!("{{\"routes\": [{}]}}", routes.join(","));
    let o = hubroute_bytes(
        &["check", "--routes", "/dev/stdin"],
        config.clone().into_bytes(),
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let shown = out.lines().filter(|l| l.contains("error[E0")).count();
    assert_eq!(shown, 100, "{out}");
    assert!(
        out.contains("more diagnostics not shown (the first 100 are)"),
        "{out}"
    );
    let o = hubroute_bytes(
        &["check", "--routes", "/dev/stdin", "--format", "json"],
        config.into_bytes(),
    );
    let report: Json = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["diagnostics"].as_array().unwrap().len(), 100);
    let errors = report["errors"].as_u64().unwrap();
    assert!(errors > 100_000, "{errors}");
    assert_eq!(report["omitted"].as_u64().unwrap(), errors - 100);
}

#[test]
fn check_routes_refuses_what_run_refuses() {
    let dir = std::env::temp_dir().join(format!("hubroute-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "routes": [{"name": "r", "source": "DeviceMessages", "condition": "true",
                    "endpointNames": ["cold"], "isEnabled": true}],
        "endpoints": {"storageContainers": [{"name": "cold", "containerName": "c",
            "fileNameFormat": "../../{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}"}]},
    });
    let path = dir.join("routes.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let path = path.to_str().unwrap();
    let o = hubroute(&["check", "--routes", path], "");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("E0423"), "{}", stdout(&o));
    assert!(stdout(&o).contains("'..'"), "{}", stdout(&o));
    let sink = format!("cold=storage:{}", dir.join("out").display());
    let o = hubroute(
        &[
            "run",
            "--routes",
            path,
            "--input",
            "/dev/null",
            "--sink",
            &sink,
            "--dead-letter",
            dir.join("dead.jsonl").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("E0423"),
        "{o:?}"
    );
    // A document that is not UTF-8: the same coded error from both, not an I/O failure.
    std::fs::write(dir.join("routes.json"), b"{\"routes\": [\xff]}").unwrap();
    let o = hubroute(&["check", "--routes", path], "");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("error[E0401]: document: not JSON: invalid UTF-8 at byte 12"));
    let dead = dir.join("dead.jsonl");
    let run = [
        "run",
        "--routes",
        path,
        "--input",
        "/dev/null",
        "--sink",
        &sink,
        "--dead-letter",
        dead.to_str().unwrap(),
    ];
    let o = hubroute(&run, "");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("E0401"),
        "{o:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_file_reports_unreadable_lines_and_checks_the_rest() {
    let mut input = b"key1 = 'a'\n\xff\xfe\n".to_vec();
    input.extend_from_slice(format!("'{}'\n", "x".repeat(2 << 20)).as_bytes());
    input.extend_from_slice(b"key2 = 3\n");
    let o = hubroute_bytes(&["check", "--file", "/dev/stdin"], input);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("error[E0904]: /dev/stdin:2: the line is not valid UTF-8"),
        "{out}"
    );
    assert!(out.contains("error[E0905]: /dev/stdin:3:"), "{out}");
    assert!(
        out.contains("--> /dev/stdin:4:"),
        "line 4 still checked: {out}"
    );
    assert!(
        out.contains("checked 2 queries: 3 errors, 0 warnings"),
        "{out}"
    );
}

/// A `--sink` that `run` refuses is quoted in the error without its password or token.
#[test]
fn refused_sink_urls_are_printed_without_secrets() {
    for sink in [
        "nosuch=mqtt://router:hunter2-pw@127.0.0.1:1/alerts",
        "hotpath=mqtt:/router:hunter2-pw@127.0.0.1:1/alerts",
        "hotpath",
        "hotpath=nats://127.0.0.1:1/x?token=hunter2-pw",
    ] {
        let o = hubroute(
            &[
                "run",
                "--routes",
                "examples/routing.json",
                "--input",
                "/dev/null",
                "--store",
                "/nonexistent/never-opened",
                "--sink",
                sink,
            ],
            "",
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{sink}: {err}");
        assert!(err.contains("--sink"), "{sink}: {err}");
        assert!(!err.contains("hunter2-pw"), "{sink}: secret printed: {err}");
    }
}

/// Standard error whose reader has gone (`hubroute run … 2>&1 | head -1`): the summary and
/// the warnings cannot be shown, but the run still delivers what a run whose stderr is read
/// delivers and exits as it would have (no panic, no status 101, no hang); the same for
/// `check`'s status.
#[test]
fn a_closed_stderr_changes_nothing_but_what_is_shown() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |tag: &str, stderr_read: bool| -> (Option<i32>, Vec<usize>) {
        let dir =
            std::env::temp_dir().join(format!("hubroute-cli-stderr-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = |n: &str| dir.join(n).display().to_string();
        let names = ["hotpath", "alerts", "coldstorage", "events"];
        let mut args: Vec<String> = [
            "run",
            "--routes",
            "examples/routing.json",
            "--input",
            "examples/messages.jsonl",
            "--twin-dir",
            "examples/twins",
            "--store",
            &d("store"),
            "--dead-letter",
            &d("dead.jsonl"),
        ]
        .map(String::from)
        .to_vec();
        for n in names {
            args.push("--sink".into());
            args.push(format!("{n}=file:{}", d(&format!("{n}.jsonl"))));
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(&args)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hubroute");
        let stderr = child.stderr.take().unwrap();
        if stderr_read {
            let _ = std::io::read_to_string(stderr);
        } else {
            drop(stderr);
        }
        let status = child.wait().unwrap().code();
        let lines = names
            .iter()
            .map(|n| {
                std::fs::read_to_string(dir.join(format!("{n}.jsonl")))
                    .map_or(0, |t| t.lines().count())
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        (status, lines)
    };
    let (status, closed) = run("closed", false);
    let (read_status, read) = run("read", true);
    assert_eq!(status, Some(0));
    assert_eq!(read_status, Some(0));
    assert!(read.iter().sum::<usize>() > 0, "{read:?}");
    assert_eq!(closed, read);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(["check", "--routes", "examples/bad-routes.json"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hubroute");
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

/// `run` starts itself again with glibc's malloc tunables (src/bin/hubroute/malloc_tuning.rs)
/// when none are set: the running process has them, and reading standard input still works
/// across the restart (the same process, the same open files).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn run_restarts_itself_with_malloc_tunables_unless_some_are_set() {
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("hubroute-cli-tunables-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = |n: &str| dir.join(n).display().to_string();
    let environ = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .unwrap_or_default()
            .split(|&b| b == 0)
            .filter_map(|v| v.strip_prefix(b"GLIBC_TUNABLES="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .next()
    };
    for preset in [None, Some("glibc.malloc.arena_max=2")] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hubroute"));
        command
            .args(["run", "--routes", "examples/routing.json", "--input", "-"])
            .args(["--store", &d("store"), "--dead-letter", &d("dead.jsonl")])
            .args(["--sink", &format!("hotpath=file:{}", d("hot.jsonl"))])
            .args(["--sink", &format!("alerts=file:{}", d("alerts.jsonl"))])
            .args(["--sink", &format!("coldstorage=file:{}", d("cold.jsonl"))])
            .args(["--sink", &format!("events=file:{}", d("events.jsonl"))])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("GLIBC_TUNABLES")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(p) = preset {
            command.env("GLIBC_TUNABLES", p);
        }
        let mut child = command.spawn().expect("run hubroute");
        let pid = child.id();
        // The program starts (and restarts) within the same process: wait for it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = environ(pid);
        while seen.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            seen = environ(pid);
        }
        match preset {
            // glibc may cut the string at the first tunable it has read; the first is ours.
            None => assert!(
                seen.as_deref()
                    .is_some_and(|v| v.starts_with("glibc.malloc.trim_threshold=8388608")),
                "{seen:?}"
            ),
            Some(p) => assert_eq!(seen.as_deref(), Some(p)),
        }
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"{\"systemProperties\": {\"messageId\": \"a\"}, \"body\": \"x\"}\n{\"body\": \"y\"}\n")
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains("valid 2 + invalid 0 + blank 0 = read 2"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
