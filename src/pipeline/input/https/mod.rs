//! Devices sending over HTTPS, as to IoT Hub's REST "Send Device Event":
//! `POST /devices/{id}/messages/events?api-version=…` (and
//! `/devices/{id}/modules/{mid}/messages/events`), with an IoT Hub SAS token in
//! `Authorization`, straight into a [`Pipeline`](crate::pipeline::Pipeline).
//!
//! Each request is authenticated against the device registry ([`crate::registry`]: signature,
//! expiry, scope, status; 401 otherwise), its headers become the message's properties
//! ([`request`]), the connection properties are stamped from the authenticated identity, IoT
//! Hub's HTTPS rules are checked (400, and the message is dead-lettered as an invalid input),
//! and the answer, 204, comes only once the message is durably in the store (see
//! [`super::live`]). A full store, or a window that does not open within
//! [`HttpsSettings::window_wait`], is answered 503 *before* the message is handed to the store,
//! so a message is either acknowledged and stored or refused and not stored; once handed over,
//! the answer waits for the store's outcome. Bodies over 256 KB are 413. Connections are kept
//! alive (HTTP/1.1), and TLS (rustls, ring) is served with a certificate and key from files.
//!
//! The server is one task on the caller's runtime: connections are driven together (no
//! spawning), so the pipeline and the registry are borrowed, not shared.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{FuturesUnordered, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::live::{LiveInput, LiveReport};
use crate::registry::Registry;

pub mod reply;
pub mod request;

use reply::{Body, Refusal};
use request::Route;

/// Stable codes of the HTTPS input (E102x; the registry's are E100x and E101x).
pub mod codes {
    /// The `--input` URL is not `https://HOST:PORT?cert=FILE&key=FILE` or `http://HOST:PORT`.
    pub const BAD_URL: &str = "E1020";
    /// The certificate or key file cannot be used.
    pub const BAD_TLS_FILE: &str = "E1021";
    /// The body is larger than IoT Hub's 256 KB (answered 413).
    pub const TOO_LARGE: &str = "E1022";
    /// The store is full or the window did not open in time (answered 503, not stored).
    pub const BUSY: &str = "E1023";
    /// The address cannot be listened on.
    pub const LISTEN: &str = "E1024";
}

/// IoT Hub's limit on a device-to-cloud message.
pub const MAX_BODY_BYTES: usize = crate::message::MAX_MESSAGE_SIZE;

/// Where the server listens, and with which certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    /// `HOST:PORT` to listen on.
    pub addr: String,
    /// For `https://`: the certificate chain and private key files (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Whether `text` is an HTTP(S) input URL (`https://…` or `http://…`).
pub fn is_http_url(text: &str) -> bool {
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

impl HttpsUrl {
    /// Parses `https://HOST:PORT?cert=FILE&key=FILE` or `http://HOST:PORT` (plain HTTP, for
    /// loopback tests and a TLS-terminating proxy in front).
    pub fn parse(text: &str) -> Result<HttpsUrl, String> {
        let bad = |why: &str| {
            format!(
                "{}: {}: {why} (expected https://HOST:PORT?cert=FILE&key=FILE or http://HOST:PORT)",
                codes::BAD_URL,
                crate::redact::url(text)
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("the scheme is not https or http")),
        };
        let (addr, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') || !addr.contains(':') {
            return Err(bad("the address must be HOST:PORT"));
        }
        let (mut cert, mut key) = (None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("cert", f)) if !f.is_empty() => cert = Some(PathBuf::from(f)),
                Some(("key", f)) if !f.is_empty() => key = Some(PathBuf::from(f)),
                _ => return Err(bad("the only parameters are cert=FILE and key=FILE")),
            }
        }
        let tls = match (secure, cert, key) {
            (true, Some(c), Some(k)) => Some((c, k)),
            (true, _, _) => return Err(bad("https needs cert=FILE and key=FILE")),
            (false, None, None) => None,
            (false, _, _) => return Err(bad("http takes no certificate: use https")),
        };
        Ok(HttpsUrl {
            addr: addr.to_string(),
            tls,
        })
    }

    /// The TLS configuration for `https://` (`None` for `http://`); errors name the file.
    pub fn server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        match &self.tls {
            Some((cert, key)) => server_config(cert, key).map(Some),
            None => Ok(None),
        }
    }
}

