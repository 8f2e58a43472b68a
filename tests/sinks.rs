//! Endpoint sinks end to end: files on disk read back with real readers (serde_json, and the
//! `apache-avro` crate's own `Reader`), and the dispatcher's retry / dead-letter behaviour with
//! scripted sinks. Time is injected (`ManualClock`); nothing here asserts on how long anything
//! takes, and waits only guard against hangs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubroute::message::Message;
use hubroute::sink::{
    codes, format_enqueued_time, validate_file_name_format, ChannelSink, DeadLetter, Dispatched,
    Dispatcher, DispatcherConfig, Envelope, JsonLinesSink, ManualClock, RetryPolicy, Settlement,
    Sink, SinkError, StorageConfig, StorageEncoding, StorageSink, Ticket,
};
use serde_json::Value;

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubroute-sinks-{}-{}-{name}",
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

/// 2019-05-10T06:06:32.722Z, the time in IoT Hub's documented example record.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_557_468_392_722)
}

fn message(app: &[(&str, Option<&str>)], sys: &[(&str, Option<&str>)], body: &[u8]) -> Message {
    let mut m = Message::default();
    for (n, v) in app {
        m.app_properties.insert(*n, v.map(str::to_string));
    }
    for (n, v) in sys {
        m.system_properties.insert(*n, v.map(str::to_string));
    }
    m.body = body.to_vec();
    m
}

fn json_message(body: &str) -> Message {
    message(
        &[("level", Some("storage")), ("empty", None)],
        &[
            ("connectionDeviceId", Some("dev-1")),
            ("contentType", Some("application/json")),
            ("contentEncoding", Some("UTF-8")),
        ],
        body.as_bytes(),
    )
}

