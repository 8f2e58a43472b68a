//! Feeding a JSON Lines input through a [`Pipeline`]: what `hubroute run --input FILE|-` does,
//! for any embedder. Chunks of lines are parsed, validated and routed (in parallel with the
//! `parallel` feature), then accepted into the store; the next chunk is routed while the last
//! one commits. Every line ends up counted as valid, invalid (reported with its code) or blank.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::SystemTime;

use super::lines::{Line, LineContent};
use crate::eval::TwinLookup;
use crate::message::Message;
use crate::pipeline::{codes, Accepted, Pipeline, PipelineError, Prepared, Rejected};
use crate::route::{RouteTable, Router};

/// Chunks committed while the next one is routed.
const ACCEPTS_IN_FLIGHT: usize = 2;

/// What reading an input came to: `valid + invalid + blank = read`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinesReport {
    /// Lines read.
    pub read: u64,
    /// Lines with only white space.
    pub blank: u64,
    /// Valid messages, accepted into the store (or counted as matching no route).
    pub valid: u64,
    /// Lines that are not valid messages, by code.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Why reading stopped before the end, if it did (an I/O error, or the pipeline closed).
    pub stopped: Option<String>,
}

impl LinesReport {
    /// All invalid lines.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }
}

/// A line that is not a valid message: its number, code, reason, and what to dead-letter.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidLine {
    /// 1-based line number.
    pub line: u64,
    /// Stable code.
    pub code: &'static str,
    /// For a human.
    pub reason: String,
    /// The line's content as JSON (the message, the text, or base64 of the bytes).
    pub raw: serde_json::Value,
}

