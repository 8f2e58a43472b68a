//! Rendering every copy of `../shared/bench`'s messages as the endpoint threads do, for counting
//! instructions with callgrind: the sinks' share of `hubroute run` without the rest of the
//! pipeline around it (whose threads `scripts/run-instructions.sh` counts whole).
//!
//! `cargo run --release --example sink_instructions -- KIND` encodes each message of
//! messages-1k as the store holds it (one destination with an enrichment), reads it back as a
//! view and renders it with KIND's sink: `file` (JSON Lines, to a discarding writer), `storage`
//! (Avro files in a temporary directory) or `view` (only reading the views back, as the endpoint
//! thread does before each attempt). It prints the number of copies; only `measured_*` is
//! meant to be counted:
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   --toggle-collect='sink_instructions::measured_*' target/release/examples/sink_instructions file
//! ```

#[path = "../benches/workload/mod.rs"]
mod workload;

use hubroute::pipeline::codec;
use hubroute::pipeline::Destination;
use hubroute::sink::{CopyView, JsonLinesSink, Sink, StorageConfig, StorageEncoding, StorageSink};
use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

/// Copies per `write_views` call, about what an endpoint thread hands its sink.
const BATCH: usize = 64;

/// Renders every view once, in batches.
#[inline(never)]
fn measured_render(sink: &mut dyn Sink, views: &[CopyView<'_>]) {
    for batch in views.chunks(BATCH) {
        sink.write_views(batch).expect("the sink writes");
    }
}

/// Reads every record back as a view, as each delivery attempt does.
#[inline(never)]
fn measured_view(records: &[Vec<u8>]) -> usize {
    records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| codec::view_checked(r, 3, "ep", "hub", i as u64).ok())
        .flatten()
        .count()
}

fn main() {
    let kind = std::env::args().nth(1).unwrap_or_else(|| "file".into());
    let destinations = [Destination {
        endpoint: 3,
        enrichments: vec![("pipeline".into(), "bench".into())],
    }];
    let t = UNIX_EPOCH + Duration::from_nanos(1_793_000_000_123_456_700);
    let records: Vec<Vec<u8>> = workload::messages()
        .iter()
        .map(|(m, _)| {
            let mut buf = Vec::new();
            codec::encode(&mut buf, t, &destinations, m);
            buf
        })
        .collect();
    let views: Vec<CopyView<'_>> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| codec::view(r, 3, "cold-storage", "hub", i as u64).ok())
        .flatten()
        .collect();
    let dir = std::env::temp_dir().join(format!("hubroute-sink-instr-{}", std::process::id()));
    let mut sink: Box<dyn Sink> = match kind.as_str() {
        "file" | "view" => Box::new(JsonLinesSink::to_writer(Box::new(std::io::sink()), "null")),
        "storage" => {
            let mut config = StorageConfig::new(&dir, "hub");
            config.encoding = StorageEncoding::Avro;
            Box::new(StorageSink::new(config).expect("a storage sink"))
        }
        other => {
            eprintln!("unknown kind '{other}': file, storage or view");
            std::process::exit(2);
        }
    };
    if kind == "view" {
        black_box(measured_view(&records));
    } else {
        // A first pass, not counted, grows the buffers, as a long-running sink's are.
        measured_render(&mut *sink, &views[..BATCH.min(views.len())]);
        measured_render(&mut *sink, &views);
    }
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", views.len());
}
