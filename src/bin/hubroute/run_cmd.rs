//! `hubroute run`: the router's command line. It parses the arguments, binds the sinks, opens
//! the library's durable [`Pipeline`] (accept into the store, deliver per endpoint) and feeds
//! it from the input: a JSON Lines file or standard input here, a live input in `live`
//! (arguments in `run_args`, sinks bound in `bind_sinks`, the summary in `summary`). Nothing is
//! dropped silently: a line that is not a message is reported with its line number and code,
//! counted and dead-lettered, and the stream goes on; the summary always prints.

use crate::logging::{say, Level};
use crate::output::{err, errln};
use crate::routes_cmd::load_table_in;
use crate::run_args::{open_invalid_log, pipeline_config, RunArgs};
use crate::summary::report;
use hubroute::eval::TwinLookup;
use hubroute::pipeline::input::{
    feed_lines, feed_reader, InvalidLine, InvalidLog, Line, LineContent, LineReader, LinesReport,
};
use hubroute::pipeline::Pipeline;
use hubroute::route::DirTwinStore;
use hubroute::sink::DeadLetter;
use hubroute::twin::LiveTwins;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(args: RunArgs) -> Result<ExitCode, String> {
    crate::logging::init(&args.ops.observe.log)?;
    let table = match load_table_in(&args.routes, &args.hub_name, args.dialect)? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let config = pipeline_config(&args, &table)?;

    let bound = crate::bind_sinks::bind(&args.sinks, &table)?;

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
        say(
            Level::Info,
            &format!(
                "store {}: {recovered} copies from an earlier run are being delivered first",
                args.store.display()
            ),
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
        say(Level::Warn, &format!("warning[{}]: {p}", p.code()));
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
        // The device servers (HTTPS, AMQP) and the broker inputs (MQTT, JetStream) all run
        // through `live::serve`.
        #[cfg(feature = "https")]
        if hubroute::pipeline::input::https::is_http_url(&args.input) {
            return crate::https_cmd::run(&args, live);
        }
        #[cfg(feature = "amqp")]
        if args.input.starts_with("amqp://") || args.input.starts_with("amqps://") {
            return crate::amqp_input::run(&args, live);
        }
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
            say(Level::Warn, &format!("warning[{}]: {p}", p.code()));
        }
        let more = twins.problem_count().saturating_sub(3);
        if more > 0 {
            say(Level::Warn, &format!("warning: {more} more devices whose twin could not be used ($twin values undefined)"));
        }
    }
    let code = report(&input, &stats, started.elapsed(), &args);
    Ok(if input.stopped.is_some() {
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
) -> LinesReport {
    let mut stats = LinesReport::default();
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
                    stats.stopped = Some(format!("cannot read {}: {e}", args.input));
                    say(
                        Level::Error,
                        &format!("error: cannot read {}: {e}", args.input),
                    );
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
            errln!(
                "{}:{}: invalid message [{}]: {}",
                args.input,
                bad.line,
                bad.code,
                bad.reason
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
            err!(
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
        errln!();
    }
    if let Some(e) = &report.stopped {
        say(Level::Error, &format!("error: {}: {e}", args.input));
    }
    report
}
