//! NATS and JetStream: the log router processes share, and an endpoint sink.
//!
//! * The stream `NAME` (created if missing, file storage) holds subjects `NAME.>`; the bridge
//!   appends each stamped device message to `NAME.devices.{deviceId}` as one record: the message
//!   JSON (`systemProperties`, `appProperties`, `body`/`bodyBase64`, `source`) that
//!   [`Message::from_json_str`] reads, so the stream is readable by anything and loses nothing.
//! * [`JetStreamInput`] binds a durable pull consumer (explicit acks) that any number of router
//!   processes share: JetStream hands each message to one of them and redelivers what is not
//!   acknowledged within `ack_wait` (after a crash, or a `nak`).
//! * [`NatsSink`] publishes envelopes to a subject, core NATS (`nats://`, flushed) or JetStream
//!   (`jetstream://`, each publish acknowledged by the stream). Properties travel as headers named
//!   like the MQTT property bag (`$.ct`, `$.cdid`, application names as they are), or as the
//!   endpoint kind named by `?names=` spells them, names and values percent-encoded where they
//!   are not plain; the body is the payload.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use async_nats::HeaderMap;
use futures_util::future::try_join_all;

use super::{BrokerUrl, Scheme};
use crate::ingest::property_bag;
use crate::message::naming::PropertyNaming;
use crate::message::Message;
use crate::sink::{Envelope, Sink, SinkError};

/// How long connecting and each request may take before it counts as a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `url`'s server, retrying in the background after the first connection. TLS,
/// user and password, token or `.creds` file come from the URL.
pub async fn connect(url: &BrokerUrl) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new()
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .name("hubroute");
    if let Some(tls) = &url.tls {
        options = options
            .require_tls(true)
            .tls_client_config((*tls.client_config()).clone());
    }
    if let Some(user) = &url.user {
        let password = url.password.as_ref().map_or("", |p| p.expose());
        options = options.user_and_password(user.clone(), password.to_string());
    }
    if let Some(token) = &url.token {
        options = options.token(token.expose().to_string());
    }
    if let Some(creds) = &url.creds {
        // The file's text is a secret: say only which file and what went wrong.
        options = options.credentials_file(creds).await.map_err(|e| {
            format!(
                "{url}: creds={}: not a usable credentials file ({:?})",
                creds.display(),
                e.kind()
            )
        })?;
    }
    options
        .connect(url.address())
        .await
        .map_err(|e| format!("{url}: {e}"))
}

/// A subject token for a device id: NATS reserves `.`, `*`, `>` and whitespace in tokens, so
/// those (and `%` itself) are percent-encoded.
pub fn subject_token(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        if matches!(c, '.' | '*' | '>' | '%') || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// The stream a `jetstream://HOST:PORT/NAME` URL names, created with file storage and subjects
/// `NAME.>` if it does not exist.
pub async fn ensure_stream(
    js: &jetstream::Context,
    url: &BrokerUrl,
) -> Result<stream::Stream, String> {
    let name = stream_name(url)?;
    js.get_or_create_stream(stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("{url}: cannot open stream '{name}': {e}"))
}

fn stream_name(url: &BrokerUrl) -> Result<&str, String> {
    let name = url.path.trim_matches('/');
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if url.scheme != Scheme::JetStream || !valid {
        return Err(format!(
            "{url}: expected jetstream://HOST:PORT/STREAM with a stream name of letters, digits, - and _"
        ));
    }
    Ok(name)
}

/// Appends stamped device messages to a stream (the bridge's output). Cheap to clone.
#[derive(Clone)]
pub struct JetStreamWriter {
    js: jetstream::Context,
    stream: String,
}

impl JetStreamWriter {
    /// Connects and opens (or creates) the stream.
    pub async fn open(url: &BrokerUrl) -> Result<JetStreamWriter, String> {
        let client = connect(url).await?;
        let js = jetstream::new(client);
        ensure_stream(&js, url).await?;
        Ok(JetStreamWriter {
            stream: stream_name(url)?.to_string(),
            js,
        })
    }

    /// Sends `record` to the stream. Sends go out in call order, so a device's messages keep
    /// their order in the stream; await the returned [`Appended`] to know the stream stored it
    /// (many can be outstanding at once). Sending a record again (after a lost confirmation)
    /// does not duplicate it: the stream drops a resend of an id it already stored within its
    /// duplicate window (`Nats-Msg-Id`).
    pub async fn send(&self, record: &Record) -> Result<Appended, String> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", record.id.as_str());
        self.js
            .publish_with_headers(record.subject.clone(), headers, record.payload.clone())
            .await
            .map(Appended)
            .map_err(|e| format!("publish to stream {}: {e}", self.stream))
    }

    /// Builds this stream's records ([`Records`]).
    pub fn records(&self) -> Records {
        Records::new(&self.stream)
    }
}

