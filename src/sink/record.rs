//! The record IoT Hub writes for each message to a Storage container, in JSON and Avro.
//!
//! Both encodings carry the same four fields, `EnqueuedTimeUtc`, `Properties`,
//! `SystemProperties` and `Body`, built here once so the JSON Lines sink, the JSON Storage
//! encoding and the Avro Storage encoding cannot drift apart.
//!
//! Choices where IoT Hub's behaviour is not documented (see `research/azure-routing.md` §3.2):
//! * A property whose value is `null` is written with the value `""`: Avro's `map<string>` cannot
//!   hold a null, and the JSON files should say what the Avro files say.
//! * `SystemProperties` holds every system property of the message under the Storage spelling of
//!   IoT Hub's "System property names" table (`contentType`, `connectionDeviceId`; other names as
//!   they are), and
//!   `enqueuedTime` set to the envelope's enqueued time (replacing any value the message had,
//!   because the hub stamps it).
//! * The Avro `Body` is always the `bytes` branch, an empty body as zero bytes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::time::{format_enqueued_time, push_enqueued_time};
use super::view::CopyView;
use super::Envelope;
use crate::message::names::{CONTENT_ENCODING, CONTENT_TYPE, CONTENT_TYPE_JSON, ENQUEUED_TIME};
use crate::message::naming::PropertyNaming;
use crate::message::{eq_ignore_case, Message};
use std::borrow::Cow;

/// The Avro schema of Storage records: record `Message` in namespace `Microsoft.Azure.Devices`.
///
/// IoT Hub's exact schema text is not published; the field names are, and the types are the ones
/// every reader of these files assumes (`string`, `map<string>`, `map<string>`, nullable
/// `bytes`). Readers that resolve by field name work either way.
pub const AVRO_SCHEMA: &str = r#"{"type":"record","name":"Message","namespace":"Microsoft.Azure.Devices","fields":[{"name":"EnqueuedTimeUtc","type":"string"},{"name":"Properties","type":{"type":"map","values":"string"}},{"name":"SystemProperties","type":{"type":"map","values":"string"}},{"name":"Body","type":["null","bytes"]}]}"#;

/// One message as a Storage record, before encoding.
pub(crate) struct Record<'a> {
    pub enqueued_time_utc: String,
    pub properties: Vec<(&'a str, &'a str)>,
    pub system_properties: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
    /// The message, whose content type decides whether the JSON form embeds the body.
    pub message: &'a Message,
}

impl<'a> Record<'a> {
    pub fn new(envelope: &'a Envelope, enqueued_time_utc: String) -> Self {
        let m = &envelope.message;
        let properties = m
            .app_properties
            .iter()
            .map(|(n, v)| (n, v.unwrap_or("")))
            .collect();
        let system_properties: Vec<(&str, &str)> = m
            .system_properties
            .iter()
            .filter(|(n, _)| !eq_ignore_case(n, ENQUEUED_TIME))
            .map(|(n, v)| (storage_name(n), v.unwrap_or("")))
            .collect();
        Record {
            enqueued_time_utc,
            properties,
            system_properties,
            body: &m.body,
            message: m,
        }
    }

