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

use super::time::{format_enqueued_time, EnqueuedTimeText};
use super::view::CopyView;
use super::view::Text;
use super::Envelope;
use crate::bytes::bytes_eq;
use crate::eval::BodyJson;
use crate::json_text::{
    push_keyed_value, push_member_text, push_minified_if_json, push_string, push_stripped_strict,
    push_text, KEY_BLOCK,
};
use crate::message::names::{CONTENT_ENCODING, CONTENT_TYPE, CONTENT_TYPE_JSON, ENQUEUED_TIME};
use crate::message::naming::{PropertyNaming, TABLE};
use crate::message::{eq_ignore_case, KeyedName, Message};
use std::borrow::Cow;
use std::sync::OnceLock;

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
            .map(|(n, v)| (storage_name_str(n), v.unwrap_or("")))
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
    pub fn write_json(&self, endpoint: Option<&str>, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(e) = endpoint {
            out.extend_from_slice(b"\"endpoint\":");
            push_string(out, e.as_bytes());
            out.push(b',');
        }
        out.extend_from_slice(b"\"EnqueuedTimeUtc\":");
        push_string(out, self.enqueued_time_utc.as_bytes());
        out.extend_from_slice(b",\"Properties\":");
        push_json_object(out, self.properties.iter().copied());
        out.extend_from_slice(b",\"SystemProperties\":");
        push_json_object(out, self.system_pairs());
        out.extend_from_slice(b",\"Body\":");
        push_body(
            json_typed_message(self.message),
            BodyJson::Unknown,
            self.body,
            out,
        );
        out.push(b'}');
    }

    /// Appends the record's Avro binary encoding ([`AVRO_SCHEMA`]), maps in the message's
    /// order, exactly [`Record::avro_len`] bytes.
    #[cfg(feature = "avro")]
    pub fn write_avro(&self, out: &mut Vec<u8>) {
        put_avro_bytes(out, self.enqueued_time_utc.as_bytes());
        put_avro_map(out, self.properties.iter().copied());
        put_avro_map(out, self.system_pairs());
        put_avro_body(out, self.body);
    }

    /// The record as an Avro value of [`AVRO_SCHEMA`] (what the Storage sink wrote through
    /// apache_avro before it encoded records itself; the tests compare both).
    #[cfg(all(test, feature = "avro"))]
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

    /// The exact length of this record's Avro binary encoding, computed without encoding it.
    #[cfg(all(test, feature = "avro"))]
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

/// Appends Avro's `long` encoding (zig-zag, then 7 bits a byte) of the non-negative `n`.
#[cfg(feature = "avro")]
pub(crate) fn put_avro_len(out: &mut Vec<u8>, n: usize) {
    let mut zz = (n as u64) << 1;
    while zz >= 0x80 {
        out.push((zz as u8 & 0x7f) | 0x80);
        zz >>= 7;
    }
    out.push(zz as u8);
}

/// Appends an Avro `string` or `bytes`: its length, then the bytes.
#[cfg(feature = "avro")]
fn put_avro_bytes(out: &mut Vec<u8>, s: &[u8]) {
    put_avro_len(out, s.len());
    out.extend_from_slice(s);
}

/// Appends an Avro `map<string>` as apache_avro writes one: one block of all entries (its
/// count, the entries), then the empty block that ends the map.
#[cfg(feature = "avro")]
fn put_avro_map<'s>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (&'s str, &'s str)>) {
    let mut map = MapWriter::start(out);
    for (n, v) in pairs {
        map.entry(out, n.as_bytes(), v.as_bytes());
    }
    map.end(out);
}

/// Appends the `Body` field: the `bytes` branch (index 1) of `["null","bytes"]`.
#[cfg(feature = "avro")]
fn put_avro_body(out: &mut Vec<u8>, body: &[u8]) {
    put_avro_len(out, 1);
    put_avro_bytes(out, body);
}

/// Writes the entries of an Avro map whose count is known only at its end: the count's byte
/// is reserved first and filled in (or widened, for 64 entries or more) by [`MapWriter::end`].
#[cfg(feature = "avro")]
struct MapWriter {
    at: usize,
    count: usize,
}

#[cfg(feature = "avro")]
impl MapWriter {
    fn start(out: &mut Vec<u8>) -> Self {
        out.push(0);
        MapWriter {
            at: out.len() - 1,
            count: 0,
        }
    }

    fn entry(&mut self, out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        put_avro_bytes(out, name);
        put_avro_bytes(out, value);
        self.count += 1;
    }

