//! The bridge: devices' MQTT publishes, stamped and validated as IoT Hub does ([`d2c_into`]),
//! appended to a JetStream stream that router processes share
//! ([`input::jetstream::run`](super::input::jetstream::run)). A publish is acknowledged to the
//! device's broker only once the stream confirmed it; while the stream is away, the bridge
//! keeps it unacknowledged and resends (the stream drops a resend it already has: same
//! message id, [`stream_message_id`]). Invalid publishes are dead-lettered, then acknowledged.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::input::invalid::base64_body;
use super::input::jetstream::stream_message_id;
use super::input::live::settle_all;
use super::input::mqtt::{d2c_into, next_publish, MqttSettings};
use super::input::{InputHooks, InvalidLog};
use crate::broker::mqtt::{D2cSubscriber, MqttAcker};
use crate::broker::nats::{Appended, JetStreamWriter, Record};
use crate::broker::{BrokerUrl, Scheme};
use crate::message::Message;

/// How the bridge runs.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// The MQTT side: client id (its session holds messages while the bridge is away) and
    /// device registry.
    pub mqtt: MqttSettings,
    /// Messages received and not yet confirmed by the stream, at most.
    pub max_in_flight: usize,
    /// Stop after this long without a message (`None`: until the stop future resolves).
    pub idle_timeout: Option<Duration>,
}

/// What the bridge did, for the summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BridgeReport {
    /// Publishes received from the MQTT broker.
    pub received: u64,
    /// Valid ones (sent to the stream).
    pub valid: u64,
    /// Confirmed by the stream (and then acknowledged to the broker).
    pub appended: u64,
    /// Appends tried again after a failure.
    pub retried: u64,
    /// Invalid ones by code (dead-lettered).
    pub invalid: BTreeMap<&'static str, u64>,
}

impl BridgeReport {
    /// Valid messages the stream had not confirmed when the bridge stopped: left
    /// unacknowledged, so the broker redelivers them to the next session.
    pub fn unconfirmed(&self) -> u64 {
        self.valid.saturating_sub(self.appended)
    }

    /// All invalid messages.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }
}

/// Runs the bridge from `from` (mqtt://) to `to` (jetstream://HOST:PORT/STREAM, created if
/// missing) until `stop` resolves or it is idle, then waits (up to 30 s) for confirmations in
/// flight. Needs a tokio runtime. `Err` only when it cannot start.
pub async fn run(
    from: &BrokerUrl,
    to: &BrokerUrl,
    settings: &BridgeSettings,
    invalid_log: &Mutex<InvalidLog>,
    hooks: Arc<dyn InputHooks>,
    stop: impl Future<Output = ()>,
) -> Result<BridgeReport, String> {
    if from.scheme != Scheme::Mqtt || to.scheme != Scheme::JetStream {
        return Err(
            "bridge: expected --from mqtt://HOST:PORT --to jetstream://HOST:PORT/STREAM".into(),
        );
    }
    let registry = settings.mqtt.registry.as_ref();
    let writer = JetStreamWriter::open(to).await?;
    let mut records = writer.records();
    let mut subscriber = D2cSubscriber::start(from, &settings.mqtt.client_id);
    let acker = subscriber.acker();
    let capacity = settings.max_in_flight.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(capacity));
    let mut report = BridgeReport::default();
    // Names this bridge run in message ids, so ids never repeat across runs.
    let instance = format!(
        "{}-{}",
        settings.mqtt.client_id,
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let confirmer = Arc::new(Confirmer {
        writer: writer.clone(),
        acker: acker.clone(),
        appended: AtomicU64::new(0),
        retried: AtomicU64::new(0),
        hooks: Arc::clone(&hooks),
    });
    let (to_confirm, sent) = tokio::sync::mpsc::unbounded_channel();
    let confirming = tokio::spawn(Arc::clone(&confirmer).confirm_all(sent));
    tokio::pin!(stop);
    let mut warned = false;
    // Every publish is read into this one message (its memory reused); what is kept until the
    // stream confirms it is its record.
    let mut message = Message::default();
    while let Some((publish, permit)) = next_publish(
        &mut subscriber,
        &permits,
        capacity,
        &mut stop,
        settings.idle_timeout,
        from,
        &mut warned,
        hooks.as_ref(),
    )
    .await
    {
        report.received += 1;
        match d2c_into(
            &publish,
            registry.map(|r| r as &dyn crate::pipeline::input::mqtt::Senders),
            &mut message,
        ) {
            Ok(()) => {
                hooks.read(None);
                report.valid += 1;
                let device = message
                    .system_properties
                    .get("connectionDeviceId")
                    .flatten()
                    .unwrap_or_default();
                let id = stream_message_id(&publish.topic, &publish.payload, &message)
                    .unwrap_or_else(|| format!("{instance}-{}", report.valid));
                let record = records.record(device, &message, id);
                // Sent here, in arrival order, so each device's messages keep their order in
                // the stream; confirmations (and resends after an outage) are awaited by the
                // confirmer.
                let attempt = writer.send(&record).await;
                let pending = Pending {
                    record,
                    publish,
                    permit,
                };
                // The confirmer ends only after this sender is dropped, below.
                let _ = to_confirm.send((attempt, pending));
            }
            Err(e) => {
                hooks.read(Some(e.code()));
                *report.invalid.entry(e.code()).or_default() += 1;
                tracing::warn!("invalid message on '{}': {e}", publish.topic);
                let origin = serde_json::json!({"topic": publish.topic});
                let body = serde_json::json!({"bodyBase64": base64_body(&publish.payload)});
                let written = invalid_log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .write_input(origin, e.code(), &e.to_string(), body);
                match written {
                    Ok(()) => {
                        let _ = acker.ack(&publish).await;
                    }
                    Err(err) => tracing::error!("cannot write the dead letter: {err}"),
                }
            }
        }
    }
    let _ = settle_all(&permits, capacity, Duration::from_secs(30)).await;
    drop(to_confirm);
    // Every PUBACK handed to the client before it disconnects (the permits came back only
    // after theirs were; this ends once every confirmation sent to it was awaited).
    let _ = tokio::time::timeout(Duration::from_secs(5), confirming).await;
    subscriber.disconnect().await;
    // One reading for both, so that they add up while resends may still complete.
    report.appended = confirmer.appended.load(Ordering::Relaxed);
    report.retried = confirmer.retried.load(Ordering::Relaxed);
    Ok(report)
}

