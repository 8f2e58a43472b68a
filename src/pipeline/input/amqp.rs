//! Devices sending over AMQP 1.0 straight into a [`Pipeline`](crate::pipeline::Pipeline), with
//! this router as the server, as IoT Hub is: `hubroute run --input amqp://ADDR` (loopback) or
//! `amqps://ADDR?cert=FILE&key=FILE` (TLS).
//!
//! A device connects (SASL ANONYMOUS, or PLAIN with `{deviceId}@sas.{hub}` and its SAS token as
//! password), authenticates with a CBS put-token on `$cbs` ([`cbs`]), and attaches a sender link
//! to `/devices/{id}/messages/events` (or `/devices/{id}/modules/{mid}/messages/events`). A link
//! no token of the connection authorizes is detached with `amqp:unauthorized-access` (E0681),
//! any other address with `amqp:not-found` (E0680). Each transfer is mapped as IoT Hub maps it
//! ([`map`]), stamped from the link's identity (never from the message), routed, and settled
//! only once durably accepted ([`LiveInput`]): `accepted`; `rejected` with an error condition
//! for an invalid message, which is then in the dead letter; `released` when the store did not
//! take it (the device sends it again). Credit is given per link ([`AmqpSettings::credit`]) and
//! a transfer waits for one of `max_in_flight` permits before it is routed, so a full store
//! stops devices (no settlement, no new credit) instead of dropping messages.
//!
//! fe2o3-amqp does the protocol (connection, sessions, links, SASL frames); tokio-rustls the
//! TLS, with the configuration of [`crate::broker::tls::server_config`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::live::{idle_timer, settle_all, AckCounts, LiveInput, LiveReport};

pub mod cbs;
pub mod map;
mod server;

/// Stable codes of the AMQP input (`E0680`..`E0689`). Codes are never reused.
pub mod codes {
    /// A link to an address this router does not serve (only `$cbs` and the device events
    /// addresses); detached with `amqp:not-found`.
    pub const LINK_REFUSED: &str = "E0680";
    /// A link to a device's events address that no valid token of the connection authorizes
    /// (none given, wrong device, expired, disabled device); detached with
    /// `amqp:unauthorized-access`.
    pub const UNAUTHORIZED: &str = "E0681";
    /// A message whose body or application property is of a kind an IoT Hub message cannot
    /// hold (an amqp-sequence body, a binary property value); rejected with `amqp:decode-error`
    /// and dead-lettered. A batch (message format `0x80013700`) is rejected with
    /// `amqp:not-implemented` under this code too.
    pub const UNSUPPORTED_CONTENT: &str = "E0682";
    /// A CBS request that is not a put-token IoT Hub takes; answered with status 400.
    pub const BAD_CBS_REQUEST: &str = "E0683";
}

/// What an accepted token says about its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// `connectionDeviceGenerationId`: the device identity's generation in the registry.
    pub generation_id: String,
}

/// Checks a device's SAS token: signature, expiry, scope (the token must cover
/// `device_id`/`module_id`) and the device's status. `Err` is the reason, which must never
/// contain the token or a key. The CLI implements it on the device registry (`--devices`).
pub trait Authenticate: Send + Sync {
    /// `Ok` when `token` lets `device_id` (or its module `module_id`) send at `now`.
    fn authenticate(
        &self,
        token: &str,
        device_id: &str,
        module_id: Option<&str>,
        now: SystemTime,
    ) -> Result<Authenticated, String>;
}

/// Tokens checked against a device registry ([`crate::registry::Registry::authenticate`]) for
/// the hub host name devices put in their tokens (`{hub}.azure-devices.net`). With the
/// registry's file, a change to it (`hubroute device disable`, an edit) is read again at the
/// next check, at most once a second, so a disabled device gets no new token or link without
/// a restart; a file that no longer parses is reported and the registry in memory kept.
#[derive(Debug)]
pub struct RegistryAuth {
    registry: std::sync::RwLock<crate::registry::Registry>,
    host: String,
    file: Option<PathBuf>,
    /// When the file was last looked at, and its modification time then.
    seen: std::sync::Mutex<(std::time::Instant, Option<SystemTime>)>,
}

impl RegistryAuth {
    /// Checks tokens against `registry` for `host`; `file`, when given, is watched.
    pub fn new(
        registry: crate::registry::Registry,
        host: impl Into<String>,
        file: Option<PathBuf>,
    ) -> RegistryAuth {
        let modified = file.as_deref().and_then(crate::registry::modified);
        RegistryAuth {
            registry: std::sync::RwLock::new(registry),
            host: host.into(),
            file,
            seen: std::sync::Mutex::new((std::time::Instant::now(), modified)),
        }
    }

