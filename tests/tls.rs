//! TLS and credentials on every broker connection, against real brokers: a Mosquitto with a TLS
//! listener, the shipped password file and ACL, and a client-certificate listener; nats-server
//! with TLS and user/password authorization, and with TLS, client certificates, a token and
//! JetStream. Certificates are made by rcgen for each test. Everything the router uses (the
//! device subscriber, the MQTT and NATS sinks, the JetStream writer and consumer) is given its
//! TLS and credentials through the URL alone, and no password or token appears in an error.
//!
//! Needs `mosquitto` and `nats-server` (Debian packages); without them the tests fail saying so.
#![cfg(all(feature = "mqtt", feature = "nats"))]

mod support;

use std::time::{Duration, SystemTime};

use hubroute::broker::mqtt::{D2cSubscriber, Incoming, MqttSink};
use hubroute::broker::nats::{self, JetStreamInput, JetStreamWriter, NatsSink};
use hubroute::broker::BrokerUrl;
use hubroute::message::Message;
use hubroute::sink::{Envelope, Sink};
use support::{free_port, repo, Pki, Server, TempDir};

const ROUTER_PASSWORD: &str = "demo-router-password";

fn envelope(id: &str) -> Envelope {
    let json = format!(
        r#"{{"systemProperties":{{"messageId":"{id}","contentType":"application/json"}},"appProperties":{{"k":"v"}},"body":"{{\"n\":1}}"}}"#
    );
    Envelope {
        endpoint: "e".into(),
        message: Message::from_json_str(&json).unwrap(),
        enqueued_time: SystemTime::now(),
        hub_name: "hub".into(),
        partition: 0,
        sequence: 1,
    }
}

fn url(text: &str) -> BrokerUrl {
    BrokerUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A Mosquitto with a TLS listener that takes the shipped password file and ACL, and a second
/// one where the client certificate's common name is the user name.
fn tls_mosquitto(dir: &TempDir, pki: &Pki) -> (Server, u16, u16) {
    let (password_port, cert_port) = (free_port(), free_port());
    let examples = repo().join("examples/mosquitto");
    let tls = format!(
        "cafile {}\ncertfile {}\nkeyfile {}\n",
        pki.ca.display(),
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let config = format!(
        "per_listener_settings true\n\
         listener {password_port} 127.0.0.1\n{tls}allow_anonymous false\n\
         password_file {e}/passwd\nacl_file {e}/acl.conf\n\
         listener {cert_port} 127.0.0.1\n{tls}require_certificate true\n\
         use_identity_as_username true\nallow_anonymous false\nacl_file {e}/acl.conf\n",
        e = examples.display()
    );
    let server = Server::mosquitto(
        &dir.0,
        "mosquitto-tls",
        &config,
        &[password_port, cert_port],
    );
    (server, password_port, cert_port)
}

/// What a subscriber sees until it subscribed or failed `failures` times (at most 30 s).
async fn until_subscribed(sub: &mut D2cSubscriber, failures: usize) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while errors.len() < failures {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(Incoming::Subscribed)) => return Ok(()),
            Ok(Some(Incoming::Error(e))) => errors.push(e),
            Ok(Some(Incoming::Publish(p))) => panic!("a publish before subscribing: {p:?}"),
            Ok(None) | Err(_) => break,
        }
    }
    Err(errors)
}

/// The router's subscriber on the TLS listener at `port`: the test CA, user `router` with the
/// shipped demo password file; returns once subscribed.
async fn tls_router(port: u16, ca: &str, client_id: &str, server: &Server) -> D2cSubscriber {
    let router = url(&format!(
        "mqtts://router@127.0.0.1:{port}?ca={ca}&password_file={}",
        repo().join("examples/mosquitto/router.password").display()
    ));
    let mut sub = D2cSubscriber::start(&router, client_id);
    until_subscribed(&mut sub, 3)
        .await
        .unwrap_or_else(|e| panic!("router never subscribed: {e:?}\n{}", server.log_text()));
    sub
}

