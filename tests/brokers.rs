//! The router against real brokers: Mosquitto and nats-server (with JetStream) are started on
//! free loopback ports for each test and stopped after it. Devices publish over MQTT exactly as
//! they would to IoT Hub; `hubroute bridge` and `hubroute run` are the real binary.
//!
//! Needs `mosquitto` and `nats-server` on the PATH or in /usr/sbin (Debian packages `mosquitto`
//! and `nats-server`); without them every test fails and says how to install them. Waits are
//! bounded and only guard against hangs; nothing asserts on how long anything takes.
#![cfg(all(feature = "mqtt", feature = "nats", feature = "cli"))]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

mod support;
use support::{current_user, eventually, find_program, free_port};

use support::TempDir;

/// A broker process, killed on drop.
struct Server {
    child: Option<Child>,
    port: u16,
    command: Command,
    what: String,
}

impl Server {
    /// A Mosquitto on a free loopback port, configured as the README asks of a broker in front
    /// of a router: in particular `max_inflight_messages` as large as the router's
    /// `--max-in-flight`. Mosquitto's default, 20, can let an endpoint that is down hold up
    /// every other endpoint once 20 of its messages wait, which is the likeliest cause of the
    /// outage test's rare stall (once in about 80 runs) before this was set.
    fn mosquitto(dir: &Path, persistent: bool) -> Server {
        Server::mosquitto_window(dir, persistent, 2000)
    }

