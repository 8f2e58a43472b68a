//! `hubroute run`: the router. Reads messages (JSON Lines), validates them, routes each to
//! its endpoints, applies enrichments, and delivers through the bound sinks with retries and a
//! dead letter. Nothing is dropped silently: an invalid line is reported with its line number,
//! counted and dead-lettered, and the stream goes on.

use crate::routes_cmd::load_table;
use clap::Args;
use hubroute::eval::TwinLookup;
use hubroute::message::{Message, Protocol, Source};
use hubroute::route::{DirTwinStore, EndpointId, RouteTable, Router, Routing, TwinResolver};
use hubroute::sink::{
    DeadLetter, Dispatcher, DispatcherConfig, Envelope, JsonLinesSink, RetryPolicy, Sink,
    StorageConfig, StorageEncoding, StorageSink,
};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Args)]
pub struct RunArgs {
    /// The routing configuration (as for `test`).
    #[arg(long)]
    routes: PathBuf,
    /// Where messages come from: a JSON Lines file (`-` for standard input, the default),
    /// `mqtt://HOST:PORT` (devices publishing to IoT Hub's device-to-cloud topics), or
    /// `jetstream://HOST:PORT/STREAM?consumer=NAME` (the stream `hubroute bridge` fills, shared
    /// with every process naming the same consumer; also `ack_wait=30s`, `max_ack_pending=N`).
    #[arg(long, default_value = "-")]
    pub(crate) input: String,
    /// Bind an endpoint to a sink: NAME=URL with URL `file:PATH` (JSON Lines), `stdout:`,
    /// `storage:DIR` (IoT Hub Storage-endpoint files: Avro or JSON, named by the endpoint's
    /// fileNameFormat), `mqtt://HOST:PORT/TOPIC` (QoS 1 to TOPIC/{property bag}),
    /// `nats://HOST:PORT/SUBJECT` or `jetstream://HOST:PORT/SUBJECT` (properties as headers).
    /// Every endpoint a route can reach must be bound.
    #[arg(long = "sink", value_name = "NAME=URL")]
    sinks: Vec<String>,
    /// Where undeliverable and invalid messages go, with the reason (JSON Lines).
    #[arg(long, default_value = "hubroute-dead-letter.jsonl")]
    dead_letter: PathBuf,
    /// A directory of device twins (`<deviceId>.json`) for `$twin` and enrichments.
    #[arg(long)]
    twin_dir: Option<PathBuf>,
    /// The hub name for `$iothubname` and storage file names, when the configuration does
    /// not name the hub.
    #[arg(long, default_value = "hubroute")]
    hub_name: String,
    /// The source of messages that carry no "source" field.
    #[arg(long, default_value = "DeviceMessages")]
    source: String,
    /// The protocol the messages arrived by, for IoT Hub's property charset rules
    /// (mqtt, amqp, https, c2d).
    #[arg(long, default_value = "mqtt")]
    protocol: String,
    /// Attempts per batch before a sink's messages go to the dead letter.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// The longest wait between two attempts (e.g. 10s, 500ms); waits double from 100 ms.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    max_backoff: Duration,
    /// With a broker input: the MQTT client id (its broker session holds unacknowledged
    /// messages while the router is away).
    #[arg(long, default_value = "hubroute-router")]
    pub(crate) client_id: String,
    /// With an MQTT input: a device registry, a JSON object of deviceId to generation id
    /// (stamped as connectionDeviceGenerationId); unknown senders are rejected (E0605).
    #[arg(long)]
    pub(crate) devices: Option<PathBuf>,
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

/// `30s`, `500ms`, `2m` or plain seconds.
pub(crate) fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    hubroute::sink::parse_duration(text)
        .ok_or_else(|| format!("'{text}' is not a duration (e.g. 30s, 500ms)"))
}

/// One input line after parsing, validation and routing.
enum Item {
    Invalid {
        line_no: usize,
        code: &'static str,
        reason: String,
        raw: serde_json::Value,
    },
    Routed {
        line_no: usize,
        /// Boxed: a message is much larger than an invalid line's report.
        message: Box<Message>,
        source: Source,
        routing: Routing,
    },
}

