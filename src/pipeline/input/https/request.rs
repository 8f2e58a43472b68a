//! What a device's HTTP request means: which of the hub's resources it names ([`route`]) and,
//! for "Send Device Event", the message its headers and body make ([`event_message`]).
//!
//! Headers map as IoT Hub maps them: `iothub-app-{name}` to application property `{name}`,
//! `iothub-messageid`, `iothub-correlationid`, `iothub-userid`, `iothub-contenttype`,
//! `iothub-contentencoding` and `iothub-creation-time-utc` to system properties, and
//! `Content-Type` to `contentType` when `iothub-contenttype` is absent. HTTP/1.1 header names
//! are case-insensitive and arrive lowercase, so application property names do too. The
//! connection properties are stamped from the authenticated identity; an application property
//! named like one of them is dropped (W0650), as over MQTT.

use std::time::SystemTime;

use hyper::{HeaderMap, Method};

use super::reply::Refusal;
use crate::ingest::{is_spoofing_name, stamp, IngestError};
use crate::message::{names, Message, Protocol, Source};
use crate::registry::AuthOk;

/// A resource of the hub the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /devices/{id}/messages/events` or `/devices/{id}/modules/{mid}/messages/events`.
    SendEvent {
        /// The device id from the path (percent-decoded).
        device: String,
        /// The module id, for a module's path.
        module: Option<String>,
    },
}

/// The router: the request's method and path (without the query, e.g. `?api-version=…`) to a
/// [`Route`], or 404/405. New resources (twin patches, …) are added here.
pub fn route(method: &Method, path: &str) -> Result<Route, Refusal> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let decoded = |s: &str| percent_decode(s).filter(|d| !d.is_empty());
    let found = match segments.as_slice() {
        ["devices", d, "messages", "events"] => decoded(d).map(|device| Route::SendEvent {
            device,
            module: None,
        }),
        ["devices", d, "modules", m, "messages", "events"] => match (decoded(d), decoded(m)) {
            (Some(device), Some(module)) => Some(Route::SendEvent {
                device,
                module: Some(module),
            }),
            _ => None,
        },
        _ => None,
    };
    let route = found.ok_or(Refusal::NotFound)?;
    match route {
        Route::SendEvent { .. } if method != Method::POST => Err(Refusal::MethodNotAllowed),
        r => Ok(r),
    }
}

/// The system properties a device may set, by header name.
const SYSTEM_HEADERS: [(&str, &str); 6] = [
    ("iothub-messageid", names::MESSAGE_ID),
    ("iothub-correlationid", names::CORRELATION_ID),
    ("iothub-userid", names::USER_ID),
    ("iothub-contenttype", names::CONTENT_TYPE),
    ("iothub-contentencoding", names::CONTENT_ENCODING),
    ("iothub-creation-time-utc", names::CREATION_TIME_UTC),
];

/// The prefix of application property headers.
const APP_PREFIX: &str = "iothub-app-";

/// The message of a "Send Device Event" request from the authenticated `sender`, stamped at
/// `enqueued`; [`check`] says whether IoT Hub would take it. Header values that are not
/// ASCII are taken with U+FFFD for their bytes, which [`check`] then refuses. `dropped` is
/// called with each application property name that impersonates a stamped property.
pub fn event_message(
    headers: &HeaderMap,
    body: Vec<u8>,
    sender: &AuthOk,
    enqueued: SystemTime,
    dropped: &mut dyn FnMut(&str),
) -> Message {
    let mut msg = Message {
        body,
        source: Some(Source::DeviceMessages),
        ..Message::default()
    };
    let mut content_type = None;
    for (name, value) in headers {
        let name = name.as_str();
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if let Some(app) = name.strip_prefix(APP_PREFIX) {
            if is_spoofing_name(app) {
                dropped(app);
                continue;
            }
            msg.app_properties.insert(app, Some(value));
        } else if let Some((_, system)) = SYSTEM_HEADERS.iter().find(|(h, _)| *h == name) {
            msg.system_properties.insert(*system, Some(value));
        } else if name == "content-type" {
            content_type = Some(value);
        }
    }
    if let Some(ct) = content_type {
        if msg.system_properties.get(names::CONTENT_TYPE).is_none() {
            msg.system_properties.insert(names::CONTENT_TYPE, Some(ct));
        }
    }
    stamp(&mut msg, &sender.connection(), enqueued);
    msg
}

/// IoT Hub's rules for a message sent over HTTPS: the restricted charset for property names
/// and values, the message id's rules, the 256 KB size.
pub fn check(msg: &Message) -> Result<(), IngestError> {
    let violations = msg.validate(Protocol::Https);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(IngestError::InvalidMessage(violations))
    }
}

