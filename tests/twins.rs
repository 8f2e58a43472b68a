//! Twins that change (issue 19, items 4 and 5), end to end: a real `hubroute run` process
//! fed on standard input (kept open), with a twin directory and a device registry that
//! `hubroute twin set` and `hubroute device ...` change while it runs; and the library's
//! reported-property patches through a real pipeline and store. Waits are bounded and only
//! guard against hangs; nothing asserts on how long anything takes.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use hubroute::message::Message;
use hubroute::pipeline::{Pipeline, PipelineConfig};
use hubroute::route::RouteTable;
use hubroute::sink::{DeadLetter, JsonLinesSink, Sink};
use hubroute::twin::{codes, LiveTwins};
use serde_json::Value;
use support::{eventually, free_port, Server, TempDir};

const WAIT: Duration = Duration::from_secs(30);

const ROUTES: &str = r#"{
  "routes": [
    {"name": "site-changes", "source": "TwinChangeEvents",
     "condition": "twin_change_includes(tags.site)", "endpointNames": ["changes"], "isEnabled": true},
    {"name": "reported-temp", "source": "TwinChangeEvents",
     "condition": "twin_change_includes(properties.reported.temp)", "endpointNames": ["changes"], "isEnabled": true},
    {"name": "lifecycle", "source": "DeviceLifecycleEvents", "condition": "true",
     "endpointNames": ["lifecycle"], "isEnabled": true},
    {"name": "lab", "source": "DeviceMessages", "condition": "$twin.tags.site = 'lab'",
     "endpointNames": ["lab"], "isEnabled": true},
    {"name": "home", "source": "DeviceMessages", "condition": "$twin.tags.site = 'home'",
     "endpointNames": ["home"], "isEnabled": true}
  ],
  "endpoints": {"serviceBusQueues": [{"name": "changes"}, {"name": "lifecycle"}, {"name": "lab"}, {"name": "home"}]}
}"#;

fn hubroute(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(args)
        .output()
        .unwrap()
}