/// Parses, validates and routes one line (runs on rayon's threads).
fn process(
    router: &mut Router<'_>,
    line_no: usize,
    line: &str,
    protocol: Protocol,
    default_source: Source,
    twin: Option<&TwinResolver<'_>>,
) -> Item {
    let message = match Message::from_json_str(line) {
        Ok(m) => m,
        Err(e) => {
            return Item::Invalid {
                line_no,
                code: e.code(),
                reason: e.to_string(),
                raw: serde_json::Value::String(line.to_string()),
            }
        }
    };
    let twin = twin.map(|t| t as &dyn TwinLookup);
    match validate_and_route(router, &message, protocol, default_source, twin) {
        Ok((source, routing)) => Item::Routed {
            line_no,
            message: Box::new(message),
            source,
            routing,
        },
        Err((code, reason)) => Item::Invalid {
            line_no,
            code,
            reason,
            raw: message.to_json_value(),
        },
    }
}

/// Applies IoT Hub's message rules for `protocol`, then routes a valid message: its source and
/// routing, or the first violation's code with every violation in one reason. Shared by file
/// input and the live (broker) inputs, so both judge and route a message alike.
pub(crate) fn validate_and_route(
    router: &mut Router<'_>,
    message: &Message,
    protocol: Protocol,
    default_source: Source,
    twin: Option<&dyn TwinLookup>,
) -> Result<(Source, Routing), (&'static str, String)> {
    let violations = message.validate(protocol);
    if let Some(first) = violations.first() {
        let reasons: Vec<String> = violations
            .iter()
            .map(|v| format!("[{}] {}", v.code, v.message))
            .collect();
        return Err((first.code, reasons.join("; ")));
    }
    let source = message.source.unwrap_or(default_source);
    let routing = match twin {
        Some(t) => router.route_with_twin(message, source, t),
        None => router.route(message, source),
    };
    Ok((source, routing))
}

/// Counts for the final report.
#[derive(Default)]
pub(crate) struct Stats {
    pub read: u64,
    pub invalid: u64,
    pub routed: BTreeMap<String, u64>,
    pub fallback: u64,
    pub unrouted: u64,
}

