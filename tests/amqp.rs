//! Devices over AMQP 1.0 into `hubroute run --input amqp://…`, driven by an independent client:
//! Apache Qpid Proton's Python binding (tests/amqp/device.py, `pip install
//! python-qpid-proton`). Tokens are minted with the registry's SAS code, as `hubroute token`
//! mints them. Each test starts its own router on a free loopback port.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{eventually, free_port, repo, Pki, TempDir};

const HOST: &str = "hubroute.azure-devices.net";
const KEY_D1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_D2: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";
const OTHER_KEY: &str = "YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn8=";

fn registry() -> String {
    let device = |key: &str, status: &str| {
        serde_json::json!({
            "generationId": "6370",
            "status": status,
            "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": OTHER_KEY}}
        })
    };
    serde_json::json!({
        "d1": device(KEY_D1, "enabled"),
        "d2": device(KEY_D2, "enabled"),
        "off": device(KEY_D2, "disabled"),
    })
    .to_string()
}

fn token(device: &str, key: &str, valid_for: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    hubroute::registry::sas::mint(
        &format!("{HOST}/devices/{device}"),
        key,
        (now + valid_for) as u64,
        None,
    )
    .unwrap()
}

/// A router on an AMQP input, stopped with SIGTERM on `stop` (killed on drop).
struct Router {
    child: Option<Child>,
    log: PathBuf,
    url: String,
    dir: PathBuf,
}

impl Router {
    fn start(dir: &Path, tls: Option<&Pki>) -> Router {
        let sink = format!("archive=file:{}", dir.join("archive.jsonl").display());
        Router::start_with(dir, tls, &sink, &[])
    }

