//! MQTT: IoT Hub's device-to-cloud topics as an input, and an endpoint sink, over rumqttc.
//!
//! * [`D2cSubscriber`] subscribes (QoS 1) to [`crate::ingest::D2C_TOPIC_FILTERS`] with a
//!   persistent session and manual acknowledgements: the broker keeps a message until the router
//!   says it is safe (appended to the stream, or delivered to every endpoint), and keeps queueing
//!   for the router's client id while it is away.
//! * [`MqttSink`] publishes each envelope with QoS 1 to `{TOPIC}/{property bag}`, the topic
//!   convention IoT Hub uses towards devices (`devices/{id}/messages/devicebound/{bag}`), with the
//!   bag written by [`crate::ingest::property_bag::encode`]. A batch counts as written only when
//!   the broker acknowledged every publish (PUBACK); when the broker goes part way through
//!   one, its retry starts after the leading publishes it acknowledged. Subscribers use
//!   `TOPIC/#`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, Client, Connection, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, Publish, QoS, TlsConfiguration, Transport,
};

use super::BrokerUrl;
use crate::ingest::{property_bag, D2C_TOPIC_FILTERS};
use crate::message::naming::PropertyNaming;
use crate::sink::{Envelope, Sink, SinkError};

/// The largest packet either side may send: IoT Hub's 256 KB message limit plus a generous
/// allowance for the topic and its property bag.
const MAX_PACKET: usize = 512 * 1024;

/// Connection options for `url`: TLS (the configuration built when the URL was parsed) and
/// user name and password when the URL has them.
fn options(url: &BrokerUrl, client_id: &str, persistent: bool) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, url.host.clone(), url.port);
    o.set_keep_alive(Duration::from_secs(15));
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    o.set_clean_session(!persistent);
    if let Some(user) = &url.user {
        let password = url.password.as_ref().map_or("", |p| p.expose());
        o.set_credentials(user.clone(), password);
    }
    if let Some(tls) = &url.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.client_config(),
        )));
    }
    o
}

/// The connection's error, said so that a refused login reads as one (rumqttc's text for a
/// CONNACK refusal is a bare code).
fn connection_error(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => format!(
            "the broker refused the connection ({code:?}): check the user name, password or \
             client certificate, and the broker's ACL"
        ),
        other => other.to_string(),
    }
}

/// Subscribes to every device's device-to-cloud topic. Messages must be acknowledged with
/// [`MqttAcker::ack`] once they are safe; until then the broker redelivers them to the next
/// session with the same client id.
///
/// The connection is driven by its own task, never by the consumer: acknowledgements travel
/// through the same event loop as incoming messages, so a consumer that waits (for a stream, a
/// sink, an in-flight limit) must not be what keeps the loop turning, or neither would move.
/// Flow control is the broker's: it sends only so many unacknowledged messages at a time
/// (Mosquitto's `max_inflight_messages`) and queues the rest for the session, up to a limit
/// past which Mosquitto drops them; the subscriber watches Mosquitto's drop counter
/// ([`DROPPED_TOPIC`]) and warns (W0702) when it rises.
pub struct D2cSubscriber {
    client: AsyncClient,
    queue: Arc<Mutex<AckQueue>>,
    incoming: tokio::sync::mpsc::UnboundedReceiver<Incoming>,
    driver: tokio::task::JoinHandle<()>,
}

/// What [`D2cSubscriber::next`] saw.
#[derive(Debug)]
pub enum Incoming {
    /// The broker confirmed the subscription (after each connection): devices' messages flow
    /// from now on.
    Subscribed,
    /// A device's publish, to acknowledge once it is safe.
    Publish(Publish),
    /// The connection failed; it is retried after a second.
    Error(String),
}

/// Acknowledges publishes received by a [`D2cSubscriber`]; cheap to clone and send to other
/// tasks.
#[derive(Clone)]
pub struct MqttAcker {
    client: AsyncClient,
    queue: Arc<Mutex<AckQueue>>,
}

