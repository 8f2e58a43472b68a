//! Fault injection against real processes: Mosquitto, nats-server (JetStream) and the
//! `hubroute` binary are started on free loopback ports, and routers, bridges and brokers are
//! SIGKILLed and restarted at points chosen by how much was delivered, while a device fleet
//! publishes. Every scenario asserts that no endpoint lost a message whose publish was
//! acknowledged (unique message ids per endpoint) and prints its duplicates as a
//! `FAULTS|scenario|messages|acked|endpoint|expected|lost|duplicates|torn|note` row;
//! `scripts/faults.sh` runs the suite bigger (`FAULT_SCALE`) and prints the rows as a table.
//!
//! Needs `mosquitto` and `nats-server` on the PATH or in /usr/sbin (Debian packages `mosquitto`
//! and `nats-server`); without them every test fails and says how to install them.
#![cfg(all(feature = "mqtt", feature = "nats", feature = "cli"))]

#[path = "faults/harness.rs"]
mod harness;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::*;

/// The fleet's publish rate (messages a second) in the kill scenarios: steady load, so a kill
/// lands while messages are still coming in, not only while the backlog drains.
const LOAD: usize = 1500;

/// Where a router's endpoints go: `(endpoint, sink URL)`.
type Sinks = Vec<(&'static str, String)>;

/// Every endpoint of [`ROUTES`] bound to a JSON Lines file in `out`, but `cold`, a Storage
/// endpoint, to the directory `out/cold`.
fn file_sinks(out: &Path) -> Sinks {
    ENDPOINTS
        .into_iter()
        .map(|e| match e {
            "cold" => (e, format!("storage:{}", out.join("cold").display())),
            _ => (
                e,
                format!("file:{}", out.join(format!("{e}.jsonl")).display()),
            ),
        })
        .collect()
}

/// `hubroute run` arguments: `input` into `sinks`, retrying a failing sink often (every 300 ms
/// at most) and for long, with the durable store in `dir/store` when the binary has one
/// (`--store`), so the same scenario checks today's and the durable pipeline's acknowledgement.
fn router_args(dir: &Path, input: String, client_id: &str, sinks: &Sinks) -> Vec<String> {
    let mut args = vec![
        s("run"),
        s("--routes"),
        s(write_routes(dir).display()),
        s("--input"),
        input,
        s("--dead-letter"),
        s(dir.join("dead.jsonl").display()),
        s("--max-backoff"),
        s("300ms"),
        s("--max-attempts"),
        s("1000"),
        s("--quiet"),
    ];
    if input_is_broker(&args[4]) {
        args.extend([s("--client-id"), s(client_id)]);
    }
    if run_supports("--store") {
        args.extend([s("--store"), s(dir.join("store").display())]);
    }
    for (name, url) in sinks {
        args.extend([s("--sink"), format!("{name}={url}")]);
    }
    args
}

fn input_is_broker(input: &str) -> bool {
    input.starts_with("mqtt://") || input.starts_with("jetstream://")
}

fn start_router(dir: &Path, input: String, client_id: &str, sinks: &Sinks) -> Hubroute {
    Hubroute::start(
        &router_args(dir, input, client_id, sinks),
        dir.join(format!("{client_id}.log")),
    )
}

fn start_bridge(dir: &Path, mqtt_port: u16, stream: &str) -> Hubroute {
    Hubroute::start(
        &[
            s("bridge"),
            s("--from"),
            format!("mqtt://127.0.0.1:{mqtt_port}"),
            s("--to"),
            s(stream),
            s("--client-id"),
            s("fault-bridge"),
            s("--dead-letter"),
            s(dir.join("bridge-dead.jsonl").display()),
        ],
        dir.join("bridge.log"),
    )
}

/// The archive endpoint's file in `out`.
fn archive(out: &Path) -> PathBuf {
    out.join("archive.jsonl")
}

/// Waits until the archive holds at least `n` distinct messages.
fn wait_archived(out: &Path, n: usize, who: &Hubroute) {
    assert!(
        eventually(patience(90), || read_file_sink(&archive(out)).counts.len()
            >= n),
        "the archive never reached {n} messages ({}): {}",
        read_file_sink(&archive(out)).counts.len(),
        who.report()
    );
}

/// Waits until every file endpoint in `out` holds what `acked` says it should; the outcomes.
fn settle_files(out: &Path, acked: &BTreeSet<usize>, limit: Duration) -> Vec<Outcome<'static>> {
    let outcomes = || {
        ENDPOINTS
            .into_iter()
            .map(|e| Outcome {
                endpoint: e,
                want: expected(acked, e),
                got: read_endpoint(out, e),
            })
            .collect::<Vec<_>>()
    };
    eventually(limit, || outcomes().iter().all(|o| o.lost().is_empty()));
    outcomes()
}

