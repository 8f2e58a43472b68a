//! Feeding a JSON Lines input through a [`Pipeline`]: what `hubroute run --input FILE|-` does,
//! for any embedder. Chunks of lines are parsed, validated and routed (in parallel with the
//! `parallel` feature), then accepted into the store; the next chunk is routed while the last
//! one commits. Every line ends up counted as valid, invalid (reported with its code) or blank.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::time::SystemTime;

use std::io::BufRead;

use super::lines::{Line, LineContent, LineReader, ReadLine};
use crate::eval::TwinLookup;
use crate::message::Message;
use crate::pipeline::{codes, Accepted, Pipeline, PipelineError, Prepared, Rejected};
use crate::route::{RouteTable, Router};

/// Chunks being committed while the next ones are routed: enough that the routing thread never
/// waits for one commit's fsync (a few ms on a disk) before routing on, so routing, the store's
/// syncs and the endpoints' writes overlap.
const ACCEPTS_IN_FLIGHT: usize = 8;

/// Chunks read and waiting for the routing thread (see [`Feeder::read_ahead`]).
const CHUNKS_QUEUED: usize = 1;

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

/// Room for a line's record beyond the line's own length. A record holds the line's names,
/// values and body, unescaped and decoded, with about three bytes of lengths and flags per
/// property where the line spends six on quotes, a colon and a comma; its header takes 12
/// bytes and each destination 3. A record that needs more (long enrichments) grows on the
/// routing thread.
const RECORD_ROOM: usize = 128;

/// A line of a [`Chunk`].
enum Item {
    /// Text at this range of the chunk's string, and the memory for its record.
    ///
    /// The record is allocated by the thread that reads the file, not the one routing it:
    /// records outlive their chunk (the store's tail keeps them for the endpoints), so a
    /// run keeps taking fresh memory for them, and the routing thread, which the whole run
    /// waits for, paid for it in heap growth (512 `mprotect` calls in a 10k-line run, as its
    /// own arena grows a few pages at a time) and page faults. Allocated here they come from
    /// the reading thread's heap, which grows megabytes at a time (14 `brk` calls) while that
    /// thread would otherwise wait for the routing thread. `run` on messages-10k × routes-10
    /// with one routing thread: 128–139k → 136–147k messages/s (medians of 11 interleaved
    /// runs, four sets), the same CPU; on 100k lines 159–167k → 172–178k.
    Text(usize, usize, Vec<u8>),
    /// Anything else (also text a line iterator gave as its own string).
    Other(LineContent),
}

/// Lines to prepare together: text lines share one string, kept (with the list's memory)
/// from chunk to chunk, so reading a file allocates nothing per line.
#[derive(Default)]
struct Chunk {
    text: String,
    lines: Vec<(u64, Item)>,
}

thread_local! {
    /// Each routing thread's message, read again for every line
    /// ([`Message::read_json_str`]): its strings and body keep their memory, so preparing a
    /// message allocates only its record.
    static MESSAGE: std::cell::RefCell<Message> = std::cell::RefCell::new(Message::default());
}

fn prepare_line(
    pipeline: &Pipeline,
    reloaded: Option<&RouteTable>,
    router: &mut Router<'_>,
    text: &str,
    item: Item,
    twin: Option<&(dyn TwinLookup + Sync)>,
) -> Outcome {
    let owned;
    let (line, record) = match item {
        Item::Text(start, end, record) => (&text[start..end], record),
        Item::Other(LineContent::Text(t)) => {
            owned = t;
            (owned.as_str(), Vec::new())
        }
        Item::Other(LineContent::Blank) => return Outcome::Blank,
        Item::Other(LineContent::Invalid { code, reason, raw }) => {
            return Outcome::Invalid(code, reason, raw)
        }
        Item::Other(LineContent::ReadFailed(e)) => {
            return Outcome::Invalid(codes::READ_FAILED, e, serde_json::Value::Null)
        }
    };
    MESSAGE.with_borrow_mut(|message| {
        if let Err(e) = message.read_json_str(line) {
            return Outcome::Invalid(
                e.code(),
                e.to_string(),
                serde_json::Value::String(line.to_string()),
            );
        }
        let twin = twin.map(|t| t as &dyn TwinLookup);
        let now = SystemTime::now();
        let prepared = pipeline.prepare_into(reloaded, router, message, twin, now, record);
        match prepared {
            Ok(p) => Outcome::Ready(p),
            Err(Rejected { code, reason }) => {
                Outcome::Invalid(code, reason, message.to_json_value())
            }
        }
    })
}