impl Stats {
    /// Counts a routed message that matched nothing or went to the fallback route.
    pub(crate) fn count_routing(&mut self, routing: &Routing) {
        if routing.endpoints.is_empty() {
            self.unrouted += 1;
        }
        if routing.fallback {
            self.fallback += 1;
        }
    }
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
fn make_sink(table: &RouteTable, endpoint: EndpointId, url: &str) -> Result<Box<dyn Sink>, String> {
    let ep = table.endpoint(endpoint);
    if url == "stdout:" || url == "stdout" {
        return Ok(Box::new(JsonLinesSink::stdout()));
    }
    if let Some(path) = url.strip_prefix("file:") {
        return JsonLinesSink::to_path(PathBuf::from(path))
            .map(|s| Box::new(s) as Box<dyn Sink>)
            .map_err(|e| format!("--sink {}: {e}", ep.name));
    }
    if let Some(dir) = url.strip_prefix("storage:") {
        let mut config = StorageConfig::new(PathBuf::from(dir), table.hub_name());
        if let Some(s) = &ep.storage {
            if let Some(e) = &s.encoding {
                config.encoding = e
                    .parse::<StorageEncoding>()
                    .map_err(|e| format!("--sink {}: {e}", ep.name))?;
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
            .map_err(|e| format!("--sink {}: {e}", ep.name));
    }
    if url.contains("://") {
        return crate::live::broker_sink(&ep.name, url);
    }
    Err(format!(
        "--sink {}={url}: unknown sink URL (use file:PATH, stdout:, storage:DIR, \
         mqtt://HOST:PORT/TOPIC, nats://HOST:PORT/SUBJECT or jetstream://HOST:PORT/SUBJECT)",
        ep.name
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

pub fn run(args: RunArgs) -> Result<ExitCode, String> {
    crate::logging::init(&args.ops.observe.log)?;
    let table = match load_table(&args.routes, &args.hub_name)? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let default_source: Source = args.source.parse().map_err(|e| format!("--source: {e}"))?;
    let protocol = parse_protocol(&args.protocol)?;

    // Bind every reachable endpoint, refuse unknown or missing bindings.
    let mut bound: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    for spec in &args.sinks {
        let (name, url) = spec
            .split_once('=')
            .ok_or_else(|| format!("--sink {spec}: expected NAME=URL"))?;
        let id = table.endpoint_id(name).ok_or_else(|| {
            let names: Vec<&str> = table.endpoints().iter().map(|e| e.name.as_str()).collect();
            format!(
                "--sink {spec}: no endpoint named '{name}' (endpoints: {})",
                names.join(", ")
            )
        })?;
        bound.insert(name.to_string(), make_sink(&table, id, url)?);
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
    let mut invalid_log = InvalidLog::open(&args.dead_letter)?;
    let config = DispatcherConfig {
        retry: RetryPolicy {
            max_attempts: args.max_attempts.max(1),
            max_backoff: args.max_backoff,
            ..RetryPolicy::default()
        },
        ..DispatcherConfig::default()
    };
    let bound_names: std::collections::BTreeSet<String> = bound.keys().cloned().collect();
    let dispatcher = Dispatcher::new(bound, dead_letter, config).map_err(|e| e.to_string())?;

    let store = args.twin_dir.as_ref().map(DirTwinStore::new);
    let resolver = store.as_ref().map(|s| TwinResolver::new(s));
    let twin: Option<&dyn TwinLookup> = resolver.as_ref().map(|r| r as &dyn TwinLookup);

    if args.input.contains("://") {
        let pipeline = crate::live::Pipeline {
            table: &table,
            twin,
            protocol,
            default_source,
            dispatcher,
            invalid_log: std::sync::Mutex::new(invalid_log),
            dead_letter_path: args.dead_letter.clone(),
        };
        // Broker inputs route with the table they started with (see the README's
        // "Operating the router"); SIGHUP says so instead of ending the process.
        let _sighup = crate::ops_wiring::refuse_reload_for_broker_inputs()?;
        let _metrics = crate::ops_wiring::Observed::new(table.clone(), &bound_names)
            .serve(&args.ops.observe, true)?;
        return crate::live::run(&args, pipeline);
    }
    let observed = crate::ops_wiring::Observed::new(table, &bound_names);
    let _reloader = crate::reload::spawn(
        Arc::clone(&observed.live),
        crate::reload::ReloadPlan {
            routes: args.routes.clone(),
            hub_name: args.hub_name.clone(),
            bound: bound_names.clone(),
        },
        args.ops.watch,
    )?;
    let undefined_limit = args
        .ops
        .log_undefined
        .map(|n| hubroute::ops::RateLimit::new(n, Duration::from_secs(1)));

    // A file is read in chunks that are parsed, validated and routed in parallel (rayon),
    // then dispatched in input order; standard input is handled line by line so that a live
    // stream is routed as it arrives.
    let (reader, chunk_size): (Box<dyn BufRead>, usize) = if args.input == "-" {
        (Box::new(std::io::stdin().lock()), 1)
    } else {
        let f = std::fs::File::open(&args.input)
            .map_err(|e| format!("cannot read {}: {e}", args.input))?;
        (Box::new(std::io::BufReader::new(f)), 4096)
    };
    let _metrics = observed.serve(&args.ops.observe, true)?;
    let progress = !args.quiet && std::io::stderr().is_terminal() && !crate::logging::json();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut stats = Stats::default();
    let mut sequence = 0u64;
    let mut lines = reader.lines().enumerate();
    loop {
        let mut chunk = Vec::with_capacity(chunk_size);
        for (index, line) in lines.by_ref() {
            let line = line.map_err(|e| format!("reading {}: {e}", args.input))?;
            if !line.trim().is_empty() {
                chunk.push((index + 1, line));
            }
            if chunk.len() == chunk_size {
                break;
            }
        }
        if chunk.is_empty() {
            break;
        }
        // One table for the whole chunk: a reload takes effect at the next chunk (the next
        // line on standard input), and every message is routed and fanned out by one table.
        let current = observed.live.load();
        let table = &current.table;
        let mut batch = hubroute::ops::Batch::default();
        let items: Vec<Item> = chunk
            .par_iter()
            .map_init(
                || table.router(),
                |router, (line_no, line)| {
                    process(
                        router,
                        *line_no,
                        line,
                        protocol,
                        default_source,
                        resolver.as_ref(),
                    )
                },
            )
            .collect();
        for item in items {
            stats.read += 1;
            batch.read += 1;
            let (line_no, message, source, routing) = match item {
                Item::Invalid {
                    line_no,
                    code,
                    reason,
                    raw,
                } => {
                    stats.invalid += 1;
                    *batch.invalid.entry(code).or_default() += 1;
                    if crate::logging::json() {
                        tracing::warn!(input = %args.input, line = line_no, code, reason = %reason, "invalid message");
                    } else {
                        eprintln!(
                            "{}:{line_no}: invalid message [{code}]: {reason}",
                            args.input
                        );
                    }
                    invalid_log.write(line_no, code, &reason, raw);
                    continue;
                }
                Item::Routed {
                    line_no,
                    message,
                    source,
                    routing,
                } => (line_no, message, source, routing),
            };
            stats.count_routing(&routing);
            observed.observe(
                &mut batch,
                table,
                &message,
                source,
                twin,
                &routing,
                undefined_limit.as_ref().map(|l| (l, line_no)),
            );
            let now = SystemTime::now();
            for envelope in fan_out(table, &message, source, &routing, twin, now, 0, sequence) {
                *stats.routed.entry(envelope.endpoint.clone()).or_default() += 1;
                sequence = envelope.sequence;
                if let Err(e) = dispatcher.dispatch(envelope) {
                    // Not even the dead letter accepted it: say so loudly, never silently drop.
                    eprintln!(
                        "{}:{line_no}: could not deliver or dead-letter a message for {}: {}",
                        args.input, e.envelope.endpoint, e.reason
                    );
                }
            }
        }
        observed.counters.add(&batch);
        if progress && last_progress.elapsed() > Duration::from_millis(200) {
            last_progress = Instant::now();
            let rate = stats.read as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\r{} messages, {} invalid, {:.0} msg/s   ",
                stats.read, stats.invalid, rate
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    observed.set_input_connected(false);
    let delivery = dispatcher.finish();
    report(&stats, &delivery, started.elapsed(), &args.dead_letter)
}

/// One envelope per endpoint of `routing`, enriched for that endpoint, numbered from
/// `sequence + 1`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fan_out(
    table: &RouteTable,
    message: &Message,
    source: Source,
    routing: &Routing,
    twin: Option<&dyn TwinLookup>,
    enqueued_time: SystemTime,
    partition: u32,
    sequence: u64,
) -> Vec<Envelope> {
    let mut sequence = sequence;
    routing
        .endpoints
        .iter()
        .map(|&id| {
            sequence += 1;
            Envelope {
                endpoint: table.endpoint(id).name.clone(),
                message: if table.enriches(id) {
                    table.enrich(message, id, source, twin)
                } else {
                    message.clone()
                },
                enqueued_time,
                hub_name: table.hub_name().to_string(),
                partition,
                sequence,
            }
        })
        .collect()
}

/// The final statistics on standard error; exit code 1 when anything was dead-lettered in
/// delivery or lost.
pub(crate) fn report(
    stats: &Stats,
    delivery: &hubroute::sink::DeliveryStats,
    elapsed: Duration,
    dead_letter: &std::path::Path,
) -> Result<ExitCode, String> {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "read {} messages in {:.3}s ({:.0} msg/s)",
        stats.read,
        elapsed.as_secs_f64(),
        stats.read as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    let _ = writeln!(
        out,
        "  invalid: {} (see above; dead-lettered to {})",
        stats.invalid,
        dead_letter.display()
    );
    let _ = writeln!(out, "  fallback: {}", stats.fallback);
    let _ = writeln!(out, "  matched no route and dropped: {}", stats.unrouted);
    for (name, n) in &stats.routed {
        let d = delivery.endpoint(name);
        let _ = writeln!(
            out,
            "  {name}: routed {n}, delivered {}, dead-lettered {}, retries {}{}",
            d.delivered,
            d.dead_lettered,
            d.retries,
            d.last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    let total = delivery.total();
    let _ = writeln!(
        out,
        "  dead-lettered in delivery: {} (lost: {})",
        total.dead_lettered, total.lost
    );
    Ok(if total.dead_lettered + total.lost > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Invalid input lines, appended to the dead-letter file with their line number and reason so
/// that nothing read is lost.
pub(crate) struct InvalidLog {
    file: std::fs::File,
}

impl InvalidLog {
    pub(crate) fn open(path: &std::path::Path) -> Result<Self, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|file| InvalidLog { file })
            .map_err(|e| format!("--dead-letter {}: {e}", path.display()))
    }

    fn write(&mut self, line: usize, code: &str, reason: &str, message: serde_json::Value) {
        let record = serde_json::json!({"endpoint": null, "code": code, "reason": reason, "line": line, "message": message});
        if let Err(e) = writeln!(self.file, "{record}") {
            eprintln!("cannot write the dead letter: {e}");
        }
    }

    /// Records an input that is not a routable message (`origin` says where it came from: a
    /// topic, a stream sequence); `Err` when the dead letter itself failed.
    #[cfg_attr(not(any(feature = "mqtt", feature = "nats")), allow(dead_code))]
    pub(crate) fn write_input(
        &mut self,
        origin: serde_json::Value,
        code: &str,
        reason: &str,
        message: serde_json::Value,
    ) -> std::io::Result<()> {
        let record = serde_json::json!({"endpoint": null, "code": code, "reason": reason, "input": origin, "message": message});
        writeln!(self.file, "{record}")?;
        self.file.flush()
    }
}
