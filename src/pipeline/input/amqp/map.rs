//! An AMQP message from a device's events link as the routable [`Message`] IoT Hub makes of it
//! (Learn: "Create and read IoT Hub messages", "Communicate with IoT Hub using AMQP"):
//!
//! * `properties`: `message-id` → `messageId`, `correlation-id` → `correlationId`, `user-id` →
//!   `userId`, `to` → `to`, `content-type` → `contentType`, `content-encoding` →
//!   `contentEncoding`, `creation-time` → `iothub-creation-time-utc`;
//! * `application-properties` → application properties, each value as text (IoT Hub's
//!   properties are strings); `iothub-creation-time-utc` there (or as a message annotation, as
//!   the Azure C SDK sends it) is the system property;
//! * the body's data sections, concatenated (an `amqp-value` holding binary or a string is
//!   taken as its bytes; sequences are refused);
//! * then the connection's stamp ([`crate::ingest::stamp`]), so nothing the device sends
//!   overrides `connectionDeviceId` and the rest, and IoT Hub's AMQP message rules.
//!
//! Plain code, no I/O: the server and the unit tests share it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::types::messaging::{Body, Message as AmqpMessage, MessageId};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};

use super::codes;
use crate::ingest::{is_spoofing_name, stamp, Connection};
use crate::message::{names, Message, Protocol, Source};
use crate::sink::format_enqueued_time;

/// Why a transfer was not taken, with the AMQP error condition its rejection carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The stable code (`E0603`, `E0682`, …) under which it is dead-lettered.
    pub code: &'static str,
    /// What is wrong (never a secret: it names properties, not tokens).
    pub reason: String,
    /// The AMQP error condition of the `rejected` outcome.
    pub condition: &'static str,
    /// The body, when it could be read, for the dead letter.
    pub body: Option<Vec<u8>>,
}

/// `amqp:link:message-size-exceeded`: larger than IoT Hub's 256 KB.
pub const SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
/// `com.microsoft:argument-error`: a property breaks IoT Hub's message rules (Service Bus and
/// Event Hubs use this condition for a message the service will not take as it is).
pub const ARGUMENT_ERROR: &str = "com.microsoft:argument-error";
/// `amqp:decode-error`: a body or property of a kind IoT Hub messages cannot hold.
pub const DECODE_ERROR: &str = "amqp:decode-error";

/// Maps one transfer's message for `connection`, enqueued at `enqueued`. `dropped` hears the
/// name of each application property dropped because a device may not set it.
pub fn to_message(
    amqp: AmqpMessage<Body<Value>>,
    connection: &Connection,
    enqueued: SystemTime,
    dropped: &mut dyn FnMut(&str),
) -> Result<Message, Refusal> {
    let mut msg = Message {
        body: body_bytes(amqp.body)?,
        source: Some(Source::DeviceMessages),
        ..Message::default()
    };
    if let Some(p) = amqp.properties {
        let sys = &mut msg.system_properties;
        if let Some(id) = p.message_id {
            sys.insert(names::MESSAGE_ID, Some(message_id_text(&id)));
        }
        if let Some(id) = p.correlation_id {
            sys.insert(names::CORRELATION_ID, Some(message_id_text(&id)));
        }
        if let Some(user) = p.user_id {
            sys.insert(names::USER_ID, Some(bytes_text(&user)));
        }
        if let Some(to) = p.to {
            sys.insert(names::TO, Some(to));
        }
        if let Some(ct) = p.content_type {
            sys.insert(names::CONTENT_TYPE, Some(ct.0));
        }
        if let Some(ce) = p.content_encoding {
            sys.insert(names::CONTENT_ENCODING, Some(ce.0));
        }
        if let Some(t) = p.creation_time {
            sys.insert(
                names::CREATION_TIME_UTC,
                Some(timestamp_text(t.milliseconds())),
            );
        }
    }
    if let Some(annotations) = amqp.message_annotations {
        for (key, value) in annotations.0.iter() {
            let fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(name) = key else {
                continue;
            };
            if name.0.eq_ignore_ascii_case(names::CREATION_TIME_UTC) {
                if let Some(text) = value_text(value) {
                    msg.system_properties
                        .insert(names::CREATION_TIME_UTC, Some(text));
                }
            }
        }
    }
    if let Some(app) = amqp.application_properties {
        for (name, value) in app.0.into_iter() {
            if is_spoofing_name(&name) {
                dropped(&name);
                continue;
            }
            let Some(text) = simple_text(&value) else {
                return Err(Refusal {
                    code: codes::UNSUPPORTED_CONTENT,
                    reason: format!(
                        "application property '{name}' holds a {}; IoT Hub properties are \
                         strings, numbers, booleans, timestamps or UUIDs",
                        simple_kind(&value)
                    ),
                    condition: DECODE_ERROR,
                    body: Some(msg.body),
                });
            };
            if name.eq_ignore_ascii_case(names::CREATION_TIME_UTC) {
                msg.system_properties.insert(names::CREATION_TIME_UTC, text);
            } else {
                msg.app_properties.insert(name, text);
            }
        }
    }
    stamp(&mut msg, connection, enqueued);
    let violations = msg.validate(Protocol::Amqp);
    if violations.is_empty() {
        return Ok(msg);
    }
    let too_large = violations
        .iter()
        .any(|v| v.code == crate::message::MESSAGE_TOO_LARGE);
    Err(Refusal {
        code: crate::ingest::codes::INVALID_MESSAGE,
        reason: crate::ingest::IngestError::InvalidMessage(violations).to_string(),
        condition: if too_large {
            SIZE_EXCEEDED
        } else {
            ARGUMENT_ERROR
        },
        body: Some(msg.body),
    })
}