/// Chunks smaller than this are prepared on the calling thread: rayon's hand-off costs more
/// than it saves there, and side effects in line order (twin warnings: "the first three devices
/// without a twin") stay deterministic for small inputs.
#[cfg(feature = "parallel")]
const PARALLEL_FROM: usize = 256;

#[cfg(feature = "parallel")]
fn prepare_chunk(
    pipeline: &Pipeline,
    chunk: &mut Chunk,
    twin: Option<&(dyn TwinLookup + Sync)>,
) -> Vec<(u64, Outcome)> {
    use rayon::prelude::*;
    // One table for the whole chunk: a reload applies from the next chunk on.
    let reloaded = pipeline.reloaded_table();
    let table = reloaded.as_deref();
    let text = chunk.text.as_str();
    // With one thread, rayon would only hand the chunk to its worker and wait: route here.
    if chunk.lines.len() < PARALLEL_FROM || rayon::current_num_threads() == 1 {
        let mut router = table.map_or_else(|| pipeline.router(), |t| t.router());
        return chunk
            .lines
            .drain(..)
            .map(|(n, item)| {
                let outcome = prepare_line(pipeline, table, &mut router, text, item, twin);
                (n, outcome)
            })
            .collect();
    }
    chunk
        .lines
        .par_drain(..)
        .map_init(
            || table.map_or_else(|| pipeline.router(), |t| t.router()),
            |router, (n, item)| (n, prepare_line(pipeline, table, router, text, item, twin)),
        )
        .collect()
}