    /// The system properties including the stamped `enqueuedTime`, in output order.
    fn system_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.system_properties
            .iter()
            .copied()
            .chain(std::iter::once((
                ENQUEUED_TIME,
                self.enqueued_time_utc.as_str(),
            )))
    }

    /// Appends the JSON object (no newline). With `endpoint`, an `"endpoint"` member comes first.
    /// Members are written in IoT Hub's order, which a `serde_json::Map` would not keep.
    pub fn write_json(&self, endpoint: Option<&str>, out: &mut String) {
        out.push('{');
        if let Some(e) = endpoint {
            out.push_str("\"endpoint\":");
            push_json_string(out, e);
            out.push(',');
        }
        out.push_str("\"EnqueuedTimeUtc\":");
        push_json_string(out, &self.enqueued_time_utc);
        out.push_str(",\"Properties\":");
        push_json_object(out, self.properties.iter().copied());
        out.push_str(",\"SystemProperties\":");
        push_json_object(out, self.system_pairs());
        out.push_str(",\"Body\":");
        let get = |name: &str| self.message.system_properties.get(name).flatten();
        if !push_json_body(json_typed(get), None, self.body, out) {
            push_base64_string(out, self.body);
        }
        out.push('}');
    }

    /// The record as an Avro value of [`AVRO_SCHEMA`].
    #[cfg(feature = "avro")]
    pub fn to_avro(&self) -> apache_avro::types::Value {
        use apache_avro::types::Value;
        let map = |pairs: &mut dyn Iterator<Item = (&str, &str)>| {
            Value::Map(
                pairs
                    .map(|(n, v)| (n.to_string(), Value::String(v.to_string())))
                    .collect(),
            )
        };
        Value::Record(vec![
            (
                "EnqueuedTimeUtc".into(),
                Value::String(self.enqueued_time_utc.clone()),
            ),
            (
                "Properties".into(),
                map(&mut self.properties.iter().copied()),
            ),
            ("SystemProperties".into(), map(&mut self.system_pairs())),
            (
                "Body".into(),
                Value::Union(1, Box::new(Value::Bytes(self.body.to_vec()))),
            ),
        ])
    }

    /// The exact length of this record's Avro binary encoding, computed without encoding it, so
    /// the Storage sink can decide where a file must roll before writing anything.
    #[cfg(feature = "avro")]
    pub fn avro_len(&self) -> u64 {
        fn string_len(s: &str) -> u64 {
            varint_len(s.len() as u64) + s.len() as u64
        }
        fn map_len<'s>(pairs: impl Iterator<Item = (&'s str, &'s str)>) -> u64 {
            let mut count = 0u64;
            let mut len = 1; // the terminating zero-length block
            for (n, v) in pairs {
                count += 1;
                len += string_len(n) + string_len(v);
            }
            if count > 0 {
                len += varint_len(count);
            }
            len
        }
        string_len(&self.enqueued_time_utc)
            + map_len(self.properties.iter().copied())
            + map_len(self.system_pairs())
            + 1 // union branch index 1
            + varint_len(self.body.len() as u64)
            + self.body.len() as u64
    }
}

/// Bytes of Avro's zig-zag variable-length encoding of the non-negative `n`.
#[cfg(feature = "avro")]
pub(crate) fn varint_len(n: u64) -> u64 {
    let mut zz = n.saturating_mul(2);
    let mut len = 1;
    while zz >= 0x80 {
        zz >>= 7;
        len += 1;
    }
    len
}

/// The name a Storage record gives system property `name`: IoT Hub's Storage column of the
/// "System property names" table (`contentType`, `connectionDeviceId`, in that case), whatever
/// case the message used; names outside the table as they are.
fn storage_name(name: &str) -> &str {
    match PropertyNaming::Storage.outbound_name(name) {
        Cow::Borrowed(n) => n,
        Cow::Owned(_) => name,
    }
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes (`\"`, `\\`, the short
/// forms `\b \f \n \r \t`, other control characters as `\u00XX`), without building a
/// temporary `String` per value: this runs for every property of every copy.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends the JSON record of a copy read in place (no newline), exactly as
/// [`Record::write_json`] writes the copy's envelope (`tests::views_render_as_envelopes`).
pub(crate) fn write_view_json(view: &CopyView<'_>, endpoint: Option<&str>, out: &mut String) {
    out.push('{');
    if let Some(e) = endpoint {
        out.push_str("\"endpoint\":");
        push_json_string(out, e);
        out.push(',');
    }
    out.push_str("\"EnqueuedTimeUtc\":\"");
    let time_at = out.len();
    push_enqueued_time(out, view.enqueued_time);
    let time_range = time_at..out.len();
    out.push_str("\",\"Properties\":{");
    let mut first = true;
    view.for_each_app_property(|n, v| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        push_json_string(out, n);
        out.push(':');
        push_json_string(out, v.unwrap_or(""));
    });
    out.push_str("},\"SystemProperties\":{");
    for (n, v) in view.system_properties.iter() {
        if eq_ignore_case(n, ENQUEUED_TIME) {
            continue;
        }
        push_json_string(out, storage_name(n));
        out.push(':');
        push_json_string(out, v.unwrap_or(""));
        out.push(',');
    }
    out.push('"');
    out.push_str(ENQUEUED_TIME);
    out.push_str("\":\"");
    // The time is digits and punctuation: no escaping, copied from where it was written.
    out.extend_from_within_str(time_range);
    out.push_str("\"},\"Body\":");
    // A flag from the store already says whether the content type is JSON and the body
    // parses: no lookup of the content type per copy then.
    let typed = match view.body_is_json {
        Some(known) => known,
        None => json_typed(|name: &str| view.system_properties.get(name).flatten()),
    };
    if !push_json_body(typed, view.body_is_json, view.body, out) {
        push_base64_string(out, view.body);
    }
    out.push('}');
}

/// `String` has no `extend_from_within`; the bytes are ASCII here.
trait ExtendWithin {
    fn extend_from_within_str(&mut self, range: std::ops::Range<usize>);
}

impl ExtendWithin for String {
    fn extend_from_within_str(&mut self, range: std::ops::Range<usize>) {
        let mut buf = [0u8; 32];
        let text = &self[range];
        let n = text.len().min(buf.len());
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        if let Ok(copy) = std::str::from_utf8(&buf[..n]) {
            self.push_str(copy);
        }
    }
}

/// Appends `bytes` as a base64 JSON string (base64 needs no escaping).
fn push_base64_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    BASE64.encode_string(bytes, out);
    out.push('"');
}