/// PUBACKs waiting for the connection's task, which writes them together.
///
/// rumqttc's event loop writes each request it takes from its queue with a system call of its
/// own (bytebeamio/rumqtt#810), so a router acknowledging a commit of a thousand messages made a
/// thousand writes, and the broker a thousand reads. Now the first PUBACK after a quiet moment
/// goes through rumqttc's queue, which wakes the event loop; those that come while it is on
/// its way wait here, and [`drive`] writes them all with one flush as soon as the loop returns
/// (it returns for every packet and request, that one included).
#[derive(Default)]
struct AckQueue {
    /// Packet ids of QoS 1 publishes to acknowledge.
    pkids: Vec<u16>,
    /// Whether a PUBACK sent through rumqttc's queue may not have woken the loop yet: while
    /// so, the next ones wait here.
    waking: bool,
}

fn lock(queue: &Mutex<AckQueue>) -> std::sync::MutexGuard<'_, AckQueue> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MqttAcker {
    /// Sends the PUBACK for `publish` (a no-op for QoS 0): queued, to be written with the others
    /// of its moment (rumqttc writes each request on its own; see the connection task).
    pub async fn ack(&self, publish: &Publish) -> Result<(), String> {
        if publish.qos == QoS::AtLeastOnce {
            let mut queue = lock(&self.queue);
            if queue.waking {
                queue.pkids.push(publish.pkid);
                return Ok(());
            }
            queue.waking = true;
        }
        let sent = self.client.ack(publish).await.map_err(|e| e.to_string());
        if sent.is_err() {
            lock(&self.queue).waking = false;
        }
        sent
    }

    /// Publishes `payload` to `topic` with QoS 0 (an answer to a device, which a lost
    /// connection makes the device ask again for anyway).
    pub async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), String> {
        self.client
            .publish(topic, QoS::AtMostOnce, false, payload)
            .await
            .map_err(|e| e.to_string())
    }
}

impl D2cSubscriber {
    /// Starts a subscriber with client id `client_id` (keep it stable: the broker's session, and
    /// the messages it holds for the router, belong to it). Must be called inside a tokio
    /// runtime, which runs the connection's task.
    pub fn start(url: &BrokerUrl, client_id: &str) -> D2cSubscriber {
        D2cSubscriber::start_with(url, client_id, &[])
    }

    /// [`D2cSubscriber::start`], also subscribed to `extra` filters (the router's twin patch
    /// topics, [`crate::twin::mqtt_topic::REPORTED_FILTERS`]).
    pub fn start_with(
        url: &BrokerUrl,
        client_id: &str,
        extra: &'static [&'static str],
    ) -> D2cSubscriber {
        let mut o = options(url, client_id, true);
        o.set_manual_acks(true);
        let (client, eventloop) = AsyncClient::new(o, 1024);
        let (tx, incoming) = tokio::sync::mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(AckQueue::default()));
        let driver = tokio::spawn(drive(
            client.clone(),
            eventloop,
            tx,
            extra,
            Arc::clone(&queue),
        ));
        D2cSubscriber {
            client,
            queue,
            incoming,
            driver,
        }
    }

    /// The acknowledger for what [`Self::next`] returns.
    pub fn acker(&self) -> MqttAcker {
        MqttAcker {
            client: self.client.clone(),
            queue: Arc::clone(&self.queue),
        }
    }

    /// The next thing the connection saw (`None` once it is shut down).
    pub async fn next(&mut self) -> Option<Incoming> {
        self.incoming.recv().await
    }

    /// What the connection saw, if something is at hand now (without waiting).
    pub fn try_next(&mut self) -> Option<Incoming> {
        self.incoming.try_recv().ok()
    }

    /// Disconnects cleanly (the broker keeps the session and what is not acknowledged).
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        if tokio::time::timeout(Duration::from_secs(2), self.driver)
            .await
            .is_err()
        {
            // The task is dropped with the runtime.
        }
    }
}

