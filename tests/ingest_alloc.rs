//! Reading a line into a reused message and preparing it for the store allocates only the
//! record (issue 16: "input lines are parsed into a reused message"): the message's property
//! strings and body keep their memory from line to line.
//!
//! A counting global allocator wraps the system allocator (as in tests/alloc.rs); only the
//! measuring thread's allocations are counted, so the pipeline's own threads (committer,
//! endpoint workers) do not disturb the count.

use hubroute::message::Message;
use hubroute::pipeline::{Pipeline, PipelineConfig};
use hubroute::sink::{CopyView, DeadLetter, Envelope, Sink, SinkError};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The benchmarks' workload: `../shared/bench`'s messages and tables.
#[path = "../benches/workload/mod.rs"]
mod workload;

mod counting;
use counting::counted;

/// Takes every copy and keeps nothing: delivery is not what is measured.
struct NullSink;

impl Sink for NullSink {
    fn describe(&self) -> String {
        "null".into()
    }
    fn write_batch(&mut self, _: &[Envelope]) -> Result<(), SinkError> {
        Ok(())
    }
    fn write_views(&mut self, _: &[CopyView<'_>]) -> Result<(), SinkError> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[test]
fn a_warm_reused_message_allocates_only_its_record() {
    // routes-10 without its enrichments: an enriched copy's key and value are strings of
    // their own in the record's destinations (the codec's `Destination`), which this test is
    // not about.
    let mut config: serde_json::Value =
        serde_json::from_str(&workload::read("routes-10.json")).unwrap();
    config["enrichments"] = serde_json::json!([]);
    let table = workload::table(&config.to_string());
    let dir = std::env::temp_dir().join(format!("hubroute-ingest-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut sinks: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    for ep in table.endpoints() {
        sinks.insert(ep.name.clone(), Box::new(NullSink));
    }
    let pipeline = Pipeline::open(
        PipelineConfig::new(dir.join("store"), table.hub_name()),
        table,
        sinks,
        DeadLetter::to_path(dir.join("dead.jsonl")).unwrap(),
    )
    .unwrap();
    let text = workload::read("messages-1k.jsonl");
    // Without the bodies a Storage record embeds as JSON (`contentType` application/json,
    // `contentEncoding` utf-8): the codec checks those with serde_json, whose scratch buffer
    // allocates for escaped strings (the codec's cost, not reading's).
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let m = Message::from_json_str(l).unwrap();
            let is = |n: &str, v: &str| {
                m.system_properties
                    .get(n)
                    .flatten()
                    .is_some_and(|x| x.eq_ignore_ascii_case(v))
            };
            !(is("contentType", "application/json") && is("contentEncoding", "utf-8"))
        })
        .collect();
    assert!(lines.len() > 100, "{} lines", lines.len());
    let mut router = pipeline.router();
    let mut message = Message::default();
    let now = SystemTime::now();
    let mut pass = |records: &mut usize| {
        for line in &lines {
            message.read_json_str(line).unwrap();
            let prepared = pipeline.prepare(&mut router, &message, None, now).unwrap();
            *records += usize::from(!prepared.is_unrouted());
        }
    };
    // Warm-up: spare strings are reused in turn, so each grows to the longest text it held
    // within a few passes.
    let mut records = 0;
    for _ in 0..3 {
        pass(&mut records);
    }
    records = 0;
    let (count, bytes) = counted(|| pass(&mut records));
    assert!(records > lines.len() / 2, "most messages route somewhere");
    assert!(
        count <= records,
        "{count} allocations ({bytes} bytes) for {} lines of which {records} have a record",
        lines.len(),
    );
    // With each record's memory given ahead (as `run` on a file does from its reading
    // thread), preparing allocates nothing at all: the record is written into that memory.
    let mut buffers: Vec<Vec<u8>> = lines
        .iter()
        .map(|l| Vec::with_capacity(l.len() + 128))
        .collect();
    let mut prepared = Vec::with_capacity(lines.len());
    let (count, bytes) = counted(|| {
        for (line, buffer) in lines.iter().zip(buffers.drain(..)) {
            message.read_json_str(line).unwrap();
            let p = pipeline.prepare_into(None, &mut router, &message, None, now, buffer);
            prepared.push(p.unwrap());
        }
    });
    assert_eq!(
        count,
        0,
        "{count} allocations ({bytes} bytes) preparing {} lines into given records",
        lines.len()
    );
    assert_eq!(
        prepared.iter().filter(|p| !p.is_unrouted()).count(),
        records,
        "the same messages route somewhere"
    );
    // Reading alone allocates nothing.
    let (count, _) = counted(|| {
        for line in &lines {
            message.read_json_str(line).unwrap();
        }
    });
    assert_eq!(count, 0, "reading {} warm lines", lines.len());
    pipeline.shutdown(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_warm_reused_message_reads_device_publishes_without_allocating() {
    use hubroute::ingest::{d2c_into, d2c_message, Connection, ConnectionRef, D2cTopic};
    // Bags with escaped values, system and application properties that come and go, a
    // spoofing name (dropped), a module's topic; bodies of different lengths.
    let publishes = [
        (
            "devices/d1/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.mid=m-1&level=hot",
            r#"{"t":21.5}"#,
        ),
        (
            "devices/d2/modules/m1/messages/events/alert=true&$.cdid=evil&note=a%20b%26c",
            r#"{"t":99,"unit":"C","history":[1,2,3,4,5,6,7,8,9,10]}"#,
        ),
        ("devices/d1/messages/events/", ""),
        (
            "devices/d3/messages/events/$.mid=m-3&$.cid=c-3&level=cold&site=north&x=",
            "plain text body",
        ),
    ];
    let mut message = Message::default();
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let mut pass = |check: bool| {
        for (topic, body) in &publishes {
            let topic = D2cTopic::parse(topic).unwrap();
            let connection = ConnectionRef::from_topic(&topic, Some("6369"));
            d2c_into(
                &mut message,
                &topic,
                body.as_bytes(),
                connection,
                at,
                &mut |_| {},
            )
            .unwrap();
            if check {
                let fresh = d2c_message(
                    &topic,
                    body.as_bytes(),
                    &Connection::from_topic(&topic, Some("6369")),
                    at,
                )
                .unwrap();
                assert_eq!(message, fresh, "a reused message reads as a fresh one");
            }
        }
    };
    // Warm-up: spare strings are reused in turn, so each settles at the longest text it
    // holds within a few passes (here the fourth pass still grew one).
    for i in 0..10 {
        pass(i < 3);
    }
    let (count, bytes) = counted(|| pass(false));
    assert_eq!(
        count,
        0,
        "{count} allocations ({bytes} bytes) for {} warm publishes",
        publishes.len()
    );
}
