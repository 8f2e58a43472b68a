//! A load generator: simulated devices publishing IoT Hub device-to-cloud messages over MQTT.
//!
//! `cargo run --release --example device_fleet -- mqtt://127.0.0.1:1883 20000 [devices]`
//!
//! Publishes N JSON telemetry messages (QoS 1) from `devices` devices to
//! `devices/{id}/messages/events/{property bag}`, as IoT Hub's SDKs do, waits for every PUBACK
//! and prints the publish rate. Message `i` is hot (`temp` 80) when `i % 4 == 0` and has
//! `level=critical` when `i % 5 == 0`.

use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).map_or("mqtt://127.0.0.1:1883", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let devices: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let url = hubroute::broker::BrokerUrl::parse(url).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let mut o = MqttOptions::new(
        format!("fleet-{}", std::process::id()),
        url.host.clone(),
        url.port,
    );
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(1000);
    let (client, mut connection) = Client::new(o, 1000);
    let started = Instant::now();
    let publisher = std::thread::spawn(move || {
        for i in 0..n {
            let level = if i % 5 == 0 { "critical" } else { "info" };
            let temp = if i % 4 == 0 { 80 } else { 20 };
            let topic = format!(
                "devices/dev-{}/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.mid=m-{i}&level={level}",
                i % devices
            );
            let body = format!(r#"{{"temp":{temp},"seq":{i},"Weather":{{"Temperature":{temp}}}}}"#);
            if client
                .publish(topic, QoS::AtLeastOnce, false, body)
                .is_err()
            {
                break;
            }
        }
        client
    });
    let mut acked = 0;
    while acked < n {
        match connection.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => {
                eprintln!("connection failed after {acked} acknowledged publishes: {other:?}");
                std::process::exit(1);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client = publisher.join().expect("publisher thread");
    let _ = client.disconnect();
    println!(
        "published {n} messages from {devices} devices in {elapsed:.3}s ({:.0} msg/s)",
        n as f64 / elapsed
    );
}