    fn reload_if_changed(&self) {
        let Some(file) = &self.file else { return };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0.elapsed() < Duration::from_secs(1) {
            return;
        }
        seen.0 = std::time::Instant::now();
        crate::registry::reload_if_modified(file, &mut seen.1, &self.registry);
    }
}

impl Authenticate for RegistryAuth {
    fn authenticate(
        &self,
        token: &str,
        device_id: &str,
        module_id: Option<&str>,
        now: SystemTime,
    ) -> Result<Authenticated, String> {
        self.reload_if_changed();
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .authenticate(token, device_id, module_id, &self.host, now)
            .map(|ok| Authenticated {
                generation_id: ok.generation_id,
            })
            .map_err(|e| e.to_string())
    }
}

/// Where the AMQP input listens: `amqp://HOST:PORT` or `amqps://HOST:PORT?cert=FILE&key=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    /// The address to listen on (port 0: any free port, which is printed).
    pub addr: SocketAddr,
    /// TLS certificate chain and key files (`amqps://`).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl AmqpUrl {
    /// Parses a listen URL. Errors start with the broker URL code `E0701`.
    pub fn parse(url: &str) -> Result<AmqpUrl, String> {
        use crate::broker::codes::BAD_URL;
        let (secure, rest) = if let Some(r) = url.strip_prefix("amqps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("amqp://") {
            (false, r)
        } else {
            return Err(format!(
                "{BAD_URL}: '{url}' is not amqp://HOST:PORT or amqps://HOST:PORT?cert=FILE&key=FILE"
            ));
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let addr = authority
            .parse::<SocketAddr>()
            .or_else(|_| {
                authority
                    .replace("localhost", "127.0.0.1")
                    .parse::<SocketAddr>()
            })
            .map_err(|_| {
                format!("{BAD_URL}: '{authority}' is not an IP address and port to listen on, such as 127.0.0.1:5671")
            })?;
        let (mut cert, mut key) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("cert", f)) if !f.is_empty() => cert = Some(PathBuf::from(f)),
                Some(("key", f)) if !f.is_empty() => key = Some(PathBuf::from(f)),
                _ => {
                    return Err(format!(
                        "{BAD_URL}: unknown AMQP listen parameter '{}'; amqps:// takes cert=FILE&key=FILE",
                        pair.split('=').next().unwrap_or(pair)
                    ))
                }
            }
        }
        let tls = match (secure, cert, key) {
            (true, Some(c), Some(k)) => Some((c, k)),
            (true, _, _) => {
                return Err(format!(
                    "{BAD_URL}: amqps:// needs the server's certificate and key: amqps://{authority}?cert=FILE&key=FILE"
                ))
            }
            (false, None, None) => None,
            (false, _, _) => {
                return Err(format!(
                    "{BAD_URL}: cert= and key= are for amqps://, not amqp://"
                ))
            }
        };
        Ok(AmqpUrl { addr, tls })
    }
}

/// How the AMQP input serves devices.
#[derive(Clone)]
pub struct AmqpSettings {
    /// Where to listen.
    pub url: AmqpUrl,
    /// Who checks tokens.
    pub authenticator: Arc<dyn Authenticate>,
    /// Credit each device link is given (renewed as its transfers are settled); at most
    /// `max_in_flight` transfers of all links are routed and not yet settled.
    pub credit: u32,
    /// Called with the bound address once listening (tests and the CLI print it).
    pub on_listening: Option<Arc<dyn Fn(SocketAddr) + Send + Sync>>,
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &self.url)
            .field("credit", &self.credit)
            .finish_non_exhaustive()
    }
}

impl AmqpSettings {
    /// Settings for `url` checking tokens with `authenticator`, 100 credits per link.
    pub fn new(url: AmqpUrl, authenticator: Arc<dyn Authenticate>) -> Self {
        AmqpSettings {
            url,
            authenticator,
            credit: 100,
            on_listening: None,
        }
    }
}

/// How a transfer ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Accepted,
    Rejected {
        condition: &'static str,
        description: String,
    },
    Released,
}

/// A transfer on its way to the pipeline: the mapped message (or why not), what the dead
/// letter records of it, and where its outcome goes.
pub(crate) struct Transfer {
    pub message: Result<crate::message::Message, map::Refusal>,
    pub origin: serde_json::Value,
    pub settle: Box<dyn FnOnce(Outcome) + Send>,
}