    fn end(self, out: &mut Vec<u8>) {
        if self.count == 0 {
            return; // the reserved zero is the empty map
        }
        if self.count < 64 {
            // One byte of zig-zag: the reserved byte holds it, nothing moves.
            out[self.at] = (self.count as u8) << 1;
        } else {
            let mut count = Vec::new();
            put_avro_len(&mut count, self.count);
            out.splice(self.at..=self.at, count);
        }
        out.push(0);
    }
}

/// The name a Storage record gives system property `name`: IoT Hub's Storage column of the
/// "System property names" table (`contentType`, `connectionDeviceId`, in that case), whatever
/// case the message used; names outside the table as they are.
fn storage_name_str(name: &str) -> &str {
    match PropertyNaming::Storage.outbound_name(name) {
        Cow::Borrowed(n) => n,
        Cow::Owned(_) => name,
    }
}

/// A name of IoT Hub's table as Storage records spell it.
struct StorageName {
    // Read by the Avro encoding (its maps take names and values apart).
    #[cfg_attr(not(any(feature = "avro", test)), allow(dead_code))]
    spelling: &'static str,
    /// The spelling as a JSON member name with its colon (`"contentType":`), written whole.
    json_key: Vec<u8>,
    /// [`StorageName::json_key`] at the start of a block of constant length, copied whole
    /// and cut back to `json_key`'s length (no `memcpy` call of a variable length), or with
    /// the value ([`push_keyed_value`]); `None` for a key longer than the block (the table's
    /// longest, `"connectionDeviceGenerationId":`, is 31 bytes).
    key_block: Option<[u8; KEY_BLOCK]>,
    /// Whether this is `enqueuedTime`, which a record leaves out (it stamps its own).
    stamped: bool,
}

impl StorageName {
    /// Appends [`StorageName::json_key`].
    #[inline(always)]
    fn push_key(&self, out: &mut Vec<u8>) {
        match &self.key_block {
            Some(block) => {
                let at = out.len();
                out.extend_from_slice(block);
                out.truncate(at + self.json_key.len());
            }
            None => out.extend_from_slice(&self.json_key),
        }
    }
}

/// The Storage spelling of a system property name read from a store record, if it is in the
/// table ([`storage_name_str`]'s rule), for every system property of every copy: the table's
/// names bucketed by length (built once), so a name is compared with the one or two of its
/// length instead of running `outbound_name`'s search over all twelve after a UTF-8 check.
/// The table's names are ASCII, so a name that is not keeps its spelling, as `outbound_name`
/// keeps it (its `eq_ignore_ascii_case` is the comparison here).
fn storage_entry(name: &[u8]) -> Option<&'static StorageName> {
    type Buckets = Vec<Vec<(&'static str, StorageName)>>;
    static BY_LENGTH: OnceLock<Buckets> = OnceLock::new();
    let buckets = BY_LENGTH.get_or_init(|| {
        let mut buckets: Buckets = Vec::new();
        for (routing, _) in TABLE {
            let spelling = match PropertyNaming::Storage.outbound_name(routing) {
                Cow::Borrowed(s) => s,
                Cow::Owned(_) => routing,
            };
            let mut json_key = Vec::new();
            push_string(&mut json_key, spelling.as_bytes());
            json_key.push(b':');
            let key_block = (json_key.len() <= KEY_BLOCK).then(|| {
                let mut block = [0u8; KEY_BLOCK];
                block[..json_key.len()].copy_from_slice(&json_key);
                block
            });
            let stamped = routing == ENQUEUED_TIME;
            if buckets.len() <= routing.len() {
                buckets.resize_with(routing.len() + 1, Vec::new);
            }
            buckets[routing.len()].push((
                routing,
                StorageName {
                    spelling,
                    json_key,
                    key_block,
                    stamped,
                },
            ));
        }
        buckets
    });
    buckets
        .get(name.len())
        .and_then(|b| {
            // Records mostly carry the routing spelling itself: one comparison of the bytes
            // (in place, no `memcmp` call).
            b.iter()
                .find(|(n, _)| bytes_eq(n.as_bytes(), name))
                .or_else(|| {
                    b.iter()
                        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
                })
        })
        .map(|(_, entry)| entry)
}

/// [`storage_name_str`] of a name read from a store record ([`storage_entry`]).
#[cfg(any(feature = "avro", test))]
fn storage_name(name: &[u8]) -> &[u8] {
    storage_entry(name).map_or(name, |e| e.spelling.as_bytes())
}

