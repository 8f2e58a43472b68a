//! The library's broker inputs, embedded as a stream processor would: a real Mosquitto on a
//! free loopback port, `pipeline::input::mqtt::run` into a `Pipeline` with a file sink, hooks
//! counting what the input reports. Every device publish ends accepted and delivered, or
//! dead-lettered with its code; each is acknowledged, and the report adds up.
#![cfg(all(feature = "mqtt", feature = "store"))]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hubroute::broker::BrokerUrl;
use hubroute::pipeline::input::{mqtt, InputHooks, InvalidLog, LiveInput};
use hubroute::pipeline::{Pipeline, PipelineConfig};
use hubroute::route::RouteTable;
use hubroute::sink::{DeadLetter, JsonLinesSink, Sink};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use support::{eventually, free_port, Server, TempDir};

/// Counts what the input reports through its hooks.
#[derive(Default)]
struct Counting {
    subscribed: AtomicBool,
    read: AtomicU64,
    invalid: AtomicU64,
    appended: AtomicU64,
}

impl InputHooks for Counting {
    fn read(&self, invalid: Option<&'static str>) {
        self.read.fetch_add(1, Ordering::Relaxed);
        if invalid.is_some() {
            self.invalid.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn connected(&self, up: bool) {
        self.subscribed.store(up, Ordering::Relaxed);
    }

    fn appended(&self) {
        self.appended.fetch_add(1, Ordering::Relaxed);
    }
}

/// Publishes `(topic, payload)` at QoS 1 and waits until the broker acknowledged each.
fn publish(port: u16, messages: &[(String, String)]) {
    let mut o = MqttOptions::new("embed-devices", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut connection) = Client::new(o, 64);
    for (topic, payload) in messages {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
            .unwrap();
    }
    let mut acked = 0;
    while acked < messages.len() {
        match connection.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("device connection failed after {acked} acknowledgements: {other:?}"),
        }
    }
    let _ = client.disconnect();
}

/// A pipeline routing everything to `archive`, a JSON Lines file in `dir`.
fn archive_pipeline(dir: &std::path::Path) -> Pipeline {
    let table = RouteTable::from_json(
        r#"{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true",
                        "endpointNames": ["archive"], "isEnabled": true}],
            "endpoints": {"serviceBusQueues": [{"name": "archive"}]}}"#,
        "myhub",
    )
    .table
    .unwrap();
    let mut sinks: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    sinks.insert(
        "archive".into(),
        Box::new(JsonLinesSink::to_path(dir.join("archive.jsonl")).unwrap()),
    );
    let config = PipelineConfig::new(dir.join("store"), "myhub");
    let dead_letter = DeadLetter::to_path(dir.join("dead.jsonl")).unwrap();
    Pipeline::open(config, table, sinks, dead_letter).unwrap()
}

