//! The message JSON shape shared by the CLI, JSON Lines input and the
//! conformance corpus:
//! `{"systemProperties": {..}, "appProperties": {..}, "body": "<text>" |
//! "bodyBase64": "<base64>", "source": ".."}`.
//!
//! Loading keeps property order (the CLI echoes messages back), so text is
//! read through an order-preserving intermediate instead of
//! `serde_json::Value`, whose map is sorted.
//!
//! System property names are read in every spelling IoT Hub uses (the Learn query page's
//! `iothub-connection-device-id`, Event Hubs' `content-type`, Service Bus' `MessageId`, IoT Edge's
//! `$.ct`, …) and stored under the routing name (`connectionDeviceId`, `contentType`), so a
//! message copied from any of those places routes as it did there.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::naming::{canonical_name, MESSAGE_SOURCE};
use super::{eq_ignore_case, Message, Properties, Source};

/// Why a message JSON document cannot be loaded. Each variant has a stable
/// code ([`MessageError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// E0301, e.g. `{"body": ` (text that is not JSON).
    #[error("message is not valid JSON: {message} at line {line}, column {column}")]
    InvalidJson {
        /// serde_json's description, without its position (given once, by `line` and `column`).
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// E0302, e.g. `[1, 2]`.
    #[error("a message must be a JSON object")]
    NotAnObject,
    /// E0303, e.g. `{"appProperties": []}`.
    #[error("'{field}' must be an object of property names to string or null values")]
    PropertiesNotObject {
        /// `systemProperties` or `appProperties`.
        field: &'static str,
    },
    /// E0304, e.g. `{"appProperties": {"temp": 5}}`.
    #[error("property '{name}' in '{field}' must be a string or null")]
    PropertyValueNotString {
        /// `systemProperties` or `appProperties`.
        field: &'static str,
        /// The property name.
        name: String,
    },
    /// E0305, e.g. `{"body": "x", "bodyBase64": "eA=="}`.
    #[error("a message has either 'body' or 'bodyBase64', not both")]
    BodyAndBodyBase64,
    /// E0306, e.g. `{"body": {"a": 1}}` (the body must be given as text).
    #[error("'{field}' must be a string")]
    FieldNotString {
        /// `body`, `bodyBase64` or `source`.
        field: &'static str,
    },
    /// E0307, e.g. `{"bodyBase64": "not base64!"}`.
    #[error("'bodyBase64' is not valid base64: {message}")]
    InvalidBase64 {
        /// The decoder's description.
        message: String,
    },
    /// E0308, e.g. `{"properties": {}}`.
    #[error("unknown message field '{name}'; expected systemProperties, appProperties, body, bodyBase64 or source")]
    UnknownField {
        /// The field name.
        name: String,
    },
    /// E0310, e.g. `{"EnqueuedTimeUtc": "…", "Properties": {}, …}`: a record a Storage endpoint
    /// wrote, which `hubroute inspect` turns into message JSON.
    #[error("this is a Storage record ('{name}'), not message JSON: turn Storage files into messages with `hubroute inspect FILE`, e.g. `hubroute inspect DIR | hubroute run --input - …`")]
    StorageRecord {
        /// The Storage record field met.
        name: String,
    },
    /// E0309, e.g. `{"source": "events"}`.
    #[error("{0}")]
    UnknownSource(#[from] super::source::UnknownSource),
}

impl MessageError {
    /// The stable diagnostic code.
    pub fn code(&self) -> &'static str {
        match self {
            MessageError::InvalidJson { .. } => "E0301",
            MessageError::NotAnObject => "E0302",
            MessageError::PropertiesNotObject { .. } => "E0303",
            MessageError::PropertyValueNotString { .. } => "E0304",
            MessageError::BodyAndBodyBase64 => "E0305",
            MessageError::FieldNotString { .. } => "E0306",
            MessageError::InvalidBase64 { .. } => "E0307",
            MessageError::UnknownField { .. } => "E0308",
            MessageError::UnknownSource(_) => "E0309",
            MessageError::StorageRecord { .. } => "E0310",
        }
    }
}

