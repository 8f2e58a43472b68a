//! The Mosquitto configuration shipped in `examples/mosquitto/`, run as it is (only its port,
//! persistence directory and file paths rewritten for the test): devices must log in and can
//! publish only under their own id, and a device fleet publishing at full speed loses nothing
//! on its way into `hubroute run` (every message id arrives), where Mosquitto's defaults drop
//! what does not fit its queue of 1000.
//!
//! Needs `mosquitto` (Debian package); without it the tests fail saying so.
#![cfg(all(feature = "mqtt", feature = "cli"))]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{Client, ConnectionError, Event, MqttOptions, Packet, QoS};
use support::{device_fleet, eventually, free_port, repo, run_device_fleet, Server, TempDir};

/// The shipped configuration, listening on `port`, with paths made absolute and persistence in
/// `dir`.
fn shipped_config(dir: &Path, port: u16) -> String {
    let text = std::fs::read_to_string(repo().join("examples/mosquitto/hubroute.conf")).unwrap();
    assert!(
        text.contains("listener 1883 127.0.0.1\n"),
        "the shipped listener moved"
    );
    let root = repo();
    text.replace(
        "listener 1883 127.0.0.1\n",
        &format!("listener {port} 127.0.0.1\n"),
    )
    .replace(
        "persistence_location /var/lib/mosquitto/",
        &format!("persistence_location {}/", dir.display()),
    )
    .replace(
        "examples/mosquitto/",
        &format!("{}/examples/mosquitto/", root.display()),
    )
}

fn demo_password(who: &str) -> String {
    std::fs::read_to_string(repo().join(format!("examples/mosquitto/{who}.password")))
        .unwrap()
        .trim_end()
        .to_string()
}

fn options(port: u16, client_id: &str, login: Option<(&str, &str)>) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_inflight(1000);
    if let Some((user, password)) = login {
        o.set_credentials(user, password);
    }
    o
}

/// Whether the broker accepts this login (the first connection event).
fn accepted(port: u16, login: Option<(&str, &str)>) -> bool {
    let (_client, mut connection) = Client::new(options(port, "probe", login), 10);
    match connection.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => true,
        Ok(Err(ConnectionError::ConnectionRefused(_))) => false,
        other => panic!("neither accepted nor refused: {other:?}"),
    }
}

#[test]
fn devices_log_in_and_publish_only_as_themselves() {
    let dir = TempDir::new("mosquitto-acl");
    let port = free_port();
    let server = Server::mosquitto(&dir.0, "shipped", &shipped_config(&dir.0, port), &[port]);
    let device_pw = demo_password("device");
    let router_pw = demo_password("router");

    assert!(!accepted(port, None), "anonymous clients get in");
    assert!(
        !accepted(port, Some(("dev-1", "wrong"))),
        "a wrong password gets in"
    );
    assert!(accepted(port, Some(("dev-1", &device_pw))));

    // The router reads every device's telemetry.
    let (router, mut router_conn) = Client::new(
        options(port, "router-acl", Some(("router", &router_pw))),
        100,
    );
    router
        .subscribe("devices/+/messages/events/#", QoS::AtLeastOnce)
        .unwrap();
    router
        .subscribe("devices/+/modules/+/messages/events/#", QoS::AtLeastOnce)
        .unwrap();
    let mut subacks = 0;
    while subacks < 2 {
        match router_conn.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subacks += 1,
            Ok(Ok(_)) => {}
            other => panic!("router: {other:?}"),
        }
    }

    // dev-1 publishes as itself, as dev-2, into module topics, outside the device topics, and
    // last a marker. Mosquitto forwards only its own; a denied publish is answered with a
    // "not authorized" PUBACK and the connection closed, so each goes on a fresh connection.
    for topic in [
        "devices/dev-1/messages/events/$.mid=own",
        "devices/dev-2/messages/events/$.mid=spoofed",
        "devices/dev-2/modules/m/messages/events/$.mid=spoofed-module",
        "devices/dev-1/modules/m/messages/events/$.mid=own-module",
        "alerts/$.mid=not-a-device-topic",
        "devices/dev-1/messages/events/$.mid=last",
    ] {
        let (dev1, mut conn) = Client::new(options(port, "dev-1", Some(("dev-1", &device_pw))), 10);
        dev1.publish(topic, QoS::AtLeastOnce, false, "{}").unwrap();
        loop {
            match conn.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
                Err(e) => panic!("dev-1 publishing to {topic}: {e:?}"),
            }
        }
        let _ = dev1.disconnect();
    }
    let mut seen = Vec::new();
    while !seen.iter().any(|t: &String| t.ends_with("$.mid=last")) {
        match router_conn.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => seen.push(p.topic),
            Ok(Ok(_)) => {}
            other => panic!("router after {seen:?}: {other:?}\n{}", server.log_text()),
        }
    }
    assert_eq!(
        seen,
        [
            "devices/dev-1/messages/events/$.mid=own",
            "devices/dev-1/modules/m/messages/events/$.mid=own-module",
            "devices/dev-1/messages/events/$.mid=last",
        ]
    );
    assert!(server.log_text().contains("Denied PUBLISH from dev-1"));
}

