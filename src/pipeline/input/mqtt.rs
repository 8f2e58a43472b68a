//! Devices publishing over MQTT to IoT Hub's device-to-cloud topics, straight into a
//! [`Pipeline`](crate::pipeline::Pipeline): each publish is stamped as IoT Hub stamps it
//! ([`d2c`]: device id from the topic, generation id from the registry, enqueued time; what a
//! device sets under a stamped name is dropped, W0650), prepared, accepted into the store, and
//! acknowledged (PUBACK) only then; see [`super::live`] for the rule and the window.
//!
//! An embedder runs it in a few lines (on a tokio runtime):
//!
//! ```no_run
//! use std::sync::Mutex;
//! use hubroute::broker::BrokerUrl;
//! use hubroute::pipeline::input::{mqtt, InvalidLog, LiveInput};
//! use hubroute::pipeline::{Pipeline, PipelineConfig};
//! use hubroute::route::RouteTable;
//! use hubroute::sink::{DeadLetter, JsonLinesSink, Sink};
//!
//! # async fn embed() -> Result<(), Box<dyn std::error::Error>> {
//! let table = RouteTable::from_json(
//!     r#"{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true",
//!                     "endpointNames": ["archive"], "isEnabled": true}],
//!         "endpoints": {"serviceBusQueues": [{"name": "archive"}]}}"#,
//!     "myhub",
//! ).table.unwrap();
//! let mut sinks: std::collections::BTreeMap<String, Box<dyn Sink>> = Default::default();
//! sinks.insert("archive".into(), Box::new(JsonLinesSink::to_path("archive.jsonl")?));
//! let dead_letter = DeadLetter::to_path("dead.jsonl")?;
//! let pipeline = Pipeline::open(PipelineConfig::new("store", "myhub"), table, sinks, dead_letter)?;
//!
//! let invalid = Mutex::new(InvalidLog::open("invalid.jsonl".as_ref())?);
//! let input = LiveInput::new(&pipeline, &invalid);
//! let url = BrokerUrl::parse("mqtt://127.0.0.1:1883")?;
//! let settings = mqtt::MqttSettings::new("my-router");
//! // Runs until Ctrl-C; every message acknowledged to a device is in the store by then.
//! let report = mqtt::run(&input, &url, &settings, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! println!("read {}, acknowledged {}", report.read, report.acknowledged);
//! let stats = pipeline.shutdown(std::time::Duration::from_secs(30));
//! println!("delivered {}", stats.endpoints[0].delivered);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::live::{idle_timer, settle_all, AckCounts, LiveInput, LiveReport};
use crate::broker::mqtt::{D2cSubscriber, Incoming};
use crate::broker::BrokerUrl;
use crate::ingest::IngestError;
use crate::message::Message;
use crate::registry::Registry;

/// How the MQTT input connects.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// The client id: its persistent broker session holds unacknowledged messages (QoS 1)
    /// while the input is away, so a restart loses nothing.
    pub client_id: String,
    /// Registered devices, if any: with a registry, unknown senders are rejected (E0605), as
    /// IoT Hub rejects unregistered devices, and so are disabled ones (E0606). The broker
    /// authenticated the device, so its keys are not used here.
    pub registry: Option<Registry>,
}

impl MqttSettings {
    /// Settings with this client id and no registry.
    pub fn new(client_id: impl Into<String>) -> Self {
        MqttSettings {
            client_id: client_id.into(),
            registry: None,
        }
    }
}

/// Who may send, and the generation id stamped for them: the registry read at start
/// ([`Registry`]), or the enabled devices as the router's live twins last synced the registry
/// file (device id → generation id), so that a device disabled or deleted while the router runs
/// is refused from then on.
pub trait Senders {
    /// The generation id of a device (or module) allowed to send, or why it may not.
    fn generation(&self, device: &str, module: Option<&str>) -> Result<&str, IngestError>;
}

