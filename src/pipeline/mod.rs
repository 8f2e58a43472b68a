//! The durable pipeline: input → accept into the store → per-endpoint delivery.
//!
//! IoT Hub acknowledges a device's message once the hub has *accepted* it, not once every
//! endpoint has it; each endpoint then gets its copy on its own, with its own retries, and an
//! endpoint that is down holds up nobody else. hubroute does the same:
//!
//! 1. **Prepare** ([`Pipeline::prepare`], any thread): validate the message with IoT Hub's
//!    rules, route it, compute each endpoint's enrichments, and encode the result as one store
//!    record ([`codec`]).
//! 2. **Accept** ([`Pipeline::accept`] blocking, or [`Pipeline::accept_then`] with a callback
//!    for async inputs): records are group-committed to the [`store`] — one fsync per batch —
//!    and only then reported accepted, so an input acknowledges (MQTT PUBACK, JetStream ack)
//!    exactly what is on disk. A message that matches no route is counted, not stored.
//! 3. **Deliver** (one thread per endpoint): each endpoint reads the records after its own
//!    cursor, writes its copies to its sink in batches, flushes, then advances its cursor.
//!    A retryable failure is retried with exponential backoff for as long as the endpoint's
//!    [`Retention`] allows; then the copies go to the dead letter with the reason. Records every
//!    endpoint has passed are deleted.
//!
//! Guarantees: a message reported accepted is never lost (it is delivered or dead-lettered with
//! a coded reason, also across crashes and restarts: delivery resumes from the cursors, so a
//! batch written but whose cursor was not yet committed is delivered again — at least once).
//! A full store blocks acceptance (the input stops reading; [`PipelineStats`] and standard
//! error say so) instead of dropping. Endpoint health follows IoT Hub's states ([`Health`]).
//!
//! ```
//! use hubroute::pipeline::{Pipeline, PipelineConfig};
//! use hubroute::route::RouteTable;
//! use hubroute::sink::{DeadLetter, JsonLinesSink, Sink};
//! use hubroute::message::Message;
//! # let dir = std::env::temp_dir().join(format!("hubroute-doc-{}", std::process::id()));
//! let table = RouteTable::from_json(
//!     r#"{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true",
//!                     "endpointNames": ["archive"], "isEnabled": true}],
//!         "endpoints": {"serviceBusQueues": [{"name": "archive"}]}}"#,
//!     "myhub",
//! ).table.unwrap();
//! let mut sinks: std::collections::BTreeMap<String, Box<dyn Sink>> = Default::default();
//! sinks.insert("archive".into(), Box::new(JsonLinesSink::to_path(dir.join("archive.jsonl")).unwrap()));
//! let config = PipelineConfig::new(dir.join("store"), "myhub");
//! let dead_letter = DeadLetter::to_path(dir.join("dead.jsonl")).unwrap();
//! let pipeline = Pipeline::open(config, table, sinks, dead_letter).unwrap();
//!
//! let message = Message::from_json_str(r#"{"body": "hello"}"#).unwrap();
//! let mut router = pipeline.router();
//! let prepared = pipeline.prepare(&mut router, &message, None, std::time::SystemTime::now()).unwrap();
//! pipeline.accept(vec![prepared]).unwrap(); // on disk now: acknowledge the input here
//!
//! let stats = pipeline.shutdown(std::time::Duration::from_secs(10));
//! assert_eq!(stats.endpoints[0].delivered, 1);
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

#[cfg(all(feature = "mqtt", feature = "nats"))]
pub mod bridge;
pub mod codec;
mod endpoint;
mod health;
pub mod input;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use smallvec::SmallVec;

use crate::eval::TwinLookup;
use crate::message::{Message, Protocol, Source};
use crate::route::{RouteTable, Router};
use crate::sink::{DeadLetter, RetryPolicy, Sink};

pub use codec::Destination;
pub use health::{EndpointSnapshot, Health, PipelineStats};
pub use store::{Store, StoreError};

/// Stable codes of the pipeline: input lines that are not messages. They share the E09xx range
/// of input-line problems with `hubroute eval --jsonl` and `check --file`, so one problem has
/// one code wherever a line is read. The dead-letter
/// codes of delivery (retention) are next to the other delivery codes in
/// [`crate::sink::codes`].
pub mod codes {
    /// An input line is not valid UTF-8 (the line is dead-lettered as base64).
    pub const INVALID_UTF8: &str = "E0904";
    /// An input line is longer than the reader's limit (its first bytes are dead-lettered).
    pub const LINE_TOO_LONG: &str = "E0905";
    /// Reading the input failed (an I/O error); the lines before it were processed.
    pub const READ_FAILED: &str = "E0907";
}

/// How long and how much an endpoint's undelivered copies are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// A copy not delivered this long after acceptance goes to the dead letter (code
    /// [`crate::sink::codes::RETENTION_EXPIRED`]); also how long an endpoint fails before it
    /// is [`Health::Dead`]. Default 1 hour: IoT Hub's documented time before an endpoint is dead.
    pub time: Duration,
    /// When an endpoint's waiting copies take more than this many bytes of records and it is
    /// failing, its oldest copies go to the dead letter (code
    /// [`crate::sink::codes::RETENTION_BYTES_EXCEEDED`]). Default 256 MiB.
    pub bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            time: Duration::from_secs(3600),
            bytes: 256 << 20,
        }
    }
}

/// Settings of a [`Pipeline`]; [`PipelineConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The store's directory (created if missing). One process at a time.
    pub store_dir: PathBuf,
    /// Stored bytes at which acceptance blocks until endpoints catch up. Default 1 GiB.
    pub max_store_bytes: u64,
    /// Per-endpoint retention.
    pub retention: Retention,
    /// Backoff between attempts of a failing endpoint (`max_attempts`: 0 = unlimited within
    /// the retention; otherwise a batch's copies go to the dead letter after that many failed
    /// attempts, code [`crate::sink::codes::RETRIES_EXHAUSTED`]).
    pub retry: RetryPolicy,
    /// Most copies per sink write (one flush, then one cursor commit, each). Default 4096.
    pub max_batch: usize,
    /// Most records per store commit. Default 8192.
    pub max_commit: usize,
    /// How long a commit may wait for more batches to share its sync while input streams in
    /// small batches (see [`GATHER_BELOW`]); zero commits each group as soon as it can.
    /// Default 1 ms.
    pub commit_gather: Duration,
    /// A delivering endpoint whose oldest waiting copy is older than this is
    /// [`Health::Degraded`]. Default 60 s.
    pub degraded_after: Duration,
    /// The hub name of envelopes (Storage file names, `$iothubname`).
    pub hub_name: String,
    /// The protocol messages arrived by, for IoT Hub's property rules.
    pub protocol: Protocol,
    /// The source of messages that carry none.
    pub default_source: Source,
}

impl PipelineConfig {
    /// The defaults, with the store in `store_dir`.
    pub fn new(store_dir: impl Into<PathBuf>, hub_name: impl Into<String>) -> Self {
        PipelineConfig {
            store_dir: store_dir.into(),
            max_store_bytes: 1 << 30,
            retention: Retention::default(),
            retry: RetryPolicy {
                max_attempts: 0,
                ..RetryPolicy::default()
            },
            max_batch: 4096,
            max_commit: 8192,
            commit_gather: Duration::from_millis(1),
            degraded_after: Duration::from_secs(60),
            hub_name: hub_name.into(),
            protocol: Protocol::Mqtt,
            default_source: Source::DeviceMessages,
        }
    }
}

