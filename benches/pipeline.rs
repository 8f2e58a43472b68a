//! End-to-end pipeline benchmarks: what `hubroute run --routes routes-10.json --input
//! messages-10k.jsonl` does, through the library (`pipeline::input::feed_reader`, as `run` calls
//! it), from the file to every endpoint's sink, with the durable store (one redb commit per
//! chunk) in the timed part. Three sinks: `file:` (JSON Lines), `storage:` (Avro, IoT Hub's
//! default encoding) and a null sink that discards, which is the pipeline's own cost (read,
//! route, encode, store, read back, envelope). Each with rayon limited to one thread and with
//! two, the size of this project's machine. Throughput is messages/s and input MB/s.
//!
//! Every iteration opens a fresh store and fresh sinks in a new directory outside the timed
//! part; the timed part reads the whole file and ends when `Pipeline::shutdown` has delivered
//! every copy (which the bench checks, so a pipeline that drops work cannot look fast).
//!
//! `bridge/records/messages-1k` is the bridge's own work per device publish, without the
//! brokers: the publish read into one reused message (`ingest::d2c_into`: property bag,
//! stamp, IoT Hub's rules), its stream message id, and its stream record (`Records::record`:
//! subject and message JSON). `scripts/e2e.sh` measures the bridge against real brokers.
//!
//! `cargo bench --bench pipeline` takes about two minutes. `cargo test --all-targets` runs each
//! case once, on messages-1k.

mod workload;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hubroute::pipeline::input::{feed_reader, LineReader};
use hubroute::pipeline::{Pipeline, PipelineConfig};
use hubroute::route::RouteTable;
use hubroute::sink::{
    CopyView, DeadLetter, Envelope, JsonLinesSink, Sink, SinkError, StorageConfig, StorageEncoding,
    StorageSink,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use workload::{bench_dir, read, table};

/// Discards what it is given: the delivery floor, so that the pipeline's own cost shows
/// apart from the cost of encoding and writing the copies.
struct NullSink;

impl Sink for NullSink {
    fn describe(&self) -> String {
        "null".into()
    }
    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        std::hint::black_box(batch);
        Ok(())
    }
    /// The copies as the pipeline hands them over (read in place from the store), dropped:
    /// no envelope is built, as no sink that renders from views builds one.
    fn write_views(&mut self, batch: &[CopyView<'_>]) -> Result<(), SinkError> {
        std::hint::black_box(batch);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    File,
    Storage,
    Null,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Storage => "storage",
            Kind::Null => "null",
        }
    }
}

/// A directory of its own per iteration (no tempfile crate for one function), removed when
/// dropped, after the timed part.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubroute-bench-pipeline-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One sink per endpoint of the table, as `run` binds them with `--sink NAME=file:…` or
/// `storage:…` (a Storage endpoint's own encoding, if it names one, as `run` does).
fn sinks(table: &RouteTable, kind: Kind, dir: &Path) -> BTreeMap<String, Box<dyn Sink>> {
    let mut sinks: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    for ep in table.endpoints() {
        let sink: Box<dyn Sink> = match kind {
            Kind::File => {
                Box::new(JsonLinesSink::to_path(dir.join(format!("{}.jsonl", ep.name))).unwrap())
            }
            Kind::Storage => {
                let mut config = StorageConfig::new(dir.join(&ep.name), table.hub_name());
                if let Some(e) = ep.storage.as_ref().and_then(|s| s.encoding.as_ref()) {
                    config.encoding = e.parse::<StorageEncoding>().unwrap();
                }
                Box::new(StorageSink::new(config).unwrap())
            }
            Kind::Null => Box::new(NullSink),
        };
        sinks.insert(ep.name.clone(), sink);
    }
    sinks
}

fn open(table: &RouteTable, kind: Kind) -> (Scratch, Pipeline) {
    let scratch = Scratch::new();
    let config = PipelineConfig::new(scratch.0.join("store"), table.hub_name());
    let dead_letter = DeadLetter::to_path(scratch.0.join("dead-letter.jsonl")).unwrap();
    let pipeline = Pipeline::open(
        config,
        table.clone(),
        sinks(table, kind, &scratch.0),
        dead_letter,
    )
    .unwrap();
    (scratch, pipeline)
}

