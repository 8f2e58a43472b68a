//! Storage output read back: what `StorageSink` writes in each encoding, and what a JSON Lines
//! sink writes, comes back through `sink::replay::Replay` (and `hubroute inspect`) as the
//! messages that were routed; corrupt files and records are reported with codes and reading
//! goes on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use hubroute::message::Message;
use hubroute::sink::replay::{Replay, UNREADABLE_FILE, UNREADABLE_RECORD};
use hubroute::sink::{
    format_enqueued_time, Envelope, ManualClock, Sink, StorageConfig, StorageEncoding, StorageSink,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubroute-replay-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Messages covering the body forms: embedded JSON, JSON that is not utf-8 encoded (base64),
/// binary, empty; null property values become "" as the Storage record writes them.
fn messages() -> Vec<Message> {
    let json = |body: &str, enc: &str| {
        Message::from_json_str(&format!(
            r#"{{"systemProperties": {{"contentType": "application/json", "contentEncoding": "{enc}",
                 "connectionDeviceId": "d1", "messageId": "m"}},
                "appProperties": {{"b": "2", "a": "1"}}, "body": {}}}"#,
            serde_json::to_string(body).unwrap()
        ))
        .unwrap()
    };
    let mut binary = Message {
        body: vec![0, 159, 255, 10],
        ..Message::default()
    };
    binary.app_properties.insert("flag", Some(String::new()));
    vec![
        json(r#"{"Weather":{"Temperature":50,"x":[1,2.50]}}"#, "utf-8"),
        json(r#""just a string""#, "utf-8"),
        json(r#"{"a":1}"#, "utf-16"),
        binary,
        Message::default(),
    ]
}

fn write_storage(dir: &Path, encoding: StorageEncoding) -> Vec<Envelope> {
    let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut config = StorageConfig::new(dir.join("container"), "hub");
    config.encoding = encoding;
    let mut sink = StorageSink::with_clock(config, Box::new(ManualClock::new(t0))).unwrap();
    let batch: Vec<Envelope> = messages()
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let mut e = Envelope::new("cold", m);
            e.enqueued_time = t0 + Duration::from_millis(i as u64);
            e
        })
        .collect();
    sink.write_batch(&batch).unwrap();
    sink.flush().unwrap();
    batch
}

/// The message a record should read back as: enqueuedTime stamped, and (Avro maps being
/// unordered) compared as sorted property lists.
fn expected(e: &Envelope) -> Message {
    let mut m = e.message.clone();
    m.system_properties
        .insert("enqueuedTime", Some(format_enqueued_time(e.enqueued_time)));
    m
}

fn sorted(p: &hubroute::message::Properties) -> Vec<(String, Option<String>)> {
    let mut v: Vec<_> = p
        .iter()
        .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
        .collect();
    v.sort();
    v
}

#[test]
fn every_storage_encoding_reads_back_as_the_routed_messages() {
    for encoding in [
        StorageEncoding::Avro,
        StorageEncoding::AvroDeflate,
        StorageEncoding::Json,
    ] {
        let dir = TempDir::new("enc");
        let written = write_storage(dir.path(), encoding);
        let read: Vec<_> = Replay::open(dir.path())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("{encoding:?}: {e}"));
        assert_eq!(read.len(), written.len(), "{encoding:?}");
        for (r, e) in read.iter().zip(&written) {
            let want = expected(e);
            assert_eq!(r.message.body, want.body, "{encoding:?} body");
            assert_eq!(
                sorted(&r.message.system_properties),
                sorted(&want.system_properties),
                "{encoding:?}"
            );
            assert_eq!(
                sorted(&r.message.app_properties),
                sorted(&want.app_properties),
                "{encoding:?}"
            );
            assert_eq!(r.enqueued_time_utc, format_enqueued_time(e.enqueued_time));
        }
        if encoding == StorageEncoding::Json {
            // JSON keeps the order properties were written in.
            let names: Vec<_> = read[0]
                .message
                .app_properties
                .iter()
                .map(|(n, _)| n)
                .collect();
            assert_eq!(names, ["b", "a"]);
        }
        assert_eq!(read[2].record, 3, "records are numbered from 1");
    }
}

