//! A load generator: simulated devices publishing IoT Hub device-to-cloud messages over MQTT.
//!
//! `cargo run --release --example device_fleet -- URL N [devices [rate]]`, for example
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
//! `i % 5 == 0`. Its body carries `sentMicros`, the Unix time in microseconds it was encoded
//! at, so that what receives it can tell how long it took. With `rate` (messages per second,
//! shared by the devices) the fleet publishes at that pace instead of as fast as the broker
//! takes it: a steady load at which to measure latency.
//!
//! Each device is one thread on a blocking socket that writes its publishes in batches (up to
//! [`WINDOW`] unacknowledged) and reads the PUBACKs as they come, with rumqttc's packet codec.
//! A load generator should cost the machine little next to what it measures: rumqttc's event
//! loop writes every packet with its own system call (bytebeamio/rumqtt#810), and the fleet
//! built on it took more CPU per message than the broker itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hubroute::broker::BrokerUrl;
use rumqttc::{ConnectReturnCode, Packet, Publish, QoS};

/// Publishes a device has sent and not yet seen acknowledged, at most.
const WINDOW: usize = 1000;
/// A batch of publishes is written once it holds this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// The largest packet read or written.
const MAX_PACKET: usize = 256 * 1024;
/// How long a device waits for the broker before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).map_or("mqtt://127.0.0.1:1883", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let devices: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let rate: Option<f64> = args
        .get(4)
        .and_then(|s| s.parse().ok())
        .filter(|r: &f64| *r > 0.0);
    let url = BrokerUrl::parse(url).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let started = Instant::now();
    let fleet: Vec<_> = (0..devices)
        .map(|k| {
            let url = url.clone();
            std::thread::spawn(move || device(&url, k, devices, n, rate))
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

/// A device's connection: plain TCP or TLS over it.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Device `k` of `devices`: publishes messages `k, k + devices, …` below `n` (at `rate / devices`
/// a second, when given) and waits for their PUBACKs.
fn device(
    url: &BrokerUrl,
    k: usize,
    devices: usize,
    n: usize,
    rate: Option<f64>,
) -> Result<(), String> {
    let id = format!("{}-{k}", url.user.as_deref().unwrap_or("dev"));
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{id}: {what} {url}: {e}");
    let mut conn = connect(url).map_err(|e| fail("cannot connect to", &e))?;
    let mut out = BytesMut::with_capacity(BATCH_BYTES + 1024);
    let mut connect = rumqttc::Connect::new(id.clone());
    connect.keep_alive = 30;
    if url.user.is_some() {
        let password = url.password.as_ref().map_or("", |p| p.expose());
        connect.set_login(id.clone(), password);
    }
    let mut input = Incoming::default();
    send(&mut conn, &mut out, &Packet::Connect(connect))
        .map_err(|e| fail("cannot write to", &e))?;
    match input.next(&mut conn) {
        Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {}
        Ok(Packet::ConnAck(ack)) => return Err(fail("refused by", &format!("{:?}", ack.code))),
        Ok(other) => return Err(fail("unexpected answer from", &format!("{other:?}"))),
        Err(e) => return Err(fail("no CONNACK from", &e)),
    }

    let mut mine = (k..n).step_by(devices);
    let count = mine.len();
    let (mut sent, mut acked, mut pkid) = (0usize, 0usize, 0u16);
    // When the device's `j`-th message is due, when paced.
    let started = Instant::now();
    let due =
        |j: usize| rate.map(|r| started + Duration::from_secs_f64(j as f64 * devices as f64 / r));
    while acked < count {
        // Fill the window with what is due, writing a batch whenever it is full enough.
        while sent - acked < WINDOW && sent < count {
            if due(sent).is_some_and(|t| t > Instant::now()) {
                break;
            }
            let Some(i) = mine.next() else { break };
            pkid = pkid % u16::MAX + 1;
            let mut publish = Publish::new(topic(&id, i), QoS::AtLeastOnce, body(i));
            publish.pkid = pkid;
            Packet::Publish(publish)
                .write(&mut out, MAX_PACKET)
                .map_err(|e| fail("cannot encode for", &format!("{e:?}")))?;
            sent += 1;
            if out.len() >= BATCH_BYTES {
                flush(&mut conn, &mut out).map_err(|e| fail("cannot write to", &e))?;
            }
        }
        flush(&mut conn, &mut out).map_err(|e| fail("cannot write to", &e))?;
        if acked == sent {
            // Nothing in flight: wait for the next message's time.
            if let Some(t) = due(sent) {
                std::thread::sleep(t.saturating_duration_since(Instant::now()));
            }
            continue;
        }
        // Then take every acknowledgement that has come (at least one).
        loop {
            match input.next(&mut conn) {
                Ok(Packet::PubAck(_)) => acked += 1,
                Ok(_) => {}
                Err(e) => {
                    return Err(fail(
                        &format!("no acknowledgement after {acked} publishes from"),
                        &e,
                    ))
                }
            }
            if !input.has_packet() {
                break;
            }
        }
    }
    let _ = send(&mut conn, &mut out, &Packet::Disconnect);
    Ok(())
}

fn topic(id: &str, i: usize) -> String {
    let level = if i % 5 == 0 { "critical" } else { "info" };
    format!(
        "devices/{id}/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.mid=m-{i}&level={level}"
    )
}

fn body(i: usize) -> String {
    let temp = if i % 4 == 0 { 80 } else { 20 };
    let sent = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(r#"{{"temp":{temp},"seq":{i},"sentMicros":{sent},"Weather":{{"Temperature":{temp}}}}}"#)
}

/// Opens the TCP connection, and TLS over it for `mqtts://`.
fn connect(url: &BrokerUrl) -> Result<Box<dyn Stream>, String> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port)).map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(PATIENCE))
        .map_err(|e| e.to_string())?;
    let Some(tls) = &url.tls else {
        return Ok(Box::new(tcp));
    };
    let name =
        rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| e.to_string())?;
    let session =
        rustls::ClientConnection::new(tls.client_config(), name).map_err(|e| e.to_string())?;
    Ok(Box::new(rustls::StreamOwned::new(session, tcp)))
}

fn send(conn: &mut dyn Stream, out: &mut BytesMut, packet: &Packet) -> Result<(), String> {
    packet
        .write(out, MAX_PACKET)
        .map_err(|e| format!("{e:?}"))?;
    flush(conn, out)
}

fn flush(conn: &mut dyn Stream, out: &mut BytesMut) -> Result<(), String> {
    if !out.is_empty() {
        conn.write_all(out)
            .and_then(|()| conn.flush())
            .map_err(|e| e.to_string())?;
        out.clear();
    }
    Ok(())
}

/// Packets read from the connection: what one read brought is decoded packet by packet.
#[derive(Default)]
struct Incoming {
    buffer: BytesMut,
}

impl Incoming {
    /// The next packet, reading (and waiting up to [`PATIENCE`]) only when none is buffered.
    fn next(&mut self, conn: &mut dyn Stream) -> Result<Packet, String> {
        loop {
            match Packet::read(&mut self.buffer, MAX_PACKET) {
                Ok(packet) => return Ok(packet),
                Err(rumqttc::Error::InsufficientBytes(_)) => {}
                Err(e) => return Err(format!("{e:?}")),
            }
            let mut chunk = [0u8; 16 * 1024];
            match conn.read(&mut chunk) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Whether a whole packet is already buffered.
    fn has_packet(&self) -> bool {
        rumqttc::mqttbytes::check(self.buffer.iter(), MAX_PACKET).is_ok()
    }
}
