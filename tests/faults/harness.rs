//! The fault-injection harness: real Mosquitto and nats-server processes on free loopback ports,
//! the real `hubroute` binary, a device fleet that knows which of its messages were
//! acknowledged, and readers that count every message id an endpoint received.
//!
//! Nothing here mocks a component: a fault is a real SIGKILL (`Child::kill`), a closed port or a
//! full store. Waits are bounded and only guard against hangs; nothing asserts on how long
//! anything takes. `HUBROUTE_BIN` points the suite at another build of the binary (for example
//! a branch's `target/debug/hubroute`); `FAULT_SCALE` multiplies every scenario's message count
//! (`scripts/faults.sh` runs the suite bigger).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};

pub use crate::support::{current_user, eventually, find_program, free_port};

/// `n` scaled by `FAULT_SCALE` (default 1), so CI runs a few thousand messages and a soak
/// run as many as it likes through the same scenario.
pub fn scaled(n: usize) -> usize {
    let scale = std::env::var("FAULT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0);
    ((n as f64) * scale).round().max(1.0) as usize
}

/// A wait of `secs` seconds, longer in proportion when the scenario is scaled up.
pub fn patience(secs: u64) -> Duration {
    Duration::from_secs_f64(secs as f64 * (scaled(1000) as f64 / 1000.0).max(1.0))
}

pub use crate::support::TempDir;

pub fn s(x: impl ToString) -> String {
    x.to_string()
}

/// A broker process on a fixed port, killed on drop; it can be SIGKILLed and started again on
/// the same port with the same configuration and data directory.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    command: Command,
    what: String,
}

impl Server {
    /// A Mosquitto configured as a router needs (a wide window, a deep queue, the invoking
    /// user). With `persistent`, it saves its sessions and queued messages after every change
    /// (`autosave_on_changes` with an interval of 1), so a SIGKILL loses nothing it
    /// acknowledged: otherwise a broker crash would lose what the broker, not the router,
    /// acknowledged, and the suite would measure Mosquitto.
    pub fn mosquitto(dir: &Path, persistent: bool) -> Server {
        Server::mosquitto_on(dir, free_port(), persistent, 2000)
    }

    /// [`Server::mosquitto`] on a given port, sending a client at most `window`
    /// unacknowledged messages (Mosquitto's default is 20).
    pub fn mosquitto_on(dir: &Path, port: u16, persistent: bool, window: u32) -> Server {
        Server::mosquitto_conf(dir, port, persistent, window, "allow_anonymous true\n")
    }

