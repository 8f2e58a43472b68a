//! The limits IoT Hub enforces on device-to-cloud and cloud-to-device
//! messages, checked all at once so a test tool can list every problem.
//!
//! Sources: IoT Hub messaging documentation ("Create and read IoT Hub
//! messages": system property and application property rules, 256 KB
//! message size, `iothub-creation-time-utc` format).

use super::names::{CREATION_TIME_UTC, CREATION_TIME_UTC_ALIAS, MESSAGE_ID};
use super::{KeyedName, Message};
use crate::body::{parse_iso, Zone};

/// The largest message IoT Hub accepts, in bytes.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;

/// The longest `messageId` IoT Hub accepts, in characters.
pub const MAX_MESSAGE_ID_LEN: usize = 128;

/// The protocol a message arrives or leaves by; it decides which charset
/// rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Device-to-cloud over MQTT.
    Mqtt,
    /// Device-to-cloud over AMQP.
    Amqp,
    /// Device-to-cloud over HTTPS: property names and values are HTTP
    /// headers and must use the restricted charset.
    Https,
    /// Cloud-to-device messages: same charset rule as HTTPS.
    CloudToDevice,
}

impl Protocol {
    fn restricts_property_charset(self) -> bool {
        matches!(self, Protocol::Https | Protocol::CloudToDevice)
    }
}

/// One broken rule. `code` is stable; `property` names the property
/// involved, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Stable code, `E0320`..`E0325`.
    pub code: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
    /// The property involved, if any.
    pub property: Option<String>,
}

/// E0320: an application property name outside the HTTP-safe charset.
pub const PROPERTY_NAME_CHARSET: &str = "E0320";
/// E0321: an application property value outside the HTTP-safe charset.
pub const PROPERTY_VALUE_CHARSET: &str = "E0321";
/// E0322: `messageId` longer than 128 characters.
pub const MESSAGE_ID_TOO_LONG: &str = "E0322";
/// E0323: `messageId` with a character outside its charset.
pub const MESSAGE_ID_CHARSET: &str = "E0323";
/// E0324: message larger than 256 KB.
pub const MESSAGE_TOO_LARGE: &str = "E0324";
/// E0325: `iothub-creation-time-utc` that is not a UTC ISO-8601 time.
pub const CREATION_TIME_FORMAT: &str = "E0325";