/// Whether a name read from a store record equals `want` ignoring case, as
/// [`eq_ignore_case`] compares (ASCII names without a UTF-8 check). For an ASCII `want`, a
/// name of its length or shorter is equal only byte for byte ignoring ASCII case (a non-ASCII
/// character takes more bytes than the one ASCII character it could equal), so only a longer
/// non-ASCII name needs the full comparison.
pub(crate) fn name_is(name: &[u8], want: &str) -> bool {
    if want.is_ascii() {
        if name.len() <= want.len() {
            return name.eq_ignore_ascii_case(want.as_bytes());
        }
        if name.is_ascii() {
            return false;
        }
    }
    std::str::from_utf8(name).is_ok_and(|n| eq_ignore_case(n, want))
}

/// Appends the JSON record of a copy read in place (no newline), exactly as
/// [`Record::write_json`] writes the copy's envelope (`tests::views_render_as_envelopes`).
/// Strings are copied from the record's bytes (checked UTF-8 when the record was read).
pub(crate) fn write_view_json(view: &CopyView<'_>, endpoint: Option<&str>, out: &mut Vec<u8>) {
    match endpoint {
        Some(e) => push_endpoint_prefix(out, e),
        None => out.push(b'{'),
    }
    write_view_members(view, out);
}

/// Appends what a JSON line starts with before [`write_view_members`]: `{"endpoint":…,`.
/// The JSON Lines sink renders it once per endpoint and copies it per line.
pub(crate) fn push_endpoint_prefix(out: &mut Vec<u8>, endpoint: &str) {
    out.extend_from_slice(b"{\"endpoint\":");
    push_string(out, endpoint.as_bytes());
    out.push(b',');
}

/// [`write_view_json`] after the opening brace and the endpoint member: the record's
/// members and the closing brace.
pub(crate) fn write_view_members(view: &CopyView<'_>, out: &mut Vec<u8>) {
    let time = EnqueuedTimeText::new(view.enqueued_time);
    out.extend_from_slice(b"\"EnqueuedTimeUtc\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\",\"Properties\":{");
    let mut first = true;
    view.for_each_app_property_text(|n, v| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        let v = v.unwrap_or(Text::EMPTY);
        push_member_text(out, n.bytes, n.room, v.bytes, v.room);
    });
    out.extend_from_slice(b"},");
    match view.shared_json {
        Some(shared) => {
            // The body as base64 at most (a third longer), the properties with their quotes.
            let capacity = view.body.len() / 3 * 4 + 2 * view.system_properties.byte_len() + 128;
            let common =
                shared.get_or_render(capacity, |text| write_view_common(view, &time, text));
            out.extend_from_slice(common)
        }
        None => write_view_common(view, &time, out),
    }
    out.push(b'}');
}

/// The members of a copy's JSON record that every endpoint's copy has in common,
/// `"SystemProperties":{…},"Body":…` ([`write_view_json`]).
fn write_view_common(view: &CopyView<'_>, time: &EnqueuedTimeText, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"SystemProperties\":{");
    // A list of ASCII (most: the names of the table, ids, content types) has ASCII names:
    // the table's entry alone says whether a name is `enqueuedTime` (no name outside the
    // table equals it ignoring case, see `name_is`), with no test per name.
    let ascii = view.system_properties.bytes().is_ascii();
    for (n, v) in view.system_properties.iter_texts() {
        let entry = storage_entry(n.bytes);
        let stamped = match entry {
            Some(name) if ascii => name.stamped,
            _ if ascii => false,
            _ => name_is(n.bytes, ENQUEUED_TIME),
        };
        if stamped {
            continue;
        }
        let v = v.unwrap_or(Text::EMPTY);
        match entry {
            Some(name) => {
                // The key and a plain value in one block, most system properties.
                if let Some(block) = &name.key_block {
                    if push_keyed_value(out, block, name.json_key.len(), v.bytes, v.room) {
                        continue;
                    }
                }
                name.push_key(out);
            }
            None => {
                push_text(out, n.bytes, n.room);
                out.push(b':');
            }
        }
        push_text(out, v.bytes, v.room);
        out.push(b',');
    }
    out.extend_from_slice(b"\"enqueuedTime\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"},\"Body\":");
    push_body(view_json_typed(view), view.body_json, view.body, out);
}

/// Appends the Avro binary record of a copy read in place, exactly as [`Record::write_avro`]
/// writes the copy's envelope.
#[cfg(feature = "avro")]
pub(crate) fn write_view_avro(view: &CopyView<'_>, out: &mut Vec<u8>) {
    let time = EnqueuedTimeText::new(view.enqueued_time);
    put_avro_bytes(out, time.as_bytes());
    let mut map = MapWriter::start(out);
    view.for_each_app_property_bytes(|n, v| map.entry(out, n, v.unwrap_or(b"")));
    map.end(out);
    let mut map = MapWriter::start(out);
    for (n, v) in view.system_properties.iter_bytes() {
        if !name_is(n, ENQUEUED_TIME) {
            map.entry(out, storage_name(n), v.unwrap_or(b""));
        }
    }
    map.entry(out, ENQUEUED_TIME.as_bytes(), time.as_bytes());
    map.end(out);
    put_avro_body(out, view.body);
}