    /// [`Server::mosquitto`] sending a client at most `window` unacknowledged messages.
    fn mosquitto_window(dir: &Path, persistent: bool, window: u32) -> Server {
        let port = free_port();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let data = dir.join(format!("mosquitto-{port}"));
        std::fs::create_dir_all(&data).unwrap();
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n\
             max_inflight_messages {window}\n\
             log_dest file {}/mosquitto-{port}.log\nlog_type all\n\
             user {}\n",
            dir.display(),
            // Run as root, Mosquitto drops privileges to `mosquitto`, which cannot write its log
            // or its persistence file in our directory; this keeps it the invoking user.
            current_user()
        );
        if persistent {
            text.push_str(&format!(
                "persistence true\npersistence_location {}/\n",
                data.display()
            ));
        } else {
            text.push_str("persistence false\n");
        }
        std::fs::write(&conf, text).unwrap();
        let mut command = Command::new(find_program("mosquitto"));
        command
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Server::start(command, port, "mosquitto")
    }

    fn nats(dir: &Path) -> Server {
        let port = free_port();
        let store = dir.join(format!("nats-{port}"));
        let mut command = Command::new(find_program("nats-server"));
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Server::start(command, port, "nats-server")
    }

    fn start(mut command: Command, port: u16, what: &str) -> Server {
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        support::wait_for_port(port, what, &mut child, None);
        Server {
            child: Some(child),
            port,
            command,
            what: what.to_string(),
        }
    }

    /// Stops the broker gracefully (SIGTERM, so Mosquitto saves its sessions).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL, `away`, then the same command again (a JetStream server keeps its streams in `-sd`).
    fn kill_and_restart(&mut self, away: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(away);
        let mut child = self.command.spawn().unwrap();
        support::wait_for_port(self.port, &self.what, &mut child, None);
        self.child = Some(child);
    }

    fn restart(&mut self) {
        self.stop();
        let mut child = self.command.spawn().unwrap();
        support::wait_for_port(self.port, &self.what, &mut child, None);
        self.child = Some(child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `hubroute` process, killed on drop; its standard error is kept in a file.
struct Hubroute {
    child: Option<Child>,
    log: PathBuf,
}

impl Hubroute {
    fn start(args: &[String], log: PathBuf) -> Hubroute {
        let err = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start hubroute");
        Hubroute {
            child: Some(child),
            log,
        }
    }

    /// SIGKILL: no chance to acknowledge, flush or say goodbye.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait; the process's report (standard error).
    fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("hubroute did not stop: {}", self.report());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.report()
    }

    fn report(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most `limit`) for the process to exit by itself; its status and report.
    fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let mut c = self.child.take().expect("still running");
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return (status, self.report());
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("hubroute did not exit by itself: {}", self.report());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the process says it subscribed to the devices' topics.
    fn wait_subscribed(&self) {
        assert!(
            eventually(Duration::from_secs(30), || self
                .report()
                .contains("subscribed to device-to-cloud topics")),
            "never subscribed: {}",
            self.report()
        );
    }
}

impl Drop for Hubroute {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const ROUTES: &str = r#"{
  "endpoints": { "eventHubs": [ { "name": "archive" }, { "name": "alerts" }, { "name": "critical" } ] },
  "routes": [
    { "name": "all", "source": "DeviceMessages", "condition": "true", "endpointNames": ["archive"], "isEnabled": true },
    { "name": "hot", "source": "DeviceMessages", "condition": "$contentType = 'application/json' AND $body.temp > 50", "endpointNames": ["alerts"], "isEnabled": true },
    { "name": "crit", "source": "DeviceMessages", "condition": "level = 'critical' AND $connectionDeviceId != 'spoofed'", "endpointNames": ["critical"], "isEnabled": true }
  ],
  "enrichments": [ { "key": "via", "value": "hubroute", "endpointNames": ["alerts"] } ]
}"#;

/// The test fleet's messages: id `m-{i}` from device `dev-{i % 3}`, hot when `i % 4 == 0`,
/// critical when `i % 5 == 0`. Every message also claims to be from device `spoofed`.
fn publish_fleet(port: u16, range: std::ops::Range<usize>) {
    let mut o = MqttOptions::new(format!("fleet-{}", range.start), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut connection) = Client::new(o, 64);
    let n = range.len();
    let publisher = std::thread::spawn(move || {
        for i in range {
            let level = if i % 5 == 0 { "critical" } else { "info" };
            let temp = if i % 4 == 0 { 80 } else { 20 };
            let topic = format!(
                "devices/dev-{}/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.mid=m-{i}&level={level}&iothub-connection-device-id=spoofed",
                i % 3
            );
            client
                .publish(
                    topic,
                    QoS::AtLeastOnce,
                    false,
                    format!(r#"{{"temp":{temp},"seq":{i}}}"#),
                )
                .unwrap();
        }
        client
    });
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked < n {
        assert!(
            Instant::now() < deadline,
            "broker acknowledged {acked} of {n} publishes"
        );
        match connection.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("device connection failed: {other:?}"),
        }
    }
    let client = publisher.join().unwrap();
    let _ = client.disconnect();
}

fn expected(ids: impl Iterator<Item = usize> + Clone) -> BTreeMap<&'static str, BTreeSet<String>> {
    let set = |f: fn(&usize) -> bool| ids.clone().filter(f).map(|i| format!("m-{i}")).collect();
    BTreeMap::from([
        ("archive", set(|_| true)),
        ("alerts", set(|i| i % 4 == 0)),
        ("critical", set(|i| i % 5 == 0)),
    ])
}

