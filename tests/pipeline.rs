//! The durable pipeline (`hubroute::pipeline`) end to end: a store on disk, real sinks (JSON
//! Lines files, an MQTT sink whose broker is not there), restarts, and `hubroute run` on a
//! file full of bad lines. Waits are bounded and only guard against hangs; nothing asserts on
//! how long anything takes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hubroute::message::Message;
use hubroute::pipeline::{Health, Pipeline, PipelineConfig, Prepared, Retention};
use hubroute::route::RouteTable;
use hubroute::sink::{codes, DeadLetter, Envelope, JsonLinesSink, Sink, SinkError};
use serde_json::Value;

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubroute-pipeline-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every message goes to both `archive` and `alerts`.
fn table() -> RouteTable {
    table_with_alerts_when("true")
}

/// Every message goes to `archive`; those matching `condition` to `alerts` too.
fn table_with_alerts_when(condition: &str) -> RouteTable {
    let text = serde_json::json!({
        "routes": [
            {"name": "a", "source": "DeviceMessages", "condition": "true", "endpointNames": ["archive"], "isEnabled": true},
            {"name": "b", "source": "DeviceMessages", "condition": condition, "endpointNames": ["alerts"], "isEnabled": true}],
        "endpoints": {"serviceBusQueues": [{"name": "archive"}, {"name": "alerts"}]}});
    RouteTable::from_json(&text.to_string(), "testhub")
        .table
        .expect("the test table builds")
}

fn message(i: usize) -> Message {
    Message::from_json_str(&format!(
        r#"{{"systemProperties": {{"messageId": "m{i}", "contentType": "application/json", "contentEncoding": "utf-8"}},
            "appProperties": {{"n": "{i}"}}, "body": "{{\"i\": {i}}}"}}"#
    ))
    .unwrap()
}

fn file_sink(path: &Path) -> Box<dyn Sink> {
    Box::new(JsonLinesSink::to_path(path).unwrap())
}

/// An MQTT sink towards a loopback port nothing listens on: every write fails, retryably.
fn down_sink() -> Box<dyn Sink> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url =
        hubroute::broker::BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}/alerts")).unwrap();
    Box::new(hubroute::broker::mqtt::MqttSink::new(&url, "hubroute-test-down").unwrap())
}

fn config(dir: &TempDir) -> PipelineConfig {
    let mut c = PipelineConfig::new(dir.join("store"), "testhub");
    c.retry.initial_backoff = Duration::from_millis(20);
    c.retry.max_backoff = Duration::from_millis(200);
    c
}

fn sinks(list: Vec<(&str, Box<dyn Sink>)>) -> BTreeMap<String, Box<dyn Sink>> {
    list.into_iter().map(|(n, s)| (n.to_string(), s)).collect()
}

fn prepare(p: &Pipeline, range: std::ops::Range<usize>) -> Vec<Prepared> {
    let mut router = p.router();
    range
        .map(|i| {
            p.prepare(&mut router, &message(i), None, SystemTime::now())
                .unwrap()
        })
        .collect()
}