fn push_json_object<'s>(out: &mut String, pairs: impl Iterator<Item = (&'s str, &'s str)>) {
    out.push('{');
    for (i, (n, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, n);
        out.push(':');
        push_json_string(out, v);
    }
    out.push('}');
}

/// The body as compact JSON text when a Storage JSON record embeds it as a JSON value, else
/// `None` (the record then carries the body as a base64 string).
///
/// IoT Hub embeds the body only when `contentType` is `application/json` and `contentEncoding`
/// is `utf-8`, both compared case-insensitively and exactly (`application/json; charset=utf-8`
/// or `utf-16` give base64). A body that does not parse as JSON is base64 too, so the record
/// stays valid JSON. The text keeps the body's own member order and number spelling; only the
/// whitespace between tokens is removed, so the record stays on one line.
pub fn json_body_text(message: &Message) -> Option<String> {
    let mut out = String::new();
    let get = |name: &str| message.system_properties.get(name).flatten();
    push_json_body(json_typed(get), None, &message.body, &mut out).then_some(out)
}

/// Whether a Storage JSON record of `message` embeds its body as a JSON value
/// ([`json_body_text`]'s rule), checked without building the text. The store's records keep
/// the answer (feature `store`), so endpoints do not check every copy again.
#[cfg(feature = "store")]
pub(crate) fn embeds_json_body(message: &Message) -> bool {
    let get = |name: &str| message.system_properties.get(name).flatten();
    json_typed(get) && serde_json::from_slice::<serde::de::IgnoredAny>(&message.body).is_ok()
}

/// Whether system properties (read by `get`, ignoring case) say the body is JSON in UTF-8,
/// IoT Hub's condition for embedding it as a value.
fn json_typed<'v>(get: impl Fn(&str) -> Option<&'v str>) -> bool {
    let is = |name: &str, want: &str| get(name).is_some_and(|v| eq_ignore_case(v, want));
    is(CONTENT_TYPE, CONTENT_TYPE_JSON) && is(CONTENT_ENCODING, "utf-8")
}

/// Appends the body as compact JSON text to `out` when a Storage JSON record embeds it as a
/// JSON value ([`json_body_text`]'s rule), else leaves `out` as it was and returns `false`.
/// Validates with `IgnoredAny`, which builds nothing: a `serde_json::Value` of every body of
/// every copy was the JSON sinks' largest cost.
/// `known`: whether the body parses, when already checked (then it is not parsed again).
fn push_json_body(json_typed: bool, known: Option<bool>, body: &[u8], out: &mut String) -> bool {
    if !json_typed || known == Some(false) {
        return false;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    if known.is_none() && serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return false;
    }
    minify_into(text, out);
    true
}

/// Appends valid JSON text without its insignificant whitespace: every space, tab, CR and LF
/// outside string literals (inside them, control characters are always escaped in valid
/// JSON). Copies runs of bytes at once; a body without such whitespace is one copy.
fn minify_into(text: &str, out: &mut String) {
    let bytes = text.as_bytes();
    // Most device bodies are compact already: two vectorised searches then one copy.
    if memchr::memchr3(b' ', b'\n', b'\r', bytes).is_none()
        && memchr::memchr(b'\t', bytes).is_none()
    {
        out.push_str(text);
        return;
    }
    out.reserve(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            // ASCII whitespace is a whole character: both slices end on char boundaries.
            out.push_str(&text[start..i]);
            start = i + 1;
        } else if b == b'"' {
            in_string = true;
        }
    }
    out.push_str(&text[start..]);
}

