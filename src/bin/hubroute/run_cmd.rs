//! `hubroute run`: the router's command line. It parses the arguments, binds the sinks, opens
//! the library's durable [`Pipeline`] (accept into the store, deliver per endpoint) and feeds
//! it from the input: a JSON Lines file or standard input here, a broker in `live`. Nothing is
//! dropped silently: a line that is not a message is reported with its line number and code,
//! counted and dead-lettered, and the stream goes on; the summary always prints.

use crate::routes_cmd::load_table_in;
use clap::Args;
use hubroute::eval::TwinLookup;
use hubroute::message::Protocol;
use hubroute::pipeline::input::{
    feed_lines, feed_reader, InvalidLine, InvalidLog, Line, LineContent, LineReader, LinesReport,
};
use hubroute::pipeline::{Pipeline, PipelineConfig, PipelineStats, Retention};
use hubroute::route::{DirTwinStore, EndpointId, RouteTable};
use hubroute::sink::{
    DeadLetter, JsonLinesSink, RetryPolicy, Sink, StorageConfig, StorageEncoding, StorageSink,
};
use hubroute::twin::LiveTwins;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct RunArgs {
    /// The routing configuration (as for `test`).
    #[arg(long)]
    routes: PathBuf,
    /// The query language of the conditions: hub (IoT Hub, as Learn documents it) or edge
    /// (the IoT Edge engine, with body queries and twin_change_includes on).
    #[arg(long, default_value = "hub")]
    dialect: hubroute::Dialect,
    /// Where messages come from: a JSON Lines file (`-` for standard input, the default),
    /// what a Storage endpoint wrote (`.avro` or `.json` files, or a directory of them: captured
    /// traffic routed again), `mqtt://HOST:PORT` (devices publishing to IoT Hub's
    /// device-to-cloud topics), `https://HOST:PORT?cert=FILE&key=FILE` or `http://HOST:PORT`
    /// (devices sending as to IoT Hub's REST "Send Device Event", with SAS tokens checked
    /// against --devices), `amqps://HOST:PORT?cert=FILE&key=FILE` or `amqp://HOST:PORT`
    /// (devices over AMQP 1.0 with CBS SAS tokens, as IoT Hub's AMQP endpoint), or
    /// `jetstream://HOST:PORT/STREAM?consumer=NAME` (the stream `hubroute bridge` fills, shared
    /// with every process naming the same consumer; also `ack_wait=30s`, `max_ack_pending=N`).
    #[arg(long, default_value = "-")]
    pub(crate) input: String,
    /// Bind an endpoint to a sink: NAME=URL with URL `file:PATH` (JSON Lines), `stdout:`,
    /// `storage:DIR` (IoT Hub Storage-endpoint files: Avro or JSON, named by the endpoint's
    /// fileNameFormat), `mqtt://HOST:PORT/TOPIC` (QoS 1 to TOPIC/{property bag}),
    /// `nats://HOST:PORT/SUBJECT` or `jetstream://HOST:PORT/SUBJECT` (properties as headers).
    /// Every endpoint a route can reach must be bound, each once. A `file:` sink appends across
    /// runs; a Storage sink never overwrites: a file name that exists gets `-1`, `-2`, ...
    /// (read its Avro with `hubroute inspect DIR`). A broker sink names system properties as
    /// the endpoint's kind does (`?names=edge|eventHubs|serviceBus|storage|eventGrid` to choose).
    #[arg(long = "sink", value_name = "NAME=URL")]
    sinks: Vec<String>,
    /// Where undeliverable and invalid messages go, with the reason (JSON Lines, appended
    /// across runs; by default hubroute-dead-letter.jsonl in the current directory).
    #[arg(long, default_value = "hubroute-dead-letter.jsonl")]
    dead_letter: PathBuf,
    /// A directory of device twins (`<deviceId>.json`, `<deviceId>/<moduleId>.json`): their
    /// tags and desired properties, taken into the twins the router keeps in its store (a twin
    /// first seen as it is; later edits, e.g. by `hubroute twin set`, as changes routed as
    /// TwinChangeEvents). Watched while the router runs (see --twin-poll).
    #[arg(long)]
    pub(crate) twin_dir: Option<PathBuf>,
    /// How often a running router looks for changes of --twin-dir and --devices (e.g. 1s,
    /// 200ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub(crate) twin_poll: Duration,
    /// The hub name for `$iothubname` and storage file names, when the configuration does
    /// not name the hub.
    #[arg(long, default_value = "hubroute")]
    pub(crate) hub_name: String,
    /// The source of messages that carry no "source" field.
    #[arg(long, default_value = "DeviceMessages")]
    source: String,
    /// The protocol the messages arrived by, for IoT Hub's property charset rules
    /// (mqtt, amqp, https, c2d).
    #[arg(long, default_value = "mqtt")]
    protocol: String,
    /// Attempts per batch before its copies go to the dead letter (code E0504); 0, the
    /// default, retries for as long as the endpoint's --retention-time allows (then E0508).
    /// Errors that can never succeed go to the dead letter at once (E0502).
    #[arg(long, default_value_t = 0)]
    max_attempts: u32,
    /// The longest wait between two attempts (e.g. 10s, 500ms); waits double from 100 ms.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    max_backoff: Duration,
    /// The durable store: accepted messages wait here until every endpoint has them, also
    /// across restarts (one process per directory).
    #[arg(long, default_value = "hubroute-store")]
    pub(crate) store: PathBuf,
    /// Stored bytes at which the input pauses until endpoints catch up (never drops).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes_arg)]
    store_max_bytes: u64,
    /// A copy not delivered this long after acceptance goes to the dead letter (E0508); an
    /// endpoint failing this long is "dead". IoT Hub's documented figure is about 1 hour.
    #[arg(long, default_value = "1h", value_parser = parse_duration_arg)]
    retention_time: Duration,
    /// A failing endpoint's waiting copies beyond this many bytes go to the dead letter (E0509).
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes_arg)]
    retention_bytes: u64,
    /// When the input ends (or on Ctrl-C/SIGTERM): how long to wait for endpoints to deliver
    /// what is stored. What is left stays in the store for the next run.
    #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
    pub(crate) drain_timeout: Duration,
    /// The longest input line; longer ones are dead-lettered (E0905) and reading goes on.
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes_arg)]
    max_line_bytes: u64,
    /// With a broker input: the MQTT client id (its broker session holds unacknowledged
    /// messages while the router is away).
    #[arg(long, default_value = "hubroute-router")]
    pub(crate) client_id: String,
    /// The device registry, a JSON object of deviceId to identity (IoT Hub's device shape with
    /// keys and status, or just the generation id, stamped as connectionDeviceGenerationId);
    /// unknown (E0605) and disabled senders are rejected; HTTPS and AMQP devices authenticate
    /// with SAS tokens signed with their keys. Watched while the router runs: a device added or
    /// removed (`hubroute device`) is routed as DeviceLifecycleEvents.
    #[arg(long)]
    pub(crate) devices: Option<PathBuf>,
    /// With an HTTPS or AMQP input: the hub host name devices sign their SAS tokens for (default
    /// `{hub-name}.azure-devices.net`).
    #[arg(long)]
    pub(crate) hub_host: Option<String>,
    /// With a broker input: messages read but not yet delivered everywhere, at most.
    #[arg(long, default_value_t = 2000)]
    pub(crate) max_in_flight: usize,
    /// With a broker input: stop after this long without a message (default: run until
    /// interrupted with Ctrl-C or SIGTERM).
    #[arg(long, value_parser = parse_duration_arg)]
    pub(crate) exit_when_idle: Option<Duration>,
    /// Do not show a progress line even on a terminal.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    pub(crate) ops: crate::ops_args::RouteOpsArgs,
}

