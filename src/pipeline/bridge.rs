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
use super::input::mqtt::{d2c, next_publish, try_next_publish, MqttSettings, MAX_BATCH};
use super::input::{InputHooks, InvalidLog};
use crate::broker::mqtt::{D2cSubscriber, MqttAcker};
use crate::broker::nats::{Appended, JetStreamWriter};
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
    tokio::pin!(stop);
    let mut warned = false;
    let counters = Counters {
        appended: Arc::clone(&appended),
        retried: Arc::clone(&retried),
        hooks: Arc::clone(&hooks),
    };
    while let Some(first) = next_publish(
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
        // What else has arrived, as far as the window allows: sent to the stream one after
        // the other, then confirmed and acknowledged together by one task.
        let mut arrived = vec![first];
        while arrived.len() < MAX_BATCH {
            match try_next_publish(&mut subscriber, &permits, from, hooks.as_ref()) {
                Some(p) => arrived.push(p),
                None => break,
            }
        }
        let mut sent = Vec::with_capacity(arrived.len());
        for (publish, permit) in arrived {
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
                    // The first send is made here, in arrival order, so each device's messages
                    // keep their order in the stream; resends after an outage happen in the
                    // background.
                    let first = writer.send(&device, &message, &id).await;
                    sent.push(Sent {
                        publish,
                        permit,
                        device,
                        message,
                        id,
                        first,
                    });
                }
                Err(e) => {
                    hooks.read(Some(e.code()));
                    *report.invalid.entry(e.code()).or_default() += 1;
                    eprintln!("invalid message on '{}': {e}", publish.topic);
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
                        Err(err) => eprintln!("cannot write the dead letter: {err}"),
                    }
                }
            }
        }
        if !sent.is_empty() {
            tokio::spawn(confirm(
                sent,
                writer.clone(),
                acker.clone(),
                counters.clone(),
            ));
        }
    }
    let _ = settle_all(&permits, capacity, Duration::from_secs(30)).await;
    subscriber.disconnect().await;
    // One reading for both, so that they add up while resends may still complete.
    report.appended = appended.load(Ordering::Relaxed);
    report.retried = retried.load(Ordering::Relaxed);
    Ok(report)
}

/// A publish sent to the stream, not yet confirmed.
struct Sent {
    publish: rumqttc::Publish,
    permit: tokio::sync::OwnedSemaphorePermit,
    device: String,
    message: Message,
    id: String,
    first: Result<Appended, String>,
}

/// What the confirming tasks count.
#[derive(Clone)]
struct Counters {
    appended: Arc<AtomicU64>,
    retried: Arc<AtomicU64>,
    hooks: Arc<dyn InputHooks>,
}

/// Waits for the stream to confirm a batch of sends (in order: they are all in flight at
/// once), then acknowledges the confirmed publishes to the MQTT broker. A send that failed is
/// retried on its own ([`append_until_confirmed`]) and acknowledged when the stream has it.
async fn confirm(sent: Vec<Sent>, writer: JetStreamWriter, acker: MqttAcker, counters: Counters) {
    let mut confirmed = Vec::with_capacity(sent.len());
    for s in sent {
        let outcome = match s.first {
            Ok(pending) => pending.confirmed().await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => {
                counters.appended.fetch_add(1, Ordering::Relaxed);
                counters.hooks.appended();
                confirmed.push((s.publish, s.permit));
            }
            Err(e) => {
                tokio::spawn(append_until_confirmed(
                    Sent { first: Err(e), ..s },
                    writer.clone(),
                    acker.clone(),
                    counters.clone(),
                ));
            }
        }
    }
    for (publish, _permit) in &confirmed {
        let _ = acker.ack(publish).await;
    }
}

/// Sends a message again until the stream confirms it, then acknowledges it to the MQTT
/// broker (keeping the device's message unacknowledged until then); the stream drops a resend
/// it already has (same id).
async fn append_until_confirmed(
    sent: Sent,
    writer: JetStreamWriter,
    acker: MqttAcker,
    counters: Counters,
) {
    let mut attempt = sent.first;
    let mut backoff = Duration::from_millis(100);
    loop {
        let confirmed = match attempt {
            Ok(pending) => pending.confirmed().await,
            Err(e) => Err(e),
        };
        match confirmed {
            Ok(_) => {
                counters.appended.fetch_add(1, Ordering::Relaxed);
                counters.hooks.appended();
                let _ = acker.ack(&sent.publish).await;
                break;
            }
            Err(e) => {
                let n = counters.retried.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    eprintln!("{e}; retrying ({n} retries so far)");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                attempt = writer.send(&sent.device, &sent.message, &sent.id).await;
            }
        }
    }
    drop(sent.permit);
}