#[cfg(not(feature = "parallel"))]
fn prepare_chunk(
    pipeline: &Pipeline,
    chunk: &mut Chunk,
    twin: Option<&(dyn TwinLookup + Sync)>,
) -> Vec<(u64, Outcome)> {
    let reloaded = pipeline.reloaded_table();
    let table = reloaded.as_deref();
    let mut router = table.map_or_else(|| pipeline.router(), |t| t.router());
    let text = chunk.text.as_str();
    chunk
        .lines
        .drain(..)
        .map(|(n, item)| {
            (
                n,
                prepare_line(pipeline, table, &mut router, text, item, twin),
            )
        })
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
/// [`LineReader`] (for which [`feed_reader`] allocates less); any source of
/// numbered lines will do (a replay of Storage files gives each record as a line). `invalid`
/// gets every line that is not a valid message (write it to a dead letter); `progress` is
/// called after each chunk. Returns once every valid line is durably accepted.
pub fn feed_lines(
    pipeline: &Pipeline,
    lines: impl IntoIterator<Item = Line>,
    chunk: usize,
    twin: Option<&(dyn TwinLookup + Sync)>,
    invalid: &mut dyn FnMut(InvalidLine),
    progress: &mut dyn FnMut(&LinesReport),
) -> LinesReport {
    let mut lines = lines.into_iter();
    let mut fill = |into: &mut Chunk, n: usize, last: &mut u64| {
        let mut read_error = None;
        for line in lines.by_ref().take(n) {
            match line.content {
                LineContent::ReadFailed(e) => read_error = Some(e),
                content => {
                    *last = line.number;
                    into.lines.push((line.number, Item::Other(content)));
                }
            }
        }
        read_error
    };
    feed(pipeline, &mut fill, chunk, twin, invalid, progress)
}

/// [`feed_lines`] of a [`LineReader`]: the lines of a chunk are read into one reused string,
/// so reading allocates nothing per line (what `hubroute run --input FILE` does).
pub fn feed_reader<R: BufRead>(
    pipeline: &Pipeline,
    mut reader: LineReader<R>,
    chunk: usize,
    twin: Option<&(dyn TwinLookup + Sync)>,
    invalid: &mut dyn FnMut(InvalidLine),
    progress: &mut dyn FnMut(&LinesReport),
) -> LinesReport {
    let mut fill = |into: &mut Chunk, n: usize, last: &mut u64| {
        for _ in 0..n {
            let start = into.text.len();
            match reader.read_into(&mut into.text) {
                None => break,
                Some((_, ReadLine::Other(LineContent::ReadFailed(e)))) => return Some(e),
                Some((number, ReadLine::Text)) => {
                    *last = number;
                    let end = into.text.len();
                    let record = Vec::with_capacity(end - start + RECORD_ROOM);
                    into.lines.push((number, Item::Text(start, end, record)));
                }
                Some((number, ReadLine::Other(content))) => {
                    *last = number;
                    into.lines.push((number, Item::Other(content)));
                }
            }
        }
        None
    };
    feed(pipeline, &mut fill, chunk, twin, invalid, progress)
}

/// Fills a chunk with up to `n` lines, setting the number of the last line taken; returns a
/// read error that ends the input.
type Fill<'a> = dyn FnMut(&mut Chunk, usize, &mut u64) -> Option<String> + 'a;

fn feed(
    pipeline: &Pipeline,
    fill: &mut Fill<'_>,
    chunk: usize,
    twin: Option<&(dyn TwinLookup + Sync)>,
    invalid: &mut dyn FnMut(InvalidLine),
    progress: &mut dyn FnMut(&LinesReport),
) -> LinesReport {
    let mut feeder = Feeder {
        pipeline,
        twin,
        invalid,
        progress,
        report: LinesReport::default(),
        in_flight: VecDeque::new(),
    };
    if chunk <= 1 {
        // A live stream: each line is routed and accepted before the next is waited for.
        feeder.read_in_turns(fill, 1);
    } else {
        feeder.read_ahead(fill, chunk);
    }
    feeder.finish()
}

/// Where the lines go (the pipeline, with the twins and the caller's callbacks), what is read
/// so far, and the chunks being committed.
struct Feeder<'a> {
    pipeline: &'a Pipeline,
    twin: Option<&'a (dyn TwinLookup + Sync)>,
    invalid: &'a mut dyn FnMut(InvalidLine),
    progress: &'a mut dyn FnMut(&LinesReport),
    report: LinesReport,
    in_flight: VecDeque<Pending>,
}

