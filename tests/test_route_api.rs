//! `hubroute test` as IoT Hub's REST test-route API and `az iot hub message-route test`: request
//! bodies of `$testall` and `$testnew`, inline flags, the API's response shapes with
//! `--format json`, and twin problems reported as warnings.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};

fn hubroute(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run hubroute")
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// A request file under the target dir, unique per test.
fn request(name: &str, body: Value) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-route-api");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

fn names(v: &Value) -> Vec<String> {
    v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn testall_request_answers_the_matched_routes_as_route_properties() {
    let req = request(
        "testall",
        json!({
            "routingSource": "DeviceMessages",
            "message": {
                "body": "{\"Weather\":{\"Temperature\":60}}",
                "appProperties": {"processingPath": "hot", "severity": "5"},
                // Event Hubs spellings of the system properties.
                "systemProperties": {"content-type": "application/json", "content-encoding": "utf-8",
                                     "iothub-connection-device-id": "d9"}
            },
            "twin": {"tags": {"environment": "lab"}, "properties": {"desired": {}, "reported": {}}}
        }),
    );
    let o = hubroute(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--message",
        req.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success());
    let v = json_out(&o);
    // lab-devices ($twin.tags.environment = 'lab') would match the twin but is disabled.
    assert_eq!(names(&v), ["hot-path", "archive-everything"]);
    let hot = &v["routes"][0]["properties"];
    assert_eq!(hot["source"], "DeviceMessages");
    assert_eq!(hot["endpointNames"], json!(["hotpath"]));
    assert_eq!(hot["isEnabled"], true);
    assert!(hot["condition"]
        .as_str()
        .unwrap()
        .contains("$body.Weather.Temperature > 50"));
}

#[test]
fn the_fallback_is_reported_only_when_it_fires() {
    let o = hubroute(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--source",
        "DeviceLifecycleEvents",
        "--format",
        "json",
    ]);
    assert_eq!(names(&json_out(&o)), Vec::<String>::new());
    let o = hubroute(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--format",
        "json",
        "--app-property",
        "severity=1",
    ]);
    let n = names(&json_out(&o));
    assert!(
        n.contains(&"alerts".to_string()) && !n.contains(&"$fallback".to_string()),
        "{n:?}"
    );
}

#[test]
fn testnew_request_and_route_flag_answer_result_and_details() {
    let req = request(
        "testnew",
        json!({
            "message": {"body": "{}", "appProperties": {"level": "hot"}},
            "route": {"name": "r1", "source": "DeviceMessages",
                      "condition": "level = 'hot' AND $twin.tags.location = 'b1'",
                      "endpointNames": ["somewhere"], "isEnabled": false},
            "twin": {"tags": {"location": "b1"}}
        }),
    );
    let o = hubroute(&[
        "test",
        "--message",
        req.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success());
    assert_eq!(
        json_out(&o),
        json!({"result": "true", "details": {"compilationErrors": []}}),
        "a disabled route is still tested, against the request's twin"
    );

    // Inline flags, one route of a configuration.
    for (severity, want) in [("1", "true"), ("4", "false")] {
        let o = hubroute(&[
            "test",
            "--routes",
            "examples/routing.json",
            "--route",
            "alerts",
            "--app-property",
            &format!("severity={severity}"),
            "--format",
            "json",
        ]);
        assert_eq!(json_out(&o)["result"], want);
    }
    let o = hubroute(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--route",
        "hot-path",
        "--format",
        "json",
    ]);
    assert_eq!(json_out(&o)["result"], "undefined", "no body: undefined");
    let o = hubroute(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--route",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("routes: hot-path"));
}

#[test]
fn testnew_compilation_errors_have_locations() {
    let req = request(
        "testnew-bad",
        json!({"route": {"name": "r", "condition": "a = '1' AND\n (b", "endpointNames": ["e"]}}),
    );
    let o = hubroute(&[
        "test",
        "--message",
        req.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_out(&o);
    assert_eq!(v["result"], "undefined");
    let first = &v["details"]["compilationErrors"][0];
    assert_eq!(first["severity"], "error");
    assert!(
        first["message"].as_str().unwrap().contains("')'"),
        "{first}"
    );
    assert_eq!(first["location"]["start"]["line"], 2);
    let o = hubroute(&["test", "--message", req.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error[E0004]"));
}

#[test]
fn inline_flags_build_the_message_in_any_spelling() {
    let o = hubroute(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--body",
        r#"{"Weather":{"Temperature":70}}"#,
        "--system-property",
        "content-type=application/json",
        "--system-property",
        "ContentEncoding=utf-8",
        "--app-property",
        "processingPath=hot",
        "--expect",
        "hotpath",
        "--expect",
        "coldstorage",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("system properties: contentType=application/json, contentEncoding=utf-8"),
        "{out}"
    );
    let o = hubroute(&[
        "test",
        "--routes",
        "examples/routing.json",
        "--app-property",
        "novalue",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected NAME=VALUE"));
}

#[test]
fn twin_problems_are_warnings_and_explained() {
    let req = request(
        "twin-route",
        json!({"route": {"name": "r", "condition": "$twin.tags.location = 'x'", "endpointNames": ["e"]},
               "message": {"systemProperties": {"connectionDeviceId": "ghost"}}}),
    );
    let req = req.to_str().unwrap();
    let o = hubroute(&[
        "test",
        "--message",
        req,
        "--twin-dir",
        "examples/twins",
        "--explain",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("warning[W0802]: no twin for device 'ghost'"),
        "{out}"
    );
    let o = hubroute(&["test", "--message", req, "--twin-dir", "no/such/dir"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning[W0801]"));
    let o = hubroute(&["test", "--message", req]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning[W0804]"));

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("twins-malformed");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ghost.json"), "{\"tags\": ").unwrap();
    let o = hubroute(&[
        "test",
        "--message",
        req,
        "--twin-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning[W0803]"));
}

#[test]
fn a_request_can_come_on_standard_input() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .args(["test", "--message", "-", "--format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = json!({"message": {"appProperties": {"b": "2", "a": "1"}},
                      "route": {"name": "r", "condition": "a = '1' AND b = '2'", "endpointNames": ["e"]}});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(json_out(&o)["result"], "true");
}