/// A rustls server configuration (ring, TLS 1.2 and 1.3, HTTP/1.1 by ALPN) from PEM files.
pub fn server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |file: &std::path::Path, why: String| {
        format!("{}: {}: {why}", codes::BAD_TLS_FILE, file.display())
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(cert, "no PEM certificate in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|e| bad(key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How the HTTPS input authenticates and how long it lets a request wait.
#[derive(Debug, Clone)]
pub struct HttpsSettings {
    /// The hub's host name devices sign their tokens for (`{hub}.azure-devices.net`).
    pub hub_host: String,
    /// The device registry (shared, so a command can change it while the server runs).
    pub registry: Arc<RwLock<Registry>>,
    /// Bodies above this are answered 413 ([`MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// Answer 503 instead of handing a message over when the store is full
    /// ([`Pipeline::store_is_full_for`](crate::pipeline::Pipeline::store_is_full_for)), rather
    /// than holding the request until endpoints make room.
    pub refuse_when_store_full: bool,
    /// How long a request waits for a slot in the in-flight window before it is answered 503.
    pub window_wait: Duration,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// The registry's file: when it changes (`hubroute device disable`, an edit), it is read
    /// again within a second, so a disabled device is refused without a restart. A file that
    /// no longer parses is reported and the registry in memory kept.
    pub registry_file: Option<PathBuf>,
}

impl HttpsSettings {
    /// Settings for devices of `registry` signing for `hub_host`, with IoT Hub's limits.
    pub fn new(hub_host: impl Into<String>, registry: Registry) -> HttpsSettings {
        HttpsSettings {
            hub_host: hub_host.into(),
            registry: Arc::new(RwLock::new(registry)),
            max_body_bytes: MAX_BODY_BYTES,
            refuse_when_store_full: true,
            window_wait: Duration::from_secs(5),
            max_connections: 1024,
            registry_file: None,
        }
    }
}

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds `url.addr` and serves until `stop` resolves (or `input.idle_timeout` passes without a
/// request); then stops accepting, lets each connection finish its request (up to 60 s) and
/// returns. Leaves the pipeline running: shut it down afterwards to drain the endpoints.
pub async fn run(
    input: &LiveInput<'_>,
    url: &HttpsUrl,
    settings: &HttpsSettings,
    stop: impl Future<Output = ()>,
) -> Result<LiveReport, String> {
    let tls = url.server_config()?;
    let listener = std::net::TcpListener::bind(&url.addr)
        .map_err(|e| format!("{}: cannot listen on {}: {e}", codes::LISTEN, url.addr))?;
    run_on(input, listener, tls, settings, stop).await
}

/// [`run`] on a bound listener (port 0 in tests), with TLS when `tls` is given.
pub async fn run_on(
    input: &LiveInput<'_>,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    settings: &HttpsSettings,
    stop: impl Future<Output = ()>,
) -> Result<LiveReport, String> {
    let local = listener
        .local_addr()
        .map_err(|e| format!("{}: {e}", codes::LISTEN))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", codes::LISTEN))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| format!("{}: {e}", codes::LISTEN))?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let server = Server {
        input,
        settings,
        router: RefCell::new(input.pipeline.router()),
        report: RefCell::new(LiveReport::default()),
        window: Arc::new(tokio::sync::Semaphore::new(input.capacity())),
        last_request: Cell::new(Instant::now()),
        acks: Default::default(),
    };
    tracing::info!(
        "listening for devices on {}://{local} (hub host {})",
        if acceptor.is_some() { "https" } else { "http" },
        settings.hub_host
    );
    input.hooks.connected(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = FuturesUnordered::new();
    let mut watched = RegistryWatch::new(settings.registry_file.clone());
    let mut reread = tokio::time::interval(Duration::from_secs(1));
    reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let idle = idle_deadline(input.idle_timeout, server.last_request.get());
        tokio::select! {
            _ = stop.as_mut() => break,
            _ = reread.tick(), if watched.file.is_some() => watched.reload_if_changed(&settings.registry),
            _ = sleep_until(idle) => {
                if idle.is_some_and(|d| Instant::now() >= d) && server.window_is_empty(input.capacity()) {
                    break;
                }
            }
            accepted = listener.accept(), if connections.len() < settings.max_connections => {
                let Ok((stream, _)) = accepted else {
                    // A reset connection or no descriptors left: a passing problem.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let server = &server;
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                connections.push(async move {
                    let service = hyper::service::service_fn(move |req| async move {
                        Ok::<_, std::convert::Infallible>(server.handle(req).await)
                    });
                    let builder = {
                        let mut b = hyper::server::conn::http1::Builder::new();
                        b.timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .keep_alive(true);
                        b
                    };
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(Ok(tls)) = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await else {
                                return;
                            };
                            let conn = builder.serve_connection(TokioIo::new(tls), service);
                            let _ = watcher.watch(conn).await;
                        }
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                    }
                });
            }
            Some(()) = connections.next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Finish the requests under way (their answers wait for the store), then close.
    let closing = async {
        tokio::join!(graceful.shutdown(), async {
            while connections.next().await.is_some() {}
        });
    };
    let mut report = if tokio::time::timeout(Duration::from_secs(60), closing)
        .await
        .is_err()
    {
        let mut r = server.report.borrow().clone();
        r.gave_up_waiting = true;
        tracing::warn!(
            "gave up waiting for requests in flight; their devices get no answer and send again"
        );
        r
    } else {
        server.report.borrow().clone()
    };
    input.hooks.connected(false);
    server.acks.fill_report(&mut report);
    Ok(report)
}

/// The registry file and when it was last read.
struct RegistryWatch {
    file: Option<PathBuf>,
    modified: Option<SystemTime>,
}

impl RegistryWatch {
    fn new(file: Option<PathBuf>) -> RegistryWatch {
        let modified = file.as_deref().and_then(crate::registry::modified);
        RegistryWatch { file, modified }
    }

    fn reload_if_changed(&mut self, registry: &RwLock<Registry>) {
        if let Some(file) = &self.file {
            crate::registry::reload_if_modified(file, &mut self.modified, registry);
        }
    }
}

fn idle_deadline(idle: Option<Duration>, last: Instant) -> Option<Instant> {
    idle.map(|d| last + d)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        // Checked again at least every second, as requests move the deadline.
        Some(d) => {
            let until = d.min(Instant::now() + Duration::from_secs(1));
            tokio::time::sleep_until(until.into()).await
        }
        None => std::future::pending().await,
    }
}

/// What the connections share.
struct Server<'a, 'p> {
    input: &'a LiveInput<'p>,
    settings: &'a HttpsSettings,
    router: RefCell<crate::route::Router<'p>>,
    report: RefCell<LiveReport>,
    window: Arc<tokio::sync::Semaphore>,
    last_request: Cell<Instant>,
    acks: super::live::AckCounts,
}

impl Server<'_, '_> {
    fn window_is_empty(&self, capacity: usize) -> bool {
        self.window.available_permits() == capacity
    }

    /// The answer to one request.
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        self.last_request.set(Instant::now());
        let route = match request::route(req.method(), req.uri().path()) {
            Ok(r) => r,
            Err(refusal) => return refusal.response(),
        };
        match route {
            Route::SendEvent { device, module } => {
                match self.send_event(req, &device, module.as_deref()).await {
                    Ok(r) => r,
                    Err(refusal) => refusal.response(),
                }
            }
            Route::PatchReported { device, module } => {
                match self.patch_reported(req, &device, module.as_deref()).await {
                    Ok(r) => r,
                    Err(refusal) => refusal.response(),
                }
            }
        }
    }

    /// A reported-property patch: authenticated like an event, applied to the device's twin
    /// by [`crate::twin::LiveTwins::apply_reported`] (the TwinChangeEvents notification durably
    /// accepted, then the twin committed), answered `200 {"$version": V}` with the reported
    /// properties' new version; 400 for a bad patch, 503 when it could not be taken now, 404
    /// when the router keeps no twins. The commit is waited for on this thread, as IoT Hub
    /// answers a patch once it is stored: a patch is a state change, rare next to events.
    async fn patch_reported(
        &self,
        req: Request<Incoming>,
        device: &str,
        module: Option<&str>,
    ) -> Result<Response<Body>, Refusal> {
        let twins = self.input.twins.ok_or(Refusal::NotFound)?;
        self.authenticate(&req, device, module)?;
        let limit = self.settings.max_body_bytes;
        let body = match http_body_util::Limited::new(req.into_body(), limit)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(Refusal::TooLarge),
            Err(_) => return Err(Refusal::Invalid),
        };
        let text = String::from_utf8_lossy(&body);
        match twins.apply_reported(
            self.input.pipeline,
            device,
            module,
            &text,
            SystemTime::now(),
        ) {
            Ok(version) => {
                let mut response = Response::new(http_body_util::Full::new(
                    hyper::body::Bytes::from(format!(r#"{{"$version":{version}}}"#)),
                ));
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
                );
                Ok(response)
            }
            Err(e) => {
                log_refusal(&format!(
                    "{} for the twin patch of device '{device}': {e}",
                    e.http_status()
                ));
                Err(match e.http_status() {
                    400 => Refusal::Invalid,
                    _ => Refusal::Busy,
                })
            }
        }
    }

    /// Authenticates the sender of a request to `device` (and `module`) from its
    /// `Authorization` header; the refusal is logged with its code, never with the token.
    pub(crate) fn authenticate(
        &self,
        req: &Request<Incoming>,
        device: &str,
        module: Option<&str>,
    ) -> Result<crate::registry::AuthOk, Refusal> {
        let token = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let registry = self
            .settings
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner());
        registry
            .authenticate(
                token,
                device,
                module,
                &self.settings.hub_host,
                SystemTime::now(),
            )
            .map_err(|e| {
                self.input.hooks.read(Some(e.code()));
                log_refusal(&format!("401 for device '{device}': {e}"));
                Refusal::Unauthorized
            })
    }

    async fn send_event(
        &self,
        req: Request<Incoming>,
        device: &str,
        module: Option<&str>,
    ) -> Result<Response<Body>, Refusal> {
        let sender = self.authenticate(&req, device, module)?;
        let limit = self.settings.max_body_bytes;
        let too_large = |what: String| {
            self.input.hooks.read(Some(codes::TOO_LARGE));
            log_refusal(&format!(
                "{} 413 for device '{device}': {what} (at most {limit})",
                codes::TOO_LARGE
            ));
            Refusal::TooLarge
        };
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared.filter(|&n| n > limit as u64) {
            return Err(too_large(format!("a body of {n} bytes")));
        }
        let (parts, body) = req.into_parts();
        let body = match http_body_util::Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(too_large("a longer body".into()))
            }
            // The client went away mid-body: nothing to answer, nothing stored.
            Err(_) => return Err(Refusal::Invalid),
        };
        let message = request::event_message(
            &parts.headers,
            body,
            &sender,
            SystemTime::now(),
            &mut |name| crate::ingest::log_spoofing_property(device, name),
        );
        let routed = match request::check(&message) {
            Ok(()) => {
                let mut router = self.router.borrow_mut();
                self.input.route(&mut router, &message)
            }
            Err(e) => Err((e.code(), e.to_string())),
        };
        let prepared = match routed {
            Ok(p) => p,
            Err((code, reason)) => {
                // Dead-lettered like any invalid input, then refused: the device learns its
                // message is invalid and the operator sees why.
                let mut report = self.report.borrow_mut();
                report.read += 1;
                let (tx, mut rx) = tokio::sync::oneshot::channel::<bool>();
                let origin = serde_json::json!({
                    "https": parts.uri.path(),
                    "deviceId": device,
                    "moduleId": module,
                });
                let raw = serde_json::json!({
                    "bodyBase64": super::invalid::base64_body(&message.body),
                    "appProperties": message.app_properties.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect::<std::collections::BTreeMap<_, _>>(),
                });
                self.input.deliver(
                    Err((code, reason)),
                    &mut report,
                    || (origin, raw),
                    move |s| {
                        let _ = tx.send(s);
                    },
                );
                // Recorded in the dead letter: 400. Not even that: 503, the device sends again.
                return Err(match rx.try_recv() {
                    Ok(true) => Refusal::Invalid,
                    _ => Refusal::Busy,
                });
            }
        };
        // Refused before it is handed over, so it is not stored: a full store, or a window
        // that stays shut.
        if self.settings.refuse_when_store_full
            && self
                .input
                .pipeline
                .store_is_full_for(prepared.bytes.len() as u64)
        {
            return Err(self.busy(device, "the store is full"));
        }
        let permit = match tokio::time::timeout(
            self.settings.window_wait,
            Arc::clone(&self.window).acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => return Err(self.busy(device, "no room in the in-flight window")),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<bool>();
        {
            // Read, in the report's sense, once handed over (a 503 before is not).
            let mut report = self.report.borrow_mut();
            report.read += 1;
            self.input.deliver(
                Ok(prepared),
                &mut report,
                || (serde_json::Value::Null, serde_json::Value::Null),
                move |accepted| {
                    let _ = tx.send(accepted);
                },
            );
        }
        // Handed over: the answer is the store's outcome, however long it takes.
        let accepted = rx.await.unwrap_or(false);
        drop(permit);
        if accepted {
            self.acks
                .acked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(reply::accepted())
        } else {
            self.acks
                .redeliver
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(Refusal::Busy)
        }
    }

    fn busy(&self, device: &str, why: &str) -> Refusal {
        self.input.hooks.read(Some(codes::BUSY));
        log_refusal(&format!(
            "{} 503 for device '{device}': {why}; not stored, the device sends again",
            codes::BUSY
        ));
        Refusal::Busy
    }
}

