//! Live inputs: `hubroute run --input mqtt://…|jetstream://…` and `hubroute bridge`.
//!
//! Every input here needs acknowledging, and the rule is IoT Hub's: a message is acknowledged
//! once the router has *durably accepted* it — written and synced to its store
//! ([`Pipeline::accept_then`]) — or dead-lettered it as invalid, or (the bridge) once the
//! stream confirmed it. Endpoints then deliver from the store on their own cursors, so a down
//! endpoint never holds the input's window. Until acceptance the broker keeps the message and
//! redelivers it after a crash; after it, the store does.
//!
//! The loops run on a single-threaded tokio runtime; routing is cheap next to the I/O, and the
//! store's committer and the endpoints have their own threads.

// Builds without a broker feature keep the command-line surface and report the missing feature;
// the imports the loops need are then unused.
#![cfg_attr(not(all(feature = "mqtt", feature = "nats")), allow(unused_imports))]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use hubroute::eval::TwinLookup;
use hubroute::message::Message;
use hubroute::pipeline::{Pipeline, Prepared};
use hubroute::sink::Sink;

use crate::run_cmd::{report, InputStats, InvalidLog, RunArgs};

/// What `run` hands over once the pipeline (store, sinks, dead letter) is open.
#[cfg_attr(not(any(feature = "mqtt", feature = "nats")), allow(dead_code))]
pub(crate) struct Live<'a> {
    /// The live route table (reloads) and the counters behind `--metrics`.
    pub observed: std::sync::Arc<crate::ops_wiring::Observed>,
    pub pipeline: Pipeline,
    pub twin: Option<&'a dyn TwinLookup>,
    pub invalid_log: Mutex<InvalidLog>,
    pub dead_letter_path: PathBuf,
}

/// The sink for a broker URL (`mqtt://`, `nats://`, `jetstream://`).
pub(crate) fn broker_sink(endpoint: &str, url: &str) -> Result<Box<dyn Sink>, String> {
    #[cfg(any(feature = "mqtt", feature = "nats"))]
    {
        use hubroute::broker::{BrokerUrl, Scheme};
        let parsed = BrokerUrl::parse(url).map_err(|e| format!("--sink {endpoint}: {e}"))?;
        let sink: Result<Box<dyn Sink>, hubroute::sink::SinkError> = match parsed.scheme {
            #[cfg(feature = "mqtt")]
            Scheme::Mqtt => hubroute::broker::mqtt::MqttSink::new(
                &parsed,
                &format!("hubroute-sink-{endpoint}-{}", std::process::id()),
            )
            .map(|s| Box::new(s) as Box<dyn Sink>),
            #[cfg(feature = "nats")]
            Scheme::Nats | Scheme::JetStream => {
                hubroute::broker::nats::NatsSink::new(&parsed).map(|s| Box::new(s) as Box<dyn Sink>)
            }
            #[allow(unreachable_patterns)]
            _ => return Err(not_built(url)),
        };
        sink.map_err(|e| format!("--sink {endpoint}: {e}"))
    }
    #[cfg(not(any(feature = "mqtt", feature = "nats")))]
    {
        let _ = endpoint;
        Err(not_built(url))
    }
}

#[allow(dead_code)]
fn not_built(url: &str) -> String {
    let url = crate::run_cmd::shown(url);
    format!("{url}: this hubroute was built without the cargo feature for this broker (mqtt, nats)")
}

