//! A JetStream pull consumer that never stops pulling while its owner wants messages.
//!
//! async-nats ends or fails a pull stream when the server goes away long enough for idle
//! heartbeats to be missed, or restarts; a worker that then waited on the dead stream stopped
//! routing for good (2 of 11 runs with a SIGKILLed nats-server). [`ResumingPull::next`] replaces
//! a failed stream with a new one, with backoff (100 ms doubling to 5 s), forever, binding the
//! consumer afresh every fifth attempt in case the server lost it, and says so on standard
//! error. Messages the old stream delivered and nobody acknowledged are redelivered by the
//! server after the consumer's `ack_wait`.
//!
//! [`run`] is a router process's input on that consumer: messages the bridge appended, each
//! acknowledged once durably accepted into the pipeline's store (see [`super::live`]).

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::Message;
use futures_util::StreamExt;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::live::{idle_timer, settle_all, AckCounts, LiveInput, LiveReport};
use crate::broker::nats::{decode_record, ConsumerSettings, JetStreamInput};
use crate::broker::BrokerUrl;
use crate::ingest::codes::MALFORMED_RECORD;

/// The stream message id (`Nats-Msg-Id`) under which a bridge appends a device message that
/// names itself: device (and module) id, the device's `messageId`, and a hash of exactly what
/// the device sent (MQTT topic and payload). A resend of the same publish — by the broker
/// after a bridge restart, or by the bridge itself — gets the same id, so JetStream's duplicate
/// window drops it; a device that reuses a `messageId` for a different message still gets both
/// through. `None` without a `messageId`: nothing then tells a resend from a new message with
/// the same content, and the caller names its own run in the id (a restart can duplicate).
pub fn stream_message_id(
    topic: &str,
    payload: &[u8],
    message: &crate::message::Message,
) -> Option<String> {
    let sys = &message.system_properties;
    let message_id = sys.get("messageId").flatten().filter(|m| !m.is_empty())?;
    let device = sys.get("connectionDeviceId").flatten().unwrap_or_default();
    let module = sys.get("connectionModuleId").flatten().unwrap_or_default();
    // XXH3, a specified function: the same on every run and build, unlike std's hasher. The
    // topic's hash seeds the payload's, so both count. (Earlier builds hashed with FNV-1a, a
    // byte at a time: a bridge upgraded from one while a device's messages are redelivered may
    // append those once more, never fewer.)
    let hash =
        xxhash_rust::xxh3::xxh3_64_with_seed(payload, xxhash_rust::xxh3::xxh3_64(topic.as_bytes()));
    // Sized once: `format!` grew its string three or four times per message.
    let mut id = String::with_capacity(device.len() + module.len() + message_id.len() + 19);
    let _ = write!(id, "{device}/{module}/{message_id}/{hash:016x}");
    Some(id)
}

/// A durable pull consumer's messages, resumed after failures; see the module docs.
pub struct ResumingPull {
    url: BrokerUrl,
    settings: ConsumerSettings,
    input: JetStreamInput,
    messages: Option<pull::Stream>,
    resumed: u64,
}

impl std::fmt::Debug for ResumingPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumingPull")
            .field("url", &self.url.to_string())
            .field("consumer", &self.settings.name)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

impl ResumingPull {
    /// Connects, binds (creating if needed) the durable consumer and starts pulling.
    pub async fn open(url: &BrokerUrl, settings: ConsumerSettings) -> Result<Self, String> {
        let input = JetStreamInput::open(url, &settings).await?;
        let messages = Some(input.messages().await?);
        Ok(ResumingPull {
            url: url.clone(),
            settings,
            input,
            messages,
            resumed: 0,
        })
    }

    /// How often the pull stream was replaced.
    pub fn resumed(&self) -> u64 {
        self.resumed
    }

    /// A delivered message if one is at hand now, without waiting (`None` also when the pull
    /// stream failed: the next [`Self::next`] replaces it).
    pub fn try_next(&mut self) -> Option<Message> {
        let stream = self.messages.as_mut()?;
        let item = futures_util::FutureExt::now_or_never(stream.next())?;
        self.take(item)
    }