/// Polls the connection until the subscriber is gone, forwarding what matters; subscribes after
/// every (re)connection.
async fn drive(
    client: AsyncClient,
    mut eventloop: EventLoop,
    tx: tokio::sync::mpsc::UnboundedSender<Incoming>,
    extra: &'static [&'static str],
    queue: Arc<Mutex<AckQueue>>,
) {
    let mut drops = DropWatch::default();
    let mut acks = Vec::new();
    loop {
        let polled = eventloop.poll().await;
        write_queued_acks(&mut eventloop, &queue, &mut acks).await;
        let seen = match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let filters = D2C_TOPIC_FILTERS
                    .iter()
                    .chain(extra)
                    .map(|f| rumqttc::SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce))
                    // In the same request, so there is one SUBACK; a broker that denies it
                    // (no $SYS, or an ACL) only fails that filter.
                    .chain([rumqttc::SubscribeFilter::new(
                        DROPPED_TOPIC.to_string(),
                        QoS::AtMostOnce,
                    )]);
                // Only queues the request: the next poll sends it.
                let _ = client.try_subscribe_many(filters);
                continue;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => Incoming::Subscribed,
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == DROPPED_TOPIC => {
                drops.saw(&p.payload);
                continue;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Incoming::Publish(p),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                let text = connection_error(&e);
                if tx.send(Incoming::Error(text)).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if tx.send(seen).is_err() {
            return;
        }
    }
}

/// Writes the PUBACKs waiting in `queue` with one flush (see [`AckQueue`]); `spare` keeps
/// its memory for the next time. On a connection that is down they wait for the next one, as
/// rumqttc's queue would have kept them.
async fn write_queued_acks(
    eventloop: &mut EventLoop,
    queue: &Mutex<AckQueue>,
    spare: &mut Vec<u16>,
) {
    let Some(network) = eventloop.network.as_mut() else {
        return;
    };
    {
        let mut queue = lock(queue);
        queue.waking = false;
        if queue.pkids.is_empty() {
            return;
        }
        std::mem::swap(&mut queue.pkids, spare);
    }
    for pkid in spare.drain(..) {
        // A failed write is the connection's failure, which the next poll reports; the
        // broker redelivers what was not acknowledged.
        if network
            .write(Packet::PubAck(rumqttc::PubAck::new(pkid)))
            .await
            .is_err()
        {
            // (The rest of `spare` goes with the drain.)
            return;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), network.flush()).await;
}

/// Mosquitto's count of QoS 1 and 2 messages it dropped because a client's queue was full
/// (`max_queued_messages` beyond `max_inflight_messages`), published every `sys_interval`
/// (10 s by default). It is the only sign a subscriber gets of such a loss: each device had its
/// PUBACK, and MQTT 3.1.1 tells the subscriber nothing.
pub const DROPPED_TOPIC: &str = "$SYS/broker/publish/messages/dropped";

/// Watches [`DROPPED_TOPIC`] and says loudly when the broker has dropped messages: once at
/// the first reading if the count is not zero (the broker may have dropped this router's queue
/// while it was away), then whenever it rises. The count is the broker's, over all clients.
#[derive(Default)]
struct DropWatch {
    /// The last count said (or seen at zero).
    seen: Option<u64>,
}

impl DropWatch {
    fn saw(&mut self, payload: &[u8]) {
        let Some(now) = std::str::from_utf8(payload)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        else {
            return;
        };
        let before = self.seen.unwrap_or(0);
        if now > before {
            let what = match self.seen {
                None => format!("the broker has dropped {now} QoS 1 messages since it started"),
                Some(_) => format!(
                    "the broker dropped {} QoS 1 messages ({DROPPED_TOPIC} went from {before} \
                     to {now})",
                    now - before
                ),
            };
            tracing::warn!(
                "{}: {what}, for this router or another client: devices got their PUBACKs, but \
                 Mosquitto discards what no longer fits a client's queue (max_queued_messages, \
                 default 1000, beyond max_inflight_messages, default 20), also while the \
                 client is away. Run Mosquitto with examples/mosquitto/hubroute.conf \
                 (max_inflight_messages 2000, max_queued_messages 0) or raise those two; see \
                 the README",
                super::codes::BROKER_DROPPED,
            );
        }
        self.seen = Some(before.max(now));
    }
}

/// An endpoint sink publishing to an MQTT broker (see the module docs for the topic layout).
pub struct MqttSink {
    url: BrokerUrl,
    client_id: String,
    /// `None` after a failure: the next batch starts a fresh connection, so no stale in-flight
    /// publish of a failed batch can be mistaken for an acknowledgement of the current one.
    session: Option<(Client, Connection)>,
    /// How long a batch may wait for its acknowledgements.
    timeout: Duration,
    /// After a batch failed part way: its first and last acknowledged envelopes' keys and
    /// how many leading envelopes the broker acknowledged. The caller retries the whole
    /// batch; those are not published again (fewer duplicates, still at least once).
    resume: Option<Resume>,
    /// Whose spelling system property names take in the bag (`?names=`; see
    /// [`super::property_naming`]).
    naming: PropertyNaming,
}

