//! Anti-spoofing in conditions: a device cannot change a routing decision with an application
//! property named like a system property the router stamps from the connection
//! (`$connectionDeviceId`, `$connectionModuleId`, `$connectionAuthMethod`,
//! `$connectionDeviceGenerationId`, `$enqueuedTime`), in any case, whichever evaluator runs the
//! condition; other `$x` names keep the reference engine's lookup (R01: application property
//! `$x`, then system property `x`).

use hubroute::eval::EvalContext;
use hubroute::message::{Message, Source};
use hubroute::route::RouteTable;
use hubroute::{Bool3, Condition, Options};
use serde_json::json;

/// The stamped names, each with the value the router stamped and the value a device claims.
const STAMPED: [(&str, &str, &str); 5] = [
    ("connectionDeviceId", "evil", "victim"),
    ("connectionModuleId", "evil-module", "victim-module"),
    (
        "connectionAuthMethod",
        "{\"scope\":\"device\"}",
        "{\"scope\":\"hub\"}",
    ),
    ("connectionDeviceGenerationId", "1", "2"),
    (
        "enqueuedTime",
        "2026-01-01T00:00:00.0000000Z",
        "2020-01-01T00:00:00.0000000Z",
    ),
];

/// Spellings a device might use for the application property: any case.
fn spellings(name: &str) -> Vec<String> {
    vec![
        format!("${name}"),
        format!("${}", name.to_uppercase()),
        format!("${}", name.to_lowercase()),
    ]
}

/// Whether each evaluator matches (a route matches only on true): the compiled program, the
/// reference interpreter, and a route table's router (which reads properties through its plan).
fn all_results(condition: &str, msg: &Message) -> [bool; 3] {
    let cond = Condition::compile(condition, &Options::iot_hub()).unwrap();
    let ctx = EvalContext::new(msg);
    let config = json!({"routes": [{"name": "r", "source": "DeviceMessages", "condition": condition,
        "endpointNames": ["events"], "isEnabled": true}]});
    let build = RouteTable::from_json(&config.to_string(), "hub");
    let table = build
        .table
        .unwrap_or_else(|| panic!("{:?}", build.diagnostics));
    let routed = !table
        .route(msg, Source::DeviceMessages)
        .endpoints
        .is_empty();
    [
        cond.eval(msg) == Bool3::True,
        cond.eval_reference(&ctx) == Bool3::True,
        routed,
    ]
}

#[test]
fn stamped_names_read_only_the_stamped_system_property() {
    for (name, stamped, claimed) in STAMPED {
        for app_name in spellings(name) {
            let msg = Message::from_json_value(&json!({
                "systemProperties": {name: stamped},
                "appProperties": {app_name.clone(): claimed},
            }))
            .unwrap();
            for query_name in spellings(name) {
                let claim = format!("{query_name} = '{}'", claimed.replace('\'', "\\'"));
                assert_eq!(
                    all_results(&claim, &msg),
                    [false; 3],
                    "{claim} with application property {app_name}"
                );
                let truth = format!("{query_name} = '{}'", stamped.replace('\'', "\\'"));
                assert_eq!(all_results(&truth, &msg), [true; 3], "{truth}");
            }
        }
    }
}

#[test]
fn a_missing_stamp_is_not_filled_in_by_the_device() {
    // A device (not a module) has no connectionModuleId: `$connectionModuleId` stays
    // undefined rather than reading the device's claim.
    let msg = Message::from_json_value(&json!({
        "systemProperties": {"connectionDeviceId": "evil"},
        "appProperties": {"$connectionModuleId": "victim-module", "$CONNECTIONDEVICEID": "victim"},
    }))
    .unwrap();
    for condition in [
        "$connectionModuleId = 'victim-module'",
        "is_defined($connectionModuleId)",
        "$connectionDeviceId = 'victim'",
    ] {
        assert_eq!(all_results(condition, &msg), [false; 3], "{condition}");
    }
    assert_eq!(all_results("$connectionDeviceId = 'evil'", &msg), [true; 3]);
}

#[test]
fn other_dollar_names_keep_the_reference_lookup() {
    // R01: an application property `$x` overrides system property `x` for names the router
    // does not stamp (the conformance corpus' `$sys4`, and e.g. `$messageId`).
    let msg = Message::from_json_value(&json!({
        "systemProperties": {"sys4": "sysvalue4", "messageId": "m-sys"},
        "appProperties": {"$sys4": "value4", "$MessageId": "m-app"},
    }))
    .unwrap();
    for condition in [
        "$sys4 = 'value4'",
        "$messageId = 'm-app'",
        "{$sys4} = 'sysvalue4'",
    ] {
        assert_eq!(all_results(condition, &msg), [true; 3], "{condition}");
    }
}

