//! Devices over HTTPS against a real `hubroute run --input http(s)://…` on a loopback port,
//! with curl as the independent client: IoT Hub's "Send Device Event" answered 204 only once
//! stored, with the connection stamped from the SAS token's identity; bad, expired, another
//! device's and a disabled device's tokens 401; a bad charset 400 (dead-lettered); 300 KB 413;
//! a full store 503 and not stored; TLS with an rcgen certificate; keep-alive; tokens from
//! `hubroute token`.
//!
//! Needs `curl` (Debian package curl); without it the tests fail saying so.
#![cfg(feature = "https")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{eventually, free_port, Pki, TempDir};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const HUB: &str = "myhub";
const HOST: &str = "myhub.azure-devices.net";

fn curl() -> PathBuf {
    ["/usr/bin/curl", "/usr/local/bin/curl", "/bin/curl"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect(
            "curl is not installed; these tests send with a real HTTP client. Install it with \
             `sudo apt-get install -y curl` (Debian/Ubuntu)",
        )
}

fn devices(dir: &TempDir) -> PathBuf {
    dir.write(
        "devices.json",
        &format!(
            r#"{{
            "d1": {{"deviceId": "d1", "generationId": "638000000000000001", "status": "enabled",
                    "authentication": {{"type": "sas",
                        "symmetricKey": {{"primaryKey": "{KEY}", "secondaryKey": "{KEY2}"}}}}}},
            "d2": {{"status": "enabled", "authentication": {{"symmetricKey": {{"primaryKey": "{KEY2}"}}}}}},
            "off": {{"status": "disabled", "authentication": {{"symmetricKey": {{"primaryKey": "{KEY}"}}}}}},
            "legacy": "6369"
        }}"#
        ),
    )
}

const ROUTES: &str = r#"{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true",
    "endpointNames": ["archive"], "isEnabled": true}],
    "endpoints": {"serviceBusQueues": [{"name": "archive"}]}}"#;

/// A `hubroute run` serving devices, killed on drop; its standard error is kept in a file.
struct Router {
    child: Option<Child>,
    stderr: PathBuf,
    port: u16,
}