impl MqttSink {
    /// A sink for `mqtt://HOST:PORT/TOPIC`; connects lazily, so a broker that is down at start
    /// is retried like any later outage.
    pub fn new(url: &BrokerUrl, client_id: &str) -> Result<MqttSink, SinkError> {
        let topic = url.path.trim_end_matches('/');
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(SinkError::Fatal(format!(
                "{url}: the MQTT sink needs a topic without wildcards (mqtt://HOST:PORT/TOPIC)"
            )));
        }
        let naming = super::property_naming(url).map_err(SinkError::Fatal)?;
        Ok(MqttSink {
            naming,
            url: url.clone(),
            client_id: client_id.to_string(),
            session: None,
            timeout: Duration::from_secs(10),
            resume: None,
        })
    }

    /// Publishes `batch`, each envelope once acknowledged; on `Err`, also how many leading
    /// envelopes the broker acknowledged.
    fn publish_all(&mut self, batch: &[Envelope]) -> Result<(), (String, usize)> {
        let (client, connection) = self.session.get_or_insert_with(|| {
            Client::new(
                options(&self.url, &self.client_id, false),
                batch.len().max(64),
            )
        });
        let topic = self.url.path.trim_end_matches('/');
        let deadline = Instant::now() + self.timeout;
        let mut queued = 0;
        // The client sends the queued publishes in order: the nth outgoing publish is
        // batch[n], and its packet id says which one a PUBACK is for.
        let mut sent = 0;
        let mut in_flight: HashMap<u16, usize> = HashMap::new();
        let mut acked = vec![false; batch.len()];
        let mut acked_count = 0;
        let prefix = |acked: &[bool]| acked.iter().take_while(|a| **a).count();
        while acked_count < batch.len() {
            // Queue as many publishes as the request channel takes, then drive the connection.
            while queued < batch.len() {
                let e = &batch[queued];
                let bag = property_bag::encode_named(&e.message, self.naming);
                let t = format!("{topic}/{bag}");
                match client.try_publish(t, QoS::AtLeastOnce, false, e.message.body.clone()) {
                    Ok(()) => queued += 1,
                    Err(_) => break,
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err((
                    format!(
                        "{}: {acked_count} of {} publishes acknowledged within {:?}",
                        self.url,
                        batch.len(),
                        self.timeout
                    ),
                    prefix(&acked),
                ));
            }
            match connection.recv_timeout(left) {
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    in_flight.insert(pkid, sent);
                    sent += 1;
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(i) = in_flight.remove(&ack.pkid) {
                        if let Some(a) = acked.get_mut(i) {
                            *a = true;
                            acked_count += 1;
                        }
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err((
                        format!("{}: {}", self.url, connection_error(&e)),
                        prefix(&acked),
                    ))
                }
                Err(e) => return Err((format!("{}: {e:?}", self.url), prefix(&acked))),
            }
        }
        Ok(())
    }
}

/// What [`MqttSink`] remembers of a batch that failed part way.
struct Resume {
    first: Key,
    last: Key,
    acked: usize,
}

/// What tells an envelope from another in a retried batch: its sequence number, message id
/// and acceptance time.
#[derive(PartialEq)]
struct Key(u64, Option<String>, std::time::SystemTime);

impl Key {
    fn of(e: &Envelope) -> Key {
        Key(
            e.sequence,
            e.message
                .system_properties
                .get(crate::message::names::MESSAGE_ID)
                .flatten()
                .map(str::to_string),
            e.enqueued_time,
        )
    }
}

