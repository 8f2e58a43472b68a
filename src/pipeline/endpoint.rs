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
use crate::sink::{codes, CopyView, Envelope, Sink, SinkError};

/// Records looked at per read from the store (most of them may be for other endpoints; the
/// tail, which most reads use, gives each endpoint only its own).
pub(super) const SCAN: usize = 4096;

/// One copy on its way: the stored record it is read from (shared with the tail and the
/// other endpoints; rendered in place, see [`crate::sink::CopyView`]) and where the copy's
/// parts lie in it, found once when the record was read (every attempt renders from them).
struct Copy {
    sequence: u64,
    enqueued_time: SystemTime,
    parts: codec::CopyParts,
    record: Arc<codec::StoredRecord>,
    /// Whether the record is the tail's, shared with the other endpoints that take it.
    shared: bool,
}

/// Copies on their way, in sequence order.
#[derive(Default)]
struct Copies {
    items: Vec<Copy>,
}

impl Copies {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn total_bytes(&self) -> u64 {
        self.items.iter().map(|c| c.record.len() as u64).sum()
    }

    /// Splits off the copies `pick` selects.
    fn split_off_where(&mut self, pick: impl Fn(&Copy) -> bool) -> Copies {
        let (picked, kept) = self.items.drain(..).partition(|c| pick(c));
        self.items = kept;
        Copies { items: picked }
    }