/// `%XX`-decodes a path segment (`+` stays `+`); `None` for a bad escape or non-UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    fn sender(module: Option<&str>) -> AuthOk {
        AuthOk {
            device_id: "d1".into(),
            module_id: module.map(str::to_string),
            generation_id: "g1".into(),
            expiry: 0,
        }
    }

    #[test]
    fn routes() {
        assert_eq!(
            route(&Method::POST, "/devices/d%2D1/messages/events"),
            Ok(Route::SendEvent {
                device: "d-1".into(),
                module: None
            })
        );
        assert_eq!(
            route(&Method::POST, "/devices/d1/modules/m1/messages/events"),
            Ok(Route::SendEvent {
                device: "d1".into(),
                module: Some("m1".into())
            })
        );
        assert_eq!(
            route(&Method::GET, "/devices/d1/messages/events"),
            Err(Refusal::MethodNotAllowed)
        );
        for bad in [
            "/",
            "/devices//messages/events",
            "/devices/d1/messages/devicebound",
            "/devices/d%zz/messages/events",
            "/devices/d1/modules/messages/events",
        ] {
            assert_eq!(route(&Method::POST, bad), Err(Refusal::NotFound), "{bad}");
        }
    }

    #[test]
    fn headers_become_properties_and_the_connection_is_stamped() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("iothub-app-Level", "hot"),
            ("iothub-messageid", "m-1"),
            ("iothub-correlationid", "c-1"),
            ("iothub-userid", "u"),
            ("iothub-contenttype", "application/json"),
            ("iothub-contentencoding", "utf-8"),
            ("iothub-creation-time-utc", "2026-12-04T23:00:00Z"),
            ("content-type", "text/plain"),
            ("iothub-app-iothub-connection-device-id", "victim"),
            ("iothub-app-$connectionDeviceId", "victim"),
            ("iothub-connection-device-id", "victim"),
            ("user-agent", "curl"),
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let mut dropped = Vec::new();
        let m = event_message(
            &h,
            b"{}".to_vec(),
            &sender(Some("m1")),
            SystemTime::UNIX_EPOCH,
            &mut |n| dropped.push(n.to_string()),
        );
        check(&m).unwrap();
        let sys = &m.system_properties;
        assert_eq!(sys.get("messageId"), Some(Some("m-1")));
        assert_eq!(sys.get("correlationId"), Some(Some("c-1")));
        assert_eq!(sys.get("userId"), Some(Some("u")));
        assert_eq!(sys.get("contentType"), Some(Some("application/json")));
        assert_eq!(sys.get("contentEncoding"), Some(Some("utf-8")));
        assert_eq!(
            sys.get("iothub-creation-time-utc"),
            Some(Some("2026-12-04T23:00:00Z"))
        );
        assert_eq!(sys.get("connectionDeviceId"), Some(Some("d1")));
        assert_eq!(sys.get("connectionModuleId"), Some(Some("m1")));
        assert_eq!(sys.get("connectionDeviceGenerationId"), Some(Some("g1")));
        assert_eq!(
            sys.get("connectionAuthMethod"),
            Some(Some(
                r#"{"scope":"module","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#
            ))
        );
        assert_eq!(m.app_properties.get("level"), Some(Some("hot")));
        assert_eq!(m.app_properties.len(), 1);
        assert_eq!(dropped.len(), 2);
    }

    #[test]
    fn content_type_header_when_no_iothub_one_and_the_https_charset() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let m = event_message(
            &h,
            vec![],
            &sender(None),
            SystemTime::UNIX_EPOCH,
            &mut |_| {},
        );
        check(&m).unwrap();
        assert_eq!(
            m.system_properties.get("contentType"),
            Some(Some("application/json"))
        );
        assert_eq!(m.system_properties.get("connectionModuleId"), None);
        let mut h = HeaderMap::new();
        h.insert("iothub-app-a", HeaderValue::from_static("has space"));
        let m = event_message(
            &h,
            vec![],
            &sender(None),
            SystemTime::UNIX_EPOCH,
            &mut |_| {},
        );
        let e = check(&m).unwrap_err();
        assert_eq!(e.code(), "E0603");
        assert!(
            e.to_string().contains("E0321") || e.to_string().contains("charset"),
            "{e}"
        );
        let mut h = HeaderMap::new();
        h.insert("iothub-app-a", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let m = event_message(
            &h,
            vec![],
            &sender(None),
            SystemTime::UNIX_EPOCH,
            &mut |_| {},
        );
        let e = check(&m).unwrap_err();
        assert_eq!(e.code(), "E0603");
    }
}