impl Sink for MqttSink {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        if let Some(too_big) = batch.iter().find(|e| e.message.body.len() > MAX_PACKET / 2) {
            return Err(SinkError::Fatal(format!(
                "{}: a {} byte body is larger than the MQTT sink's packet limit",
                self.url,
                too_big.message.body.len()
            )));
        }
        // The retry of a batch that failed part way starts after what the broker has.
        let skip = match self.resume.take() {
            Some(r)
                if r.acked <= batch.len()
                    && Key::of(&batch[0]) == r.first
                    && Key::of(&batch[r.acked - 1]) == r.last =>
            {
                r.acked
            }
            _ => 0,
        };
        let rest = &batch[skip..];
        self.publish_all(rest).map_err(|(e, acked)| {
            self.session = None;
            let acked = skip + acked;
            if acked > 0 {
                self.resume = Some(Resume {
                    first: Key::of(&batch[0]),
                    last: Key::of(&batch[acked - 1]),
                    acked,
                });
            }
            SinkError::Retryable(e)
        })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Every accepted batch was acknowledged by the broker already.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// Reads one MQTT packet: its type and its bytes after the fixed header.
    fn packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).ok()?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut d = [0u8; 1];
            s.read_exact(&mut d).ok()?;
            len |= usize::from(d[0] & 0x7f) << shift;
            shift += 7;
            if d[0] & 0x80 == 0 {
                break;
            }
        }
        let mut rest = vec![0u8; len];
        s.read_exact(&mut rest).ok()?;
        Some((b[0] >> 4, rest))
    }

    /// A QoS 1 PUBLISH's packet id and body.
    fn publish(rest: &[u8]) -> ([u8; 2], String) {
        let topic = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let pkid = [rest[2 + topic], rest[3 + topic]];
        (pkid, String::from_utf8(rest[4 + topic..].to_vec()).unwrap())
    }

    /// A broker that fails part way through a batch, scripted at the packet level because
    /// no real broker can be made to: on its first connection it acknowledges `acks`
    /// publishes and then drops the connection; on the second it acknowledges all until the
    /// client goes. It returns the bodies each connection received.
    fn flaky_broker(listener: TcpListener, acks: usize) -> Vec<Vec<String>> {
        let mut received = Vec::new();
        for connection in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut bodies = Vec::new();
            while let Some((kind, rest)) = packet(&mut s) {
                match kind {
                    1 => s.write_all(&[0x20, 2, 0, 0]).unwrap(),
                    3 => {
                        let (pkid, body) = publish(&rest);
                        bodies.push(body);
                        if connection == 0 && bodies.len() > acks {
                            // Read what else comes, unanswered, and close (not reset, which
                            // would drop the acknowledgements still unread on the client).
                            s.set_read_timeout(Some(Duration::from_millis(300)))
                                .unwrap();
                            while let Some((_, rest)) = packet(&mut s) {
                                bodies.push(publish(&rest).1);
                            }
                            let _ = s.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        s.write_all(&[0x40, 2, pkid[0], pkid[1]]).unwrap();
                    }
                    12 => s.write_all(&[0xd0, 0]).unwrap(),
                    14 => break,
                    _ => {}
                }
            }
            received.push(bodies);
        }
        received
    }

    /// A batch the broker acknowledged only in part is retried from the first envelope it
    /// did not acknowledge: what it had is not published twice.
    #[test]
    fn a_retried_batch_skips_what_the_broker_acknowledged() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let broker = std::thread::spawn(move || flaky_broker(listener, 3));
        let url = BrokerUrl::parse(&format!("mqtt://127.0.0.1:{port}/out")).unwrap();
        let mut sink = MqttSink::new(&url, "resume-test").unwrap();
        sink.timeout = Duration::from_secs(10);
        let batch: Vec<Envelope> = (0..6u64)
            .map(|i| {
                let mut m = Message::default();
                m.system_properties
                    .insert("messageId", Some(format!("id-{i}")));
                m.body = format!("m{i}").into_bytes();
                let mut e = Envelope::new("out", m);
                e.sequence = i + 1;
                e
            })
            .collect();
        assert!(matches!(
            sink.write_batch(&batch),
            Err(SinkError::Retryable(_))
        ));
        sink.write_batch(&batch).unwrap();
        assert!(sink.resume.is_none());
        drop(sink);
        let received = broker.join().unwrap();
        assert_eq!(received[0][..3], ["m0", "m1", "m2"]);
        assert_eq!(received[1], ["m3", "m4", "m5"]);
    }
}
