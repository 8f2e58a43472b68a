//! Device-to-cloud ingest: how a device's MQTT publish becomes a [`Message`] the router can
//! route, exactly as IoT Hub's MQTT gateway does it.
//!
//! * [`D2cTopic::parse`]: `devices/{deviceId}/messages/events/{property_bag}` and
//!   `devices/{deviceId}/modules/{moduleId}/messages/events/{property_bag}`.
//! * [`property_bag`]: the URL-encoded `key=value&…` bag, in both directions (the MQTT sink writes
//!   it too, following IoT Edge hub's wire names).
//! * [`Connection`] and [`d2c_message`]: the bag's system properties (`$.ct`, `$.ce`, `$.mid`,
//!   `$.cid`, `$.uid`, `$.to`, `iothub-creation-time-utc`), everything else an application
//!   property, then the anti-spoofing properties stamped from the connection
//!   (`connectionDeviceId`, `connectionModuleId`, `connectionAuthMethod`,
//!   `connectionDeviceGenerationId`, `enqueuedTime`), whatever the device wrote, and finally IoT
//!   Hub's message validation. Application properties that impersonate a stamped property
//!   (`$connectionDeviceId` in any case, `%24`-encoded or not, and the wire names) are dropped
//!   and reported (W0650): the message is still routed, as IoT Hub routes it, but never on the
//!   device's claim (see grammar/deviations.md, "Anti-spoofing").
//!
//! This module is plain code with no I/O, so the library, the fuzzers and the broker adapters
//! (feature `mqtt`) share one implementation. Errors carry stable codes `E06xx` ([`codes`]).

use std::time::SystemTime;

use crate::message::{names, Message, Protocol, Source, Violation};
use crate::sink::time::EnqueuedTimeText;

pub mod property_bag;

/// Stable codes of ingest errors. Codes are never reused.
pub mod codes {
    /// The topic is not a device-to-cloud telemetry topic.
    pub const NOT_D2C_TOPIC: &str = "E0601";
    /// The property bag is not valid URL encoding (bad `%` escape, not UTF-8, empty name).
    pub const MALFORMED_PROPERTY_BAG: &str = "E0602";
    /// The message breaks one of IoT Hub's message rules (the violations' own codes follow).
    pub const INVALID_MESSAGE: &str = "E0603";
    /// The input record is not a message (a stream entry that is not message JSON).
    pub const MALFORMED_RECORD: &str = "E0604";
    /// The device (or module) is not in the device registry the router was given.
    pub const UNKNOWN_DEVICE: &str = "E0605";
    /// The device is disabled in the device registry.
    pub const DISABLED_DEVICE: &str = "E0606";
    /// Warning: an application property named like a property the router stamps
    /// (`$connectionDeviceId`, `iothub-connection-device-id`, …) was dropped; the message is
    /// routed without it.
    pub const SPOOFING_PROPERTY_DROPPED: &str = "W0650";
}

/// Why a publish could not become a message. Each has a stable code ([`IngestError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// E0601: the topic does not have IoT Hub's device-to-cloud shape.
    #[error("E0601 not a device-to-cloud topic: {reason} (topic '{topic}')")]
    NotD2cTopic {
        /// The topic as received (lossy UTF-8).
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// E0602: the property bag cannot be decoded.
    #[error("E0602 malformed property bag at byte {offset}: {reason}")]
    MalformedPropertyBag {
        /// Byte offset of the problem within the bag.
        offset: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// E0603: the message breaks IoT Hub's message rules.
    #[error("E0603 invalid message: {}", describe_violations(.0))]
    InvalidMessage(Vec<Violation>),
    /// E0605: the sender is not a registered device.
    #[error("E0605 device '{0}' is not in the device registry")]
    UnknownDevice(String),
    /// E0606: the sender is disabled in the device registry.
    #[error("E0606 device '{0}' is disabled in the device registry")]
    DisabledDevice(String),
}

fn describe_violations(v: &[Violation]) -> String {
    v.iter()
        .map(|v| format!("{} {}", v.code, v.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl IngestError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::NotD2cTopic { .. } => codes::NOT_D2C_TOPIC,
            IngestError::MalformedPropertyBag { .. } => codes::MALFORMED_PROPERTY_BAG,
            IngestError::InvalidMessage(_) => codes::INVALID_MESSAGE,
            IngestError::UnknownDevice(_) => codes::UNKNOWN_DEVICE,
            IngestError::DisabledDevice(_) => codes::DISABLED_DEVICE,
        }
    }
}

/// A parsed device-to-cloud topic, borrowing from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct D2cTopic<'a> {
    /// The `{deviceId}` segment.
    pub device_id: &'a str,
    /// The `{moduleId}` segment of a module's topic.
    pub module_id: Option<&'a str>,
    /// The URL-encoded property bag (empty when there is none).
    pub property_bag: &'a str,
}