    fn start_with(dir: &Path, tls: Option<&Pki>, sink: &str, extra: &[&str]) -> Router {
        let port = free_port();
        let routes = dir.join("routes.json");
        std::fs::write(
            &routes,
            r#"{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true",
                "endpointNames": ["archive"], "isEnabled": true}],
                "endpoints": {"serviceBusQueues": [{"name": "archive"}]}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("devices.json"), registry()).unwrap();
        let (input, url) = match tls {
            Some(pki) => (
                format!(
                    "amqps://127.0.0.1:{port}?cert={}&key={}",
                    pki.server_cert.display(),
                    pki.server_key.display()
                ),
                format!("amqps://localhost:{port}"),
            ),
            None => (
                format!("amqp://127.0.0.1:{port}"),
                format!("amqp://127.0.0.1:{port}"),
            ),
        };
        let log = dir.join("router.log");
        let child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .args(["run", "--routes"])
            .arg(&routes)
            .args(["--input", &input, "--devices"])
            .arg(dir.join("devices.json"))
            .args(["--sink", sink])
            .args(extra)
            .arg("--dead-letter")
            .arg(dir.join("dead.jsonl"))
            .arg("--store")
            .arg(dir.join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start hubroute");
        let router = Router {
            child: Some(child),
            log,
            url,
            dir: dir.to_path_buf(),
        };
        assert!(
            eventually(Duration::from_secs(30), || router
                .log_text()
                .contains("listening for AMQP devices")),
            "the router did not listen: {}",
            router.log_text()
        );
        router
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to settle or flush.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, wait, and the router's report.
    fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let status = c.wait().unwrap();
            assert!(
                status.success(),
                "router exited with {status}: {}",
                self.log_text()
            );
        }
        self.log_text()
    }

    fn lines(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs tests/amqp/device.py with `args`; its JSON lines.
fn device(router: &Router, ca: Option<&Path>, args: &[&str]) -> Vec<Value> {
    let python = support::find_program("python3");
    let probe = Command::new(&python)
        .args(["-c", "import proton"])
        .output()
        .expect("run python3");
    assert!(
        probe.status.success(),
        "the AMQP tests need Apache Qpid Proton's Python binding: \
         python3 -m pip install python-qpid-proton==0.40.0"
    );
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("tests/amqp/device.py"))
        .args(["--url", &router.url]);
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    let out = cmd.args(args).output().expect("run device.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "device.py failed: {stdout}\n{}\nrouter: {}",
        String::from_utf8_lossy(&out.stderr),
        router.log_text()
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn states(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.get("state").and_then(Value::as_str))
        .collect()
}

fn cbs(lines: &[Value]) -> i64 {
    lines
        .iter()
        .find_map(|l| l.get("cbs").and_then(Value::as_i64))
        .expect("a CBS answer")
}

fn detached(lines: &[Value]) -> Option<(&str, &str)> {
    lines.iter().find_map(|l| {
        (l.get("link")? == "detached").then(|| {
            (
                l["condition"].as_str().unwrap_or(""),
                l["description"].as_str().unwrap_or(""),
            )
        })
    })
}

#[test]
fn amqp_messages_are_accepted_once_stored_and_stamped_from_the_cbs_token() {
    let dir = TempDir::new("amqp-ok");
    let mut router = Router::start(&dir.0, None);
    let t = token("d1", KEY_D1, 3600);
    let audience = format!("{HOST}/devices/d1");
    let lines = device(
        &router,
        None,
        &[
            "--token",
            &t,
            "--audience",
            &audience,
            "--device",
            "d1",
            "--count",
            "20",
            "--window",
            "5",
            "--props",
            r#"{"level": "hot", "n": 7, "$connectionDeviceId": "victim", "iothub-connection-auth-method": "x"}"#,
            "--content-type",
            "application/json",
            "--content-encoding",
            "utf-8",
            "--user-id",
            "u1",
            "--correlation-id",
            "c-1",
            "--creation-time",
            "1700000000.5",
        ],
    );
    assert_eq!(cbs(&lines), 200, "{lines:?}");
    assert_eq!(
        lines.iter().find_map(|l| l.get("correlation")),
        Some(&Value::from("put-token-1")),
        "the CBS answer correlates with the request's message id"
    );
    assert_eq!(states(&lines), vec!["ACCEPTED"; 20], "{lines:?}");
    // Accepted means in the store: every one reaches the endpoint, stamped from the link.
    let report = router.stop();
    assert!(report.contains("accepted into the store: 20"), "{report}");
    let copies = router.lines("archive.jsonl");
    assert_eq!(copies.len(), 20, "{report}");
    let mut ids: Vec<&str> = copies
        .iter()
        .map(|c| c["SystemProperties"]["messageId"].as_str().unwrap())
        .collect();
    ids.sort_by_key(|id| id[2..].parse::<u32>().unwrap());
    assert_eq!(ids, (0..20).map(|i| format!("m-{i}")).collect::<Vec<_>>());
    let c = &copies[0];
    let sys = &c["SystemProperties"];
    assert_eq!(sys["connectionDeviceId"], "d1");
    assert_eq!(sys["connectionDeviceGenerationId"], "6370");
    assert!(sys["connectionAuthMethod"]
        .as_str()
        .unwrap()
        .contains(r#""type":"sas""#));
    assert_eq!(sys["contentType"], "application/json");
    assert_eq!(sys["contentEncoding"], "utf-8");
    assert_eq!(sys["userId"], "u1");
    assert_eq!(sys["correlationId"], "c-1");
    assert_eq!(
        sys["iothub-creation-time-utc"],
        "2023-11-14T22:13:20.5000000Z"
    );
    assert_eq!(c["Properties"]["level"], "hot");
    assert_eq!(c["Properties"]["n"], "7");
    assert!(c["Properties"].get("$connectionDeviceId").is_none(), "{c}");
    assert!(
        c["Properties"]
            .get("iothub-connection-auth-method")
            .is_none(),
        "{c}"
    );
    assert_eq!(c["Body"]["temperature"], 21.5);
    assert!(!report.contains(&t), "the token must never be logged");
}

#[test]
fn amqp_refuses_bad_tokens_other_devices_and_oversized_messages() {
    let dir = TempDir::new("amqp-refuse");
    let mut router = Router::start(&dir.0, None);
    let audience = format!("{HOST}/devices/d1");
    let good = token("d1", KEY_D1, 3600);

    // Signed with a key d1 does not have: 401, and its events link is detached.
    let forged = token("d1", KEY_D2, 3600);
    let lines = device(
        &router,
        None,
        &[
            "--token",
            &forged,
            "--audience",
            &audience,
            "--device",
            "d1",
        ],
    );
    assert_eq!(cbs(&lines), 401, "{lines:?}");
    let (condition, _) = detached(&lines).expect("link detached");
    assert_eq!(condition, "amqp:unauthorized-access");

    // Expired, and a disabled device: 401.
    let expired = token("d1", KEY_D1, -60);
    let lines = device(
        &router,
        None,
        &[
            "--token",
            &expired,
            "--audience",
            &audience,
            "--device",
            "d1",
        ],
    );
    assert_eq!(cbs(&lines), 401, "{lines:?}");
    let off = token("off", KEY_D2, 3600);
    let off_audience = format!("{HOST}/devices/off");
    let lines = device(
        &router,
        None,
        &[
            "--token",
            &off,
            "--audience",
            &off_audience,
            "--device",
            "off",
        ],
    );
    assert_eq!(cbs(&lines), 401, "{lines:?}");

    // d1's valid token does not let the connection send as d2.
    let lines = device(
        &router,
        None,
        &["--token", &good, "--audience", &audience, "--device", "d2"],
    );
    assert_eq!(cbs(&lines), 200, "{lines:?}");
    let (condition, description) = detached(&lines).expect("link detached");
    assert_eq!(condition, "amqp:unauthorized-access");
    assert!(description.starts_with("E0681"), "{description}");

    // Over 256 KB: rejected with IoT Hub's condition, and in the dead letter.
    let lines = device(
        &router,
        None,
        &[
            "--token",
            &good,
            "--audience",
            &audience,
            "--device",
            "d1",
            "--body-size",
            "300000",
        ],
    );
    assert_eq!(states(&lines), ["REJECTED"], "{lines:?}");
    assert_eq!(lines[1]["condition"], "amqp:link:message-size-exceeded");
    // An invalid message id: rejected as an argument error.
    let long_id = "x".repeat(200);
    let lines = device(
        &router,
        None,
        &[
            "--token",
            &good,
            "--audience",
            &audience,
            "--device",
            "d1",
            "--message-id",
            &long_id,
        ],
    );
    assert_eq!(states(&lines), ["REJECTED"], "{lines:?}");
    assert_eq!(lines[1]["condition"], "com.microsoft:argument-error");

    // SASL PLAIN with d2's token as password, no CBS: accepted as d2.
    let d2 = token("d2", KEY_D2, 3600);
    let lines = device(
        &router,
        None,
        &[
            "--mechs",
            "PLAIN",
            "--user",
            "d2@sas.hubroute",
            "--password",
            &d2,
            "--device",
            "d2",
        ],
    );
    assert_eq!(states(&lines), ["ACCEPTED"], "{lines:?}");

    // d2 disabled in the registry file while the router runs: its next token is refused.
    let mut devices: Value = serde_json::from_str(&registry()).unwrap();
    devices["d2"]["status"] = "disabled".into();
    std::fs::write(dir.0.join("devices.json"), devices.to_string()).unwrap();
    let d2_audience = format!("{HOST}/devices/d2");
    // The file is looked at again at most once a second: ask until the answer changes, sending
    // nothing (`--count 0`), so that no message lands before the change is seen (the copies are
    // counted below).
    assert!(
        eventually(Duration::from_secs(20), || {
            let lines = device(
                &router,
                None,
                &[
                    "--token",
                    &d2,
                    "--audience",
                    &d2_audience,
                    "--device",
                    "d2",
                    "--count",
                    "0",
                ],
            );
            cbs(&lines) == 401
        }),
        "a device disabled in the registry file still got its token accepted: {}",
        router.log_text()
    );

    let report = router.stop();
    let dead = router.lines("dead.jsonl");
    assert_eq!(dead.len(), 2, "{report}");
    assert_eq!(dead[0]["code"], "E0603");
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("E0324"),
        "{}",
        dead[0]
    );
    assert_eq!(dead[0]["input"]["connectionDeviceId"], "d1");
    assert_eq!(
        dead[0]["message"]["bodyBase64"].as_str().unwrap().len(),
        400_000
    );
    assert!(
        dead[1]["reason"].as_str().unwrap().contains("E0322"),
        "{}",
        dead[1]
    );
    let copies = router.lines("archive.jsonl");
    assert_eq!(copies.len(), 1, "{report}");
    assert_eq!(copies[0]["SystemProperties"]["connectionDeviceId"], "d2");
    for secret in [&good, &forged, &expired, &d2] {
        assert!(!report.contains(secret.as_str()), "a token was logged");
    }
}

#[test]
fn amqps_takes_devices_over_tls_with_certificate_files() {
    let dir = TempDir::new("amqps");
    let pki = Pki::new(&dir.0, "amqp");
    let mut router = Router::start(&dir.0, Some(&pki));
    let t = token("d1", KEY_D1, 3600);
    let audience = format!("{HOST}/devices/d1");
    let lines = device(
        &router,
        Some(&pki.ca),
        &[
            "--token",
            &t,
            "--audience",
            &audience,
            "--device",
            "d1",
            "--count",
            "3",
            "--window",
            "3",
        ],
    );
    assert_eq!(cbs(&lines), 200, "{lines:?}");
    assert_eq!(states(&lines), vec!["ACCEPTED"; 3], "{lines:?}");
    router.stop();
    assert_eq!(router.lines("archive.jsonl").len(), 3);
}

/// A full store stops the device (no settlement, so no new credit) instead of dropping: with
/// an endpoint that cannot deliver and a tiny store, the device stalls with only `accepted`
/// outcomes; killed and restarted with a working endpoint, the router delivers every message
/// it had accepted.
#[test]
fn a_full_store_stops_amqp_devices_and_loses_nothing_it_accepted() {
    let dir = TempDir::new("amqp-full");
    let dead_broker = format!("archive=mqtt://127.0.0.1:{}/out", free_port());
    let mut router = Router::start_with(
        &dir.0,
        None,
        &dead_broker,
        &["--store-max-bytes", "3000", "--max-in-flight", "4"],
    );
    let t = token("d1", KEY_D1, 3600);
    let audience = format!("{HOST}/devices/d1");
    let lines = device(
        &router,
        None,
        &[
            "--token",
            &t,
            "--audience",
            &audience,
            "--device",
            "d1",
            "--count",
            "200",
            "--window",
            "50",
            "--stall-after",
            "3",
        ],
    );
    let stall = lines
        .iter()
        .find(|l| l.get("stalled").is_some())
        .unwrap_or_else(|| panic!("the device was not stopped: {lines:?}"));
    let accepted = states(&lines);
    assert!(!accepted.is_empty() && accepted.len() < 200, "{lines:?}");
    assert!(accepted.iter().all(|s| *s == "ACCEPTED"), "{lines:?}");
    assert_eq!(stall["settled"].as_u64().unwrap() as usize, accepted.len());
    assert!(
        router.log_text().contains("is full"),
        "{}",
        router.log_text()
    );
    router.kill();

    let sink = format!("archive=file:{}", dir.0.join("archive.jsonl").display());
    let mut router = Router::start_with(&dir.0, None, &sink, &["--exit-when-idle", "2s"]);
    assert!(
        eventually(Duration::from_secs(30), || router
            .lines("archive.jsonl")
            .len()
            >= accepted.len()),
        "{}",
        router.log_text()
    );
    router.stop();
    let delivered: std::collections::BTreeSet<String> = router
        .lines("archive.jsonl")
        .iter()
        .map(|c| {
            c["SystemProperties"]["messageId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for i in 0..accepted.len() {
        assert!(
            delivered.contains(&format!("m-{i}")),
            "m-{i} was accepted and lost"
        );
    }
}
