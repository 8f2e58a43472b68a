//! A broker sink names system properties as the endpoint kind it stands for does (IoT Hub's
//! "System property names" table), end to end: `hubroute run` delivers one message to three MQTT
//! sinks bound to a Service Bus queue, an Event Hub and a Storage container on a real Mosquitto
//! (started on a free loopback port, killed at the end), and each copy's property bag is read
//! back. Needs `mosquitto` (`apt-get install mosquitto`).

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use support::{free_port, Server, TempDir};

const ROUTES: &str = r#"{
  "endpoints": {
    "serviceBusQueues": [{ "name": "sb" }],
    "eventHubs": [{ "name": "eh" }],
    "storageContainers": [{ "name": "st", "containerName": "c" }]
  },
  "routes": [
    { "name": "to-sb", "source": "DeviceMessages", "condition": "true", "endpointNames": ["sb"], "isEnabled": true },
    { "name": "to-eh", "source": "DeviceMessages", "condition": "true", "endpointNames": ["eh"], "isEnabled": true },
    { "name": "to-st", "source": "DeviceMessages", "condition": "true", "endpointNames": ["st"], "isEnabled": true }
  ]
}"#;

/// One message with every property the table names, the way `az iot hub monitor-events` shows
/// them (Event Hubs spellings), which input reads as routing names.
const MESSAGE: &str = r#"{"systemProperties": {"message-id": "m1", "correlation-id": "c1", "content-type": "application/json", "content-encoding": "utf-8", "iothub-connection-device-id": "d1"}, "appProperties": {"level": "hot"}, "body": "{}"}"#;

#[test]
fn each_sink_carries_its_endpoint_kinds_names() {
    let dir = TempDir::new("outbound-names");
    let port = free_port();
    let _broker = Server::mosquitto(
        &dir.0,
        "plain",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
        &[port],
    );

    // Subscribe before the router publishes.
    let mut options = MqttOptions::new("names-watcher", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(options, 16);
    let mut bags: BTreeMap<String, String> = BTreeMap::new();
    let mut subscribed = false;
    let mut router = None;
    for _ in 0..200 {
        match connection.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                client.subscribe("out/#", QoS::AtLeastOnce).unwrap();
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !subscribed => {
                subscribed = true;
                let routes = dir.write("routes.json", ROUTES);
                let input = dir.write("messages.jsonl", &format!("{MESSAGE}\n"));
                let sink = |ep: &str| format!("{ep}=mqtt://127.0.0.1:{port}/out/{ep}");
                // Spawned, not waited for here: the subscription keeps being served meanwhile.
                router = Some(
                    Command::new(env!("CARGO_BIN_EXE_hubroute"))
                        .args(["run", "--routes"])
                        .arg(&routes)
                        .arg("--input")
                        .arg(&input)
                        .args([
                            "--sink",
                            &sink("sb"),
                            "--sink",
                            &sink("eh"),
                            "--sink",
                            &sink("st"),
                        ])
                        .arg("--store")
                        .arg(dir.0.join("store"))
                        .arg("--dead-letter")
                        .arg(dir.0.join("dead.jsonl"))
                        .arg("--quiet")
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("run hubroute"),
                );
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let (endpoint, bag) = p
                    .topic
                    .strip_prefix("out/")
                    .and_then(|t| t.split_once('/'))
                    .expect("out/{endpoint}/{bag}");
                bags.insert(endpoint.to_string(), bag.to_string());
                if bags.len() == 3 {
                    break;
                }
            }
            _ => {}
        }
    }
    let router = router
        .expect("subscribed to the sinks' topics")
        .wait_with_output()
        .unwrap();
    assert!(
        router.status.success(),
        "{}",
        String::from_utf8_lossy(&router.stderr)
    );
    assert_eq!(bags.len(), 3, "copies received: {bags:?}");

    let names = |endpoint: &str| -> Vec<String> {
        hubroute::ingest::property_bag::decode(&bags[endpoint])
            .expect("a valid bag")
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    assert_eq!(
        names("sb"),
        [
            "MessageId",
            "CorrelationId",
            "ContentType",
            "ContentEncoding",
            "iothub-connection-device-id",
            "level"
        ]
    );
    assert_eq!(
        names("eh"),
        [
            "message-id",
            "correlation-id",
            "content-type",
            "content-encoding",
            "iothub-connection-device-id",
            "level"
        ]
    );
    assert_eq!(
        names("st"),
        [
            "messageId",
            "correlationId",
            "contentType",
            "contentEncoding",
            "connectionDeviceId",
            "level"
        ]
    );
}
