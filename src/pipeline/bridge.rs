//! The bridge: devices' MQTT publishes, stamped and validated as IoT Hub does ([`d2c`]),
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
use super::input::mqtt::{d2c, next_publish, MqttSettings};
use super::input::{InputHooks, InvalidLog};
use crate::broker::mqtt::D2cSubscriber;
use crate::broker::nats::JetStreamWriter;
use crate::broker::{BrokerUrl, Scheme};

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
    let mut subscriber = D2cSubscriber::start(from, &settings.mqtt.client_id);
    let acker = subscriber.acker();
    let capacity = settings.max_in_flight.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(capacity));
    let appended = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let mut report = BridgeReport::default();
    // Names this bridge run in message ids, so ids never repeat across runs.
    let instance = format!(
        "{}-{}",
        settings.mqtt.client_id,
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    // PUBACKs go out through one task, with the permit each holds: the MQTT client's request
    // queue then has one waiting sender at a time. With a task per message awaiting it, every
    // send and wake-up walked the queue of waiting senders (flume's `retain`, about a tenth of
    // the bridge's CPU at 100k messages).
    let (to_ack, mut acks) = tokio::sync::mpsc::unbounded_channel::<(
        rumqttc::Publish,
        tokio::sync::OwnedSemaphorePermit,
    )>();
    let ack_task = {
        let acker = acker.clone();
        tokio::spawn(async move {
            while let Some((publish, permit)) = acks.recv().await {
                let _ = acker.ack(&publish).await;
                drop(permit);
            }
        })
    };
    tokio::pin!(stop);
    let mut warned = false;
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
        match d2c(
            &publish,
            registry.map(|r| r as &dyn crate::pipeline::input::mqtt::Senders),
        ) {
            Ok(message) => {
                hooks.read(None);
                let device = message
                    .system_properties
                    .get("connectionDeviceId")
                    .flatten()
                    .unwrap_or_default()
                    .to_string();
                report.valid += 1;
                let id = stream_message_id(&publish.topic, &publish.payload, &message)
                    .unwrap_or_else(|| format!("{instance}-{}", report.valid));
                // The first send is made here, in arrival order, so each device's messages keep
                // their order in the stream; resends after an outage happen in the background.
                let first = writer.send(&device, &message, &id).await;
                let writer = writer.clone();
                let to_ack = to_ack.clone();
                let (appended, retried) = (Arc::clone(&appended), Arc::clone(&retried));
                let hooks = Arc::clone(&hooks);
                tokio::spawn(async move {
                    let mut attempt = first;
                    let mut backoff = Duration::from_millis(100);
                    loop {
                        let confirmed = match attempt {
                            Ok(pending) => pending.confirmed().await,
                            Err(e) => Err(e),
                        };
                        match confirmed {
                            Ok(_) => {
                                appended.fetch_add(1, Ordering::Relaxed);
                                hooks.appended();
                                // The ack task outlives every sender (it ends after them).
                                let _ = to_ack.send((publish, permit));
                                return;
                            }
                            Err(e) => {
                                // Keep the device's message (unacknowledged) and try again;
                                // the stream drops a resend it already has (same id).
                                let n = retried.fetch_add(1, Ordering::Relaxed) + 1;
                                if n.is_power_of_two() {
                                    tracing::warn!("{e}; retrying ({n} retries so far)");
                                }
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                                attempt = writer.send(&device, &message, &id).await;
                            }
                        }
                    }
                });
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
    drop(to_ack);
    // Every PUBACK handed to the client before it disconnects (the permits came back only
    // after theirs were; this ends once no task can send another).
    let _ = tokio::time::timeout(Duration::from_secs(5), ack_task).await;
    subscriber.disconnect().await;
    // One reading for both, so that they add up while resends may still complete.
    report.appended = appended.load(Ordering::Relaxed);
    report.retried = retried.load(Ordering::Relaxed);
    Ok(report)
}