    /// A Mosquitto that authenticates every client against `users` (a `password_file` made
    /// with `mosquitto_passwd`) and confines them with the ACL lines `acl`.
    pub fn mosquitto_with_auth(dir: &Path, users: &[(&str, &str)], acl: &str) -> Server {
        let passwords = dir.join("passwords");
        std::fs::write(&passwords, "").unwrap();
        for (user, password) in users {
            let status = Command::new(find_program("mosquitto_passwd"))
                .args(["-b"])
                .arg(&passwords)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd (Debian package mosquitto)");
            assert!(status.success(), "mosquitto_passwd failed");
        }
        let acl_file = dir.join("acl");
        std::fs::write(&acl_file, acl).unwrap();
        let auth = format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwords.display(),
            acl_file.display()
        );
        Server::mosquitto_conf(dir, free_port(), false, 2000, &auth)
    }

    fn mosquitto_conf(dir: &Path, port: u16, persistent: bool, window: u32, auth: &str) -> Server {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let data = dir.join(format!("mosquitto-{port}"));
        std::fs::create_dir_all(&data).unwrap();
        let mut text = format!(
            "listener {port} 127.0.0.1\n{auth}max_queued_messages 1000000\n\
             max_inflight_messages {window}\n\
             log_dest file {}/mosquitto-{port}.log\nlog_type error\nlog_type warning\n\
             log_type notice\nuser {}\n",
            dir.display(),
            current_user()
        );
        if persistent {
            text.push_str(&format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1\n\
                 autosave_on_changes true\n",
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

    /// nats-server with JetStream, its store in `dir`.
    pub fn nats(dir: &Path) -> Server {
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
        crate::support::wait_for_port(port, what, &mut child, None);
        Server {
            child: Some(child),
            port,
            command,
            what: what.to_string(),
        }
    }

    /// SIGKILL: the broker saves nothing more.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (Mosquitto saves its sessions), then SIGKILL if it does not go.
    pub fn stop(&mut self) {
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

    /// Starts the stopped or killed broker again, same port, same data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.what);
        let mut child = self.command.spawn().unwrap();
        crate::support::wait_for_port(self.port, &self.what, &mut child, None);
        self.child = Some(child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The binary under test: `HUBROUTE_BIN` if set, else the one cargo built for this test.
pub fn hubroute_bin() -> PathBuf {
    std::env::var_os("HUBROUTE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hubroute")))
}

/// Whether `hubroute run` takes `flag` (a newer build's option, such as the durable store's).
pub fn run_supports(flag: &str) -> bool {
    Command::new(hubroute_bin())
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
        .unwrap_or(false)
}

/// A `hubroute` process, killed on drop. Its standard error goes to a log file that restarts
/// append to, so a scenario's whole story is in one place.
pub struct Hubroute {
    child: Option<Child>,
    args: Vec<String>,
    pub log: PathBuf,
    /// How much of the log belongs to earlier runs of the process.
    log_start: usize,
}

impl Hubroute {
    pub fn start(args: &[String], log: PathBuf) -> Hubroute {
        let mut h = Hubroute {
            child: None,
            args: args.to_vec(),
            log,
            log_start: 0,
        };
        h.start_again();
        h
    }

    /// Starts the killed or stopped process again with the same arguments.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "hubroute is still running");
        self.log_start = std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(hubroute_bin())
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .expect("start hubroute"),
        );
    }

    /// SIGKILL: no chance to acknowledge, flush, sync or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait (bounded: a durable router drains for up to its --drain-timeout, 30 s
    /// by default, and a busy machine is slow); the report of the current run.
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(120);
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

    /// The whole log, every run.
    pub fn report(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log of the current (latest) run.
    pub fn current_report(&self) -> String {
        self.report()
            .get(self.log_start..)
            .unwrap_or("")
            .to_string()
    }

    /// Waits until the current run says it subscribed to the devices' topics.
    pub fn wait_subscribed(&self) {
        assert!(
            eventually(Duration::from_secs(30), || self
                .current_report()
                .contains("subscribed to device-to-cloud topics")),
            "never subscribed: {}",
            self.report()
        );
    }
}

impl Drop for Hubroute {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The suite's routes: `archive` gets everything, `alerts` the hot messages (`i % 4 == 0`),
/// `dev1` what device `dev-1` really sent (by the identity the router stamps), and `cold`, a
/// Storage endpoint written as JSON, everything again.
pub const ROUTES: &str = r#"{
  "endpoints": {
    "eventHubs": [ { "name": "archive" }, { "name": "alerts" }, { "name": "dev1" } ],
    "storageContainers": [ { "name": "cold", "containerName": "cold", "encoding": "JSON",
      "fileNameFormat": "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
      "batchFrequencyInSeconds": 60, "maxChunkSizeInBytes": 10485760 } ]
  },
  "routes": [
    { "name": "all", "source": "DeviceMessages", "condition": "true", "endpointNames": ["archive"], "isEnabled": true },
    { "name": "hot", "source": "DeviceMessages", "condition": "$contentType = 'application/json' AND $body.temp > 50", "endpointNames": ["alerts"], "isEnabled": true },
    { "name": "one", "source": "DeviceMessages", "condition": "$connectionDeviceId = 'dev-1'", "endpointNames": ["dev1"], "isEnabled": true },
    { "name": "keep", "source": "DeviceMessages", "condition": "true", "endpointNames": ["cold"], "isEnabled": true }
  ]
}"#;

/// The endpoints of [`ROUTES`].
pub const ENDPOINTS: [&str; 4] = ["archive", "alerts", "dev1", "cold"];

pub fn write_routes(dir: &Path) -> PathBuf {
    let routes = dir.join("routes.json");
    std::fs::write(&routes, ROUTES).unwrap();
    routes
}

/// Message `i`'s id.
pub fn mid(i: usize) -> String {
    format!("m-{i}")
}

/// Which of the fleet's messages each endpoint of [`ROUTES`] should get, of `acked`.
pub fn expected(acked: &BTreeSet<usize>, endpoint: &str) -> BTreeSet<String> {
    acked
        .iter()
        .filter(|&&i| match endpoint {
            "archive" | "cold" => true,
            "alerts" => i % 4 == 0,
            "dev1" => i % 3 == 1,
            other => panic!("no endpoint {other}"),
        })
        .map(|&i| mid(i))
        .collect()
}

/// The devices: message `i` comes from `dev-{i % 3}` with messageId `m-{i}` in its property
/// bag, is hot (`temp` 80) when `i % 4 == 0`, and claims in its bag to come from device
/// `spoofed` (both the `$.cdid` system property and IoT Hub's
/// `iothub-connection-device-id`), which the router must ignore.
pub fn fleet_topic(i: usize) -> String {
    fleet_topic_of(&format!("dev-{}", i % 3), i)
}

/// Message `i`'s topic when device `device` sends it.
pub fn fleet_topic_of(device: &str, i: usize) -> String {
    format!(
        "devices/{device}/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.mid={}&$.cdid=spoofed&iothub-connection-device-id=spoofed",
        mid(i)
    )
}

/// Who the fleet is: every message from one device, logged in with a user name and password
/// (a broker that authenticates devices), or the usual three anonymous devices.
#[derive(Clone, Default)]
pub struct Identity {
    pub device: Option<String>,
    pub login: Option<(String, String)>,
}

pub fn fleet_body(i: usize) -> String {
    let temp = if i % 4 == 0 { 80 } else { 20 };
    format!(r#"{{"temp":{temp},"seq":{i}}}"#)
}

/// A fleet publishing messages with QoS 1 in a background thread, knowing exactly which were
/// acknowledged (PUBACK, matched to its message by packet id). When the broker goes away it
/// reconnects and publishes again what was not acknowledged, as a device SDK does, until every
/// message is acknowledged or it is told to stop.
pub struct Fleet {
    pub acked: Arc<Mutex<BTreeSet<usize>>>,
    /// The last messages acknowledged on each connection that the broker's going away cut:
    /// those a broker that acknowledges before it saves can lose (see [`broker_losses`]).
    pub acked_before_drop: Arc<Mutex<BTreeSet<usize>>>,
    /// Publishes sent, resends included.
    pub sent: Arc<AtomicUsize>,
    /// Connections made (more than one: the broker went away).
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub total: usize,
}

impl Fleet {
    /// Publishes `ids` to the broker on `port`, at most `per_second` a second (0: as fast as
    /// the broker takes them).
    pub fn start(port: u16, tag: &str, ids: std::ops::Range<usize>, per_second: usize) -> Fleet {
        Fleet::start_as(port, tag, ids, per_second, Identity::default())
    }

    /// [`Fleet::start`] as `who`.
    pub fn start_as(
        port: u16,
        tag: &str,
        ids: std::ops::Range<usize>,
        per_second: usize,
        who: Identity,
    ) -> Fleet {
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let acked_before_drop = Arc::new(Mutex::new(BTreeSet::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let total = ids.len();
        let thread = {
            let before_drop = Arc::clone(&acked_before_drop);
            let (acked, sent, connections, stop) = (
                Arc::clone(&acked),
                Arc::clone(&sent),
                Arc::clone(&connections),
                Arc::clone(&stop),
            );
            let tag = format!("fleet-{tag}-{}", ids.start);
            std::thread::spawn(move || {
                let mut pending: Vec<usize> = ids.collect();
                let deadline = Instant::now() + Duration::from_secs(600);
                while !pending.is_empty()
                    && !stop.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                {
                    let (done, last) = publish_once(
                        port,
                        &tag,
                        &who,
                        &pending,
                        per_second,
                        &sent,
                        &connections,
                        &stop,
                    );
                    acked.lock().unwrap().extend(done.iter().copied());
                    pending.retain(|i| !done.contains(i));
                    if !pending.is_empty() && !stop.load(Ordering::Relaxed) {
                        before_drop.lock().unwrap().extend(last);
                    }
                    if !pending.is_empty() {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            })
        };
        Fleet {
            acked,
            acked_before_drop,
            sent,
            connections,
            stop,
            thread: Some(thread),
            total,
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits (bounded) until every message was acknowledged; the acknowledged ids.
    pub fn finish(mut self, limit: Duration) -> BTreeSet<usize> {
        let all = eventually(limit, || self.acked_count() == self.total);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let acked = self.acked.lock().unwrap().clone();
        assert!(
            all,
            "the broker acknowledged {} of {} publishes",
            acked.len(),
            self.total
        );
        acked
    }

    /// Stops publishing now; the ids acknowledged so far.
    pub fn halt(mut self) -> BTreeSet<usize> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection's worth of publishing `ids` in order; the ids acknowledged before it ended
/// (all of them, or the connection failed or the fleet was stopped).
#[allow(clippy::too_many_arguments)]
fn publish_once(
    port: u16,
    client_id: &str,
    who: &Identity,
    ids: &[usize],
    per_second: usize,
    sent: &AtomicUsize,
    connections: &AtomicUsize,
    stop: &Arc<AtomicBool>,
) -> (BTreeSet<usize>, Vec<usize>) {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_inflight(200);
    if let Some((user, password)) = &who.login {
        o.set_credentials(user, password);
    }
    let (client, mut connection) = Client::new(o, 256);
    let publisher = {
        let ids = ids.to_vec();
        let device = who.device.clone();
        let stop = Arc::clone(stop);
        std::thread::spawn(move || {
            let started = Instant::now();
            for (n, i) in ids.into_iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if per_second > 0 {
                    let due = started + Duration::from_secs_f64(n as f64 / per_second as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let topic = match &device {
                    Some(d) => fleet_topic_of(d, i),
                    None => fleet_topic(i),
                };
                if client
                    .publish(topic, QoS::AtLeastOnce, false, fleet_body(i))
                    .is_err()
                {
                    break;
                }
            }
            client
        })
    };
    // Requests go out in the order they were made, so the k-th outgoing publish is ids[k].
    let mut next = ids.iter().copied().collect::<VecDeque<_>>();
    let mut in_flight: BTreeMap<u16, usize> = BTreeMap::new();
    let mut acked = BTreeSet::new();
    // The newest acknowledgements, in the order they came.
    let mut last = VecDeque::with_capacity(AT_RISK + 1);
    let mut connected = false;
    while acked.len() < ids.len() && !stop.load(Ordering::Relaxed) {
        match connection.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                if !connected {
                    connected = true;
                    connections.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                sent.fetch_add(1, Ordering::Relaxed);
                if let Some(i) = next.pop_front() {
                    in_flight.insert(pkid, i);
                }
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => {
                if let Some(i) = in_flight.remove(&a.pkid) {
                    acked.insert(i);
                    last.push_back(i);
                    if last.len() > AT_RISK {
                        last.pop_front();
                    }
                }
            }
            Ok(Ok(_)) => {}
            // A quiet spell (the broker is slow, or the publisher is pacing itself).
            Err(rumqttc::RecvTimeoutError::Timeout) => {}
            // The connection failed: what was not acknowledged is published again.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    drop(connection);
    if let Ok(client) = publisher.join() {
        let _ = client.disconnect();
    }
    (acked, last.into())
}

/// How many of the last acknowledgements before a broker's death count as at risk: Mosquitto
/// handles a burst of publishes (up to the fleet's 200 in flight) in one pass of its loop and
/// saves after it.
const AT_RISK: usize = 200;

/// For a scenario that SIGKILLs the devices' Mosquitto. Mosquitto sends a device its PUBACK
/// before it saves the message (persistence is a periodic, unsynced snapshot), so a message
/// acknowledged in the moment before the kill can die with the broker before any router saw
/// it: that is the broker's guarantee, not the router's. Such losses are taken out of
/// `outcomes` and counted, only when every lost message was among the last acknowledged on a
/// connection the broker's death cut (`at_risk`); any other loss stays in and fails the
/// scenario in [`report`].
pub fn broker_losses(outcomes: &mut [Outcome], at_risk: &BTreeSet<usize>) -> BTreeSet<String> {
    let at_risk: BTreeSet<String> = at_risk.iter().map(|&i| mid(i)).collect();
    let mut taken = BTreeSet::new();
    for o in outcomes.iter_mut() {
        let lost: Vec<String> = o.lost().into_iter().cloned().collect();
        if lost.iter().all(|id| at_risk.contains(id)) {
            for id in lost {
                o.want.remove(&id);
                taken.insert(id);
            }
        }
    }
    taken
}

/// What one endpoint received: how many times each message id.
#[derive(Default, Clone)]
pub struct Received {
    pub counts: BTreeMap<String, usize>,
    /// Lines that are not a whole record (a write torn by a SIGKILL): reported, never fatal.
    pub torn: usize,
}

impl Received {
    pub fn ids(&self) -> BTreeSet<String> {
        self.counts.keys().cloned().collect()
    }

    pub fn duplicates(&self) -> usize {
        self.counts.values().map(|n| n - 1).sum()
    }

    fn add(&mut self, record: &serde_json::Value) {
        if let Some(id) = record["SystemProperties"]["messageId"].as_str() {
            *self.counts.entry(id.to_string()).or_default() += 1;
        }
    }
}

/// Reads a JSON Lines file sink. The device-claimed identity must never be what the router
/// stamped. A line torn by a SIGKILL may be followed, on the same line, by the next run's
/// whole record; that record is found and counted.
pub fn read_file_sink(path: &Path) -> Received {
    let mut got = Received::default();
    let Ok(bytes) = std::fs::read(path) else {
        return got;
    };
    let text = String::from_utf8_lossy(&bytes);
    // A line still being written (no newline yet) is read next time.
    for line in text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
    {
        let line = line.trim_end();
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                check_identity(&v);
                got.add(&v);
            }
            Err(_) => {
                got.torn += 1;
                let tail = line
                    .match_indices('{')
                    .skip(1)
                    .find_map(|(at, _)| serde_json::from_str::<serde_json::Value>(&line[at..]).ok())
                    .filter(|v| v.get("SystemProperties").is_some());
                if let Some(v) = tail {
                    check_identity(&v);
                    got.add(&v);
                }
            }
        }
    }
    got
}

/// Reads a Storage endpoint written with JSON encoding: every `.json` chunk under `dir`, each
/// JSON Lines records of the same shape as the file sink's.
pub fn read_storage_dir(dir: &Path) -> Received {
    let mut got = Received::default();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let chunk = read_file_sink(&path);
                for (id, n) in chunk.counts {
                    *got.counts.entry(id).or_default() += n;
                }
                got.torn += chunk.torn;
            }
        }
    }
    got
}

/// What endpoint `endpoint` wrote into `out` as bound by the suite: JSON Lines files, and the
/// Storage endpoint `cold` as a directory of JSON chunks.
pub fn read_endpoint(out: &Path, endpoint: &str) -> Received {
    if endpoint == "cold" {
        read_storage_dir(&out.join("cold"))
    } else {
        read_file_sink(&out.join(format!("{endpoint}.jsonl")))
    }
}

/// Device-supplied data never overrides what the router stamps.
fn check_identity(record: &serde_json::Value) {
    let device = record["SystemProperties"]["connectionDeviceId"].as_str();
    assert!(
        device.is_some_and(|d| d.starts_with("dev-")),
        "a record whose stamped device is not the sender: {record}"
    );
}

/// Collects what an MQTT sink publishes under `topic/#`, on a persistent session so nothing
/// published while the sink's broker is down, or while this reconnects, is missed.
pub struct Subscriber {
    received: Arc<Mutex<Received>>,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    pub fn start(port: u16, topic: &str) -> Subscriber {
        let mut o = MqttOptions::new(format!("watcher-{port}"), "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(o, 16);
        let filter = format!("{topic}/#");
        let received = Arc::new(Mutex::new(Received::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (received, stop, connections) = (
                Arc::clone(&received),
                Arc::clone(&stop),
                Arc::clone(&connections),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match connection.recv_timeout(Duration::from_secs(2)) {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            connections.fetch_add(1, Ordering::Relaxed);
                            client.subscribe(filter.clone(), QoS::AtLeastOnce).unwrap();
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            let _ = ready_tx.send(());
                        }
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            let bag = p.topic.split_once('/').map_or("", |(_, b)| b);
                            let pairs = hubroute::ingest::property_bag::decode(bag)
                                .expect("the sink publishes a valid property bag");
                            // Every value under either spelling: the sink names system
                            // properties as IoT Hub's outbound messages do (`message-id`,
                            // `iothub-connection-device-id`), older builds as `$.mid`/`$.cdid`.
                            let all = |keys: [&str; 2]| {
                                pairs
                                    .iter()
                                    .filter(|(n, _)| keys.contains(&n.as_str()))
                                    .filter_map(|(_, v)| v.clone())
                                    .collect::<Vec<_>>()
                            };
                            let devices = all(["iothub-connection-device-id", "$.cdid"]);
                            assert!(
                                !devices.is_empty()
                                    && devices.iter().all(|d| d.starts_with("dev-")),
                                "a copy whose stamped device is not the sender: {}",
                                p.topic
                            );
                            let id = all(["message-id", "$.mid"])
                                .pop()
                                .expect("a message id in the bag");
                            *received.lock().unwrap().counts.entry(id).or_default() += 1;
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

    pub fn received(&self) -> Received {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One endpoint's outcome in a scenario: expected ids, what arrived.
pub struct Outcome<'a> {
    pub endpoint: &'a str,
    pub want: BTreeSet<String>,
    pub got: Received,
}

impl Outcome<'_> {
    pub fn lost(&self) -> Vec<&String> {
        self.want
            .iter()
            .filter(|id| !self.got.counts.contains_key(*id))
            .collect()
    }
}

/// Prints a scenario's table rows (`FAULTS|`-prefixed, for `scripts/faults.sh`) and asserts
/// that no endpoint lost an acknowledged message. `note` says what else was measured.
pub fn report(scenario: &str, messages: usize, acked: usize, outcomes: &[Outcome], note: &str) {
    for o in outcomes {
        println!(
            "FAULTS|{scenario}|{messages}|{acked}|{}|{}|{}|{}|{}|{note}",
            o.endpoint,
            o.want.len(),
            o.lost().len(),
            o.got.duplicates(),
            o.got.torn,
        );
    }
    for o in outcomes {
        let lost = o.lost();
        assert!(
            lost.is_empty(),
            "{scenario}: endpoint {} lost {} of {} acknowledged messages, e.g. {:?}",
            o.endpoint,
            lost.len(),
            o.want.len(),
            lost.iter().take(10).collect::<Vec<_>>()
        );
    }
}