impl Feeder<'_> {
    /// [`feed`] of a file: the next chunks are read while the last one is routed (on another
    /// thread, which routes it itself or hands it to rayon), so reading and routing overlap
    /// instead of taking turns. Up to [`CHUNKS_QUEUED`] read chunks wait for the routing
    /// thread, so it does not wait for this thread to be scheduled (reading a chunk costs a
    /// small part of routing it, but a woken thread can wait milliseconds for a core the
    /// endpoints are using); routed chunks come back on a channel of their own, which never
    /// blocks the routing thread, and their strings are reused for the next chunks read.
    fn read_ahead(&mut self, fill: &mut Fill<'_>, chunk: usize) {
        // A chunk to route, with the number of its last line.
        type ToRoute = (Chunk, u64);
        let (pipeline, twin) = (self.pipeline, self.twin);
        std::thread::scope(|scope| {
            let (route, to_route) = sync_channel::<ToRoute>(CHUNKS_QUEUED);
            let (routed_tx, routed) = channel::<(ToRoute, Vec<(u64, Outcome)>)>();
            let router = std::thread::Builder::new()
                .name("hubroute-feed".into())
                .spawn_scoped(scope, move || {
                    for (mut numbered, last) in to_route {
                        let outcomes = prepare_chunk(pipeline, &mut numbered, twin);
                        if routed_tx.send(((numbered, last), outcomes)).is_err() {
                            break;
                        }
                    }
                });
            if router.is_err() {
                // No thread to spare: read and route in turns.
                self.read_in_turns(fill, chunk);
                return;
            }
            let mut lines_read = 0;
            // Chunks sent to be routed and not yet accepted, and spare chunks to read into.
            let mut routing = 0usize;
            let mut spare: Vec<Chunk> = Vec::new();
            loop {
                // Accept what has been routed meanwhile, oldest first; its chunk is read into
                // next (so a run touches only as many chunks' memory as are in flight).
                while let Ok(((numbered, last), outcomes)) = routed.try_recv() {
                    routing -= 1;
                    spare.push(numbered);
                    if !self.accept(outcomes, last, None) {
                        return;
                    }
                }
                let mut next = spare.pop().unwrap_or_default();
                next.text.clear();
                next.lines.clear();
                let read_error = fill(&mut next, chunk, &mut lines_read);
                let more = !next.lines.is_empty();
                if more {
                    if route.send((next, lines_read)).is_err() {
                        break;
                    }
                    routing += 1;
                }
                if read_error.is_some() || !more {
                    drop(route);
                    // The rest, in order; a read error ends the chunk it cut short.
                    let mut read_error = read_error;
                    while routing > 0 {
                        let Ok(((_, last), outcomes)) = routed.recv() else {
                            break;
                        };
                        routing -= 1;
                        let error = if routing == 0 && more {
                            read_error.take()
                        } else {
                            None
                        };
                        if !self.accept(outcomes, last, error) {
                            return;
                        }
                    }
                    if let Some(e) = read_error {
                        self.report.stopped =
                            Some(format!("reading failed after line {lines_read}: {e}"));
                    }
                    return;
                }
            }
        });
    }

    /// [`Feeder::read_ahead`] without its thread: read a chunk, route it, accept it, and
    /// again.
    fn read_in_turns(&mut self, fill: &mut Fill<'_>, chunk: usize) {
        let mut lines_read = 0;
        let mut numbered = Chunk::default();
        loop {
            numbered.text.clear();
            numbered.lines.clear();
            let read_error = fill(&mut numbered, chunk, &mut lines_read);
            if numbered.lines.is_empty() && read_error.is_none() {
                return;
            }
            let outcomes = prepare_chunk(self.pipeline, &mut numbered, self.twin);
            if !self.accept(outcomes, lines_read, read_error) {
                return;
            }
        }
    }

    /// Counts a routed chunk's lines (reporting the invalid ones), hands its messages to the
    /// store and waits for the oldest commit when too many are in flight; `false` when
    /// reading stops (the read error that ended the chunk, or the pipeline closed).
    fn accept(
        &mut self,
        outcomes: Vec<(u64, Outcome)>,
        last_line: u64,
        read_error: Option<String>,
    ) -> bool {
        let report = &mut self.report;
        let mut batch = Vec::with_capacity(outcomes.len());
        for (line, outcome) in outcomes {
            report.read += 1;
            match outcome {
                Outcome::Blank => report.blank += 1,
                Outcome::Invalid(code, reason, raw) => {
                    *report.invalid.entry(code).or_default() += 1;
                    (self.invalid)(InvalidLine {
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
        self.pipeline.accept_then(batch, move |r| {
            let _ = tx.send(r);
        });
        self.in_flight.push_back((rx, last_line));
        if self.in_flight.len() > ACCEPTS_IN_FLIGHT
            && !wait_accepted(&mut self.in_flight, &mut self.report)
        {
            return false;
        }
        if let Some(e) = read_error {
            self.report.stopped = Some(format!("reading failed after line {last_line}: {e}"));
            return false;
        }
        (self.progress)(&self.report);
        true
    }

    /// Waits for every commit in flight; the report.
    fn finish(mut self) -> LinesReport {
        while !self.in_flight.is_empty() {
            if !wait_accepted(&mut self.in_flight, &mut self.report) {
                break;
            }
        }
        self.report
    }
}
