//! Delivery: per-endpoint queues and workers, retries with backoff, and the dead letter.
//!
//! IoT Hub keeps delivering to healthy endpoints while one is unhealthy, retries a failing
//! endpoint for a while, and then drops its messages (`research/azure-routing.md` §3.5). hubroute
//! does the same, except that nothing is dropped silently: what cannot be delivered goes to a
//! [`DeadLetter`] file with the reason, and is counted in [`DeliveryStats`].
//!
//! * Each endpoint has its own worker thread fed by a bounded queue, so a slow or failing
//!   endpoint only ever delays itself.
//! * [`Dispatcher::dispatch`] never blocks: when an endpoint's queue is full the envelope is
//!   dead-lettered at once with reason `backlog full` (code `E0503`). Blocking instead would let
//!   one stuck endpoint stall the whole router, which is the failure this design exists to avoid.
//! * A worker takes what is queued (up to [`DispatcherConfig::max_batch`]) and writes it as one
//!   batch. A [`SinkError::Retryable`] failure is retried with exponential backoff
//!   ([`RetryPolicy`]); a [`SinkError::Fatal`] one, or running out of attempts, sends the batch to
//!   the dead letter. A fatal batch of several envelopes is first retried one envelope at a time,
//!   so one message the endpoint can never take does not take its batch-mates down with it.
//! * A panicking sink is caught: its batch is dead-lettered and the sink is not used again (its
//!   state is unknown); later envelopes for it are dead-lettered with code `E0506`.
//! * [`Dispatcher::dispatch_tracked`] attaches a [`Ticket`] shared by every copy of one input
//!   message. When the last copy is settled (delivered *and flushed*, dead-lettered, or lost) the
//!   ticket's callback gets the [`Settlement`], which is how an input that needs acknowledging
//!   (a JetStream consumer, an MQTT subscription) acknowledges only what is safe.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::time::format_enqueued_time;
use super::{codes, Envelope, Sink, SinkError};

/// How often and how patiently a failing batch is retried.
///
/// The wait before retry `n` (1-based) is `initial_backoff * multiplier^(n-1)`, capped at
/// `max_backoff`. Exponential, so a briefly unavailable endpoint recovers fast and a down one is
/// not hammered; capped, so a long outage is still probed regularly.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per batch including the first (0 is treated as 1).
    pub max_attempts: u32,
    /// The wait before the first retry.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Growth factor per retry (a value below 1, or not finite, is treated as 1).
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 100 ms, 200 ms, 400 ms, 800 ms (at most 10 s).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt, then the dead letter.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The number of attempts a batch gets (at least 1).
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The wait before retry number `retry` (1 = the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self.max_backoff;
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * multiplier.powi(exponent);
        if !secs.is_finite() || secs >= cap.as_secs_f64() {
            return cap;
        }
        Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap))
    }
}

/// Where undeliverable envelopes go: one JSON line each,
/// `{"endpoint", "code", "reason", "attempts", "partition", "sequence", "enqueuedTimeUtc",
/// "message"}`, where `message` has the message JSON shape (`systemProperties`,
/// `appProperties`, `body` or `bodyBase64`) that `Message::from_json_str` and `hubroute` read,
/// so a dead letter file can be replayed as input.
pub struct DeadLetter {
    out: Box<dyn Write + Send>,
    description: String,
}

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl DeadLetter {
    /// Appends to the file at `path`, creating it and its parent directories if needed.
    pub fn to_path(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(DeadLetter {
            out: Box::new(file),
            description: path.display().to_string(),
        })
    }

    /// Writes to any writer (standard error, a buffer in a test).
    pub fn to_writer(out: Box<dyn Write + Send>, description: impl Into<String>) -> Self {
        DeadLetter {
            out,
            description: description.into(),
        }
    }

    /// Where the lines go, for messages.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Appends one dead-letter line for `envelope` (written with a single `write_all`).
    pub fn write(
        &mut self,
        envelope: &Envelope,
        code: &str,
        reason: &str,
        attempts: u32,
    ) -> std::io::Result<()> {
        let record = serde_json::json!({
            "endpoint": envelope.endpoint,
            "code": code,
            "reason": reason,
            "attempts": attempts,
            "partition": envelope.partition,
            "sequence": envelope.sequence,
            "enqueuedTimeUtc": format_enqueued_time(envelope.enqueued_time),
            "message": envelope.message.to_json_value(),
        });
        let mut line = record.to_string();
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        self.out.flush()
    }
}