/// The whole lines of a JSON Lines sink's file: a last line without its newline is still
/// being written (the sink is running) and is left for the next look.
fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The messageIds in a JSON Lines sink's file (IoT Hub's record shape), and the line count.
fn ids(path: &Path) -> (BTreeSet<String>, usize) {
    let all = lines(path);
    let set = all
        .iter()
        .map(|r| {
            r["SystemProperties"]["messageId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    (set, all.len())
}

fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// (a) One endpoint down, one healthy: the healthy one gets everything while the other
/// retries; the down one is unhealthy with its error as the reason, and with a short
/// retention its copies go to the dead letter with the retention code.
#[test]
fn a_down_endpoint_holds_up_nobody_and_its_copies_expire_into_the_dead_letter() {
    let dir = TempDir::new("down");
    let mut c = config(&dir);
    c.retention = Retention {
        time: Duration::from_secs(2),
        bytes: 1 << 30,
    };
    let archive = dir.join("archive.jsonl");
    let p = Pipeline::open(
        c,
        table(),
        sinks(vec![
            ("archive", file_sink(&archive)),
            ("alerts", down_sink()),
        ]),
        DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
    )
    .unwrap();
    for chunk in 0..10 {
        let accepted = p
            .accept(prepare(&p, chunk * 100..(chunk + 1) * 100))
            .unwrap();
        assert_eq!(accepted.stored, 100);
    }
    assert!(
        eventually(Duration::from_secs(30), || ids(&archive).0.len() == 1000),
        "the healthy endpoint got {} of 1000 while the other was down",
        ids(&archive).0.len()
    );
    let stats = p.stats();
    let alerts = stats.endpoints.iter().find(|e| e.name == "alerts").unwrap();
    assert!(
        matches!(alerts.health, Health::Unhealthy | Health::Dead),
        "{alerts:?}"
    );
    assert!(alerts.reason.is_some(), "{alerts:?}");
    assert!(alerts.retries > 0, "{alerts:?}");
    let archive_stats = stats
        .endpoints
        .iter()
        .find(|e| e.name == "archive")
        .unwrap();
    assert_eq!(archive_stats.health, Health::Healthy);
    // After the retention, every alerts copy is in the dead letter with E0508.
    assert!(
        eventually(Duration::from_secs(30), || {
            p.stats()
                .endpoints
                .iter()
                .any(|e| e.name == "alerts" && e.dead_lettered_total() == 1000)
        }),
        "{:?}",
        p.stats()
    );
    let stats = p.shutdown(Duration::from_secs(5));
    let alerts = stats.endpoints.iter().find(|e| e.name == "alerts").unwrap();
    assert_eq!(
        alerts.dead_lettered.get(codes::RETENTION_EXPIRED),
        Some(&1000)
    );
    assert_eq!(alerts.backlog, 0);
    let dead = lines(&dir.join("dead.jsonl"));
    assert_eq!(dead.len(), 1000);
    assert!(dead
        .iter()
        .all(|d| d["code"] == codes::RETENTION_EXPIRED && d["endpoint"] == "alerts"));
    // The dead letter holds the message itself, replayable.
    let replayed = Message::from_json_value(&dead[0]["message"]).unwrap();
    assert!(replayed.system_properties.get("messageId").is_some());
    assert_eq!(ids(&archive).1, 1000, "no duplicates without a restart");
}

/// A sink that writes to a JSON Lines file only while its gate is open; closed, it fails
/// retryably, like a destination that is temporarily unreachable.
struct Gated {
    inner: JsonLinesSink,
    open: Arc<AtomicBool>,
}

impl Sink for Gated {
    fn describe(&self) -> String {
        format!("gated {}", self.inner.describe())
    }
    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        if !self.open.load(Ordering::Acquire) {
            return Err(SinkError::Retryable("gate closed".into()));
        }
        self.inner.write_batch(batch)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
}

/// (b) A full store blocks acceptance (the input stops) until the endpoint drains; nothing is
/// dropped.
#[test]
fn a_full_store_blocks_acceptance_until_the_endpoint_drains() {
    let dir = TempDir::new("full");
    let mut c = config(&dir);
    c.max_store_bytes = 20_000; // a few dozen records
    let open = Arc::new(AtomicBool::new(false));
    let gated = |path: PathBuf| -> Box<dyn Sink> {
        Box::new(Gated {
            inner: JsonLinesSink::to_path(path).unwrap(),
            open: Arc::clone(&open),
        })
    };
    let p = Arc::new(
        Pipeline::open(
            c,
            table(),
            sinks(vec![
                ("archive", gated(dir.join("archive.jsonl"))),
                ("alerts", gated(dir.join("alerts.jsonl"))),
            ]),
            DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
        )
        .unwrap(),
    );
    let done = Arc::new(AtomicUsize::new(0));
    let feeder = {
        let (p, done) = (Arc::clone(&p), Arc::clone(&done));
        std::thread::spawn(move || {
            for i in 0..500 {
                p.accept(prepare(&p, i..i + 1)).unwrap();
                done.store(i + 1, Ordering::Release);
            }
        })
    };
    // The feeder stops well short of 500 and stays stopped while the gate is closed.
    assert!(eventually(Duration::from_secs(10), || p
        .stats()
        .backpressure_episodes
        > 0));
    let stalled = done.load(Ordering::Acquire);
    assert!(stalled < 500, "accepted {stalled}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        done.load(Ordering::Acquire),
        stalled,
        "accept returned while full"
    );
    assert!(p.stats().stored_bytes <= 20_000 + 2_000);
    open.store(true, Ordering::Release);
    feeder.join().unwrap();
    assert_eq!(done.load(Ordering::Acquire), 500);
    let p = Arc::into_inner(p).unwrap();
    let stats = p.shutdown(Duration::from_secs(30));
    for e in &stats.endpoints {
        assert_eq!((e.routed, e.delivered, e.backlog), (500, 500, 0), "{e:?}");
    }
    assert_eq!(ids(&dir.join("archive.jsonl")).0.len(), 500);
    assert_eq!(ids(&dir.join("alerts.jsonl")).0.len(), 500);
    assert!(lines(&dir.join("dead.jsonl")).is_empty());
}

/// (c) Accepted, not yet delivered, pipeline gone: reopened, every copy is delivered.
#[test]
fn a_reopened_store_delivers_what_was_accepted() {
    let dir = TempDir::new("restart");
    let archive = dir.join("archive.jsonl");
    let alerts = dir.join("alerts.jsonl");
    {
        // alerts is down: its copies stay in the store; archive delivers.
        let p = Pipeline::open(
            config(&dir),
            table(),
            sinks(vec![
                ("archive", file_sink(&archive)),
                ("alerts", down_sink()),
            ]),
            DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
        )
        .unwrap();
        p.accept(prepare(&p, 0..700)).unwrap();
        assert!(eventually(Duration::from_secs(30), || ids(&archive)
            .0
            .len()
            == 700));
        drop(p); // no drain
    }
    // Both endpoints up, on the store the first pipeline left.
    let reopen = || {
        Pipeline::open(
            config(&dir),
            table(),
            sinks(vec![
                ("archive", file_sink(&archive)),
                ("alerts", file_sink(&alerts)),
            ]),
            DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
        )
        .unwrap()
    };
    let p = reopen();
    let recovered = p.stats();
    assert!(recovered.recovered_copies >= 700, "{recovered:?}");
    p.accept(prepare(&p, 700..1000)).unwrap();
    let stats = p.shutdown(Duration::from_secs(30));
    let (archive_ids, archive_lines) = ids(&archive);
    let (alert_ids, alert_lines) = ids(&alerts);
    assert_eq!(archive_ids.len(), 1000);
    assert_eq!(alert_ids.len(), 1000);
    // Duplicates only for a batch delivered whose cursor was not yet committed.
    eprintln!(
        "duplicates: archive {}, alerts {}",
        archive_lines - 1000,
        alert_lines - 1000
    );
    assert_eq!(
        alert_lines, 1000,
        "alerts never delivered before the restart"
    );
    assert!(stats.endpoints.iter().all(|e| e.backlog == 0), "{stats:?}");
    assert_eq!(stats.stored_records, 0, "delivered records are deleted");
    // After a clean stop the cursors (cursor frames in the log, the checkpoint written at
    // stop) hold every delivery: opened again, nothing is recovered or delivered twice.
    let p = reopen();
    assert_eq!(p.stats().recovered_copies, 0);
    p.shutdown(Duration::from_secs(30));
    assert_eq!(ids(&archive).1, archive_lines);
    assert_eq!(ids(&alerts).1, 1000);
}

/// An endpoint that gets no copies is not woken by every commit, yet it never holds the
/// store up: while messages flow to the other endpoint only, the store deletes what was
/// delivered (the idle endpoint's position passes over records not for it); a later copy for
/// it is delivered; after a clean stop nothing is recovered.
#[test]
fn an_endpoint_without_copies_does_not_hold_the_store() {
    let dir = TempDir::new("idle-endpoint");
    let archive = dir.join("archive.jsonl");
    let alerts = dir.join("alerts.jsonl");
    let table = table_with_alerts_when("n = '5000'");
    let open = |table: RouteTable| {
        Pipeline::open(
            config(&dir),
            table,
            sinks(vec![
                ("archive", file_sink(&archive)),
                ("alerts", file_sink(&alerts)),
            ]),
            DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
        )
        .unwrap()
    };
    let p = open(table.clone());
    for start in (0..1000).step_by(100) {
        p.accept(prepare(&p, start..start + 100)).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || p.stats().stored_records == 0),
        "records for archive only stay in the store: {:?}",
        p.stats()
    );
    assert_eq!(ids(&archive).0, expected(0..1000));
    assert!(ids(&alerts).0.is_empty());
    p.accept(prepare(&p, 5000..5001)).unwrap();
    assert!(
        eventually(Duration::from_secs(30), || ids(&alerts).0
            == expected(5000..5001)),
        "the copy for the idle endpoint: {:?}",
        ids(&alerts)
    );
    let stats = p.shutdown(Duration::from_secs(30));
    assert_eq!(stats.stored_records, 0, "{stats:?}");
    let p = open(table);
    assert_eq!(p.stats().recovered_copies, 0);
    p.shutdown(Duration::from_secs(30));
    assert_eq!(ids(&archive).1, 1001);
    assert_eq!(ids(&alerts).1, 1);
}

/// Single-message batches streaming in (one every 100 µs, none waiting for its commit, as a
/// broker input submits what has arrived) share commits: the committer waits up to
/// `commit_gather` for companions instead of syncing the store for each. Every message is
/// still accepted and delivered.
#[test]
fn small_batches_streaming_in_share_commits() {
    const N: usize = 1000;
    let dir = TempDir::new("gather");
    let p = open_two_files(&dir);
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut next = Instant::now();
    for i in 0..N {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += Duration::from_micros(100);
        let accepted = Arc::clone(&accepted);
        p.accept_then(prepare(&p, i..i + 1), move |r| {
            if r.is_ok() {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    assert!(
        eventually(Duration::from_secs(30), || accepted.load(Ordering::Relaxed)
            == N),
        "accepted {} of {N}",
        accepted.load(Ordering::Relaxed)
    );
    let stats = p.shutdown(Duration::from_secs(30));
    assert!(
        stats.commits <= (N / 6) as u64,
        "{} commits for {N} messages arriving 100 µs apart: {stats:?}",
        stats.commits
    );
    assert_eq!(ids(&dir.join("archive.jsonl")).0, expected(0..N));
    assert_eq!(ids(&dir.join("alerts.jsonl")).0, expected(0..N));
}

/// A second process (or pipeline) on the same store is refused with a clear error.
#[test]
fn one_pipeline_per_store() {
    let dir = TempDir::new("lock");
    let open = || {
        Pipeline::open(
            config(&dir),
            table(),
            sinks(vec![
                ("archive", file_sink(&dir.join("a.jsonl"))),
                ("alerts", file_sink(&dir.join("b.jsonl"))),
            ]),
            DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
        )
    };
    let first = open().unwrap();
    let e = open().unwrap_err().to_string();
    assert!(e.contains("another hubroute process"), "{e}");
    drop(first);
    open().unwrap();
}

/// (d) `hubroute run --input FILE` with invalid UTF-8, an over-long line, blank lines and
/// malformed JSON among valid lines: every line accounted for, the bad ones dead-lettered with
/// their codes, the summary printed, the stream not stopped.
#[test]
fn run_accounts_for_every_line_of_a_bad_file() {
    let dir = TempDir::new("badfile");
    let mut input = Vec::new();
    let mut valid = 0;
    for i in 0..5000 {
        match i {
            100 => input.extend_from_slice(b"{\"body\": \"caf\xe9\"}\n"), // Latin-1, not UTF-8
            200 => {
                input.extend_from_slice(b"{\"body\": \"");
                input.extend(std::iter::repeat_n(b'x', 70_000));
                input.extend_from_slice(b"\"}\n");
            }
            300 | 301 => input.extend_from_slice(b"   \n"),
            400 => input.extend_from_slice(b"{not json\n"),
            _ => {
                valid += 1;
                input.extend_from_slice(
                    format!("{{\"systemProperties\": {{\"messageId\": \"m{i}\"}}, \"body\": \"{i}\"}}\n")
                        .as_bytes(),
                );
            }
        }
    }
    std::fs::write(dir.join("in.jsonl"), &input).unwrap();
    std::fs::write(
        dir.join("routes.json"),
        r#"{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true", "endpointNames": ["archive"], "isEnabled": true}],
            "endpoints": {"serviceBusQueues": [{"name": "archive"}]}}"#,
    )
    .unwrap();
    let p = |n: &str| dir.join(n).display().to_string();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args([
            "run",
            "--routes",
            &p("routes.json"),
            "--input",
            &p("in.jsonl"),
            "--sink",
            &format!("archive=file:{}", p("archive.jsonl")),
            "--dead-letter",
            &p("dead.jsonl"),
            "--store",
            &p("store"),
            "--max-line-bytes",
            "64KiB",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("valid {valid} + invalid 3 + blank 2 = read 5000")),
        "{stderr}"
    );
    assert!(
        stderr.contains("archive: routed 4995, delivered 4995"),
        "{stderr}"
    );
    assert_eq!(ids(&dir.join("archive.jsonl")).0.len(), valid);
    let dead = lines(&dir.join("dead.jsonl"));
    let by_line: BTreeMap<u64, &str> = dead
        .iter()
        .map(|d| (d["line"].as_u64().unwrap(), d["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_line,
        BTreeMap::from([(101, "E0904"), (201, "E0905"), (401, "E0301")])
    );
    // The invalid UTF-8 line is kept byte for byte.
    let utf8 = dead.iter().find(|d| d["code"] == "E0904").unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(utf8["message"]["bodyBase64"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, b"{\"body\": \"caf\xe9\"}");
}

/// `names`: each gets a route `condition` → it, over exactly those endpoints.
fn table_over(names: &[&str]) -> Arc<RouteTable> {
    let routes: Vec<Value> = names
        .iter()
        .map(|n| {
            serde_json::json!({"name": format!("to-{n}"), "source": "DeviceMessages",
                               "condition": "true", "endpointNames": [n], "isEnabled": true})
        })
        .collect();
    let endpoints: Vec<Value> = names
        .iter()
        .map(|n| serde_json::json!({ "name": n }))
        .collect();
    let text = serde_json::json!({"routes": routes, "endpoints": {"serviceBusQueues": endpoints}});
    Arc::new(
        RouteTable::from_json(&text.to_string(), "testhub")
            .table
            .expect("the test table builds"),
    )
}

/// Prepares `range` with a reloaded `table` and accepts it.
fn accept_with(p: &Pipeline, table: &RouteTable, range: std::ops::Range<usize>) {
    let mut router = table.router();
    let batch = range
        .map(|i| {
            p.prepare_with(table, &mut router, &message(i), None, SystemTime::now())
                .unwrap()
        })
        .collect();
    p.accept(batch).unwrap();
}

/// The messageIds m{i} for `range`.
fn expected(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// A sink bound at open for an endpoint the opening table lacks gets, once a reloaded table
/// routes to it, exactly the messages accepted after the swap; an endpoint no sink is bound
/// for is rejected with its code rather than accepted and lost.
#[test]
fn a_reloaded_table_routes_to_an_endpoint_bound_at_open() {
    let dir = TempDir::new("add-endpoint");
    let p = Pipeline::open(
        config(&dir),
        table(),
        sinks(vec![
            ("archive", file_sink(&dir.join("archive.jsonl"))),
            ("alerts", file_sink(&dir.join("alerts.jsonl"))),
            ("extra", file_sink(&dir.join("extra.jsonl"))),
        ]),
        DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
    )
    .unwrap();
    p.accept(prepare(&p, 0..50)).unwrap();
    let reloaded = table_over(&["archive", "alerts", "extra"]);
    p.tables().set(Arc::clone(&reloaded));
    assert!(p.reloaded_table().is_some());
    accept_with(&p, &reloaded, 50..100);

    let unbound = table_over(&["archive", "nowhere"]);
    let mut router = unbound.router();
    let err = p
        .prepare_with(
            &unbound,
            &mut router,
            &message(1000),
            None,
            SystemTime::now(),
        )
        .unwrap_err();
    assert_eq!(err.code, codes::UNKNOWN_ENDPOINT, "{err:?}");

    let stats = p.shutdown(Duration::from_secs(30));
    let extra = stats.endpoints.iter().find(|e| e.name == "extra").unwrap();
    assert_eq!((extra.routed, extra.delivered, extra.backlog), (50, 50, 0));
    assert_eq!(ids(&dir.join("extra.jsonl")), (expected(50..100), 50));
    assert_eq!(ids(&dir.join("archive.jsonl")), (expected(0..100), 100));
    assert_eq!(ids(&dir.join("alerts.jsonl")), (expected(0..100), 100));
    assert!(lines(&dir.join("dead.jsonl")).is_empty());
}

/// An endpoint a reload removes keeps its worker: the backlog it had at the swap is delivered
/// (here once its destination comes back), and it gets nothing accepted after the swap.
#[test]
fn an_endpoint_a_reload_removes_delivers_its_backlog() {
    let dir = TempDir::new("remove-endpoint");
    let open = Arc::new(AtomicBool::new(false));
    let p = Pipeline::open(
        config(&dir),
        table(),
        sinks(vec![
            ("archive", file_sink(&dir.join("archive.jsonl"))),
            (
                "alerts",
                Box::new(Gated {
                    inner: JsonLinesSink::to_path(dir.join("alerts.jsonl")).unwrap(),
                    open: Arc::clone(&open),
                }),
            ),
        ]),
        DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
    )
    .unwrap();
    p.accept(prepare(&p, 0..100)).unwrap();
    let alerts = |p: &Pipeline| {
        p.stats()
            .endpoints
            .into_iter()
            .find(|e| e.name == "alerts")
            .unwrap()
    };
    assert_eq!(alerts(&p).backlog, 100, "the gate holds every copy back");
    let reloaded = table_over(&["archive"]);
    p.tables().set(Arc::clone(&reloaded));
    accept_with(&p, &reloaded, 100..200);
    assert_eq!(
        alerts(&p).routed,
        100,
        "the removed endpoint got a new copy"
    );
    open.store(true, Ordering::Release);
    assert!(eventually(Duration::from_secs(30), || alerts(&p).backlog == 0));
    let stats = p.shutdown(Duration::from_secs(30));
    let a = stats.endpoints.iter().find(|e| e.name == "alerts").unwrap();
    assert_eq!((a.routed, a.delivered, a.backlog), (100, 100, 0), "{a:?}");
    assert_eq!(ids(&dir.join("alerts.jsonl")), (expected(0..100), 100));
    assert_eq!(ids(&dir.join("archive.jsonl")), (expected(0..200), 200));
    assert!(lines(&dir.join("dead.jsonl")).is_empty());
}

/// The input's lag (`input_lag`, exported as `hubroute_input_lag_seconds`) is how long
/// before a commit its oldest message was enqueued; there is none before the first commit.
#[test]
fn the_input_lag_is_the_age_of_the_oldest_message_committed() {
    let dir = TempDir::new("lag");
    let p = Pipeline::open(
        config(&dir),
        table(),
        sinks(vec![
            ("archive", file_sink(&dir.join("archive.jsonl"))),
            ("alerts", file_sink(&dir.join("alerts.jsonl"))),
        ]),
        DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
    )
    .unwrap();
    assert_eq!(p.stats().input_lag, None);
    let mut router = p.router();
    let now = SystemTime::now();
    let batch = vec![
        p.prepare(&mut router, &message(1), None, now - Duration::from_secs(2))
            .unwrap(),
        p.prepare(
            &mut router,
            &message(2),
            None,
            now - Duration::from_secs(90),
        )
        .unwrap(),
        p.prepare(&mut router, &message(3), None, now).unwrap(),
    ];
    p.accept(batch).unwrap();
    let lag = p
        .stats()
        .input_lag
        .expect("a lag after a commit")
        .as_secs_f64();
    assert!((90.0..120.0).contains(&lag), "lag {lag}");
    p.accept(prepare(&p, 4..5)).unwrap();
    let lag = p.stats().input_lag.unwrap().as_secs_f64();
    assert!(
        lag < 30.0,
        "the last commit's lag, not the worst ever: {lag}"
    );
    p.shutdown(Duration::from_secs(10));
}

/// One line of a JSON Lines input holding `message(i)`.
fn input_line(i: usize) -> String {
    format!(
        "{{\"systemProperties\": {{\"messageId\": \"m{i}\", \"contentType\": \"application/json\", \"contentEncoding\": \"utf-8\"}}, \"appProperties\": {{\"n\": \"{i}\"}}, \"body\": \"{{\\\"i\\\": {i}}}\"}}\n"
    )
}

fn open_two_files(dir: &TempDir) -> Pipeline {
    Pipeline::open(
        config(dir),
        table(),
        sinks(vec![
            ("archive", file_sink(&dir.join("archive.jsonl"))),
            ("alerts", file_sink(&dir.join("alerts.jsonl"))),
        ]),
        DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
    )
    .unwrap()
}

/// `feed_reader` (what `run --input FILE` does; it reads the next chunk while the last one is
/// routed): whatever the chunk size, every line is counted once, the invalid ones reach the
/// callback in line order, progress sees the count grow to the end a chunk at a time, and
/// every valid message is delivered.
#[test]
fn feeding_a_file_accounts_for_every_line_in_order_at_any_chunk_size() {
    use hubroute::pipeline::input::{feed_reader, LineReader};
    for (chunk, n) in [(1, 150), (3, 700), (1024, 2600)] {
        let dir = TempDir::new("feed");
        let p = open_two_files(&dir);
        let mut input = String::new();
        let (mut valid, mut invalid, mut blank) = (BTreeSet::new(), Vec::new(), 0);
        for i in 1..=n {
            if i % 97 == 0 {
                input.push_str("{oops\n");
                invalid.push(i as u64);
            } else if i % 89 == 0 {
                input.push('\n');
                blank += 1;
            } else {
                input.push_str(&input_line(i));
                valid.insert(format!("m{i}"));
            }
        }
        let (mut seen_invalid, mut progress) = (Vec::new(), Vec::new());
        let report = feed_reader(
            &p,
            LineReader::new(input.as_bytes(), 1 << 20),
            chunk,
            None,
            &mut |bad| seen_invalid.push(bad.line),
            &mut |so_far| progress.push(so_far.read),
        );
        assert_eq!(report.read, n as u64, "chunk {chunk}");
        assert_eq!(report.valid, valid.len() as u64, "chunk {chunk}");
        assert_eq!(report.blank, blank, "chunk {chunk}");
        assert_eq!(
            report.invalid_total(),
            invalid.len() as u64,
            "chunk {chunk}"
        );
        assert_eq!(report.stopped, None, "chunk {chunk}");
        assert_eq!(seen_invalid, invalid, "chunk {chunk}");
        assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
        assert_eq!(progress.last(), Some(&(n as u64)), "chunk {chunk}");
        // Accepted a whole chunk at a time: progress is told after each acceptance.
        assert_eq!(
            progress.len(),
            n.div_ceil(chunk),
            "chunk {chunk}: {progress:?}"
        );
        let archive = dir.join("archive.jsonl");
        assert!(
            eventually(Duration::from_secs(30), || ids(&archive).0 == valid),
            "chunk {chunk}: {} of {} delivered",
            ids(&archive).0.len(),
            valid.len()
        );
        assert_eq!(ids(&archive).1, valid.len(), "chunk {chunk}: duplicates");
    }
}

/// A file that fails to read part way: what was read before the failure is routed and
/// accepted, the report says where reading stopped, and nothing after it is made up, whether
/// the failure ends a chunk part way or comes when a chunk has just been filled.
#[test]
fn a_read_failure_stops_the_feed_after_what_was_read() {
    use hubroute::pipeline::input::{feed_reader, LineReader};
    /// Gives its bytes, then fails.
    struct FailsAfter(std::io::Cursor<Vec<u8>>);
    impl std::io::Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("the disk went away")),
                n => Ok(n),
            }
        }
    }
    for chunk in [1, 3, 5, 1024] {
        let dir = TempDir::new("feedfail");
        let p = open_two_files(&dir);
        let input: String = (1..=10).map(input_line).collect();
        let reader = std::io::BufReader::with_capacity(
            64,
            FailsAfter(std::io::Cursor::new(input.into_bytes())),
        );
        let report = feed_reader(
            &p,
            LineReader::new(reader, 1 << 20),
            chunk,
            None,
            &mut |bad| panic!("no line is invalid: {bad:?}"),
            &mut |_| {},
        );
        assert_eq!(report.read, 10, "chunk {chunk}");
        assert_eq!(report.valid, 10, "chunk {chunk}");
        assert_eq!(
            report.stopped.as_deref(),
            Some("reading failed after line 10: the disk went away"),
            "chunk {chunk}"
        );
        let expected: BTreeSet<String> = (1..=10).map(|i| format!("m{i}")).collect();
        let archive = dir.join("archive.jsonl");
        assert!(
            eventually(Duration::from_secs(30), || ids(&archive).0 == expected),
            "chunk {chunk}: {:?}",
            ids(&archive).0
        );
    }
}