/// The body as IoT Hub keeps it: bytes.
fn body_bytes(body: Body<Value>) -> Result<Vec<u8>, Refusal> {
    match body {
        Body::Data(sections) => {
            let mut out = Vec::new();
            for d in sections.into_iter() {
                out.extend_from_slice(&d.0);
            }
            Ok(out)
        }
        Body::Empty => Ok(Vec::new()),
        Body::Value(v) => match v.0 {
            Value::Binary(b) => Ok(b.into_vec()),
            Value::String(s) => Ok(s.into_bytes()),
            Value::Null => Ok(Vec::new()),
            other => Err(Refusal {
                code: codes::UNSUPPORTED_CONTENT,
                reason: format!(
                    "the body is an amqp-value holding {}; send the bytes in a data section",
                    value_kind(&other)
                ),
                condition: DECODE_ERROR,
                body: None,
            }),
        },
        Body::Sequence(_) => Err(Refusal {
            code: codes::UNSUPPORTED_CONTENT,
            reason: "the body is an amqp-sequence; send the bytes in a data section".into(),
            condition: DECODE_ERROR,
            body: None,
        }),
    }
}

/// A message or correlation id as text: strings as they are, numbers in decimal, UUIDs in the
/// usual hyphenated form, binary as UTF-8 (base64 when it is not).
fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid_text(u.as_ref()),
        MessageId::Binary(b) => bytes_text(b),
    }
}

fn bytes_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(bytes)
        }
    }
}

fn uuid_text(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An AMQP timestamp (milliseconds since the Unix epoch) as IoT Hub writes times.
fn timestamp_text(ms: i64) -> String {
    let t = if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH
    };
    format_enqueued_time(t)
}

/// An application property's value as text; `Ok(None)` for null, `None` for binary.
fn simple_text(v: &SimpleValue) -> Option<Option<String>> {
    Some(Some(match v {
        SimpleValue::Null => return Some(None),
        SimpleValue::Bool(b) => b.to_string(),
        SimpleValue::Ubyte(n) => n.to_string(),
        SimpleValue::Ushort(n) => n.to_string(),
        SimpleValue::Uint(n) => n.to_string(),
        SimpleValue::Ulong(n) => n.to_string(),
        SimpleValue::Byte(n) => n.to_string(),
        SimpleValue::Short(n) => n.to_string(),
        SimpleValue::Int(n) => n.to_string(),
        SimpleValue::Long(n) => n.to_string(),
        SimpleValue::Float(f) => f.to_string(),
        SimpleValue::Double(f) => f.to_string(),
        SimpleValue::Char(c) => c.to_string(),
        SimpleValue::Timestamp(t) => timestamp_text(t.milliseconds()),
        SimpleValue::Uuid(u) => uuid_text(u.as_ref()),
        SimpleValue::String(s) => s.clone(),
        SimpleValue::Symbol(s) => s.0.clone(),
        _ => return None,
    }))
}

fn simple_kind(v: &SimpleValue) -> &'static str {
    match v {
        SimpleValue::Binary(_) => "binary value",
        _ => "decimal or other value without a text form",
    }
}

/// An annotation's value as text, when it is a string, symbol or timestamp.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Symbol(s) => Some(s.0.clone()),
        Value::Timestamp(t) => Some(timestamp_text(t.milliseconds())),
        _ => None,
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Array(_) => "an array",
        Value::Described(_) => "a described value",
        _ => "a number or other scalar",
    }
}