/// The router is SIGKILLed three times mid-stream (at 10%, a third and two thirds of the
/// messages delivered) and started again with the same client id (its broker session kept what it had
/// not acknowledged) and the same store.
#[test]
fn router_sigkill_mid_stream_and_restart_loses_nothing() {
    let dir = TempDir::new("router-kill");
    let mqtt = Server::mosquitto(&dir.0, false);
    let out = dir.0.join("out");
    let mut router = start_router(
        &dir.0,
        format!("mqtt://127.0.0.1:{}", mqtt.port),
        "fault-router",
        &file_sinks(&out),
    );
    router.wait_subscribed();
    let n = scaled(3000);
    let fleet = Fleet::start(mqtt.port, "router-kill", 0..n, LOAD);
    for at in [n / 10, n / 3, n * 2 / 3] {
        wait_archived(&out, at, &router);
        router.kill();
        router.start_again();
        router.wait_subscribed();
    }
    let acked = fleet.finish(patience(120));
    let outcomes = settle_files(&out, &acked, patience(120));
    router.stop();
    report("router SIGKILL x3", n, acked.len(), &outcomes, "");
}

/// The bridge (MQTT to JetStream) is SIGKILLed twice mid-stream and started again with the same
/// client id; a worker routes the stream into files.
#[test]
fn bridge_sigkill_and_restart_loses_nothing() {
    let dir = TempDir::new("bridge-kill");
    let mqtt = Server::mosquitto(&dir.0, false);
    let nats = Server::nats(&dir.0);
    let stream = format!("jetstream://127.0.0.1:{}/FAULTS", nats.port);
    let mut bridge = start_bridge(&dir.0, mqtt.port, &stream);
    bridge.wait_subscribed();
    let out = dir.0.join("out");
    let mut worker = start_router(
        &dir.0,
        format!("{stream}?consumer=routers&ack_wait=5s"),
        "fault-worker",
        &file_sinks(&out),
    );
    let n = scaled(3000);
    let fleet = Fleet::start(mqtt.port, "bridge-kill", 0..n, LOAD);
    for at in [n / 4, n * 6 / 10] {
        wait_archived(&out, at, &bridge);
        bridge.kill();
        bridge.start_again();
        bridge.wait_subscribed();
    }
    let acked = fleet.finish(patience(120));
    let outcomes = settle_files(&out, &acked, patience(120));
    worker.stop();
    bridge.stop();
    report("bridge SIGKILL x2", n, acked.len(), &outcomes, "");
}

/// The devices' Mosquitto (persistent, saving after every change) is SIGKILLed twice mid-stream and
/// started again on the same port; devices reconnect and publish again what was not
/// acknowledged, and the router reconnects to its session.
#[test]
fn mosquitto_sigkill_and_restart_loses_nothing() {
    let dir = TempDir::new("mosquitto-kill");
    let mut mqtt = Server::mosquitto(&dir.0, true);
    let out = dir.0.join("out");
    let mut router = start_router(
        &dir.0,
        format!("mqtt://127.0.0.1:{}", mqtt.port),
        "fault-router",
        &file_sinks(&out),
    );
    router.wait_subscribed();
    let n = scaled(2000);
    let fleet = Fleet::start(mqtt.port, "mosquitto-kill", 0..n, LOAD);
    for at in [n / 4, n * 6 / 10] {
        wait_archived(&out, at, &router);
        mqtt.kill();
        std::thread::sleep(Duration::from_millis(500));
        mqtt.start_again();
    }
    let at_risk = std::sync::Arc::clone(&fleet.acked_before_drop);
    let acked = fleet.finish(patience(120));
    let at_risk = at_risk.lock().unwrap().clone();
    let mut outcomes = settle_files(&out, &acked, patience(120));
    router.stop();
    let broker_lost = broker_losses(&mut outcomes, &at_risk);
    report(
        "mosquitto SIGKILL x2",
        n,
        acked.len(),
        &outcomes,
        &format!(
            "{} acknowledged by Mosquitto just before its SIGKILL and lost with it {:?}",
            broker_lost.len(),
            broker_lost
        ),
    );
}

