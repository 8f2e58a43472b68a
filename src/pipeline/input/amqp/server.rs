//! The AMQP server: a task per connection, session and link (fe2o3-amqp's acceptors), handing
//! transfers to [`super::run`] through a channel and disposing of each when its outcome comes
//! back. Nothing here holds the pipeline: the routing loop does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAcceptor,
    SessionAcceptor,
};
use fe2o3_amqp::link::delivery::DeliveryInfo;
use fe2o3_amqp::types::definitions::{Error as AmqpError, ErrorCondition, Role};
use fe2o3_amqp::types::messaging::{Body, Message as AmqpMessage, TargetArchetype};
use fe2o3_amqp::types::primitives::{Array, Symbol, Value};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};
use fe2o3_amqp::{Receiver, Sender};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::super::live::AckCounts;
use super::cbs::{self, Tokens};
use super::{codes, map, Authenticate, Outcome, Transfer};
use crate::ingest::{Connection, D2cTopic};

/// What every connection shares.
pub(super) struct Shared {
    pub auth: Arc<dyn Authenticate>,
    pub transfers: mpsc::UnboundedSender<Transfer>,
    pub permits: Arc<Semaphore>,
    pub credit: u32,
    pub acks: Arc<AckCounts>,
}

/// The largest transfer a link takes (the link's `max-message-size`): four times IoT Hub's
/// 256 KB, so that a message over the limit is still received and *rejected* with
/// `amqp:link:message-size-exceeded`, as IoT Hub does, while a far larger one cannot make the
/// router buffer it (the link is detached instead).
const MAX_TRANSFER: u64 = 4 * crate::message::MAX_MESSAGE_SIZE as u64;

/// Accepts connections until shutdown, then waits briefly for them to close.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, peer, tls.clone(), Arc::clone(&shared), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!("AMQP: cannot accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

/// One device connection: TLS, SASL, then its sessions until it closes or the router stops.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tokens = Arc::new(Mutex::new(Tokens::default()));
    let sasl = DeviceSasl {
        auth: Arc::clone(&shared.auth),
        tokens: Arc::clone(&tokens),
    };
    let acceptor = ConnectionAcceptor::builder()
        .container_id("hubroute")
        .sasl_acceptor(sasl)
        .build();
    let opened = match tls {
        Some(tls) => match tls.accept(stream).await {
            Ok(s) => acceptor.accept(s).await,
            Err(e) => {
                tracing::warn!("AMQP {peer}: TLS handshake failed: {e}");
                return;
            }
        },
        None => acceptor.accept(stream).await,
    };
    let mut conn = match opened {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("AMQP {peer}: connection not opened: {e}");
            return;
        }
    };
    let state = Arc::new(ConnState {
        peer,
        tokens,
        replies: Mutex::new(None),
    });
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            incoming = conn.next_incoming_session() => match incoming {
                Some(incoming) => match SessionAcceptor::new().accept_incoming_session(incoming, &mut conn).await {
                    Ok(session) => {
                        sessions.spawn(session_links(session, Arc::clone(&state), Arc::clone(&shared), shutdown.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("AMQP {peer}: session not begun: {e}");
                        break;
                    }
                },
                None => break,
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    sessions.abort_all();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn.close()).await;
}

/// What the links of one connection share: its tokens and its CBS reply link.
struct ConnState {
    peer: SocketAddr,
    tokens: Arc<Mutex<Tokens>>,
    replies: Mutex<Option<mpsc::UnboundedSender<AmqpMessage<Body<Value>>>>>,
}

/// What a link asks for, read from its attach.
enum Wanted {
    /// The device's sender to `$cbs` (put-token requests).
    CbsRequests,
    /// The device's receiver from `$cbs` (answers).
    CbsReplies,
    /// The device's sender to its events address.
    Events {
        device: String,
        module: Option<String>,
        address: String,
    },
    /// Anything else.
    Other(String),
}

fn wanted(attach: &fe2o3_amqp::types::performatives::Attach) -> Wanted {
    let target = attach.target.as_deref().and_then(|t| match t {
        TargetArchetype::Target(t) => t.address.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    });
    let source = attach.source.as_deref().and_then(|s| s.address.clone());
    match attach.role {
        Role::Sender => {
            let Some(address) = target else {
                return Wanted::Other("a sender link without a target address".into());
            };
            if address == "$cbs" {
                return Wanted::CbsRequests;
            }
            match events_identity(&address) {
                Some((device, module)) => Wanted::Events {
                    device,
                    module,
                    address,
                },
                None => Wanted::Other(format!(
                    "this router takes device-to-cloud messages at /devices/{{id}}/messages/events only, not '{address}'"
                )),
            }
        }
        Role::Receiver => match source.as_deref() {
            Some("$cbs") => Wanted::CbsReplies,
            other => Wanted::Other(format!(
                "this router sends only CBS answers (source '$cbs'), not from '{}'",
                other.unwrap_or("")
            )),
        },
    }
}

/// The device and module of an events address: `/devices/{id}/messages/events` or
/// `/devices/{id}/modules/{mid}/messages/events`, with or without `amqps://host` before it.
pub(super) fn events_identity(address: &str) -> Option<(String, Option<String>)> {
    let path = match address.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p)?,
        None => address.trim_start_matches('/'),
    };
    let path = path.trim_end_matches('/');
    let topic = D2cTopic::parse(path).ok()?;
    if !topic.property_bag.is_empty() {
        return None;
    }
    Some((
        topic.device_id.to_string(),
        topic.module_id.map(str::to_string),
    ))
}

