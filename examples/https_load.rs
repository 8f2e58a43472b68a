//! A load generator for `hubroute run --input http://…`: `--connections` devices, each on its
//! own keep-alive HTTP/1.1 connection, send `--messages` events each, one at a time (send,
//! wait for the 204), as IoT Hub's HTTPS device clients do; prints messages/s and the answers.
//! Plain HTTP over loopback: what it measures is the router (authentication, stamping,
//! routing, the durable store), not TLS.
//!
//! ```sh
//! hubroute token …  # not needed: devices dev-0 … dev-N share the key given here
//! cargo run --release --example https_load -- --addr 127.0.0.1:8080 --hub-host myhub.azure-devices.net \
//!     --key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= --connections 8 --messages 5000
//! ```
//!
//! `--write-devices FILE` writes the matching registry (dev-0 … dev-N with that key) for the
//! router's `--devices`, and exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubroute::registry::sas;

struct Args {
    addr: String,
    hub_host: String,
    key: String,
    connections: usize,
    messages: usize,
    write_devices: Option<String>,
}

fn parse() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8080".into(),
        hub_host: "myhub.azure-devices.net".into(),
        key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
        connections: 8,
        messages: 2000,
        write_devices: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value(),
            "--hub-host" => a.hub_host = value(),
            "--key" => a.key = value(),
            "--connections" => a.connections = value().parse().expect("--connections N"),
            "--messages" => a.messages = value().parse().expect("--messages N"),
            "--write-devices" => a.write_devices = Some(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Reads one response's status, draining its body (by Content-Length).
fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

fn main() {
    let args = parse();
    if let Some(path) = &args.write_devices {
        let registry: serde_json::Map<String, serde_json::Value> = (0..args.connections)
            .map(|i| {
                (
                    format!("dev-{i}"),
                    serde_json::json!({"status": "enabled",
                        "authentication": {"symmetricKey": {"primaryKey": args.key}}}),
                )
            })
            .collect();
        std::fs::write(path, serde_json::Value::Object(registry).to_string()).unwrap();
        return;
    }
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let started = Instant::now();
    let workers: Vec<_> = (0..args.connections)
        .map(|i| {
            let device = format!("dev-{i}");
            let token = sas::mint(
                &format!("{}/devices/{device}", args.hub_host),
                &args.key,
                expiry,
                None,
            )
            .expect("--key is not base64");
            let addr = args.addr.clone();
            let messages = args.messages;
            std::thread::spawn(move || {
                let stream = TcpStream::connect(&addr).expect("connect");
                stream.set_nodelay(true).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
                for n in 0..messages {
                    let body = format!(
                        r#"{{"device":"{device}","n":{n},"temperature":{}}}"#,
                        n % 100
                    );
                    let request = format!(
                        "POST /devices/{device}/messages/events?api-version=2020-03-13 HTTP/1.1\r\n\
                         Host: {addr}\r\nAuthorization: {token}\r\n\
                         iothub-messageid: {device}-{n}\r\niothub-contenttype: application/json\r\n\
                         iothub-contentencoding: utf-8\r\niothub-app-level: {}\r\n\
                         Content-Length: {}\r\n\r\n{body}",
                        if n % 2 == 0 { "hot" } else { "cold" },
                        body.len()
                    );
                    writer.write_all(request.as_bytes()).expect("send");
                    let status = read_response(&mut reader).expect("answer");
                    *statuses.entry(status).or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for w in workers {
        for (s, n) in w.join().unwrap() {
            *statuses.entry(s).or_default() += n;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total: u64 = statuses.values().sum();
    println!(
        "{total} requests on {} keep-alive connections in {elapsed:.2}s: {:.0} messages/s; answers {statuses:?}",
        args.connections,
        total as f64 / elapsed
    );
}