/// Whether a view's content type says JSON in UTF-8: the store's flag when it has one.
fn view_json_typed(view: &CopyView<'_>) -> bool {
    match view.body_is_json {
        Some(known) => known,
        None => json_typed(|name: &str| view.system_properties.get(name).flatten()),
    }
}

/// Appends the `Body` value: the body minified when the content type says JSON and the body
/// is JSON text in UTF-8, else base64. What routing `found` saves work: a `Compact` body
/// (nothing to minify) goes as it is, as minifying it would copy it unchanged; a `Strict` one
/// has its whitespace stripped without a second grammar check ([`push_stripped_strict`]).
fn push_body(json_typed: bool, found: BodyJson, body: &[u8], out: &mut Vec<u8>) {
    let embedded = json_typed
        && match found {
            BodyJson::Compact => {
                out.extend_from_slice(body);
                true
            }
            // Its whitespace stripped without checking its grammar again, unless a string in
            // it holds what the full check must decide.
            BodyJson::Strict => push_stripped_strict(body, out) || push_minified_if_json(body, out),
            BodyJson::Unknown => push_minified_if_json(body, out),
        };
    if !embedded {
        push_base64_string(out, body);
    }
}

/// Appends `bytes` as a base64 JSON string (base64 needs no escaping). Encoded by
/// base64-simd (SSSE3/AVX2 picked at run time), appended to `out` without a zero fill: the
/// `base64` crate's encoder cost about 6.5 instructions per byte of a body written as
/// base64 (a raw-archive copy of a binary body), the largest part of such a copy.
fn push_base64_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    base64_simd::STANDARD.encode_append(bytes, out);
    out.push(b'"');
}

fn push_json_object<'s>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (&'s str, &'s str)>) {
    out.push(b'{');
    for (i, (n, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_string(out, n.as_bytes());
        out.push(b':');
        push_string(out, v.as_bytes());
    }
    out.push(b'}');
}

/// The body as compact JSON text when a Storage JSON record embeds it as a JSON value, else
/// `None` (the record then carries the body as a base64 string).
///
/// IoT Hub embeds the body only when `contentType` is `application/json` and `contentEncoding`
/// is `utf-8`, both compared case-insensitively and exactly (`application/json; charset=utf-8`
/// or `utf-16` give base64). A body that is not UTF-8 or does not parse as JSON is base64 too,
/// so the record stays valid JSON. The text keeps the body's own member order and number
/// spelling; only the whitespace between tokens is removed, so the record stays on one line.
pub fn json_body_text(message: &Message) -> Option<String> {
    let mut out = Vec::new();
    if !(json_typed_message(message) && push_minified_if_json(&message.body, &mut out)) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Whether `message`'s content type and encoding say JSON in UTF-8, the first half of
/// [`json_body_text`]'s rule; the store's records keep the answer.
pub(crate) fn json_typed_message(message: &Message) -> bool {
    // Two lookups: `Properties::get` compares a precomputed key per name, which measured
    // cheaper than one pass comparing every name with both.
    // Keyed (`KeyedName`): the two names are not hashed again for every record encoded.
    const TYPE: KeyedName = KeyedName::new(CONTENT_TYPE);
    const ENCODING: KeyedName = KeyedName::new(CONTENT_ENCODING);
    let p = &message.system_properties;
    json_typed(|name: &str| match name {
        CONTENT_TYPE => p.get_keyed(&TYPE).flatten(),
        CONTENT_ENCODING => p.get_keyed(&ENCODING).flatten(),
        other => p.get(other).flatten(),
    })
}

/// Whether system properties (read by `get`, ignoring case) say the body is JSON in UTF-8,
/// IoT Hub's condition for embedding it as a value.
fn json_typed<'v>(get: impl Fn(&str) -> Option<&'v str>) -> bool {
    let is = |name: &str, want: &str| get(name).is_some_and(|v| eq_ignore_case(v, want));
    is(CONTENT_TYPE, CONTENT_TYPE_JSON) && is(CONTENT_ENCODING, "utf-8")
}