/// The ASCII alphanumerics plus `extra`, as a flag for each of the 256 bytes: every
/// message's id (and over HTTPS every property) is checked byte by byte, so one load per byte.
const fn ascii_table(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 128 {
        t[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// ASCII alphanumerics plus ``! # $ % & ' * + - . ^ _ ` | ~``.
static PROPERTY_TABLE: [bool; 256] = ascii_table(b"!#$%&'*+-.^_`|~");

/// ASCII alphanumerics plus `- : . + % _ # * ? ! ( ) , = @ ; $ '`.
static MESSAGE_ID_TABLE: [bool; 256] = ascii_table(b"-:.+%_#*?!(),=@;$'");

/// The system properties every message is checked for, keyed once (no hashing per message).
const MESSAGE_ID_KEYED: KeyedName = KeyedName::new(MESSAGE_ID);
const CREATION_TIMES: [KeyedName; 2] = [
    KeyedName::new(CREATION_TIME_UTC),
    KeyedName::new(CREATION_TIME_UTC_ALIAS),
];

/// Whether every byte of `s` is flagged in `table` (so `s` is ASCII).
#[inline]
fn all_in(s: &str, table: &[bool; 256]) -> bool {
    s.bytes().all(|b| table[usize::from(b)])
}

/// `yyyy-MM-ddTHH:mm:ss[.f{1,7}][Z]` with valid ranges and no offset.
fn is_utc_time(s: &str) -> bool {
    let core = s.strip_suffix('Z').unwrap_or(s);
    let b = core.as_bytes();
    let shape_ok = b.len() == 19
        || (b.len() >= 21
            && b.len() <= 27
            && b[19] == b'.'
            && b[20..].iter().all(u8::is_ascii_digit));
    shape_ok && parse_iso(core).is_some_and(|d| d.zone == Zone::Unspecified && d.hour < 24)
}

fn violation(code: &'static str, message: String, property: Option<&str>) -> Violation {
    Violation {
        code,
        message,
        property: property.map(str::to_string),
    }
}

impl Message {
    /// The size IoT Hub counts against the 256 KB limit: body bytes, plus
    /// the bytes of every system property value, plus the bytes of every
    /// application property name and value.
    pub fn size(&self) -> usize {
        let sys: usize = self
            .system_properties
            .iter()
            .map(|(_, v)| v.map_or(0, str::len))
            .sum();
        let app: usize = self
            .app_properties
            .iter()
            .map(|(n, v)| n.len() + v.map_or(0, str::len))
            .sum();
        self.body.len() + sys + app
    }

    /// Every IoT Hub rule the message breaks under `protocol`, in a stable
    /// order (property charset, messageId, size, creation time).
    pub fn validate(&self, protocol: Protocol) -> Vec<Violation> {
        let mut out = Vec::new();
        if protocol.restricts_property_charset() {
            for (name, value) in self.app_properties.iter() {
                if !all_in(name, &PROPERTY_TABLE) || name.is_empty() {
                    out.push(violation(
                        PROPERTY_NAME_CHARSET,
                        format!("application property name '{name}' may only contain ASCII letters, digits and !#$%&'*+-.^_`|~ over {protocol:?}"),
                        Some(name),
                    ));
                }
                if let Some(v) = value {
                    if !all_in(v, &PROPERTY_TABLE) {
                        out.push(violation(
                            PROPERTY_VALUE_CHARSET,
                            format!("the value of application property '{name}' may only contain ASCII letters, digits and !#$%&'*+-.^_`|~ over {protocol:?}"),
                            Some(name),
                        ));
                    }
                }
            }
        }
        if let Some(Some(id)) = self.system_properties.get_keyed(&MESSAGE_ID_KEYED) {
            let len = if id.is_ascii() {
                id.len()
            } else {
                id.chars().count()
            };
            if len > MAX_MESSAGE_ID_LEN {
                out.push(violation(
                    MESSAGE_ID_TOO_LONG,
                    format!(
                        "messageId is {len} characters long; the limit is {MAX_MESSAGE_ID_LEN}"
                    ),
                    Some(MESSAGE_ID),
                ));
            }
            if !all_in(id, &MESSAGE_ID_TABLE) {
                out.push(violation(
                    MESSAGE_ID_CHARSET,
                    "messageId may only contain ASCII letters, digits and -:.+%_#*?!(),=@;$'"
                        .to_string(),
                    Some(MESSAGE_ID),
                ));
            }
        }
        let size = self.size();
        if size > MAX_MESSAGE_SIZE {
            out.push(violation(
                MESSAGE_TOO_LARGE,
                format!(
                    "message is {size} bytes; IoT Hub accepts at most {MAX_MESSAGE_SIZE} (256 KB)"
                ),
                None,
            ));
        }
        for keyed in &CREATION_TIMES {
            let name = keyed.name();
            if let Some(Some(v)) = self.system_properties.get_keyed(keyed) {
                if !is_utc_time(v) {
                    out.push(violation(
                        CREATION_TIME_FORMAT,
                        format!("'{v}' is not a UTC ISO-8601 time such as 2024-01-02T03:04:05.123Z (no offset)"),
                        Some(name),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(m: &Message, p: Protocol) -> Vec<&'static str> {
        m.validate(p).into_iter().map(|v| v.code).collect()
    }

    /// The byte tables hold exactly the characters the documentation lists.
    #[test]
    fn charset_tables_match_the_documented_lists() {
        for c in (0..=255u8).map(char::from).chain(['\u{e9}', '\u{20ac}']) {
            let s = c.to_string();
            let property = c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            let id = c.is_ascii_alphanumeric() || "-:.+%_#*?!(),=@;$'".contains(c);
            assert_eq!(all_in(&s, &PROPERTY_TABLE), property, "{c:?}");
            assert_eq!(all_in(&s, &MESSAGE_ID_TABLE), id, "{c:?}");
        }
    }

    #[test]
    fn charset_only_where_the_protocol_needs_it() {
        let mut m = Message::default();
        m.app_properties
            .insert("ok-name", Some("fine.value".into()));
        m.app_properties
            .insert("bad name", Some("has space".into()));
        m.app_properties.insert("nullvalue", None);
        assert!(codes(&m, Protocol::Mqtt).is_empty());
        assert!(codes(&m, Protocol::Amqp).is_empty());
        assert_eq!(
            codes(&m, Protocol::Https),
            [PROPERTY_NAME_CHARSET, PROPERTY_VALUE_CHARSET]
        );
        let v = m.validate(Protocol::CloudToDevice);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].property.as_deref(), Some("bad name"));
    }

    #[test]
    fn message_id_rules() {
        let mut m = Message::default();
        m.system_properties
            .insert("MessageId", Some("abc-1:2.3+%_#*?!(),=@;$'".into()));
        assert!(codes(&m, Protocol::Mqtt).is_empty());
        m.system_properties
            .insert("messageId", Some("x".repeat(129)));
        assert_eq!(codes(&m, Protocol::Mqtt), [MESSAGE_ID_TOO_LONG]);
        m.system_properties
            .insert("messageId", Some(format!("{}/", "x".repeat(127))));
        assert_eq!(codes(&m, Protocol::Amqp), [MESSAGE_ID_CHARSET]);
        m.system_properties
            .insert("messageId", Some(format!("{} ", "x".repeat(200))));
        assert_eq!(
            codes(&m, Protocol::Amqp),
            [MESSAGE_ID_TOO_LONG, MESSAGE_ID_CHARSET]
        );
    }

    #[test]
    fn size_counts_what_iot_hub_counts() {
        let mut m = Message {
            body: vec![b'x'; 10],
            ..Message::default()
        };
        m.system_properties
            .insert("contentType", Some("abc".into()));
        m.app_properties.insert("k", Some("é".into()));
        m.app_properties.insert("n", None);
        assert_eq!(m.size(), 10 + 3 + 1 + 2 + 1);
        m.body = vec![b'x'; MAX_MESSAGE_SIZE - (m.size() - 10)];
        assert_eq!(m.size(), MAX_MESSAGE_SIZE);
        assert!(codes(&m, Protocol::Mqtt).is_empty());
        m.body.push(b'x');
        assert_eq!(codes(&m, Protocol::Mqtt), [MESSAGE_TOO_LARGE]);
    }

    #[test]
    fn creation_time_format() {
        for ok in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.123Z",
            "2024-01-02T03:04:05.1234567Z",
            "2024-02-29T23:59:59",
        ] {
            assert!(is_utc_time(ok), "{ok}");
        }
        for bad in [
            "2024-01-02T03:04:05+01:00",
            "2024-01-02T03:04:05.12345678Z",
            "2024-01-02T03:04:0512",
            "2023-02-29T00:00:00Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02",
            "garbage",
            "2024-01-02T03:04:05.Z",
        ] {
            assert!(!is_utc_time(bad), "{bad}");
        }
        let mut m = Message::default();
        m.system_properties
            .insert("iothub-creation-time-utc", Some("yesterday".into()));
        m.system_properties
            .insert("creationTimeUtc", Some("2024-01-02T03:04:05+01:00".into()));
        let v = m.validate(Protocol::Mqtt);
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|v| v.code == CREATION_TIME_FORMAT));
        assert_eq!(v[1].property.as_deref(), Some("creationTimeUtc"));
    }

    #[test]
    fn lists_every_violation() {
        let mut m = Message::default();
        m.app_properties.insert("a b", Some("c d".into()));
        m.system_properties
            .insert("messageId", Some("/".repeat(129)));
        m.system_properties
            .insert("creationTimeUtc", Some("x".into()));
        m.body = vec![0; MAX_MESSAGE_SIZE + 1];
        assert_eq!(
            codes(&m, Protocol::Https),
            [
                PROPERTY_NAME_CHARSET,
                PROPERTY_VALUE_CHARSET,
                MESSAGE_ID_TOO_LONG,
                MESSAGE_ID_CHARSET,
                MESSAGE_TOO_LARGE,
                CREATION_TIME_FORMAT
            ]
        );
    }
}
