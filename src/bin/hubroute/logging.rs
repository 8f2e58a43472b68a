//! The process's logs: `tracing` events on standard error, as text for people or as JSON
//! lines for a log collector, filtered RUST_LOG-style (`--log info,hubroute=debug`).
//!
//! `run` and `bridge` take `--log` and `--log-format`; the library's events (inputs, store,
//! endpoints) go the same way. Their reports (the summary at the end, one line per invalid
//! input, warnings about twins) are plain lines in text mode and events in JSON mode
//! ([`say`], [`report`]), so that a collector reads every line as JSON. The other commands
//! print the library's rare events as plain lines ([`init_plain`]). No secret reaches a log line: URLs
//! are logged through `hubroute::ops::redact::url`, and a sink's or broker's error text is
//! built by code that redacts its URL.

use crate::output::errln;
use clap::Args;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;

/// How `run` and `bridge` log.
#[derive(Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// Log format on standard error: `text` or `json` (one JSON object per line, fields at
    /// the top level).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Which events to log, RUST_LOG-style (`warn`, `info,hubroute=debug`). Default: the
    /// RUST_LOG environment variable, else `warn,hubroute=info`.
    #[arg(long = "log", value_name = "FILTER")]
    pub log_filter: Option<String>,
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether logs are JSON lines: reports that are plain text in text mode become events then,
/// so that a collector reads every line.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Installs the subscriber; an invalid filter is an error.
pub fn init(args: &LogArgs) -> Result<(), String> {
    let filter = match &args.log_filter {
        Some(f) => EnvFilter::try_new(f).map_err(|e| format!("--log {f}: {e}"))?,
        None => env_filter()?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let installed = if args.log_format == "json" {
        JSON.store(true, Ordering::Relaxed);
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|e| format!("cannot set up logging: {e}"))
}

/// How much a report line matters, for its event in JSON mode.
#[derive(Clone, Copy)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One line of a report: printed as it is in text mode, an event at `level` in JSON mode.
pub fn say(level: Level, text: &str) {
    if !json() {
        errln!("{text}");
        return;
    }
    match level {
        Level::Info => tracing::info!("{text}"),
        Level::Warn => tracing::warn!("{text}"),
        Level::Error => tracing::error!("{text}"),
    }
}

/// A report of several lines (a summary): printed as it is in text mode, one info event per
/// line in JSON mode.
pub fn report(text: &str) {
    for line in text.lines() {
        say(Level::Info, if json() { line.trim_start() } else { line });
    }
}

/// For the commands other than `run` and `bridge` (no `--log` flags): the library's events,
/// which these reach only now and then (a damaged store file under `inspect`, a dropped
/// spoofed property under `test`), as the plain lines they print everything else in.
pub fn init_plain() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter().unwrap_or_else(|_| default_filter()))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .with_level(false)
        .try_init();
}

/// RUST_LOG's filter if set, else [`default_filter`].
fn env_filter() -> Result<EnvFilter, String> {
    match std::env::var("RUST_LOG") {
        Ok(f) if !f.trim().is_empty() => {
            EnvFilter::try_new(&f).map_err(|e| format!("RUST_LOG={f}: {e}"))
        }
        _ => Ok(default_filter()),
    }
}

/// Dependencies (broker clients) log at warn: their info and debug events can carry
/// connection details that are no business of a router's log.
fn default_filter() -> EnvFilter {
    EnvFilter::new("warn,hubroute=info")
}