/// Why a pipeline could not start or accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sink is bound to a name the routing table does not have. [`Pipeline::open`] no longer
    /// returns it (such a sink is an endpoint a reloaded table may add); kept for callers
    /// that match on it.
    #[error("no endpoint named '{0}' in the routing configuration")]
    UnknownEndpoint(String),
    /// The pipeline is shutting down and accepts nothing more (the input must not acknowledge).
    #[error("the pipeline is shutting down; the messages were not accepted")]
    Closed,
    /// A worker thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(String),
}

/// A message that cannot be accepted: IoT Hub's rules reject it. Its code is stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The first violation's code.
    pub code: &'static str,
    /// Every violation, `[code] text; …`.
    pub reason: String,
}

/// A validated, routed, encoded message, ready for [`Pipeline::accept`].
#[derive(Debug, Clone)]
pub struct Prepared {
    bytes: Vec<u8>,
    /// The hub's acceptance time of the message (for the input's lag).
    enqueued: SystemTime,
    destinations: SmallVec<[u16; 4]>,
    fallback: bool,
}

impl Prepared {
    /// Whether it matched no route (it is then counted, not stored).
    pub fn is_unrouted(&self) -> bool {
        self.destinations.is_empty()
    }

    /// Whether it went to the fallback route.
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// How many endpoints it goes to.
    pub fn copies(&self) -> usize {
        self.destinations.len()
    }
}

/// What [`Pipeline::accept`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepted {
    /// Messages now in the store.
    pub stored: usize,
    /// Messages that matched no route (counted, not stored).
    pub unrouted: usize,
}

type Done = Box<dyn FnOnce(Result<Accepted, PipelineError>) + Send>;

/// A batch waiting for the committer.
struct Submission {
    batch: Vec<Prepared>,
    done: Done,
}

/// One endpoint's live state, shared by its worker, the committer and [`Pipeline::stats`].
pub(crate) struct EndpointState {
    pub(crate) name: String,
    pub(crate) id: u16,
    /// The cursor last committed to the store.
    pub(crate) cursor: AtomicU64,
    /// The last sequence the worker has settled (delivered or dead-lettered); the committer
    /// writes it to the store as the cursor. Never behind `cursor`.
    pub(crate) settled: AtomicU64,
    pub(crate) routed: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) backlog: AtomicU64,
    pub(crate) backlog_bytes: AtomicU64,
    /// Enqueued time (ns since the epoch) of the oldest copy being worked on; 0 when none.
    pub(crate) oldest: AtomicU64,
    /// The last committed sequence whose record has a copy for this endpoint (at the start,
    /// the last one stored: an earlier run's backlog is read once). Set by the committer
    /// under `Shared::committed`; a worker whose position is past it passes over what is
    /// committed without reading it.
    pub(crate) wanted: AtomicU64,
    /// Wakes this endpoint's worker: a commit with copies for it, the pipeline closing or
    /// giving up. Used with `Shared::committed`. A commit without copies for an endpoint
    /// does not wake it (with nine endpoints and a few hundred commits a second over MQTT,
    /// the workers of idle endpoints woke 35k times per 100k messages, for nothing).
    pub(crate) wake: Condvar,
    pub(crate) dead_lettered: Mutex<BTreeMap<String, u64>>,
    pub(crate) health: Mutex<HealthState>,
    pub(crate) latency: health::Latency,
}

/// What health is computed from.
#[derive(Default)]
pub(crate) struct HealthState {
    pub(crate) attempted: bool,
    pub(crate) failing_since: Option<Instant>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_time: Option<SystemTime>,
    pub(crate) last_success_time: Option<SystemTime>,
}

/// Shared by the committer, the workers and the handle.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) config: PipelineConfig,
    pub(crate) dead_letter: Mutex<DeadLetter>,
    /// The last committed sequence number; workers wait on their endpoint's `wake`.
    pub(crate) committed: Mutex<u64>,
    /// A worker pausing after a failed attempt ([`Shared::sleep`]) waits on this, to stop
    /// at once when the pipeline gives up.
    pub(crate) records: Condvar,
    /// Notified when records are deleted (the committer waits on it when the store is full).
    pub(crate) space: Condvar,
    pub(crate) stored_bytes: AtomicU64,
    pub(crate) stored_records: AtomicU64,
    /// The input's lag at the last commit, in nanoseconds (`u64::MAX`: nothing committed yet):
    /// how long before the commit the batch's oldest message was enqueued.
    pub(crate) input_lag: AtomicU64,
    pub(crate) gc_through: AtomicU64,
    /// The newest records, as committed, so that endpoints keeping up read them from memory
    /// rather than from the store.
    pub(crate) tail: Mutex<Tail>,
    /// The last sequence every endpoint had settled when the tail was last trimmed to it
    /// ([`Shared::trim_tail`]).
    trimmed_through: AtomicU64,
    pub(crate) endpoints: Vec<EndpointState>,
    /// No more input: workers stop when caught up.
    pub(crate) closing: AtomicBool,
    /// Stop now: the drain timed out; what is left stays in the store.
    pub(crate) abandon: AtomicBool,
    accepted: AtomicU64,
    unrouted: AtomicU64,
    fallback: AtomicU64,
    backpressure: AtomicU64,
    /// Store commits of records (each a write and sync of the log).
    commits: AtomicU64,
    recovered: AtomicU64,
    /// A routing table swapped in while running ([`TableHandle::set`]); `None`: the one the
    /// pipeline opened with.
    reloaded: std::sync::RwLock<Option<Arc<RouteTable>>>,
    /// Which threads have ended; `exited` is notified as each does ([`Pipeline::stop`] waits
    /// on it).
    exits: Mutex<Exits>,
    exited: Condvar,
}

/// The pipeline's threads that have ended.
#[derive(Default)]
pub(crate) struct Exits {
    committer: bool,
    workers: usize,
}

/// Marks its thread ended when dropped (also when the thread unwinds from a panic).
pub(crate) struct ExitGuard<'a> {
    shared: &'a Shared,
    committer: bool,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        let mut e = lock(&self.shared.exits);
        if self.committer {
            e.committer = true;
        } else {
            e.workers += 1;
        }
        self.shared.exited.notify_all();
    }
}

/// The newest committed records, contiguous in sequence, bounded in bytes. A read-through
/// cache of the log: what is not here is read from the store. Per endpoint it keeps the
/// sequences of the records that go to it, so that a worker takes its own records without
/// looking at the others'.
#[derive(Default)]
pub(crate) struct Tail {
    first: u64,
    records: std::collections::VecDeque<TailRecord>,
    bytes: u64,
    /// Store id → the sequences in `records` that go to that endpoint, ascending (entries
    /// before `first` or already read are removed as the tail moves on or at the next read).
    by_endpoint: Vec<std::collections::VecDeque<u64>>,
}

/// A record in the tail: its bytes (shared with the workers delivering it) and destinations.
pub(crate) struct TailRecord {
    bytes: Arc<codec::StoredRecord>,
    destinations: SmallVec<[u16; 4]>,
}

/// Endpoints whose settled position moved past their stored cursor: (index, store id,
/// settled sequence).
type Moved = SmallVec<[(usize, u16, u64); 16]>;

/// The (store id, cursor) pairs of `moved`, as the store writes them.
fn cursor_pairs(moved: &Moved) -> SmallVec<[(u16, u64); 16]> {
    moved.iter().map(|&(_, id, c)| (id, c)).collect()
}