/// `1GiB`, `256MiB`, `64KiB`, `10MB` or plain bytes.
pub(crate) fn parse_bytes_arg(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(format!("'{text}' is not a size (e.g. 1GiB, 256MiB, 4096)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes))
        .ok_or_else(|| format!("'{text}' is not a size (e.g. 1GiB, 256MiB, 4096)"))
}

/// `30s`, `500ms`, `2m` or plain seconds.
/// A `--sink` or `--input` value as messages may print it: a broker URL loses its password,
/// token and secret-bearing parameters ([`hubroute::redact::url`]), even when mistyped.
pub(crate) fn shown(text: &str) -> String {
    hubroute::redact::url(text)
}

pub(crate) fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    hubroute::sink::parse_duration(text)
        .ok_or_else(|| format!("'{text}' is not a duration (e.g. 30s, 500ms)"))
}

pub(crate) fn parse_protocol(p: &str) -> Result<Protocol, String> {
    match p.to_ascii_lowercase().as_str() {
        "mqtt" => Ok(Protocol::Mqtt),
        "amqp" => Ok(Protocol::Amqp),
        "https" | "http" => Ok(Protocol::Https),
        "c2d" | "cloudtodevice" => Ok(Protocol::CloudToDevice),
        _ => Err(format!("--protocol: '{p}' is not mqtt, amqp, https or c2d")),
    }
}

/// Builds the sink a `--sink NAME=URL` asks for.
/// The sink `url` names for endpoint `name`; `ep` is its definition in the starting routes
/// (its Storage settings and its kind's property naming), `None` for an endpoint only a
/// reloaded configuration defines (then Storage defaults and the URL's own naming).
fn make_sink(
    name: &str,
    ep: Option<&hubroute::route::Endpoint>,
    hub_name: &str,
    url: &str,
) -> Result<Box<dyn Sink>, String> {
    if url == "stdout:" || url == "stdout" {
        return Ok(Box::new(JsonLinesSink::stdout()));
    }
    if let Some(path) = url.strip_prefix("file:") {
        if path.is_empty() {
            return Err(format!(
                "--sink {}={url}: the file path is empty (file:PATH, e.g. file:out/{}.jsonl)",
                name, name
            ));
        }
        return JsonLinesSink::to_path(PathBuf::from(path))
            .map(|s| Box::new(s) as Box<dyn Sink>)
            .map_err(|e| format!("--sink {}: {e}", name));
    }
    if let Some(dir) = url.strip_prefix("storage:") {
        let mut config = StorageConfig::new(PathBuf::from(dir), hub_name);
        if let Some(s) = ep.and_then(|e| e.storage.as_ref()) {
            if let Some(e) = &s.encoding {
                config.encoding = e
                    .parse::<StorageEncoding>()
                    .map_err(|e| format!("--sink {}: {e}", name))?;
            }
            if let Some(f) = &s.file_name_format {
                config.file_name_format = f.clone();
            }
            if let Some(secs) = s.batch_frequency_in_seconds {
                config.batch_frequency = Duration::from_secs(secs.max(0) as u64);
            }
            if let Some(bytes) = s.max_chunk_size_in_bytes {
                config.max_chunk_size_bytes = bytes.max(0) as u64;
            }
        }
        return StorageSink::new(config)
            .map(|s| Box::new(s) as Box<dyn Sink>)
            .map_err(|e| format!("--sink {}: {e}", name));
    }
    if url.contains("://") {
        // A broker sink stands in for the endpoint: it names system properties as that kind does.
        let url = match ep {
            Some(ep) => hubroute::message::naming::with_endpoint_naming(url, ep.kind.key()),
            None => url.to_string(),
        };
        return crate::live::broker_sink(name, &url);
    }
    let url = shown(url);
    Err(format!(
        "--sink {}={url}: unknown sink URL (use file:PATH, stdout:, storage:DIR, \
         mqtt://HOST:PORT/TOPIC, nats://HOST:PORT/SUBJECT or jetstream://HOST:PORT/SUBJECT)",
        name
    ))
}

/// Endpoints some enabled route (or the enabled fallback) can send to.
fn reachable(table: &RouteTable) -> Vec<EndpointId> {
    let mut ids: Vec<EndpointId> = table
        .routes()
        .iter()
        .chain(table.fallback())
        .filter(|r| r.enabled)
        .map(|r| r.endpoint)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Counts of what the input held, for the summary: every line (or broker message) read ends
/// in exactly one of `valid`, `invalid` or `blank`.
#[derive(Default)]
pub(crate) struct InputStats {
    pub read: u64,
    pub blank: u64,
    pub valid: u64,
    pub invalid: BTreeMap<&'static str, u64>,
    /// Why reading stopped early, if it did (an I/O error).
    pub read_error: Option<String>,
}

impl InputStats {
    pub(crate) fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }
}

/// The pipeline's settings from the arguments.
pub(crate) fn pipeline_config(
    args: &RunArgs,
    table: &RouteTable,
) -> Result<PipelineConfig, String> {
    let mut config = PipelineConfig::new(&args.store, table.hub_name());
    config.max_store_bytes = args.store_max_bytes;
    config.retention = Retention {
        time: args.retention_time,
        bytes: args.retention_bytes,
    };
    config.retry = RetryPolicy {
        max_attempts: args.max_attempts,
        max_backoff: args.max_backoff,
        ..RetryPolicy::default()
    };
    config.protocol = parse_protocol(&args.protocol)?;
    config.default_source = args.source.parse().map_err(|e| format!("--source: {e}"))?;
    Ok(config)
}

pub fn run(args: RunArgs) -> Result<ExitCode, String> {
    crate::logging::init(&args.ops.observe.log)?;
    let table = match load_table_in(&args.routes, &args.hub_name, args.dialect)? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let config = pipeline_config(&args, &table)?;

    // Bind every reachable endpoint, refuse unknown or missing bindings.
    let mut bound: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    for raw in &args.sinks {
        // What error messages may print: a broker URL without its secrets.
        let spec = &shown(raw);
        let (name, url) = raw
            .split_once('=')
            .ok_or_else(|| format!("--sink {spec}: expected NAME=URL"))?;
        if bound.contains_key(name) {
            return Err(format!(
                "--sink {spec}: endpoint '{name}' is already bound; give each endpoint one --sink"
            ));
        }
        if name.is_empty() {
            return Err(format!("--sink {spec}: the endpoint name is empty"));
        }
        let endpoint = table.endpoint_id(name).map(|id| table.endpoint(id));
        if endpoint.is_none() {
            // A name the routes lack is an endpoint a reload will add (issue 17): bind it now
            // so the reload can route to it. A typo is still caught: the endpoint it misspells
            // stays unbound, which the check below refuses if a route reaches it; and this
            // line names it either way.
            eprintln!("sink for endpoint {name} is bound; no route uses it yet");
        }
        bound.insert(
            name.to_string(),
            make_sink(name, endpoint, table.hub_name(), url)?,
        );
    }
    let missing: Vec<&str> = reachable(&table)
        .into_iter()
        .map(|id| table.endpoint(id).name.as_str())
        .filter(|n| !bound.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "refusing to start: no sink bound for endpoint{} {} (add --sink NAME=file:PATH, stdout: or storage:DIR)",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }

    let dead_letter = DeadLetter::to_path(&args.dead_letter)
        .map_err(|e| format!("--dead-letter {}: {e}", args.dead_letter.display()))?;
    let invalid_log = open_invalid_log(&args.dead_letter)?;
    let bound_names: std::collections::BTreeSet<String> = bound.keys().cloned().collect();
    let observed = crate::ops_wiring::Observed::new(table.clone(), &bound_names);
    let max_store_bytes = config.max_store_bytes;
    let mut pipeline =
        Pipeline::open(config, table, bound, dead_letter).map_err(|e| e.to_string())?;
    let observed = Arc::new(observed.with_pipeline(&pipeline, max_store_bytes));
    // Per-route counts and undefined-route logs, when metrics or --log-undefined ask.
    let undefined_limit = args
        .ops
        .log_undefined
        .map(|n| hubroute::ops::RateLimit::new(n, Duration::from_secs(1)));
    if args.ops.observe.metrics.is_some() || undefined_limit.is_some() {
        let observer = Arc::clone(&observed);
        pipeline.set_observer(Arc::new(move |table, message, source, twin, routing| {
            let mut batch = hubroute::ops::Batch::default();
            observer.observe(
                &mut batch,
                table,
                message,
                source,
                twin,
                routing,
                undefined_limit.as_ref(),
            );
            observer.counters.add(&batch);
        }));
    }
    // Reloads (SIGHUP, --watch) swap the table the next message (the next chunk of a file)
    // is routed by, for every input; the endpoints and sinks stay those bound at start.
    let tables = pipeline.tables();
    let _reloader = crate::reload::spawn(
        Arc::clone(&observed.live),
        crate::reload::ReloadPlan {
            routes: args.routes.clone(),
            hub_name: args.hub_name.clone(),
            bound: bound_names,
        },
        args.ops.watch,
        Box::new(move |current| tables.set(Arc::new(current.table.clone()))),
    )?;
    let recovered = pipeline.stats().recovered_copies;
    if recovered > 0 {
        eprintln!(
            "store {}: {recovered} copies from an earlier run are being delivered first",
            args.store.display()
        );
    }

    // The twins the router keeps (reported properties, and the twin directory's tags and
    // desired properties as last taken in), kept in step with the files (twin_watch.rs).
    let live_twins = LiveTwins::open(
        &args.store,
        pipeline.table().hub_name(),
        args.twin_dir.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    // Twins that cannot be used make $twin undefined: say so (once each), not silently.
    if let Some(p) = live_twins
        .fallback()
        .and_then(DirTwinStore::directory_problem)
    {
        eprintln!("warning[{}]: {p}", p.code());
    }
    let watch = crate::twin_watch::WatchPlan {
        twin_dir: args.twin_dir.clone(),
        devices: args.devices.clone(),
        poll: args.twin_poll,
    };
    let mut watch_state = crate::twin_watch::WatchState::default();
    crate::twin_watch::sync_once(&live_twins, &pipeline, &watch, &mut watch_state);
    let resolver = Some(&live_twins);

    if args.input.contains("://") {
        // The broker input is ready once subscribed or pulling (live.rs says so).
        let _metrics = observed.serve(&args.ops.observe, false)?;
        let live = crate::live::Live {
            observed: Arc::clone(&observed),
            pipeline,
            twin: resolver.map(|r| r as &(dyn TwinLookup + Sync)),
            invalid_log: std::sync::Mutex::new(invalid_log),
            twins: &live_twins,
            watch,
            watch_state,
        };
        return crate::live::run(&args, live);
    }
    let _metrics = observed.serve(&args.ops.observe, true)?;
    let started = Instant::now();
    let input =
        crate::twin_watch::while_watching(&live_twins, &pipeline, &watch, watch_state, || {
            read_lines(&args, &pipeline, resolver, invalid_log, &observed)
        });
    observed.set_input_connected(false);
    let stats = pipeline.shutdown(args.drain_timeout);
    if let Some(twins) = live_twins.fallback() {
        // The first few in full; a fleet without twins is one line, not one per device.
        let problems = twins.problems();
        for p in problems.iter().take(3) {
            eprintln!("warning[{}]: {p}", p.code());
        }
        let more = twins.problem_count().saturating_sub(3);
        if more > 0 {
            eprintln!("warning: {more} more devices whose twin could not be used ($twin values undefined)");
        }
    }
    let code = report(&input, &stats, started.elapsed(), &args);
    Ok(if input.read_error.is_some() {
        ExitCode::from(2)
    } else {
        code
    })
}

/// The records a Storage endpoint wrote (`.avro` or `.json` files, or a directory of them), as
/// numbered lines of message JSON, so captured traffic is routed again exactly like JSON Lines;
/// a file or record that cannot be read is an invalid line with its code (E0520, E0521) and
/// where it was.
fn replayed_lines(path: &std::path::Path) -> impl Iterator<Item = Line> {
    hubroute::sink::replay::Replay::open(path)
        .zip(1u64..)
        .map(|(item, number)| Line {
            number,
            content: match item {
                Ok(record) => LineContent::Text(record.message.to_json_value().to_string()),
                Err(e) => LineContent::Invalid {
                    code: e.code,
                    reason: e.to_string(),
                    raw: serde_json::json!({
                        "file": e.file.display().to_string(),
                        "record": e.record,
                    }),
                },
            },
        })
}

/// Reads the input to its end through the library's `feed_lines`: a file's chunks of 1024
/// lines are routed in parallel and accepted in one durable commit each (small enough that the
/// last chunk's commit and delivery, which nothing overlaps, stay short; 4096 took a quarter
/// of a 10k-line run); standard input goes
/// line by line, so that a live stream is routed as it arrives; Storage output is replayed
/// record by record ([`replayed_lines`]).
fn read_lines(
    args: &RunArgs,
    pipeline: &Pipeline,
    resolver: Option<&LiveTwins>,
    mut invalid_log: InvalidLog,
    observed: &crate::ops_wiring::Observed,
) -> InputStats {
    let mut stats = InputStats::default();
    let max_line = usize::try_from(args.max_line_bytes).unwrap_or(usize::MAX);
    let path = std::path::Path::new(&args.input);
    // A file is read by `feed_reader` (lines into reused chunk strings), the others as lines.
    type FileLines = LineReader<std::io::BufReader<std::fs::File>>;
    let (lines, chunk_size): (Result<FileLines, Box<dyn Iterator<Item = Line>>>, usize) =
        if args.input == "-" {
            let stdin = std::io::stdin().lock();
            (Err(Box::new(LineReader::new(stdin, max_line))), 1)
        } else if hubroute::sink::replay::is_storage_path(path) {
            (Err(Box::new(replayed_lines(path))), 4096)
        } else {
            match std::fs::File::open(&args.input) {
                Ok(f) => {
                    let reader = std::io::BufReader::with_capacity(1 << 16, f);
                    (Ok(LineReader::new(reader, max_line)), 1024)
                }
                Err(e) => {
                    stats.read_error = Some(format!("cannot read {}: {e}", args.input));
                    eprintln!("error: cannot read {}: {e}", args.input);
                    return stats;
                }
            }
        };
    let progress = !args.quiet && std::io::stderr().is_terminal() && !crate::logging::json();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    // What the metrics have of the input so far (the report counts from the start).
    let mut counted = hubroute::ops::Batch::default();
    let twin = resolver.map(|r| r as &(dyn TwinLookup + Sync));
    let mut on_invalid = |bad: InvalidLine| {
        if crate::logging::json() {
            tracing::warn!(input = %args.input, line = bad.line, code = bad.code, reason = %bad.reason, "invalid message");
        } else {
            eprintln!(
                "{}:{}: invalid message [{}]: {}",
                args.input, bad.line, bad.code, bad.reason
            );
        }
        invalid_log.write_line(bad.line, bad.code, &bad.reason, bad.raw);
    };
    let mut on_progress = |so_far: &LinesReport| {
        let mut delta = hubroute::ops::Batch {
            read: so_far.read - counted.read,
            ..Default::default()
        };
        for (code, n) in &so_far.invalid {
            let before = counted.invalid.get(code).copied().unwrap_or(0);
            if *n > before {
                delta.invalid.insert(code, n - before);
            }
        }
        observed.counters.add(&delta);
        counted.read = so_far.read;
        counted.invalid.clone_from(&so_far.invalid);
        if progress && last_progress.elapsed() > Duration::from_millis(200) {
            last_progress = Instant::now();
            let rate = so_far.read as f64 / started.elapsed().as_secs_f64().max(1e-9);
            // Per endpoint in one line that `\r` can redraw: the copies delivered of those
            // routed, and the endpoint furthest behind.
            let stats = pipeline.stats();
            let routed: u64 = stats.endpoints.iter().map(|e| e.routed).sum();
            let delivered: u64 = stats.endpoints.iter().map(|e| e.delivered).sum();
            let behind = stats
                .endpoints
                .iter()
                .filter(|e| e.backlog > 0)
                .max_by_key(|e| e.backlog)
                .map(|e| format!(", furthest behind '{}' ({} waiting)", e.name, e.backlog))
                .unwrap_or_default();
            eprint!(
                    "\r{} lines, {} invalid, {:.0} lines/s, {delivered} of {routed} copies delivered{behind}   ",
                    so_far.read,
                    so_far.invalid_total(),
                    rate
                );
            let _ = std::io::stderr().flush();
        }
    };
    let report = match lines {
        Ok(reader) => feed_reader(
            pipeline,
            reader,
            chunk_size,
            twin,
            &mut on_invalid,
            &mut on_progress,
        ),
        Err(lines) => feed_lines(
            pipeline,
            lines,
            chunk_size,
            twin,
            &mut on_invalid,
            &mut on_progress,
        ),
    };
    if progress {
        eprintln!();
    }
    if let Some(e) = &report.stopped {
        eprintln!("error: {}: {e}", args.input);
    }
    InputStats {
        read: report.read,
        blank: report.blank,
        valid: report.valid,
        invalid: report.invalid,
        read_error: report.stopped,
    }
}

fn millis(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}ms", d.as_secs_f64() * 1e3))
}

/// The summary on standard error (always printed); exit code 1 when anything was
/// dead-lettered in delivery or copies are left undelivered in the store.
pub(crate) fn report(
    input: &InputStats,
    stats: &PipelineStats,
    elapsed: Duration,
    args: &RunArgs,
) -> ExitCode {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "read {} messages in {:.3}s ({:.0} msg/s)",
        input.read,
        elapsed.as_secs_f64(),
        input.read as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    let codes: Vec<String> = input
        .invalid
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "  valid {} + invalid {} + blank {} = read {}",
        input.valid,
        input.invalid_total(),
        input.blank,
        input.read
    );
    let _ = writeln!(
        out,
        "  invalid: {} ({}dead-lettered to {})",
        input.invalid_total(),
        if codes.is_empty() {
            String::new()
        } else {
            format!("{}; ", codes.join(", "))
        },
        args.dead_letter.display()
    );
    let _ = writeln!(out, "  accepted into the store: {}", stats.accepted);
    let _ = writeln!(out, "  fallback: {}", stats.fallback);
    let _ = writeln!(out, "  matched no route and dropped: {}", stats.unrouted);
    if stats.recovered_copies > 0 {
        let _ = writeln!(
            out,
            "  copies recovered from the store at start: {}",
            stats.recovered_copies
        );
    }
    let mut dead_total = 0;
    let mut backlog_total = 0;
    for e in &stats.endpoints {
        dead_total += e.dead_lettered_total();
        backlog_total += e.backlog;
        let dead: String = e
            .dead_lettered
            .iter()
            .map(|(c, n)| format!(" {c}: {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  {}: routed {}, delivered {}, dead-lettered {}{}, retries {}, backlog {}, health {}{}, latency p50 {} p99 {}",
            e.name,
            e.routed,
            e.delivered,
            e.dead_lettered_total(),
            if dead.is_empty() { String::new() } else { format!(" ({})", dead.trim_start()) },
            e.retries,
            e.backlog,
            e.health,
            e.reason
                .as_deref()
                .or(e.last_error.as_deref())
                .map(|r| format!(" (last error: {r})"))
                .unwrap_or_default(),
            millis(e.latency_p50),
            millis(e.latency_p99),
        );
    }
    let _ = writeln!(
        out,
        "  dead-lettered in delivery: {dead_total}; left in the store {} for the next run: {backlog_total}",
        args.store.display()
    );
    if dead_total + backlog_total > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The input's dead letter (invalid lines and broker messages, with their reason), so that
/// nothing read is lost; the error names the option.
pub(crate) fn open_invalid_log(path: &std::path::Path) -> Result<InvalidLog, String> {
    InvalidLog::open(path).map_err(|e| format!("--dead-letter {}: {e}", path.display()))
}
