//! One endpoint's delivery thread: reads the records after its cursor that route to it, writes
//! their copies to its sink, flushes, and advances its cursor; retries a failing sink with
//! backoff within the endpoint's retention, and dead-letters what outlives it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::health::{EndpointSnapshot, Health};
use super::{codec, lock, EndpointState, Shared};
use crate::sink::delivery::panic_text;
use crate::sink::{codes, Envelope, Sink, SinkError};

/// Records read from the store per look (most of them may be for other endpoints).
const SCAN: usize = 4096;

/// Copies on their way: the envelopes (their `sequence` is the store's), kept as one slice so
/// that a sink writes them without a copy, and the sizes of their records.
#[derive(Default)]
struct Copies {
    envelopes: Vec<Envelope>,
    bytes: Vec<u64>,
}

impl Copies {
    fn push(&mut self, envelope: Envelope, bytes: u64) {
        self.envelopes.push(envelope);
        self.bytes.push(bytes);
    }

    fn len(&self) -> usize {
        self.envelopes.len()
    }

    fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// Splits off the copies `pick` selects.
    fn split_off_where(&mut self, pick: impl Fn(&Envelope) -> bool) -> Copies {
        let mut picked = Copies::default();
        let mut kept = Copies::default();
        for (e, b) in self.envelopes.drain(..).zip(self.bytes.drain(..)) {
            if pick(&e) {
                picked.push(e, b);
            } else {
                kept.push(e, b);
            }
        }
        *self = kept;
        picked
    }

    fn into_singles(self) -> impl Iterator<Item = Copies> {
        self.envelopes
            .into_iter()
            .zip(self.bytes)
            .map(|(e, b)| Copies {
                envelopes: vec![e],
                bytes: vec![b],
            })
    }
}

pub(super) struct Worker {
    shared: Arc<Shared>,
    index: usize,
    sink: Option<Box<dyn Sink>>,
    /// Set once the sink panicked: why it is no longer used.
    poisoned: Option<String>,
    /// The last sequence looked at (records up to it that are not for us are passed).
    scanned: u64,
    /// Whether anything was written since the last flush at stop.
    dirty: bool,
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(1, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
    })
}

impl Worker {
    pub(super) fn new(shared: Arc<Shared>, index: usize, sink: Option<Box<dyn Sink>>) -> Self {
        let scanned = shared.endpoints[index].cursor.load(Ordering::Acquire);
        Worker {
            shared,
            index,
            sink,
            poisoned: None,
            scanned,
            dirty: false,
        }
    }

    fn state(&self) -> &EndpointState {
        &self.shared.endpoints[self.index]
    }