/// nats-server is SIGKILLed twice under a bridge and a JetStream worker and started again on
/// the same port and store; the worker must resume pulling each time.
#[test]
fn nats_server_sigkill_under_a_jetstream_worker_loses_nothing() {
    let dir = TempDir::new("nats-kill");
    let mqtt = Server::mosquitto(&dir.0, false);
    let mut nats = Server::nats(&dir.0);
    let stream = format!("jetstream://127.0.0.1:{}/FAULTS", nats.port);
    let mut bridge = start_bridge(&dir.0, mqtt.port, &stream);
    bridge.wait_subscribed();
    let out = dir.0.join("out");
    let mut worker = start_router(
        &dir.0,
        format!("{stream}?consumer=routers&ack_wait=5s"),
        "fault-worker",
        &file_sinks(&out),
    );
    let n = scaled(3000);
    let fleet = Fleet::start(mqtt.port, "nats-kill", 0..n, LOAD);
    for at in [n / 4, n * 6 / 10] {
        wait_archived(&out, at, &worker);
        nats.kill();
        std::thread::sleep(Duration::from_millis(500));
        nats.start_again();
    }
    let acked = fleet.finish(patience(120));
    let outcomes = settle_files(&out, &acked, patience(120));
    worker.stop();
    bridge.stop();
    report("nats-server SIGKILL x2", n, acked.len(), &outcomes, "");
}