/// What happened to each endpoint's envelopes. Every envelope accepted by
/// [`Dispatcher::dispatch`] ends up in exactly one of `delivered`, `dead_lettered` or `lost`
/// (at-least-once: after a partly failed batch some envelopes can be both delivered and then
/// dead-lettered or delivered twice, and are then counted once, where they ended).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Envelopes the sink accepted.
    pub delivered: u64,
    /// Envelopes written to the dead letter.
    pub dead_lettered: u64,
    /// Attempts repeated after a retryable error (including retried final flushes).
    pub retries: u64,
    /// Batches (after splitting a fatal batch into single envelopes) that went to the dead letter.
    pub failed_batches: u64,
    /// Envelopes that should have gone to the dead letter but could not be written there (the
    /// dead-letter file itself failed). Anything but 0 needs an operator's attention.
    pub lost: u64,
    /// Final flushes that failed even after retries.
    pub flush_failures: u64,
    /// The last error seen, for a human.
    pub last_error: Option<String>,
}

impl EndpointStats {
    fn add(&mut self, other: &EndpointStats) {
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.retries += other.retries;
        self.failed_batches += other.failed_batches;
        self.lost += other.lost;
        self.flush_failures += other.flush_failures;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }
}

/// Per-endpoint results of a [`Dispatcher`] run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// By endpoint name; includes names that had no sink (all their envelopes dead-lettered).
    pub endpoints: BTreeMap<String, EndpointStats>,
}

impl DeliveryStats {
    /// One endpoint's numbers (all zero for a name never seen).
    pub fn endpoint(&self, name: &str) -> EndpointStats {
        self.endpoints.get(name).cloned().unwrap_or_default()
    }

    /// The sum over all endpoints.
    pub fn total(&self) -> EndpointStats {
        let mut t = EndpointStats::default();
        for s in self.endpoints.values() {
            t.add(s);
        }
        t
    }
}

/// Tuning of a [`Dispatcher`].
#[derive(Debug, Clone, PartialEq)]
pub struct DispatcherConfig {
    /// Envelopes each endpoint's queue holds before `dispatch` dead-letters (at least 1).
    pub queue_capacity: usize,
    /// Most envelopes per `write_batch` call (at least 1).
    pub max_batch: usize,
    /// Retries of failed batches.
    pub retry: RetryPolicy,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            queue_capacity: 10_000,
            max_batch: 500,
            retry: RetryPolicy::default(),
        }
    }
}

/// The outcome of [`Dispatcher::dispatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// Queued for the endpoint's worker.
    Queued,
    /// Written to the dead letter at once, with this code ([`codes::BACKLOG_FULL`],
    /// [`codes::UNKNOWN_ENDPOINT`] or [`codes::WORKER_STOPPED`]).
    DeadLettered(&'static str),
}

/// [`Dispatcher::dispatch`] could neither queue nor dead-letter the envelope (the dead-letter
/// file failed); the envelope is handed back so the caller can keep it (e.g. not acknowledge it).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct DispatchError {
    /// The envelope that was not taken.
    pub envelope: Box<Envelope>,
    /// Why it could not be queued, and why the dead letter failed.
    pub reason: String,
}

/// How the copies of one input message ended, handed to a [`Ticket`]'s callback once all of
/// them are settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Copies the endpoint's sink accepted and flushed.
    pub delivered: usize,
    /// Copies written to the dead letter (with their reason).
    pub dead_lettered: usize,
    /// Copies that were neither: the dead letter itself failed. Do not acknowledge the input.
    pub lost: usize,
}