/// Runs the router on a broker input until interrupted (or idle, with --exit-when-idle).
pub(crate) fn run(args: &RunArgs, pipeline: Live<'_>) -> Result<ExitCode, String> {
    #[cfg(any(feature = "mqtt", feature = "nats"))]
    {
        use hubroute::broker::{BrokerUrl, Scheme};
        let url = BrokerUrl::parse(&args.input).map_err(|e| format!("--input: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        match url.scheme {
            #[cfg(feature = "mqtt")]
            Scheme::Mqtt => runtime.block_on(mqtt_input::run(args, &url, pipeline)),
            #[cfg(feature = "nats")]
            Scheme::JetStream => runtime.block_on(jetstream_input::run(args, &url, pipeline)),
            _ => Err(format!(
                "--input {url}: use mqtt://HOST:PORT or jetstream://HOST:PORT/STREAM?consumer=NAME{}",
                if cfg!(all(feature = "mqtt", feature = "nats")) { "" } else { " (and a build with both broker features)" }
            )),
        }
    }
    #[cfg(not(any(feature = "mqtt", feature = "nats")))]
    {
        let _ = pipeline;
        Err(not_built(&args.input))
    }
}

/// Counters shared with acknowledgement tasks.
#[cfg(any(feature = "mqtt", feature = "nats"))]
#[derive(Default)]
struct AckCounts {
    acked: AtomicU64,
    redeliver: AtomicU64,
    failed: AtomicU64,
}

/// Resolves on Ctrl-C or SIGTERM.
#[cfg(any(feature = "mqtt", feature = "nats"))]
async fn interrupted() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sleeps for `idle`, or forever without one.
#[cfg(any(feature = "mqtt", feature = "nats"))]
async fn idle_timer(idle: Option<Duration>) {
    match idle {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(any(feature = "mqtt", feature = "nats"))]
impl Live<'_> {
    /// Validates, routes and encodes one message for the store, or says why it is invalid.
    fn route(
        &self,
        router: &mut hubroute::route::Router<'_>,
        message: &Message,
    ) -> Result<Prepared, (&'static str, String)> {
        // The hub's enqueued time is when the bridge (or this router's MQTT input) stamped it.
        let enqueued = message
            .system_properties
            .get(hubroute::message::names::ENQUEUED_TIME)
            .flatten()
            .and_then(hubroute::sink::parse_enqueued_time)
            .unwrap_or_else(SystemTime::now);
        // A reloaded table, if any (SIGHUP, --watch), routes from the next message on.
        let prepared = match self.pipeline.reloaded_table() {
            None => self.pipeline.prepare(router, message, self.twin, enqueued),
            Some(table) => {
                let mut router = table.router();
                self.pipeline
                    .prepare_with(&table, &mut router, message, self.twin, enqueued)
            }
        };
        prepared.map_err(|r| (r.code, r.reason))
    }

    /// Accepts a routed message into the store and calls `settle(true)` once it is durable
    /// (`false`: not accepted, do not acknowledge), or records an invalid one (`describe` says
    /// where it came from and what it held) and settles at once.
    fn deliver(
        &self,
        routed: Result<Prepared, (&'static str, String)>,
        stats: &mut InputStats,
        describe: impl FnOnce() -> (serde_json::Value, serde_json::Value),
        settle: impl FnOnce(bool) + Send + 'static,
    ) {
        let mut counts = hubroute::ops::Batch {
            read: 1,
            ..Default::default()
        };
        if let Err((code, _)) = &routed {
            counts.invalid.insert(code, 1);
        }
        self.observed.counters.add(&counts);
        match routed {
            Ok(prepared) => {
                stats.valid += 1;
                self.pipeline.accept_then(vec![prepared], move |result| {
                    if let Err(e) = &result {
                        eprintln!("not accepted, left for redelivery: {e}");
                    }
                    settle(result.is_ok());
                });
            }
            Err((code, reason)) => {
                *stats.invalid.entry(code).or_default() += 1;
                let (origin, raw) = describe();
                settle(self.reject(origin, code, &reason, raw));
            }
        }
    }

    /// Records an invalid input in the dead letter; `false` when even that failed (then the
    /// input must not be acknowledged).
    fn reject(
        &self,
        origin: serde_json::Value,
        code: &str,
        reason: &str,
        message: serde_json::Value,
    ) -> bool {
        eprintln!("invalid message [{code}] from {origin}: {reason}");
        let mut log = self.invalid_log.lock().unwrap_or_else(|p| p.into_inner());
        match log.write_input(origin, code, reason, message) {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "cannot write the dead letter {}: {e}",
                    self.dead_letter_path.display()
                );
                false
            }
        }
    }

    /// Stops: waits (bounded) for acceptances in flight, drains the endpoints (up to
    /// --drain-timeout; the rest stays in the store) and prints the report.
    async fn finish(
        self,
        permits: Arc<tokio::sync::Semaphore>,
        capacity: usize,
        stats: InputStats,
        acks: Arc<AckCounts>,
        started: Instant,
        args: &RunArgs,
    ) -> Result<ExitCode, String> {
        let all = u32::try_from(capacity).unwrap_or(u32::MAX);
        let settled =
            tokio::time::timeout(Duration::from_secs(60), permits.acquire_many(all)).await;
        if settled.is_err() {
            eprintln!("gave up waiting for in-flight messages; they stay unacknowledged and will be redelivered");
        }
        let delivery = self.pipeline.shutdown(args.drain_timeout);
        eprintln!(
            "acknowledged {}, left for redelivery {}, acknowledgements failed {}",
            acks.acked.load(Ordering::Relaxed),
            acks.redeliver.load(Ordering::Relaxed),
            acks.failed.load(Ordering::Relaxed)
        );
        Ok(report(&stats, &delivery, started.elapsed(), args))
    }
}