/// The MQTT topic filters that cover every device-to-cloud topic, for subscribing.
pub const D2C_TOPIC_FILTERS: [&str; 2] = [
    "devices/+/messages/events/#",
    "devices/+/modules/+/messages/events/#",
];

impl<'a> D2cTopic<'a> {
    /// Splits a topic. IoT Hub's devices publish to `devices/{id}/messages/events/` followed by
    /// an optional property bag; the trailing `/` may be missing when there is no bag. The bag
    /// itself may contain `/` (inside values, unencoded), so everything after `events/` is the bag.
    pub fn parse(topic: &'a str) -> Result<Self, IngestError> {
        let bad = |reason| IngestError::NotD2cTopic {
            topic: topic.to_string(),
            reason,
        };
        let rest = topic
            .strip_prefix("devices/")
            .ok_or_else(|| bad("it does not start with 'devices/'"))?;
        let (device_id, rest) = rest
            .split_once('/')
            .ok_or_else(|| bad("nothing follows the device id"))?;
        let (module_id, rest) = match rest.strip_prefix("modules/") {
            Some(m) => {
                let (module_id, rest) = m
                    .split_once('/')
                    .ok_or_else(|| bad("nothing follows the module id"))?;
                (Some(module_id), rest)
            }
            None => (None, rest),
        };
        let property_bag = match rest.strip_prefix("messages/events") {
            Some("") => "",
            Some(after) => after
                .strip_prefix('/')
                .ok_or_else(|| bad("'messages/events' must be followed by '/'"))?,
            None => {
                return Err(bad(
                    "expected 'messages/events' after the device or module id",
                ))
            }
        };
        check_identity(device_id).map_err(&bad)?;
        if let Some(m) = module_id {
            check_identity(m).map_err(&bad)?;
        }
        Ok(D2cTopic {
            device_id,
            module_id,
            property_bag,
        })
    }
}

/// IoT Hub's device and module id rules: 1 to 128 characters, ASCII letters and digits plus
/// `- . % _ * ? ! ( ) , : = @ $ '` (and `+ #` never reach us: they are MQTT wildcards).
fn check_identity(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("empty device or module id");
    }
    if id.len() > 128 {
        return Err("device or module id longer than 128 characters");
    }
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.%_*?!(),:=@$'".contains(&b));
    if ok {
        Ok(())
    } else {
        Err("device or module id with a character IoT Hub does not allow")
    }
}

/// What the hub knows about the sender from its connection, not from the message: the source of
/// every anti-spoofing system property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The authenticated device id.
    pub device_id: String,
    /// The authenticated module id, for a module's connection.
    pub module_id: Option<String>,
    /// `connectionAuthMethod`: a JSON object as text, e.g.
    /// `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`.
    pub auth_method: String,
    /// `connectionDeviceGenerationId`: the device identity's generation.
    pub generation_id: String,
}

impl Connection {
    /// The connection of a device (or module) that a broker authenticated: the identity is the
    /// topic's, `auth_method` says the broker vouched for it, and the generation id is the one
    /// given (IoT Hub's registry assigns it; [`Connection::UNREGISTERED_GENERATION`] without one).
    pub fn from_topic(topic: &D2cTopic<'_>, generation_id: Option<&str>) -> Self {
        let c = ConnectionRef::from_topic(topic, generation_id);
        Connection {
            device_id: c.device_id.to_string(),
            module_id: c.module_id.map(str::to_string),
            auth_method: c.auth_method.to_string(),
            generation_id: c.generation_id.to_string(),
        }
    }

    /// The same connection, borrowed.
    pub fn as_ref(&self) -> ConnectionRef<'_> {
        ConnectionRef {
            device_id: &self.device_id,
            module_id: self.module_id.as_deref(),
            auth_method: &self.auth_method,
            generation_id: &self.generation_id,
        }
    }

    /// The generation id stamped when no device registry says otherwise.
    pub const UNREGISTERED_GENERATION: &'static str = "0";
}