impl Settlement {
    /// Every copy is accounted for, delivered or dead-lettered, so the input may be acknowledged.
    pub fn is_safe(&self) -> bool {
        self.lost == 0
    }
}

type TicketCallback = Box<dyn FnOnce(Settlement) + Send>;

struct TicketState {
    remaining: AtomicUsize,
    settlement: Mutex<Settlement>,
    done: Mutex<Option<TicketCallback>>,
}

/// Tracks the copies of one input message through the [`Dispatcher`]: created for `copies`
/// envelopes, cloned into each [`Dispatcher::dispatch_tracked`] call, and settled by the
/// endpoint workers. The callback runs exactly once, on whichever thread settles the last copy
/// (at once, in [`Ticket::new`], for zero copies), so it should be quick: send an acknowledgement
/// request to a channel, say.
#[derive(Clone)]
pub struct Ticket(Arc<TicketState>);

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("remaining", &self.0.remaining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How one copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Delivered,
    DeadLettered,
    Lost,
}

impl Ticket {
    /// A ticket for `copies` envelopes that calls `done` when all of them are settled.
    pub fn new(copies: usize, done: impl FnOnce(Settlement) + Send + 'static) -> Ticket {
        let ticket = Ticket(Arc::new(TicketState {
            remaining: AtomicUsize::new(copies),
            settlement: Mutex::new(Settlement::default()),
            done: Mutex::new(Some(Box::new(done))),
        }));
        if copies == 0 {
            ticket.finish();
        }
        ticket
    }

    fn settle(&self, how: Settled) {
        {
            let mut s = lock(&self.0.settlement);
            match how {
                Settled::Delivered => s.delivered += 1,
                Settled::DeadLettered => s.dead_lettered += 1,
                Settled::Lost => s.lost += 1,
            }
        }
        // The copy that takes the count to zero runs the callback; settling more copies than
        // the ticket was made for never calls it twice.
        let before = self
            .0
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.finish();
        }
    }

    fn finish(&self) {
        let settlement = *lock(&self.0.settlement);
        if let Some(done) = lock(&self.0.done).take() {
            done(settlement);
        }
    }
}

/// Settles `ticket` (if any) for a copy whose dead-letter write returned `written`.
fn settle_dead_lettered(ticket: Option<&Ticket>, written: &std::io::Result<()>) {
    if let Some(t) = ticket {
        t.settle(if written.is_ok() {
            Settled::DeadLettered
        } else {
            Settled::Lost
        });
    }
}

fn settle_all(tickets: &[Option<Ticket>], how: Settled) {
    for t in tickets.iter().flatten() {
        t.settle(how);
    }
}

/// One queued copy and the ticket of its input message, if tracked.
struct Queued {
    envelope: Envelope,
    ticket: Option<Ticket>,
}

struct Worker {
    sender: Option<SyncSender<Queued>>,
    handle: Option<JoinHandle<EndpointStats>>,
    /// Dead-lettered by `dispatch` itself (backlog full, worker stopped).
    dead_lettered: AtomicU64,
}