/// The Storage JSON record of `envelope` as one line of text (no newline), exactly as the JSON
/// encoding of [`super::StorageSink`] writes it.
pub fn storage_json_record(envelope: &Envelope) -> String {
    let record = Record::new(envelope, format_enqueued_time(envelope.enqueued_time));
    let mut out = String::new();
    record.write_json(None, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn envelope(sys: &[(&str, Option<&str>)], body: &[u8]) -> Envelope {
        let mut m = Message::default();
        for (n, v) in sys {
            m.system_properties.insert(*n, v.map(str::to_string));
        }
        m.app_properties.insert("a", Some("1".into()));
        m.app_properties.insert("n", None);
        m.body = body.to_vec();
        let mut e = Envelope::new("ep", m);
        e.enqueued_time = UNIX_EPOCH + Duration::from_millis(1_557_468_392_722);
        e
    }

    const JSON: [(&str, Option<&str>); 2] = [
        ("contentType", Some("Application/JSON")),
        ("contentEncoding", Some("UTF-8")),
    ];

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "",
            "plain",
            "q\"b\\s/",
            "\u{0}\u{1f}\u{8}\u{c}\n\r\t\u{7f}",
            "Ünï€😀",
            "a\u{1}b",
        ] {
            let mut out = String::new();
            push_json_string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn minify_keeps_strings_and_drops_whitespace_between_tokens() {
        let mut out = String::new();
        minify_into("{ \"a b\" :\t[1 ,\r\n \"\\\" x\"] }", &mut out);
        assert_eq!(out, r#"{"a b":[1,"\" x"]}"#);
    }

    #[test]
    fn json_record_shape_and_order() {
        let e = envelope(&JSON, b" {\"b\": [1, 2.50],\n \"a\": \"x y\\\" z\"} ");
        assert_eq!(
            storage_json_record(&e),
            r#"{"EnqueuedTimeUtc":"2019-05-10T06:06:32.7220000Z","Properties":{"a":"1","n":""},"SystemProperties":{"contentType":"Application/JSON","contentEncoding":"UTF-8","enqueuedTime":"2019-05-10T06:06:32.7220000Z"},"Body":{"b":[1,2.50],"a":"x y\" z"}}"#
        );
    }

    #[test]
    fn base64_unless_json_utf8_and_parseable() {
        type Case<'a> = (&'a [(&'a str, Option<&'a str>)], &'a [u8]);
        let cases: [Case; 5] = [
            (&[], b"{}"),
            (&[("contentType", Some("application/json"))], b"{}"),
            (
                &[
                    ("contentType", Some("application/json; charset=utf-8")),
                    ("contentEncoding", Some("utf-8")),
                ],
                b"{}",
            ),
            (
                &[
                    ("contentType", Some("application/json")),
                    ("contentEncoding", None),
                ],
                b"{}",
            ),
            (&JSON, b"{not json"),
        ];
        for (sys, body) in cases {
            let line = storage_json_record(&envelope(sys, body));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["Body"], BASE64.encode(body), "{line}");
        }
    }

    #[test]
    fn system_properties_have_storage_names() {
        let e = envelope(
            &[("CONTENTTYPE", Some("x")), ("dt-subject", Some("c"))],
            b"",
        );
        let r = Record::new(&e, "t".into());
        let names: Vec<_> = r.system_pairs().map(|(n, _)| n).collect();
        assert_eq!(names, ["contentType", "dt-subject", "enqueuedTime"]);
    }

    #[test]
    fn stamped_enqueued_time_replaces_the_messages() {
        let e = envelope(&[("EnqueuedTime", Some("old"))], b"");
        let r = Record::new(&e, "new".into());
        let pairs: Vec<_> = r.system_pairs().collect();
        assert_eq!(pairs, [("enqueuedTime", "new")]);
    }

    #[cfg(feature = "avro")]
    #[test]
    fn avro_len_is_exact() {
        let schema = apache_avro::Schema::parse_str(AVRO_SCHEMA).unwrap();
        let long = "x".repeat(300);
        for (sys, body) in [
            (&JSON[..], b"{\"a\":1}".to_vec()),
            (&[][..], vec![]),
            (&[("k", Some(long.as_str()))][..], vec![7; 70_000]),
        ] {
            let mut e = envelope(sys, &body);
            for i in 0..70 {
                e.message.app_properties.insert(format!("p{i}"), None);
            }
            let r = Record::new(&e, format_enqueued_time(e.enqueued_time));
            let encoded = apache_avro::to_avro_datum(&schema, r.to_avro()).unwrap();
            assert_eq!(r.avro_len(), encoded.len() as u64);
        }
        assert_eq!(varint_len(63), 1);
        assert_eq!(varint_len(64), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }
}