/// One stamped device message as the stream keeps it: its subject, its JSON and its id. Cheap
/// to clone, and sent again as it is after a lost confirmation.
#[derive(Debug, Clone)]
pub struct Record {
    subject: async_nats::Subject,
    payload: bytes::Bytes,
    id: String,
}

impl Record {
    /// The record's subject: `STREAM.devices.{deviceId}` ([`subject_token`]).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The record's payload: the message JSON.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The record's stream message id (`Nats-Msg-Id`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Builds [`Record`]s one after another, reusing memory: each device's subject is made once
/// (up to [`Records::SUBJECTS_KEPT`] devices), and the JSON, written into a reused scratch
/// vector, is copied into one buffer that records are split off (a buffer is shared by the
/// records in it until all are dropped): a copy instead of an allocation per record.
pub struct Records {
    stream: String,
    subjects: std::collections::HashMap<String, async_nats::Subject>,
    json: Vec<u8>,
    buffer: bytes::BytesMut,
}

impl Records {
    /// Devices whose subjects are kept; beyond that the map starts over.
    pub const SUBJECTS_KEPT: usize = 4096;

    /// Records for stream `stream`.
    pub fn new(stream: &str) -> Records {
        Records {
            stream: stream.to_string(),
            subjects: std::collections::HashMap::new(),
            json: Vec::new(),
            buffer: bytes::BytesMut::new(),
        }
    }

    /// The record of `message` from `device_id`, under `id` (unique per message, the same when
    /// the message is sent again).
    pub fn record(&mut self, device_id: &str, message: &Message, id: String) -> Record {
        let subject = match self.subjects.get(device_id) {
            Some(s) => s.clone(),
            None => {
                if self.subjects.len() >= Self::SUBJECTS_KEPT {
                    self.subjects.clear();
                }
                let subject = async_nats::Subject::from(format!(
                    "{}.devices.{}",
                    self.stream,
                    subject_token(device_id)
                ));
                self.subjects.insert(device_id.to_string(), subject.clone());
                subject
            }
        };
        self.json.clear();
        message.write_json(&mut self.json);
        if self.buffer.capacity() < self.json.len() {
            self.buffer.reserve(self.json.len().max(RECORD_BUFFER));
        }
        self.buffer.extend_from_slice(&self.json);
        Record {
            subject,
            payload: self.buffer.split().freeze(),
            id,
        }
    }
}

/// The size of the buffers [`Records`] writes into: about fifty typical messages.
const RECORD_BUFFER: usize = 64 * 1024;

/// A message sent to the stream, not yet confirmed.
pub struct Appended(jetstream::context::PublishAckFuture);

impl Appended {
    /// Waits for the stream's acknowledgement; the message's stream sequence number.
    pub async fn confirmed(self) -> Result<u64, String> {
        self.0
            .await
            .map(|ack| ack.sequence)
            .map_err(|e| format!("the stream did not confirm: {e}"))
    }
}

/// Reads a record the bridge wrote (message JSON) into `into`, replacing it and reusing its
/// memory (a worker reads every record into one message, as `run` reads a file's lines).
pub fn decode_record(payload: &[u8], into: &mut Message) -> Result<(), String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("record is not UTF-8: {e}"))?;
    into.read_json_str(text).map_err(|e| e.to_string())
}