#[cfg(feature = "mqtt")]
/// `--devices FILE`: `{"deviceId": "generationId", …}`. With a registry, unknown senders are
/// rejected (E0605), as IoT Hub rejects unregistered devices.
pub(crate) fn load_registry(
    path: Option<&PathBuf>,
) -> Result<Option<HashMap<String, String>>, String> {
    let Some(path) = path else { return Ok(None) };
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--devices {}: {e}", path.display()))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        format!(
            "--devices {}: expected {{\"deviceId\": \"generationId\"}}: {e}",
            path.display()
        )
    })
}

/// How long a broker input may see no message, while messages it read wait unsettled, before
/// [`next_publish`] suspects that the broker's window is what holds the input up.
#[cfg(feature = "mqtt")]
const QUIET_WHILE_WAITING: Duration = Duration::from_secs(10);

/// The next device publish with an in-flight permit for it, or `None` when it is time to stop
/// (interrupted, idle, or the connection shut down). Reports subscriptions and connection
/// errors on the way, and once, when nothing arrives for [`QUIET_WHILE_WAITING`] while
/// messages wait to be settled, that the broker may be holding the rest back.
#[cfg(feature = "mqtt")]
async fn next_publish(
    subscriber: &mut hubroute::broker::mqtt::D2cSubscriber,
    permits: &Arc<tokio::sync::Semaphore>,
    capacity: usize,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    idle: Option<Duration>,
    url: &hubroute::broker::BrokerUrl,
    warned: &mut bool,
) -> Option<(rumqttc::Publish, tokio::sync::OwnedSemaphorePermit)> {
    use hubroute::broker::mqtt::Incoming;
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
                eprintln!(
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
                    eprintln!(
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
            Incoming::Subscribed => {
                crate::ops_wiring::set_input_connected(true);
                eprintln!("subscribed to device-to-cloud topics on {url}")
            }
            Incoming::Error(e) => {
                crate::ops_wiring::set_input_connected(false);
                eprintln!("{url}: {e}; reconnecting in 1s")
            }
        }
    }
}

#[cfg(feature = "mqtt")]
mod mqtt_input {
    //! Devices publishing over MQTT, straight into the router.

    use super::*;
    use hubroute::broker::mqtt::D2cSubscriber;
    use hubroute::broker::BrokerUrl;