fn envelope(endpoint: &str, message: Message, partition: u32, sequence: u64) -> Envelope {
    Envelope {
        endpoint: endpoint.into(),
        message,
        enqueued_time: t0(),
        hub_name: "myhub".into(),
        partition,
        sequence,
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every regular file below `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn storage_config(dir: &TempDir, encoding: StorageEncoding) -> StorageConfig {
    let mut c = StorageConfig::new(dir.path().join("container"), "confighub");
    c.encoding = encoding;
    c
}

// ---------------------------------------------------------------------------------------------
// JSON Lines

#[test]
fn json_lines_file_has_one_storage_record_per_line_and_appends() {
    let dir = TempDir::new("jsonl");
    let path = dir.path().join("nested/out.jsonl");
    let mut sink = JsonLinesSink::to_path(&path).unwrap();
    assert!(sink.describe().contains("out.jsonl"));
    let binary = message(&[("k", Some("v"))], &[], &[0, 159, 146, 150]);
    sink.write_batch(&[
        envelope(
            "ep1",
            json_message("{\"temp\": 21.50,\n \"b\": [true]}"),
            0,
            1,
        ),
        envelope("ep2", binary, 1, 2),
    ])
    .unwrap();
    sink.flush().unwrap();
    drop(sink);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(r#"{"endpoint":"ep1","EnqueuedTimeUtc":"2019-05-10T06:06:32.7220000Z","Properties":{"level":"storage","empty":""},"SystemProperties":{"connectionDeviceId":"dev-1","contentType":"application/json","contentEncoding":"UTF-8","enqueuedTime":"2019-05-10T06:06:32.7220000Z"},"Body":{"temp":21.50,"b":[true]}}"#),
        "{text}"
    );
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["Body"]["temp"], 21.5);
    assert_eq!(lines[1]["endpoint"], "ep2");
    assert_eq!(lines[1]["Properties"]["k"], "v");
    assert_eq!(lines[1]["Body"], "AJ+Slg==", "non-JSON body is base64");
    assert_eq!(
        lines[1]["SystemProperties"],
        serde_json::json!({"enqueuedTime": "2019-05-10T06:06:32.7220000Z"})
    );

    // A second sink on the same path appends rather than truncates.
    let mut again = JsonLinesSink::to_path(&path).unwrap();
    again
        .write_batch(&[envelope("ep3", Message::default(), 0, 3)])
        .unwrap();
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["endpoint"], "ep3");
    assert_eq!(lines[2]["Body"], "");
}

#[test]
fn json_lines_to_a_writer() {
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Shared::default();
    let mut sink = JsonLinesSink::to_writer(Box::new(buf.clone()), "memory");
    sink.write_batch(&[]).unwrap();
    sink.write_batch(&[envelope("e", json_message("[1, 2]"), 0, 0)])
        .unwrap();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.ends_with(",\"Body\":[1,2]}\n"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Storage: JSON encoding

#[test]
fn storage_json_encoding_embeds_json_bodies_and_base64s_the_rest() {
    let dir = TempDir::new("storage-json");
    let clock = ManualClock::new(t0());
    let mut sink = StorageSink::with_clock(
        storage_config(&dir, StorageEncoding::Json),
        Box::new(clock.clone()),
    )
    .unwrap();
    let not_json_type = message(
        &[],
        &[
            ("contentType", Some("text/plain")),
            ("contentEncoding", Some("utf-8")),
        ],
        b"{\"a\":1}",
    );
    let no_encoding = message(
        &[],
        &[("contentType", Some("APPLICATION/JSON"))],
        b"{\"a\":1}",
    );
    let mut unparseable = json_message("{\"a\":");
    unparseable.app_properties.insert("why", Some("bad".into()));
    sink.write_batch(&[
        envelope(
            "s",
            json_message("{\"deviceId\": \"d1\", \"n\": 1e3}"),
            0,
            1,
        ),
        envelope("s", not_json_type, 0, 2),
        envelope("s", no_encoding, 0, 3),
        envelope("s", unparseable, 0, 4),
    ])
    .unwrap();
    sink.flush().unwrap();

    let expected = dir.path().join("container/myhub/0/2019/05/10/06/06.json");
    assert_eq!(sink.files(), std::slice::from_ref(&expected));
    assert_eq!(files_under(dir.path()), std::slice::from_ref(&expected));
    let lines = read_lines(&expected);
    assert_eq!(lines.len(), 4);
    let first = lines[0].as_object().unwrap();
    let keys: Vec<_> = first.keys().map(String::as_str).collect();
    let mut want = ["EnqueuedTimeUtc", "Properties", "SystemProperties", "Body"];
    want.sort();
    assert_eq!(keys, want, "exactly IoT Hub's four fields");
    assert_eq!(first["EnqueuedTimeUtc"], "2019-05-10T06:06:32.7220000Z");
    assert_eq!(
        first["Properties"],
        serde_json::json!({"level": "storage", "empty": ""})
    );
    assert_eq!(
        first["SystemProperties"],
        serde_json::json!({
            "connectionDeviceId": "dev-1",
            "contentType": "application/json",
            "contentEncoding": "UTF-8",
            "enqueuedTime": "2019-05-10T06:06:32.7220000Z"
        })
    );
    assert_eq!(
        first["Body"],
        serde_json::json!({"deviceId": "d1", "n": 1000.0})
    );
    // Raw text keeps the body's own spelling.
    let raw = std::fs::read_to_string(&expected).unwrap();
    assert!(raw
        .lines()
        .next()
        .unwrap()
        .ends_with(r#""Body":{"deviceId":"d1","n":1e3}}"#));
    for line in &lines[1..3] {
        assert_eq!(line["Body"], "eyJhIjoxfQ==", "{line}");
    }
    assert_eq!(lines[3]["Body"], "eyJhIjo=");
    assert_eq!(lines[3]["Properties"]["why"], "bad");
}

// ---------------------------------------------------------------------------------------------
// Storage: Avro, read back with the apache-avro crate's Reader

#[cfg(feature = "avro")]
fn read_avro(path: &Path) -> (apache_avro::Schema, Vec<apache_avro::types::Value>) {
    let file = std::fs::File::open(path).unwrap();
    let reader = apache_avro::Reader::new(file).unwrap();
    let schema = reader.writer_schema().clone();
    let values = reader.map(|v| v.unwrap()).collect();
    (schema, values)
}

#[cfg(feature = "avro")]
fn avro_fields(
    v: &apache_avro::types::Value,
) -> std::collections::BTreeMap<String, apache_avro::types::Value> {
    match v {
        apache_avro::types::Value::Record(fields) => fields.iter().cloned().collect(),
        other => panic!("not a record: {other:?}"),
    }
}

#[cfg(feature = "avro")]
fn avro_string_map(v: &apache_avro::types::Value) -> std::collections::BTreeMap<String, String> {
    use apache_avro::types::Value as V;
    match v {
        V::Map(m) => m
            .iter()
            .map(|(k, v)| match v {
                V::String(s) => (k.clone(), s.clone()),
                other => panic!("map value not a string: {other:?}"),
            })
            .collect(),
        other => panic!("not a map: {other:?}"),
    }
}

#[cfg(feature = "avro")]
#[test]
fn avro_files_read_back_with_every_field() {
    use apache_avro::types::Value as V;
    for (encoding, codec) in [
        (StorageEncoding::Avro, "null"),
        (StorageEncoding::AvroDeflate, "deflate"),
    ] {
        let dir = TempDir::new("avro");
        let clock = ManualClock::new(t0());
        let mut sink =
            StorageSink::with_clock(storage_config(&dir, encoding), Box::new(clock.clone()))
                .unwrap();
        let mut later = envelope("s", message(&[], &[], b""), 0, 3);
        later.enqueued_time = t0() + Duration::from_nanos(1_234_567_890);
        sink.write_batch(&[
            envelope("s", json_message("{\"a\": 1}"), 0, 1),
            envelope("s", message(&[("x", Some("y"))], &[], &[0, 255, 1]), 0, 2),
        ])
        .unwrap();
        // A second batch in the same interval goes into the same file as a new block.
        sink.write_batch(&[later]).unwrap();
        sink.flush().unwrap();

        let path = dir.path().join("container/myhub/0/2019/05/10/06/06.avro");
        assert_eq!(files_under(dir.path()), std::slice::from_ref(&path));
        let bytes = std::fs::read(&path).unwrap();
        let codec_entry = format!("avro.codec{}{codec}", char::from(codec.len() as u8 * 2));
        assert!(
            bytes
                .windows(codec_entry.len())
                .any(|w| w == codec_entry.as_bytes()),
            "codec {codec} in the header"
        );
        let (schema, values) = read_avro(&path);
        match &schema {
            apache_avro::Schema::Record(r) => {
                assert_eq!(r.name.name, "Message");
                assert_eq!(r.name.namespace.as_deref(), Some("Microsoft.Azure.Devices"));
                let names: Vec<_> = r.fields.iter().map(|f| f.name.as_str()).collect();
                assert_eq!(
                    names,
                    ["EnqueuedTimeUtc", "Properties", "SystemProperties", "Body"]
                );
            }
            other => panic!("schema is not a record: {other:?}"),
        }
        assert_eq!(values.len(), 3);

        let f = avro_fields(&values[0]);
        assert_eq!(
            f["EnqueuedTimeUtc"],
            V::String("2019-05-10T06:06:32.7220000Z".into())
        );
        assert_eq!(
            avro_string_map(&f["Properties"]),
            [("empty", ""), ("level", "storage")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into()
        );
        assert_eq!(
            avro_string_map(&f["SystemProperties"]),
            [
                ("connectionDeviceId", "dev-1"),
                ("contentEncoding", "UTF-8"),
                ("contentType", "application/json"),
                ("enqueuedTime", "2019-05-10T06:06:32.7220000Z"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
        );
        assert_eq!(
            f["Body"],
            V::Union(1, Box::new(V::Bytes(b"{\"a\": 1}".to_vec()))),
            "Avro keeps the body bytes as they were"
        );

        let f = avro_fields(&values[1]);
        assert_eq!(avro_string_map(&f["Properties"])["x"], "y");
        assert_eq!(f["Body"], V::Union(1, Box::new(V::Bytes(vec![0, 255, 1]))));

        let f = avro_fields(&values[2]);
        assert_eq!(
            f["EnqueuedTimeUtc"],
            V::String("2019-05-10T06:06:33.9565678Z".into())
        );
        assert!(avro_string_map(&f["Properties"]).is_empty());
        assert_eq!(f["Body"], V::Union(1, Box::new(V::Bytes(vec![]))));
    }
}

#[cfg(feature = "avro")]
#[test]
fn avro_rolls_by_size_and_every_file_stays_readable_and_within_the_limit() {
    let dir = TempDir::new("avro-size");
    let clock = ManualClock::new(t0());
    let mut config = storage_config(&dir, StorageEncoding::Avro);
    config.max_chunk_size_bytes = 2_000;
    let mut sink = StorageSink::with_clock(config, Box::new(clock)).unwrap();
    let batch: Vec<Envelope> = (0..30)
        .map(|i| {
            let body = format!("{{\"i\": {i}, \"pad\": \"{}\"}}", "x".repeat(100));
            envelope("s", json_message(&body), 0, i)
        })
        .collect();
    sink.write_batch(&batch[..10]).unwrap();
    sink.write_batch(&batch[10..]).unwrap();
    let files = files_under(dir.path());
    assert!(files.len() > 2, "{files:?}");
    assert_eq!(sink.files().len(), files.len());
    let mut seen = Vec::new();
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() <= 2_000, "{f:?}");
        for v in read_avro(f).1 {
            let body = match &avro_fields(&v)["Body"] {
                apache_avro::types::Value::Union(1, b) => match b.as_ref() {
                    apache_avro::types::Value::Bytes(b) => b.clone(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            };
            let body: Value = serde_json::from_slice(&body).unwrap();
            seen.push(body["i"].as_u64().unwrap());
        }
    }
    // Read in creation order, the files hold the records in order.
    let in_order: Vec<u64> = sink
        .files()
        .iter()
        .flat_map(|f| read_avro(f).1)
        .map(|v| match &avro_fields(&v)["Body"] {
            apache_avro::types::Value::Union(1, b) => match b.as_ref() {
                apache_avro::types::Value::Bytes(b) => serde_json::from_slice::<Value>(b).unwrap()
                    ["i"]
                    .as_u64()
                    .unwrap(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(in_order, (0..30).collect::<Vec<_>>());
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..30).collect::<Vec<_>>(),
        "every record exactly once"
    );
}

// ---------------------------------------------------------------------------------------------
// Storage: naming and rolling

#[test]
fn custom_file_name_format_and_rolling_by_time() {
    let fmt = "{YYYY}-{MM}-{DD}/{HH}h{mm}/{iothub}-p{partition}";
    validate_file_name_format(fmt).unwrap();
    let dir = TempDir::new("naming");
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000)); // 2023-11-14T22:13:20Z
    let mut config = storage_config(&dir, StorageEncoding::Json);
    config.file_name_format = fmt.into();
    config.batch_frequency = Duration::from_secs(60);
    let mut sink = StorageSink::with_clock(config, Box::new(clock.clone())).unwrap();
    let root = dir.path().join("container");

    // Two partitions, and an envelope without a hub name (the config's name is used).
    let mut nameless = envelope("s", json_message("1"), 7, 3);
    nameless.hub_name.clear();
    sink.write_batch(&[
        envelope("s", json_message("1"), 0, 1),
        envelope("s", json_message("2"), 7, 2),
        nameless,
    ])
    .unwrap();
    // Within the interval: the same files grow.
    clock.advance(Duration::from_secs(59));
    sink.write_batch(&[envelope("s", json_message("3"), 0, 4)])
        .unwrap();
    // The interval has elapsed: a new file, named by the new batch start.
    clock.advance(Duration::from_secs(1));
    sink.write_batch(&[envelope("s", json_message("4"), 0, 5)])
        .unwrap();

    let rel: Vec<String> = files_under(&root)
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "2023-11-14/22h13/confighub-p7.json",
            "2023-11-14/22h13/myhub-p0.json",
            "2023-11-14/22h13/myhub-p7.json",
            "2023-11-14/22h14/myhub-p0.json",
        ]
    );
    let bodies = |f: &str| -> Vec<Value> {
        read_lines(&root.join(f))
            .into_iter()
            .map(|l| l["Body"].clone())
            .collect()
    };
    assert_eq!(bodies("2023-11-14/22h13/myhub-p0.json"), [1, 3]);
    assert_eq!(bodies("2023-11-14/22h14/myhub-p0.json"), [4]);
    assert_eq!(bodies("2023-11-14/22h13/myhub-p7.json"), [2]);
    assert_eq!(bodies("2023-11-14/22h13/confighub-p7.json"), [1]);

    // Flushing after the interval closes the file; the next write starts a new one, and a
    // second file for the same minute gets a suffix instead of overwriting the first.
    clock.advance(Duration::from_secs(60));
    sink.flush().unwrap();
    clock.set(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 60));
    sink.write_batch(&[envelope("s", json_message("5"), 0, 6)])
        .unwrap();
    assert_eq!(bodies("2023-11-14/22h14/myhub-p0-1.json"), [5]);
    assert_eq!(bodies("2023-11-14/22h14/myhub-p0.json"), [4]);
}

#[test]
fn rolls_by_size_with_numeric_suffixes_and_never_overwrites() {
    let dir = TempDir::new("size");
    let clock = ManualClock::new(t0());
    let mut config = storage_config(&dir, StorageEncoding::Json);
    config.max_chunk_size_bytes = 700;
    let line_len =
        hubroute::sink::storage_json_record(&envelope("s", json_message("100"), 0, 0)).len() + 1;
    assert!(line_len * 2 <= 700 && line_len * 3 > 700, "{line_len}");
    // A file left by an earlier run with the first name is kept as it is.
    let first = dir.path().join("container/myhub/0/2019/05/10/06/06.json");
    std::fs::create_dir_all(first.parent().unwrap()).unwrap();
    std::fs::write(&first, "old\n").unwrap();

    let mut sink = StorageSink::with_clock(config, Box::new(clock)).unwrap();
    let batch: Vec<Envelope> = (100..105)
        .map(|i| envelope("s", json_message(&i.to_string()), 0, i))
        .collect();
    sink.write_batch(&batch[..1]).unwrap();
    sink.write_batch(&batch[1..]).unwrap();
    // One record bigger than the limit still gets written, alone in its own file.
    let big = format!("\"{}\"", "z".repeat(1_000));
    sink.write_batch(&[envelope("s", json_message(&big), 0, 9)])
        .unwrap();

    assert_eq!(std::fs::read_to_string(&first).unwrap(), "old\n");
    let dir0 = first.parent().unwrap();
    let name = |n: &str| dir0.join(n);
    assert_eq!(
        sink.files(),
        [
            name("06-1.json"),
            name("06-2.json"),
            name("06-3.json"),
            name("06-4.json")
        ]
    );
    let bodies: Vec<Vec<Value>> = sink
        .files()
        .iter()
        .map(|f| {
            read_lines(f)
                .into_iter()
                .map(|l| l["Body"].clone())
                .collect()
        })
        .collect();
    assert_eq!(
        bodies,
        [
            vec![Value::from(100), Value::from(101)],
            vec![Value::from(102), Value::from(103)],
            vec![Value::from(104)],
            vec![Value::from("z".repeat(1_000))],
        ]
    );
    for f in &sink.files()[..3] {
        assert!(std::fs::metadata(f).unwrap().len() <= 700);
    }
}

#[test]
fn bad_formats_are_refused() {
    let dir = TempDir::new("badfmt");
    for bad in [
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}",
        "{iothub}/{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
        "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}",
        "../{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
    ] {
        let mut config = storage_config(&dir, StorageEncoding::Json);
        config.file_name_format = bad.into();
        let err = StorageSink::new(config).err().unwrap();
        assert_eq!(err.code(), codes::FATAL, "{bad}");
    }
    assert!(validate_file_name_format("{partition}{mm}{HH}{DD}{MM}{YYYY}{iothub}").is_ok());
}

// ---------------------------------------------------------------------------------------------
// Delivery

type Script = Box<dyn FnMut(usize, &[Envelope]) -> Result<(), SinkError> + Send>;

/// A sink scripted by a closure over the 1-based attempt number; records what it accepted.
struct Scripted {
    attempts: usize,
    script: Script,
    accepted: Arc<Mutex<Vec<Envelope>>>,
}

impl Scripted {
    fn new(
        script: impl FnMut(usize, &[Envelope]) -> Result<(), SinkError> + Send + 'static,
    ) -> (Self, Arc<Mutex<Vec<Envelope>>>) {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let sink = Scripted {
            attempts: 0,
            script: Box::new(script),
            accepted: Arc::clone(&accepted),
        };
        (sink, accepted)
    }
}

impl Sink for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }
    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        self.attempts += 1;
        (self.script)(self.attempts, batch)?;
        self.accepted.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        multiplier: 2.0,
    }
}

fn config(queue_capacity: usize, max_attempts: u32) -> DispatcherConfig {
    DispatcherConfig {
        queue_capacity,
        max_batch: 8,
        retry: fast_retry(max_attempts),
    }
}

fn boxed(s: impl Sink + 'static) -> Box<dyn Sink> {
    Box::new(s)
}

#[test]
fn retryable_failures_are_retried_and_delivered_once() {
    let dir = TempDir::new("retry");
    let dl_path = dir.path().join("dead.jsonl");
    let (flaky, accepted) = Scripted::new(|attempt, _| {
        if attempt <= 3 {
            Err(SinkError::Retryable(format!("broker down ({attempt})")))
        } else {
            Ok(())
        }
    });
    let d = Dispatcher::new(
        [("flaky".to_string(), boxed(flaky))],
        DeadLetter::to_path(&dl_path).unwrap(),
        config(16, 5),
    )
    .unwrap();
    assert_eq!(d.endpoints().collect::<Vec<_>>(), ["flaky"]);
    let e = envelope("flaky", json_message("{\"n\":1}"), 0, 42);
    assert_eq!(d.dispatch(e.clone()).unwrap(), Dispatched::Queued);
    let stats = d.finish();
    let s = stats.endpoint("flaky");
    assert_eq!(s.retries, 3);
    assert_eq!(s.delivered, 1);
    assert_eq!(s.dead_lettered, 0);
    assert_eq!(s.failed_batches, 0);
    assert_eq!(s.lost, 0);
    assert_eq!(s.last_error.as_deref(), Some("broker down (3)"));
    assert_eq!(*accepted.lock().unwrap(), [e]);
    assert_eq!(std::fs::read_to_string(&dl_path).unwrap(), "");
}

#[test]
fn a_dead_endpoint_goes_to_the_dead_letter_without_stalling_the_others() {
    let dir = TempDir::new("dead");
    let dl_path = dir.path().join("dl/dead.jsonl");
    // The failing sink waits at a gate on its first attempt, so the healthy endpoint's progress
    // is observed while the failing one is stuck.
    let (gate_tx, gate_rx) = channel::<()>();
    let gate_rx = Mutex::new(Some(gate_rx));
    let (dead, dead_accepted) = Scripted::new(move |_, _| {
        if let Some(rx) = gate_rx.lock().unwrap().take() {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
        Err(SinkError::Retryable("disk says no".into()))
    });
    let (tx, rx) = channel();
    let d = Dispatcher::new(
        [
            ("dead".to_string(), boxed(dead)),
            ("good".to_string(), boxed(ChannelSink::new(tx))),
        ],
        DeadLetter::to_path(&dl_path).unwrap(),
        config(64, 3),
    )
    .unwrap();
    for i in 0..20 {
        let m = message(&[("i", Some(&i.to_string()))], &[], b"x");
        assert_eq!(
            d.dispatch(envelope("dead", m.clone(), 0, i)).unwrap(),
            Dispatched::Queued
        );
        assert_eq!(
            d.dispatch(envelope("good", m, 0, i)).unwrap(),
            Dispatched::Queued
        );
    }
    // All of the healthy endpoint's messages arrive while the dead one is still blocked.
    let got: Vec<u64> = (0..20)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap().sequence)
        .collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    gate_tx.send(()).unwrap();
    let stats = d.finish();

    assert_eq!(stats.endpoint("good").delivered, 20);
    assert_eq!(stats.endpoint("good").dead_lettered, 0);
    let s = stats.endpoint("dead");
    assert_eq!(s.delivered, 0);
    assert_eq!(s.dead_lettered, 20);
    assert!(
        s.failed_batches >= 3,
        "20 envelopes in batches of at most 8"
    );
    assert_eq!(s.retries, 2 * s.failed_batches, "3 attempts per batch");
    assert!(dead_accepted.lock().unwrap().is_empty());
    assert_eq!(stats.total().dead_lettered, 20);

    let lines = read_lines(&dl_path);
    assert_eq!(lines.len(), 20);
    let mut seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["sequence"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    for l in &lines {
        assert_eq!(l["endpoint"], "dead");
        assert_eq!(l["code"], codes::RETRIES_EXHAUSTED);
        assert_eq!(l["attempts"], 3);
        let reason = l["reason"].as_str().unwrap();
        assert!(
            reason.contains("disk says no") && reason.contains("3 attempts"),
            "{reason}"
        );
        assert_eq!(l["enqueuedTimeUtc"], format_enqueued_time(t0()));
        // The message is in hubroute's message JSON shape and loads back unchanged.
        let m = Message::from_json_value(&l["message"]).unwrap();
        let i = l["sequence"].as_u64().unwrap().to_string();
        assert_eq!(m, message(&[("i", Some(&i))], &[], b"x"));
        assert_eq!(l["message"]["body"], "x");
    }
}

#[test]
fn a_fatal_message_is_dead_lettered_alone() {
    let dir = TempDir::new("fatal");
    let dl_path = dir.path().join("dead.jsonl");
    let (picky, accepted) = Scripted::new(|_, batch| {
        if batch
            .iter()
            .any(|e| e.message.app_properties.get("poison").is_some())
        {
            Err(SinkError::Fatal(
                "message too large for the endpoint".into(),
            ))
        } else {
            Ok(())
        }
    });
    let d = Dispatcher::new(
        [("picky".to_string(), boxed(picky))],
        DeadLetter::to_path(&dl_path).unwrap(),
        config(64, 3),
    )
    .unwrap();
    for i in 0..10u64 {
        let mut m = message(&[], &[], &[0xFF, i as u8]);
        if i == 4 {
            m.app_properties.insert("poison", None);
        }
        d.dispatch(envelope("picky", m, 2, i)).unwrap();
    }
    let stats = d.finish();
    let s = stats.endpoint("picky");
    assert_eq!((s.delivered, s.dead_lettered, s.retries), (9, 1, 0));
    assert_eq!(s.failed_batches, 1);
    let mut seqs: Vec<u64> = accepted
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    let lines = read_lines(&dl_path);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["code"], codes::FATAL);
    assert_eq!(lines[0]["reason"], "message too large for the endpoint");
    assert_eq!(lines[0]["attempts"], 1);
    assert_eq!(lines[0]["partition"], 2);
    assert_eq!(lines[0]["message"]["bodyBase64"], "/wQ=");
    assert_eq!(lines[0]["message"]["appProperties"]["poison"], Value::Null);
}

/// A sink that announces each write and then waits for permission to finish it.
struct Gated {
    entered: Sender<()>,
    release: Receiver<()>,
    accepted: Arc<Mutex<Vec<u64>>>,
}

impl Sink for Gated {
    fn describe(&self) -> String {
        "gated".into()
    }
    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        let _ = self.entered.send(());
        let _ = self.release.recv_timeout(Duration::from_secs(30));
        self.accepted
            .lock()
            .unwrap()
            .extend(batch.iter().map(|e| e.sequence));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[test]
fn a_full_backlog_goes_to_the_dead_letter_without_blocking() {
    let dir = TempDir::new("backlog");
    let dl_path = dir.path().join("dead.jsonl");
    let (entered_tx, entered_rx) = channel();
    let (release_tx, release_rx) = channel();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let gated = Gated {
        entered: entered_tx,
        release: release_rx,
        accepted: Arc::clone(&accepted),
    };
    let d = Dispatcher::new(
        [("slow".to_string(), boxed(gated))],
        DeadLetter::to_path(&dl_path).unwrap(),
        config(2, 1),
    )
    .unwrap();
    let env = |i| envelope("slow", message(&[], &[], b"m"), 0, i);
    assert_eq!(d.dispatch(env(0)).unwrap(), Dispatched::Queued);
    // The worker holds envelope 0 inside write_batch: the queue is empty again.
    entered_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(d.dispatch(env(1)).unwrap(), Dispatched::Queued);
    assert_eq!(d.dispatch(env(2)).unwrap(), Dispatched::Queued);
    assert_eq!(
        d.dispatch(env(3)).unwrap(),
        Dispatched::DeadLettered(codes::BACKLOG_FULL)
    );
    assert_eq!(
        d.dispatch(env(4)).unwrap(),
        Dispatched::DeadLettered(codes::BACKLOG_FULL)
    );
    // An endpoint with no sink is dead-lettered too, under its own name.
    assert_eq!(
        d.dispatch(envelope("nowhere", Message::default(), 0, 9))
            .unwrap(),
        Dispatched::DeadLettered(codes::UNKNOWN_ENDPOINT)
    );
    for _ in 0..3 {
        release_tx.send(()).unwrap();
    }
    let stats = d.finish();
    let s = stats.endpoint("slow");
    assert_eq!((s.delivered, s.dead_lettered, s.failed_batches), (3, 2, 0));
    assert_eq!(stats.endpoint("nowhere").dead_lettered, 1);
    let mut got = accepted.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2]);

    let lines = read_lines(&dl_path);
    let summary: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["endpoint"].as_str().unwrap().to_string(),
                l["reason"].as_str().unwrap().to_string(),
                l["sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary[0], ("slow".into(), "backlog full".into(), 3));
    assert_eq!(summary[1], ("slow".into(), "backlog full".into(), 4));
    assert_eq!(summary[2].0, "nowhere");
    assert_eq!(lines[0]["code"], codes::BACKLOG_FULL);
    assert_eq!(lines[0]["attempts"], 0);
    assert_eq!(lines[2]["code"], codes::UNKNOWN_ENDPOINT);
}

#[test]
fn a_gone_receiver_and_a_panicking_sink_end_in_the_dead_letter() {
    let dir = TempDir::new("gone");
    let dl_path = dir.path().join("dead.jsonl");
    let (tx, rx) = channel();
    drop(rx);
    let (panicky, _) = Scripted::new(|_, _| panic!("sink bug"));
    let d = Dispatcher::new(
        [
            ("gone".to_string(), boxed(ChannelSink::named(tx, "app"))),
            ("panicky".to_string(), boxed(panicky)),
        ],
        DeadLetter::to_path(&dl_path).unwrap(),
        config(16, 4),
    )
    .unwrap();
    for i in 0..3 {
        d.dispatch(envelope("gone", Message::default(), 0, i))
            .unwrap();
        d.dispatch(envelope("panicky", Message::default(), 0, i))
            .unwrap();
    }
    let stats = d.finish();
    let gone = stats.endpoint("gone");
    assert_eq!(
        (gone.delivered, gone.dead_lettered, gone.retries),
        (0, 3, 0)
    );
    let panicky = stats.endpoint("panicky");
    assert_eq!((panicky.delivered, panicky.dead_lettered), (0, 3));
    let lines = read_lines(&dl_path);
    assert_eq!(lines.len(), 6);
    for l in &lines {
        let reason = l["reason"].as_str().unwrap();
        match l["endpoint"].as_str().unwrap() {
            "gone" => {
                assert_eq!(l["code"], codes::FATAL);
                assert!(reason.contains("receiver is gone"), "{reason}");
            }
            "panicky" => {
                assert_eq!(l["code"], codes::SINK_PANICKED);
                assert!(reason.contains("sink bug"), "{reason}");
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn error_codes_are_stable() {
    assert_eq!(SinkError::Retryable("x".into()).code(), "E0501");
    assert_eq!(SinkError::Fatal("x".into()).code(), "E0502");
    assert_eq!(codes::BACKLOG_FULL, "E0503");
    assert!(SinkError::Retryable("x".into()).is_retryable());
    assert_eq!(SinkError::Fatal("boom".into()).to_string(), "boom");
}

/// A sink that records whether each accepted envelope was flushed before the ticket settled.
struct FlushCounting {
    flushed: Arc<AtomicUsize>,
    pending: usize,
}

impl Sink for FlushCounting {
    fn describe(&self) -> String {
        "flush-counting".into()
    }
    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        self.pending += batch.len();
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.flushed.fetch_add(self.pending, Ordering::SeqCst);
        self.pending = 0;
        Ok(())
    }
}

#[test]
fn tickets_settle_once_every_copy_is_flushed_or_dead_lettered() {
    let dir = TempDir::new("tickets");
    let dl_path = dir.path().join("dead.jsonl");
    let flushed = Arc::new(AtomicUsize::new(0));
    let good = FlushCounting {
        flushed: Arc::clone(&flushed),
        pending: 0,
    };
    let (dead, _) = Scripted::new(|_, _| Err(SinkError::Retryable("down".into())));
    let d = Dispatcher::new(
        [
            ("good".to_string(), boxed(good)),
            ("dead".to_string(), boxed(dead)),
        ],
        DeadLetter::to_path(&dl_path).unwrap(),
        config(64, 2),
    )
    .unwrap();
    let (tx, rx): (Sender<(u64, Settlement, usize)>, Receiver<_>) = channel();
    for seq in 0..10u64 {
        let endpoints: &[&str] = match seq % 3 {
            0 => &["good"],
            1 => &["good", "dead"],
            _ => &["good", "nowhere"],
        };
        let tx = tx.clone();
        let flushed = Arc::clone(&flushed);
        let ticket = Ticket::new(endpoints.len(), move |s| {
            tx.send((seq, s, flushed.load(Ordering::SeqCst))).unwrap();
        });
        for ep in endpoints {
            let e = envelope(ep, json_message("{}"), 0, seq);
            d.dispatch_tracked(e, ticket.clone()).unwrap();
        }
    }
    // A ticket for no copies settles at once.
    let (tx0, rx0) = channel();
    Ticket::new(0, move |s| tx0.send(s).unwrap());
    assert_eq!(rx0.recv().unwrap(), Settlement::default());
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(
            rx.recv_timeout(Duration::from_secs(20))
                .expect("every ticket settles"),
        );
    }
    d.finish();
    assert!(rx.try_recv().is_err(), "a ticket settled twice");
    seen.sort_by_key(|(seq, ..)| *seq);
    for (seq, s, flushed_then) in seen {
        let want = match seq % 3 {
            0 => Settlement {
                delivered: 1,
                dead_lettered: 0,
                lost: 0,
            },
            _ => Settlement {
                delivered: 1,
                dead_lettered: 1,
                lost: 0,
            },
        };
        assert_eq!(s, want, "message {seq}");
        assert!(s.is_safe());
        assert!(flushed_then >= 1, "settled before its copy was flushed");
    }
    let dead_lines = read_lines(&dl_path);
    assert_eq!(dead_lines.len(), 3 + 3);
}