/// Settings of the durable consumer router processes share.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSettings {
    /// The durable consumer's name (`?consumer=`, default `hubroute`).
    pub name: String,
    /// Redelivery after this long without an acknowledgement (`?ack_wait=`, default 30 s).
    pub ack_wait: Duration,
    /// Most messages handed out and not yet acknowledged, over all processes
    /// (`?max_ack_pending=`, default 10,000).
    pub max_ack_pending: i64,
}

impl ConsumerSettings {
    /// Reads the settings from the URL's query.
    pub fn from_url(url: &BrokerUrl) -> Result<ConsumerSettings, String> {
        let name = url.param("consumer").unwrap_or("hubroute").to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "{url}: consumer name '{name}' must be letters, digits, - and _"
            ));
        }
        let max_ack_pending =
            match url.param("max_ack_pending") {
                Some(v) => v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("{url}: max_ack_pending={v} is not a positive number")
                })?,
                None => 10_000,
            };
        Ok(ConsumerSettings {
            name,
            ack_wait: url
                .duration_param("ack_wait")?
                .unwrap_or(Duration::from_secs(30)),
            max_ack_pending,
        })
    }
}

/// Messages a pull request asks for (async-nats asks again when half of them arrived).
pub const PULL_BATCH: usize = 1000;

/// A durable pull consumer on the bridge's stream, shared by every router process that names
/// the same consumer.
pub struct JetStreamInput {
    client: async_nats::Client,
    consumer: jetstream::consumer::Consumer<pull::Config>,
}

impl JetStreamInput {
    /// Connects, opens the stream and binds (creating if needed) the durable consumer.
    pub async fn open(url: &BrokerUrl, settings: &ConsumerSettings) -> Result<Self, String> {
        let client = connect(url).await?;
        let js = jetstream::new(client.clone());
        let stream = ensure_stream(&js, url).await?;
        let consumer = stream
            .get_or_create_consumer(
                &settings.name,
                pull::Config {
                    durable_name: Some(settings.name.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: settings.ack_wait,
                    max_ack_pending: settings.max_ack_pending,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("{url}: cannot bind consumer '{}': {e}", settings.name))?;
        Ok(JetStreamInput { client, consumer })
    }

    /// Waits until everything sent on the connection so far (acknowledgements: plain `ack`
    /// only queues them) is written to the server.
    pub async fn flush(&self) -> Result<(), String> {
        self.client.flush().await.map_err(|e| e.to_string())
    }

    /// The consumer's message stream: items are delivered messages to acknowledge with `ack`
    /// (or `ack_with(Nak)`), or errors to report (the stream goes on). Pulls up to
    /// [`PULL_BATCH`] messages per request, so a worker on a backlog asks rarely.
    pub async fn messages(&self) -> Result<pull::Stream, String> {
        self.consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|e| format!("cannot start consuming: {e}"))
    }
}

/// The headers a sink writes for `message` (see the module docs).
pub fn headers(message: &Message, naming: PropertyNaming) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in property_bag::pairs_named(message, naming) {
        h.insert(name.as_str(), value.unwrap_or_default().as_str());
    }
    h
}

/// An endpoint sink publishing to a NATS subject (see the module docs).
pub struct NatsSink {
    url: BrokerUrl,
    subject: String,
    runtime: tokio::runtime::Runtime,
    client: Option<async_nats::Client>,
}

