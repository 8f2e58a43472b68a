//! Operating a running router (`hubroute run`): `/metrics` and `/healthz` scraped over HTTP
//! while it runs, routes reloaded by SIGHUP and `--watch` under load with nothing lost and
//! every message routed by exactly one table, bad configurations refused, the config file,
//! and structured logs. Real processes, real sockets on 127.0.0.1, real signals.

use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("hubroute-ops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A routing configuration with endpoints `a`, `b` and `c` and the given routes
/// (`(name, condition, endpoint)`).
fn routes(list: &[(&str, &str, &str)]) -> String {
    let routes: Vec<Json> = list
        .iter()
        .map(|(name, condition, endpoint)| {
            serde_json::json!({"name": name, "source": "DeviceMessages", "condition": condition,
                               "endpointNames": [endpoint], "isEnabled": true})
        })
        .collect();
    serde_json::json!({
        "endpoints": {"eventHubs": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
        "routes": routes,
    })
    .to_string()
}

/// A message with application properties `kind` and `n`.
fn message(kind: &str, n: usize) -> String {
    format!(
        "{{\"systemProperties\": {{\"messageId\": \"m{n}\", \"connectionDeviceId\": \"d1\"}}, \"appProperties\": {{\"kind\": \"{kind}\", \"n\": \"{n}\"}}, \"body\": \"x\"}}\n"
    )
}

/// A running `hubroute run --input -`, its standard error collected line by line.
struct Router {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<Vec<String>>>,
    addr: String,
}

impl Router {
    /// Starts `run` with `args` plus `--metrics 127.0.0.1:0`, and waits for the address it
    /// logs.
    fn start(args: &[String]) -> Router {
        let mut args = args.to_vec();
        args.push("--quiet".into());
        Router::start_command("run", &args)
    }

    /// [`Router::start`] for any subcommand (`bridge`).
    fn start_command(command: &str, args: &[String]) -> Router {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .arg(command)
            .args(args)
            .args(["--metrics", "127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hubroute run");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let lines = Arc::clone(&stderr);
        let reader = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Some(i) = line.find("metrics at http://") {
                    let rest = &line[i + "metrics at http://".len()..];
                    let addr = rest.split('/').next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = wait_addr(&rx, &stderr);
        let stdin = child.stdin.take();
        Router {
            child,
            stdin,
            stderr,
            addr,
        }
    }

    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn scrape(&self) -> String {
        let (status, body) = get(&self.addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the metric `series` (name with labels) has `value`, or fails saying what
    /// it had.
    fn wait_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = self.scrape();
            if metric(&body, series) == Some(value) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{series} never reached {value}:\n{body}\nstderr:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Closes standard input and waits for the summary; the process's exit status and log.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("run did not finish:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_addr(rx: &Receiver<String>, stderr: &Arc<Mutex<Vec<String>>>) -> String {
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "run never logged its metrics address:\n{}",
                stderr.lock().unwrap().join("\n")
            )
        })
}

/// A plain HTTP/1.1 GET: status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one series (`name{labels}` exactly as scraped) in a scrape.
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The `n` application property of every record of a JSON Lines sink file.
fn numbers_in(path: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let record: Json = serde_json::from_str(l).unwrap();
            record["Properties"]["n"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

fn base_args(dir: &Scratch) -> Vec<String> {
    [
        "--routes",
        &dir.s("routes.json"),
        "--input",
        "-",
        "--sink",
        &format!("a=file:{}", dir.s("a.jsonl")),
        "--sink",
        &format!("b=file:{}", dir.s("b.jsonl")),
        "--dead-letter",
        &dir.s("dead.jsonl"),
        "--store",
        &dir.s("store"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn metrics_and_health_report_what_the_router_did() {
    let dir = Scratch::new("metrics");
    std::fs::write(
        dir.path("routes.json"),
        routes(&[
            ("to-a", "kind = 'a'", "a"),
            ("to-b", "kind = 'b'", "b"),
            ("also-b", "kind = 'bb'", "b"),
        ]),
    )
    .unwrap();
    let mut router = Router::start(&base_args(&dir));
    let (status, body) = get(&router.addr, "/healthz");
    assert_eq!(status, 200, "standard input is connected: {body}");
    let health: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(health["ready"], true);
    assert_eq!(get(&router.addr, "/livez").0, 200);

    let mut input = String::new();
    for n in 0..3 {
        input += &message("a", n);
    }
    input += &message("b", 3);
    input += &message("bb", 4);
    input += &message("nothing", 5);
    input += "{not json\n";
    router.send(&input);
    router.wait_metric("hubroute_messages_read_total", 7.0);
    // Accepted once the store committed them: a moment after they were read.
    router.wait_metric("hubroute_messages_accepted_total", 6.0);
    let body = router.scrape();
    let lag = metric(&body, "hubroute_input_lag_seconds").expect("the input's lag once accepted");
    assert!((0.0..60.0).contains(&lag), "{lag}");
    for (series, value) in [
        ("hubroute_messages_accepted_total", 6.0),
        ("hubroute_messages_invalid_total{code=\"E0301\"}", 1.0),
        ("hubroute_route_messages_total{route=\"to-a\"}", 3.0),
        ("hubroute_route_messages_total{route=\"to-b\"}", 1.0),
        ("hubroute_route_messages_total{route=\"also-b\"}", 1.0),
        ("hubroute_messages_orphaned_total", 1.0),
        ("hubroute_messages_fallback_total", 0.0),
        ("hubroute_endpoint_routed_total{endpoint=\"a\"}", 3.0),
        ("hubroute_endpoint_routed_total{endpoint=\"b\"}", 2.0),
        ("hubroute_route_table_generation", 1.0),
        ("hubroute_ready", 1.0),
    ] {
        assert_eq!(metric(&body, series), Some(value), "{series} in\n{body}");
    }
    assert!(body.contains("# TYPE hubroute_endpoint_delivery_latency_seconds histogram"));
    let (status, _) = finish_ok(router);
    assert!(status.success());
}

fn finish_ok(router: Router) -> (std::process::ExitStatus, String) {
    let (status, log) = router.finish();
    assert!(status.success(), "{status:?}\n{log}");
    (status, log)
}

#[test]
fn a_reload_under_load_routes_every_message_through_exactly_one_table() {
    let dir = Scratch::new("reload-load");
    std::fs::write(dir.path("routes.json"), routes(&[("r", "true", "a")])).unwrap();
    let mut router = Router::start(&base_args(&dir));
    let total = 4000;
    let mut stdin = router.stdin.take().unwrap();
    // The feeder writes without waiting for the router, in small bursts, so the reload
    // lands while messages stream in.
    let feeder = std::thread::spawn(move || {
        for chunk in (0..total).collect::<Vec<_>>().chunks(50) {
            let text: String = chunk.iter().map(|&n| message("x", n)).collect();
            stdin.write_all(text.as_bytes()).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        stdin
    });
    // Reload once some, but not all, messages went through.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&router.scrape(), "hubroute_messages_read_total").unwrap_or(0.0) < 300.0 {
        assert!(Instant::now() < deadline, "{}", router.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(dir.path("routes.json"), routes(&[("r", "true", "b")])).unwrap();
    router.hup();
    router.wait_metric("hubroute_route_table_generation", 2.0);
    router.stdin = Some(feeder.join().unwrap());
    let (_, log) = finish_ok(router);

    let a = numbers_in(&dir.path("a.jsonl"));
    let b = numbers_in(&dir.path("b.jsonl"));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "a {} b {}\n{log}",
        a.len(),
        b.len()
    );
    let in_a: BTreeSet<usize> = a.iter().copied().collect();
    let in_b: BTreeSet<usize> = b.iter().copied().collect();
    assert_eq!(in_a.len(), a.len(), "a copy went to a twice");
    assert_eq!(in_b.len(), b.len(), "a copy went to b twice");
    assert!(
        in_a.is_disjoint(&in_b),
        "a message went through both tables"
    );
    let all: BTreeSet<usize> = in_a.union(&in_b).copied().collect();
    assert_eq!(all, (0..total).collect(), "messages were lost");
    // Read in order, a message either precedes the swap (old table) or follows it (new).
    assert!(
        in_a.last() < in_b.first(),
        "the tables interleaved: last on the old table {:?}, first on the new {:?}",
        in_a.last(),
        in_b.first()
    );
    assert!(log.contains("routes reloaded"), "{log}");
}

/// Routes (`(name, condition, endpoint)`) over exactly the endpoints `endpoints`.
fn routes_over(endpoints: &[&str], list: &[(&str, &str, &str)]) -> String {
    let mut config: Json = serde_json::from_str(&routes(list)).unwrap();
    config["endpoints"]["eventHubs"] = endpoints
        .iter()
        .map(|n| serde_json::json!({ "name": n }))
        .collect();
    config.to_string()
}

#[test]
fn a_reload_under_load_adds_an_endpoint_bound_at_start() {
    let dir = Scratch::new("reload-add");
    // The starting routes know only `a`; `b` is bound by --sink for a later configuration.
    std::fs::write(
        dir.path("routes.json"),
        routes_over(&["a"], &[("r", "true", "a")]),
    )
    .unwrap();
    let mut router = Router::start(&base_args(&dir));
    let total = 4000;
    let mut stdin = router.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for chunk in (0..total).collect::<Vec<_>>().chunks(50) {
            let text: String = chunk.iter().map(|&n| message("x", n)).collect();
            stdin.write_all(text.as_bytes()).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        stdin
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&router.scrape(), "hubroute_messages_read_total").unwrap_or(0.0) < 300.0 {
        assert!(Instant::now() < deadline, "{}", router.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(
        dir.path("routes.json"),
        routes_over(
            &["a", "b"],
            &[("r", "true", "a"), ("to-b", "kind = 'x'", "b")],
        ),
    )
    .unwrap();
    router.hup();
    router.wait_metric("hubroute_route_table_generation", 2.0);
    router.stdin = Some(feeder.join().unwrap());
    let (_, log) = finish_ok(router);

    assert!(
        log.contains("sink for endpoint b is bound; no route uses it yet"),
        "{log}"
    );
    let a = numbers_in(&dir.path("a.jsonl"));
    let b = numbers_in(&dir.path("b.jsonl"));
    // Nothing lost: `a` has every message once, through both tables.
    assert_eq!(a, (0..total).collect::<Vec<_>>(), "{log}");
    // `b` has exactly the messages accepted after the swap: a non-empty suffix of the input,
    // in order, each once, none accepted before (the reload came after 300 were read).
    let first = *b.first().unwrap_or_else(|| panic!("b got nothing\n{log}"));
    assert!(
        first >= 300,
        "b got message {first}, read before the reload\n{log}"
    );
    assert_eq!(b, (first..total).collect::<Vec<_>>(), "{log}");
    let dead = std::fs::read_to_string(dir.path("dead.jsonl")).unwrap_or_default();
    assert!(dead.trim().is_empty(), "dead-lettered: {dead}");
}

#[test]
fn a_bad_configuration_on_sighup_leaves_routing_unchanged_and_says_why() {
    let dir = Scratch::new("reload-bad");
    std::fs::write(dir.path("routes.json"), routes(&[("r", "true", "a")])).unwrap();
    let mut router = Router::start(&base_args(&dir));
    router.send(&(0..5).map(|n| message("x", n)).collect::<String>());
    router.wait_metric("hubroute_messages_read_total", 5.0);

    // A syntax error in a condition.
    std::fs::write(dir.path("routes.json"), routes(&[("r", "a = (b", "b")])).unwrap();
    router.hup();
    router.wait_metric("hubroute_route_table_reloads_total{result=\"error\"}", 1.0);
    // An endpoint with no sink bound (c).
    std::fs::write(dir.path("routes.json"), routes(&[("r", "true", "c")])).unwrap();
    router.hup();
    router.wait_metric("hubroute_route_table_reloads_total{result=\"error\"}", 2.0);
    // Not JSON at all.
    std::fs::write(dir.path("routes.json"), "{\"routes\": [").unwrap();
    router.hup();
    router.wait_metric("hubroute_route_table_reloads_total{result=\"error\"}", 3.0);

    router.send(&(5..10).map(|n| message("x", n)).collect::<String>());
    router.wait_metric("hubroute_messages_read_total", 10.0);
    let body = router.scrape();
    assert_eq!(metric(&body, "hubroute_route_table_generation"), Some(1.0));
    assert_eq!(
        metric(&body, "hubroute_route_table_reloads_total{result=\"ok\"}"),
        Some(0.0)
    );
    let (_, log) = finish_ok(router);
    assert_eq!(
        numbers_in(&dir.path("a.jsonl")),
        (0..10).collect::<Vec<_>>()
    );
    assert!(numbers_in(&dir.path("b.jsonl")).is_empty());
    // Every diagnostic is logged with its code and position, then the refusal.
    assert!(
        log.contains("E0004") && log.contains("routes[0].condition"),
        "{log}"
    );
    assert!(log.contains("E0801"), "{log}");
    assert!(
        log.contains("E0802") && log.contains("with no sink: c"),
        "{log}"
    );
}

#[test]
fn watch_reloads_when_the_routes_file_changes() {
    let dir = Scratch::new("watch");
    std::fs::write(dir.path("routes.json"), routes(&[("r", "true", "a")])).unwrap();
    let mut args = base_args(&dir);
    args.push("--watch".into());
    let mut router = Router::start(&args);
    router.send(&message("x", 0));
    router.wait_metric("hubroute_messages_read_total", 1.0);
    std::fs::write(dir.path("routes.json"), routes(&[("r", "true", "b")])).unwrap();
    router.wait_metric("hubroute_route_table_generation", 2.0);
    router.send(&message("x", 1));
    router.wait_metric("hubroute_messages_read_total", 2.0);
    // Counters survive the reload.
    let body = router.scrape();
    assert_eq!(
        metric(&body, "hubroute_route_messages_total{route=\"r\"}"),
        Some(2.0)
    );
    finish_ok(router);
    assert_eq!(numbers_in(&dir.path("a.jsonl")), [0]);
    assert_eq!(numbers_in(&dir.path("b.jsonl")), [1]);
}

#[test]
fn the_config_file_configures_run_and_flags_override_it() {
    let dir = Scratch::new("config");
    std::fs::write(dir.path("routes.json"), routes(&[("r", "kind = 'a'", "a")])).unwrap();
    std::fs::write(
        dir.path("router.toml"),
        r#"
routes = "routes.json"
dead_letter = "dead.jsonl"
[store]
dir = "store"
[input]
url = "-"
[sinks]
a = "file:from-config.jsonl"
b = "file:b.jsonl"
[log]
format = "json"
undefined = 100
[limits]
max_attempts = 3
"#,
    )
    .unwrap();
    let args: Vec<String> = [
        "--config",
        &dir.s("router.toml"),
        "--sink",
        &format!("a=file:{}", dir.s("from-flag.jsonl")),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut router = Router::start(&args);
    router.send(&(message("a", 0) + &message("zzz", 1) + "{\"appProperties\": {\"n\": \"2\"}}\n"));
    router.wait_metric("hubroute_messages_read_total", 3.0);
    let (_, log) = finish_ok(router);
    assert_eq!(numbers_in(&dir.path("from-flag.jsonl")), [0]);
    assert!(!dir.path("from-config.jsonl").exists());
    // JSON logs: the undefined evaluation of message 2 (no `kind`), as a JSON object.
    let undefined: Vec<Json> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|j| j["operation"] == "undefinedRouteEvaluation")
        .collect();
    assert_eq!(undefined.len(), 1, "{log}");
    assert_eq!(undefined[0]["route"], "r");
    assert_eq!(undefined[0]["message_id"], "");
    assert!(
        undefined[0]["message"]
            .as_str()
            .unwrap()
            .contains("undefined: kind"),
        "{log}"
    );
}

#[test]
fn a_config_file_error_names_its_line_and_column() {
    let dir = Scratch::new("config-bad");
    std::fs::write(
        dir.path("router.toml"),
        "routes = \"r.json\"\n[sinks]\na = 3\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(["run", "--config", &dir.s("router.toml")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("router.toml:3:5: [E0805]"), "{err}");
}

#[test]
fn undefined_logs_are_rate_limited_and_say_how_many_were_left_out() {
    let dir = Scratch::new("undefined-rate");
    std::fs::write(dir.path("routes.json"), routes(&[("r", "kind = 'a'", "a")])).unwrap();
    let mut args = base_args(&dir);
    args.extend(["--log-undefined".to_string(), "3".to_string()]);
    let mut router = Router::start(&args);
    let no_kind: String = (0..50)
        .map(|n| format!("{{\"appProperties\": {{\"n\": \"{n}\"}}}}\n"))
        .collect();
    router.send(&no_kind);
    router.wait_metric("hubroute_messages_read_total", 50.0);
    let body = router.scrape();
    assert_eq!(
        metric(&body, "hubroute_route_undefined_total{route=\"r\"}"),
        Some(50.0),
        "every undefined evaluation is counted"
    );
    let (_, log) = finish_ok(router);
    let lines = log.matches("evaluated to undefined").count();
    assert!(
        (3..50).contains(&lines),
        "{lines} lines for 50 undefined evaluations at 3 a second:\n{log}"
    );
}

#[test]
fn the_readme_lists_every_metric_with_its_iot_hub_counterpart() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for m in hubroute::ops::metrics::METRICS {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", m.name)))
            .unwrap_or_else(|| panic!("README has no row for {}", m.name));
        let hub = m.iot_hub.split([' ', ';']).next().unwrap_or_default();
        assert!(row.contains(hub), "{row} should name {}", m.iot_hub);
    }
}

/// A Mosquitto on a free loopback port, killed on drop.
#[cfg(feature = "mqtt")]
struct Mosquitto {
    child: Child,
    port: u16,
}

#[cfg(feature = "mqtt")]
impl Mosquitto {
    fn start(dir: &Scratch) -> Mosquitto {
        let port = free_port();
        let conf = dir.path("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_inflight_messages 2000\nmax_queued_messages 100000\nuser root\n"
            ),
        )
        .unwrap();
        let program = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or_else(|| {
                panic!("mosquitto is not installed; this test starts a real broker: `apt-get install -y mosquitto`")
            });
        let child = Command::new(program)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto { child, port }
    }

    /// Publishes `n` device messages with QoS 1 and waits for every PUBACK; every fifth is
    /// `level=critical`.
    fn publish(&self, n: usize) {
        self.publish_to(n, |i| {
            let level = if i % 5 == 0 { "critical" } else { "info" };
            format!(
                "devices/dev-{}/messages/events/$.mid=m-{i}&level={level}",
                i % 3
            )
        });
    }

    /// Publishes `n` messages to the topics `topic` names, waiting for every PUBACK.
    fn publish_to(&self, n: usize, topic: fn(usize) -> String) {
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let mut options = MqttOptions::new("ops-device", "127.0.0.1", self.port);
        options.set_keep_alive(Duration::from_secs(10));
        let (client, mut connection) = Client::new(options, 64);
        let publisher = std::thread::spawn(move || {
            for i in 0..n {
                let topic = topic(i);
                client
                    .publish(topic, QoS::AtLeastOnce, false, format!("{{\"seq\":{i}}}"))
                    .unwrap();
            }
            client
        });
        let mut acked = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked < n {
            assert!(
                Instant::now() < deadline,
                "{acked} of {n} publishes acknowledged"
            );
            match connection.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(_)) => {}
                other => panic!("device connection failed: {other:?}"),
            }
        }
        let _ = publisher.join().unwrap().disconnect();
    }
}

#[cfg(feature = "mqtt")]
impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "mqtt")]
#[test]
fn metrics_show_a_down_endpoint_while_devices_publish_over_mqtt() {
    let dir = Scratch::new("mqtt-down");
    let broker = Mosquitto::start(&dir);
    // Nothing listens on `down`: the MQTT sink of endpoint b fails and is retried.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path("routes.json"),
        routes(&[
            ("all", "true", "a"),
            ("critical", "level = 'critical'", "b"),
        ]),
    )
    .unwrap();
    let args: Vec<String> = [
        "--routes".to_string(),
        dir.s("routes.json"),
        "--input".into(),
        format!("mqtt://127.0.0.1:{}", broker.port),
        "--client-id".into(),
        "ops-router".into(),
        "--sink".into(),
        format!("a=file:{}", dir.s("a.jsonl")),
        "--sink".into(),
        format!("b=mqtt://127.0.0.1:{down}/alerts"),
        "--dead-letter".into(),
        dir.s("dead.jsonl"),
        "--store".into(),
        dir.s("store"),
    ]
    .into();
    let router = Router::start(&args);
    // Ready once subscribed to the devices' topics.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&router.addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", router.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.publish(20);
    router.wait_metric("hubroute_messages_read_total", 20.0);
    router.wait_metric("hubroute_endpoint_delivered_total{endpoint=\"a\"}", 20.0);
    router.wait_metric(
        "hubroute_endpoint_health{endpoint=\"b\",state=\"unhealthy\"}",
        1.0,
    );
    let body = router.scrape();
    for (series, value) in [
        ("hubroute_messages_accepted_total", 20.0),
        ("hubroute_route_messages_total{route=\"all\"}", 20.0),
        ("hubroute_route_messages_total{route=\"critical\"}", 4.0),
        ("hubroute_endpoint_routed_total{endpoint=\"a\"}", 20.0),
        ("hubroute_endpoint_routed_total{endpoint=\"b\"}", 4.0),
        ("hubroute_endpoint_delivered_total{endpoint=\"b\"}", 0.0),
        ("hubroute_endpoint_backlog_messages{endpoint=\"b\"}", 4.0),
        ("hubroute_endpoint_backlog_messages{endpoint=\"a\"}", 0.0),
        (
            "hubroute_endpoint_health{endpoint=\"a\",state=\"healthy\"}",
            1.0,
        ),
        (
            "hubroute_endpoint_health{endpoint=\"b\",state=\"healthy\"}",
            0.0,
        ),
        ("hubroute_endpoint_dead_lettered_total{endpoint=\"b\"}", 0.0),
        (
            "hubroute_endpoint_delivery_latency_seconds_count{endpoint=\"a\"}",
            20.0,
        ),
        ("hubroute_ready", 1.0),
    ] {
        assert_eq!(metric(&body, series), Some(value), "{series} in\n{body}");
    }
    assert!(
        metric(&body, "hubroute_endpoint_retries_total{endpoint=\"b\"}").unwrap_or(0.0) >= 1.0,
        "{body}"
    );
    assert!(
        metric(&body, "hubroute_store_messages").unwrap_or(0.0) >= 4.0,
        "the copies for b wait in the store:\n{body}"
    );
    let commits = metric(&body, "hubroute_store_commits_total").unwrap_or(0.0);
    assert!(
        (1.0..=20.0).contains(&commits),
        "20 accepted messages took {commits} commits:\n{body}"
    );
    let (status, health) = get(&router.addr, "/healthz");
    assert_eq!(status, 200, "{health}");
    let health: Json = serde_json::from_str(&health).unwrap();
    assert_eq!(health["endpoints"]["b"]["health"], "unhealthy");
    assert!(
        health["endpoints"]["b"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{health}"
    );
}

#[cfg(feature = "mqtt")]
#[test]
fn no_secret_reaches_the_logs_the_metrics_or_the_health_report() {
    let dir = Scratch::new("secrets");
    std::fs::write(dir.path("routes.json"), routes(&[("r", "true", "a")])).unwrap();
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args: Vec<String> = [
        "--routes".to_string(),
        dir.s("routes.json"),
        "--input".into(),
        "-".into(),
        "--sink".into(),
        format!("a=mqtt://operator:TopSecret42@127.0.0.1:{down}/alerts"),
        "--dead-letter".into(),
        dir.s("dead.jsonl"),
        "--store".into(),
        dir.s("store"),
        "--drain-timeout".into(),
        "1s".into(),
        "--log".into(),
        "trace".into(),
        "--log-format".into(),
        "json".into(),
        "--log-undefined".into(),
    ]
    .into();
    let mut router = Router::start(&args);
    router.send(&message("x", 0));
    router.wait_metric(
        "hubroute_endpoint_health{endpoint=\"a\",state=\"unhealthy\"}",
        1.0,
    );
    let metrics = router.scrape();
    let (_, health) = get(&router.addr, "/healthz");
    assert!(
        health.contains("127.0.0.1"),
        "the reason names the broker: {health}"
    );
    let (_, log) = router.finish();
    assert!(
        log.contains("a: routed 1, delivered 0"),
        "the summary is logged:\n{log}"
    );
    assert_json_lines(&log);
    let dead = std::fs::read_to_string(dir.path("dead.jsonl")).unwrap_or_default();
    for (what, text) in [
        ("metrics", &metrics),
        ("health", &health),
        ("log", &log),
        ("dead letter", &dead),
    ] {
        assert!(
            !text.contains("TopSecret42"),
            "the password is in the {what}:\n{text}"
        );
    }
}

/// With `--log-format json` every line on standard error is a JSON object, also what the
/// library reports (a sink retrying, an input connecting, an invalid message), so that a
/// log collector reads all of it.
fn assert_json_lines(log: &str) {
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Json = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{log}"));
        assert!(v.get("level").is_some(), "{line}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A nats-server with JetStream on a free loopback port, killed on drop.
#[cfg(all(feature = "mqtt", feature = "nats"))]
struct Nats {
    child: Child,
    port: u16,
}

#[cfg(all(feature = "mqtt", feature = "nats"))]
impl Nats {
    fn start(dir: &Scratch) -> Nats {
        let port = free_port();
        let program = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or_else(|| {
                panic!("nats-server is not installed; this test starts a real one: `apt-get install -y nats-server`")
            });
        let child = Command::new(program)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, port }
    }
}

#[cfg(all(feature = "mqtt", feature = "nats"))]
impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(all(feature = "mqtt", feature = "nats"))]
#[test]
fn the_bridge_serves_its_counts_and_readiness() {
    let dir = Scratch::new("bridge");
    let broker = Mosquitto::start(&dir);
    let nats = Nats::start(&dir);
    let args: Vec<String> = [
        "--from".to_string(),
        format!("mqtt://127.0.0.1:{}", broker.port),
        "--to".into(),
        format!("jetstream://127.0.0.1:{}/OPS", nats.port),
        "--client-id".into(),
        "ops-bridge".into(),
        "--dead-letter".into(),
        dir.s("dead.jsonl"),
        "--log-format".into(),
        "json".into(),
    ]
    .into();
    let router = Router::start_command("bridge", &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&router.addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", router.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.publish(6);
    // A property without a name: a malformed property bag.
    broker.publish_to(1, |_| "devices/dev-1/messages/events/=x".into());
    router.wait_metric("hubroute_messages_read_total", 7.0);
    router.wait_metric("hubroute_messages_accepted_total", 6.0);
    // Counted as invalid a moment after it was counted as read.
    let invalid = |body: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with("hubroute_messages_invalid_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = router.scrape();
        if invalid(&body) == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !router.log().contains("invalid message on") {
        assert!(Instant::now() < deadline, "{}", router.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = router.log();
    assert!(
        log.contains("subscribed to device-to-cloud topics"),
        "{log}"
    );
    assert_json_lines(&log);
}

/// The `text` blocks of README.md's "Operating the router" section, in order: what the
/// metrics demo prints.
fn readme_demo_outputs() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once("## Operating the router")
        .expect("README has its Operating the router section")
        .1;
    section
        .split("```text\n")
        .skip(1)
        .take(2)
        .map(|b| {
            b.split_once("```")
                .unwrap()
                .0
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// README's metrics and reload demo, as the README runs it (with a free port instead of 9464
/// and the files in a scratch directory): every series it shows has the value it shows, before
/// and after the reload.
#[test]
fn the_readme_metrics_and_reload_demo_prints_what_the_readme_shows() {
    let outputs = readme_demo_outputs();
    assert_eq!(outputs.len(), 2, "two outputs in the README demo");
    let dir = Scratch::new("readme-demo");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let routes = dir.path("routes.json");
    std::fs::copy(repo.join("examples/routing.json"), &routes).unwrap();
    let mut args: Vec<String> = vec![
        "--config".into(),
        repo.join("examples/router.toml").display().to_string(),
        "--routes".into(),
        routes.display().to_string(),
        "--input".into(),
        "-".into(),
        "--store".into(),
        dir.s("store"),
        "--dead-letter".into(),
        dir.s("dead.jsonl"),
    ];
    for (endpoint, sink) in [
        ("hotpath", "file:hot.jsonl"),
        ("alerts", "file:alerts.jsonl"),
        ("coldstorage", "storage:cold"),
        ("events", "file:events.jsonl"),
    ] {
        let (kind, file) = sink.split_once(':').unwrap();
        args.push("--sink".into());
        args.push(format!("{endpoint}={kind}:{}", dir.s(file)));
    }
    let mut router = Router::start(&args);
    router.send(&std::fs::read_to_string(repo.join("examples/messages.jsonl")).unwrap());
    let check = |router: &Router, lines: &[String]| {
        for line in lines {
            let (series, value) = line.rsplit_once(' ').unwrap();
            router.wait_metric(series, value.parse().unwrap());
        }
    };
    check(&router, &outputs[0]);

    let text = std::fs::read_to_string(&routes).unwrap();
    assert!(text.contains("as_number(severity) <= 2"));
    std::fs::write(
        &routes,
        text.replace("as_number(severity) <= 2", "as_number(severity) <= 1"),
    )
    .unwrap();
    router.hup();
    check(&router, &outputs[1]);
    let (_, log) = router.finish();
    assert!(log.contains("routes reloaded: generation 2"), "{log}");
}