/// Accepts the links of one session, each in its own task.
async fn session_links(
    mut session: ListenerSessionHandle,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = LinkAcceptor::builder()
        .max_message_size(MAX_TRANSFER)
        .build();
    let mut links = JoinSet::new();
    let peer = state.peer;
    loop {
        let attach = tokio::select! {
            a = session.next_incoming_attach() => match a { Some(a) => a, None => break },
            Some(_) = links.join_next(), if !links.is_empty() => continue,
            _ = shutdown.changed() => break,
        };
        let mut attach = attach;
        let want = wanted(&attach);
        if matches!(attach.role, Role::Receiver) && attach.target.is_none() {
            // Proton's receivers may leave the target out; fe2o3's sender wants one (any).
            attach.target = Some(Box::new(TargetArchetype::Target(
                fe2o3_amqp::types::messaging::Target::default(),
            )));
        }
        let link = match acceptor.accept_incoming_attach(attach, &mut session).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("AMQP {peer}: link not attached: {e} ({e:?})");
                continue;
            }
        };
        match (want, link) {
            (Wanted::CbsRequests, LinkEndpoint::Receiver(r)) => {
                links.spawn(cbs_requests(
                    r,
                    Arc::clone(&state),
                    Arc::clone(&shared),
                    shutdown.clone(),
                ));
            }
            (Wanted::CbsReplies, LinkEndpoint::Sender(s)) => {
                let (tx, rx) = mpsc::unbounded_channel();
                *state.replies.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
                links.spawn(cbs_replies(s, rx, shutdown.clone()));
            }
            (
                Wanted::Events {
                    device,
                    module,
                    address,
                },
                LinkEndpoint::Receiver(r),
            ) => match authorize(&state, &shared, &device, module.as_deref()) {
                Ok((generation, expires)) => {
                    let link = EventsLink {
                        connection: Connection {
                            auth_method: super::sas_auth_method(module.is_some()),
                            device_id: device,
                            module_id: module,
                            generation_id: generation,
                        },
                        address,
                        expires,
                        state: Arc::clone(&state),
                        shared: Arc::clone(&shared),
                    };
                    links.spawn(link.run(r, shutdown.clone()));
                }
                Err(why) => {
                    tracing::warn!(
                        "AMQP {peer}: [{}] link to {address} refused: {why}",
                        codes::UNAUTHORIZED
                    );
                    refuse(
                        LinkEndpoint::Receiver(r),
                        "amqp:unauthorized-access",
                        format!("{} {why}", codes::UNAUTHORIZED),
                    )
                    .await;
                }
            },
            (Wanted::Other(why), link) => {
                tracing::warn!("AMQP {peer}: [{}] link refused: {why}", codes::LINK_REFUSED);
                refuse(
                    link,
                    "amqp:not-found",
                    format!("{} {why}", codes::LINK_REFUSED),
                )
                .await;
            }
            (_, link) => {
                refuse(link, "amqp:not-allowed", "unexpected link role".to_string()).await;
            }
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while links.join_next().await.is_some() {}
    })
    .await;
    links.abort_all();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), session.end()).await;
}