#[test]
fn mqtt_over_tls_with_passwords_and_client_certificates() {
    let dir = TempDir::new("tls-mqtt");
    let pki = Pki::new(&dir.0, "main");
    let (server, port, cert_port) = tls_mosquitto(&dir, &pki);
    let examples = repo().join("examples/mosquitto");
    let ca = pki.ca.display().to_string();
    let rt = runtime();
    rt.block_on(async {
        let mut sub = tls_router(port, &ca, "router-tls", &server).await;

        // Device dev-0 by password, through the MQTT sink (its topic is the device's).
        let device_password = examples.join("device.password");
        let dev0 = url(&format!(
            "mqtts://dev-0@127.0.0.1:{port}/devices/dev-0/messages/events?ca={ca}&password_file={}",
            device_password.display()
        ));
        // Device dev-1 by client certificate (CN dev-1), no password.
        let (cert, key) = pki.issue("dev-1", "dev-1", &[]);
        let dev1 = url(&format!(
            "mqtts://127.0.0.1:{cert_port}/devices/dev-1/messages/events?ca={ca}&cert={}&key={}",
            cert.display(),
            key.display()
        ));
        for (u, id) in [(dev0, "m-dev-0"), (dev1, "m-dev-1")] {
            tokio::task::spawn_blocking(move || {
                let mut sink = MqttSink::new(&u, u.path.split('/').nth(1).unwrap()).unwrap();
                sink.write_batch(&[envelope(id)])
                    .unwrap_or_else(|e| panic!("{u}: {e:?}"));
            })
            .await
            .unwrap();
        }
        let acker = sub.acker();
        let mut topics = Vec::new();
        while topics.len() < 2 {
            match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
                Ok(Some(Incoming::Publish(p))) => {
                    acker.ack(&p).await.unwrap();
                    topics.push(p.topic.clone());
                }
                Ok(Some(_)) => {}
                other => panic!("got {topics:?}, then {other:?}\n{}", server.log_text()),
            }
        }
        topics.sort();
        assert!(
            topics[0].starts_with("devices/dev-0/messages/events/"),
            "{topics:?}"
        );
        assert!(topics[0].contains("m-dev-0"), "{topics:?}");
        assert!(
            topics[1].starts_with("devices/dev-1/messages/events/"),
            "{topics:?}"
        );
        sub.disconnect().await;

        // A CA that did not sign the broker's certificate: refused, and said why.
        let other = Pki::new(&dir.0, "other");
        let wrong_ca = url(&format!(
            "mqtts://router@127.0.0.1:{port}?ca={}&password_file={}",
            other.ca.display(),
            examples.join("router.password").display()
        ));
        let mut sub = D2cSubscriber::start(&wrong_ca, "router-wrong-ca");
        let errors = until_subscribed(&mut sub, 1).await.unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.to_lowercase().contains("certificate")),
            "{errors:?}"
        );

        // A wrong password: refused, and the password is in no message.
        std::env::set_var("TLS_TEST_WRONG_PASSWORD", "not-the-password-xyzzy");
        let wrong = url(&format!(
            "mqtts://router@127.0.0.1:{port}?ca={ca}&password_env=TLS_TEST_WRONG_PASSWORD"
        ));
        let mut sub = D2cSubscriber::start(&wrong, "router-wrong-password");
        let errors = until_subscribed(&mut sub, 1).await.unwrap_err();
        assert!(errors.iter().any(|e| e.contains("refused")), "{errors:?}");
        assert!(!format!("{errors:?} {wrong} {wrong:?}").contains("xyzzy"));

        // The certificate listener without a client certificate.
        let anonymous = url(&format!("mqtts://127.0.0.1:{cert_port}?ca={ca}"));
        let mut sub = D2cSubscriber::start(&anonymous, "no-cert");
        assert!(until_subscribed(&mut sub, 1).await.is_err());

        // Plain MQTT to a TLS listener does not get through either.
        let plain = url(&format!(
            "mqtt://router@127.0.0.1:{port}?password_env=TLS_TEST_WRONG_PASSWORD"
        ));
        let mut sub = D2cSubscriber::start(&plain, "plain");
        assert!(until_subscribed(&mut sub, 1).await.is_err());
    });
    let log = server.log_text();
    assert!(
        !log.contains(ROUTER_PASSWORD),
        "the broker log shows a password"
    );
}