/// A record sent to the stream, with the publish it came from: its PUBACK (and its place in
/// the in-flight window) waits for the stream's confirmation.
struct Pending {
    record: Record,
    publish: rumqttc::Publish,
    permit: tokio::sync::OwnedSemaphorePermit,
}

/// Awaits the stream's confirmations, acknowledges each confirmed publish to the broker, and
/// resends what the stream did not confirm.
struct Confirmer {
    writer: JetStreamWriter,
    acker: MqttAcker,
    appended: AtomicU64,
    retried: AtomicU64,
    hooks: Arc<dyn InputHooks>,
}

impl Confirmer {
    /// Awaits every confirmation sent to it, in one task: a task per message cost a task's
    /// allocation (its future, about 2 KiB, moved in) and a wake-up through the scheduler.
    /// Ends once `sent` is closed and every confirmation it sent was awaited (resends go on in
    /// tasks of their own).
    async fn confirm_all(
        self: Arc<Self>,
        mut sent: tokio::sync::mpsc::UnboundedReceiver<(Result<Appended, String>, Pending)>,
    ) {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let mut waiting = FuturesUnordered::new();
        let mut open = true;
        while open || !waiting.is_empty() {
            tokio::select! {
                next = sent.recv(), if open => match next {
                    Some((attempt, pending)) => waiting.push(async move {
                        (confirmed(attempt).await, pending)
                    }),
                    None => open = false,
                },
                Some((result, pending)) = waiting.next(), if !waiting.is_empty() => match result {
                    Ok(()) => self.done(pending).await,
                    Err(e) => {
                        tokio::spawn(Arc::clone(&self).resend(pending, e));
                    }
                },
            }
        }
    }

    /// Sends `pending` again until the stream confirms it (the stream drops a resend it
    /// already has: same id), backing off to one try every 5 s; the device's publish stays
    /// unacknowledged meanwhile.
    async fn resend(self: Arc<Self>, pending: Pending, mut error: String) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let n = self.retried.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!("{error}; retrying ({n} retries so far)");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            match confirmed(self.writer.send(&pending.record).await).await {
                Ok(()) => return self.done(pending).await,
                Err(e) => error = e,
            }
        }
    }

    /// The stream has `pending`: acknowledge its publish, then free its place in the window.
    async fn done(&self, pending: Pending) {
        self.appended.fetch_add(1, Ordering::Relaxed);
        self.hooks.appended();
        let _ = self.acker.ack(&pending.publish).await;
        drop(pending.permit);
    }
}

/// Whether a send was confirmed by the stream.
async fn confirmed(attempt: Result<Appended, String>) -> Result<(), String> {
    attempt?.confirmed().await.map(|_| ())
}