    /// Waits until records after `self.scanned` are committed; the last committed sequence, or
    /// `None` when it is time to stop.
    fn wait(&self) -> Option<u64> {
        let shared = &self.shared;
        let mut committed = lock(&shared.committed);
        loop {
            if shared.abandon.load(Ordering::Acquire) {
                return None;
            }
            if *committed > self.scanned {
                return Some(*committed);
            }
            if shared.closing.load(Ordering::Acquire) {
                return None;
            }
            committed = shared
                .records
                .wait_timeout(committed, Duration::from_millis(200))
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }

    pub(super) fn run(mut self) {
        while let Some(committed) = self.wait() {
            let cached = lock(&self.shared.tail).read_after(self.scanned, SCAN);
            let read = match cached {
                Some(r) => Ok(r),
                None => self
                    .shared
                    .store
                    .read_after(self.scanned, SCAN)
                    .map(|v| v.into_iter().map(|(k, b)| (k, Arc::from(b))).collect()),
            };
            let records: Vec<(u64, Arc<[u8]>)> = match read {
                Ok(r) => r,
                Err(e) => {
                    self.failed(&e.to_string());
                    if !self.shared.sleep(Duration::from_secs(1)) {
                        break;
                    }
                    continue;
                }
            };
            let id = self.state().id;
            let max_batch = self.shared.config.max_batch.max(1);
            let mut batch = Copies::default();
            let mut last = self.scanned;
            for (seq, bytes) in records {
                if seq > committed {
                    break;
                }
                match codec::peek(&bytes, id) {
                    Ok((false, _)) => {}
                    Ok((true, _)) => match codec::decode(&bytes) {
                        Ok(record) => {
                            let mut message = record.message;
                            if let Some(d) = record.destinations.iter().find(|d| d.endpoint == id) {
                                for (k, v) in &d.enrichments {
                                    message.app_properties.insert(k.clone(), Some(v.clone()));
                                }
                            }
                            batch.push(
                                Envelope {
                                    endpoint: self.state().name.clone(),
                                    message,
                                    enqueued_time: record.enqueued_time,
                                    hub_name: self.shared.config.hub_name.clone(),
                                    partition: 0,
                                    sequence: seq,
                                },
                                bytes.len() as u64,
                            );
                        }
                        Err(e) => self.corrupt(seq, &e.to_string()),
                    },
                    Err(e) => self.corrupt(seq, &e.to_string()),
                }
                last = seq;
                if batch.len() >= max_batch {
                    break;
                }
            }
            if let Some(first) = batch.envelopes.first() {
                self.state()
                    .oldest
                    .store(nanos(first.enqueued_time), Ordering::Release);
                if !self.deliver(batch) {
                    break; // abandoned: the cursor stays, the copies stay in the store
                }
            }
            self.scanned = last;
            let caught_up = last >= committed;
            if caught_up {
                self.state().oldest.store(0, Ordering::Release);
            }
            self.advance(caught_up);
        }
        self.stop();
    }

    /// A record that does not decode cannot become a copy: say so loudly (it cannot be
    /// dead-lettered as a message), count it, and go on.
    fn corrupt(&self, seq: u64, why: &str) {
        eprintln!(
            "store {}: record {seq} for endpoint '{}' is damaged and cannot be delivered: {why}",
            self.shared.store.path().display(),
            self.state().name
        );
        *lock(&self.state().dead_lettered)
            .entry(codes::STORE_RECORD_DAMAGED.to_string())
            .or_default() += 1;
    }

    /// Commits the cursor (`durable` when caught up, so an idle router has nothing to
    /// repeat after a crash) and deletes what every endpoint has passed.
    fn advance(&mut self, durable: bool) {
        let state = &self.shared.endpoints[self.index];
        if state.cursor.load(Ordering::Acquire) == self.scanned {
            return;
        }
        let mut retry = 0;
        loop {
            // Our own new cursor counts for the deletion.
            let min = self
                .shared
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    if i == self.index {
                        self.scanned
                    } else {
                        e.cursor.load(Ordering::Acquire)
                    }
                })
                .min()
                .unwrap_or(self.scanned);
            let delete = (min > self.shared.gc_through.load(Ordering::Acquire)).then_some(min);
            match self
                .shared
                .store
                .advance(state.id, self.scanned, delete, durable)
            {
                Ok((records, bytes)) => {
                    state.cursor.store(self.scanned, Ordering::Release);
                    if let Some(through) = delete {
                        self.shared.freed(through, records, bytes);
                    }
                    // Another worker may have advanced at the same time with our old cursor.
                    self.shared.collect();
                    return;
                }
                Err(e) => {
                    retry += 1;
                    eprintln!("{e} (endpoint '{}', retrying)", state.name);
                    if !self.shared.sleep(self.shared.config.retry.backoff(retry)) {
                        return;
                    }
                }
            }
        }
    }

    /// Marks an attempt failed with `error`.
    fn failed(&self, error: &str) {
        let mut h = lock(&self.state().health);
        h.attempted = true;
        h.failing_since.get_or_insert_with(Instant::now);
        h.last_error = Some(error.to_string());
        h.last_error_time = Some(SystemTime::now());
    }

    fn succeeded(&self) {
        let mut h = lock(&self.state().health);
        h.attempted = true;
        h.failing_since = None;
        h.last_success_time = Some(SystemTime::now());
    }

    fn settled(&self, copies: &Copies) {
        let state = self.state();
        let bytes = copies.total_bytes();
        let _ = state
            .backlog
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(copies.len() as u64))
            });
        let _ = state
            .backlog_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(bytes))
            });
    }

    /// One attempt: write and flush (the cursor moves on the strength of it, so the copies
    /// must not sit in a buffer).
    fn attempt(&mut self, copies: &Copies) -> Result<(), SinkError> {
        let Some(sink) = self.sink.as_mut() else {
            return Err(SinkError::Fatal("no sink is bound to this endpoint".into()));
        };
        sink.write_batch(&copies.envelopes)?;
        self.dirty = true;
        sink.flush()?;
        self.dirty = false;
        Ok(())
    }

    /// Delivers `copies` or dead-letters them; `false` only when abandoned before either.
    fn deliver(&mut self, mut copies: Copies) -> bool {
        if self.sink.is_none() {
            return self.dead_letter(
                copies,
                codes::UNKNOWN_ENDPOINT,
                "no sink is bound to this endpoint now",
                0,
            );
        }
        if let Some(why) = &self.poisoned {
            let reason = format!("the sink panicked earlier and is no longer used: {why}");
            return self.dead_letter(copies, codes::SINK_PANICKED, &reason, 0);
        }
        let retention = self.shared.config.retention.clone();
        let max_attempts = self.shared.config.retry.max_attempts;
        let mut attempt = 0u32;
        loop {
            // Retention: what is older than the retention time, or (while failing) beyond the
            // retention bytes, goes to the dead letter with the last error.
            if attempt > 0 {
                let now = SystemTime::now();
                let last = lock(&self.state().health)
                    .last_error
                    .clone()
                    .unwrap_or_default();
                let expired = copies.split_off_where(|e| {
                    now.duration_since(e.enqueued_time)
                        .is_ok_and(|age| age > retention.time)
                });
                if !expired.is_empty() {
                    let reason = format!(
                        "not delivered within the endpoint's retention time ({}s); last error: {last}",
                        retention.time.as_secs_f64()
                    );
                    if !self.dead_letter(expired, codes::RETENTION_EXPIRED, &reason, attempt) {
                        return false;
                    }
                }
                let backlog = self.state().backlog_bytes.load(Ordering::Acquire);
                if !copies.is_empty() && backlog > retention.bytes {
                    let reason = format!(
                        "the endpoint's waiting copies ({backlog} bytes) exceed its retention \
                         ({} bytes) while it fails; last error: {last}",
                        retention.bytes
                    );
                    return self.dead_letter(
                        copies,
                        codes::RETENTION_BYTES_EXCEEDED,
                        &reason,
                        attempt,
                    );
                }
                if copies.is_empty() {
                    return true;
                }
            }
            attempt += 1;
            match catch_unwind(AssertUnwindSafe(|| self.attempt(&copies))) {
                Ok(Ok(())) => {
                    self.succeeded();
                    let state = self.state();
                    state
                        .delivered
                        .fetch_add(copies.len() as u64, Ordering::Relaxed);
                    let now = SystemTime::now();
                    for e in &copies.envelopes {
                        let age = now.duration_since(e.enqueued_time).unwrap_or_default();
                        state.latency.record(age, 1);
                    }
                    self.settled(&copies);
                    return true;
                }
                Ok(Err(e)) if e.is_retryable() => {
                    self.failed(&e.to_string());
                    if max_attempts > 0 && attempt >= max_attempts {
                        let reason = format!("retries exhausted after {attempt} attempts: {e}");
                        return self.dead_letter(
                            copies,
                            codes::RETRIES_EXHAUSTED,
                            &reason,
                            attempt,
                        );
                    }
                    self.state().retries.fetch_add(1, Ordering::Relaxed);
                    if !self.shared.sleep(self.shared.config.retry.backoff(attempt)) {
                        return false;
                    }
                }
                Ok(Err(e)) => {
                    self.failed(&e.to_string());
                    if copies.len() > 1 {
                        // Find the copies the endpoint can never take; deliver the others.
                        for single in copies.into_singles() {
                            if !self.deliver(single) {
                                return false;
                            }
                        }
                        return true;
                    }
                    return self.dead_letter(copies, codes::FATAL, &e.to_string(), attempt);
                }
                Err(payload) => {
                    let why = panic_text(payload.as_ref());
                    self.failed(&format!("the sink panicked: {why}"));
                    let reason = format!("the sink panicked: {why}");
                    self.poisoned = Some(why);
                    return self.dead_letter(copies, codes::SINK_PANICKED, &reason, attempt);
                }
            }
        }
    }

    /// Writes `copies` to the dead letter; a failing dead letter is retried (the cursor must
    /// not pass a copy that is neither delivered nor dead-lettered). `false` when abandoned.
    fn dead_letter(&mut self, copies: Copies, code: &str, reason: &str, attempts: u32) -> bool {
        let mut retry = 0;
        loop {
            let written = {
                let mut dl = lock(&self.shared.dead_letter);
                copies
                    .envelopes
                    .iter()
                    .try_for_each(|e| dl.write(e, code, reason, attempts))
                    .map_err(|e| format!("cannot write the dead letter {}: {e}", dl.describe()))
            };
            match written {
                Ok(()) => {
                    *lock(&self.state().dead_lettered)
                        .entry(code.to_string())
                        .or_default() += copies.len() as u64;
                    self.settled(&copies);
                    return true;
                }
                Err(e) => {
                    retry += 1;
                    eprintln!("endpoint '{}': {e}; retrying", self.state().name);
                    if !self.shared.sleep(self.shared.config.retry.backoff(retry)) {
                        return false;
                    }
                }
            }
        }
    }

    /// At stop: a last flush, and the cursor made durable.
    fn stop(&mut self) {
        if self.dirty && self.poisoned.is_none() {
            if let Some(sink) = self.sink.as_mut() {
                let _ = catch_unwind(AssertUnwindSafe(|| sink.flush()));
            }
        }
        self.advance(true);
    }
}