/// The generation id and token expiry for a device link, from the newest token of the
/// connection that authorizes it, or why none does.
fn authorize(
    state: &ConnState,
    shared: &Shared,
    device: &str,
    module: Option<&str>,
) -> Result<(String, Option<SystemTime>), String> {
    let tokens = state.tokens.lock().unwrap_or_else(|p| p.into_inner());
    let now = SystemTime::now();
    let mut last_error = None;
    let found = tokens.find(
        |token| match shared.auth.authenticate(token, device, module, now) {
            Ok(a) => Some(a),
            Err(e) => {
                last_error = Some(e);
                None
            }
        },
    );
    match found {
        Some((token, ok)) => Ok((ok.generation_id, cbs::token_expiry(&token))),
        None => Err(last_error.unwrap_or_else(|| {
            "no SAS token was given on this connection (CBS put-token on $cbs, or SASL PLAIN)"
                .to_string()
        })),
    }
}

/// Detaches (closes) a link with an error, as AMQP refuses a link after attaching it.
async fn refuse(link: LinkEndpoint, condition: &str, description: String) {
    let error = AmqpError::new(
        ErrorCondition::Custom(Symbol::from(condition)),
        Some(description),
        None,
    );
    let _ = match link {
        LinkEndpoint::Receiver(r) => r.close_with_error(error).await.map_err(|_| ()),
        LinkEndpoint::Sender(s) => s.close_with_error(error).await.map_err(|_| ()),
    };
}

/// Answers put-token requests on the device's `$cbs` sender link.
async fn cbs_requests(
    mut receiver: Receiver,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let delivery = tokio::select! {
            d = receiver.recv::<Body<Value>>() => match d { Ok(d) => d, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let _ = receiver.accept(&delivery).await;
        let answer = match cbs::parse_request(delivery.into_message()) {
            Err((id, why)) => {
                tracing::warn!(
                    "AMQP {}: [{}] CBS request refused: {why}",
                    state.peer,
                    codes::BAD_CBS_REQUEST
                );
                cbs::response(id, 400, &format!("{} {why}", codes::BAD_CBS_REQUEST))
            }
            Ok(put) => match cbs::audience_identity(&put.audience) {
                None => cbs::response(
                    put.message_id,
                    400,
                    &format!(
                        "{} the audience '{}' names no device: use HOST/devices/ID",
                        codes::BAD_CBS_REQUEST,
                        put.audience
                    ),
                ),
                Some((device, module)) => {
                    match shared.auth.authenticate(
                        &put.token,
                        &device,
                        module.as_deref(),
                        SystemTime::now(),
                    ) {
                        Ok(_) => {
                            state
                                .tokens
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .add(put.token);
                            cbs::response(put.message_id, 200, "OK")
                        }
                        Err(why) => {
                            tracing::warn!(
                                "AMQP {}: [{}] put-token for '{}' refused: {why}",
                                state.peer,
                                codes::UNAUTHORIZED,
                                put.audience
                            );
                            cbs::response(
                                put.message_id,
                                401,
                                &format!("{} {why}", codes::UNAUTHORIZED),
                            )
                        }
                    }
                }
            },
        };
        let replies = state.replies.lock().unwrap_or_else(|p| p.into_inner());
        match replies.as_ref() {
            Some(tx) => {
                let _ = tx.send(answer);
            }
            None => tracing::warn!(
                "AMQP {}: a CBS request came before a link from $cbs to answer on; not answered",
                state.peer
            ),
        }
    }
    let _ = receiver.close().await;
}

/// Sends CBS answers on the device's receiver link from `$cbs`.
async fn cbs_replies(
    mut sender: Sender,
    mut answers: mpsc::UnboundedReceiver<AmqpMessage<Body<Value>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let answer = tokio::select! {
            a = answers.recv() => match a { Some(a) => a, None => break },
            _ = shutdown.changed() => break,
        };
        if sender.send(answer).await.is_err() {
            break;
        }
    }
    let _ = sender.close().await;
}