/// How soon at the earliest, when no input comes, the committer writes the cursors endpoints
/// have moved (a cursor frame alone: one write and sync of the log); while input flows they
/// ride in every commit's own write and sync instead. In a stream (commits at most
/// [`IDLE_WAIT`] apart) the committer waits for input about as long as the last two commits
/// were apart, at least this, so that a cursor frame alone is written when input has
/// stopped, not between two commits (it would be a sync more per commit); input sparser
/// than that waits only this (a few commits a second can afford the sync). 5 ms: a crash
/// while input is idle repeats at most about that much delivery (or one commit interval's),
/// and an endpoint draining a backlog alone costs at most 200 small syncs a second.
pub(crate) const IDLE_FLUSH: Duration = Duration::from_millis(5);

/// Records below which a commit waits (up to [`PipelineConfig::commit_gather`]) for more
/// batches to share its sync, when input is streaming in: a batch was already waiting when
/// the last commit ended, or the last commit took more than one.
///
/// A commit is a write and an `fdatasync` of the log, and each endpoint given copies then
/// writes and syncs its own: on a virtual disk each sync costs about 0.1 ms of CPU, more than
/// routing a message. A broker input submits what has arrived, often a few dozen messages,
/// so at 50k messages/s commits came back to back, thousands a second, with as many endpoint
/// syncs. Waiting up to 1 ms (`scripts/e2e.sh`'s MQTT path, 100k messages): syncs 4.1-7.3k ->
/// 2.4-2.7k, the router's CPU 1.46-2.0 -> 1.13-1.43 s. The wait ends at a pause of a quarter
/// of it: a submitter that holds a few batches in flight and then waits for this very commit
/// (standard input's reader, 8) is not kept waiting for companions that cannot come (it
/// routed as fast as without the wait). Sparse input is committed at once, with no added
/// latency; a file's chunks (1024 lines) and a JetStream pull (up to 1000) are past this and
/// never wait.
pub const GATHER_BELOW: usize = 256;

/// The longest the committer waits for input before looking at the cursors again (the wait
/// doubles up to this while none comes): an idle router wakes 20 times a second, and a
/// delivery after a quiet spell (an endpoint back after an outage) is written within this,
/// as the cursor file was every 50 ms before cursor frames.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// The most bytes the tail keeps. Endpoints that keep up read only from it; one that falls
/// further behind reads from the store's log files. Small enough that the router's memory
/// stays bounded (well under 100 MB) whatever the input's size.
const TAIL_BYTES: u64 = 16 << 20;

impl Tail {
    fn push(&mut self, first: u64, records: impl IntoIterator<Item = TailRecord>) {
        for (i, r) in records.into_iter().enumerate() {
            if i == 0 && self.first + self.records.len() as u64 != first {
                self.records.clear();
                self.by_endpoint.iter_mut().for_each(|q| q.clear());
                self.bytes = 0;
                self.first = first;
            }
            let seq = self.first + self.records.len() as u64;
            for &id in &r.destinations {
                let id = usize::from(id);
                if self.by_endpoint.len() <= id {
                    self.by_endpoint.resize_with(id + 1, Default::default);
                }
                self.by_endpoint[id].push_back(seq);
            }
            self.bytes += r.bytes.len() as u64;
            self.records.push_back(r);
        }
        while self.bytes > TAIL_BYTES {
            if !self.pop_front() {
                break;
            }
        }
    }

    /// Forgets the oldest record; `false` if there is none.
    fn pop_front(&mut self) -> bool {
        let Some(r) = self.records.pop_front() else {
            return false;
        };
        for &id in &r.destinations {
            if let Some(q) = self.by_endpoint.get_mut(usize::from(id)) {
                if q.front() == Some(&self.first) {
                    q.pop_front();
                }
            }
        }
        self.bytes -= r.bytes.len() as u64;
        self.first += 1;
        true
    }

    /// Puts the records after `after` (and at most `through`) for endpoint `id` in `out` (at
    /// most `max`); the last sequence passed (taken, or not for `id`), or `None` if the tail
    /// does not hold the record after `after`.
    pub(crate) fn read_for(
        &mut self,
        after: u64,
        through: u64,
        id: u16,
        max: usize,
        out: &mut Vec<(u64, Arc<codec::StoredRecord>)>,
    ) -> Option<u64> {
        let start = after.checked_add(1)?;
        let end = self.first + self.records.len() as u64;
        if start < self.first || start >= end {
            return None;
        }
        let mut last = through.min(end - 1);
        let Some(q) = self.by_endpoint.get_mut(usize::from(id)) else {
            return Some(last);
        };
        while q.front().is_some_and(|&seq| seq <= after) {
            q.pop_front();
        }
        for &seq in q.iter() {
            if seq > last {
                break;
            }
            let i = usize::try_from(seq - self.first).ok()?;
            out.push((seq, Arc::clone(&self.records[i].bytes)));
            if out.len() >= max {
                last = seq;
                break;
            }
        }
        Some(last)
    }

    /// Forgets records up to `through` (every endpoint has settled them).
    fn drop_through(&mut self, through: u64) {
        while self.first <= through {
            if !self.pop_front() {
                self.first = through + 1;
                break;
            }
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Waits until `done` holds for the threads that have ended, or until `deadline`;
    /// whether it holds.
    fn wait_exits(&self, deadline: Instant, done: impl Fn(&Exits) -> bool) -> bool {
        let mut exits = lock(&self.exits);
        loop {
            if done(&exits) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            exits = self
                .exited
                .wait_timeout(exits, deadline - now)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }

    /// Wakes every thread waiting on `committed`: the workers (closing or giving up) and a
    /// committer waiting for space.
    fn wake_all(&self) {
        let _g = lock(&self.committed);
        self.records.notify_all();
        self.space.notify_all();
        for e in &self.endpoints {
            e.wake.notify_all();
        }
    }

    /// Sleeps `d`, waking early when the pipeline is abandoned; `false` if it was.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut guard = lock(&self.committed);
        loop {
            if self.abandon.load(Ordering::Acquire) {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            guard = self
                .records
                .wait_timeout(guard, (deadline - now).min(Duration::from_millis(100)))
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }

    /// The cursors that moved since they were last written, and what every endpoint has
    /// passed when that is more than is deleted already: what the next commit writes.
    fn moved_cursors(&self) -> (Moved, Option<u64>) {
        let mut moved = SmallVec::new();
        let mut min = u64::MAX;
        for (i, e) in self.endpoints.iter().enumerate() {
            let settled = e.settled.load(Ordering::Acquire);
            if settled > e.cursor.load(Ordering::Acquire) {
                moved.push((i, e.id, settled));
            }
            min = min.min(settled);
        }
        let delete =
            (min != u64::MAX && min > self.gc_through.load(Ordering::Acquire)).then_some(min);
        (moved, delete)
    }

    /// After a commit that wrote `moved` and deleted through `delete`.
    fn cursors_written(
        &self,
        moved: &[(usize, u16, u64)],
        delete: Option<u64>,
        deleted: (u64, u64),
    ) {
        for &(i, _, settled) in moved {
            self.endpoints[i]
                .cursor
                .fetch_max(settled, Ordering::AcqRel);
        }
        if let Some(through) = delete {
            self.freed(through, deleted.0, deleted.1);
        }
    }

    /// Writes the cursors that moved (a cursor frame, synced) and deletes what every
    /// endpoint has passed; whether any had moved. The committer calls it when no input
    /// comes and while it waits for space.
    pub(crate) fn flush_cursors(&self) -> bool {
        let (moved, delete) = self.moved_cursors();
        if moved.is_empty() && delete.is_none() {
            return false;
        }
        let cursors = cursor_pairs(&moved);
        match self.store.commit(0, &[], &cursors, delete) {
            Ok(deleted) => self.cursors_written(&moved, delete, deleted),
            Err(e) => tracing::warn!("{e} (writing delivery cursors; tried again later)"),
        }
        !moved.is_empty()
    }

    /// At a clean stop, once the committer and the workers have ended: the workers' last
    /// cursors go into the store's checkpoint (synced), which then covers every cursor frame
    /// in the log, and what every endpoint has passed is deleted.
    fn checkpoint_cursors(&self) {
        let (moved, delete) = self.moved_cursors();
        let cursors = cursor_pairs(&moved);
        match self.store.checkpoint(&cursors, delete) {
            Ok(deleted) => self.cursors_written(&moved, delete, deleted),
            Err(e) => {
                tracing::warn!(
                    "{e} (writing the cursors' checkpoint at stop; a cursor frame instead)"
                );
                self.flush_cursors();
            }
        }
    }

    /// Drops from the tail what every endpoint has settled, as soon as the last of them has:
    /// no endpoint reads back past its own settled position, so the tail need not wait for the
    /// committer to write the cursors and delete the records from the store (which it did,
    /// one commit later). Their memory is then taken again for the records being read: a
    /// fresh `run` on messages-10k took 350–930 fewer page faults and 1–4 ms less CPU, and
    /// moved 3–7% faster in five of six sets of 11–21 interleaved runs, one or two routing
    /// threads (the sixth: −2%).
    pub(crate) fn trim_tail(&self) {
        let settled = self
            .endpoints
            .iter()
            .map(|e| e.settled.load(Ordering::Acquire))
            .min()
            .unwrap_or(0);
        if self.trimmed_through.fetch_max(settled, Ordering::AcqRel) < settled {
            lock(&self.tail).drop_through(settled);
        }
    }

    pub(crate) fn freed(&self, through: u64, records: u64, bytes: u64) {
        self.gc_through.fetch_max(through, Ordering::AcqRel);
        lock(&self.tail).drop_through(through);
        let _ = self
            .stored_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(bytes))
            });
        let _ = self
            .stored_records
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(records))
            });
        let _guard = lock(&self.committed);
        self.space.notify_all();
    }
}