/// `n` messages from `devices` devices, each on its own authenticated connection, as fast as
/// the broker takes them (QoS 1, up to 1000 in flight per device), by the `device_fleet`
/// example that `scripts/e2e.sh` measures with; returns once every one is acknowledged.
/// Message `m-{i}` comes from device `dev-{i % devices}`.
fn fleet(fleet_bin: &Path, port: u16, n: usize, devices: usize) {
    let url = format!(
        "mqtt://dev@127.0.0.1:{port}?password_file={}",
        repo().join("examples/mosquitto/device.password").display()
    );
    run_device_fleet(fleet_bin, &url, n, devices).unwrap_or_else(|e| panic!("{e}"));
}

const ROUTES: &str = r#"{
  "endpoints": { "eventHubs": [ { "name": "archive" } ] },
  "routes": [ { "name": "all", "source": "DeviceMessages", "condition": "true", "endpointNames": ["archive"], "isEnabled": true } ]
}"#;

#[test]
fn a_fleet_at_full_speed_loses_nothing_into_run() {
    const N: usize = 6000;
    // Built (if it must be) before any router starts its idle clock.
    let fleet_bin = device_fleet();
    let dir = TempDir::new("mosquitto-fleet");
    let port = free_port();
    let server = Server::mosquitto(&dir.0, "shipped", &shipped_config(&dir.0, port), &[port]);
    let (mut run, log) = start_archiving_router(&dir, port, "router-fleet", "fleet");
    let archive = dir.0.join("fleet/archive.jsonl");
    fleet(&fleet_bin, port, N, 10);
    let report = wait_exit(&mut run, &log, Duration::from_secs(240));

    let text = std::fs::read_to_string(&archive).unwrap_or_default();
    let ids: BTreeSet<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["SystemProperties"]["messageId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let missing: Vec<usize> = (0..N)
        .filter(|i| !ids.contains(&format!("m-{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {N} messages lost (first {:?}); run said: {report}\nbroker: {}",
        missing.len(),
        &missing[..missing.len().min(10)],
        server
            .log_text()
            .lines()
            .filter(|l| l.contains("dropped"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!server
        .log_text()
        .contains("Outgoing messages are being dropped"));
    assert!(
        !report.contains(&demo_password("router")),
        "the password is in the log"
    );
}

/// `hubroute run` from `port` into an endpoint on a port where nothing listens, as client
/// `router-drops`, logging to `log`.
fn start_router_into_nowhere(dir: &Path, port: u16, log: &Path) -> std::process::Child {
    let routes = dir.join("routes.json");
    std::fs::write(&routes, ROUTES).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(["run", "--routes"])
        .arg(&routes)
        .arg("--input")
        .arg(format!("mqtt://127.0.0.1:{port}"))
        .args([
            "--client-id",
            "router-drops",
            "--max-attempts",
            "1000",
            "--max-backoff",
            "300ms",
        ])
        .arg("--sink")
        .arg(format!("archive=mqtt://127.0.0.1:{}/out", free_port()))
        .arg("--dead-letter")
        .arg(dir.join("dead.jsonl"))
        .arg("--store")
        .arg(dir.join("store"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn subscribed(log: &Path) -> bool {
    eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("subscribed to device-to-cloud topics")
    })
}

/// With a broker that drops (a queue of 10, as Mosquitto's default of 1000 at a larger scale)
/// the router says so loudly, with the broker's own count: 130 messages arrive while the
/// router is away, the broker keeps 10 for its session and drops the rest although every
/// device got its PUBACK, and the router, back, reports it.
#[test]
fn a_broker_that_drops_is_reported_by_the_router() {
    let dir = TempDir::new("mosquitto-drops");
    let port = free_port();
    let config = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 10\nsys_interval 1\n"
    );
    let server = Server::mosquitto(&dir.0, "small-queue", &config, &[port]);
    // The router's first run makes its session and subscription; then it stops.
    let first_log = dir.0.join("first.log");
    let mut first = start_router_into_nowhere(&dir.0, port, &first_log);
    assert!(subscribed(&first_log), "never subscribed");
    let _ = Command::new("kill").arg(first.id().to_string()).status();
    let _ = first.wait();
    let first_report = std::fs::read_to_string(&first_log).unwrap();
    assert!(!first_report.contains("W0702"), "{first_report}");

    let (client, mut conn) = Client::new(options(port, "dev-0", None), 200);
    for i in 0..130 {
        let topic = format!("devices/dev-0/messages/events/$.mid=m-{i}");
        client
            .publish(topic, QoS::AtLeastOnce, false, "{}")
            .unwrap();
    }
    let mut acked = 0;
    while acked < 130 {
        match conn.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("dev-0 after {acked}: {other:?}"),
        }
    }
    assert!(server
        .log_text()
        .contains("Outgoing messages are being dropped"));

    let log = dir.0.join("run.log");
    let mut run = start_router_into_nowhere(&dir.0, port, &log);
    let report = || std::fs::read_to_string(&log).unwrap_or_default();
    // The warning's last words: a router killed after its first words (stderr is unbuffered)
    // would leave half a line.
    let warned = eventually(Duration::from_secs(30), || {
        report().contains("W0702") && report().contains("see the README")
    });
    let _ = run.kill();
    let _ = run.wait();
    let report = report();
    assert!(warned, "no warning about the broker's drops: {report}");
    assert!(report.contains("dropped 120 QoS 1 messages"), "{report}");
    assert!(report.contains("max_queued_messages"), "{report}");
}

/// Waits (at most `limit`) for `child` to exit by itself and says how it went.
fn wait_exit(child: &mut std::process::Child, log: &Path, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let report = || std::fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}: {}", report());
            return report();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not stop by itself: {}", report());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The same fleet through `hubroute bridge` into a JetStream stream: every message is in the
/// stream (read back by `hubroute run` into a file).
#[cfg(feature = "nats")]
#[test]
fn a_fleet_at_full_speed_loses_nothing_into_the_bridge() {
    const N: usize = 6000;
    // Built (if it must be) before any router starts its idle clock.
    let fleet_bin = device_fleet();
    let dir = TempDir::new("mosquitto-bridge");
    let port = free_port();
    let _mqtt = Server::mosquitto(&dir.0, "shipped", &shipped_config(&dir.0, port), &[port]);
    let nats_port = free_port();
    let nats_config = format!(
        "host: 127.0.0.1\nport: {nats_port}\njetstream {{ store_dir: \"{}\" }}\n",
        dir.0.join("js").display()
    );
    let _nats = Server::nats(&dir.0, "nats", &nats_config, nats_port);
    let stream = format!("jetstream://127.0.0.1:{nats_port}/HUB");
    let bridge_log = dir.0.join("bridge.log");
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .arg("bridge")
        .arg("--from")
        .arg(format!(
            "mqtt://router@127.0.0.1:{port}?password_file={}",
            repo().join("examples/mosquitto/router.password").display()
        ))
        .args([
            "--to",
            &stream,
            "--client-id",
            "bridge-fleet",
            "--exit-when-idle",
            "5s",
        ])
        .arg("--dead-letter")
        .arg(dir.0.join("bridge-dead.jsonl"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&bridge_log).unwrap())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || std::fs::read_to_string(
            &bridge_log
        )
        .unwrap_or_default()
        .contains("subscribed to device-to-cloud topics")),
        "never subscribed: {}",
        std::fs::read_to_string(&bridge_log).unwrap_or_default()
    );
    fleet(&fleet_bin, port, N, 10);
    let report = wait_exit(&mut bridge, &bridge_log, Duration::from_secs(240));
    assert!(!report.contains("W0702"), "{report}");

    let routes = dir.write("routes.json", ROUTES);
    let archive = dir.0.join("archive.jsonl");
    let run_log = dir.0.join("run.log");
    let mut run = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(["run", "--routes"])
        .arg(&routes)
        .args([
            "--input",
            &format!("{stream}?consumer=count"),
            "--exit-when-idle",
            "3s",
        ])
        .arg("--sink")
        .arg(format!("archive=file:{}", archive.display()))
        .arg("--dead-letter")
        .arg(dir.0.join("dead.jsonl"))
        .arg("--store")
        .arg(dir.0.join("store"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&run_log).unwrap())
        .spawn()
        .unwrap();
    let run_report = wait_exit(&mut run, &run_log, Duration::from_secs(240));
    let text = std::fs::read_to_string(&archive).unwrap_or_default();
    let ids: BTreeSet<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["SystemProperties"]["messageId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let missing = (0..N).filter(|i| !ids.contains(&format!("m-{i}"))).count();
    assert_eq!(missing, 0, "bridge: {report}\nrun: {run_report}");
}

/// `hubroute run` from the shipped broker on `port` as client `client_id`, into an archive file
/// in `dir/{name}`, stopping after 5 s without a message; returns once it has subscribed.
fn start_archiving_router(
    dir: &TempDir,
    port: u16,
    client_id: &str,
    name: &str,
) -> (std::process::Child, std::path::PathBuf) {
    let routes = dir.write("routes.json", ROUTES);
    let out = dir.0.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let log = out.join("run.log");
    let child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(["run", "--routes"])
        .arg(&routes)
        .arg("--input")
        .arg(format!(
            "mqtt://router@127.0.0.1:{port}?password_file={}",
            repo().join("examples/mosquitto/router.password").display()
        ))
        .args(["--client-id", client_id, "--exit-when-idle", "5s", "--sink"])
        .arg(format!(
            "archive=file:{}",
            out.join("archive.jsonl").display()
        ))
        .arg("--dead-letter")
        .arg(out.join("dead.jsonl"))
        .arg("--store")
        .arg(out.join("store"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("subscribed to device-to-cloud topics")),
        "never subscribed: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (child, log)
}

/// The router acknowledges every message it accepted, although it writes its PUBACKs in
/// batches beside rumqttc's queue: a second router on the same session, started after the
/// first stopped, gets nothing again from the broker (which redelivers what a session left
/// unacknowledged).
#[test]
fn every_accepted_message_is_acknowledged_so_the_session_holds_none_again() {
    const N: usize = 3000;
    // Built (if it must be) before any router starts its idle clock.
    let fleet_bin = device_fleet();
    let dir = TempDir::new("mosquitto-acks");
    let port = free_port();
    let _mqtt = Server::mosquitto(&dir.0, "shipped", &shipped_config(&dir.0, port), &[port]);
    let (mut first, log) = start_archiving_router(&dir, port, "router-acks", "first");
    fleet(&fleet_bin, port, N, 5);
    let report = wait_exit(&mut first, &log, Duration::from_secs(120));
    assert!(report.contains(&format!("read {N} messages")), "{report}");
    let archived = std::fs::read_to_string(dir.0.join("first/archive.jsonl")).unwrap();
    assert_eq!(archived.lines().count(), N, "{report}");

    let (mut second, log) = start_archiving_router(&dir, port, "router-acks", "second");
    let report = wait_exit(&mut second, &log, Duration::from_secs(60));
    assert!(
        report.contains("read 0 messages"),
        "the broker redelivered messages the first router had accepted: {report}"
    );
}