    pub(super) async fn run(
        args: &RunArgs,
        url: &BrokerUrl,
        pipeline: Live<'_>,
    ) -> Result<ExitCode, String> {
        let registry = load_registry(args.devices.as_ref())?;
        let mut subscriber = D2cSubscriber::start(url, &args.client_id);
        let acker = subscriber.acker();
        let capacity = args.max_in_flight.max(1);
        let permits = Arc::new(tokio::sync::Semaphore::new(capacity));
        let acks = Arc::new(AckCounts::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
            rumqttc::Publish,
            bool,
            tokio::sync::OwnedSemaphorePermit,
        )>();
        let ack_task = {
            let acks = Arc::clone(&acks);
            tokio::spawn(async move {
                // The permit is held until the acknowledgement is queued.
                while let Some((publish, settlement, _permit)) = rx.recv().await {
                    if settlement {
                        match acker.ack(&publish).await {
                            Ok(()) => acks.acked.fetch_add(1, Ordering::Relaxed),
                            Err(_) => acks.failed.fetch_add(1, Ordering::Relaxed),
                        };
                    } else {
                        // MQTT has no negative acknowledgement: leaving it unacknowledged makes
                        // the broker redeliver it to the next session.
                        acks.redeliver.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let started = Instant::now();
        let mut stats = InputStats::default();
        let mut router = pipeline.pipeline.router();
        let stop = interrupted();
        tokio::pin!(stop);
        let mut warned = false;
        while let Some((publish, permit)) = next_publish(
            &mut subscriber,
            &permits,
            capacity,
            &mut stop,
            args.exit_when_idle,
            url,
            &mut warned,
        )
        .await
        {
            stats.read += 1;
            let message = super::d2c(&publish, registry.as_ref());
            let settle = {
                let tx = tx.clone();
                let publish = publish.clone();
                move |s: bool| {
                    let _ = tx.send((publish, s, permit));
                }
            };
            let routed = match message {
                Ok(m) => pipeline.route(&mut router, &m),
                Err(e) => Err((e.code(), e.to_string())),
            };
            let describe = || {
                (
                    serde_json::json!({"topic": publish.topic}),
                    serde_json::json!({"bodyBase64": base64_body(&publish.payload)}),
                )
            };
            pipeline.deliver(routed, &mut stats, describe, settle);
        }
        drop(tx);
        let result = pipeline
            .finish(
                Arc::clone(&permits),
                capacity,
                stats,
                Arc::clone(&acks),
                started,
                args,
            )
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), ack_task).await;
        subscriber.disconnect().await;
        result
    }
}

/// One device publish as a stamped, validated message.
#[cfg(feature = "mqtt")]
pub(crate) fn d2c(
    publish: &rumqttc::Publish,
    registry: Option<&HashMap<String, String>>,
) -> Result<Message, hubroute::ingest::IngestError> {
    use hubroute::ingest::{Connection, D2cTopic, IngestError};
    let topic = D2cTopic::parse(&publish.topic)?;
    let generation = match registry {
        Some(r) => Some(
            r.get(topic.device_id)
                .ok_or_else(|| IngestError::UnknownDevice(topic.device_id.to_string()))?
                .as_str(),
        ),
        None => None,
    };
    let connection = Connection::from_topic(&topic, generation);
    hubroute::ingest::d2c_message_reporting(
        &topic,
        &publish.payload,
        &connection,
        SystemTime::now(),
        &mut |name| log_spoofing_property(topic.device_id, name),
    )
}

/// Logs a dropped spoofing property (W0650): the first ten, then every thousandth with the
/// running count, so a device sending them in a loop cannot flood the log. The value is not
/// logged.
#[cfg(feature = "mqtt")]
fn log_spoofing_property(device: &str, name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DROPPED: AtomicU64 = AtomicU64::new(0);
    let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= 10 || n % 1000 == 0 {
        eprintln!(
            "warning[{}]: device '{device}' set application property '{name}', named like a \
             property the router stamps; dropped ({n} so far)",
            hubroute::ingest::codes::SPOOFING_PROPERTY_DROPPED
        );
    }
}

#[cfg(feature = "mqtt")]
fn base64_body(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(feature = "nats")]
mod jetstream_input {
    //! A durable JetStream consumer shared with the other router processes.

    use super::*;
    use async_nats::jetstream::AckKind;
    use hubroute::broker::nats::{decode_record, ConsumerSettings};
    use hubroute::broker::BrokerUrl;
    use hubroute::ingest::codes::MALFORMED_RECORD;
    use hubroute::pipeline::input::jetstream::ResumingPull;

    pub(super) async fn run(
        args: &RunArgs,
        url: &BrokerUrl,
        pipeline: Live<'_>,
    ) -> Result<ExitCode, String> {
        let settings = ConsumerSettings::from_url(url)?;
        let mut messages = ResumingPull::open(url, settings).await?;
        crate::ops_wiring::set_input_connected(true);
        let capacity = args.max_in_flight.max(1);
        let permits = Arc::new(tokio::sync::Semaphore::new(capacity));
        let acks = Arc::new(AckCounts::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
            async_nats::jetstream::message::Acker,
            bool,
            tokio::sync::OwnedSemaphorePermit,
        )>();
        let ack_task = {
            let acks = Arc::clone(&acks);
            tokio::spawn(async move {
                while let Some((acker, settlement, permit)) = rx.recv().await {
                    let acks = Arc::clone(&acks);
                    // Concurrently: each acknowledgement is a round trip to the server.
                    tokio::spawn(async move {
                        let result = if settlement {
                            acker.double_ack().await
                        } else {
                            acker.ack_with(AckKind::Nak(None)).await
                        };
                        let counter = match (result.is_ok(), settlement) {
                            (true, true) => &acks.acked,
                            (true, false) => &acks.redeliver,
                            (false, _) => &acks.failed,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
            })
        };
        let started = Instant::now();
        let mut stats = InputStats::default();
        let mut redelivered = 0u64;
        let mut router = pipeline.pipeline.router();
        let stop = interrupted();
        tokio::pin!(stop);
        loop {
            let permit = tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => p.map_err(|e| e.to_string())?,
                _ = &mut stop => break,
            };
            let next = tokio::select! {
                m = messages.next() => m,
                _ = &mut stop => break,
                _ = idle_timer(args.exit_when_idle) => break,
            };
            let delivered = next;
            stats.read += 1;
            let (sequence, deliveries) = delivered
                .info()
                .map(|i| (i.stream_sequence, i.delivered))
                .unwrap_or((0, 1));
            if deliveries > 1 {
                redelivered += 1;
            }
            let (record, acker) = delivered.split();
            let settle = {
                let tx = tx.clone();
                move |s: bool| {
                    let _ = tx.send((acker, s, permit));
                }
            };
            let routed = match decode_record(&record.payload) {
                Ok(m) => pipeline.route(&mut router, &m),
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
            pipeline.deliver(routed, &mut stats, describe, settle);
        }
        drop(tx);
        eprintln!(
            "redelivered messages received: {redelivered}; pull stream resumed {} times",
            messages.resumed()
        );
        let result = pipeline
            .finish(
                Arc::clone(&permits),
                capacity,
                stats,
                Arc::clone(&acks),
                started,
                args,
            )
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), ack_task).await;
        result
    }
}

/// `hubroute bridge`: devices' MQTT publishes, stamped and validated, appended to a JetStream
/// stream that router processes share.
#[derive(Args)]
pub struct BridgeArgs {
    /// The MQTT broker devices publish to (IoT Hub's device-to-cloud topics).
    #[arg(long)]
    from: String,
    /// The stream to append to: jetstream://HOST:PORT/STREAM (created if missing).
    #[arg(long)]
    to: String,
    /// Where invalid messages go, with the reason (JSON Lines).
    #[arg(long, default_value = "hubroute-bridge-dead-letter.jsonl")]
    dead_letter: PathBuf,
    /// The bridge's MQTT client id (its broker session holds messages while it is away).
    #[arg(long, default_value = "hubroute-bridge")]
    client_id: String,
    /// Device registry: a JSON object of deviceId to generation id; unknown senders are rejected.
    #[arg(long)]
    devices: Option<PathBuf>,
    /// Messages received and not yet confirmed by the stream, at most.
    #[arg(long, default_value_t = 5000)]
    max_in_flight: usize,
    /// Stop after this long without a message (default: run until interrupted).
    #[arg(long, value_parser = crate::run_cmd::parse_duration_arg)]
    exit_when_idle: Option<Duration>,
    #[command(flatten)]
    ops: crate::ops_args::ObserveArgs,
}

/// Runs the bridge until interrupted (or idle).
pub(crate) fn bridge(args: BridgeArgs) -> Result<ExitCode, String> {
    crate::logging::init(&args.ops.log)?;
    #[cfg(all(feature = "mqtt", feature = "nats"))]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime.block_on(bridge_loop(args))
    }
    #[cfg(not(all(feature = "mqtt", feature = "nats")))]
    {
        Err(not_built(&args.from))
    }
}

#[cfg(all(feature = "mqtt", feature = "nats"))]
async fn bridge_loop(args: BridgeArgs) -> Result<ExitCode, String> {
    use hubroute::broker::mqtt::D2cSubscriber;
    use hubroute::broker::nats::JetStreamWriter;
    use hubroute::broker::{BrokerUrl, Scheme};

    let from = BrokerUrl::parse(&args.from).map_err(|e| format!("--from: {e}"))?;
    let to = BrokerUrl::parse(&args.to).map_err(|e| format!("--to: {e}"))?;
    if from.scheme != Scheme::Mqtt || to.scheme != Scheme::JetStream {
        return Err(
            "bridge: expected --from mqtt://HOST:PORT --to jetstream://HOST:PORT/STREAM".into(),
        );
    }
    let registry = load_registry(args.devices.as_ref())?;
    let mut invalid_log = InvalidLog::open(&args.dead_letter)?;
    let writer = JetStreamWriter::open(&to).await?;
    // Read, appended (accepted) and invalid by code, for --metrics.
    let counters = Arc::new(hubroute::ops::Counters::default());
    let _metrics = crate::ops_wiring::serve_counters(&args.ops, Arc::clone(&counters))?;
    let mut subscriber = D2cSubscriber::start(&from, &args.client_id);
    let acker = subscriber.acker();
    let capacity = args.max_in_flight.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(capacity));
    let appended = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let mut received = 0u64;
    let mut received_valid = 0u64;
    // Names this bridge run in message ids, so ids never repeat across runs.
    let instance = format!(
        "{}-{}",
        args.client_id,
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut invalid: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let started = Instant::now();
    let stop = interrupted();
    tokio::pin!(stop);
    let mut warned = false;
    while let Some((publish, permit)) = next_publish(
        &mut subscriber,
        &permits,
        capacity,
        &mut stop,
        args.exit_when_idle,
        &from,
        &mut warned,
    )
    .await
    {
        received += 1;
        counters.add(&hubroute::ops::Batch {
            read: 1,
            ..Default::default()
        });
        match d2c(&publish, registry.as_ref()) {
            Ok(message) => {
                let device = message
                    .system_properties
                    .get("connectionDeviceId")
                    .flatten()
                    .unwrap_or_default()
                    .to_string();
                received_valid += 1;
                let id = hubroute::pipeline::input::jetstream::stream_message_id(
                    &publish.topic,
                    &publish.payload,
                    &message,
                )
                .unwrap_or_else(|| format!("{instance}-{received_valid}"));
                // The first send is made here, in arrival order, so each device's messages keep
                // their order in the stream; resends after an outage happen in the background.
                let first = writer.send(&device, &message, &id).await;
                let writer = writer.clone();
                let acker = acker.clone();
                let (appended, retried) = (Arc::clone(&appended), Arc::clone(&retried));
                let counters = Arc::clone(&counters);
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
                                counters.add(&hubroute::ops::Batch {
                                    accepted: 1,
                                    ..Default::default()
                                });
                                let _ = acker.ack(&publish).await;
                                break;
                            }
                            Err(e) => {
                                // Keep the device's message (unacknowledged) and try again;
                                // the stream drops a resend it already has (same id).
                                let n = retried.fetch_add(1, Ordering::Relaxed) + 1;
                                if n.is_power_of_two() {
                                    eprintln!("{e}; retrying ({n} retries so far)");
                                }
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                                attempt = writer.send(&device, &message, &id).await;
                            }
                        }
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                *invalid.entry(e.code()).or_default() += 1;
                let mut counts = hubroute::ops::Batch::default();
                counts.invalid.insert(e.code(), 1);
                counters.add(&counts);
                eprintln!("invalid message on '{}': {e}", publish.topic);
                let origin = serde_json::json!({"topic": publish.topic});
                let body = serde_json::json!({"bodyBase64": base64_body(&publish.payload)});
                match invalid_log.write_input(origin, e.code(), &e.to_string(), body) {
                    Ok(()) => {
                        let _ = acker.ack(&publish).await;
                    }
                    Err(err) => eprintln!("cannot write the dead letter: {err}"),
                }
            }
        }
    }
    let all = u32::try_from(capacity).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(30), permits.acquire_many(all)).await;
    subscriber.disconnect().await;
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let n_invalid: u64 = invalid.values().sum();
    eprintln!(
        "received {received} messages in {elapsed:.3}s ({:.0} msg/s)",
        received as f64 / elapsed
    );
    // One reading for both lines, so that they add up while resends may still complete.
    let appended = appended.load(Ordering::Relaxed);
    eprintln!("  appended to {to}: {appended}");
    eprintln!(
        "  appends retried: {}; not confirmed when stopped (left unacknowledged for redelivery): {}",
        retried.load(Ordering::Relaxed),
        received_valid.saturating_sub(appended)
    );
    eprintln!(
        "  invalid: {n_invalid} (dead-lettered to {}){}",
        args.dead_letter.display(),
        invalid
            .iter()
            .map(|(c, n)| format!(" {c}: {n}"))
            .collect::<String>()
    );
    Ok(ExitCode::SUCCESS)
}