/// A [`Connection`] borrowed, for a caller that stamps message after message without copying
/// the connection for each (the bridge, from each publish's topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionRef<'a> {
    /// The authenticated device id.
    pub device_id: &'a str,
    /// The authenticated module id, for a module's connection.
    pub module_id: Option<&'a str>,
    /// `connectionAuthMethod`, a JSON object as text.
    pub auth_method: &'a str,
    /// `connectionDeviceGenerationId`.
    pub generation_id: &'a str,
}

impl<'a> ConnectionRef<'a> {
    /// [`Connection::from_topic`], borrowed from the topic and the generation id.
    pub fn from_topic(topic: &D2cTopic<'a>, generation_id: Option<&'a str>) -> Self {
        ConnectionRef {
            device_id: topic.device_id,
            module_id: topic.module_id,
            auth_method: if topic.module_id.is_some() {
                r#"{"scope":"module","type":"broker","issuer":"hubroute","acceptingIpFilterRule":null}"#
            } else {
                r#"{"scope":"device","type":"broker","issuer":"hubroute","acceptingIpFilterRule":null}"#
            },
            generation_id: generation_id.unwrap_or(Connection::UNREGISTERED_GENERATION),
        }
    }
}

/// Application property names a device may not set because they impersonate what the hub stamps
/// (wire names of the anti-spoofing properties, in IoT Hub's and IoT Edge's spellings). They are
/// dropped, as IoT Hub overwrites them. `$` and a stamped name ([`names::STAMPED`]) is dropped
/// too ([`is_spoofing_name`]).
const SPOOFABLE: [&str; 7] = [
    "iothub-connection-device-id",
    "iothub-connection-module-id",
    "iothub-connection-auth-method",
    "iothub-connection-auth-generation-id",
    "iothub-enqueuedtime",
    "$.cdid",
    "$.cmid",
];

/// The bag names a device may use for system properties, and the properties they set.
const DEVICE_SYSTEM_PROPERTIES: [(&str, &str); 7] = [
    ("$.ct", names::CONTENT_TYPE),
    ("$.ce", names::CONTENT_ENCODING),
    ("$.mid", names::MESSAGE_ID),
    ("$.cid", names::CORRELATION_ID),
    ("$.uid", names::USER_ID),
    ("$.to", names::TO),
    ("iothub-creation-time-utc", names::CREATION_TIME_UTC),
];

/// Whether a device may not set application property `name` (decoded from the bag, so
/// `%24connectionDeviceId` is `$connectionDeviceId`): a wire name of a stamped property
/// (`iothub-connection-device-id`, `$.cdid`, …), or `$` and a stamped name in any case
/// ([`names::is_stamped`]), which a condition's `$connectionDeviceId` would otherwise be
/// asked to read.
pub fn is_spoofing_name(name: &str) -> bool {
    SPOOFABLE.iter().any(|s| s.eq_ignore_ascii_case(name))
        || name.strip_prefix('$').is_some_and(names::is_stamped)
}

/// Builds the routable message of one device-to-cloud publish: decodes the bag, stamps the
/// connection's properties and `enqueuedTime`, and applies IoT Hub's MQTT message rules. The
/// message's source is `DeviceMessages`. Application properties named like the stamped ones
/// ([`is_spoofing_name`]) are dropped; [`d2c_message_reporting`] says which.
pub fn d2c_message(
    topic: &D2cTopic<'_>,
    payload: &[u8],
    connection: &Connection,
    enqueued: SystemTime,
) -> Result<Message, IngestError> {
    d2c_message_reporting(topic, payload, connection, enqueued, &mut |_| {})
}

/// Logs a dropped spoofing property (W0650) for any device input (MQTT, HTTPS, AMQP): the
/// first ten, then every thousandth with the running count, so a device sending them in a loop
/// cannot flood the log. The value is not logged.
pub fn log_spoofing_property(device: &str, name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DROPPED: AtomicU64 = AtomicU64::new(0);
    let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= 10 || n % 1000 == 0 {
        tracing::warn!(
            "warning[{}]: device '{device}' set application property '{name}', named like a \
             property the router stamps; dropped ({n} so far)",
            codes::SPOOFING_PROPERTY_DROPPED
        );
    }
}