impl Router {
    fn start(dir: &TempDir, input: &str, port: u16, extra: &[&str]) -> Router {
        let routes = dir.write("routes.json", ROUTES);
        let stderr = dir.0.join(format!("router-{port}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubroute"));
        cmd.arg("run")
            .arg("--routes")
            .arg(&routes)
            .args(["--hub-name", HUB])
            .arg("--devices")
            .arg(devices(dir))
            .arg("--input")
            .arg(input)
            .arg("--store")
            .arg(dir.0.join(format!("store-{port}")))
            .arg("--dead-letter")
            .arg(dir.0.join("dead.jsonl"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if !extra.iter().any(|a| a.starts_with("archive=")) {
            cmd.arg("--sink").arg(format!(
                "archive=file:{}",
                dir.0.join("out.jsonl").display()
            ));
        }
        let child = cmd.spawn().unwrap();
        let router = Router {
            child: Some(child),
            stderr,
            port,
        };
        let up = eventually(Duration::from_secs(30), || {
            router.log().contains("listening for devices")
        });
        assert!(up, "the router did not start: {}", router.log());
        router
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM and wait; the router's report. It must exit 0.
    fn stop(&mut self) -> String {
        let (code, log) = self.stop_with_code();
        assert_eq!(code, Some(0), "router failed: {log}");
        log
    }

    /// SIGTERM and wait; the exit code and the report.
    fn stop_with_code(&mut self) -> (Option<i32>, String) {
        let mut code = None;
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            code = c.wait().unwrap().code();
        }
        (code, self.log())
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

fn token(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .arg("token")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The token `hubroute token` mints for a device of the test registry, valid for an hour.
fn device_token(dir: &TempDir, device: &str) -> String {
    token(&[
        "--device",
        device,
        "--hub-name",
        HUB,
        "--devices",
        dir.0.join("devices.json").to_str().unwrap(),
    ])
}

/// One request with curl: (status, body).
fn post(url: &str, token: &str, headers: &[&str], body: &Path, extra: &[&str]) -> (u16, String) {
    let mut cmd = Command::new(curl());
    cmd.args(["-s", "-S", "-X", "POST", "-w", "\n%{http_code}"])
        .arg("-H")
        .arg(format!("Authorization: {token}"));
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    let out = cmd
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl: {text} {}", String::from_utf8_lossy(&out.stderr))),
        body.to_string(),
    )
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn devices_send_over_http_and_get_iot_hubs_answers() {
    let dir = TempDir::new("https");
    let port = free_port();
    let mut router = Router::start(&dir, &format!("http://127.0.0.1:{port}"), port, &[]);
    let base = format!("http://127.0.0.1:{}", router.port);
    let events =
        |device: &str| format!("{base}/devices/{device}/messages/events?api-version=2020-03-13");
    let json = dir.write("body.json", r#"{"temperature": 72}"#);
    let t1 = device_token(&dir, "d1");

    // Valid, with properties and spoofing attempts: 204.
    let (code, body) = post(
        &events("d1"),
        &t1,
        &[
            "iothub-app-level: hot",
            "iothub-messageid: msg-1",
            "iothub-correlationid: corr-1",
            "iothub-contenttype: application/json",
            "iothub-contentencoding: utf-8",
            "iothub-app-iothub-connection-device-id: victim",
            "iothub-connection-device-id: victim",
            "iothub-app-$connectionDeviceId: victim",
        ],
        &json,
        &[],
    );
    assert_eq!((code, body.as_str()), (204, ""));
    // A module of d1, with the device's token (it covers its modules).
    let module_url = format!("{base}/devices/d1/modules/m1/messages/events");
    let (code, _) = post(&module_url, &t1, &["iothub-messageid: msg-2"], &json, &[]);
    assert_eq!(code, 204);
    // The secondary key signs too.
    let secondary = token(&[
        "--device",
        "d1",
        "--hub-host",
        HOST,
        "--devices",
        dir.0.join("devices.json").to_str().unwrap(),
        "--secondary",
    ]);
    let (code, _) = post(
        &events("d1"),
        &secondary,
        &["iothub-messageid: msg-3"],
        &json,
        &[],
    );
    assert_eq!(code, 204);

    // 401s, each with the hub's body.
    let expired = token(&[
        "--device",
        "d1",
        "--hub-host",
        HOST,
        "--key",
        KEY,
        "--expiry",
        "1000",
    ]);
    let wrong_key = token(&[
        "--device",
        "d1",
        "--hub-host",
        HOST,
        "--key",
        "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=",
    ]);
    let other_hub = token(&["--device", "d1", "--hub-name", "elsewhere", "--key", KEY]);
    let d2 = device_token(&dir, "d2");
    let off = token(&["--device", "off", "--hub-host", HOST, "--key", KEY]);
    let legacy = token(&["--device", "legacy", "--hub-host", HOST, "--key", KEY]);
    let unknown = token(&["--device", "ghost", "--hub-host", HOST, "--key", KEY]);
    for (what, url, tok) in [
        (
            "garbage",
            events("d1"),
            "SharedAccessSignature nonsense".to_string(),
        ),
        ("no token", events("d1"), String::new()),
        ("expired", events("d1"), expired),
        ("wrong key", events("d1"), wrong_key),
        ("other hub", events("d1"), other_hub),
        ("another device's token", events("d1"), d2),
        ("disabled", events("off"), off),
        ("no keys", events("legacy"), legacy),
        ("unknown", events("ghost"), unknown),
    ] {
        let (code, body) = post(&url, &tok, &[], &json, &[]);
        assert_eq!(code, 401, "{what}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["Message"], "ErrorCode:IotHubUnauthorizedAccess;Unauthorized",
            "{what}"
        );
        assert!(v["ExceptionMessage"]
            .as_str()
            .unwrap()
            .starts_with("Tracking ID:"));
    }

    // 400: the HTTPS charset (a space in a property value); dead-lettered.
    let (code, body) = post(
        &events("d1"),
        &t1,
        &["iothub-app-note: two words"],
        &json,
        &[],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("ErrorCode:ArgumentInvalid"), "{body}");
    // 413: 300 KB.
    let big = dir.write("big.bin", &"x".repeat(300 * 1024));
    let (code, body) = post(&events("d1"), &t1, &[], &big, &[]);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("ErrorCode:MessageTooLarge"), "{body}");
    // 404 and 405.
    let (code, _) = post(
        &format!("{base}/devices/d1/messages/devicebound"),
        &t1,
        &[],
        &json,
        &[],
    );
    assert_eq!(code, 404);
    let (code, _) = post(&events("d1"), &t1, &[], &json, &["-X", "GET"]);
    assert_eq!(code, 405);

    // Keep-alive: two requests in one curl, one connection.
    let out = Command::new(curl())
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
        ])
        .arg("-H")
        .arg(format!("Authorization: {t1}"))
        .arg("--data-binary")
        .arg(format!("@{}", json.display()))
        .arg(events("d1"))
        .arg(events("d1"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204 1\n204 0\n");

    let report = router.stop();
    let out = lines(&dir.0.join("out.jsonl"));
    assert_eq!(out.len(), 5, "{report}");
    let first = &out[0];
    let sys = &first["SystemProperties"];
    assert_eq!(sys["messageId"], "msg-1");
    assert_eq!(sys["correlationId"], "corr-1");
    assert_eq!(sys["contentType"], "application/json");
    assert_eq!(sys["connectionDeviceId"], "d1");
    assert_eq!(sys["connectionDeviceGenerationId"], "638000000000000001");
    assert_eq!(
        sys["connectionAuthMethod"],
        r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#
    );
    assert!(sys.get("connectionModuleId").is_none());
    assert_eq!(
        first["Properties"],
        serde_json::json!({"level": "hot"}),
        "spoofed properties are dropped"
    );
    let module = &out[1]["SystemProperties"];
    assert_eq!(module["connectionModuleId"], "m1");
    assert!(module["connectionAuthMethod"]
        .as_str()
        .unwrap()
        .contains(r#""scope":"module""#));
    let dead = lines(&dir.0.join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].to_string().contains("E0321"), "{:?}", dead[0]);
    assert!(
        report.contains("answered 204 (durably accepted) 5,"),
        "{report}"
    );
    // The router's log names the failed checks, never a token.
    assert!(
        report.contains("E1011") && report.contains("E1013"),
        "{report}"
    );
    assert!(
        !report.contains(t1.split("sig=").nth(1).unwrap()),
        "{report}"
    );
}

#[test]
fn https_with_a_certificate_from_files() {
    let dir = TempDir::new("https-tls");
    let pki = Pki::new(&dir.0, "https");
    let port = free_port();
    let url = format!(
        "https://127.0.0.1:{port}?cert={}&key={}",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let mut router = Router::start(&dir, &url, port, &[]);
    let json = dir.write("body.json", r#"{"n": 1}"#);
    let t = device_token(&dir, "d2");
    let ca = format!("{}", pki.ca.display());
    let (code, body) = post(
        &format!("https://localhost:{port}/devices/d2/messages/events?api-version=2020-03-13"),
        &t,
        &["iothub-messageid: tls-1"],
        &json,
        &["--cacert", &ca],
    );
    assert_eq!(code, 204, "{body}");
    // Plain HTTP to the TLS port is refused by the handshake, not served.
    let out = Command::new(curl())
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "http://127.0.0.1:{port}/devices/d2/messages/events"
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000");
    let report = router.stop();
    let out = lines(&dir.0.join("out.jsonl"));
    assert_eq!(out.len(), 1, "{report}");
    assert_eq!(out[0]["SystemProperties"]["messageId"], "tls-1");
    assert_eq!(out[0]["SystemProperties"]["connectionDeviceId"], "d2");
}

#[test]
fn a_full_store_is_503_and_the_message_is_not_stored() {
    let dir = TempDir::new("https-full");
    let port = free_port();
    // An endpoint that cannot deliver (no broker on that port) and a store that one message
    // fills: the first is stored, the next refused until there is room.
    let dead_port = free_port();
    let sink = format!("archive=mqtt://127.0.0.1:{dead_port}/t");
    let mut router = Router::start(
        &dir,
        &format!("http://127.0.0.1:{port}"),
        port,
        &[
            "--sink",
            &sink,
            "--store-max-bytes",
            "100",
            "--drain-timeout",
            "1s",
        ],
    );
    let json = dir.write("body.json", r#"{"n": 1}"#);
    let t = device_token(&dir, "d1");
    let url = format!("http://127.0.0.1:{port}/devices/d1/messages/events");
    let (code, _) = post(&url, &t, &["iothub-messageid: kept"], &json, &[]);
    assert_eq!(code, 204);
    let (code, body) = post(
        &url,
        &t,
        &["iothub-messageid: refused"],
        &json,
        &["-D", "-"],
    );
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("ErrorCode:ServerBusy"), "{body}");
    assert!(
        body.to_ascii_lowercase().contains("retry-after: 1"),
        "{body}"
    );
    // Exits 1: a copy is left in the store for the next run (the endpoint never came up).
    let (_, report) = router.stop_with_code();
    assert!(report.contains("E1023"), "{report}");
    assert!(
        report.contains("answered 204 (durably accepted) 1,"),
        "{report}"
    );
    assert!(
        report.contains("accepted into the store: 1\n") && report.contains("read 1 messages"),
        "only the acknowledged message is read and stored: {report}"
    );
}

#[test]
fn token_command_matches_az() {
    // az iot hub generate-sas-token's algorithm, computed with Python's quote_plus and hmac.
    let t = token(&[
        "--device",
        "d1",
        "--hub-host",
        "myhub.azure-devices.net",
        "--key",
        KEY,
        "--expiry",
        "1700000000",
    ]);
    assert_eq!(
        t,
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fd1\
         &sig=zqpFKgQp%2Bpod6JOmnau2uE4tlCSx4HcXQv0dQaMzk8k%3D&se=1700000000"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args([
            "token",
            "--device",
            "d1",
            "--hub-name",
            "h",
            "--key",
            "s3cret!",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a base64") && !err.contains("s3cret"),
        "{err}"
    );
}

#[test]
fn a_device_disabled_while_the_router_runs_is_refused() {
    let dir = TempDir::new("https-disable");
    let port = free_port();
    let mut router = Router::start(&dir, &format!("http://127.0.0.1:{port}"), port, &[]);
    let json = dir.write("body.json", r#"{"n": 1}"#);
    let t = device_token(&dir, "d2");
    let url = format!("http://127.0.0.1:{port}/devices/d2/messages/events");
    assert_eq!(post(&url, &t, &[], &json, &[]).0, 204);
    // As `hubroute device disable d2` would: the registry file rewritten.
    let path = dir.0.join("devices.json");
    let mut registry = hubroute::registry::Registry::load(&path).unwrap();
    assert!(registry.set_status("d2", hubroute::registry::DeviceStatus::Disabled, None));
    registry.save(&path).unwrap();
    let refused = eventually(Duration::from_secs(20), || {
        post(&url, &t, &["iothub-messageid: late"], &json, &[]).0 == 401
    });
    assert!(refused, "{}", router.log());
    let report = router.stop();
    assert!(report.contains("device registry"), "{report}");
    assert!(report.contains("E1015"), "{report}");
}