enum Outcome {
    Blank,
    Invalid(&'static str, String, serde_json::Value),
    Ready(Prepared),
}

fn prepare_line(
    pipeline: &Pipeline,
    reloaded: Option<&RouteTable>,
    router: &mut Router<'_>,
    content: LineContent,
    twin: Option<&(dyn TwinLookup + Sync)>,
) -> Outcome {
    let text = match content {
        LineContent::Blank => return Outcome::Blank,
        LineContent::Invalid { code, reason, raw } => return Outcome::Invalid(code, reason, raw),
        LineContent::ReadFailed(e) => {
            return Outcome::Invalid(codes::READ_FAILED, e, serde_json::Value::Null)
        }
        LineContent::Text(t) => t,
    };
    let message = match Message::from_json_str(&text) {
        Ok(m) => m,
        Err(e) => {
            return Outcome::Invalid(e.code(), e.to_string(), serde_json::Value::String(text))
        }
    };
    let twin = twin.map(|t| t as &dyn TwinLookup);
    let now = SystemTime::now();
    let prepared = match reloaded {
        Some(table) => pipeline.prepare_with(table, router, &message, twin, now),
        None => pipeline.prepare(router, &message, twin, now),
    };
    match prepared {
        Ok(p) => Outcome::Ready(p),
        Err(Rejected { code, reason }) => Outcome::Invalid(code, reason, message.to_json_value()),
    }
}

/// Chunks smaller than this are prepared on the calling thread: rayon's hand-off costs more
/// than it saves there, and side effects in line order (twin warnings: "the first three devices
/// without a twin") stay deterministic for small inputs.
#[cfg(feature = "parallel")]
const PARALLEL_FROM: usize = 256;

#[cfg(feature = "parallel")]
fn prepare_chunk(
    pipeline: &Pipeline,
    lines: Vec<(u64, LineContent)>,
    twin: Option<&(dyn TwinLookup + Sync)>,
) -> Vec<(u64, Outcome)> {
    use rayon::prelude::*;
    // One table for the whole chunk: a reload applies from the next chunk on.
    let reloaded = pipeline.reloaded_table();
    let table = reloaded.as_deref();
    if lines.len() < PARALLEL_FROM {
        let mut router = table.map_or_else(|| pipeline.router(), |t| t.router());
        return lines
            .into_iter()
            .map(|(n, content)| (n, prepare_line(pipeline, table, &mut router, content, twin)))
            .collect();
    }
    lines
        .into_par_iter()
        .map_init(
            || table.map_or_else(|| pipeline.router(), |t| t.router()),
            |router, (n, content)| (n, prepare_line(pipeline, table, router, content, twin)),
        )
        .collect()
}

#[cfg(not(feature = "parallel"))]
fn prepare_chunk(
    pipeline: &Pipeline,
    lines: Vec<(u64, LineContent)>,
    twin: Option<&(dyn TwinLookup + Sync)>,
) -> Vec<(u64, Outcome)> {
    let reloaded = pipeline.reloaded_table();
    let table = reloaded.as_deref();
    let mut router = table.map_or_else(|| pipeline.router(), |t| t.router());
    lines
        .into_iter()
        .map(|(n, content)| (n, prepare_line(pipeline, table, &mut router, content, twin)))
        .collect()
}

type Pending = (Receiver<Result<Accepted, PipelineError>>, u64);

fn wait_accepted(in_flight: &mut VecDeque<Pending>, report: &mut LinesReport) -> bool {
    let Some((rx, last_line)) = in_flight.pop_front() else {
        return true;
    };
    match rx.recv().unwrap_or(Err(PipelineError::Closed)) {
        Ok(_) => true,
        Err(e) => {
            report.stopped = Some(format!(
                "messages up to line {last_line} were not accepted: {e}"
            ));
            false
        }
    }
}

/// Reads `lines` to the end through `pipeline`, `chunk` lines at a time (1: each line is
/// accepted as it arrives, for a live stream). `lines` is usually a
/// [`LineReader`](super::LineReader); any source of numbered lines will do (a replay of Storage
/// files gives each record as a line). `invalid` gets every line that is not a valid
/// message (write it to a dead letter); `progress` is called after each chunk. Returns once
/// every valid line is durably accepted.
pub fn feed_lines(
    pipeline: &Pipeline,
    lines: impl IntoIterator<Item = Line>,
    chunk: usize,
    twin: Option<&(dyn TwinLookup + Sync)>,
    invalid: &mut dyn FnMut(InvalidLine),
    progress: &mut dyn FnMut(&LinesReport),
) -> LinesReport {
    let mut lines = lines.into_iter();
    let mut report = LinesReport::default();
    let mut in_flight = VecDeque::new();
    // The number of the last line taken, for messages.
    let mut lines_read = 0;
    loop {
        let mut numbered = Vec::with_capacity(chunk.max(1));
        let mut read_error = None;
        for line in lines.by_ref().take(chunk.max(1)) {
            match line.content {
                LineContent::ReadFailed(e) => read_error = Some(e),
                content => {
                    lines_read = line.number;
                    numbered.push((line.number, content));
                }
            }
        }
        if numbered.is_empty() && read_error.is_none() {
            break;
        }
        let mut batch = Vec::with_capacity(numbered.len());
        for (line, outcome) in prepare_chunk(pipeline, numbered, twin) {
            report.read += 1;
            match outcome {
                Outcome::Blank => report.blank += 1,
                Outcome::Invalid(code, reason, raw) => {
                    *report.invalid.entry(code).or_default() += 1;
                    invalid(InvalidLine {
                        line,
                        code,
                        reason,
                        raw,
                    });
                }
                Outcome::Ready(p) => {
                    report.valid += 1;
                    batch.push(p);
                }
            }
        }
        let (tx, rx) = sync_channel(1);
        pipeline.accept_then(batch, move |r| {
            let _ = tx.send(r);
        });
        in_flight.push_back((rx, lines_read));
        if in_flight.len() > ACCEPTS_IN_FLIGHT && !wait_accepted(&mut in_flight, &mut report) {
            break;
        }
        if let Some(e) = read_error {
            report.stopped = Some(format!("reading failed after line {lines_read}: {e}"));
            break;
        }
        progress(&report);
    }
    while !in_flight.is_empty() {
        if !wait_accepted(&mut in_flight, &mut report) {
            break;
        }
    }
    report
}