/// The alerts endpoint (an MQTT sink) is down: nothing listens on its port while the fleet
/// publishes. The archive and dev1 file endpoints must get every message *before* alerts
/// recovers; then its broker opens on that port and alerts gets everything too. The devices'
/// broker has Mosquitto's default window (20 unacknowledged messages to a client), which an
/// endpoint that is down must not hold: the router acknowledges what it has taken on, not what
/// every endpoint delivered.
#[test]
fn an_endpoint_down_does_not_hold_up_the_others() {
    let dir = TempDir::new("endpoint-down");
    let mqtt = Server::mosquitto_on(&dir.0, free_port(), false, 20);
    // The watcher's persistent session is made while the sink's broker is up, so the broker
    // keeps what the router publishes to it once it is back.
    let mut sink = Server::mosquitto(&dir.0, true);
    let watcher = Subscriber::start(sink.port, "alerts");
    sink.stop();
    let out = dir.0.join("out");
    let mut sinks = file_sinks(&out);
    sinks[1].1 = format!("mqtt://127.0.0.1:{}/alerts", sink.port);
    let mut router = start_router(
        &dir.0,
        format!("mqtt://127.0.0.1:{}", mqtt.port),
        "fault-router",
        &sinks,
    );
    router.wait_subscribed();
    let n = scaled(2000);
    let started = Instant::now();
    let fleet = Fleet::start(mqtt.port, "endpoint-down", 0..n, 0);
    let acked = fleet.finish(patience(120));
    let others_done = eventually(patience(40), || {
        read_file_sink(&archive(&out)).counts.len() == n
            && read_endpoint(&out, "cold").counts.len() == n
            && read_endpoint(&out, "dev1").counts.len() == expected(&acked, "dev1").len()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let archived = read_file_sink(&archive(&out)).counts.len();
    let rate = format!(
        "archive {:.0} msg/s while alerts down ({archived}/{n} in {elapsed:.1}s)",
        archived as f64 / elapsed
    );
    println!("{rate}");
    sink.start_again();
    let alerts_done = eventually(patience(60), || {
        watcher.received().ids() == expected(&acked, "alerts")
    });
    let log = router.stop();
    let mut outcomes = settle_files(&out, &acked, Duration::from_secs(10));
    outcomes[1] = Outcome {
        endpoint: "alerts",
        want: expected(&acked, "alerts"),
        got: watcher.received(),
    };
    if !alerts_done {
        println!("alerts incomplete after its broker came back; router: {log}");
    }
    report("endpoint down", n, acked.len(), &outcomes, &rate);
    assert!(
        others_done,
        "the other endpoints stalled while alerts was down: {rate}\n{log}"
    );
}

/// A small store limit: with the alerts endpoint down the store fills up; the router must stop
/// taking messages (say so), lose nothing and dead-letter nothing, and deliver everything once
/// the endpoint is back. Needs the durable pipeline (`--store`, `--store-max-bytes`).
#[test]
fn a_full_store_pauses_the_input_and_loses_nothing() {
    assert!(
        run_supports("--store-max-bytes"),
        "`hubroute run` has no --store-max-bytes: this scenario needs the durable pipeline \
         (set HUBROUTE_BIN to a build that has it)"
    );
    let dir = TempDir::new("store-full");
    let mqtt = Server::mosquitto(&dir.0, false);
    let mut sink = Server::mosquitto(&dir.0, true);
    let watcher = Subscriber::start(sink.port, "alerts");
    sink.stop();
    let out = dir.0.join("out");
    let mut sinks = file_sinks(&out);
    sinks[1].1 = format!("mqtt://127.0.0.1:{}/alerts", sink.port);
    let mut args = router_args(
        &dir.0,
        format!("mqtt://127.0.0.1:{}", mqtt.port),
        "fault-router",
        &sinks,
    );
    args.extend([s("--store-max-bytes"), s(256 * 1024)]);
    let mut router = Hubroute::start(&args, dir.0.join("router.log"));
    router.wait_subscribed();
    let n = scaled(4000);
    let fleet = Fleet::start(mqtt.port, "store-full", 0..n, 0);
    let acked = fleet.finish(patience(120));
    // The store holds every alerts copy not yet delivered and the messages they belong to;
    // at its limit the router stops reading, so the archive stops short of everything.
    let mut last = usize::MAX;
    let paused = eventually(patience(60), || {
        let now = read_file_sink(&archive(&out)).counts.len();
        let still = now == last && now < n;
        last = now;
        if !still {
            std::thread::sleep(Duration::from_secs(2));
        }
        still
    });
    let held_at = read_file_sink(&archive(&out)).counts.len();
    assert!(
        paused,
        "the router never paused with a full store: archive {held_at} of {n}\n{}",
        router.report()
    );
    let log = router.report().to_lowercase();
    assert!(
        log.contains("store") && log.contains("full"),
        "a full store was not said loudly: {log}"
    );
    sink.start_again();
    let outcomes_done = eventually(patience(120), || {
        watcher.received().ids() == expected(&acked, "alerts")
            && read_file_sink(&archive(&out)).counts.len() == n
    });
    let log = router.stop();
    let mut outcomes = settle_files(&out, &acked, Duration::from_secs(10));
    outcomes[1] = Outcome {
        endpoint: "alerts",
        want: expected(&acked, "alerts"),
        got: watcher.received(),
    };
    if !outcomes_done {
        println!("incomplete after the endpoint came back; router: {log}");
    }
    let dead = std::fs::read_to_string(dir.0.join("dead.jsonl")).unwrap_or_default();
    assert!(dead.is_empty(), "a full store dead-lettered: {dead}");
    report(
        "store full (256 KiB)",
        n,
        acked.len(),
        &outcomes,
        &format!("input paused with {held_at}/{n} archived"),
    );
}

/// A spoofing device: it publishes on its own topic (`dev-2`) but claims, in its property
/// bag, to be `dev-1` (`$.cdid` and IoT Hub's `iothub-connection-device-id`), once also on a
/// module topic. The route on `$connectionDeviceId = 'dev-1'` must see only what `dev-1`
/// really sent, and every record carries the sender's identity.
#[test]
fn a_spoofing_device_is_routed_by_its_real_identity() {
    let dir = TempDir::new("spoof");
    let mqtt = Server::mosquitto(&dir.0, false);
    let out = dir.0.join("out");
    let mut router = start_router(
        &dir.0,
        format!("mqtt://127.0.0.1:{}", mqtt.port),
        "fault-router",
        &file_sinks(&out),
    );
    router.wait_subscribed();
    let n = scaled(600);
    let fleet = Fleet::start(mqtt.port, "spoof", 0..n, 0);
    let acked = fleet.finish(patience(60));
    let spoofs = [
        "devices/dev-2/messages/events/$.mid=spoof-1&$.cdid=dev-1&iothub-connection-device-id=dev-1",
        "devices/dev-2/messages/events/$.mid=spoof-2&$.connid=dev-1&$.cdid=dev-1",
        "devices/dev-2/modules/m1/messages/events/$.mid=spoof-3&$.cdid=dev-1&$.cmid=x&iothub-connection-device-id=dev-1",
    ];
    publish_raw(mqtt.port, "spoofer", &spoofs);
    // The spoofs are archived (they are the sender's messages) and never reach dev1.
    let spoof_ids: BTreeSet<String> = (1..=3).map(|k| format!("spoof-{k}")).collect();
    let spoofs_archived = eventually(Duration::from_secs(30), || {
        read_file_sink(&archive(&out)).ids().is_superset(&spoof_ids)
    });
    let outcomes = settle_files(&out, &acked, patience(60));
    router.stop();
    let dev1 = read_file_sink(&out.join("dev1.jsonl")).ids();
    let want_dev1 = expected(&acked, "dev1");
    let strangers: Vec<_> = dev1.difference(&want_dev1).collect();
    assert!(
        strangers.is_empty(),
        "dev1 got messages dev-1 did not send: {strangers:?}"
    );
    assert!(spoofs_archived, "the spoofing device's messages were lost");
    let records = std::fs::read_to_string(archive(&out)).unwrap();
    for line in records.lines().filter(|l| l.contains("\"spoof-")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["SystemProperties"]["connectionDeviceId"], "dev-2",
            "{line}"
        );
    }
    report("spoofing device", n, acked.len(), &outcomes, "3 spoofs");
}

/// Authentication at the devices' broker: devices log in (a `password_file`) and an ACL
/// confines each to its own topics; the router logs in with a password it reads from a file.
/// A device that publishes on another device's topic, one with a wrong password and an
/// anonymous one get nothing into any endpoint; everything the real device had acknowledged
/// arrives, and the router's password appears in no log or output.
#[test]
fn an_authenticating_broker_keeps_impostors_out_and_the_password_secret() {
    let dir = TempDir::new("auth");
    let secret = "router-S3cret-do-not-log";
    let acl = "user router\ntopic read devices/+/messages/events/#\n\
               topic read devices/+/modules/+/messages/events/#\n\
               pattern write devices/%u/messages/events/#\n";
    let mqtt = Server::mosquitto_with_auth(
        &dir.0,
        &[("router", secret), ("dev-0", "pw-0"), ("dev-2", "pw-2")],
        acl,
    );
    let password_file = dir.0.join("router.password");
    std::fs::write(&password_file, format!("{secret}\n")).unwrap();
    let out = dir.0.join("out");
    let input = format!(
        "mqtt://router@127.0.0.1:{}?password_file={}",
        mqtt.port,
        password_file.display()
    );
    let mut router = start_router(&dir.0, input, "fault-router", &file_sinks(&out));
    router.wait_subscribed();
    let n = scaled(600);
    let login = |user: &str, password: &str| Identity {
        device: Some(user.to_string()),
        login: Some((user.to_string(), password.to_string())),
    };
    let real = Fleet::start_as(mqtt.port, "real", 0..n, 0, login("dev-0", "pw-0"));
    // dev-2 logs in and claims to be dev-1 by its topic: the broker drops the publishes.
    let mut impostor = login("dev-2", "pw-2");
    impostor.device = Some("dev-1".into());
    let spoofed = Fleet::start_as(mqtt.port, "impostor", n..n + 50, 0, impostor);
    let wrong = Fleet::start_as(
        mqtt.port,
        "wrong",
        n + 50..n + 60,
        0,
        login("dev-0", "guess"),
    );
    let anonymous = Fleet::start_as(
        mqtt.port,
        "anonymous",
        n + 60..n + 70,
        0,
        Identity {
            device: Some("dev-1".into()),
            login: None,
        },
    );
    let acked = real.finish(patience(60));
    spoofed.finish(patience(60));
    std::thread::sleep(Duration::from_secs(2));
    let refused = [wrong.halt(), anonymous.halt()];
    assert!(
        refused.iter().all(BTreeSet::is_empty),
        "the broker acknowledged publishes of a client that did not log in: {refused:?}"
    );
    let archived = eventually(patience(60), || {
        read_file_sink(&archive(&out)).counts.len() >= acked.len()
    });
    std::thread::sleep(Duration::from_secs(1));
    let log = router.stop();
    assert!(archived, "archive incomplete: {log}");
    let got = |e: &str| read_endpoint(&out, e);
    let outcomes = vec![
        Outcome {
            endpoint: "archive",
            want: acked.iter().map(|&i| mid(i)).collect(),
            got: got("archive"),
        },
        Outcome {
            endpoint: "alerts",
            want: acked
                .iter()
                .filter(|&&i| i % 4 == 0)
                .map(|&i| mid(i))
                .collect(),
            got: got("alerts"),
        },
        Outcome {
            endpoint: "cold",
            want: acked.iter().map(|&i| mid(i)).collect(),
            got: got("cold"),
        },
    ];
    let strangers: Vec<String> = outcomes[0]
        .got
        .ids()
        .into_iter()
        .filter(|id| !outcomes[0].want.contains(id))
        .collect();
    assert!(
        strangers.is_empty(),
        "impostors' messages routed: {strangers:?}"
    );
    assert!(
        got("dev1").counts.is_empty(),
        "dev1 got messages it never sent"
    );
    for (what, text) in [
        ("router log", log),
        (
            "dead letter",
            std::fs::read_to_string(dir.0.join("dead.jsonl")).unwrap_or_default(),
        ),
        (
            "archive",
            std::fs::read_to_string(archive(&out)).unwrap_or_default(),
        ),
    ] {
        assert!(
            !text.contains(secret),
            "the router's password is in the {what}"
        );
    }
    report(
        "authenticating broker",
        n + 70,
        acked.len(),
        &outcomes,
        "60 impostor publishes refused",
    );
}

/// Publishes each topic once (QoS 1, empty body) and waits for the broker's PUBACKs.
fn publish_raw(port: u16, client_id: &str, topics: &[&str]) {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let (client, mut connection) = Client::new(MqttOptions::new(client_id, "127.0.0.1", port), 16);
    for t in topics {
        client.publish(*t, QoS::AtLeastOnce, false, "{}").unwrap();
    }
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked < topics.len() && Instant::now() < deadline {
        if let Ok(Ok(Event::Incoming(Packet::PubAck(_)))) =
            connection.recv_timeout(Duration::from_secs(5))
        {
            acked += 1;
        }
    }
    assert_eq!(
        acked,
        topics.len(),
        "the broker acknowledged {acked} raw publishes"
    );
}

/// One valid message line for the file input.
fn message_line(i: usize) -> String {
    format!(
        r#"{{"systemProperties":{{"contentType":"application/json","contentEncoding":"utf-8","connectionDeviceId":"dev-{}","messageId":"{}"}},"body":{}}}"#,
        i % 3,
        mid(i),
        serde_json::to_string(&fleet_body(i)).unwrap()
    )
}

/// Hostile input lines, none of them a message: invalid UTF-8, raw binary, NUL bytes, an
/// over-long line, deep nesting, truncated and non-object JSON.
fn hostile_lines() -> Vec<Vec<u8>> {
    let mut garbage = Vec::new();
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..4096 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let b = (x >> 24) as u8;
        garbage.push(if b == b'\n' { 0 } else { b });
    }
    vec![
        b"{\"body\":\"\xff\xfe\xfd\"}".to_vec(),
        b"\xc3\x28\xa0\xa1 not utf-8 at all \xf0\x28\x8c\x28".to_vec(),
        garbage,
        b"{\"systemProperties\":{\"messageId\":\"x\0y\"},\"body\":\"\0\0\"}\0".to_vec(),
        {
            let mut long = b"{\"body\":\"".to_vec();
            long.extend(std::iter::repeat_n(b'a', 3 * 1024 * 1024));
            long.extend(b"\"}");
            long
        },
        std::iter::repeat_n(b'[', 200_000).collect(),
        std::iter::repeat_n(b"{\"a\":".as_slice(), 50_000)
            .flatten()
            .copied()
            .collect(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"12345678901234567890123456789".to_vec(),
        b"\"just a string\"".to_vec(),
        b"{\"body\":\"x\"} and then some".to_vec(),
    ]
}

/// Hostile files into `run --input FILE`: every line is accounted for (routed, invalid or
/// blank), every valid message is delivered, every bad line is dead-lettered with its line
/// number, and the run ends with its summary however bad the input.
#[test]
fn hostile_files_are_accounted_line_by_line() {
    let dir = TempDir::new("hostile");
    let out = dir.0.join("out");
    let input = dir.0.join("hostile.jsonl");
    let hostile = hostile_lines();
    let valid = scaled(2000);
    let mut bytes = Vec::new();
    let mut bad_lines = BTreeSet::new();
    let mut line = 0;
    let mut blank = 0;
    let mut h = hostile.iter().cycle();
    for i in 0..valid {
        line += 1;
        bytes.extend(message_line(i).as_bytes());
        bytes.extend(if i % 7 == 0 {
            b"\r\n".as_slice()
        } else {
            b"\n"
        });
        if i % 50 == 25 {
            line += 1;
            bytes.extend(h.next().unwrap());
            bytes.push(b'\n');
            bad_lines.insert(line);
        }
        if i % 300 == 1 {
            line += 1;
            blank += 1;
            bytes.extend(b"   \n");
        }
    }
    // The last line has no newline, and is hostile.
    line += 1;
    bytes.extend(&hostile[0]);
    bad_lines.insert(line);
    std::fs::write(&input, &bytes).unwrap();

    let args = router_args(&dir.0, s(input.display()), "file", &file_sinks(&out));
    let output = std::process::Command::new(hubroute_bin())
        .args(&args)
        .output()
        .expect("run hubroute");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some(),
        "hubroute died by a signal: {stderr}"
    );
    // The summary's accounting: `valid V + invalid I + blank B = read N`.
    let accounting = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("valid "))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty())
                .map(|n| n.parse::<usize>().unwrap())
                .collect::<Vec<_>>()
        })
        .unwrap_or_else(|| panic!("no accounting line ({}): {stderr}", output.status));
    assert_eq!(
        accounting,
        [valid, bad_lines.len(), blank, line],
        "valid + invalid + blank = read, of {line} lines ({blank} blank, {} bad): {}",
        bad_lines.len(),
        stderr.lines().rev().take(14).collect::<Vec<_>>().join("\n")
    );
    let dead = std::fs::read_to_string(dir.0.join("dead.jsonl")).unwrap_or_default();
    let dead_lines: BTreeSet<usize> = dead
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["line"].as_u64().map(|n| n as usize))
        .collect();
    assert_eq!(dead_lines, bad_lines, "dead-lettered lines");
    let acked: BTreeSet<usize> = (0..valid).collect();
    let outcomes = settle_files(&out, &acked, Duration::from_secs(1));
    report(
        "hostile file",
        line,
        valid,
        &outcomes,
        &format!("{} bad lines, {blank} blank", bad_lines.len()),
    );
}