/// Delivers envelopes to named sinks: one worker thread and one bounded queue per endpoint; see
/// the module docs. Call [`Dispatcher::finish`] to drain, flush and collect the statistics
/// (dropping the dispatcher also drains and joins, but discards the statistics).
pub struct Dispatcher {
    workers: BTreeMap<String, Worker>,
    dead_letter: Arc<Mutex<DeadLetter>>,
    /// Envelopes for endpoints without a sink, by name.
    unknown: Mutex<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("endpoints", &self.workers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (each critical section is
    // one write or one counter update), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dispatcher {
    /// Starts one worker per `(endpoint name, sink)`. Fails on a duplicate endpoint name
    /// ([`SinkError::Fatal`]) or when a thread cannot be started ([`SinkError::Retryable`]).
    pub fn new(
        sinks: impl IntoIterator<Item = (String, Box<dyn Sink>)>,
        dead_letter: DeadLetter,
        config: DispatcherConfig,
    ) -> Result<Self, SinkError> {
        let mut dispatcher = Dispatcher {
            workers: BTreeMap::new(),
            dead_letter: Arc::new(Mutex::new(dead_letter)),
            unknown: Mutex::new(BTreeMap::new()),
        };
        for (name, sink) in sinks {
            if dispatcher.workers.contains_key(&name) {
                return Err(SinkError::Fatal(format!(
                    "endpoint '{name}' has more than one sink"
                )));
            }
            let (sender, receiver) = sync_channel(config.queue_capacity.max(1));
            let job = Job {
                name: name.clone(),
                sink,
                receiver,
                dead_letter: Arc::clone(&dispatcher.dead_letter),
                retry: config.retry.clone(),
                max_batch: config.max_batch.max(1),
                poisoned: None,
                stats: EndpointStats::default(),
            };
            let thread_name: String = format!("hubroute-sink-{name}")
                .chars()
                .filter(|&c| c != '\0')
                .collect();
            let handle = std::thread::Builder::new()
                .name(thread_name)
                .spawn(move || job.run())
                .map_err(|e| {
                    SinkError::Retryable(format!("cannot start a worker for '{name}': {e}"))
                })?;
            dispatcher.workers.insert(
                name,
                Worker {
                    sender: Some(sender),
                    handle: Some(handle),
                    dead_lettered: AtomicU64::new(0),
                },
            );
        }
        Ok(dispatcher)
    }

    /// The endpoint names with a sink, sorted.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.workers.keys().map(String::as_str)
    }

    /// Hands `envelope` to its endpoint's queue without blocking. When it cannot be queued it is
    /// dead-lettered here and now; when even that fails it is handed back in the error.
    pub fn dispatch(&self, envelope: Envelope) -> Result<Dispatched, DispatchError> {
        self.dispatch_with(envelope, None)
    }

    /// [`Dispatcher::dispatch`], settling `ticket` when this copy is delivered (written and
    /// flushed), dead-lettered or lost. A copy handed back in the error counts as lost.
    pub fn dispatch_tracked(
        &self,
        envelope: Envelope,
        ticket: Ticket,
    ) -> Result<Dispatched, DispatchError> {
        self.dispatch_with(envelope, Some(ticket))
    }

    fn dispatch_with(
        &self,
        envelope: Envelope,
        ticket: Option<Ticket>,
    ) -> Result<Dispatched, DispatchError> {
        let Some(worker) = self.workers.get(&envelope.endpoint) else {
            let reason = format!(
                "unknown endpoint: no sink is bound to '{}'",
                envelope.endpoint
            );
            self.dead_letter_now(envelope, ticket, codes::UNKNOWN_ENDPOINT, &reason)?;
            return Ok(Dispatched::DeadLettered(codes::UNKNOWN_ENDPOINT));
        };
        let Some(sender) = &worker.sender else {
            // Only during drop; kept total rather than unreachable.
            let code = codes::WORKER_STOPPED;
            self.dead_letter_now(envelope, ticket, code, "endpoint worker stopped")?;
            return Ok(Dispatched::DeadLettered(codes::WORKER_STOPPED));
        };
        let (queued, code, reason) = match sender.try_send(Queued { envelope, ticket }) {
            Ok(()) => return Ok(Dispatched::Queued),
            Err(TrySendError::Full(q)) => (q, codes::BACKLOG_FULL, "backlog full"),
            Err(TrySendError::Disconnected(q)) => {
                (q, codes::WORKER_STOPPED, "endpoint worker stopped")
            }
        };
        self.dead_letter_now(queued.envelope, queued.ticket, code, reason)?;
        worker.dead_lettered.fetch_add(1, Ordering::Relaxed);
        Ok(Dispatched::DeadLettered(code))
    }

    fn dead_letter_now(
        &self,
        envelope: Envelope,
        ticket: Option<Ticket>,
        code: &'static str,
        reason: &str,
    ) -> Result<(), DispatchError> {
        let mut dl = lock(&self.dead_letter);
        let written = dl.write(&envelope, code, reason, 0);
        drop(dl);
        settle_dead_lettered(ticket.as_ref(), &written);
        match written {
            Ok(()) => {
                if code == codes::UNKNOWN_ENDPOINT {
                    *lock(&self.unknown)
                        .entry(envelope.endpoint.clone())
                        .or_default() += 1;
                }
                Ok(())
            }
            Err(e) => Err(DispatchError {
                reason: format!(
                    "{code} {reason}, and the dead letter {} failed: {e}",
                    lock(&self.dead_letter).describe()
                ),
                envelope: Box::new(envelope),
            }),
        }
    }

    /// Closes the queues, lets every worker deliver what is queued and flush its sink, joins the
    /// workers and returns what happened per endpoint.
    pub fn finish(mut self) -> DeliveryStats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> DeliveryStats {
        // Close every queue first so the workers drain in parallel, then join.
        for w in self.workers.values_mut() {
            w.sender = None;
        }
        let mut stats = DeliveryStats::default();
        for (name, w) in &mut self.workers {
            let mut s = match w.handle.take().map(JoinHandle::join) {
                Some(Ok(s)) => s,
                Some(Err(_)) => EndpointStats {
                    last_error: Some("the endpoint's worker thread panicked".into()),
                    ..EndpointStats::default()
                },
                None => EndpointStats::default(),
            };
            s.dead_lettered += std::mem::take(w.dead_lettered.get_mut());
            stats.endpoints.insert(name.clone(), s);
        }
        for (name, n) in std::mem::take(&mut *lock(&self.unknown)) {
            stats.endpoints.entry(name).or_default().dead_lettered += n;
        }
        stats
    }
}

impl Drop for Dispatcher {
    /// Drains and joins like [`Dispatcher::finish`], so queued envelopes are not abandoned.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One endpoint's worker: its sink, its queue and its counters.
struct Job {
    name: String,
    sink: Box<dyn Sink>,
    receiver: Receiver<Queued>,
    dead_letter: Arc<Mutex<DeadLetter>>,
    retry: RetryPolicy,
    max_batch: usize,
    /// Set once the sink panicked: why it is no longer used.
    poisoned: Option<String>,
    stats: EndpointStats,
}

/// The text of a panic payload (also for the pipeline's endpoint workers).
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

impl Job {
    fn run(mut self) -> EndpointStats {
        let capacity = self.max_batch.min(1024);
        let mut batch = Vec::with_capacity(capacity);
        let mut tickets = Vec::with_capacity(capacity);
        while let Ok(first) = self.receiver.recv() {
            batch.push(first.envelope);
            tickets.push(first.ticket);
            while batch.len() < self.max_batch {
                match self.receiver.try_recv() {
                    Ok(q) => {
                        batch.push(q.envelope);
                        tickets.push(q.ticket);
                    }
                    Err(_) => break,
                }
            }
            self.deliver(&batch, &tickets, true);
            batch.clear();
            tickets.clear();
        }
        self.final_flush();
        self.stats
    }