/// An order-preserving JSON value that keeps only what loading needs:
/// strings and the entries of objects; serde_json's recursion limit bounds
/// its depth.
enum Raw {
    Null,
    String(String),
    Object(Vec<(String, Raw)>),
    Other,
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Raw, E> {
                Ok(Raw::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Raw, E> {
                Ok(Raw::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Raw, E> {
                Ok(Raw::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Raw, E> {
                Ok(Raw::Other)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Raw, E> {
                Ok(Raw::String(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Raw, E> {
                Ok(Raw::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Raw::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Raw>()? {
                    entries.push((k, v));
                }
                Ok(Raw::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// Converts a `Value` two object levels deep; deeper objects are never
/// valid there, so their content is not needed.
fn raw_from_value(v: &Value, depth: u8) -> Raw {
    match v {
        Value::Null => Raw::Null,
        Value::String(s) => Raw::String(s.clone()),
        Value::Object(m) if depth < 2 => Raw::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), raw_from_value(v, depth + 1)))
                .collect(),
        ),
        _ => Raw::Other,
    }
}

fn properties(field: &'static str, raw: Raw) -> Result<Properties, MessageError> {
    let Raw::Object(entries) = raw else {
        return Err(MessageError::PropertiesNotObject { field });
    };
    let mut props = Properties::new();
    for (name, value) in entries {
        let value = match value {
            Raw::Null => None,
            Raw::String(s) => Some(s),
            _ => return Err(MessageError::PropertyValueNotString { field, name }),
        };
        props.insert(name, value);
    }
    Ok(props)
}

/// `systemProperties` in any spelling IoT Hub uses (`iothub-connection-device-id`, `content-type`,
/// `MessageId`, `$.ct`, …; see [`super::naming`]), stored under the routing name so `$name` finds
/// it; plus the built-in endpoint's `iothub-message-source`, which is the message's source.
fn system_properties(raw: Raw) -> Result<(Properties, Option<Source>), MessageError> {
    let props = properties("systemProperties", raw)?;
    let mut out = Properties::new();
    let mut source = None;
    for (name, value) in props.iter() {
        if eq_ignore_case(name, MESSAGE_SOURCE) {
            if let Some(v) = value {
                source = Some(v.parse::<Source>()?);
            }
            continue;
        }
        // Another spelling becomes the routing name; the routing name in another case stays as
        // written (lookups ignore case), so loading what to_json_value wrote changes nothing.
        let name = match canonical_name(name) {
            Some(c) if !eq_ignore_case(c, name) => c,
            _ => name,
        };
        out.insert(name, value.map(str::to_string));
    }
    Ok((out, source))
}

fn string_field(field: &'static str, raw: Raw) -> Result<String, MessageError> {
    match raw {
        Raw::String(s) => Ok(s),
        _ => Err(MessageError::FieldNotString { field }),
    }
}

/// Standard alphabet; padding optional, as hand-written fixtures vary.
pub(super) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn from_raw(raw: Raw) -> Result<Message, MessageError> {
    let Raw::Object(fields) = raw else {
        return Err(MessageError::NotAnObject);
    };
    let mut message = Message::default();
    let mut body: Option<Vec<u8>> = None;
    let mut body_base64: Option<Vec<u8>> = None;
    for (name, value) in fields {
        match name.as_str() {
            "systemProperties" => {
                let (props, source) = system_properties(value)?;
                message.system_properties = props;
                if message.source.is_none() {
                    message.source = source;
                }
            }
            "appProperties" => message.app_properties = properties("appProperties", value)?,
            "body" => body = Some(string_field("body", value)?.into_bytes()),
            "bodyBase64" => {
                let text = string_field("bodyBase64", value)?;
                let bytes =
                    BASE64
                        .decode(text.trim())
                        .map_err(|e| MessageError::InvalidBase64 {
                            message: e.to_string(),
                        })?;
                body_base64 = Some(bytes);
            }
            // An explicit source wins over `iothub-message-source` in either order.
            "source" => {
                message.source = match value {
                    Raw::Null => None,
                    other => Some(string_field("source", other)?.parse::<Source>()?),
                }
            }
            "EnqueuedTimeUtc" | "Properties" | "SystemProperties" | "Body" => {
                return Err(MessageError::StorageRecord { name })
            }
            _ => return Err(MessageError::UnknownField { name }),
        }
    }
    message.body = match (body, body_base64) {
        (Some(_), Some(_)) => return Err(MessageError::BodyAndBodyBase64),
        (Some(b), None) | (None, Some(b)) => b,
        (None, None) => Vec::new(),
    };
    Ok(message)
}

/// A JSON string as serde_json writes it (the same escapes), runs without a byte to escape
/// copied whole: serde_json's escaper, a byte at a time, was a quarter of the bridge's own
/// work on the benchmark's bodies.
fn write_json_string(text: &str, out: &mut Vec<u8>) {
    crate::json_text::push_string(out, text.as_bytes());
}

/// [`properties_value`]'s text: names in byte order, and of names spelled exactly alike the
/// last one, as a `Map` built from them keeps.
fn write_properties(p: &Properties, out: &mut Vec<u8>) {
    // Sorted on the stack when they fit (a message's bags are small; the bridge writes one per
    // message).
    let mut on_stack = [("", None); 16];
    let mut on_heap = Vec::new();
    let pairs: &mut [(&str, Option<&str>)] = if p.len() <= on_stack.len() {
        for (slot, pair) in on_stack.iter_mut().zip(p.iter()) {
            *slot = pair;
        }
        &mut on_stack[..p.len()]
    } else {
        on_heap.extend(p.iter());
        &mut on_heap
    };
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    let mut first = true;
    for (i, (name, value)) in pairs.iter().enumerate() {
        if pairs.get(i + 1).is_some_and(|next| next.0 == *name) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_json_string(name, out);
        out.push(b':');
        match value {
            Some(v) => write_json_string(v, out),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

fn properties_value(p: &Properties) -> Value {
    Value::Object(
        p.iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    v.map_or(Value::Null, |v| Value::String(v.into())),
                )
            })
            .collect(),
    )
}

impl Message {
    /// Loads a message from its JSON text.
    pub fn from_json_str(text: &str) -> Result<Message, MessageError> {
        let mut message = Message::default();
        message.read_json_str(text)?;
        Ok(message)
    }

    /// [`Message::from_json_str`] into this message, replacing all of it and reusing its
    /// memory (property strings, body): a stream of lines read into one message allocates
    /// nothing once the message has held its largest line. On an error the message is left
    /// in an unspecified (valid) state.
    ///
    /// Lines are read in one pass (the crate's `message::json_scan`); what that pass does not take (every
    /// invalid line, and rare shapes such as repeated system property names) is loaded by
    /// the general path, which also gives each error's code, text and position.
    pub fn read_json_str(&mut self, text: &str) -> Result<(), MessageError> {
        let mut scratch = String::new();
        if super::json_scan::read_into(self, text, &mut scratch).is_ok() {
            return Ok(());
        }
        *self = Message::from_json_str_general(text)?;
        Ok(())
    }

    /// The general loader: an order-keeping tree of the whole document (serde_json), then
    /// the message's rules field by field. Public only as the reference the fuzz target
    /// compares [`Message::from_json_str`]'s one-pass reader with.
    #[doc(hidden)]
    pub fn from_json_str_general(text: &str) -> Result<Message, MessageError> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| {
            let full = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            MessageError::InvalidJson {
                message: full.strip_suffix(&at).unwrap_or(&full).to_string(),
                line: e.line(),
                column: e.column(),
            }
        })?;
        from_raw(raw)
    }

    /// Loads a message from an already parsed JSON value (property order is
    /// the value's map order).
    pub fn from_json_value(value: &Value) -> Result<Message, MessageError> {
        from_raw(raw_from_value(value, 0))
    }

    /// The JSON shape [`Message::from_json_str`] reads: the body as `body`
    /// when it is valid UTF-8, else as `bodyBase64`.
    pub fn to_json_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "systemProperties".into(),
            properties_value(&self.system_properties),
        );
        m.insert(
            "appProperties".into(),
            properties_value(&self.app_properties),
        );
        match std::str::from_utf8(&self.body) {
            Ok(text) => m.insert("body".into(), Value::String(text.into())),
            Err(_) => m.insert(
                "bodyBase64".into(),
                Value::String(BASE64.encode(&self.body)),
            ),
        };
        if let Some(src) = self.source {
            m.insert("source".into(), Value::String(src.to_string()));
        }
        Value::Object(m)
    }

    /// [`Message::to_json_value`]'s text (what `.to_string()` of it gives) written straight
    /// into `out`, without building the tree: the bridge writes every message it appends to
    /// the stream this way (the tree cost two allocations per property).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // serde_json's `Map` orders keys (no `preserve_order`): appProperties, body or
        // bodyBase64, source, systemProperties.
        out.extend_from_slice(b"{\"appProperties\":");
        write_properties(&self.app_properties, out);
        match std::str::from_utf8(&self.body) {
            Ok(text) => {
                out.extend_from_slice(b",\"body\":");
                write_json_string(text, out);
            }
            Err(_) => {
                out.extend_from_slice(b",\"bodyBase64\":");
                write_json_string(&BASE64.encode(&self.body), out);
            }
        }
        if let Some(src) = self.source {
            out.extend_from_slice(b",\"source\":");
            write_json_string(src.arm_name(), out);
        }
        out.extend_from_slice(b",\"systemProperties\":");
        write_properties(&self.system_properties, out);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> MessageError {
        Message::from_json_str(text).unwrap_err()
    }

    #[test]
    fn loads_the_corpus_shape() {
        let m = Message::from_json_str(
            r#"{"appProperties": {"b": "2", "a": null}, "systemProperties": {"contentType": "application/json"},
                "body": "{\"x\":1}", "source": "telemetry"}"#,
        )
        .unwrap();
        assert_eq!(m.app_properties.get("A"), Some(None));
        let names: Vec<_> = m.app_properties.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "a"], "order kept");
        assert_eq!(
            m.system_properties.get("CONTENTTYPE"),
            Some(Some("application/json"))
        );
        assert_eq!(m.body, br#"{"x":1}"#);
        assert_eq!(m.source, Some(Source::DeviceMessages));

        let m = Message::from_json_str(r#"{"bodyBase64": "AP8="}"#).unwrap();
        assert_eq!(m.body, [0, 255]);
        assert!(m.app_properties.is_empty() && m.system_properties.is_empty());
        assert_eq!(Message::from_json_str("{}").unwrap(), Message::default());
    }

    #[test]
    fn errors_have_codes() {
        let e = err("{\n \"body\": ");
        assert_eq!(e.code(), "E0301");
        assert!(matches!(e, MessageError::InvalidJson { line: 2, .. }));
        assert_eq!(
            err("{x}").to_string(),
            "message is not valid JSON: key must be a string at line 1, column 2",
            "the position is said once"
        );
        assert_eq!(err("[1]").code(), "E0302");
        assert_eq!(err(r#"{"appProperties": []}"#).code(), "E0303");
        let e = err(r#"{"appProperties": {"temp": 5}}"#);
        assert_eq!(e.code(), "E0304");
        assert!(e.to_string().contains("'temp'"));
        assert_eq!(
            err(r#"{"body": "x", "bodyBase64": "eA=="}"#).code(),
            "E0305"
        );
        assert_eq!(err(r#"{"body": {"a": 1}}"#).code(), "E0306");
        assert_eq!(err(r#"{"bodyBase64": "not base64!"}"#).code(), "E0307");
        let e = err(r#"{"properties": {}}"#);
        assert_eq!(e.code(), "E0308");
        assert!(e.to_string().contains("'properties'"));
        let e = err(r#"{"EnqueuedTimeUtc": "t", "Body": "x"}"#);
        assert_eq!(e.code(), "E0310");
        assert!(e.to_string().contains("hubroute inspect"));
        let e = err(r#"{"source": "events"}"#);
        assert_eq!(e.code(), "E0309");
        assert!(e.to_string().contains("DeviceMessages"));
    }

    /// `write_json` writes exactly `to_json_value().to_string()`: for messages with every
    /// kind of string (quotes, backslashes, control bytes, non-ASCII, names alike but for
    /// case, null values), UTF-8 and binary bodies, with and without a source; and the text
    /// reads back as the same message.
    #[test]
    fn write_json_is_the_value_trees_text() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let pieces = [
            "a", "Z", "\"", "\\", "/", "\n", "\u{1}", "\u{1f}", "\u{7f}", "é", "€", "𝄞", " ",
            "$.x", "{", "}",
        ];
        /// Up to `max` pieces.
        fn word(rng: &mut Rng, pieces: &[&str], max: usize) -> String {
            (0..rng.below(max))
                .map(|_| pieces[rng.below(pieces.len())])
                .collect()
        }
        for round in 0..500 {
            let mut m = Message::default();
            for _ in 0..rng.below(6) {
                let (name, value) = (word(&mut rng, &pieces, 4), word(&mut rng, &pieces, 6));
                m.app_properties
                    .insert(name, (rng.below(4) != 0).then_some(value));
            }
            m.app_properties
                .insert("Site", Some(word(&mut rng, &pieces, 3)));
            m.app_properties.insert("site", None);
            m.system_properties
                .insert("messageId", Some(format!("m{round}")));
            if rng.below(2) == 0 {
                m.system_properties
                    .insert("contentType", Some(word(&mut rng, &pieces, 5)));
            }
            m.body = match rng.below(3) {
                // Up to 40 pieces: texts past a 16-byte block, escapes anywhere in one.
                0 => word(&mut rng, &pieces, 40).into_bytes(),
                1 => vec![0xff, 0, b'a', 0x80],
                _ => Vec::new(),
            };
            m.source = [
                None,
                Some(Source::DeviceMessages),
                Some(Source::TwinChangeEvents),
            ][rng.below(3)];
            let mut out = Vec::new();
            m.write_json(&mut out);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text, m.to_json_value().to_string(), "round {round}");
            let back = Message::from_json_str(&text).unwrap();
            assert_eq!(back.to_json_value(), m.to_json_value(), "round {round}");
        }
    }

    #[test]
    fn reads_every_system_property_spelling() {
        let m = Message::from_json_str(
            r#"{"systemProperties": {"iothub-connection-device-id": "d1", "content-type": "application/json",
                "ContentEncoding": "utf-8", "iothub-enqueuedtime": "2024-01-01T00:00:00Z", "MessageId": "m1",
                "iothub-content-type": "application/json", "$.cmid": "mod", "iothub-message-source": "Telemetry",
                "dt-subject": "c"}}"#,
        )
        .unwrap();
        let names: Vec<_> = m.system_properties.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "connectionDeviceId",
                "contentType",
                "ContentEncoding",
                "enqueuedTime",
                "MessageId",
                "connectionModuleId",
                "dt-subject"
            ]
        );
        assert_eq!(m.source, Some(Source::DeviceMessages));
        assert_eq!(
            m.system_properties.get("contentType"),
            Some(Some("application/json"))
        );
        let m = Message::from_json_str(
            r#"{"source": "twinChangeEvents", "systemProperties": {"iothub-message-source": "Telemetry"}}"#,
        )
        .unwrap();
        assert_eq!(
            m.source,
            Some(Source::TwinChangeEvents),
            "an explicit source wins"
        );
        assert_eq!(
            err(r#"{"systemProperties": {"iothub-message-source": "nope"}}"#).code(),
            "E0309"
        );
    }

    #[test]
    fn round_trips() {
        let mut m = Message::default();
        m.system_properties
            .insert("contentType", Some("application/json".into()));
        m.app_properties.insert("k", None);
        m.body = b"{\"a\":1}".to_vec();
        m.source = Some(Source::TwinChangeEvents);
        let v = m.to_json_value();
        assert_eq!(v["body"], "{\"a\":1}");
        assert_eq!(Message::from_json_value(&v).unwrap(), m);
        assert_eq!(Message::from_json_str(&v.to_string()).unwrap(), m);

        m.body = vec![0xFF, 0xFE, 0x00];
        let v = m.to_json_value();
        assert_eq!(v["bodyBase64"], "//4A");
        assert!(v.get("body").is_none());
        assert_eq!(Message::from_json_value(&v).unwrap(), m);
    }

    #[test]
    fn from_value_reports_the_same_errors() {
        let v: Value = serde_json::json!({"appProperties": {"x": {"deep": {"deeper": 1}}}});
        assert_eq!(Message::from_json_value(&v).unwrap_err().code(), "E0304");
        assert_eq!(
            Message::from_json_value(&Value::Null).unwrap_err().code(),
            "E0302"
        );
    }

    /// Deterministic xorshift, for the differential test's mutations.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// The one-pass reader and the general path agree on `text`: the same message, or the
    /// same error (the reader never accepts what the general path refuses). Returns whether
    /// the one-pass reader took the line itself.
    fn agree(text: &str) -> bool {
        let general = Message::from_json_str_general(text);
        let mut reused =
            Message::from_json_str(r#"{"appProperties":{"old":"x"},"body":"old"}"#).unwrap();
        let fast = reused.read_json_str(text).map(|()| reused);
        assert_eq!(fast, general, "{text:?}");
        let mut scratch = String::new();
        super::super::json_scan::read_into(&mut Message::default(), text, &mut scratch).is_ok()
    }

    const SEEDS: [&str; 6] = [
        r#"{"systemProperties":{"messageId":"m1","content-type":"application/json","iothub-message-source":"Telemetry","$.cdid":"d"},"appProperties":{"a":"1","B":null,"A":"2"},"body":"{\"x\":1}","source":"twinChangeEvents"}"#,
        r#"{"bodyBase64":"AP8=","appProperties":{}}"#,
        " { } ",
        r#"{"source":null,"systemProperties":{"iothub-message-source":"twinChangeEvents"},"appProperties":{"\u00e9t\u00e9":"\ud83d\ude00 \u0041"}}"#,
        r#"{"systemProperties":{"connectionAuthMethod":"{\"scope\":\"device\"}","ContentType":"a"},"body":"\/x\ty"}"#,
        "{\"appProperties\":{\"k\":\"v\"},\t\"body\"\r\n:\"é\"}",
    ];

    const TOKENS: [&str; 34] = [
        "\"",
        "\\",
        "{",
        "}",
        ",",
        ":",
        "null",
        "1",
        " ",
        "\\u0000",
        "\\ud83d",
        "\\ude00",
        "é",
        "\"systemProperties\":{}",
        "\"body\":\"x\"",
        "\"bodyBase64\":\"eA==\"",
        "\"source\":\"twinChangeEvents\"",
        "\"iothub-message-source\":\"Telemetry\"",
        "\"content-type\":\"a\"",
        "\"CONTENTTYPE\":\"b\"",
        "\t",
        "\n",
        "\\u0062",
        "[]",
        "\\/",
        "\u{1}",
        "\"appProperties\":{\"a\":null}",
        ",\"x\":\"y\"",
        "\u{feff}",
        "\\n",
        "=",
        " eA== ",
        "true",
        "\"\\u0062ody\":\"z\"",
    ];

    fn mutate(rng: &mut Rng, text: &str) -> String {
        let mut s = text.to_string();
        for _ in 0..1 + rng.below(3) {
            let mut at = rng.below(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => s.insert_str(at, TOKENS[rng.below(TOKENS.len())]),
                1 => {
                    let mut end = (at + 1 + rng.below(8)).min(s.len());
                    while !s.is_char_boundary(end) {
                        end += 1;
                    }
                    s.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + rng.below(40)).min(s.len());
                    while !s.is_char_boundary(end) {
                        end += 1;
                    }
                    let copy = s[at..end].to_string();
                    s.insert_str(at, &copy);
                }
            }
        }
        s
    }

    fn bench_lines(n: usize) -> Vec<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/bench/messages-10k.jsonl"
        );
        let text = std::fs::read_to_string(path).expect("../shared/bench/messages-10k.jsonl");
        text.lines().take(n).map(str::to_string).collect()
    }

    /// The benchmark's lines are read in one pass (not by the general path), as they were.
    #[test]
    fn the_one_pass_reader_takes_the_benchmark_lines() {
        let mut m = Message::default();
        let mut scratch = String::new();
        for line in bench_lines(2000) {
            assert_eq!(
                super::super::json_scan::read_into(&mut m, &line, &mut scratch),
                Ok(()),
                "{line}"
            );
            assert_eq!(m, Message::from_json_str_general(&line).unwrap());
        }
        for seed in SEEDS {
            assert!(
                super::super::json_scan::read_into(&mut m, seed, &mut scratch).is_ok(),
                "{seed}"
            );
        }
    }

    /// Differential over a stream: lines read one after another into one reused message (whose
    /// bags keep the last line's names for the next: `Properties::insert_line_name`) load as
    /// the general path loads each alone, when the names repeat, move, drop out, change case
    /// or spelling, or repeat within a line.
    #[test]
    fn a_reused_message_reads_a_stream_as_the_general_path_reads_each_line() {
        let mut lines = bench_lines(300);
        let variants: Vec<String> = lines
            .iter()
            .take(60)
            .flat_map(|l| {
                [
                    l.replace("\"priority\"", "\"PRIORITY\""),
                    l.replace("\"site\"", "\"priority\""),
                    l.replace("\"messageId\"", "\"message-id\""),
                    l.replace("\"contentType\"", "\"messageId\""),
                    l.replace("\"contentType\"", "\"CONTENT-TYPE\""),
                    l.replace("\"env\"", "\"\\u0065nv\""),
                    // Names a kept name is a prefix of, or that hold escapes the kept
                    // name (when plain) could be mistaken for.
                    l.replace("\"env\"", "\"envs\""),
                    l.replace("\"env\"", "\"env\\\"x\""),
                    l.replace("\"env\"", "\"env\\\\\""),
                    l.replace("\"env\"", "\"env\\n\""),
                    l.replace("\"contentType\"", "\"contentType\\\"\""),
                    l.replace("\"contentType\"", "\"content\\u0054ype\""),
                    l.replace("\"env\"", "\"\u{212a}\""),
                    // A kept name after the same name in another case, which the bag holds
                    // already (replaced in an application bag, refused in a system one).
                    l.replace("\"messageType\"", "\"PRIORITY\""),
                    l.replace("\"messageId\"", "\"CONTENTTYPE\""),
                    l.replace("\"messageId\"", "\"Content-Type\""),
                    l.replace("\"enqueuedTime\"", "\"iothub-message-source\""),
                    l.replace("\"tenant\":", "\"\":"),
                    l.replace("\"messageType\":", "\"\":\"\",\"\":"),
                    l.replace(
                        "\"connectionDeviceId\":",
                        "\"\":\"x\",\"connectionDeviceId\":",
                    ),
                    // System names taken back from anywhere among the kept ones: an optional
                    // one first (a duplicate where the line has it), a respelled one after a new name.
                    l.replace(
                        "{\"systemProperties\":{",
                        "{\"systemProperties\":{\"correlationId\":\"c\",",
                    ),
                    l.replace(
                        "\"connectionDeviceId\":\"",
                        "\"x\":\"\",\"iothub-connection-device-id\":\"",
                    ),
                    l.replace("\"messageId\"", "\"connectionDeviceId\""),
                ]
            })
            .collect();
        for (i, v) in variants.into_iter().enumerate() {
            lines.insert(1 + i * 5 % lines.len(), v);
        }
        lines.extend(SEEDS.iter().map(|s| s.to_string()));
        let mut reused = Message::default();
        for _ in 0..2 {
            for line in &lines {
                let fast = reused.read_json_str(line).map(|()| reused.clone());
                assert_eq!(fast, Message::from_json_str_general(line), "{line}");
            }
        }
    }

    /// Escaped property values of every length up to past the reach of their one-pass
    /// unescaping (`json_scan::ESCAPED_REACH`, 192 bytes), so ending inside it, at its edge and
    /// past it, with a last escape of each kind or a bad one: loaded alike by both paths, each
    /// valid one in one pass; and the same lines as a stream into one reused message, with
    /// each bag given twice (the second replaces the first).
    #[test]
    fn escaped_values_of_every_length_agree() {
        let tails = [
            "\\\"", "\\\\", "\\n", "\\u00e9", "x", "\\x", "\u{1}", "\\ud800",
        ];
        let mut lines = Vec::new();
        for len in 0..240 {
            for (t, tail) in tails.into_iter().enumerate() {
                let value = format!("{}{}{tail}", "\\\"a".repeat(len / 3), "b".repeat(len % 3));
                for line in [
                    format!(
                        r#"{{"systemProperties":{{"connectionAuthMethod":"{value}","contentType":"a"}},"body":"x"}}"#
                    ),
                    format!(r#"{{"appProperties":{{"k":"{value}","j":"1"}}}}"#),
                    format!(
                        r#"{{"appProperties":{{"k":"1"}},"appProperties":{{"k":"{value}"}},"systemProperties":{{}},"systemProperties":{{"a":"{value}"}}}}"#
                    ),
                ] {
                    assert_eq!(agree(&line), t < 5, "{line}");
                    lines.push(line);
                }
            }
        }
        let mut reused = Message::default();
        for line in &lines {
            let fast = reused.read_json_str(line).map(|()| reused.clone());
            assert_eq!(fast, Message::from_json_str_general(line), "{line}");
        }
    }

    /// `bodyBase64` of every length up to past a few SIMD blocks, padded (read by base64-simd
    /// in the one-pass reader), unpadded, with nonzero trailing bits, a bad byte at each
    /// position or white space around it: loaded alike by both paths, every valid one in one
    /// pass; the body of a line without one is empty after a line with one.
    #[test]
    fn base64_bodies_agree() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut reused = Message::default();
        for len in 0..100 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let padded = BASE64.encode(&bytes);
            let unpadded = padded.trim_end_matches('=').to_string();
            // Whether each is valid (`None`: as the general path decides, partial padding).
            let mut variants = vec![
                (padded.clone(), Some(true)),
                (unpadded.clone(), Some(true)),
                (format!(" {padded}\\t"), Some(true)),
                (format!("{padded}="), Some(false)),
                (format!("{unpadded}="), None),
            ];
            // The last character's trailing bits set (when it has some).
            if let Some(at) = unpadded.len().checked_sub(1).filter(|_| len % 3 != 0) {
                let mut t = unpadded.clone().into_bytes();
                t[at] = if t[at] == b'/' { b'+' } else { b'/' };
                let t = String::from_utf8(t).unwrap();
                variants.push((format!("{t}{}", &padded[unpadded.len()..]), Some(false)));
            }
            for at in (0..padded.len()).step_by(7) {
                let mut t = padded.clone();
                t.replace_range(at..at + 1, "*");
                variants.push((t, Some(false)));
            }
            for (text, valid) in variants {
                let line = format!(r#"{{"bodyBase64":"{text}","appProperties":{{"a":"1"}}}}"#);
                let taken = agree(&line);
                let valid = valid.unwrap_or(taken);
                assert_eq!(taken, valid, "{line}");
                let fast = reused.read_json_str(&line).map(|()| reused.clone());
                assert_eq!(fast, Message::from_json_str_general(&line), "{line}");
                if valid {
                    assert_eq!(reused.body, bytes, "{line}");
                }
            }
            reused.read_json_str(r#"{"appProperties":{}}"#).unwrap();
            assert!(reused.body.is_empty());
        }
    }

    /// Differential: hand-written seeds, benchmark lines and thousands of mutations of them
    /// (tokens inserted, bytes deleted, spans repeated) load alike by both paths.
    #[test]
    fn the_one_pass_reader_agrees_with_the_general_path() {
        let mut seeds: Vec<String> = SEEDS.iter().map(|s| s.to_string()).collect();
        seeds.extend(bench_lines(40));
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut mutants, mut taken) = (0, 0);
        for seed in &seeds {
            assert!(agree(seed), "{seed}");
            let rounds = if seed.len() < 400 { 1500 } else { 100 };
            for _ in 0..rounds {
                let m = mutate(&mut rng, seed);
                let m2 = mutate(&mut rng, &m);
                taken += usize::from(agree(&m)) + usize::from(agree(&m2));
                mutants += 2;
            }
        }
        // The mutants test the reader, not only its fallback: many are still messages it reads.
        assert!(
            taken * 10 > mutants,
            "{taken} of {mutants} mutants read in one pass"
        );
        for text in [
            "",
            " ",
            "{",
            "}",
            "{}",
            "{} x",
            "{}\n",
            "\u{feff}{}",
            "[]",
            "null",
            "{\"body\":null}",
            r#"{"body":"a","body":"b"}"#,
            r#"{"bodyBase64":"eA==","bodyBase64":"eQ=="}"#,
            r#"{"bodyBase64":" eA== "}"#,
            r#"{"bodyBase64":"e\/A="}"#,
            r#"{"bodyBase64":"eA"}"#,
            r#"{"systemProperties":{"a":"1"},"systemProperties":{"b":"2"}}"#,
            r#"{"systemProperties":{"iothub-message-source":"Telemetry"},"source":null}"#,
            r#"{"source":"twinChangeEvents","systemProperties":{"iothub-message-source":"Telemetry"}}"#,
            r#"{"systemProperties":{"IOTHUB-MESSAGE-SOURCE":"Telemetry","iothub-message-source":null}}"#,
            r#"{"systemProperties":{"content-type":"a","contentType":"b","CONTENT-TYPE":"c"}}"#,
            r#"{"systemProperties":{"me\u017f\u017fage-id":"a","message-id":"b"}}"#,
            r#"{"appProperties":{"\u212a":"1","k":"2"}}"#,
            r#"{"appProperties":{"a":"\u0000"}}"#,
            "{\"appProperties\":{\"a\":\"\u{1}\"}}",
            r#"{"\u0062ody":"x"}"#,
            r#"{"source":"\u0074winChangeEvents"}"#,
            r#"{"body":"\ud800"}"#,
            r#"{"body":"\udc00\ud800"}"#,
            r#"{"body":"\uD83D\uDE00"}"#,
        ] {
            agree(text);
        }
    }
}