/// Reads a pipeline's numbers; see [`Pipeline::stats_handle`].
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The numbers and health of every endpoint now (as [`Pipeline::stats`]).
    pub fn stats(&self) -> PipelineStats {
        snapshot(&self.0)
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsHandle").finish_non_exhaustive()
    }
}

/// The durable pipeline; see the module docs.
pub struct Pipeline {
    shared: Arc<Shared>,
    table: Arc<RouteTable>,
    /// Table endpoint index → store id.
    ids: Vec<Option<u16>>,
    /// Endpoint name → store id, for every endpoint with a sink (also those the opening
    /// table does not define): what a reloaded table's endpoints are matched to.
    by_name: HashMap<String, u16>,
    submit: Mutex<Option<Sender<Submission>>>,
    committer: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    observer: Option<Arc<RouteObserver>>,
}

/// Sees every message [`Pipeline::prepare`] routes, with the table it was routed by: for
/// per-route counts and logs of undefined route evaluations (`hubroute::ops::observe`).
pub type RouteObserver = dyn Fn(&RouteTable, &Message, Source, Option<&dyn TwinLookup>, &crate::route::Routing)
    + Send
    + Sync;

/// Swaps the routing table of a running [`Pipeline`]; see [`Pipeline::tables`].
#[derive(Clone)]
pub struct TableHandle(Arc<Shared>);

impl TableHandle {
    /// Routes the next messages (the next chunk of [`input::feed_lines`]) by `table`. Its
    /// endpoints are matched to the pipeline's by name; a message routed to one without a
    /// sink is rejected (E0503), so check the table's endpoints first
    /// (`hubroute::ops::LiveTable::reload` does). Endpoints it no longer routes to keep
    /// delivering what is stored for them.
    pub fn set(&self, table: Arc<RouteTable>) {
        *self.0.reloaded.write().unwrap_or_else(|p| p.into_inner()) = Some(table);
    }
}