/// The JSON lines of a sink file (none if it does not exist yet).
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An application property of a sink line, wherever the line keeps them.
fn app(line: &Value, name: &str) -> Option<String> {
    ["appProperties", "properties", "Properties"]
        .iter()
        .find_map(|k| line.get(*k))
        .and_then(|p| p.get(name))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The JSON body of a sink line.
fn body(line: &Value) -> Value {
    let b = ["Body", "body"]
        .iter()
        .find_map(|k| line.get(*k))
        .cloned()
        .unwrap_or(Value::Null);
    match b {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

struct Router {
    child: Child,
    dir: PathBuf,
}

impl Router {
    fn start(dir: &Path) -> Router {
        Router::start_on(dir, "-")
    }

    fn start_on(dir: &Path, input: &str) -> Router {
        let d = |n: &str| dir.join(n).display().to_string();
        let mut args = vec![
            "run".to_string(),
            "--routes".into(),
            d("routes.json"),
            "--input".into(),
            input.into(),
            "--store".into(),
            d("store"),
            "--twin-dir".into(),
            d("twins"),
            "--devices".into(),
            d("devices.json"),
            "--twin-poll".into(),
            "100ms".into(),
            "--dead-letter".into(),
            d("dead.jsonl"),
            "--quiet".into(),
        ];
        for e in ["changes", "lifecycle", "lab", "home"] {
            args.push("--sink".into());
            args.push(format!("{e}=file:{}", d(&format!("{e}.jsonl"))));
        }
        let child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Router {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn send(&mut self, device: &str, id: &str) {
        let line = serde_json::json!({
            "systemProperties": {"connectionDeviceId": device, "messageId": id},
            "body": "hello",
        });
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the input and waits for the summary.
    fn stop(mut self) -> String {
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn sink(&self, name: &str) -> Vec<Value> {
        lines(&self.dir.join(format!("{name}.jsonl")))
    }

    fn twin_version(&self, device: &str) -> Option<u64> {
        let o = hubroute(&[
            "twin",
            "show",
            "--store",
            &self.dir.join("store").display().to_string(),
            "--device",
            device,
        ]);
        serde_json::from_slice::<Value>(&o.stdout)
            .ok()?
            .get("version")?
            .as_u64()
    }
}

fn message_ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            ["systemProperties", "SystemProperties"]
                .iter()
                .find_map(|k| l.get(*k))
                .and_then(|p| p.get("messageId"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn twin_set_and_device_lifecycle_are_routed_by_a_running_router_and_survive_restarts() {
    let tmp = TempDir::new("twins-e2e");
    let dir = tmp.0.clone();
    tmp.write("routes.json", ROUTES);
    std::fs::create_dir_all(dir.join("twins")).unwrap();
    tmp.write("twins/d1.json", r#"{"tags": {"site": "home"}}"#);
    tmp.write("devices.json", r#"{"d1": "636930642531278483"}"#);
    let twins = dir.join("twins").display().to_string();
    let devices = dir.join("devices.json").display().to_string();

    let mut router = Router::start(&dir);
    // The twin file is the device's first state: no notification, and $twin sees it.
    router.send("d1", "m1");
    assert!(
        eventually(WAIT, || message_ids(&router.sink("home")) == ["m1"]),
        "m1 routed by $twin.tags.site = 'home': {:?}",
        router.sink("home")
    );
    let first = router.twin_version("d1").expect("the twin is kept");

    // A tag changed while the router runs: one TwinChangeEvents copy with IoT Hub's shape.
    let o = hubroute(&[
        "twin",
        "set",
        "--twin-dir",
        &twins,
        "--device",
        "d1",
        "--tags",
        r#"{"site": "lab"}"#,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        eventually(WAIT, || router.sink("changes").len() == 1),
        "a twin change copy: {:?}",
        router.sink("changes")
    );
    let change = &router.sink("changes")[0];
    assert_eq!(
        app(change, "iothub-message-schema").as_deref(),
        Some("twinChangeNotification")
    );
    assert_eq!(app(change, "opType").as_deref(), Some("updateTwin"));
    assert_eq!(app(change, "deviceId").as_deref(), Some("d1"));
    assert!(app(change, "hubName").is_some() && app(change, "operationTimestamp").is_some());
    assert_eq!(
        body(change),
        serde_json::json!({"version": first + 1, "tags": {"site": "lab"}})
    );
    // $twin conditions see the new value as soon as the change is committed.
    assert!(eventually(WAIT, || router.twin_version("d1") == Some(first + 1)));
    router.send("d1", "m2");
    assert!(
        eventually(WAIT, || message_ids(&router.sink("lab")) == ["m2"]),
        "m2 routed by the new tag: lab {:?} home {:?}",
        router.sink("lab"),
        router.sink("home")
    );
    assert_eq!(message_ids(&router.sink("home")), ["m1"]);

    // A desired property change is a twin change too, but not of tags.site: no copy here.
    let o = hubroute(&[
        "twin",
        "set",
        "--twin-dir",
        &twins,
        "--device",
        "d1",
        "--desired",
        r#"{"interval": 5}"#,
    ]);
    assert!(o.status.success());
    assert!(eventually(WAIT, || router.twin_version("d1") == Some(first + 2)));

    // Devices created and deleted while it runs: lifecycle notifications.
    let o = hubroute(&["device", "create", "--devices", &devices, "d2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let identity: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(identity["status"], "enabled");
    assert_eq!(
        identity["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .map(str::len),
        Some(44),
        "32 random bytes in base64"
    );
    assert!(
        eventually(WAIT, || router.sink("lifecycle").len() == 1),
        "a lifecycle copy: {:?}",
        router.sink("lifecycle")
    );
    let created = &router.sink("lifecycle")[0];
    assert_eq!(
        app(created, "opType").as_deref(),
        Some("createDeviceIdentity")
    );
    assert_eq!(
        app(created, "iothub-message-schema").as_deref(),
        Some("deviceLifecycleNotification")
    );
    assert_eq!(body(created)["deviceId"], "d2");
    assert!(
        body(created).to_string().find("primaryKey").is_none(),
        "no keys in a notification"
    );
    // Disabling is not a lifecycle event in IoT Hub (only create and delete are).
    assert!(
        hubroute(&["device", "disable", "--devices", &devices, "d2"])
            .status
            .success()
    );
    assert!(hubroute(&["device", "delete", "--devices", &devices, "d2"])
        .status
        .success());
    assert!(eventually(WAIT, || router.sink("lifecycle").len() == 2));
    let ops: Vec<_> = router
        .sink("lifecycle")
        .iter()
        .map(|l| app(l, "opType").unwrap())
        .collect();
    assert_eq!(ops, ["createDeviceIdentity", "deleteDeviceIdentity"]);
    let summary = router.stop();
    assert!(summary.contains("accepted into the store"), "{summary}");

    // Stopped: a change made now is found at the next start; versions go on from the store.
    let o = hubroute(&[
        "twin",
        "set",
        "--twin-dir",
        &twins,
        "--device",
        "d1",
        "--tags",
        r#"{"site": null}"#,
    ]);
    assert!(o.status.success());
    let router = Router::start(&dir);
    assert!(
        eventually(WAIT, || router.sink("changes").len() == 2),
        "the change made while stopped: {:?}",
        router.sink("changes")
    );
    assert_eq!(
        body(&router.sink("changes")[1]),
        serde_json::json!({"version": first + 3, "tags": {"site": null}})
    );
    router.stop();
    // And a restart without changes routes nothing again.
    let router = Router::start(&dir);
    let summary = router.stop();
    assert_eq!(router_sink_len(&dir, "changes"), 2, "{summary}");
    assert_eq!(router_sink_len(&dir, "lifecycle"), 2, "{summary}");
}

fn router_sink_len(dir: &Path, name: &str) -> usize {
    lines(&dir.join(format!("{name}.jsonl"))).len()
}

fn pipeline(dir: &Path) -> Pipeline {
    let table = RouteTable::from_json(ROUTES, "twinhub").table.unwrap();
    let mut sinks: std::collections::BTreeMap<String, Box<dyn Sink>> = Default::default();
    for e in ["changes", "lifecycle", "lab", "home"] {
        sinks.insert(
            e.into(),
            Box::new(JsonLinesSink::to_path(dir.join(format!("{e}.jsonl"))).unwrap()),
        );
    }
    let config = PipelineConfig::new(dir.join("store"), "twinhub");
    Pipeline::open(
        config,
        table,
        sinks,
        DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
    )
    .unwrap()
}

#[test]
fn reported_patches_are_routed_merged_versioned_and_kept() {
    let tmp = TempDir::new("twins-reported");
    let dir = tmp.0.clone();
    let p = pipeline(&dir);
    let twins = LiveTwins::open(&dir.join("store"), "twinhub", None).unwrap();
    let now = SystemTime::now();
    let v1 = twins
        .apply_reported(&p, "d1", None, r#"{"temp": 21, "fw": {"v": "1.0"}}"#, now)
        .unwrap();
    let v2 = twins
        .apply_reported(&p, "d1", None, r#"{"fw": {"v": "1.1"}}"#, now)
        .unwrap();
    assert_eq!(v2, v1 + 1);
    let v3 = twins
        .apply_reported(&p, "d1", None, r#"{"temp": null}"#, now)
        .unwrap();
    assert_eq!(v3, v2 + 1);
    // Bad patches change nothing.
    for (patch, code) in [
        ("[1]", codes::PATCH_NOT_OBJECT),
        (r#"{"$version": 1}"#, codes::PATCH_BAD_NAME),
        (r#"{"a.b": 1}"#, codes::PATCH_BAD_NAME),
    ] {
        let e = twins
            .apply_reported(&p, "d1", None, patch, now)
            .unwrap_err();
        assert_eq!(e.code, code);
        assert_eq!(e.http_status(), 400);
    }
    // $twin sees reported values at once: a device message of d1 routed by a condition on them.
    let twin = twins.twin("d1", None).unwrap();
    assert_eq!(twin["properties"]["reported"]["fw"]["v"], "1.1");
    assert!(twin["properties"]["reported"].get("temp").is_none());
    assert_eq!(twin["properties"]["reported"]["$version"], v3);
    let mut m = Message::default();
    m.system_properties
        .insert("connectionDeviceId", Some("d1".into()));
    let path = hubroute::body::BodyPath::parse("properties.reported.fw.v");
    use hubroute::eval::TwinLookup;
    assert_eq!(
        format!("{:?}", twins.twin_value(&m, &path)),
        format!(
            "{:?}",
            hubroute::eval::Value::Str(std::borrow::Cow::Borrowed("1.1"))
        )
    );
    let stats = p.shutdown(Duration::from_secs(10));
    // Two of the three patches name properties.reported.temp (set, then deleted).
    assert_eq!(stats.endpoints.iter().map(|e| e.delivered).sum::<u64>(), 2);
    let changes = lines(&dir.join("changes.jsonl"));
    assert_eq!(changes.len(), 2);
    let b = body(&changes[0]);
    assert_eq!(b["properties"]["reported"]["temp"], 21);
    assert_eq!(b["properties"]["reported"]["$version"], v1);
    assert!(b["properties"]["reported"]["$metadata"]["temp"]["$lastUpdated"].is_string());
    assert_eq!(
        body(&changes[1])["properties"]["reported"]["temp"],
        Value::Null
    );
    drop(twins);

    // Reopened: the versions go on.
    let p = pipeline(&dir);
    let twins = LiveTwins::open(&dir.join("store"), "twinhub", None).unwrap();
    assert_eq!(
        twins.twin("d1", None).unwrap()["properties"]["reported"]["$version"],
        v3
    );
    let v4 = twins
        .apply_reported(&p, "d1", Some("m1"), r#"{"temp": 1}"#, now)
        .unwrap();
    assert_eq!(v4, 2, "a module twin has its own versions");
    let v5 = twins
        .apply_reported(&p, "d1", None, r#"{"temp": 30}"#, now)
        .unwrap();
    assert_eq!(v5, v3 + 1);
    p.shutdown(Duration::from_secs(10));
    let changes = lines(&dir.join("changes.jsonl"));
    assert_eq!(changes.len(), 4);
    assert_eq!(app(&changes[2], "moduleId").as_deref(), Some("m1"));
}

/// A device's reported patch over MQTT, on its own topic through a real Mosquitto: answered
/// 204 with the new `$version` on the device's answer topic, routed as TwinChangeEvents with
/// that version; a bad patch is answered 400 and changes nothing.
#[test]
fn reported_patches_over_mqtt_are_answered_and_routed() {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let tmp = TempDir::new("twins-mqtt");
    let dir = tmp.0.clone();
    let port = free_port();
    let _broker = Server::mosquitto(
        &dir,
        "broker",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        &[port],
    );
    tmp.write("routes.json", ROUTES);
    std::fs::create_dir_all(dir.join("twins")).unwrap();
    tmp.write("devices.json", r#"{"d1": "1"}"#);
    let router = Router::start_on(&dir, &format!("mqtt://127.0.0.1:{port}"));

    let mut o = MqttOptions::new("d1", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut connection) = Client::new(o, 16);
    client
        .subscribe("devices/d1/twin/res/#", QoS::AtMostOnce)
        .unwrap();
    // Ask until answered: the router may not be subscribed yet (each ask is a patch of its own).
    fn ask(
        client: &Client,
        connection: &mut rumqttc::Connection,
        patch: &str,
        rid: &str,
    ) -> (String, Vec<u8>) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no answer to rid {rid}"
            );
            client
                .publish(
                    format!("devices/d1/twin/PATCH/properties/reported/?$rid={rid}"),
                    QoS::AtLeastOnce,
                    false,
                    patch.as_bytes().to_vec(),
                )
                .unwrap();
            let ask_again = std::time::Instant::now() + Duration::from_secs(1);
            while std::time::Instant::now() < ask_again {
                if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
                    connection.recv_timeout(Duration::from_millis(100))
                {
                    if p.topic.contains(&format!("$rid={rid}")) {
                        return (p.topic.clone(), p.payload.to_vec());
                    }
                }
            }
        }
    }
    let mut answer = |patch: &str, rid: &str| ask(&client, &mut connection, patch, rid);
    let (topic, _) = answer(r#"{"temp": 21}"#, "1");
    assert!(
        topic.starts_with("devices/d1/twin/res/204/?$rid=1&$version="),
        "{topic}"
    );
    let version: u64 = topic.rsplit('=').next().unwrap().parse().unwrap();
    assert!(
        eventually(WAIT, || router
            .sink("changes")
            .iter()
            .any(|l| body(l)["properties"]["reported"]["$version"] == version)),
        "a TwinChangeEvents copy with $version {version}: {:?}",
        router.sink("changes")
    );
    let copy = router.sink("changes").pop().unwrap();
    assert_eq!(body(&copy)["properties"]["reported"]["temp"], 21);
    assert_eq!(app(&copy, "deviceId").as_deref(), Some("d1"));

    let (topic, payload) = answer(r#"{"$version": 1}"#, "bad");
    assert_eq!(topic, "devices/d1/twin/res/400/?$rid=bad");
    assert!(String::from_utf8_lossy(&payload).contains(codes::PATCH_BAD_NAME));
    assert!(eventually(WAIT, || router.twin_version("d1").is_some()));

    // Disabled while the router runs: its messages are refused (E0605) and its patches 401.
    let devices = dir.join("devices.json").display().to_string();
    assert!(
        hubroute(&["device", "disable", "--devices", &devices, "d1"])
            .status
            .success()
    );
    let mut i = 0;
    assert!(
        eventually(WAIT, || {
            i += 1;
            client
                .publish(
                    format!("devices/d1/messages/events/$.mid=after-{i}"),
                    QoS::AtLeastOnce,
                    false,
                    b"x".to_vec(),
                )
                .unwrap();
            let _ = connection.recv_timeout(Duration::from_millis(100));
            std::fs::read_to_string(dir.join("dead.jsonl"))
                .unwrap_or_default()
                .contains("E0605")
        }),
        "a disabled device's message is refused"
    );
    let (topic, _) = ask(&client, &mut connection, r#"{"temp": 22}"#, "off");
    assert_eq!(topic, "devices/d1/twin/res/401/?$rid=off");
    let mut child = router.child;
    let _ = child.kill();
    let _ = child.wait();
}

/// hubroute's HTTPS form of a reported patch, `PATCH /devices/{id}/twin/properties/reported`
/// with the device's SAS token (curl as the client): 200 with the new `$version`, routed as
/// TwinChangeEvents; a bad patch 400, another device's token 401.
#[test]
fn reported_patches_over_https_are_authenticated_answered_and_routed() {
    let curl = ["/usr/bin/curl", "/usr/local/bin/curl", "/bin/curl"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("curl is not installed: sudo apt-get install -y curl");
    let tmp = TempDir::new("twins-https");
    let dir = tmp.0.clone();
    tmp.write("routes.json", ROUTES);
    std::fs::create_dir_all(dir.join("twins")).unwrap();
    let devices = dir.join("devices.json").display().to_string();
    for d in ["d1", "d2"] {
        assert!(hubroute(&["device", "create", "--devices", &devices, d])
            .status
            .success());
    }
    let token = |device: &str| {
        let o = hubroute(&[
            "token",
            "--device",
            device,
            "--hub-name",
            "hubroute",
            "--devices",
            &devices,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let port = free_port();
    let router = Router::start_on(&dir, &format!("http://127.0.0.1:{port}"));
    let patch = |token: &str, body: &str| -> Option<(u16, String)> {
        let out = Command::new(&curl)
            .args(["-s", "-X", "PATCH", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Authorization: {token}"))
            .args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ])
            .arg(format!(
                "http://127.0.0.1:{port}/devices/d1/twin/properties/reported?api-version=2020-09-30"
            ))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n')?;
        Some((code.trim().parse().ok()?, body.to_string()))
    };
    let t1 = token("d1");
    let mut answer = None;
    assert!(eventually(WAIT, || {
        answer = patch(&t1, r#"{"temp": 25}"#).filter(|(c, _)| *c != 0);
        answer.is_some()
    }));
    let (code, body_text) = answer.unwrap();
    assert_eq!(code, 200, "{body_text}");
    let version = serde_json::from_str::<Value>(&body_text).unwrap()["$version"]
        .as_u64()
        .unwrap();
    assert!(
        eventually(WAIT, || router
            .sink("changes")
            .iter()
            .any(|l| body(l)["properties"]["reported"]["$version"] == version
                && body(l)["properties"]["reported"]["temp"] == 25)),
        "{:?}",
        router.sink("changes")
    );
    assert_eq!(patch(&t1, r#"{"a.b": 1}"#).unwrap().0, 400);
    assert_eq!(patch(&token("d2"), r#"{"temp": 1}"#).unwrap().0, 401);
    assert_eq!(router.sink("changes").len(), 1, "only the good patch");
    // The registry is watched whatever the input: a device created while an HTTPS router
    // runs is routed as a lifecycle notification.
    let o = hubroute(&["device", "create", "--devices", &devices, "d3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        eventually(WAIT, || router.sink("lifecycle").iter().any(|l| {
            app(l, "opType").as_deref() == Some("createDeviceIdentity")
                && body(l)["deviceId"] == "d3"
        })),
        "a lifecycle copy for d3: {:?}",
        router.sink("lifecycle")
    );
    let mut child = router.child;
    let _ = child.kill();
    let _ = child.wait();
}