/// One endpoint's snapshot.
pub(super) fn snapshot(shared: &Shared, e: &EndpointState, now: SystemTime) -> EndpointSnapshot {
    let h = lock(&e.health);
    let oldest = e.oldest.load(Ordering::Acquire);
    let oldest_age = if oldest == 0 {
        Duration::ZERO
    } else {
        now.duration_since(UNIX_EPOCH + Duration::from_nanos(oldest))
            .unwrap_or_default()
    };
    let (health, reason) = match h.failing_since {
        Some(since) if since.elapsed() >= shared.config.retention.time => {
            (Health::Dead, h.last_error.clone())
        }
        Some(_) => (Health::Unhealthy, h.last_error.clone()),
        None if !h.attempted => (Health::Unknown, None),
        None if oldest_age > shared.config.degraded_after => (
            Health::Degraded,
            Some(format!(
                "the oldest waiting copy is {:.0}s old",
                oldest_age.as_secs_f64()
            )),
        ),
        None => (Health::Healthy, None),
    };
    EndpointSnapshot {
        name: e.name.clone(),
        health,
        reason,
        last_error: h.last_error.clone(),
        last_error_time: h.last_error_time,
        last_success_time: h.last_success_time,
        routed: e.routed.load(Ordering::Relaxed),
        delivered: e.delivered.load(Ordering::Relaxed),
        dead_lettered: lock(&e.dead_lettered).clone(),
        retries: e.retries.load(Ordering::Relaxed),
        backlog: e.backlog.load(Ordering::Relaxed),
        backlog_bytes: e.backlog_bytes.load(Ordering::Relaxed),
        oldest_age,
        latency_p50: e.latency.quantile(0.5),
        latency_p99: e.latency.quantile(0.99),
        latency_buckets: e.latency.counts(),
    }
}
