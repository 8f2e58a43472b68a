//! IoT Hub's HTTP answers: 204 for an accepted event, and for the rest the status and the JSON
//! body the hub sends, `{"Message":"ErrorCode:{code};{text}","ExceptionMessage":"Tracking
//! ID:{id}-G:{gateway}-TimeStamp:{MM/dd/yyyy HH:mm:ss}"}` (as the device SDKs and IoT Edge
//! see it, e.g. `ErrorCode:IotHubUnauthorizedAccess;Unauthorized`). The text never says which
//! check failed, as the hub's does not: the router's log does, with a code.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

/// The body type of every answer.
pub type Body = Full<Bytes>;

/// Why a request was refused, each with IoT Hub's status and error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400 `ArgumentInvalid`: the message breaks IoT Hub's rules.
    Invalid,
    /// 401 `IotHubUnauthorizedAccess`.
    Unauthorized,
    /// 404: no such resource.
    NotFound,
    /// 405: the resource takes another method.
    MethodNotAllowed,
    /// 413 `MessageTooLarge`: more than 256 KB.
    TooLarge,
    /// 503 `ServerBusy`: the store is full or the window did not open in time; not stored.
    Busy,
}

impl Refusal {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Invalid => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// IoT Hub's `ErrorCode` and text.
    fn error(self) -> (&'static str, &'static str) {
        match self {
            Refusal::Invalid => ("ArgumentInvalid", "The message is not valid"),
            Refusal::Unauthorized => ("IotHubUnauthorizedAccess", "Unauthorized"),
            Refusal::NotFound => ("ResourceNotFound", "The requested resource does not exist"),
            Refusal::MethodNotAllowed => (
                "MethodNotAllowed",
                "The requested resource does not support this method",
            ),
            Refusal::TooLarge => ("MessageTooLarge", "Message size cannot exceed 262144 bytes"),
            Refusal::Busy => ("ServerBusy", "The server is busy, retry later"),
        }
    }

    /// The answer, with the hub's error body.
    pub fn response(self) -> Response<Body> {
        let (code, text) = self.error();
        // In the hub's order, Message first (a JSON object built with serde_json would sort).
        let body = format!(
            r#"{{"Message":"ErrorCode:{code};{text}","ExceptionMessage":"Tracking ID:{}-G:0-TimeStamp:{}"}}"#,
            tracking_id(),
            timestamp()
        );
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        match self {
            Refusal::Busy => {
                headers.insert(
                    hyper::header::RETRY_AFTER,
                    hyper::header::HeaderValue::from_static("1"),
                );
            }
            Refusal::MethodNotAllowed => {
                headers.insert(
                    hyper::header::ALLOW,
                    hyper::header::HeaderValue::from_static("POST"),
                );
            }
            _ => {}
        }
        response
    }
}

/// 204 No Content: the event is durably accepted.
pub fn accepted() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// 32 hex digits, unique within the process (time and a counter), as the hub's tracking ids
/// look; for matching a client's report with the router's log.
fn tracking_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{nanos:016x}{n:016x}")
}

/// `MM/dd/yyyy HH:mm:ss` in UTC, the hub's `TimeStamp`.
fn timestamp() -> String {
    // enqueuedTime's formatter gives `yyyy-MM-ddTHH:mm:ss.fffffffZ`.
    let t = crate::sink::format_enqueued_time(SystemTime::now());
    let (date, time) = t.split_once('T').unwrap_or((&t, ""));
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    format!("{m}/{d}/{y} {}", time.get(..8).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn unauthorized_has_the_hub_body() {
        let r = Refusal::Unauthorized.response();
        assert_eq!(r.status(), 401);
        let body = futures_util::FutureExt::now_or_never(r.into_body().collect())
            .unwrap()
            .unwrap()
            .to_bytes();
        assert!(body.starts_with(b"{\"Message\":"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["Message"],
            "ErrorCode:IotHubUnauthorizedAccess;Unauthorized"
        );
        let e = v["ExceptionMessage"].as_str().unwrap();
        assert!(
            e.starts_with("Tracking ID:") && e.contains("-G:0-TimeStamp:"),
            "{e}"
        );
        let stamp = e.split("TimeStamp:").nth(1).unwrap();
        assert_eq!(stamp.len(), "12/04/2026 23:00:00".len(), "{stamp}");
        assert_eq!(&stamp[2..3], "/");
    }
}