impl Senders for Registry {
    fn generation(&self, device: &str, module: Option<&str>) -> Result<&str, IngestError> {
        let identity = self
            .get(device)
            .ok_or_else(|| IngestError::UnknownDevice(device.to_string()))?;
        if !identity.is_enabled() {
            return Err(IngestError::DisabledDevice(device.to_string()));
        }
        Ok(module
            .and_then(|m| identity.modules.get(m))
            .map_or(identity.generation_id.as_str(), |m| {
                m.generation_id.as_str()
            }))
    }
}

impl Senders for std::collections::HashMap<String, String> {
    fn generation(&self, device: &str, _module: Option<&str>) -> Result<&str, IngestError> {
        self.get(device)
            .map(String::as_str)
            .ok_or_else(|| IngestError::UnknownDevice(device.to_string()))
    }
}

/// One device publish as a stamped, validated message.
pub fn d2c(
    publish: &rumqttc::Publish,
    registry: Option<&dyn Senders>,
) -> Result<Message, IngestError> {
    let mut message = Message::default();
    d2c_into(publish, registry, &mut message)?;
    Ok(message)
}

/// [`d2c`] into `message`, reusing its memory (see [`crate::ingest::d2c_into`]).
pub fn d2c_into(
    publish: &rumqttc::Publish,
    registry: Option<&dyn Senders>,
    message: &mut Message,
) -> Result<(), IngestError> {
    use crate::ingest::{ConnectionRef, D2cTopic};
    let topic = D2cTopic::parse(&publish.topic)?;
    let generation = match registry {
        Some(r) => Some(r.generation(topic.device_id, topic.module_id)?),
        None => None,
    };
    crate::ingest::d2c_into(
        message,
        &topic,
        &publish.payload,
        ConnectionRef::from_topic(&topic, generation),
        SystemTime::now(),
        &mut |name| crate::ingest::log_spoofing_property(topic.device_id, name),
    )
}

/// What became of a reported-property patch.
struct PatchOutcome {
    /// The answer's topic and payload.
    answer: Option<(String, Vec<u8>)>,
    /// Whether to acknowledge the publish (not when it could not be taken now: the broker
    /// sends it again).
    acknowledge: bool,
    /// Whether the twin changed.
    accepted: bool,
}

/// Applies a device's reported-property patch to its twin (which routes the TwinChangeEvents
/// notification, durably, before the twin is committed) and says how to answer: 204 with the
/// new `$version`, 400 with the error for a bad patch, 401 for a device not registered or
/// disabled (IoT Hub would not have let it connect), 503 when the pipeline could not take it (not
/// acknowledged: the broker delivers it again). Blocks for the commit, like an accept.
fn reported_patch(
    pipeline: &crate::pipeline::Pipeline,
    twins: &crate::twin::LiveTwins,
    registry: Option<&dyn Senders>,
    topic: &crate::twin::mqtt_topic::ReportedTopic<'_>,
    publish: &rumqttc::Publish,
) -> PatchOutcome {
    let error_body = |code: &str, message: &str| {
        serde_json::json!({"errorCode": code, "message": message})
            .to_string()
            .into_bytes()
    };
    if registry.is_some_and(|r| r.generation(topic.device_id, topic.module_id).is_err()) {
        return PatchOutcome {
            answer: Some((
                topic.response(401, None),
                error_body(
                    crate::ingest::codes::UNKNOWN_DEVICE,
                    "device not registered or disabled",
                ),
            )),
            acknowledge: true,
            accepted: false,
        };
    }
    let text = String::from_utf8_lossy(&publish.payload);
    match twins.apply_reported(
        pipeline,
        topic.device_id,
        topic.module_id,
        &text,
        SystemTime::now(),
    ) {
        Ok(version) => PatchOutcome {
            answer: Some((topic.response(204, Some(version)), Vec::new())),
            acknowledge: true,
            accepted: true,
        },
        Err(e) => {
            let status = e.http_status();
            PatchOutcome {
                answer: Some((topic.response(status, None), error_body(e.code, &e.message))),
                acknowledge: status != 503,
                accepted: false,
            }
        }
    }
}