/// `connectionAuthMethod` of a device (or module) that authenticated with a SAS token.
pub fn sas_auth_method(module: bool) -> String {
    let scope = if module { "module" } else { "device" };
    format!(r#"{{"scope":"{scope}","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}}"#)
}

/// Runs the AMQP input until `stop` resolves (or `input.idle_timeout` passes without a
/// message): stops taking transfers (later ones are released), waits (up to 60 s) for those in
/// flight to be settled, and closes the connections. Needs a tokio runtime with I/O and time.
/// Leaves the pipeline running. `Err` only when it cannot start (address in use, TLS files).
pub async fn run(
    input: &LiveInput<'_>,
    settings: &AmqpSettings,
    stop: impl Future<Output = ()>,
) -> Result<LiveReport, String> {
    let tls = match &settings.url.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            crate::broker::tls::server_config(cert, key)?,
        ))),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.url.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.url.addr))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {}: {e}", settings.url.addr))?;
    let scheme = if tls.is_some() { "amqps" } else { "amqp" };
    tracing::info!("listening for AMQP devices on {scheme}://{local}");
    if let Some(f) = &settings.on_listening {
        f(local);
    }
    input.hooks.connected(true);
    let capacity = input.capacity();
    let permits = Arc::new(tokio::sync::Semaphore::new(capacity));
    let acks = Arc::new(AckCounts::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Transfer>();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(server::Shared {
        auth: Arc::clone(&settings.authenticator),
        transfers: tx,
        permits: Arc::clone(&permits),
        credit: settings.credit.max(1),
        acks: Arc::clone(&acks),
    });
    let server = tokio::spawn(server::serve(listener, tls, shared, shutdown_rx));
    let mut report = LiveReport::default();
    let mut router = input.pipeline.router();
    tokio::pin!(stop);
    loop {
        let transfer = tokio::select! {
            t = rx.recv() => match t { Some(t) => t, None => break },
            _ = stop.as_mut() => break,
            _ = idle_timer(input.idle_timeout) => break,
        };
        report.read += 1;
        take(input, &mut router, &mut report, &acks, transfer);
    }
    // Transfers from now on are released (the device sends them again, to the next router).
    rx.close();
    while let Ok(t) = rx.try_recv() {
        (t.settle)(Outcome::Released);
        acks.redeliver.fetch_add(1, Ordering::Relaxed);
    }
    if !settle_all(&permits, capacity, Duration::from_secs(60)).await {
        report.gave_up_waiting = true;
        tracing::warn!("gave up waiting for in-flight messages; they stay unsettled and devices send them again");
    }
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    input.hooks.connected(false);
    acks.fill_report(&mut report);
    Ok(report)
}

/// Routes one transfer and hands it to the pipeline; its outcome follows acceptance.
fn take(
    input: &LiveInput<'_>,
    router: &mut crate::route::Router<'_>,
    report: &mut LiveReport,
    acks: &Arc<AckCounts>,
    transfer: Transfer,
) {
    let Transfer {
        message,
        origin,
        settle,
    } = transfer;
    let (routed, condition, raw) = match message {
        Ok(m) => (
            input.route(router, &m),
            map::ARGUMENT_ERROR,
            serde_json::Value::Null,
        ),
        Err(r) => {
            let raw = match &r.body {
                Some(b) => serde_json::json!({ "bodyBase64": super::invalid::base64_body(b) }),
                None => serde_json::Value::Null,
            };
            (Err((r.code, r.reason)), r.condition, raw)
        }
    };
    let rejection = routed
        .as_ref()
        .err()
        .map(|(code, reason)| Outcome::Rejected {
            condition,
            description: format!("{code} {reason}"),
        });
    let acks = Arc::clone(acks);
    let settle = move |ok: bool| {
        let outcome = match (ok, rejection) {
            (true, None) => Outcome::Accepted,
            (true, Some(rejected)) => rejected,
            (false, _) => Outcome::Released,
        };
        let counter = if outcome == Outcome::Released {
            &acks.redeliver
        } else {
            &acks.acked
        };
        counter.fetch_add(1, Ordering::Relaxed);
        settle(outcome);
    };
    input.deliver(routed, report, || (origin, raw), settle);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = AmqpUrl::parse("amqp://127.0.0.1:5672").unwrap();
        assert_eq!(u.addr.port(), 5672);
        assert_eq!(u.tls, None);
        let u = AmqpUrl::parse("amqps://localhost:0?cert=c.pem&key=k.pem").unwrap();
        assert_eq!(
            u.tls,
            Some((PathBuf::from("c.pem"), PathBuf::from("k.pem")))
        );
        for bad in [
            "mqtt://127.0.0.1:1",
            "amqp://host-name:1",
            "amqps://127.0.0.1:1",
            "amqp://127.0.0.1:1?cert=c&key=k",
            "amqps://127.0.0.1:1?cert=c&key=k&x=1",
        ] {
            let e = AmqpUrl::parse(bad).unwrap_err();
            assert!(e.starts_with("E0701"), "{bad}: {e}");
        }
    }
}