#[test]
fn unreadable_files_and_records_are_reported_and_reading_goes_on() {
    let dir = TempDir::new("bad");
    write_storage(dir.path(), StorageEncoding::Json);
    let good = hubroute::sink::replay::record_files(dir.path()).unwrap();
    assert_eq!(good.len(), 1);
    // A record file with one bad line between two good ones, and a file that is not Avro.
    let text = std::fs::read_to_string(&good[0]).unwrap();
    let first = text.lines().next().unwrap();
    std::fs::write(
        dir.path().join("a-mixed.json"),
        format!("{first}\n{{\"EnqueuedTimeUtc\": 5}}\n\n{first}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b-garbage.avro"), b"not avro at all").unwrap();
    let items: Vec<_> = Replay::open(dir.path()).collect();
    let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(items.len(), 5 + 2 + 2, "{items:?}");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].code, UNREADABLE_RECORD);
    assert_eq!(errors[0].record, Some(2));
    assert!(
        errors[0]
            .to_string()
            .contains("a-mixed.json record 2: [E0521]"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1].code, UNREADABLE_FILE);
    assert_eq!(errors[1].record, None);

    let missing: Vec<_> = Replay::open(&dir.path().join("nope")).collect();
    assert!(matches!(&missing[..], [Err(e)] if e.code == UNREADABLE_FILE));
}

#[test]
fn inspect_prints_message_json_that_run_reads() {
    let dir = TempDir::new("inspect");
    let written = write_storage(dir.path(), StorageEncoding::AvroDeflate);
    let out = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .arg("inspect")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), written.len());
    for (line, e) in lines.iter().zip(&written) {
        let m = Message::from_json_str(line).unwrap();
        assert_eq!(m.body, e.message.body);
    }

    std::fs::write(dir.path().join("zz.avro"), b"junk").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hubroute"))
        .arg("inspect")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        written.len()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("[E0520]"));
}

/// `run --input DIR` routes what a Storage endpoint wrote again: every record reaches the
/// endpoint its route names, with its body and properties, and a corrupt file is an invalid
/// input with its code while the others are routed.
#[test]
fn run_routes_stored_records_again() {
    for encoding in [StorageEncoding::Avro, StorageEncoding::Json] {
        let dir = TempDir::new("rerun");
        let stored = dir.path().join("stored");
        std::fs::create_dir_all(&stored).unwrap();
        let written = write_storage(&stored, encoding);
        std::fs::write(stored.join("zz.avro"), b"junk").unwrap();
        let routes = dir.path().join("routes.json");
        std::fs::write(
            &routes,
            r#"{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true",
                "endpointNames": ["again"], "isEnabled": true}],
                "endpoints": {"eventHubs": [{"name": "again"}]}}"#,
        )
        .unwrap();
        let again = dir.path().join("again.jsonl");
        let out = Command::new(env!("CARGO_BIN_EXE_hubroute"))
            .arg("run")
            .arg("--routes")
            .arg(&routes)
            .arg("--input")
            .arg(&stored)
            .arg("--sink")
            .arg(format!("again=file:{}", again.display()))
            .arg("--dead-letter")
            .arg(dir.path().join("dead.jsonl"))
            .arg("--store")
            .arg(dir.path().join("store"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("[E0520]"), "{encoding:?}: {err}");
        let n = written.len();
        assert!(
            err.contains(&format!("valid {n} + invalid 1 + blank 0 = read {}", n + 1)),
            "{encoding:?}: {err}"
        );
        let delivered: Vec<serde_json::Value> = std::fs::read_to_string(&again)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(delivered.len(), n, "{encoding:?}: {err}");
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        assert!(dead.contains("E0520") && dead.contains("zz.avro"), "{dead}");
    }
}