/// A device's events link, authorized.
struct EventsLink {
    connection: Connection,
    address: String,
    expires: Option<SystemTime>,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

/// An outcome on its way back to the link, with the permit it releases once disposed.
struct Settled {
    info: DeliveryInfo,
    outcome: Outcome,
    _permit: OwnedSemaphorePermit,
}

impl EventsLink {
    async fn run(mut self, mut receiver: Receiver, mut shutdown: watch::Receiver<bool>) {
        let peer = self.state.peer;
        if receiver.set_credit(self.shared.credit).await.is_err() {
            return;
        }
        let (settled_tx, mut settled_rx) = mpsc::unbounded_channel::<Settled>();
        loop {
            let delivery = tokio::select! {
                biased;
                Some(s) = settled_rx.recv() => {
                    self.dispose(&receiver, s).await;
                    continue;
                }
                d = receiver.recv::<Body<Value>>() => match d {
                    Ok(d) => d,
                    Err(e) => {
                        if !matches!(e, fe2o3_amqp::link::RecvError::LinkStateError(_)) {
                            tracing::warn!("AMQP {peer}: {}: {e}", self.address);
                        }
                        break;
                    }
                },
                _ = shutdown.changed() => break,
            };
            if let Err(why) = self.still_authorized() {
                tracing::warn!(
                    "AMQP {peer}: [{}] {}: {why}; link detached",
                    codes::UNAUTHORIZED,
                    self.address
                );
                refuse(
                    LinkEndpoint::Receiver(receiver),
                    "amqp:unauthorized-access",
                    format!("{} {why}", codes::UNAUTHORIZED),
                )
                .await;
                return;
            }
            let format = delivery.message_format().unwrap_or(0);
            let (info, message) = delivery.into_parts();
            let device = self.connection.device_id.clone();
            let mapped = if format != 0 {
                Err(map::Refusal {
                    code: codes::UNSUPPORTED_CONTENT,
                    reason: format!(
                        "message format {format:#x} (a batch of messages, as the SDKs' \
                         SendEventBatch sends) is not supported; send the messages one by one"
                    ),
                    condition: "amqp:not-implemented",
                    body: None,
                })
            } else {
                map::to_message(message, &self.connection, SystemTime::now(), &mut |n| {
                    crate::ingest::log_spoofing_property(&device, n)
                })
            };
            // Wait for room in the window, settling what comes back meanwhile.
            let permit = loop {
                tokio::select! {
                    p = Arc::clone(&self.shared.permits).acquire_owned() => match p {
                        Ok(p) => break Some(p),
                        Err(_) => break None,
                    },
                    Some(s) = settled_rx.recv() => self.dispose(&receiver, s).await,
                }
            };
            let Some(permit) = permit else { break };
            let reply = settled_tx.clone();
            let transfer = Transfer {
                message: mapped,
                origin: serde_json::json!({
                    "amqp": self.address,
                    "peer": peer.to_string(),
                    "connectionDeviceId": self.connection.device_id,
                }),
                settle: Box::new(move |outcome| {
                    let _ = reply.send(Settled {
                        info,
                        outcome,
                        _permit: permit,
                    });
                }),
            };
            if let Err(refused) = self.shared.transfers.send(transfer) {
                // The router is stopping: the device sends it again.
                (refused.0.settle)(Outcome::Released);
            }
        }
        // Outcomes already decided are still sent while the link is open.
        while let Ok(s) = settled_rx.try_recv() {
            self.dispose(&receiver, s).await;
        }
        let _ = receiver.close().await;
    }