/// How long a broker input may see no message, while messages it read wait unsettled, before
/// [`next_publish`] suspects that the broker's window is what holds the input up.
const QUIET_WHILE_WAITING: Duration = Duration::from_secs(10);

/// The next device publish with an in-flight permit for it, or `None` when it is time to stop
/// (stopped, idle, or the connection shut down). Reports subscriptions and connection errors
/// on the way, and once, when nothing arrives for [`QUIET_WHILE_WAITING`] while messages wait
/// to be settled, that the broker may be holding the rest back.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn next_publish(
    subscriber: &mut D2cSubscriber,
    permits: &Arc<tokio::sync::Semaphore>,
    capacity: usize,
    stop: &mut Pin<&mut impl Future<Output = ()>>,
    idle: Option<Duration>,
    url: &BrokerUrl,
    warned: &mut bool,
    hooks: &dyn super::InputHooks,
) -> Option<(rumqttc::Publish, tokio::sync::OwnedSemaphorePermit)> {
    // Both run from this call on: neither a subscription nor a reconnection is a message.
    let idle = idle_timer(idle);
    tokio::pin!(idle);
    let quiet = tokio::time::sleep(QUIET_WHILE_WAITING);
    tokio::pin!(quiet);
    let mut paused_said = false;
    loop {
        let permit = tokio::select! {
            p = Arc::clone(permits).acquire_owned() => p.ok()?,
            _ = stop.as_mut() => return None,
            _ = tokio::time::sleep(QUIET_WHILE_WAITING), if !paused_said => {
                paused_said = true;
                tracing::warn!(
                    "{url}: reading paused for {}s: --max-in-flight ({capacity}) messages wait \
                     to be settled (a router: accepted into its store, which is full or failing, \
                     see above; the bridge: confirmed by the stream)",
                    QUIET_WHILE_WAITING.as_secs()
                );
                continue;
            }
        };
        let incoming = tokio::select! {
            r = subscriber.next() => r,
            _ = stop.as_mut() => return None,
            _ = &mut idle => return None,
            _ = &mut quiet, if !*warned => {
                // Counted now, not when the wait began: a message still being delivered
                // then has most likely been settled since. Not counting our own permit.
                let waiting = capacity.saturating_sub(permits.available_permits() + 1);
                drop(permit);
                quiet.as_mut().reset(tokio::time::Instant::now() + QUIET_WHILE_WAITING);
                if waiting > 0 {
                    *warned = true;
                    tracing::warn!(
                        "{url}: no message for {}s while {waiting} received messages wait to \
                         be settled; if {waiting} is the broker's limit of unacknowledged \
                         messages (Mosquitto's max_inflight_messages, 20 by default), it holds \
                         the rest back until they are: raise it to --max-in-flight \
                         ({capacity}), see the README",
                        QUIET_WHILE_WAITING.as_secs()
                    );
                }
                continue;
            }
        };
        match incoming? {
            Incoming::Publish(p) => return Some((p, permit)),
            other => say(other, url, hooks),
        }
    }
}

/// Reports what the connection saw that is not a message.
fn say(incoming: Incoming, url: &BrokerUrl, hooks: &dyn super::InputHooks) {
    match incoming {
        Incoming::Publish(_) => {}
        Incoming::Subscribed => {
            hooks.connected(true);
            tracing::info!("subscribed to device-to-cloud topics on {url}")
        }
        Incoming::Error(e) => {
            hooks.connected(false);
            tracing::warn!("{url}: {e}; reconnecting in 1s")
        }
    }
}

/// [`next_publish`] without waiting: a device publish that has already arrived, with an
/// in-flight permit for it, or `None` (nothing has arrived, or the window is full).
pub(crate) fn try_next_publish(
    subscriber: &mut D2cSubscriber,
    permits: &Arc<tokio::sync::Semaphore>,
    url: &BrokerUrl,
    hooks: &dyn super::InputHooks,
) -> Option<(rumqttc::Publish, tokio::sync::OwnedSemaphorePermit)> {
    let permit = Arc::clone(permits).try_acquire_owned().ok()?;
    loop {
        match subscriber.try_next()? {
            Incoming::Publish(p) => return Some((p, permit)),
            other => say(other, url, hooks),
        }
    }
}