/// [`d2c_message`], calling `dropped` with the name of each application property dropped
/// because a device may not set it ([`is_spoofing_name`]), so the caller can count and log
/// them ([`codes::SPOOFING_PROPERTY_DROPPED`]).
pub fn d2c_message_reporting(
    topic: &D2cTopic<'_>,
    payload: &[u8],
    connection: &Connection,
    enqueued: SystemTime,
    dropped: &mut dyn FnMut(&str),
) -> Result<Message, IngestError> {
    let mut msg = Message::default();
    d2c_into(
        &mut msg,
        topic,
        payload,
        connection.as_ref(),
        enqueued,
        dropped,
    )?;
    Ok(msg)
}

/// [`d2c_message_reporting`] into `msg`, replacing what it held and reusing its memory: a
/// stream of publishes read into one message allocates nothing once the message has held the
/// largest (the bridge). On an error `msg` holds part of the publish.
pub fn d2c_into(
    msg: &mut Message,
    topic: &D2cTopic<'_>,
    payload: &[u8],
    connection: ConnectionRef<'_>,
    enqueued: SystemTime,
    dropped: &mut dyn FnMut(&str),
) -> Result<(), IngestError> {
    msg.system_properties.clear();
    msg.app_properties.clear();
    msg.body.clear();
    msg.body.extend_from_slice(payload);
    msg.source = Some(Source::DeviceMessages);
    // A name with escapes is decoded here; most are not, and this stays unallocated.
    let mut name_buf = String::new();
    property_bag::decode_with(topic.property_bag, &mut name_buf, |name, value| {
        let spoofing = is_spoofing_name(name);
        let system = DEVICE_SYSTEM_PROPERTIES
            .iter()
            .find(|(wire, _)| wire.eq_ignore_ascii_case(name));
        let (bag, key) = match system {
            Some((_, system)) if !spoofing => (&mut msg.system_properties, *system),
            _ => (&mut msg.app_properties, name),
        };
        // Decoded even when dropped: a malformed value is the bag's error either way.
        let value = match value {
            Some(v) => {
                let mut text = bag.take_spare();
                v.unescape_into(&mut text)?;
                Some(text)
            }
            None => None,
        };
        if spoofing {
            if let Some(text) = value {
                bag.recycle(text);
            }
            dropped(name);
        } else {
            bag.insert_spare(key, value);
        }
        Ok(())
    })?;
    stamp_with(msg, connection, enqueued);
    let violations = msg.validate(Protocol::Mqtt);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(IngestError::InvalidMessage(violations))
    }
}

/// Sets the properties only the hub may set, replacing whatever the message carried.
pub fn stamp(msg: &mut Message, connection: &Connection, enqueued: SystemTime) {
    stamp_with(msg, connection.as_ref(), enqueued);
}