/// Twenty messages from the registered `dev-1` and one from the unknown `dev-2`.
fn twenty_and_a_stranger() -> Vec<(String, String)> {
    let mut messages: Vec<(String, String)> = (0..20)
        .map(|i| {
            (
                format!("devices/dev-1/messages/events/$.mid=m-{i}"),
                format!("{{\"n\": {i}}}"),
            )
        })
        .collect();
    messages.push((
        "devices/dev-2/messages/events/$.mid=stranger".into(),
        "{}".into(),
    ));
    messages
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The scale-out path embedded: `pipeline::bridge::run` appends the devices' publishes to a
/// JetStream stream (real nats-server), then `input::jetstream::run` routes them from a durable
/// consumer into a pipeline; the stranger is dead-lettered by the bridge, every valid message
/// is appended once, accepted, acknowledged and delivered.
#[cfg(feature = "nats")]
#[test]
fn an_embedded_bridge_and_jetstream_input_carry_every_message() {
    use hubroute::pipeline::bridge::{self, BridgeSettings};
    use hubroute::pipeline::input::jetstream;
    use std::sync::Arc;

    let dir = TempDir::new("embed-bridge");
    let port = free_port();
    let _mqtt = Server::mosquitto(
        &dir.0,
        "mosquitto",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false"),
        &[port],
    );
    let nats_port = free_port();
    let _nats = Server::nats(
        &dir.0,
        "nats",
        &format!(
            "listen: 127.0.0.1:{nats_port}\njetstream {{ store_dir: \"{}\" }}\n",
            dir.0.join("js").display()
        ),
        nats_port,
    );
    let from = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let to = BrokerUrl::parse(&format!("jetstream://127.0.0.1:{nats_port}/HUB")).unwrap();
    let mut mqtt_settings = mqtt::MqttSettings::new("embedded-bridge");
    mqtt_settings.registry = Some([("dev-1".to_string(), "g-1".to_string())].into());
    let settings = BridgeSettings {
        mqtt: mqtt_settings,
        max_in_flight: 50,
        idle_timeout: None,
    };
    let bridge_invalid = Mutex::new(InvalidLog::open(&dir.0.join("bridge-invalid.jsonl")).unwrap());
    let bridge_hooks = Arc::new(Counting::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bridged = std::thread::scope(|scope| {
        let hooks: Arc<dyn InputHooks> = bridge_hooks.clone();
        let bridge_thread = scope.spawn(|| {
            current_thread().block_on(bridge::run(
                &from,
                &to,
                &settings,
                &bridge_invalid,
                hooks,
                async {
                    let _ = stop_rx.await;
                },
            ))
        });
        assert!(
            eventually(Duration::from_secs(20), || bridge_hooks
                .subscribed
                .load(Ordering::Relaxed)),
            "the bridge never reported its subscription"
        );
        publish(port, &twenty_and_a_stranger());
        assert!(
            eventually(Duration::from_secs(20), || bridge_hooks
                .appended
                .load(Ordering::Relaxed)
                == 20
                && bridge_hooks.read.load(Ordering::Relaxed) == 21),
            "the stream confirmed {} of 20",
            bridge_hooks.appended.load(Ordering::Relaxed)
        );
        stop_tx.send(()).unwrap();
        bridge_thread.join().unwrap()
    })
    .expect("the bridge starts");
    assert_eq!(bridged.received, 21, "{bridged:?}");
    assert_eq!(bridged.appended, 20, "{bridged:?}");
    assert_eq!(bridged.unconfirmed(), 0, "{bridged:?}");
    assert_eq!(bridged.invalid.get("E0605"), Some(&1), "{bridged:?}");

    let pipeline = archive_pipeline(&dir.0);
    let invalid = Mutex::new(InvalidLog::open(&dir.0.join("invalid.jsonl")).unwrap());
    let hooks = Counting::default();
    let mut input = LiveInput::new(&pipeline, &invalid);
    input.hooks = &hooks;
    let url = BrokerUrl::parse(&format!(
        "jetstream://127.0.0.1:{nats_port}/HUB?consumer=embed"
    ))
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let routed = std::thread::scope(|scope| {
        let input_thread = scope.spawn(|| {
            current_thread().block_on(jetstream::run(&input, &url, async {
                let _ = stop_rx.await;
            }))
        });
        assert!(
            eventually(Duration::from_secs(20), || hooks
                .read
                .load(Ordering::Relaxed)
                == 20),
            "the input read {} of 20",
            hooks.read.load(Ordering::Relaxed)
        );
        stop_tx.send(()).unwrap();
        input_thread.join().unwrap()
    })
    .expect("the input starts");
    assert_eq!((routed.read, routed.valid), (20, 20), "{routed:?}");
    assert_eq!(routed.acknowledged, 20, "{routed:?}");
    assert_eq!(routed.invalid_total(), 0, "{routed:?}");
    let stats = pipeline.shutdown(Duration::from_secs(30));
    assert_eq!(stats.endpoints[0].delivered, 20);
}

#[test]
fn an_embedded_mqtt_input_accepts_delivers_and_dead_letters() {
    let dir = TempDir::new("embed-live");
    let port = free_port();
    let _broker = Server::mosquitto(
        &dir.0,
        "mosquitto",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false"),
        &[port],
    );
    let table = RouteTable::from_json(
        r#"{"routes": [{"name": "all", "source": "DeviceMessages", "condition": "true",
                        "endpointNames": ["archive"], "isEnabled": true}],
            "endpoints": {"serviceBusQueues": [{"name": "archive"}]}}"#,
        "myhub",
    )
    .table
    .unwrap();
    let archive = dir.0.join("archive.jsonl");
    let mut sinks: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    sinks.insert(
        "archive".into(),
        Box::new(JsonLinesSink::to_path(archive.clone()).unwrap()),
    );
    let config = PipelineConfig::new(dir.0.join("store"), "myhub");
    let dead_letter = DeadLetter::to_path(dir.0.join("dead.jsonl")).unwrap();
    let pipeline = Pipeline::open(config, table, sinks, dead_letter).unwrap();
    let invalid_path = dir.0.join("invalid.jsonl");
    let invalid = Mutex::new(InvalidLog::open(&invalid_path).unwrap());
    let hooks = Counting::default();
    let url = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let mut settings = mqtt::MqttSettings::new("embedded-router");
    // dev-1 is registered, dev-2 is not (E0605).
    settings.registry = Some([("dev-1".to_string(), "g-1".to_string())].into());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();

    let report = std::thread::scope(|scope| {
        let input_thread = scope.spawn(|| {
            let mut input = LiveInput::new(&pipeline, &invalid);
            input.hooks = &hooks;
            input.max_in_flight = 5;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(mqtt::run(&input, &url, &settings, async {
                let _ = stop_rx.await;
            }))
        });
        assert!(
            eventually(Duration::from_secs(20), || hooks
                .subscribed
                .load(Ordering::Relaxed)),
            "the input never reported its subscription"
        );
        let mut messages: Vec<(String, String)> = (0..20)
            .map(|i| {
                (
                    format!("devices/dev-1/messages/events/$.mid=m-{i}"),
                    format!("{{\"n\": {i}}}"),
                )
            })
            .collect();
        messages.push((
            "devices/dev-2/messages/events/$.mid=stranger".into(),
            "{}".into(),
        ));
        publish(port, &messages);
        assert!(
            eventually(Duration::from_secs(20), || hooks
                .read
                .load(Ordering::Relaxed)
                == 21),
            "the input read {} of 21 messages",
            hooks.read.load(Ordering::Relaxed)
        );
        stop_tx.send(()).unwrap();
        input_thread.join().unwrap()
    })
    .expect("the input starts");

    assert_eq!(report.read, 21, "{report:?}");
    assert_eq!(report.valid, 20, "{report:?}");
    assert_eq!(report.invalid.get("E0605"), Some(&1), "{report:?}");
    assert_eq!(report.acknowledged, 21, "every message settled: {report:?}");
    assert_eq!(
        report.left_for_redelivery + report.acknowledgements_failed,
        0
    );
    assert!(!report.gave_up_waiting);
    assert_eq!(hooks.invalid.load(Ordering::Relaxed), 1);

    let stats = pipeline.shutdown(Duration::from_secs(30));
    assert_eq!(stats.accepted, 20);
    assert_eq!(stats.endpoints[0].delivered, 20);
    let delivered = std::fs::read_to_string(&archive).unwrap();
    assert_eq!(delivered.lines().count(), 20, "{delivered}");
    // Stamped by the router from the connection and registry, not by the device.
    assert!(
        delivered.contains("\"connectionDeviceGenerationId\":\"g-1\""),
        "{delivered}"
    );
    let invalid_text = std::fs::read_to_string(&invalid_path).unwrap();
    let record: serde_json::Value =
        serde_json::from_str(invalid_text.lines().next().expect("one invalid record")).unwrap();
    assert_eq!(record["code"], "E0605", "{record}");
    assert_eq!(
        record["input"]["topic"],
        "devices/dev-2/messages/events/$.mid=stranger"
    );
}
