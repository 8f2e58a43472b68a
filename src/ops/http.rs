//! [`OpsServer`]: `/metrics`, `/healthz`, `/livez` and `/readyz` over HTTP/1.1.
//!
//! hyper (1.x) on its own single-threaded tokio runtime, on its own thread: hyper is the
//! best-kept HTTP implementation in Rust and tokio is already in the tree for the broker
//! inputs; a runtime of its own means a scrape is answered the same way whether the router
//! reads a file (no runtime at all) or brokers (a busy runtime), and never competes with
//! message handling for a runtime's workers.

use super::metrics;
use super::snapshot::Snapshot;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Produces the snapshot a request reports (called once per request, on the server's thread).
pub type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// Connections served at once; more wait in the listen queue. A scrape endpoint has one or two
/// clients; the bound keeps a misbehaving one from exhausting file descriptors.
const MAX_CONNECTIONS: usize = 32;

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server; stopped when dropped.
#[derive(Debug)]
pub struct OpsServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OpsServer {
    /// Listens on `addr` (`HOST:PORT`; port 0 picks a free port, see
    /// [`OpsServer::local_addr`]) and answers from `source`. The address is bound before this
    /// returns, so a port in use is an error here, not a silent failure later.
    pub fn start(addr: &str, source: SnapshotSource) -> std::io::Result<OpsServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("hubroute-metrics".into())
            .spawn(move || runtime.block_on(serve(listener, source, stopped)))?;
        Ok(OpsServer {
            addr: local,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stopped` fires.
async fn serve(
    listener: std::net::TcpListener,
    source: SnapshotSource,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(_) => return,
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = &mut stopped => return,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // A failed accept (a reset connection, no descriptors left) is the client's
                // problem or a passing one: wait a little and go on serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let source = Arc::clone(&source);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let source = Arc::clone(&source);
                async move { Ok::<_, std::convert::Infallible>(respond(&req, &source)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

/// The answer to one request.
fn respond<B>(req: &Request<B>, source: &SnapshotSource) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::encode(&source()),
        ),
        "/livez" => text(StatusCode::OK, "text/plain", "live\n".into()),
        "/readyz" | "/healthz" => {
            let snapshot = source();
            let ready = snapshot.readiness.is_ready();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, "application/json", health_json(&snapshot))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz, /livez or /readyz\n".into(),
        ),
    }
}

/// `/healthz`'s body: liveness, readiness and why, and each endpoint's health.
fn health_json(s: &Snapshot) -> String {
    let endpoints: serde_json::Map<String, serde_json::Value> = s
        .endpoints
        .iter()
        .map(|(name, e)| {
            (
                name.clone(),
                serde_json::json!({"health": e.health.as_str(), "reason": e.reason}),
            )
        })
        .collect();
    let mut body = serde_json::json!({
        "live": true,
        "ready": s.readiness.is_ready(),
        "inputs_connected": s.readiness.inputs_connected,
        "store_open": s.readiness.store_open,
        "route_table_generation": s.table.generation,
        "endpoints": endpoints,
    })
    .to_string();
    body.push('\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{EndpointSnapshot, Health, Readiness};
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A raw HTTP/1.1 GET over a real socket: (status code, body).
    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    #[test]
    fn serves_metrics_and_health_from_the_current_snapshot() {
        let ready = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ready);
        let source: SnapshotSource = Arc::new(move || {
            let mut s = Snapshot {
                read: 42,
                readiness: Readiness {
                    inputs_connected: flag.load(Ordering::SeqCst),
                    store_open: true,
                },
                ..Snapshot::default()
            };
            s.endpoints.insert(
                "alerts".into(),
                EndpointSnapshot {
                    health: Health::Unhealthy,
                    reason: Some("connection refused".into()),
                    ..EndpointSnapshot::default()
                },
            );
            s
        });
        let server = OpsServer::start("127.0.0.1:0", source).unwrap();
        let addr = server.local_addr();

        let (status, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        assert!(body.contains("hubroute_messages_read_total 42\n"), "{body}");

        let (status, body) = get(addr, "/healthz");
        assert_eq!(status, 503, "not ready until the inputs are connected");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["ready"], false);
        assert_eq!(health["endpoints"]["alerts"]["health"], "unhealthy");
        assert_eq!(
            health["endpoints"]["alerts"]["reason"],
            "connection refused"
        );
        assert_eq!(get(addr, "/livez").0, 200);

        ready.store(true, Ordering::SeqCst);
        assert_eq!(get(addr, "/readyz").0, 200);
        assert_eq!(get(addr, "/nothing").0, 404);
        drop(server);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "a dropped server no longer listens"
        );
    }

    #[test]
    fn an_address_in_use_is_an_error_at_start() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let source: SnapshotSource = Arc::new(Snapshot::default);
        assert!(OpsServer::start(&addr, source).is_err());
    }
}