    async fn dispose(&self, receiver: &Receiver, s: Settled) {
        let result = match s.outcome {
            Outcome::Accepted => receiver.accept(s.info).await,
            Outcome::Rejected {
                condition,
                description,
            } => {
                let error = AmqpError::new(
                    ErrorCondition::Custom(Symbol::from(condition)),
                    Some(description),
                    None,
                );
                receiver.reject(s.info, error).await
            }
            Outcome::Released => receiver.release(s.info).await,
        };
        if result.is_err() {
            self.shared
                .acks
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether the link's token still holds; past its expiry, another token of the
    /// connection (a renewal by put-token) may take over.
    fn still_authorized(&mut self) -> Result<(), String> {
        match self.expires {
            Some(at) if at <= SystemTime::now() => {
                let (generation, expires) = authorize(
                    &self.state,
                    &self.shared,
                    &self.connection.device_id,
                    self.connection.module_id.as_deref(),
                )?;
                self.connection.generation_id = generation;
                self.expires = expires;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// SASL for devices: ANONYMOUS (then CBS), MSSBCBS (the Azure C SDK's name for the same), and
/// PLAIN with `{deviceId}@sas.{hub}` (or `{deviceId}/modules/{moduleId}@sas.{hub}`) and the SAS
/// token as password, checked at once; a valid one is kept as the connection's token.
#[derive(Clone)]
struct DeviceSasl {
    auth: Arc<dyn Authenticate>,
    tokens: Arc<Mutex<Tokens>>,
}

impl std::fmt::Debug for DeviceSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSasl")
    }
}

impl DeviceSasl {
    fn plain(&self, response: &[u8]) -> SaslCode {
        let mut parts = response.split(|b| *b == 0);
        let (Some(_authzid), Some(user), Some(password)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return SaslCode::Auth;
        };
        let (Ok(user), Ok(token)) = (std::str::from_utf8(user), std::str::from_utf8(password))
        else {
            return SaslCode::Auth;
        };
        let Some((identity, _hub)) = user.split_once("@sas.") else {
            return SaslCode::Auth;
        };
        let (device, module) = match identity.split_once("/modules/") {
            Some((d, m)) => (d, Some(m)),
            None => (identity, None),
        };
        match self
            .auth
            .authenticate(token, device, module, SystemTime::now())
        {
            Ok(_) => {
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(token.to_string());
                SaslCode::Ok
            }
            Err(why) => {
                tracing::warn!(
                    "AMQP: [{}] SASL PLAIN for '{identity}' refused: {why}",
                    codes::UNAUTHORIZED
                );
                SaslCode::Auth
            }
        }
    }
}

impl SaslAcceptor for DeviceSasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![
            Symbol::from("ANONYMOUS"),
            Symbol::from("PLAIN"),
            Symbol::from("MSSBCBS"),
        ])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        let code = match init.mechanism.0.as_str() {
            "ANONYMOUS" | "MSSBCBS" => SaslCode::Ok,
            "PLAIN" => match &init.initial_response {
                Some(r) => self.plain(r),
                None => SaslCode::Auth,
            },
            _ => SaslCode::Auth,
        };
        SaslServerFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        })
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        SaslServerFrame::Outcome(SaslOutcome {
            code: SaslCode::Auth,
            additional_data: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_addresses() {
        assert_eq!(
            events_identity("/devices/d1/messages/events"),
            Some(("d1".into(), None))
        );
        assert_eq!(
            events_identity("amqps://hub.azure-devices.net/devices/d1/modules/m1/messages/events/"),
            Some(("d1".into(), Some("m1".into())))
        );
        assert_eq!(events_identity("/devices/d1/messages/devicebound"), None);
        assert_eq!(events_identity("/devices/d1/messages/events/a=1"), None);
        assert_eq!(events_identity("$cbs"), None);
        assert_eq!(events_identity("amqp://"), None);
    }
}