/// From a device's MQTT publish to an endpoint: a real Mosquitto on a free loopback port, the
/// real `hubroute run --input mqtt://…` with file sinks. Device `evil` publishes with every
/// stamped name in several spellings (case, `%24`-encoded or not) claiming to be `victim`;
/// only `victim`'s own message reaches the victim endpoint, and the router reports the dropped
/// properties (W0650).
#[cfg(all(feature = "mqtt", feature = "cli"))]
mod over_mqtt {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    use std::collections::BTreeSet;
    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A scratch directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir()
                .join(format!("hubroute-spoofing-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A child process killed on drop.
    struct Killed(Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn mosquitto_program() -> PathBuf {
        [
            "/usr/sbin/mosquitto",
            "/usr/local/sbin/mosquitto",
            "/usr/bin/mosquitto",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mosquitto is not installed; this test starts a real broker. Install it with \
                     `sudo apt-get install -y mosquitto` (Debian/Ubuntu)"
            )
        })
    }

    fn start_mosquitto(dir: &Path) -> (Killed, u16) {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser {user}\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(mosquitto_program())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("mosquitto exited at start ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (Killed(child), port)
    }

    /// Publishes `(topic, payload)` at QoS 1 and waits for every acknowledgement.
    fn publish(port: u16, messages: &[(String, String)]) {
        let mut o = MqttOptions::new("spoofing-devices", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(10));
        let (client, mut connection) = Client::new(o, 64);
        for (topic, payload) in messages {
            client
                .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                .unwrap();
        }
        let mut acked = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked < messages.len() {
            assert!(
                Instant::now() < deadline,
                "broker acknowledged {acked} publishes"
            );
            match connection.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(_)) => {}
                other => panic!("device connection failed: {other:?}"),
            }
        }
        let _ = client.disconnect();
    }

    /// The message ids in a JSON Lines sink file (none when it was never created).
    fn ids(path: &Path) -> BTreeSet<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["SystemProperties"]["messageId"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    const ROUTES: &str = r#"{
      "endpoints": {"eventHubs": [{"name": "victim"}, {"name": "archive"}]},
      "routes": [
        {"name": "device", "source": "DeviceMessages", "condition": "$connectionDeviceId = 'victim'", "endpointNames": ["victim"], "isEnabled": true},
        {"name": "module", "source": "DeviceMessages", "condition": "$connectionModuleId = 'victim-module'", "endpointNames": ["victim"], "isEnabled": true},
        {"name": "auth", "source": "DeviceMessages", "condition": "$connectionAuthMethod = 'spoofed'", "endpointNames": ["victim"], "isEnabled": true},
        {"name": "generation", "source": "DeviceMessages", "condition": "$connectionDeviceGenerationId = '9'", "endpointNames": ["victim"], "isEnabled": true},
        {"name": "time", "source": "DeviceMessages", "condition": "$enqueuedTime = 'then'", "endpointNames": ["victim"], "isEnabled": true},
        {"name": "all", "source": "DeviceMessages", "condition": "true", "endpointNames": ["archive"], "isEnabled": true}
      ]
    }"#;

    #[test]
    fn a_device_cannot_route_as_another_device() {
        let dir = TempDir::new();
        let (_broker, port) = start_mosquitto(&dir.0);
        let routes = dir.0.join("routes.json");
        std::fs::write(&routes, ROUTES).unwrap();
        let out = dir.0.join("out");
        let log = dir.0.join("router.log");
        let router = Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(["run", "--routes"])
            .arg(&routes)
            .args(["--input", &format!("mqtt://127.0.0.1:{port}")])
            .args(["--client-id", "spoofing-router", "--exit-when-idle", "3s"])
            .arg("--sink")
            .arg(format!(
                "victim=file:{}",
                out.join("victim.jsonl").display()
            ))
            .arg("--sink")
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
            .expect("start hubroute");
        let mut router = Killed(router);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("subscribed to device-to-cloud topics")
        {
            assert!(
                Instant::now() < deadline,
                "router never subscribed: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let claims = [
            "%24connectionDeviceId=victim",
            "$connectionDeviceId=victim",
            "%24CONNECTIONDEVICEID=victim",
            "$connectiondeviceid=victim",
            "%24connectionModuleId=victim-module",
            "$CONNECTIONMODULEID=victim-module",
            "%24connectionAuthMethod=spoofed",
            "$ConnectionAuthMethod=spoofed",
            "%24connectionDeviceGenerationId=9",
            "$CONNECTIONDEVICEGENERATIONID=9",
            "%24enqueuedTime=then",
            "$ENQUEUEDTIME=then",
            "iothub-connection-device-id=victim",
            "%24connectionDeviceId=victim&%24connectionModuleId=victim-module&$enqueuedtime=then",
        ];
        let mut messages: Vec<(String, String)> = claims
            .iter()
            .enumerate()
            .map(|(i, claim)| {
                (
                    format!("devices/evil/messages/events/$.mid=evil-{i}&{claim}"),
                    "{}".to_string(),
                )
            })
            .collect();
        messages.push((
            "devices/victim/messages/events/$.mid=victim-0".to_string(),
            "{}".to_string(),
        ));
        publish(port, &messages);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = router.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "router did not exit when idle");
            std::thread::sleep(Duration::from_millis(50));
        };
        let report = std::fs::read_to_string(&log).unwrap();
        assert!(status.success(), "{status}: {report}");
        let all: BTreeSet<String> = messages
            .iter()
            .map(|(t, _)| {
                t.split("$.mid=")
                    .nth(1)
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids(&out.join("archive.jsonl")), all, "{report}");
        assert_eq!(
            ids(&out.join("victim.jsonl")),
            BTreeSet::from(["victim-0".to_string()]),
            "{report}"
        );
        assert!(report.contains("warning[W0650]: device 'evil'"), "{report}");
        assert!(
            !report.contains("victim-module"),
            "values are not logged: {report}"
        );
    }
}