/// `device_fleet`, the load generator the end-to-end numbers come from, over TLS: each device
/// logs in by password on the TLS listener, and every message reaches a subscriber there.
#[test]
fn device_fleet_publishes_over_tls() {
    const N: usize = 300;
    let fleet = support::device_fleet();
    let dir = TempDir::new("tls-fleet");
    let pki = Pki::new(&dir.0, "main");
    let (server, port, _) = tls_mosquitto(&dir, &pki);
    let examples = repo().join("examples/mosquitto");
    let ca = pki.ca.display().to_string();
    let rt = runtime();
    rt.block_on(async {
        let mut sub = tls_router(port, &ca, "router-tls-fleet", &server).await;
        let devices = format!(
            "mqtts://dev@127.0.0.1:{port}?ca={ca}&password_file={}",
            examples.join("device.password").display()
        );
        tokio::task::spawn_blocking(move || support::run_device_fleet(&fleet, &devices, N, 3))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("over TLS: {e}\n{}", server.log_text()));
        let acker = sub.acker();
        let mut ids = std::collections::BTreeSet::new();
        while ids.len() < N {
            match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
                Ok(Some(Incoming::Publish(p))) => {
                    acker.ack(&p).await.unwrap();
                    let id = p
                        .topic
                        .split("$.mid=")
                        .nth(1)
                        .unwrap_or("")
                        .split('&')
                        .next();
                    ids.insert(id.unwrap_or("").to_string());
                }
                Ok(Some(_)) => {}
                other => panic!(
                    "{} of {N}, then {other:?}\n{}",
                    ids.len(),
                    server.log_text()
                ),
            }
        }
        assert_eq!(ids, (0..N).map(|i| format!("m-{i}")).collect());
        sub.disconnect().await;
    });
}

fn nats_tls_block(pki: &Pki, verify: bool) -> String {
    format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: {verify}\n}}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    )
}

async fn round_trip(client: &async_nats::Client, sink_url: &BrokerUrl, subject: &str) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut sub = client.subscribe(subject.to_string()).await.unwrap();
    client.flush().await.unwrap();
    let u = sink_url.clone();
    tokio::task::spawn_blocking(move || {
        let mut sink = NatsSink::new(&u).unwrap();
        sink.write_batch(&[envelope("m-nats")])
            .unwrap_or_else(|e| panic!("{u}: {e:?}"));
    })
    .await
    .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the sink's message")
        .unwrap();
    msg.payload.to_vec()
}