impl std::fmt::Debug for TableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableHandle").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("store", &self.shared.store)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Opens the store, recovers what an earlier run left undelivered, and starts one
    /// delivery thread per endpoint of `sinks` plus the committer. A name of `sinks` that
    /// `table` does not define is an endpoint a reloaded table may route to
    /// ([`TableHandle::set`]): it is registered and its worker started now, with its cursor at
    /// the end of the store, so it gets only messages accepted after the table that routes to
    /// it is swapped in. Copies left in the store for an endpoint that has no sink now go to the dead
    /// letter ([`crate::sink::codes::UNKNOWN_ENDPOINT`]), never silently away.
    pub fn open(
        config: PipelineConfig,
        table: RouteTable,
        sinks: BTreeMap<String, Box<dyn Sink>>,
        dead_letter: DeadLetter,
    ) -> Result<Pipeline, PipelineError> {
        // A sink bound to a name the table lacks is an endpoint a reloaded table may add: it
        // gets its id and cursor (at the current end: it only sees what is accepted after)
        // and its worker now, so a table swapped in later ([`TableHandle::set`]) can route to
        // it from its first message with nothing to start in between.
        let store = Store::open(&config.store_dir)?;
        let names: Vec<&str> = sinks.keys().map(String::as_str).collect();
        let recovered = store.recover(&names)?;
        let mut endpoints = Vec::new();
        for (name, &id) in &recovered.endpoints {
            endpoints.push(EndpointState {
                name: name.clone(),
                id,
                cursor: AtomicU64::new(recovered.cursors.get(&id).copied().unwrap_or(0)),
                settled: AtomicU64::new(recovered.cursors.get(&id).copied().unwrap_or(0)),
                routed: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                backlog: AtomicU64::new(0),
                backlog_bytes: AtomicU64::new(0),
                oldest: AtomicU64::new(0),
                wanted: AtomicU64::new(recovered.next - 1),
                wake: Condvar::new(),
                dead_lettered: Mutex::new(BTreeMap::new()),
                health: Mutex::new(HealthState::default()),
                latency: health::Latency::new(),
            });
        }
        // Count what an earlier run left: per endpoint, the records after its cursor.
        let by_id: HashMap<u16, usize> = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id, i))
            .collect();
        let (mut stored_records, mut stored_bytes, mut recovered_copies) = (0u64, 0u64, 0u64);
        let mut first_seq = None;
        store.scan(|seq, bytes| {
            first_seq.get_or_insert(seq);
            stored_records += 1;
            stored_bytes += bytes.len() as u64;
            if let Ok(record) = codec::decode(bytes) {
                for d in &record.destinations {
                    if let Some(&i) = by_id.get(&d.endpoint) {
                        let e = &endpoints[i];
                        if seq > e.cursor.load(Ordering::Relaxed) {
                            e.routed.fetch_add(1, Ordering::Relaxed);
                            e.backlog.fetch_add(1, Ordering::Relaxed);
                            e.backlog_bytes
                                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                            recovered_copies += 1;
                        }
                    }
                }
            }
        })?;
        let ids = table
            .endpoints()
            .iter()
            .map(|e| {
                sinks
                    .contains_key(&e.name)
                    .then(|| recovered.endpoints.get(&e.name).copied())
                    .flatten()
            })
            .collect();
        let by_name = sinks
            .keys()
            .filter_map(|n| recovered.endpoints.get(n).map(|&id| (n.clone(), id)))
            .collect();
        let shared = Arc::new(Shared {
            store,
            config,
            dead_letter: Mutex::new(dead_letter),
            committed: Mutex::new(recovered.next - 1),
            records: Condvar::new(),
            space: Condvar::new(),
            stored_bytes: AtomicU64::new(stored_bytes),
            input_lag: AtomicU64::new(u64::MAX),
            stored_records: AtomicU64::new(stored_records),
            gc_through: AtomicU64::new(first_seq.map_or(recovered.next - 1, |s: u64| s - 1)),
            trimmed_through: AtomicU64::new(0),
            tail: Mutex::new(Tail {
                first: recovered.next,
                ..Tail::default()
            }),
            endpoints,
            closing: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            unrouted: AtomicU64::new(0),
            fallback: AtomicU64::new(0),
            backpressure: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            recovered: AtomicU64::new(recovered_copies),
            reloaded: std::sync::RwLock::new(None),
            exits: Mutex::new(Exits::default()),
            exited: Condvar::new(),
        });
        let mut sinks = sinks;
        let mut workers = Vec::new();
        for (index, e) in shared.endpoints.iter().enumerate() {
            let sink = sinks.remove(&e.name);
            if sink.is_none() && e.backlog.load(Ordering::Relaxed) > 0 {
                tracing::warn!(
                    "store {}: {} copies for endpoint '{}', which has no sink now, go to the dead letter",
                    shared.store.path().display(),
                    e.backlog.load(Ordering::Relaxed),
                    e.name
                );
            }
            let worker_shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("endpoint-{}", e.name))
                .spawn(move || {
                    let _exit = ExitGuard {
                        shared: &worker_shared,
                        committer: false,
                    };
                    endpoint::Worker::new(Arc::clone(&worker_shared), index, sink).run()
                })
                .map_err(|e| PipelineError::Thread(e.to_string()))?;
            workers.push(handle);
        }
        let (tx, rx) = channel();
        let committer_shared = Arc::clone(&shared);
        let committer = std::thread::Builder::new()
            .name("store-committer".into())
            .spawn(move || {
                let _exit = ExitGuard {
                    shared: &committer_shared,
                    committer: true,
                };
                commit_loop(&committer_shared, rx, recovered.next)
            })
            .map_err(|e| PipelineError::Thread(e.to_string()))?;
        Ok(Pipeline {
            shared,
            table: Arc::new(table),
            ids,
            by_name,
            submit: Mutex::new(Some(tx)),
            committer: Some(committer),
            workers,
            observer: None,
        })
    }

    /// Calls `observer` for every message routed from now on.
    pub fn set_observer(&mut self, observer: Arc<RouteObserver>) {
        self.observer = Some(observer);
    }

    /// A handle that swaps the routing table while the pipeline runs.
    pub fn tables(&self) -> TableHandle {
        TableHandle(Arc::clone(&self.shared))
    }

    /// The table set by [`TableHandle::set`], if any: route with it (a router over it and
    /// [`Pipeline::prepare_with`]) rather than [`Pipeline::router`]'s.
    pub fn reloaded_table(&self) -> Option<Arc<RouteTable>> {
        self.shared
            .reloaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The routing table.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// A router over the pipeline's table, for [`Pipeline::prepare`] (one per thread).
    pub fn router(&self) -> Router<'_> {
        self.table.router()
    }

    /// Validates `message` with IoT Hub's rules, routes it, stamps each endpoint's
    /// enrichments and encodes it for the store. `enqueued_time` is the hub's acceptance time.
    pub fn prepare(
        &self,
        router: &mut Router<'_>,
        message: &Message,
        twin: Option<&dyn TwinLookup>,
        enqueued_time: SystemTime,
    ) -> Result<Prepared, Rejected> {
        self.prepare_into(None, router, message, twin, enqueued_time, Vec::new())
    }

    /// [`Pipeline::prepare`] with another table than the one the pipeline opened with: a
    /// routing configuration reloaded while the pipeline runs (`hubroute::ops::LiveTable`).
    /// `router` must be a router over `table`. Its endpoints are matched by name to the sinks
    /// the pipeline opened with (also those the opening table lacked); one without a sink is rejected as `prepare` rejects an unbound
    /// one, so check the new table's endpoints before swapping it in. Endpoints the new table
    /// no longer routes to keep delivering what is stored for them.
    pub fn prepare_with(
        &self,
        table: &RouteTable,
        router: &mut Router<'_>,
        message: &Message,
        twin: Option<&dyn TwinLookup>,
        enqueued_time: SystemTime,
    ) -> Result<Prepared, Rejected> {
        self.prepare_into(
            Some(table),
            router,
            message,
            twin,
            enqueued_time,
            Vec::new(),
        )
    }

    /// [`Pipeline::prepare`] (or, with `table`, [`Pipeline::prepare_with`]) that encodes the
    /// record into `record`'s memory (emptied first, grown only if too small), allocating
    /// nothing itself. For a caller that allocates records on another thread than the one
    /// routing: `hubroute run` on a file has its reading thread allocate each line's record,
    /// so the heap growth that records need lands on that thread, not on the routing thread
    /// the run waits for.
    pub fn prepare_into(
        &self,
        table: Option<&RouteTable>,
        router: &mut Router<'_>,
        message: &Message,
        twin: Option<&dyn TwinLookup>,
        enqueued_time: SystemTime,
        record: Vec<u8>,
    ) -> Result<Prepared, Rejected> {
        let violations = message.validate(self.shared.config.protocol);
        if let Some(first) = violations.first() {
            let reasons: Vec<String> = violations
                .iter()
                .map(|v| format!("[{}] {}", v.code, v.message))
                .collect();
            return Err(Rejected {
                code: first.code,
                reason: reasons.join("; "),
            });
        }
        self.route_in(table, router, message, twin, enqueued_time, record)
    }

    /// [`Pipeline::prepare`] (or, with `table`, [`Pipeline::prepare_with`]) for a message the
    /// router itself made: a twin change or device lifecycle notification. IoT Hub's rules for
    /// what a device may send (the property charset of HTTPS) are not applied to it: its
    /// properties (`operationTimestamp` holds `:`) are the hub's, not a device's.
    pub fn prepare_event(
        &self,
        table: Option<&RouteTable>,
        router: &mut Router<'_>,
        message: &Message,
        twin: Option<&dyn TwinLookup>,
        enqueued_time: SystemTime,
    ) -> Result<Prepared, Rejected> {
        self.route_in(table, router, message, twin, enqueued_time, Vec::new())
    }

    /// A handle that reads [`Pipeline::stats`] without borrowing the pipeline (for a metrics
    /// server that outlives the borrow of the code driving the pipeline).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared))
    }

    /// Whether `bytes` more would not fit in the store now, so acceptance would wait (the
    /// committer's own test, one atomic load): an input that must answer its sender in bounded
    /// time refuses the message instead of handing it over (the HTTPS input's 503).
    pub fn store_is_full_for(&self, bytes: u64) -> bool {
        let stored = self.shared.stored_bytes.load(Ordering::Acquire);
        stored > 0 && stored.saturating_add(bytes) > self.shared.config.max_store_bytes
    }

    /// Routes a valid message and encodes it with each endpoint's enrichments into `bytes`.
    /// The endpoints of the pipeline's own table are its sinks by position; those of another
    /// (`table`, reloaded) by name.
    fn route_in(
        &self,
        table: Option<&RouteTable>,
        router: &mut Router<'_>,
        message: &Message,
        twin: Option<&dyn TwinLookup>,
        enqueued_time: SystemTime,
        mut bytes: Vec<u8>,
    ) -> Result<Prepared, Rejected> {
        let reloaded = table;
        let table = reloaded.unwrap_or(&self.table);
        let store_id = |e: crate::route::EndpointId| match reloaded {
            Some(t) => self.by_name.get(&t.endpoint(e).name).copied(),
            None => self.ids.get(usize::from(e.0)).copied().flatten(),
        };
        bytes.clear();
        let source = message.source.unwrap_or(self.shared.config.default_source);
        let routing = match twin {
            Some(t) => router.route_with_twin(message, source, t),
            None => router.route(message, source),
        };
        if let Some(observe) = &self.observer {
            observe(table, message, source, twin, &routing);
        }
        // Inline for the usual few endpoints: no allocation per message besides the record.
        let mut destinations: SmallVec<[Destination; 4]> = SmallVec::new();
        let mut ids = SmallVec::new();
        for &endpoint in &routing.endpoints {
            let Some(id) = store_id(endpoint) else {
                // Pipeline::open refuses a table whose reachable endpoints lack a sink only
                // in the CLI; a library caller may leave one unbound: say so, as IoT Hub would
                // refuse such a configuration.
                return Err(Rejected {
                    code: crate::sink::codes::UNKNOWN_ENDPOINT,
                    reason: format!(
                        "routes to endpoint '{}', which has no sink",
                        table.endpoint(endpoint).name
                    ),
                });
            };
            let enrichments = if table.enriches(endpoint) {
                table.enrichment_values(message, endpoint, source, twin)
            } else {
                Vec::new()
            };
            destinations.push(Destination {
                endpoint: id,
                enrichments,
            });
            ids.push(id);
        }
        if !ids.is_empty() {
            // A record in memory the caller gave ([`Pipeline::prepare_into`]) grows only if
            // it must; a fresh one is sized once, to an over-estimate (length prefixes).
            if bytes.capacity() == 0 {
                let strings = |p: &crate::message::Properties| -> usize {
                    p.iter()
                        .map(|(n, v)| 10 + n.len() + v.map_or(0, str::len))
                        .sum()
                };
                let enrichments: usize = destinations
                    .iter()
                    .flat_map(|d| &d.enrichments)
                    .map(|(k, v)| 10 + k.len() + v.len())
                    .sum();
                bytes.reserve(
                    64 + 8 * destinations.len()
                        + enrichments
                        + strings(&message.system_properties)
                        + strings(&message.app_properties)
                        + message.body.len(),
                );
            }
            codec::encode_routed(
                &mut bytes,
                enqueued_time,
                &destinations,
                message,
                router.body_json(),
            );
        }
        Ok(Prepared {
            bytes,
            enqueued: enqueued_time,
            destinations: ids,
            fallback: routing.fallback,
        })
    }

    /// Accepts `batch`: returns once it is durably in the store (then acknowledge the input),
    /// or with an error (then do not). Blocks while the store is full.
    pub fn accept(&self, batch: Vec<Prepared>) -> Result<Accepted, PipelineError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.accept_then(batch, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(PipelineError::Closed))
    }

    /// Accepts `batch` without blocking: `done` runs (on the committer's thread; keep it
    /// quick, e.g. send to a channel) once the batch is durably stored, or with the error.
    /// Batches from concurrent callers are committed together (one fsync).
    pub fn accept_then(
        &self,
        batch: Vec<Prepared>,
        done: impl FnOnce(Result<Accepted, PipelineError>) + Send + 'static,
    ) {
        let submission = Submission {
            batch,
            done: Box::new(done),
        };
        let sender = lock(&self.submit).clone();
        match sender {
            Some(s) => {
                if let Err(e) = s.send(submission) {
                    (e.0.done)(Err(PipelineError::Closed));
                }
            }
            None => (submission.done)(Err(PipelineError::Closed)),
        }
    }

    /// The numbers and health of every endpoint now.
    pub fn stats(&self) -> PipelineStats {
        snapshot(&self.shared)
    }

    /// Stops accepting, waits up to `drain` for every endpoint to deliver what is stored, then
    /// stops the workers (flushing their sinks) and returns the final numbers. Copies still
    /// undelivered stay in the store for the next run (see each endpoint's `backlog`).
    pub fn shutdown(mut self, drain: Duration) -> PipelineStats {
        self.stop(drain);
        snapshot(&self.shared)
    }

    fn stop(&mut self, drain: Duration) {
        drop(lock(&self.submit).take());
        let shared = &self.shared;
        let deadline = Instant::now() + drain;
        // The committer first takes what was submitted; if the store stays full past the
        // deadline, what it holds is refused (not acknowledged), never dropped after an ack.
        // Threads say when they end (`Exits`): waiting is a condvar wait, not a poll, so a
        // short run does not pay a polling interval at the end.
        if let Some(c) = self.committer.take() {
            if !shared.wait_exits(deadline, |e| e.committer) {
                shared.abandon.store(true, Ordering::Release);
                let _g = lock(&shared.committed);
                shared.space.notify_all();
            }
            let _ = c.join();
        }
        // Only now: a worker that sees `closing` and nothing new stops for good.
        shared.closing.store(true, Ordering::Release);
        shared.wake_all();
        let workers = self.workers.len();
        if !shared.wait_exits(deadline, |e| e.workers >= workers) {
            shared.abandon.store(true, Ordering::Release);
            shared.wake_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        // The committer is gone: the workers' last cursors are written here, durably.
        shared.store.stopping();
        shared.checkpoint_cursors();
    }
}