/// The Storage JSON record of `envelope` as one line of text (no newline), exactly as the JSON
/// encoding of [`super::StorageSink`] writes it.
pub fn storage_json_record(envelope: &Envelope) -> String {
    let record = Record::new(envelope, format_enqueued_time(envelope.enqueued_time));
    let mut out = Vec::new();
    record.write_json(None, &mut out);
    // Built from `&str`s and checked JSON bodies: always UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use std::time::{Duration, UNIX_EPOCH};

    /// base64-simd writes what the `base64` crate writes (which reads the records back), at
    /// every length around its blocks, after text already in the buffer.
    #[test]
    fn base64_strings_are_the_base64_crates() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 97 % 256) as u8).collect();
        for len in 0..bytes.len() {
            let mut out = b"x".to_vec();
            push_base64_string(&mut out, &bytes[..len]);
            assert_eq!(
                out,
                format!("x\"{}\"", BASE64.encode(&bytes[..len])).as_bytes()
            );
        }
    }

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
    fn json_record_shape_and_order() {
        let e = envelope(&JSON, b" {\"b\": [1, 2.50],\n \"a\": \"x y\\\" z\"} ");
        assert_eq!(
            storage_json_record(&e),
            r#"{"EnqueuedTimeUtc":"2019-05-10T06:06:32.7220000Z","Properties":{"a":"1","n":""},"SystemProperties":{"contentType":"Application/JSON","contentEncoding":"UTF-8","enqueuedTime":"2019-05-10T06:06:32.7220000Z"},"Body":{"b":[1,2.50],"a":"x y\" z"}}"#
        );
    }

    /// Reading the content type from a message agrees with looking both names up.
    #[test]
    fn json_typed_in_one_pass() {
        let sets: [&[(&str, Option<&str>)]; 6] = [
            &JSON,
            &[
                ("CONTENTTYPE", Some("application/JSON")),
                ("contentencoding", Some("utf-8")),
            ],
            &[
                ("contentType", Some("application/json")),
                ("contentEncoding", None),
            ],
            &[
                ("contentType", Some("application/json; charset=utf-8")),
                ("contentEncoding", Some("utf-8")),
            ],
            &[
                ("messageId", Some("x")),
                ("contentEncoding", Some("utf-8")),
                ("connectionDeviceId", Some("d")),
                ("contentType", Some("application/json")),
            ],
            &[
                ("contentEncodingX", Some("utf-8")),
                ("contentType", Some("application/json")),
            ],
        ];
        for (i, sys) in sets.iter().enumerate() {
            let e = envelope(sys, b"{}");
            let get = |name: &str| e.message.system_properties.get(name).flatten();
            assert_eq!(json_typed_message(&e.message), json_typed(get), "set {i}");
        }
        assert!(json_typed_message(&envelope(&JSON, b"").message));
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

    /// The by-length lookup of names read from records agrees with `outbound_name`'s search,
    /// and `name_is` with `eq_ignore_case`, on every spelling of the table in several cases
    /// and on names near them.
    #[test]
    fn record_names_are_looked_up_as_strings_are() {
        let mut probes: Vec<String> = vec![
            "".into(),
            "x".into(),
            "enqueuedTıme".into(),
            "ENQUEUEDTİME".into(),
            "enqueuedTim".into(),
            "enqueuedTimee".into(),
            "ſtatus".into(),
            "café".into(),
        ];
        for (routing, spellings) in TABLE {
            for n in std::iter::once(routing).chain(spellings) {
                probes.push(n.to_string());
                probes.push(n.to_ascii_uppercase());
                probes.push(n.to_ascii_lowercase());
                probes.push(format!("{n}x"));
                probes.push(n[1..].to_string());
            }
        }
        for p in &probes {
            assert_eq!(
                storage_name(p.as_bytes()),
                storage_name_str(p).as_bytes(),
                "{p}"
            );
            if let Some(entry) = storage_entry(p.as_bytes()) {
                let mut key = Vec::new();
                push_string(&mut key, entry.spelling.as_bytes());
                key.push(b':');
                assert_eq!(entry.json_key, key);
            }
            for want in [ENQUEUED_TIME, "ab", "İ", "ıd"] {
                assert_eq!(
                    name_is(p.as_bytes(), want),
                    eq_ignore_case(p, want),
                    "{p} {want}"
                );
            }
        }
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
            // Written directly: the same length, and apache_avro reads back the same value.
            let mut direct = Vec::new();
            r.write_avro(&mut direct);
            assert_eq!(direct.len(), encoded.len());
            let back = apache_avro::from_avro_datum(&schema, &mut &direct[..], None).unwrap();
            assert_eq!(back, r.to_avro());
        }
        assert_eq!(varint_len(63), 1);
        assert_eq!(varint_len(64), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }
}
