//! A load generator: simulated devices publishing IoT Hub device-to-cloud messages over MQTT.
//!
//! `cargo run --release --example device_fleet -- URL N [devices]`, for example
//! `… -- 'mqtt://dev@127.0.0.1:1883?password_file=examples/mosquitto/device.password' 20000`
//!
//! Publishes N JSON telemetry messages (QoS 1) from `devices` devices (default 10), each over its
//! own connection with its device id as client id, to `devices/{id}/messages/events/{property
//! bag}`, as IoT Hub's SDKs do; waits for every PUBACK and prints the publish rate. The device
//! ids are `{user}-{k}` where `user` is the URL's user name (`dev` without one); with a user name
//! each device logs in as its id with the URL's password (`password_file=`, `password_env=` or
//! `HUBROUTE_MQTT_PASSWORD`), which is what the shipped Mosquitto configuration expects.
//! `mqtts://…?ca=FILE[&cert=FILE&key=FILE]` connects over TLS. Message `i` comes from device
//! `i % devices`, is hot (`temp` 80) when `i % 4 == 0` and has `level=critical` when
//! `i % 5 == 0`.

use std::time::{Duration, Instant};

use hubroute::broker::BrokerUrl;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).map_or("mqtt://127.0.0.1:1883", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let devices: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let url = BrokerUrl::parse(url).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let started = Instant::now();
    let fleet: Vec<_> = (0..devices)
        .map(|k| {
            let url = url.clone();
            std::thread::spawn(move || device(&url, k, devices, n))
        })
        .collect();
    let mut failed = false;
    for d in fleet {
        if let Err(e) = d.join().expect("device thread") {
            eprintln!("{e}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "published {n} messages from {devices} devices in {elapsed:.3}s ({:.0} msg/s)",
        n as f64 / elapsed
    );
}

/// Device `k` of `devices`: publishes messages `k, k + devices, …` below `n` and waits for their
/// PUBACKs.
fn device(url: &BrokerUrl, k: usize, devices: usize, n: usize) -> Result<(), String> {
    let id = format!("{}-{k}", url.user.as_deref().unwrap_or("dev"));
    let mut o = MqttOptions::new(id.clone(), url.host.clone(), url.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(1000);
    if url.user.is_some() {
        let password = url.password.as_ref().map_or("", |p| p.expose());
        o.set_credentials(id.clone(), password);
    }
    if let Some(tls) = &url.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.client_config(),
        )));
    }
    let (client, mut connection) = Client::new(o, 1000);
    let mine: Vec<usize> = (k..n).step_by(devices).collect();
    let count = mine.len();
    let topic_id = id.clone();
    let publisher = std::thread::spawn(move || {
        for i in mine {
            let level = if i % 5 == 0 { "critical" } else { "info" };
            let temp = if i % 4 == 0 { 80 } else { 20 };
            let topic = format!(
                "devices/{topic_id}/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.mid=m-{i}&level={level}"
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
    while acked < count {
        match connection.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(format!(
                    "{id}: connection to {url} failed after {acked} acknowledged publishes: {e}"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "{id}: no acknowledgement from {url} after {acked} publishes: {e:?}"
                ))
            }
        }
    }
    let client = publisher.join().expect("publisher thread");
    let _ = client.disconnect();
    // Let the DISCONNECT go out.
    let _ = connection.recv_timeout(Duration::from_millis(100));
    Ok(())
}