impl Drop for Pipeline {
    /// Stops without waiting for delivery: what is stored stays for the next run.
    fn drop(&mut self) {
        if self.committer.is_some() || !self.workers.is_empty() {
            self.stop(Duration::ZERO);
        }
    }
}

fn snapshot(shared: &Shared) -> PipelineStats {
    let now = SystemTime::now();
    let endpoints = shared
        .endpoints
        .iter()
        .map(|e| endpoint::snapshot(shared, e, now))
        .collect();
    PipelineStats {
        accepted: shared.accepted.load(Ordering::Relaxed),
        unrouted: shared.unrouted.load(Ordering::Relaxed),
        fallback: shared.fallback.load(Ordering::Relaxed),
        stored_records: shared.stored_records.load(Ordering::Relaxed),
        stored_bytes: shared.stored_bytes.load(Ordering::Relaxed),
        backpressure_episodes: shared.backpressure.load(Ordering::Relaxed),
        commits: shared.commits.load(Ordering::Relaxed),
        recovered_copies: shared.recovered.load(Ordering::Relaxed),
        input_lag: match shared.input_lag.load(Ordering::Relaxed) {
            u64::MAX => None,
            nanos => Some(Duration::from_nanos(nanos)),
        },
        endpoints,
    }
}

/// The committer: takes submitted batches, waits while the store is full, appends them in one
/// durable commit, then tells the workers and the submitters.
fn commit_loop(shared: &Shared, rx: Receiver<Submission>, mut next: u64) {
    // Store id → endpoint index (ids are small and dense).
    let mut by_id: Vec<Option<usize>> = Vec::new();
    for (i, e) in shared.endpoints.iter().enumerate() {
        let id = usize::from(e.id);
        if by_id.len() <= id {
            by_id.resize(id + 1, None);
        }
        by_id[id] = Some(i);
    }
    // Per endpoint: copies and bytes routed to it in this commit (added to its counters once).
    let mut added: Vec<(u64, u64)> = vec![(0, 0); shared.endpoints.len()];
    // While input flows, every commit carries the cursors that moved (see `commit`); when
    // none comes for `wait`, they are written alone. `wait` is the time between the last two
    // commits (at least IDLE_FLUSH) when that is at most IDLE_WAIT: while input flows in
    // spaced batches (a file read ahead of slower routing) the next commit carries the
    // cursors, at no sync of their own; once input stops they are written within about one
    // commit's time, and again as often while endpoints deliver. Commits further apart
    // (sparse input) wait only IDLE_FLUSH. The wait doubles up to IDLE_WAIT while nothing
    // moves.
    let mut wait = IDLE_FLUSH;
    let mut last_commit: Option<Instant> = None;
    // When cursors were last written: batches of unrouted messages only (no records to
    // ride with) write them alone at most every IDLE_FLUSH.
    let mut flushed = Instant::now();
    // A batch that was already waiting when the last commit ended: input is streaming in
    // while commits are made, so the next commit gathers (see `GATHER_BELOW`).
    let mut waiting: Option<Submission> = None;
    // Whether the last commit took more than one batch: also a stream.
    let mut shared_last = false;
    loop {
        let streaming = waiting.is_some() || shared_last;
        let first = match waiting.take().map_or_else(|| rx.recv_timeout(wait), Ok) {
            Ok(s) => s,
            Err(RecvTimeoutError::Timeout) => {
                // No input: write what the endpoints delivered, so that an idle router has
                // nothing to repeat after a crash. While they deliver (a backlog), again
                // after as long; once they stop, less and less often.
                if !shared.flush_cursors() {
                    wait = (wait * 2).min(IDLE_WAIT);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut subs = vec![first];
        let mut count = subs[0].batch.len();
        let gather_until = streaming.then(|| Instant::now() + shared.config.commit_gather);
        while count < shared.config.max_commit {
            let more = match gather_until {
                // Until the deadline, but not past a pause of a quarter of it: a submitter
                // that holds only a few batches in flight (standard input's reader) has sent
                // what it can and waits for this very commit.
                Some(until) if count < GATHER_BELOW => rx
                    .recv_timeout(
                        until
                            .saturating_duration_since(Instant::now())
                            .min(shared.config.commit_gather / 4),
                    )
                    .ok(),
                _ => rx.try_recv().ok(),
            };
            let Some(s) = more else { break };
            count += s.batch.len();
            subs.push(s);
        }
        let batches = subs.len();
        let records: Vec<&Prepared> = subs
            .iter()
            .flat_map(|s| s.batch.iter())
            .filter(|p| !p.is_unrouted())
            .collect();
        let bytes: u64 = records.iter().map(|p| p.bytes.len() as u64).sum();
        let stored = records.len() as u64;
        let result = if wait_for_space(shared, bytes) {
            commit(shared, &records, next)
        } else {
            Err(PipelineError::Closed)
        };
        if result.is_ok() && stored > 0 {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            wait = match last_commit.map(|t| now - t) {
                // A stream: the next commit comes about as soon and carries the cursors.
                Some(gap) if gap <= IDLE_WAIT => gap.max(IDLE_FLUSH),
                // Sparse input (or the first commit): not worth waiting for; a few commits
                // a second can afford a cursor frame of their own.
                _ => IDLE_FLUSH,
            };
            last_commit = Some(now);
            flushed = now;
            if let Some(oldest) = records.iter().map(|p| p.enqueued).min() {
                let lag = SystemTime::now()
                    .duration_since(oldest)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1));
                shared.input_lag.store(lag, Ordering::Relaxed);
            }
            for p in &records {
                for &id in &p.destinations {
                    if let Some(&Some(i)) = by_id.get(usize::from(id)) {
                        added[i].0 += 1;
                        added[i].1 += p.bytes.len() as u64;
                    }
                }
            }
            let first_seq = next;
            next += stored;
            for (e, (copies, bytes)) in shared.endpoints.iter().zip(added.iter_mut()) {
                if *copies > 0 {
                    e.routed.fetch_add(*copies, Ordering::Relaxed);
                    e.backlog.fetch_add(*copies, Ordering::Relaxed);
                    e.backlog_bytes.fetch_add(*bytes, Ordering::Relaxed);
                    // Before `committed` moves (both are read under its lock).
                    e.wanted.store(next - 1, Ordering::Release);
                }
            }
            // The records move into the tail (the submitters need only the counts).
            let moved = subs.iter_mut().flat_map(|s| {
                s.batch
                    .iter_mut()
                    .filter(|p| !p.is_unrouted())
                    .map(|p| TailRecord {
                        bytes: Arc::new(codec::StoredRecord::new(std::mem::take(&mut p.bytes))),
                        destinations: p.destinations.clone(),
                    })
            });
            lock(&shared.tail).push(first_seq, moved);
            shared.stored_bytes.fetch_add(bytes, Ordering::AcqRel);
            shared.stored_records.fetch_add(stored, Ordering::AcqRel);
            let mut committed = lock(&shared.committed);
            *committed = first_seq + stored - 1;
            for (e, (copies, bytes)) in shared.endpoints.iter().zip(added.iter_mut()) {
                if *copies > 0 {
                    e.wake.notify_one();
                }
                (*copies, *bytes) = (0, 0);
            }
        } else if flushed.elapsed() >= IDLE_FLUSH {
            shared.flush_cursors();
            flushed = Instant::now();
        }
        for s in subs {
            let outcome = result.clone().map(|()| {
                let unrouted = s.batch.iter().filter(|p| p.is_unrouted()).count();
                let fallback = s.batch.iter().filter(|p| p.fallback).count();
                shared
                    .unrouted
                    .fetch_add(unrouted as u64, Ordering::Relaxed);
                shared
                    .fallback
                    .fetch_add(fallback as u64, Ordering::Relaxed);
                shared
                    .accepted
                    .fetch_add((s.batch.len() - unrouted) as u64, Ordering::Relaxed);
                Accepted {
                    stored: s.batch.len() - unrouted,
                    unrouted,
                }
            });
            (s.done)(outcome);
        }
        waiting = rx.try_recv().ok();
        shared_last = batches > 1;
    }
}

/// Waits until `bytes` more fit in the store (or the store is empty: one batch larger than
/// the limit is still taken, so the pipeline cannot wedge). Says so once per episode.
/// `false` when the pipeline was abandoned while waiting.
fn wait_for_space(shared: &Shared, bytes: u64) -> bool {
    let limit = shared.config.max_store_bytes;
    let full = || {
        let stored = shared.stored_bytes.load(Ordering::Acquire);
        stored > 0 && stored.saturating_add(bytes) > limit
    };
    if !full() {
        return true;
    }
    shared.backpressure.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    tracing::warn!(
        "store {} is full ({} of {} bytes): input paused until endpoints deliver or retention \
         dead-letters (nothing is dropped; see the endpoints' health)",
        shared.store.path().display(),
        shared.stored_bytes.load(Ordering::Relaxed),
        limit
    );
    while full() {
        if shared.abandon.load(Ordering::Acquire) {
            return false;
        }
        // Records every endpoint has passed may still be in the store: their cursors are
        // written with the next commit, which is waiting here.
        shared.flush_cursors();
        if !full() {
            break;
        }
        let guard = lock(&shared.committed);
        let _ = shared.space.wait_timeout(guard, Duration::from_millis(200));
    }
    tracing::info!(
        "store {}: space again after {:.1}s, input resumed",
        shared.store.path().display(),
        started.elapsed().as_secs_f64()
    );
    true
}

/// Appends durably, retrying a failing store (disk full, I/O error) with backoff and saying
/// so: the input waits, nothing is dropped. Gives up only when the pipeline is abandoned.
fn commit(shared: &Shared, records: &[&Prepared], first: u64) -> Result<(), PipelineError> {
    if records.is_empty() {
        return Ok(());
    }
    let slices: Vec<&[u8]> = records.iter().map(|p| p.bytes.as_slice()).collect();
    // The cursors that moved ride in the records' write and sync (a cursor frame of a few
    // bytes a moved endpoint), and what every endpoint has passed is deleted after it.
    let (moved, delete) = shared.moved_cursors();
    let cursors = cursor_pairs(&moved);
    let mut retry = 0u32;
    loop {
        match shared.store.commit(first, &slices, &cursors, delete) {
            Ok(deleted) => {
                shared.cursors_written(&moved, delete, deleted);
                if retry > 0 {
                    tracing::info!("store {}: writing again", shared.store.path().display());
                }
                return Ok(());
            }
            Err(e) => {
                retry += 1;
                if retry.is_power_of_two() {
                    tracing::warn!("{e}; input paused, retrying (attempt {retry})");
                }
                if !shared.sleep(shared.config.retry.backoff(retry)) {
                    return Err(PipelineError::Store(e));
                }
            }
        }
    }
}

/// The router's twins announce their changes through the pipeline: routed by the table as
/// last reloaded, with the changed twin as `$twin`, and durably accepted.
impl crate::twin::Notify for Pipeline {
    fn route_and_accept(
        &self,
        message: &Message,
        twin: &dyn TwinLookup,
        at: SystemTime,
    ) -> Result<(), crate::twin::NotifyError> {
        let table = self.reloaded_table();
        let mut router = match &table {
            Some(t) => t.router(),
            None => self.router(),
        };
        let prepared = self
            .prepare_event(table.as_deref(), &mut router, message, Some(twin), at)
            .map_err(|r| crate::twin::NotifyError::Rejected {
                code: r.code,
                reason: r.reason,
            })?;
        self.accept(vec![prepared])
            .map(|_| ())
            .map_err(|e| crate::twin::NotifyError::NotAccepted(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: usize, destinations: &[u16]) -> TailRecord {
        TailRecord {
            bytes: Arc::new(codec::StoredRecord::new(vec![0; len])),
            destinations: destinations.iter().copied().collect(),
        }
    }

    fn seqs(out: &[(u64, Arc<codec::StoredRecord>)]) -> Vec<u64> {
        out.iter().map(|(s, _)| *s).collect()
    }

    /// An endpoint takes only its own records from the tail, in order, up to `max`, and
    /// passes the others'.
    #[test]
    fn tail_gives_each_endpoint_its_own_records() {
        let mut tail = Tail {
            first: 1,
            ..Tail::default()
        };
        tail.push(
            1,
            [
                record(10, &[0]),
                record(10, &[1]),
                record(10, &[0, 1]),
                record(10, &[1]),
            ],
        );
        let mut out = Vec::new();
        assert_eq!(tail.read_for(0, 4, 0, 10, &mut out), Some(4));
        assert_eq!(seqs(&out), [1, 3]);
        out.clear();
        assert_eq!(tail.read_for(0, 4, 1, 2, &mut out), Some(3));
        assert_eq!(seqs(&out), [2, 3]);
        out.clear();
        assert_eq!(tail.read_for(3, 4, 1, 2, &mut out), Some(4));
        assert_eq!(seqs(&out), [4]);
        out.clear();
        // Not yet committed past 2: only what is committed.
        assert_eq!(tail.read_for(0, 2, 1, 10, &mut out), Some(2));
        out.clear();
        // An endpoint with no records passes everything; one unknown too.
        assert_eq!(tail.read_for(0, 4, 7, 10, &mut out), Some(4));
        assert!(out.is_empty());
        // After the end: not in the tail.
        assert_eq!(tail.read_for(4, 4, 0, 10, &mut out), None);
    }

    /// The tail keeps what some endpoint has not settled yet, and lets go of the rest as soon
    /// as the last endpoint settles it, without waiting for a commit.
    #[test]
    fn the_tail_lets_go_of_what_every_endpoint_settled() {
        let dir = std::env::temp_dir().join(format!("hubroute-tail-trim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let table = RouteTable::from_json(
            r#"{"routes": [
                {"name": "a", "source": "DeviceMessages", "condition": "true", "endpointNames": ["a"], "isEnabled": true},
                {"name": "b", "source": "DeviceMessages", "condition": "true", "endpointNames": ["b"], "isEnabled": true}],
              "endpoints": {"serviceBusQueues": [{"name": "a"}, {"name": "b"}]}}"#,
            "hub",
        )
        .table
        .expect("the table builds");
        let mut sinks: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
        for name in ["a", "b"] {
            let path = dir.join(format!("{name}.jsonl"));
            sinks.insert(
                name.into(),
                Box::new(crate::sink::JsonLinesSink::to_path(path).unwrap()),
            );
        }
        let dead = DeadLetter::to_path(dir.join("dead.jsonl")).unwrap();
        let p = Pipeline::open(
            PipelineConfig::new(dir.join("store"), "hub"),
            table,
            sinks,
            dead,
        )
        .unwrap();
        let shared = &p.shared;
        // Records the committer never made: the workers, waiting for a commit, leave them
        // alone.
        let first = lock(&shared.tail).first;
        let records = (0..4).map(|_| record(10, &[0, 1]));
        lock(&shared.tail).push(first, records);
        let settle = |endpoint: usize, through: u64| {
            shared.endpoints[endpoint]
                .settled
                .store(first - 1 + through, Ordering::Release);
            shared.trim_tail();
            lock(&shared.tail).first - first
        };
        assert_eq!(settle(0, 3), 0, "b has settled none");
        assert_eq!(settle(1, 1), 1, "both have settled the first");
        assert_eq!(settle(1, 4), 3, "a is at the third");
        assert_eq!(settle(0, 4), 4, "both have settled all four");
        assert!(lock(&shared.tail).records.is_empty());
        p.shutdown(Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Records leaving the tail (bytes bound, deletion) leave the endpoints' indexes too, and
    /// a reader behind the tail is sent to the store.
    #[test]
    fn tail_forgets_what_it_drops() {
        let mut tail = Tail {
            first: 1,
            ..Tail::default()
        };
        let big = usize::try_from(TAIL_BYTES / 2).unwrap();
        tail.push(1, [record(big, &[0]), record(big, &[0]), record(big, &[1])]);
        assert_eq!(tail.first, 2);
        assert_eq!(tail.by_endpoint[0].len(), 1);
        let mut out = Vec::new();
        assert_eq!(tail.read_for(0, 3, 0, 10, &mut out), None);
        assert_eq!(tail.read_for(1, 3, 0, 10, &mut out), Some(3));
        assert_eq!(seqs(&out), [2]);
        tail.drop_through(2);
        assert!(tail.by_endpoint[0].is_empty());
        assert_eq!(tail.by_endpoint[1].len(), 1);
        tail.drop_through(10);
        assert_eq!(tail.first, 11);
        assert!(tail.by_endpoint.iter().all(|q| q.is_empty()));
        // A gap (records the tail never saw) starts it afresh.
        tail.push(20, [record(1, &[1])]);
        assert_eq!(tail.first, 20);
        out.clear();
        assert_eq!(tail.read_for(19, 20, 1, 10, &mut out), Some(20));
        assert_eq!(seqs(&out), [20]);
    }
}