impl NatsSink {
    /// A sink for `nats://HOST:PORT/SUBJECT` or `jetstream://HOST:PORT/SUBJECT` (a stream must
    /// capture the subject). Connects lazily, so a server that is down at start is retried like
    /// any later outage.
    pub fn new(url: &BrokerUrl) -> Result<NatsSink, SinkError> {
        let subject = url.path.trim_matches('/').replace('/', ".");
        if subject.is_empty()
            || subject
                .split('.')
                .any(|t| t.is_empty() || t == "*" || t == ">")
        {
            return Err(SinkError::Fatal(format!(
                "{url}: the NATS sink needs a subject without wildcards (nats://HOST:PORT/SUBJECT)"
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SinkError::Fatal(format!("{url}: cannot start a runtime: {e}")))?;
        super::property_naming(url).map_err(SinkError::Fatal)?;
        Ok(NatsSink {
            url: url.clone(),
            subject,
            runtime,
            client: None,
        })
    }

    async fn publish(
        client: &async_nats::Client,
        url: &BrokerUrl,
        subject: &str,
        batch: &[Envelope],
    ) -> Result<(), String> {
        // Checked when the sink was made.
        let naming = super::property_naming(url).unwrap_or_default();
        if url.scheme == Scheme::JetStream {
            let js = jetstream::new(client.clone());
            let mut acks = Vec::with_capacity(batch.len());
            for e in batch {
                let ack = js
                    .publish_with_headers(
                        subject.to_string(),
                        headers(&e.message, naming),
                        e.message.body.clone().into(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                acks.push(std::future::IntoFuture::into_future(ack));
            }
            try_join_all(acks).await.map_err(|e| e.to_string())?;
        } else {
            for e in batch {
                client
                    .publish_with_headers(
                        subject.to_string(),
                        headers(&e.message, naming),
                        e.message.body.clone().into(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
            client.flush().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Sink for NatsSink {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        let url = &self.url;
        let subject = &self.subject;
        let client = &mut self.client;
        self.runtime
            .block_on(async {
                if client.is_none() {
                    *client = Some(connect(url).await?);
                }
                let c = client.as_ref().expect("connected above");
                let limit = REQUEST_TIMEOUT * 2;
                match tokio::time::timeout(limit, Self::publish(c, url, subject, batch)).await {
                    Ok(r) => r.map_err(|e| format!("{url}: {e}")),
                    Err(_) => Err(format!("{url}: no confirmation within {limit:?}")),
                }
            })
            .map_err(|e| {
                // Start over with a fresh connection next time.
                self.client = None;
                SinkError::Retryable(e)
            })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Core NATS batches are flushed and JetStream ones acknowledged before write_batch returns.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(device: &str, body: &str) -> Message {
        let mut m = Message::default();
        m.system_properties
            .insert("connectionDeviceId", Some(device.into()));
        m.app_properties.insert("n", Some(body.len().to_string()));
        m.body = body.as_bytes().to_vec();
        m
    }

    #[test]
    fn records_keep_their_own_payload_while_the_buffer_goes_on() {
        let mut records = Records::new("HUB");
        let bodies: Vec<String> = (0..200)
            .map(|i| format!("{{\"i\":{i}}}").repeat(i % 7 + 1))
            .collect();
        let mut kept = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let device = format!("dev.{}", i % 3);
            let m = message(&device, body);
            kept.push((records.record(&device, &m, format!("id-{i}")), m));
        }
        for (i, (record, m)) in kept.iter().enumerate() {
            let mut json = Vec::new();
            m.write_json(&mut json);
            assert_eq!(record.payload(), json.as_slice(), "record {i}");
            assert_eq!(record.subject(), format!("HUB.devices.dev%2E{}", i % 3));
            assert_eq!(record.id(), format!("id-{i}"));
            let read = {
                let mut back = Message::default();
                decode_record(record.payload(), &mut back).unwrap();
                back
            };
            assert_eq!(read.body, m.body, "record {i} reads back");
        }
    }

    #[test]
    fn subjects_kept_start_over_beyond_the_limit() {
        let mut records = Records::new("S");
        let m = message("d", "{}");
        for i in 0..Records::SUBJECTS_KEPT + 10 {
            let device = format!("d{i}");
            let r = records.record(&device, &m, String::new());
            assert_eq!(r.subject(), format!("S.devices.d{i}"));
        }
        assert!(records.subjects.len() <= Records::SUBJECTS_KEPT);
        assert_eq!(
            records.record("d1", &m, String::new()).subject(),
            "S.devices.d1"
        );
    }
}