    /// One attempt at `batch`: written, and flushed too when someone waits on a ticket, because
    /// an input is acknowledged on the strength of it and must not be lost in a buffer.
    fn attempt(&mut self, batch: &[Envelope], tracked: bool) -> Result<(), SinkError> {
        self.sink.write_batch(batch)?;
        if tracked {
            self.sink.flush()?;
        }
        Ok(())
    }

    /// Writes `batch` with retries; what cannot be written goes to the dead letter. `tickets`
    /// runs parallel to `batch`.
    fn deliver(&mut self, batch: &[Envelope], tickets: &[Option<Ticket>], may_split: bool) {
        if let Some(why) = &self.poisoned {
            let reason = format!("the sink panicked earlier and is no longer used: {why}");
            self.stats.failed_batches += 1;
            self.dead_letter(batch, tickets, codes::SINK_PANICKED, &reason, 0);
            return;
        }
        let tracked = tickets.iter().any(Option::is_some);
        let attempts = self.retry.attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match catch_unwind(AssertUnwindSafe(|| self.attempt(batch, tracked))) {
                Ok(Ok(())) => {
                    self.stats.delivered += batch.len() as u64;
                    settle_all(tickets, Settled::Delivered);
                    return;
                }
                Ok(Err(e)) if e.is_retryable() && attempt < attempts => {
                    self.stats.retries += 1;
                    self.stats.last_error = Some(e.to_string());
                    std::thread::sleep(self.retry.backoff(attempt));
                }
                Ok(Err(e)) if e.is_retryable() => {
                    let reason = format!("retries exhausted after {attempt} attempts: {e}");
                    self.fail(batch, tickets, codes::RETRIES_EXHAUSTED, reason, attempt);
                    return;
                }
                Ok(Err(e)) => {
                    if may_split && batch.len() > 1 {
                        // Find the envelope(s) the endpoint can never take.
                        for (one, ticket) in batch.chunks(1).zip(tickets.chunks(1)) {
                            self.deliver(one, ticket, false);
                        }
                    } else {
                        self.fail(batch, tickets, codes::FATAL, e.to_string(), attempt);
                    }
                    return;
                }
                Err(payload) => {
                    let why = panic_text(payload.as_ref());
                    let reason = format!("the sink panicked: {why}");
                    self.poisoned = Some(why);
                    self.fail(batch, tickets, codes::SINK_PANICKED, reason, attempt);
                    return;
                }
            }
        }
    }