/// [`stamp`] from a borrowed connection.
pub fn stamp_with(msg: &mut Message, connection: ConnectionRef<'_>, enqueued: SystemTime) {
    let sys = &mut msg.system_properties;
    sys.insert_str(names::CONNECTION_DEVICE_ID, Some(connection.device_id));
    match connection.module_id {
        Some(m) => sys.insert_str(names::CONNECTION_MODULE_ID, Some(m)),
        None => {
            if let Some(Some(old)) = sys.remove(names::CONNECTION_MODULE_ID) {
                sys.recycle(old);
            }
        }
    }
    sys.insert_str(names::CONNECTION_AUTH_METHOD, Some(connection.auth_method));
    sys.insert_str(
        names::CONNECTION_DEVICE_GENERATION_ID,
        Some(connection.generation_id),
    );
    let time = EnqueuedTimeText::new(enqueued);
    sys.insert_str(names::ENQUEUED_TIME, Some(time.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn topics() {
        let t = D2cTopic::parse("devices/d1/messages/events/$.ct=application%2Fjson&a=1").unwrap();
        assert_eq!(t.device_id, "d1");
        assert_eq!(t.module_id, None);
        assert_eq!(t.property_bag, "$.ct=application%2Fjson&a=1");
        let t = D2cTopic::parse("devices/d1/modules/m-2/messages/events/").unwrap();
        assert_eq!((t.device_id, t.module_id), ("d1", Some("m-2")));
        assert_eq!(t.property_bag, "");
        assert_eq!(
            D2cTopic::parse("devices/d1/messages/events")
                .unwrap()
                .property_bag,
            ""
        );
        for bad in [
            "",
            "devices/",
            "devices//messages/events/",
            "devices/d1/messages/eventsX",
            "devices/d1/messages/devicebound/",
            "devices/d 1/messages/events/",
            "devices/d1/modules/messages/events/",
            "other/d1/messages/events/",
        ] {
            let e = D2cTopic::parse(bad).unwrap_err();
            assert_eq!(e.code(), codes::NOT_D2C_TOPIC, "{bad}");
        }
    }

    #[test]
    fn stamps_and_ignores_spoofed_values() {
        let topic = D2cTopic::parse(
            "devices/d1/modules/m1/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.mid=m-1\
             &iothub-connection-device-id=evil&$.cdid=evil&$.unknown=x&level=hot",
        )
        .unwrap();
        let conn = Connection::from_topic(&topic, Some("6369"));
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let msg = d2c_message(&topic, b"{}", &conn, at).unwrap();
        let sys = &msg.system_properties;
        assert_eq!(sys.get("contentType"), Some(Some("application/json")));
        assert_eq!(sys.get("contentEncoding"), Some(Some("utf-8")));
        assert_eq!(sys.get("messageId"), Some(Some("m-1")));
        assert_eq!(sys.get("connectionDeviceId"), Some(Some("d1")));
        assert_eq!(sys.get("connectionModuleId"), Some(Some("m1")));
        assert_eq!(sys.get("connectionDeviceGenerationId"), Some(Some("6369")));
        assert!(sys
            .get("connectionAuthMethod")
            .flatten()
            .unwrap()
            .contains(r#""scope":"module""#));
        assert_eq!(
            sys.get("enqueuedTime"),
            Some(Some("2023-11-14T22:13:20.1230000Z"))
        );
        let app = &msg.app_properties;
        assert_eq!(app.get("level"), Some(Some("hot")));
        assert_eq!(app.get("$.unknown"), Some(Some("x")));
        assert_eq!(app.get("iothub-connection-device-id"), None);
        assert_eq!(app.get("$.cdid"), None);
        assert_eq!(msg.source, Some(Source::DeviceMessages));
    }

    #[test]
    fn dollar_names_of_stamped_properties_are_dropped_and_reported() {
        let topic = D2cTopic::parse(
            "devices/evil/messages/events/%24connectionDeviceId=victim&$CONNECTIONMODULEID=m\
             &%24ConnectionAuthMethod=x&$connectiondevicegenerationid=9&%24enqueuedtime=t\
             &$connectionDeviceIdX=kept&$messageId=kept&connectionDeviceId=kept",
        )
        .unwrap();
        let conn = Connection::from_topic(&topic, None);
        let mut dropped = Vec::new();
        let msg = d2c_message_reporting(&topic, b"", &conn, SystemTime::now(), &mut |n| {
            dropped.push(n.to_string())
        })
        .unwrap();
        assert_eq!(
            dropped,
            [
                "$connectionDeviceId",
                "$CONNECTIONMODULEID",
                "$ConnectionAuthMethod",
                "$connectiondevicegenerationid",
                "$enqueuedtime"
            ]
        );
        let app: Vec<&str> = msg.app_properties.iter().map(|(n, _)| n).collect();
        assert_eq!(
            app,
            ["$connectionDeviceIdX", "$messageId", "connectionDeviceId"]
        );
        assert_eq!(
            msg.system_properties.get("connectionDeviceId"),
            Some(Some("evil"))
        );
        assert_eq!(msg.system_properties.get("connectionModuleId"), None);
    }

    #[test]
    fn invalid_messages_are_errors_with_codes() {
        let long_id = "x".repeat(200);
        let topic_text = format!("devices/d1/messages/events/$.mid={long_id}");
        let topic = D2cTopic::parse(&topic_text).unwrap();
        let conn = Connection::from_topic(&topic, None);
        let e = d2c_message(&topic, b"", &conn, SystemTime::now()).unwrap_err();
        assert_eq!(e.code(), codes::INVALID_MESSAGE);
        assert!(e.to_string().contains("E0322"), "{e}");
        let big = vec![b'a'; 300 * 1024];
        let topic = D2cTopic::parse("devices/d1/messages/events/").unwrap();
        let e = d2c_message(&topic, &big, &conn, SystemTime::now()).unwrap_err();
        assert!(e.to_string().contains("E0324"), "{e}");
        let topic = D2cTopic::parse("devices/d1/messages/events/a=%zz").unwrap();
        let e = d2c_message(&topic, b"", &conn, SystemTime::now()).unwrap_err();
        assert_eq!(e.code(), codes::MALFORMED_PROPERTY_BAG);
    }
}