    /// What the pull stream gave: its message, or else (an error, or the stream's end, said
    /// on standard error) `None` with the stream dropped, so that it is pulled again.
    fn take(&mut self, item: Option<Result<Message, impl std::fmt::Display>>) -> Option<Message> {
        match item {
            Some(Ok(m)) => return Some(m),
            Some(Err(e)) => tracing::warn!("{}: {e}; pulling again", self.url),
            None => tracing::warn!(
                "{}: the consumer's message stream ended; pulling again",
                self.url
            ),
        }
        self.messages = None;
        self.resumed += 1;
        None
    }

    /// Waits until the acknowledgements sent so far are written to the server.
    pub async fn flush(&self) -> Result<(), String> {
        self.input.flush().await
    }

    /// The next delivered message (acknowledge it with its `acker`). Waits as long as it
    /// takes; cancel it (e.g. in a `select!` with a stop signal) to stop. Cancel-safe: a
    /// message is never taken from the stream and then dropped.
    pub async fn next(&mut self) -> Message {
        let mut attempt = 0u64;
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(stream) = self.messages.as_mut() {
                let item = stream.next().await;
                if let Some(m) = self.take(item) {
                    return m;
                }
            }
            attempt += 1;
            if attempt % 5 == 0 {
                match JetStreamInput::open(&self.url, &self.settings).await {
                    Ok(fresh) => self.input = fresh,
                    Err(e) => tracing::warn!("{}: {e}", self.url),
                }
            }
            match self.input.messages().await {
                Ok(m) => {
                    if attempt > 1 {
                        tracing::info!("{}: pulling again after {attempt} attempts", self.url);
                    }
                    self.messages = Some(m);
                    attempt = 0;
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Err(e) if attempt.is_power_of_two() => {
                    tracing::warn!("{}: {e}; retrying (attempt {attempt})", self.url)
                }
                Err(_) => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Most messages [`run`] takes into one batch: what has arrived when it looks, up to this.
const MAX_BATCH: usize = 1000;

/// Acknowledgements to send once a batch is settled: the messages' ackers, whether the batch
/// was accepted (ack) or not (nak), and the in-flight permits they hold.
type Settlement = (
    Vec<async_nats::jetstream::message::Acker>,
    bool,
    tokio::sync::OwnedSemaphorePermit,
);

/// Runs a router process on the durable consumer `url` names (shared with every process
/// naming the same consumer) until `stop` resolves or `input.idle_timeout` passes without a
/// message: pull → decode → prepare → accept, then ack once durably accepted (or
/// dead-lettered as malformed/invalid), nak when not accepted. Then waits (up to 60 s) for
/// the acknowledgements in flight. Needs a tokio runtime; leaves the pipeline running (shut it
/// down afterwards to drain the endpoints). `Err` only when it cannot start.
///
/// Messages are taken in batches of what has arrived (up to 1000, and the in-flight
/// window): a batch is accepted into the store as one submission, and its acknowledgements are
/// plain `+ACK` publishes that the client writes out together, except the batch's last, which
/// is a double ack: the server answers it after taking the ones before it (a connection's
/// messages are handled in order), and the batch's in-flight permits are held until then.
/// One round trip per batch instead of one (and a subscription) per message; a worker does not
/// run ahead of the server's acknowledgement state, which keeps redeliveries after a server
/// crash as few as with a double ack per message (with plain acks only, a SIGKILLed
/// nats-server redelivered most of the stream). An acknowledgement lost with the connection
/// makes the server deliver that message again (a duplicate in the endpoints, never a loss).
/// The connection is flushed before returning, so a clean stop leaves nothing to redeliver.
pub async fn run(
    input: &LiveInput<'_>,
    url: &BrokerUrl,
    stop: impl std::future::Future<Output = ()>,
) -> Result<LiveReport, String> {
    use async_nats::jetstream::AckKind;
    let settings = ConsumerSettings::from_url(url)?;
    let mut messages = ResumingPull::open(url, settings).await?;
    input.hooks.connected(true);
    let capacity = input.capacity();
    let permits = Arc::new(tokio::sync::Semaphore::new(capacity));
    let acks = Arc::new(AckCounts::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Settlement>();
    let ack_task = {
        let acks = Arc::clone(&acks);
        tokio::spawn(async move {
            while let Some((mut ackers, settlement, permits)) = rx.recv().await {
                let acks = Arc::clone(&acks);
                // Concurrently: a batch waits for one round trip. The permits are held until
                // the server confirmed the batch's last acknowledgement.
                tokio::spawn(async move {
                    let last = if settlement { ackers.pop() } else { None };
                    for acker in ackers {
                        let result = if settlement {
                            acker.ack().await
                        } else {
                            acker.ack_with(AckKind::Nak(None)).await
                        };
                        let counter = match (result.is_ok(), settlement) {
                            (true, true) => &acks.acked,
                            (true, false) => &acks.redeliver,
                            (false, _) => &acks.failed,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    // The server handles a connection's messages in order: once it answers
                    // the last one, it has taken the plain acks before it too.
                    if let Some(last) = last {
                        let counter = match last.double_ack().await {
                            Ok(()) => &acks.acked,
                            Err(_) => &acks.failed,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permits);
                });
            }
        })
    };
    let mut report = LiveReport::default();
    let mut router = input.pipeline.router();
    tokio::pin!(stop);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Every record is read into this one message (its strings and body keep their memory).
    let mut decoded = crate::message::Message::default();
    loop {
        let first_permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.map_err(|e| e.to_string())?,
            _ = &mut stop => break,
        };
        let first = tokio::select! {
            m = messages.next() => m,
            _ = &mut stop => break,
            _ = idle_timer(input.idle_timeout) => break,
        };
        // What else has arrived, as far as the window allows.
        let mut delivered = vec![(first, first_permit)];
        while delivered.len() < MAX_BATCH {
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                break;
            };
            match messages.try_next() {
                Some(m) => delivered.push((m, permit)),
                None => break,
            }
        }
        let mut ackers = Vec::with_capacity(delivered.len());
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        for (message, permit) in delivered {
            report.read += 1;
            let (sequence, deliveries) = message
                .info()
                .map(|i| (i.stream_sequence, i.delivered))
                .unwrap_or((0, 1));
            if deliveries > 1 {
                report.redelivered += 1;
            }
            let (record, acker) = message.split();
            let routed = match decode_record(&record.payload, &mut decoded) {
                Ok(()) => input.route(&mut router, &decoded),
                Err(e) => Err((MALFORMED_RECORD, e)),
            };
            let describe = || {
                (
                    serde_json::json!({"subject": record.subject.as_str(), "streamSequence": sequence}),
                    serde_json::Value::String(
                        String::from_utf8_lossy(&record.payload).into_owned(),
                    ),
                )
            };
            match input.sort(routed, &mut report, describe, &mut batch) {
                None => {
                    ackers.push(acker);
                    match held.as_mut() {
                        Some(h) => h.merge(permit),
                        None => held = Some(permit),
                    }
                }
                Some(recorded) => {
                    let _ = tx.send((vec![acker], recorded, permit));
                }
            }
        }
        if let Some(permits) = held {
            let tx = tx.clone();
            input.accept_batch(std::mem::take(&mut batch), move |accepted| {
                let _ = tx.send((ackers, accepted, permits));
            });
        }
    }
    drop(tx);
    report.resumed = messages.resumed();
    if !settle_all(&permits, capacity, Duration::from_secs(60)).await {
        report.gave_up_waiting = true;
        tracing::warn!("gave up waiting for in-flight messages; they stay unacknowledged and will be redelivered");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), ack_task).await;
    if let Err(e) = messages.flush().await {
        tracing::warn!("{url}: acknowledgements may not have reached the server ({e}); it delivers those messages again");
    }
    acks.fill_report(&mut report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn message_ids_are_stable_and_tell_content_apart() {
        let mut m = Message::default();
        m.system_properties
            .insert("connectionDeviceId", Some("dev-1".into()));
        assert_eq!(stream_message_id("t", b"x", &m), None, "no messageId");
        m.system_properties.insert("messageId", Some("m-1".into()));
        let a = stream_message_id("t", b"x", &m).unwrap();
        assert!(a.starts_with("dev-1//m-1/"), "{a}");
        assert_eq!(stream_message_id("t", b"x", &m).unwrap(), a, "a resend");
        assert_ne!(
            stream_message_id("t", b"y", &m).unwrap(),
            a,
            "another payload"
        );
        assert_ne!(
            stream_message_id("t2", b"x", &m).unwrap(),
            a,
            "another topic"
        );
    }
}