    fn fail(
        &mut self,
        batch: &[Envelope],
        tickets: &[Option<Ticket>],
        code: &str,
        reason: String,
        attempts: u32,
    ) {
        self.stats.failed_batches += 1;
        self.dead_letter(batch, tickets, code, &reason, attempts);
        self.stats.last_error = Some(reason);
    }

    fn dead_letter(
        &mut self,
        batch: &[Envelope],
        tickets: &[Option<Ticket>],
        code: &str,
        reason: &str,
        attempts: u32,
    ) {
        let mut dl = lock(&self.dead_letter);
        for (e, ticket) in batch.iter().zip(tickets) {
            let written = dl.write(e, code, reason, attempts);
            settle_dead_lettered(ticket.as_ref(), &written);
            match written {
                Ok(()) => self.stats.dead_lettered += 1,
                Err(err) => {
                    self.stats.lost += 1;
                    self.stats.last_error = Some(format!(
                        "endpoint '{}': cannot write to the dead letter {}: {err}",
                        self.name,
                        dl.describe()
                    ));
                }
            }
        }
    }

    fn final_flush(&mut self) {
        if self.poisoned.is_some() {
            return;
        }
        let attempts = self.retry.attempts();
        for attempt in 1..=attempts {
            let sink = &mut self.sink;
            let error = match catch_unwind(AssertUnwindSafe(|| sink.flush())) {
                Ok(Ok(())) => return,
                Ok(Err(e)) if e.is_retryable() && attempt < attempts => {
                    self.stats.retries += 1;
                    std::thread::sleep(self.retry.backoff(attempt));
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(payload) => format!("the sink panicked: {}", panic_text(payload.as_ref())),
            };
            self.stats.flush_failures += 1;
            self.stats.last_error = Some(format!("flush failed: {error}"));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            multiplier: 3.0,
        };
        let waits: Vec<_> = (1..=5).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 300, 900, 1000, 1000]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(1000));
        let odd = RetryPolicy {
            max_attempts: 0,
            multiplier: f64::NAN,
            ..p.clone()
        };
        assert_eq!(odd.attempts(), 1);
        assert_eq!(odd.backoff(7), Duration::from_millis(100));
        let huge = RetryPolicy {
            max_backoff: Duration::MAX,
            multiplier: 1e300,
            ..p
        };
        assert_eq!(huge.backoff(3), Duration::MAX);
    }

    #[test]
    fn dispatcher_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Dispatcher>();
    }
}