#[test]
fn nats_over_tls_with_users_tokens_client_certificates_and_jetstream() {
    let dir = TempDir::new("tls-nats");
    let pki = Pki::new(&dir.0, "nats");
    let password_file = dir.write("router.password", "nats-pw-secret\n");
    let token_file = dir.write("token", "nats-token-secret");
    let ca = pki.ca.display().to_string();

    // TLS with users.
    let port = free_port();
    let config = format!(
        "host: 127.0.0.1\nport: {port}\n{}authorization {{\n  users = [ {{ user: router, password: \"nats-pw-secret\" }} ]\n}}\n",
        nats_tls_block(&pki, false)
    );
    let server = Server::nats(&dir.0, "nats-users", &config, port);
    // TLS, client certificates, a token, JetStream.
    let js_port = free_port();
    let config = format!(
        "host: 127.0.0.1\nport: {js_port}\n{}authorization {{ token: \"nats-token-secret\" }}\n\
         jetstream {{ store_dir: \"{}\" }}\n",
        nats_tls_block(&pki, true),
        dir.0.join("js").display()
    );
    let js_server = Server::nats(&dir.0, "nats-js", &config, js_port);

    let rt = runtime();
    rt.block_on(async {
        let users = |path: &str, scheme: &str| {
            url(&format!(
                "{scheme}://router@127.0.0.1:{port}/{path}?ca={ca}&password_file={}",
                password_file.display()
            ))
        };
        let client = nats::connect(&users("", "nats+tls"))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log_text()));
        let body = round_trip(&client, &users("alerts", "nats+tls"), "alerts").await;
        assert_eq!(body, br#"{"n":1}"#);
        // `?tls=true` on nats:// is the same.
        let client = nats::connect(&url(&format!(
            "nats://router@127.0.0.1:{port}?tls=true&ca={ca}&password_file={}",
            password_file.display()
        )))
        .await
        .unwrap();
        assert_eq!(
            client.connection_state(),
            async_nats::connection::State::Connected
        );

        std::env::set_var("TLS_TEST_WRONG_NATS_PASSWORD", "wrong-nats-pw-plugh");
        let wrong = url(&format!(
            "nats+tls://router@127.0.0.1:{port}?ca={ca}&password_env=TLS_TEST_WRONG_NATS_PASSWORD"
        ));
        let err = nats::connect(&wrong).await.unwrap_err();
        assert!(!err.contains("plugh"), "{err}");
        assert!(err.to_lowercase().contains("author"), "{err}");
        let other = Pki::new(&dir.0, "other");
        let wrong_ca = url(&format!(
            "nats+tls://router@127.0.0.1:{port}?ca={}&password_file={}",
            other.ca.display(),
            password_file.display()
        ));
        assert!(nats::connect(&wrong_ca).await.is_err());

        // JetStream over TLS with a client certificate and a token from a file.
        let (cert, key) = pki.issue("router-client", "router", &[]);
        let js = |path: &str| {
            url(&format!(
                "jetstream+tls://127.0.0.1:{js_port}/{path}?ca={ca}&cert={}&key={}&token_file={}",
                cert.display(),
                key.display(),
                token_file.display()
            ))
        };
        let writer = JetStreamWriter::open(&js("HUB"))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", js_server.log_text()));
        let sent = envelope("m-js").message;
        let record = writer.records().record("dev-0", &sent, "m-js".into());
        let seq = writer
            .send(&record)
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
        assert_eq!(seq, 1);
        let settings = nats::ConsumerSettings::from_url(&js("HUB")).unwrap();
        let input = JetStreamInput::open(&js("HUB"), &settings).await.unwrap();
        let mut messages = input.messages().await.unwrap();
        use futures_util::StreamExt;
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the stored message")
            .unwrap()
            .unwrap();
        let mut read = hubroute::message::Message::default();
        nats::decode_record(&m.payload, &mut read).unwrap();
        assert_eq!(read.to_json_value(), sent.to_json_value());
        m.ack().await.unwrap();

        // Without the client certificate the server refuses, and the token is never shown.
        let no_cert = url(&format!(
            "nats+tls://127.0.0.1:{js_port}?ca={ca}&token_file={}",
            token_file.display()
        ));
        let err = nats::connect(&no_cert).await.unwrap_err();
        assert!(!err.contains("nats-token-secret"), "{err}");
        // A wrong token.
        let bad_token = dir.write("bad-token", "bad-token-frotz");
        let wrong = url(&format!(
            "nats+tls://127.0.0.1:{js_port}?ca={ca}&cert={}&key={}&token_file={}",
            cert.display(),
            key.display(),
            bad_token.display()
        ));
        let err = nats::connect(&wrong).await.unwrap_err();
        assert!(!err.contains("frotz"), "{err}");
    });
    for s in [&server, &js_server] {
        let log = s.log_text();
        assert!(!log.contains("nats-pw-secret") || log.contains("password: \"nats-pw-secret\""));
    }
}

/// URL mistakes fail before anything connects, with a stable code and no secret in the text.
#[test]
fn bad_tls_and_credential_urls_fail_at_start() {
    let dir = TempDir::new("tls-bad");
    let key_only = dir.write(
        "k.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let pki = Pki::new(&dir.0, "bad");
    for (text, code) in [
        ("mqtts://h?ca=/nonexistent/ca.pem".to_string(), "E0702"),
        (format!("mqtts://h?ca={}", key_only.display()), "E0703"),
        (
            format!(
                "mqtts://h?ca={}&cert={}&key={}",
                pki.ca.display(),
                pki.server_cert.display(),
                key_only.display()
            ),
            "E0703",
        ),
        ("nats://h?creds=/nonexistent.creds".to_string(), "E0702"),
        ("mqtt://u:hunter2-secret@h:x".to_string(), "E0701"),
        ("mqtt://h?token_env=HOME".to_string(), "E0701"),
    ] {
        let err = BrokerUrl::parse(&text).unwrap_err();
        assert!(err.starts_with(code), "{text}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