/// Most publishes [`run`] (and the bridge) take into one batch: what has arrived when it
/// looks, up to this.
pub(crate) const MAX_BATCH: usize = 1000;

/// PUBACKs to send once a batch is settled (or, when `false`, publishes left unacknowledged
/// for redelivery), with the in-flight permits they hold.
type Settlement = (
    Vec<rumqttc::Publish>,
    bool,
    tokio::sync::OwnedSemaphorePermit,
);

/// Runs the MQTT input until `stop` resolves (or `input.idle_timeout` passes without a
/// message, or the connection shuts down), then waits (up to 60 s) for the messages in flight
/// to be settled and disconnects. Needs a tokio runtime with time enabled. Leaves the pipeline
/// running: shut it down afterwards to drain the endpoints. `Err` only when it cannot start.
pub async fn run(
    input: &LiveInput<'_>,
    url: &BrokerUrl,
    settings: &MqttSettings,
    stop: impl Future<Output = ()>,
) -> Result<LiveReport, String> {
    let registry = settings.registry.as_ref();
    let mut subscriber = match input.twins {
        Some(_) => D2cSubscriber::start_with(
            url,
            &settings.client_id,
            &crate::twin::mqtt_topic::REPORTED_FILTERS,
        ),
        None => D2cSubscriber::start(url, &settings.client_id),
    };
    let acker = subscriber.acker();
    let answerer = subscriber.acker();
    let capacity = input.capacity();
    let permits = Arc::new(tokio::sync::Semaphore::new(capacity));
    let acks = Arc::new(AckCounts::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Settlement>();
    let ack_task = {
        let acks = Arc::clone(&acks);
        tokio::spawn(async move {
            // The permits are held until the acknowledgements are queued.
            while let Some((publishes, settlement, _permits)) = rx.recv().await {
                for publish in &publishes {
                    if settlement {
                        match acker.ack(publish).await {
                            Ok(()) => acks.acked.fetch_add(1, Ordering::Relaxed),
                            Err(_) => acks.failed.fetch_add(1, Ordering::Relaxed),
                        };
                    } else {
                        // MQTT has no negative acknowledgement: leaving it unacknowledged
                        // makes the broker redeliver it to the next session.
                        acks.redeliver.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let mut report = LiveReport::default();
    let mut router = input.pipeline.router();
    tokio::pin!(stop);
    let mut warned = false;
    // The batch being gathered: prepared messages, their publishes (to acknowledge once the
    // store has them) and the permits they hold.
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut publishes = Vec::with_capacity(MAX_BATCH);
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    // Every publish is read into this one message (routing copies what it keeps into the
    // record), as a file's lines are.
    let mut message = Message::default();
    let submit = |batch: &mut Vec<_>,
                  publishes: &mut Vec<rumqttc::Publish>,
                  held: &mut Option<tokio::sync::OwnedSemaphorePermit>| {
        if let Some(permits) = held.take() {
            let tx = tx.clone();
            let publishes = std::mem::take(publishes);
            input.accept_batch(std::mem::take(batch), move |accepted| {
                let _ = tx.send((publishes, accepted, permits));
            });
        }
    };
    while let Some(first) = next_publish(
        &mut subscriber,
        &permits,
        capacity,
        &mut stop,
        input.idle_timeout,
        url,
        &mut warned,
        input.hooks,
    )
    .await
    {
        // What else has arrived, as far as the window allows: prepared together, accepted in
        // one store commit, acknowledged together.
        let mut arrived = vec![first];
        while arrived.len() < MAX_BATCH {
            match try_next_publish(&mut subscriber, &permits, url, input.hooks) {
                Some(p) => arrived.push(p),
                None => break,
            }
        }
        // The registry as the router's twins last synced it, so a device disabled or deleted
        // while the router runs is refused from then on; the one read at start otherwise.
        let synced = registry
            .and(input.twins)
            .and_then(crate::twin::LiveTwins::enabled_devices);
        let senders: Option<&dyn Senders> = match synced.as_deref() {
            Some(s) => Some(s),
            None => registry.map(|r| r as &dyn Senders),
        };
        for (publish, permit) in arrived {
            report.read += 1;
            if let Some(twins) = input.twins {
                if let Some(topic) = crate::twin::mqtt_topic::ReportedTopic::parse(&publish.topic) {
                    // The messages before it go to the store first, in their order.
                    submit(&mut batch, &mut publishes, &mut held);
                    let settle = reported_patch(input.pipeline, twins, senders, &topic, &publish);
                    if let Some((answer, payload)) = settle.answer {
                        if let Err(e) = answerer.publish(answer, payload).await {
                            tracing::warn!("cannot answer device '{}': {e}", topic.device_id);
                        }
                    }
                    if settle.accepted {
                        report.valid += 1;
                    }
                    let _ = tx.send((vec![publish], settle.acknowledge, permit));
                    continue;
                }
            }
            let routed = match d2c_into(&publish, senders, &mut message) {
                Ok(()) => input.route(&mut router, &message),
                Err(e) => Err((e.code(), e.to_string())),
            };
            let describe = || {
                (
                    serde_json::json!({"topic": publish.topic}),
                    serde_json::json!({"bodyBase64": super::invalid::base64_body(&publish.payload)}),
                )
            };
            match input.sort(routed, &mut report, describe, &mut batch) {
                None => {
                    publishes.push(publish);
                    match held.as_mut() {
                        Some(h) => h.merge(permit),
                        None => held = Some(permit),
                    }
                }
                Some(recorded) => {
                    let _ = tx.send((vec![publish], recorded, permit));
                }
            }
        }
        submit(&mut batch, &mut publishes, &mut held);
    }
    drop(tx);
    if !settle_all(&permits, capacity, Duration::from_secs(60)).await {
        report.gave_up_waiting = true;
        tracing::warn!("gave up waiting for in-flight messages; they stay unacknowledged and will be redelivered");
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), ack_task).await;
    subscriber.disconnect().await;
    acks.fill_report(&mut report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(topic: &str) -> rumqttc::Publish {
        rumqttc::Publish::new(topic, rumqttc::QoS::AtLeastOnce, b"{}".to_vec())
    }

    #[test]
    fn the_registry_decides_who_may_send_and_their_generation() {
        let registry = Registry::parse(
            r#"{"old": "6369", "on": {"generationId": "7", "status": "enabled",
                "modules": {"m": {"generationId": "8"}}},
                "off": {"status": "disabled"}}"#,
        )
        .unwrap();
        let gen = |topic: &str| {
            d2c(&publish(topic), Some(&registry)).map(|m| {
                m.system_properties
                    .get("connectionDeviceGenerationId")
                    .flatten()
                    .map(str::to_string)
            })
        };
        assert_eq!(gen("devices/old/messages/events/"), Ok(Some("6369".into())));
        assert_eq!(gen("devices/on/messages/events/"), Ok(Some("7".into())));
        assert_eq!(
            gen("devices/on/modules/m/messages/events/"),
            Ok(Some("8".into()))
        );
        let code = |topic: &str| d2c(&publish(topic), Some(&registry)).unwrap_err().code();
        assert_eq!(code("devices/ghost/messages/events/"), "E0605");
        assert_eq!(code("devices/off/messages/events/"), "E0606");
        // Without a registry anyone the broker let in may send.
        assert!(d2c(&publish("devices/ghost/messages/events/"), None).is_ok());
        // The old map form, as embedders built it.
        let from_pairs: Registry = [("old".to_string(), "6369".to_string())].into();
        assert!(d2c(&publish("devices/old/messages/events/"), Some(&from_pairs)).is_ok());
    }
}