    fn into_singles(self) -> impl Iterator<Item = Copies> {
        self.items.into_iter().map(|c| Copies { items: vec![c] })
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

    /// Waits until records with copies for this endpoint are committed after `self.scanned`;
    /// the last committed sequence, or `None` when it is time to stop. Records committed
    /// without a copy for it are passed over unread (and settled, so the store can delete
    /// them) when the worker wakes: for a commit with copies, at the latest every 200 ms,
    /// and when the pipeline closes.
    fn wait(&mut self) -> Option<u64> {
        let shared = &self.shared;
        let state = &shared.endpoints[self.index];
        let mut committed = lock(&shared.committed);
        loop {
            if shared.abandon.load(Ordering::Acquire) {
                return None;
            }
            if *committed > self.scanned {
                if state.wanted.load(Ordering::Acquire) > self.scanned {
                    return Some(*committed);
                }
                self.scanned = *committed;
                state.settled.fetch_max(self.scanned, Ordering::AcqRel);
            }
            if shared.closing.load(Ordering::Acquire) {
                return None;
            }
            committed = state
                .wake
                .wait_timeout(committed, Duration::from_millis(200))
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }

    pub(super) fn run(mut self) {
        let id = self.state().id;
        let max_batch = self.shared.config.max_batch.max(1);
        let mut found: Vec<(u64, Arc<codec::StoredRecord>)> = Vec::new();
        let mut views = Vec::new();
        while let Some(committed) = self.wait() {
            found.clear();
            // The tail holds each record's destinations: only ours are taken (and counted
            // in `found`); the others are passed without being read.
            let cached = lock(&self.shared.tail).read_for(
                self.scanned,
                committed,
                id,
                max_batch,
                &mut found,
            );
            // The tail's records are the bytes this process encoded from `&str`s: their
            // structure is followed, their strings are not checked for UTF-8 again. What is
            // read back from the store's files is checked whole.
            let check = match cached {
                Some(_) => codec::Check::Lengths,
                None => codec::Check::Utf8,
            };
            let last = match cached {
                Some(last) => last,
                None => match self.read_store(committed, id, max_batch, &mut found) {
                    Ok(last) => last,
                    Err(e) => {
                        self.failed(&e.to_string());
                        if !self.shared.sleep(Duration::from_secs(1)) {
                            break;
                        }
                        continue;
                    }
                },
            };
            let mut batch = Copies {
                items: Vec::with_capacity(found.len()),
            };
            for (seq, record) in found.drain(..) {
                match codec::locate(&record, id, check) {
                    Ok(Some(parts)) => batch.items.push(Copy {
                        sequence: seq,
                        enqueued_time: parts.enqueued_time,
                        parts,
                        record,
                        shared: check == codec::Check::Lengths,
                    }),
                    Ok(None) => {}
                    Err(e) => self.corrupt(seq, &e.to_string()),
                }
            }
            if let Some(first) = batch.items.first() {
                self.state()
                    .oldest
                    .store(nanos(first.enqueued_time), Ordering::Release);
                if !self.deliver(batch, &mut views) {
                    break; // abandoned: the cursor stays, the copies stay in the store
                }
            }
            self.scanned = last;
            let caught_up = last >= committed;
            if caught_up {
                self.state().oldest.store(0, Ordering::Release);
            }
            self.advance();
        }
        self.stop();
    }

    /// Reads what the tail no longer holds from the store: up to `SCAN` records after
    /// `self.scanned` (and at most `committed`), ours into `found` (at most `max`); the last
    /// sequence looked at.
    fn read_store(
        &self,
        committed: u64,
        id: u16,
        max: usize,
        found: &mut Vec<(u64, Arc<codec::StoredRecord>)>,
    ) -> Result<u64, super::StoreError> {
        let read = self.shared.store.read_after(self.scanned, SCAN)?;
        if read.is_empty() {
            // Nothing stored after our position: what was committed up to `committed` is
            // deleted (every endpoint passed it; our cursor was set back by a crash).
            return Ok(committed);
        }
        let mut last = self.scanned;
        for (seq, bytes) in read {
            if seq > committed {
                // Everything up to `committed` is looked at (or deleted).
                last = committed;
                break;
            }
            last = seq;
            match codec::peek(&bytes, id) {
                Ok((false, _)) => {}
                Ok((true, _)) => found.push((seq, Arc::new(codec::StoredRecord::new(bytes)))),
                Err(e) => self.corrupt(seq, &e.to_string()),
            }
            if found.len() >= max {
                break;
            }
        }
        Ok(last)
    }

    /// A record that does not decode cannot become a copy: say so loudly (it cannot be
    /// dead-lettered as a message), count it, and go on.
    fn corrupt(&self, seq: u64, why: &str) {
        tracing::error!(
            "store {}: record {seq} for endpoint '{}' is damaged and cannot be delivered: {why}",
            self.shared.store.path().display(),
            self.state().name
        );
        *lock(&self.state().dead_lettered)
            .entry(codes::STORE_RECORD_DAMAGED.to_string())
            .or_default() += 1;
    }

    /// Publishes the settled position (and trims the tail, if this endpoint was the last to
    /// settle the oldest records in it); the committer writes it to the store with its next
    /// commit (a cursor frame in the records' own write and sync), or within
    /// [`super::IDLE_FLUSH`] when no input comes, in one frame for every endpoint that moved
    /// (a synced write per endpoint per batch would cost more than the deliveries). A crash
    /// before the write only repeats deliveries (at least once).
    fn advance(&mut self) {
        self.state()
            .settled
            .fetch_max(self.scanned, Ordering::AcqRel);
        self.shared.trim_tail();
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
    /// must not sit in a buffer). `views` is an empty vector whose allocation is reused.
    fn attempt(
        &mut self,
        copies: &Copies,
        views: &mut Vec<CopyView<'static>>,
    ) -> Result<(), SinkError> {
        let Some(sink) = self.sink.as_mut() else {
            return Err(SinkError::Fatal("no sink is bound to this endpoint".into()));
        };
        let state = &self.shared.endpoints[self.index];
        let hub = self.shared.config.hub_name.as_str();
        // The views borrow `copies` for this attempt only; the vector's allocation outlives
        // them (collected in place from an empty vector of the same element type).
        let mut batch: Vec<CopyView<'_>> = reuse(std::mem::take(views));
        batch.extend(copies.items.iter().map(|c| {
            // What other endpoints also render is rendered once for all of them.
            let shared = (c.shared && c.parts.fanout).then_some(&c.record.json);
            c.parts
                .view(&c.record, &state.name, hub, c.sequence, shared)
        }));
        let result = sink.write_views(&batch);
        *views = reuse(batch);
        result?;
        self.dirty = true;
        sink.flush()?;
        self.dirty = false;
        Ok(())
    }

    /// Delivers `copies` or dead-letters them; `false` only when abandoned before either.
    fn deliver(&mut self, mut copies: Copies, views: &mut Vec<CopyView<'static>>) -> bool {
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
            match catch_unwind(AssertUnwindSafe(|| self.attempt(&copies, views))) {
                Ok(Ok(())) => {
                    self.succeeded();
                    let state = self.state();
                    state
                        .delivered
                        .fetch_add(copies.len() as u64, Ordering::Relaxed);
                    let now = SystemTime::now();
                    state.latency.record_all(
                        copies
                            .items
                            .iter()
                            .map(|e| now.duration_since(e.enqueued_time).unwrap_or_default()),
                    );
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
                            if !self.deliver(single, views) {
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
                    .items
                    .iter()
                    .filter_map(|c| self.envelope(c))
                    .try_for_each(|e| dl.write(&e, code, reason, attempts))
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
                    tracing::warn!("endpoint '{}': {e}; retrying", self.state().name);
                    if !self.shared.sleep(self.shared.config.retry.backoff(retry)) {
                        return false;
                    }
                }
            }
        }
    }

    /// A copy as an envelope (for the dead letter); `None` if its record does not decode
    /// (it did when it was read, so this does not happen).
    fn envelope(&self, copy: &Copy) -> Option<Envelope> {
        let state = self.state();
        codec::view(
            &copy.record,
            state.id,
            &state.name,
            &self.shared.config.hub_name,
            copy.sequence,
        )
        .ok()
        .flatten()
        .map(|v| v.to_envelope())
    }

    /// At stop: a last flush, and the cursor made durable.
    fn stop(&mut self) {
        if self.dirty && self.poisoned.is_none() {
            if let Some(sink) = self.sink.as_mut() {
                let _ = catch_unwind(AssertUnwindSafe(|| sink.flush()));
            }
        }
        self.advance();
    }
}

/// An empty vector of views with `views`' allocation, for views of another lifetime: the
/// vector of one delivery attempt is the next one's, without an allocation per batch.
fn reuse<'b>(mut views: Vec<CopyView<'_>>) -> Vec<CopyView<'b>> {
    views.clear();
    // Same size and alignment: std collects this in place, keeping the capacity. Not
    // `filter`, which clippy suggests: the `None` is what changes the views' lifetime.
    #[allow(clippy::unnecessary_filter_map)]
    views.into_iter().filter_map(|_| None).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The views of one attempt are collected into the previous attempt's vector: its
    /// allocation is kept, not made again per batch.
    #[test]
    fn the_views_vector_is_reused() {
        let bytes = b"body".to_vec();
        let mut views: Vec<CopyView<'static>> = Vec::with_capacity(32);
        let ptr = views.as_ptr() as usize;
        for _ in 0..3 {
            let mut batch: Vec<CopyView<'_>> = reuse(std::mem::take(&mut views));
            assert!(batch.is_empty());
            assert_eq!(batch.capacity(), 32);
            let mut v = codec_view_of(&bytes);
            v.sequence = 1;
            batch.push(v);
            views = reuse(batch);
            assert_eq!((views.len(), views.as_ptr() as usize), (0, ptr));
        }
    }

    fn codec_view_of(body: &[u8]) -> CopyView<'_> {
        CopyView {
            endpoint: "ep",
            enqueued_time: UNIX_EPOCH,
            hub_name: "hub",
            sequence: 0,
            source: None,
            system_properties: crate::sink::PackedProperties::EMPTY,
            app_properties: crate::sink::PackedProperties::EMPTY,
            enrichments: crate::sink::PackedProperties::EMPTY,
            body,
            body_is_json: None,
            body_json: crate::eval::BodyJson::Unknown,
            shared_json: None,
        }
    }
}