/// Message ids in JSON Lines storage records (several files: one per worker).
fn ids_in_files(files: &[PathBuf]) -> (BTreeSet<String>, usize) {
    let mut ids = BTreeSet::new();
    let mut lines = 0;
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        // A line still being written (no newline yet) is read next time.
        for line in text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n') && l.trim() != "")
        {
            let v: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
            assert_eq!(v["SystemProperties"]["contentType"], "application/json");
            assert_ne!(v["SystemProperties"]["connectionDeviceId"], "spoofed");
            assert!(v["Properties"].get("iothub-connection-device-id").is_none());
            ids.insert(
                v["SystemProperties"]["messageId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            lines += 1;
        }
    }
    (ids, lines)
}

/// Collects what the MQTT sink publishes under `topic/#`, on a persistent session so nothing
/// published while it reconnects is missed.
/// Topic and payload of each publish received.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

struct Subscriber {
    received: Received,
    /// Connections the watcher completed (CONNACKs), for diagnosing a failure.
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    fn start(port: u16, topic: &str) -> Subscriber {
        let mut o = MqttOptions::new(format!("watcher-{port}"), "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(o, 16);
        let filter = format!("{topic}/#");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let received = std::sync::Arc::clone(&received);
            let stop = std::sync::Arc::clone(&stop);
            let connections = std::sync::Arc::clone(&connections);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Generous: a timeout abandons a connection attempt half way, and on a busy
                    // machine short ones could keep a reconnect from ever completing.
                    match connection.recv_timeout(Duration::from_secs(2)) {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            client.subscribe(filter.clone(), QoS::AtLeastOnce).unwrap();
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            let _ = ready_tx.send(());
                        }
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            received
                                .lock()
                                .unwrap()
                                .push((p.topic.clone(), p.payload.to_vec()));
                        }
                        Ok(Ok(_)) | Err(_) => {}
                        Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("subscribed to the sink's topic");
        Subscriber {
            received,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// Message ids (from the property bag) received so far, and how many publishes.
    fn ids(&self) -> (BTreeSet<String>, usize) {
        let got = self.received.lock().unwrap();
        let mut ids = BTreeSet::new();
        for (topic, _) in got.iter() {
            let bag = topic.split_once('/').map(|(_, b)| b).unwrap_or("");
            let pairs = hubroute::ingest::property_bag::decode(bag).expect("a valid bag");
            let get = |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| n == k)
                    .and_then(|(_, v)| v.clone())
            };
            assert_eq!(
                get("via").as_deref(),
                Some("hubroute"),
                "enrichment in {topic}"
            );
            assert!(
                get("$.cdid").is_some_and(|d| d.starts_with("dev-")),
                "{topic}"
            );
            ids.insert(get("$.mid").expect("$.mid in the bag"));
        }
        (ids, got.len())
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// Critical messages arrive on a NATS subject with their properties as headers, named as the
/// Event Hubs endpoint `critical` names them; the `alerts` MQTT sink asks for IoT Edge's names.
async fn collect_nats(
    port: u16,
    subject: String,
    ids: std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>,
    ready: std::sync::mpsc::Sender<()>,
) {
    use futures_util::StreamExt;
    let client = async_nats::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut sub = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    ready.send(()).unwrap();
    while let Some(m) = sub.next().await {
        let h = m.headers.expect("properties as headers");
        assert_eq!(h.get("level").map(|v| v.as_str()), Some("critical"));
        // `critical` is an eventHubs endpoint: its copies carry Event Hubs' property names.
        assert_eq!(
            h.get("content-type").map(|v| v.as_str()),
            Some("application%2Fjson")
        );
        assert!(h
            .get("iothub-connection-device-id")
            .is_some_and(|d| d.as_str().starts_with("dev-")));
        assert!(h.get("$.ct").is_none() && h.get("$.cdid").is_none());
        let id = h
            .get("message-id")
            .expect("message-id header")
            .as_str()
            .to_string();
        ids.lock().unwrap().insert(id);
    }
}

/// The test routes, written into `dir`.
fn write_routes(dir: &Path) -> PathBuf {
    let routes = dir.join("routes.json");
    std::fs::write(&routes, ROUTES).unwrap();
    routes
}

/// `hubroute bridge` from the MQTT broker on `mqtt_port` to `stream`, dead-lettering into `dir`.
fn start_bridge(dir: &Path, mqtt_port: u16, stream: &str, extra: &[&str]) -> Hubroute {
    let mut args = vec![
        s("bridge"),
        s("--from"),
        format!("mqtt://127.0.0.1:{mqtt_port}"),
        s("--to"),
        s(stream),
        s("--dead-letter"),
        s(dir.join("bridge-dead.jsonl").display()),
    ];
    args.extend(extra.iter().map(s));
    Hubroute::start(&args, dir.join("bridge.log"))
}

/// `hubroute run` on `input` with every endpoint bound to a JSON Lines file in `out`; the
/// archive file is `out/archive.jsonl`.
fn start_file_worker(dir: &Path, routes: &Path, input: String, out: &Path) -> Hubroute {
    let file = |name: &str| s(out.join(name).display());
    Hubroute::start(
        &[
            s("run"),
            s("--routes"),
            s(routes.display()),
            s("--input"),
            input,
            s("--sink"),
            format!("archive=file:{}", file("archive.jsonl")),
            s("--sink"),
            format!("alerts=file:{}", file("alerts.jsonl")),
            s("--sink"),
            format!("critical=file:{}", file("critical.jsonl")),
            s("--dead-letter"),
            file("dead.jsonl"),
            s("--store"),
            file("store"),
        ],
        dir.join("worker.log"),
    )
}

#[test]
fn devices_bridge_jetstream_two_workers_and_a_sigkill_lose_nothing() {
    let dir = TempDir::new("e2e");
    let mqtt = Server::mosquitto(&dir.0, false);
    let sink_mqtt = Server::mosquitto(&dir.0, true);
    let nats = Server::nats(&dir.0);
    let routes = write_routes(&dir.0);
    let alerts = Subscriber::start(sink_mqtt.port, "alerts");

    let nats_ids = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.spawn(collect_nats(
        nats.port,
        "critical".into(),
        std::sync::Arc::clone(&nats_ids),
        ready_tx,
    ));
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("NATS subscriber ready");

    let stream = format!("jetstream://127.0.0.1:{}/HUB", nats.port);
    let mut bridge = start_bridge(&dir.0, mqtt.port, &stream, &["--client-id", "bridge-e2e"]);
    let worker = |n: usize| {
        let out = dir.0.join(format!("w{n}"));
        Hubroute::start(
            &[
                s("run"),
                s("--routes"),
                s(routes.display()),
                s("--input"),
                format!("{stream}?consumer=routers&ack_wait=2s"),
                s("--sink"),
                format!("archive=file:{}", out.join("archive.jsonl").display()),
                s("--sink"),
                format!(
                    "alerts=mqtt://127.0.0.1:{}/alerts?names=edge",
                    sink_mqtt.port
                ),
                s("--sink"),
                format!("critical=nats://127.0.0.1:{}/critical", nats.port),
                s("--dead-letter"),
                s(out.join("dead.jsonl").display()),
                s("--store"),
                s(out.join("store").display()),
                s("--max-backoff"),
                s("500ms"),
                s("--max-attempts"),
                s("1000"),
            ],
            dir.0.join(format!("w{n}.log")),
        )
    };
    bridge.wait_subscribed();
    let mut w1 = worker(1);
    let mut w2 = worker(2);
    let archives = [
        dir.0.join("w1/archive.jsonl"),
        dir.0.join("w2/archive.jsonl"),
    ];

    // Malformed input is counted and dead-lettered, never fatal.
    {
        let o = MqttOptions::new("bad-device", "127.0.0.1", mqtt.port);
        let (client, mut connection) = Client::new(o, 8);
        client
            .publish(
                "devices/dev-x/messages/events/a=%zz",
                QoS::AtLeastOnce,
                false,
                "x",
            )
            .unwrap();
        client
            .publish(
                "devices/bad id/messages/events/",
                QoS::AtLeastOnce,
                false,
                "x",
            )
            .unwrap();
        let mut acked = 0;
        while acked < 2 {
            if let Ok(Ok(Event::Incoming(Packet::PubAck(_)))) =
                connection.recv_timeout(Duration::from_secs(10))
            {
                acked += 1;
            }
        }
    }

    publish_fleet(mqtt.port, 0..300);
    // Kill a worker mid-stream, once it has delivered some messages: whichever does first,
    // since how the consumer's messages split between the two depends on which pulls first.
    let delivered = |n: usize| ids_in_files(&archives[n..=n]).0.len() >= 20;
    assert!(
        eventually(Duration::from_secs(60), || delivered(0) || delivered(1)),
        "no worker delivered: {}\n{}",
        w1.report(),
        w2.report()
    );
    let (killed_n, killed, survivor) = if delivered(0) {
        (1, &mut w1, &mut w2)
    } else {
        (2, &mut w2, &mut w1)
    };
    killed.kill();
    publish_fleet(mqtt.port, 300..600);
    // What the killed worker had acknowledged is in its store, not lost: restarted on the same
    // store, it delivers it (and takes its share of the stream again).
    *killed = worker(killed_n);

    let want = expected(0..600);
    let complete = eventually(Duration::from_secs(120), || {
        ids_in_files(&archives).0 == want["archive"]
            && alerts.ids().0 == want["alerts"]
            && *nats_ids.lock().unwrap() == want["critical"]
    });
    let survivor_report = survivor.stop();
    let bridge_report = bridge.stop();
    let (archived, archive_lines) = ids_in_files(&archives);
    let (alerted, _) = alerts.ids();
    assert!(
        complete,
        "missing archive {:?}, alerts {:?}, critical {:?}\nsurviving worker: {survivor_report}\nbridge: {bridge_report}",
        want["archive"].difference(&archived).take(10).collect::<Vec<_>>(),
        want["alerts"].difference(&alerted).take(10).collect::<Vec<_>>(),
        want["critical"].difference(&nats_ids.lock().unwrap()).take(10).collect::<Vec<_>>(),
    );
    assert_eq!(archived, want["archive"]);
    assert!(archive_lines >= 600);
    assert!(bridge_report.contains("invalid: 2"), "{bridge_report}");
    let dead = std::fs::read_to_string(dir.0.join("bridge-dead.jsonl")).unwrap();
    assert!(dead.contains("E0602") && dead.contains("E0601"), "{dead}");
}

/// `hubroute run` from the MQTT broker on `mqtt_port` into three `NAME=URL` sinks, retrying
/// a failing sink every 300 ms at most and for long (1000 attempts), logging to
/// `dir/router.log`.
fn start_patient_router(
    dir: &Path,
    routes: &Path,
    mqtt_port: u16,
    client_id: &str,
    sinks: [String; 3],
    dead_letter: &Path,
    extra: &[&str],
) -> Hubroute {
    let mut args = vec![
        s("run"),
        s("--routes"),
        s(routes.display()),
        s("--input"),
        format!("mqtt://127.0.0.1:{mqtt_port}"),
        s("--client-id"),
        s(client_id),
        s("--dead-letter"),
        s(dead_letter.display()),
        s("--store"),
        s(dir.join(format!("store-{client_id}")).display()),
        s("--max-backoff"),
        s("300ms"),
        s("--max-attempts"),
        s("1000"),
    ];
    for sink in sinks {
        args.extend([s("--sink"), sink]);
    }
    args.extend(extra.iter().map(s));
    Hubroute::start(&args, dir.join("router.log"))
}

/// `--exit-when-idle` stops a router once no message came for that long, after delivering
/// and acknowledging what it read.
#[test]
fn a_router_with_exit_when_idle_stops_by_itself() {
    let dir = TempDir::new("idle");
    let mqtt = Server::mosquitto(&dir.0, false);
    let routes = write_routes(&dir.0);
    let out = dir.0.join("out");
    let file = |name: &str| out.join(name).display().to_string();
    let mut router = start_patient_router(
        &dir.0,
        &routes,
        mqtt.port,
        "router-idle",
        [
            format!("archive=file:{}", file("archive.jsonl")),
            format!("alerts=file:{}", file("alerts.jsonl")),
            format!("critical=file:{}", file("critical.jsonl")),
        ],
        &out.join("dead.jsonl"),
        &["--exit-when-idle", "5s"],
    );
    router.wait_subscribed();
    publish_fleet(mqtt.port, 0..20);
    let (status, report) = router.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}: {report}");
    assert!(report.contains("read 20 messages"), "{report}");
    let (archived, _) = ids_in_files(&[out.join("archive.jsonl")]);
    assert_eq!(archived, expected(0..20)["archive"]);
}

/// [`start_patient_router`] with every endpoint on a port where nothing listens: every copy
/// fails and is retried, so every copy stays in the router's store.
fn start_router_with_every_endpoint_down(
    dir: &Path,
    mqtt_port: u16,
    client_id: &str,
    extra: &[&str],
) -> Hubroute {
    let down = format!("mqtt://127.0.0.1:{}", free_port());
    start_patient_router(
        dir,
        &write_routes(dir),
        mqtt_port,
        client_id,
        [
            format!("archive={down}/archive"),
            format!("alerts={down}/alerts"),
            format!("critical={down}/critical"),
        ],
        &dir.join("dead.jsonl"),
        extra,
    )
}

/// (e) Mosquitto's default window (20 unacknowledged messages), two endpoints on a port where
/// nothing listens and one file endpoint: the router acknowledges each message once it is in
/// its store, so the down endpoints hold up neither the broker's window nor the file endpoint,
/// which gets every message; every publish is acknowledged.
#[test]
fn down_endpoints_hold_up_neither_the_brokers_window_nor_the_other_endpoints() {
    let dir = TempDir::new("window");
    let mqtt = Server::mosquitto_window(&dir.0, false, 20);
    let down = format!("mqtt://127.0.0.1:{}", free_port());
    let out = dir.0.join("out");
    let mut router = start_patient_router(
        &dir.0,
        &write_routes(&dir.0),
        mqtt.port,
        "router-window",
        [
            format!("archive=file:{}", out.join("archive.jsonl").display()),
            format!("alerts={down}/alerts"),
            format!("critical={down}/critical"),
        ],
        &dir.0.join("dead.jsonl"),
        &["--drain-timeout", "1s"],
    );
    router.wait_subscribed();
    publish_fleet(mqtt.port, 0..900);
    let archive = [out.join("archive.jsonl")];
    let all = eventually(Duration::from_secs(60), || {
        ids_in_files(&archive).0.len() == 900
    });
    let report = router.stop();
    assert!(
        all,
        "the file endpoint got {} of 900 while the others were down: {report}",
        ids_in_files(&archive).0.len()
    );
    assert!(report.contains("acknowledged 900,"), "{report}");
    let alerts = report
        .lines()
        .find(|l| l.trim_start().starts_with("alerts:"))
        .unwrap_or_else(|| panic!("no alerts line in {report}"));
    assert!(alerts.contains("routed 225, delivered 0"), "{alerts}");
    assert!(alerts.contains("health unhealthy"), "{alerts}");
    // Undelivered copies stay in the router's store for its next run, and it says so.
    assert!(report.contains("for the next run: 405"), "{report}");
}

/// A full store stops the router reading (its --max-in-flight messages wait to be accepted)
/// and it says both, loudly; nothing is dropped.
#[test]
fn a_router_with_a_full_store_stops_reading_and_says_so() {
    let dir = TempDir::new("paused");
    let mqtt = Server::mosquitto(&dir.0, false);
    let router = start_router_with_every_endpoint_down(
        &dir.0,
        mqtt.port,
        "router-paused",
        &["--max-in-flight", "5", "--store-max-bytes", "4KiB"],
    );
    router.wait_subscribed();
    publish_fleet(mqtt.port, 0..50);
    assert!(
        eventually(Duration::from_secs(40), || {
            let r = router.report();
            r.contains("is full") && r.contains("reading paused for 10s: --max-in-flight (5)")
        }),
        "no word about the full store and the pause: {}",
        router.report()
    );
}

#[test]
fn a_sink_broker_that_goes_down_and_comes_back_gets_everything() {
    let dir = TempDir::new("outage");
    let mqtt = Server::mosquitto(&dir.0, false);
    let mut sink_mqtt = Server::mosquitto(&dir.0, true);
    let routes = write_routes(&dir.0);
    let alerts = Subscriber::start(sink_mqtt.port, "alerts");
    let out = dir.0.join("out");
    let mut router = start_patient_router(
        &dir.0,
        &routes,
        mqtt.port,
        "router-outage",
        [
            format!("archive=file:{}", out.join("archive.jsonl").display()),
            format!(
                "alerts=mqtt://127.0.0.1:{}/alerts?names=edge",
                sink_mqtt.port
            ),
            format!("critical=file:{}", out.join("critical.jsonl").display()),
        ],
        &out.join("dead.jsonl"),
        &[],
    );
    // A broker keeps nothing for a subscription that does not exist yet.
    router.wait_subscribed();
    publish_fleet(mqtt.port, 0..100);
    let archive = [out.join("archive.jsonl")];
    assert!(
        eventually(Duration::from_secs(60), || alerts.ids().0.len() == 25),
        "first alerts: {:?}; router: {}",
        alerts.ids().0.len(),
        router.report()
    );
    sink_mqtt.stop();
    publish_fleet(mqtt.port, 100..200);
    // The other endpoints keep going while the alerts broker is down.
    assert!(
        eventually(Duration::from_secs(60), || ids_in_files(&archive).0.len()
            == 200),
        "archive stalled while the alerts broker was down: {}",
        router.report()
    );
    sink_mqtt.restart();
    assert!(
        eventually(Duration::from_secs(30), || alerts
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2),
        "the watcher did not reconnect to the restarted broker"
    );
    let want = expected(0..200);
    let complete = eventually(Duration::from_secs(90), || alerts.ids().0 == want["alerts"]);
    let report = router.stop();
    assert!(
        complete,
        "alerts missing after the broker came back: {:?}\n{report}",
        want["alerts"]
            .difference(&alerts.ids().0)
            .collect::<Vec<_>>()
    );
    // The outage was noticed, retried and reported, and cost nothing.
    let alerts_line = report
        .lines()
        .find(|l| l.trim_start().starts_with("alerts:"))
        .unwrap_or_else(|| panic!("no alerts line in {report}"));
    assert!(alerts_line.contains("dead-lettered 0"), "{alerts_line}");
    assert!(!alerts_line.contains("retries 0"), "{alerts_line}");
    assert!(alerts_line.contains("last error:"), "{alerts_line}");
    assert!(report.contains("dead-lettered in delivery: 0;"), "{report}");
    let (critical, _) = ids_in_files(&[out.join("critical.jsonl")]);
    assert_eq!(critical, want["critical"]);
}

/// Regression: the bridge once deadlocked under load. Its loop waited for an in-flight permit,
/// the permits waited for PUBACKs, and PUBACKs needed that loop to poll the MQTT connection
/// (more than the client's 1,024 queued requests). Thousands of messages through a window wider
/// than that queue must all reach the stream, and a worker must route every one.
#[test]
fn the_bridge_keeps_up_with_a_burst_larger_than_its_acknowledgement_queue() {
    let dir = TempDir::new("burst");
    let mqtt = Server::mosquitto(&dir.0, false);
    let nats = Server::nats(&dir.0);
    let routes = write_routes(&dir.0);
    let stream = format!("jetstream://127.0.0.1:{}/BURST", nats.port);
    let mut bridge = start_bridge(&dir.0, mqtt.port, &stream, &["--max-in-flight", "1500"]);
    bridge.wait_subscribed();
    let n = 4000;
    publish_fleet(mqtt.port, 0..n);
    let out = dir.0.join("out");
    let mut worker = start_file_worker(&dir.0, &routes, format!("{stream}?consumer=burst"), &out);
    let archive = [out.join("archive.jsonl")];
    let all = eventually(Duration::from_secs(120), || {
        ids_in_files(&archive).0.len() == n
    });
    let bridge_report = bridge.stop();
    let worker_report = worker.stop();
    assert!(
        all,
        "{} of {n} archived\nbridge: {bridge_report}\nworker: {worker_report}",
        ids_in_files(&archive).0.len()
    );
    assert!(
        bridge_report.contains(&format!("appended to {stream}: {n}")),
        "{bridge_report}"
    );
    assert_eq!(ids_in_files(&archive).0, expected(0..n)["archive"]);
}

/// The stream's server goes away while devices keep publishing: the bridge keeps their
/// messages unacknowledged, resends them when the server is back (the stream drops resends it
/// already has), and a worker then routes every one.
#[test]
fn the_bridge_rides_out_a_stream_outage() {
    let dir = TempDir::new("stream-outage");
    let mqtt = Server::mosquitto(&dir.0, false);
    let mut nats = Server::nats(&dir.0);
    let routes = write_routes(&dir.0);
    let stream = format!("jetstream://127.0.0.1:{}/OUTAGE", nats.port);
    let mut bridge = start_bridge(&dir.0, mqtt.port, &stream, &[]);
    bridge.wait_subscribed();
    publish_fleet(mqtt.port, 0..100);
    nats.stop();
    publish_fleet(mqtt.port, 100..200);
    std::thread::sleep(Duration::from_millis(500));
    nats.restart();
    let out = dir.0.join("out");
    let mut worker = start_file_worker(&dir.0, &routes, format!("{stream}?consumer=after"), &out);
    let archive = [out.join("archive.jsonl")];
    let all = eventually(Duration::from_secs(120), || {
        ids_in_files(&archive).0.len() == 200
    });
    let bridge_report = bridge.stop();
    let worker_report = worker.stop();
    assert!(
        all,
        "{} of 200 archived\nbridge: {bridge_report}\nworker: {worker_report}",
        ids_in_files(&archive).0.len()
    );
    assert_eq!(ids_in_files(&archive).0, expected(0..200)["archive"]);
    // Whether the client's reconnect buffer absorbed the outage or the bridge resent (the
    // report counts resends), the stream confirmed every message.
    assert!(
        bridge_report.contains(&format!("appended to {stream}: 200")),
        "{bridge_report}"
    );
}

/// (f) A JetStream worker keeps pulling after nats-server is SIGKILLed and restarted (its
/// stream and consumer survive in the server's store directory): every message published
/// before and after the crash is routed.
#[test]
fn a_jetstream_worker_resumes_after_the_server_is_killed_and_restarted() {
    let dir = TempDir::new("js-restart");
    let mqtt = Server::mosquitto(&dir.0, false);
    let mut nats = Server::nats(&dir.0);
    let routes = write_routes(&dir.0);
    let stream = format!("jetstream://127.0.0.1:{}/RESTART", nats.port);
    let mut bridge = start_bridge(&dir.0, mqtt.port, &stream, &[]);
    bridge.wait_subscribed();
    let out = dir.0.join("out");
    let mut worker = start_file_worker(
        &dir.0,
        &routes,
        format!("{stream}?consumer=survivor&ack_wait=2s"),
        &out,
    );
    let archive = [out.join("archive.jsonl")];
    publish_fleet(mqtt.port, 0..100);
    assert!(
        eventually(Duration::from_secs(60), || ids_in_files(&archive).0.len()
            == 100),
        "before the crash: {}",
        worker.report()
    );
    // Round 0: back at once (the client's reconnection may hide the outage); round 1: away
    // for longer than two of the worker's idle heartbeats (5 s), so its pull stream fails.
    for round in 0..2 {
        nats.kill_and_restart(Duration::from_secs(if round == 0 { 0 } else { 12 }));
        let range = 100 + round * 100..200 + round * 100;
        publish_fleet(mqtt.port, range);
        let want = 200 + round * 100;
        assert!(
            eventually(Duration::from_secs(90), || ids_in_files(&archive).0.len()
                == want),
            "{} of {want} after restart {round}\nworker: {}\nbridge: {}",
            ids_in_files(&archive).0.len(),
            worker.report(),
            bridge.report()
        );
    }
    let worker_report = worker.stop();
    bridge.stop();
    assert_eq!(ids_in_files(&archive).0, expected(0..300)["archive"]);
    assert!(worker_report.contains("pulling again"), "{worker_report}");
}

/// A bridge SIGKILLed mid-stream and restarted: the broker redelivers what it had not
/// acknowledged, and the stream drops the resends it already has (same `Nats-Msg-Id`: device,
/// messageId and content), so the worker sees each message once.
#[test]
fn a_restarted_bridge_adds_no_duplicates_for_messages_with_ids() {
    let dir = TempDir::new("bridge-restart");
    let mqtt = Server::mosquitto(&dir.0, true);
    let nats = Server::nats(&dir.0);
    let routes = write_routes(&dir.0);
    let stream = format!("jetstream://127.0.0.1:{}/REBRIDGE", nats.port);
    let mut bridge = start_bridge(&dir.0, mqtt.port, &stream, &["--client-id", "rebridge"]);
    bridge.wait_subscribed();
    let publisher = std::thread::spawn({
        let port = mqtt.port;
        move || publish_fleet(port, 0..2000)
    });
    std::thread::sleep(Duration::from_millis(300));
    bridge.kill();
    let mut bridge = start_bridge(&dir.0, mqtt.port, &stream, &["--client-id", "rebridge"]);
    publisher.join().unwrap();
    let out = dir.0.join("out");
    let mut worker = start_file_worker(&dir.0, &routes, format!("{stream}?consumer=once"), &out);
    let archive = [out.join("archive.jsonl")];
    let all = eventually(Duration::from_secs(120), || {
        ids_in_files(&archive).0.len() == 2000
    });
    let worker_report = worker.stop();
    let bridge_report = bridge.stop();
    let (ids, lines) = ids_in_files(&archive);
    assert!(
        all,
        "{} of 2000\nworker: {worker_report}\nbridge: {bridge_report}",
        ids.len()
    );
    assert_eq!(lines, 2000, "duplicates: {}", lines - 2000);
}