/// Logs a refused request: the first twenty, then every thousandth, so a misconfigured fleet
/// (or an attacker) cannot flood the log.
fn log_refusal(text: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= 20 || n % 1000 == 0 {
        tracing::warn!("refused ({n} so far): {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            HttpsUrl::parse("http://127.0.0.1:8080").unwrap(),
            HttpsUrl {
                addr: "127.0.0.1:8080".into(),
                tls: None
            }
        );
        let u = HttpsUrl::parse("https://0.0.0.0:443?cert=c.pem&key=k.pem").unwrap();
        assert_eq!(u.tls, Some(("c.pem".into(), "k.pem".into())));
        for bad in [
            "https://0.0.0.0:443",
            "https://0.0.0.0:443?cert=c.pem",
            "http://h:1?cert=c&key=k",
            "http://h",
            "http://h:1/path",
            "ftp://h:1",
            "http://h:1?password=s3cret",
        ] {
            let e = HttpsUrl::parse(bad).unwrap_err();
            assert!(e.starts_with(codes::BAD_URL), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        assert!(is_http_url("HTTPS://x:1") && is_http_url("http://x:1"));
        assert!(!is_http_url("mqtt://x:1") && !is_http_url("-"));
    }

    #[test]
    fn tls_files_are_checked_at_start() {
        let e = server_config("/nonexistent/c.pem".as_ref(), "/nonexistent/k.pem".as_ref())
            .unwrap_err();
        assert!(e.starts_with(codes::BAD_TLS_FILE), "{e}");
    }
}