/// `run`'s file input: 1024-line chunks, routed on the current rayon pool.
fn run_file(pipeline: Pipeline, input: &Path, lines: u64) {
    let file = std::fs::File::open(input).unwrap();
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    let report = feed_reader(
        &pipeline,
        LineReader::new(reader, 1 << 20),
        1024,
        None,
        &mut |bad| {
            std::hint::black_box(bad);
        },
        &mut |_| {},
    );
    assert_eq!(report.read, lines, "{:?}", report.stopped);
    assert!(report.valid > lines / 2, "{report:?}");
    let stats = pipeline.shutdown(Duration::from_secs(120));
    assert_eq!(stats.accepted + stats.unrouted, report.valid);
    for e in &stats.endpoints {
        assert_eq!(e.delivered, e.routed, "endpoint {} not drained", e.name);
    }
}

fn bench(c: &mut Criterion) {
    let table = table(&read("routes-10.json"));
    // `cargo test --all-targets` runs each case once, unoptimised: there the first 1,000 lines
    // (messages-1k) check that every case works in seconds; `cargo bench` passes `--bench`.
    let name = if std::env::args().any(|a| a == "--bench") {
        "messages-10k.jsonl"
    } else {
        "messages-1k.jsonl"
    };
    let input = bench_dir().join(name);
    let bytes = std::fs::metadata(&input).unwrap().len();
    let lines = read(name).lines().count() as u64;

    let mut group = c.benchmark_group(format!(
        "pipeline/{}/routes-10",
        name.trim_end_matches(".jsonl")
    ));
    group.throughput(Throughput::ElementsAndBytes {
        elements: lines,
        bytes,
    });
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for kind in [Kind::Null, Kind::File, Kind::Storage] {
            group.bench_function(format!("{}/{threads}-thread", kind.name()), |b| {
                b.iter_batched(
                    || open(&table, kind),
                    |(scratch, pipeline)| {
                        pool.install(|| run_file(pipeline, &input, lines));
                        scratch // removed after the timed part
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

/// The bridge's work per publish (see the module docs): messages-1k as device publishes, each
/// with a property bag of what a device may set (content type and encoding, message id,
/// application properties) and its body.
fn bench_bridge(c: &mut Criterion) {
    use hubroute::broker::nats::Records;
    use hubroute::ingest::{d2c_into, property_bag, ConnectionRef, D2cTopic};
    use hubroute::message::Message;
    use hubroute::pipeline::input::jetstream::stream_message_id;

    let publishes: Vec<(String, Vec<u8>)> = workload::messages()
        .into_iter()
        .map(|(m, _)| {
            let mut sent = Message::default();
            for name in ["contentType", "contentEncoding", "messageId"] {
                if let Some(value) = m.system_properties.get(name) {
                    sent.system_properties.insert_str(name, value);
                }
            }
            for (name, value) in m.app_properties.iter() {
                sent.app_properties.insert_str(name, value);
            }
            let device = m
                .system_properties
                .get("connectionDeviceId")
                .flatten()
                .unwrap_or("device-1");
            let topic = format!(
                "devices/{device}/messages/events/{}",
                property_bag::encode(&sent)
            );
            (topic, m.body)
        })
        .collect();
    let mut group = c.benchmark_group("bridge");
    group.throughput(Throughput::Elements(publishes.len() as u64));
    group.bench_function("records/messages-1k", |b| {
        let mut message = Message::default();
        let mut records = Records::new("HUB");
        let now = std::time::SystemTime::now();
        b.iter(|| {
            let mut bytes = 0;
            for (i, (text, payload)) in publishes.iter().enumerate() {
                let topic = D2cTopic::parse(text).unwrap();
                let connection = ConnectionRef::from_topic(&topic, None);
                d2c_into(&mut message, &topic, payload, connection, now, &mut |_| {}).unwrap();
                let id =
                    stream_message_id(text, payload, &message).unwrap_or_else(|| i.to_string());
                let record = records.record(topic.device_id, &message, id);
                bytes += record.payload().len();
            }
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, bench, bench_bridge);
criterion_main!(benches);
