//! The store's record format: one accepted message, its routing and its enrichments, in a
//! compact binary encoding.
//!
//! Not JSON: every record is written once and read once per endpoint, and the pipeline's target
//! (well over 100k messages/s with the store) leaves no room for a text format's parsing. The
//! endpoint list comes first, so an endpoint worker can skip records that are not for it
//! without decoding the message.
//!
//! Layout (integers little-endian, `len` and counts as LEB128 varints, strings UTF-8):
//!
//! ```text
//! version u8 (= 2) | enqueued time: u64 nanoseconds since the Unix epoch
//! the message's source u8 (0 = none, else 1 + its index in `Source::ALL`)
//! flags u8 (version 2 on; bit 1: the content type and encoding say JSON in UTF-8, so a Storage
//!   JSON record embeds the body if it is JSON text, which the sinks that embed check as they
//!   minify it; bit 2, with bit 1: routing found the body JSON with nothing to minify, so it
//!   is embedded as it is; bit 0, in records written before bit 1: that and the body parsed
//!   (without a UTF-8 check); version 1 records lack the byte)
//! endpoint count, then per endpoint: id u16, enrichment count, (name str, value str)*
//! system properties: count, then (name str, presence u8, [value str])*
//! application properties: the same
//! body: len, bytes
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::eval::context::BodyJson;
use crate::message::{Message, Properties, Source};
use crate::sink::{CopyView, PackedProperties, SharedJson};

const VERSION: u8 = 2;

/// Flag of earlier records: the message's content type and encoding say JSON in UTF-8 and the
/// body parses. Checking that here was the routing thread's largest cost after parsing the
/// input (a JSON parse of every body); no longer written.
const FLAG_JSON_BODY: u8 = 1;

/// Flag: the message's content type and encoding say JSON in UTF-8 (the body not checked).
const FLAG_JSON_TYPED: u8 = 2;

/// Flag, with [`FLAG_JSON_TYPED`]: routing read the body and found it JSON with nothing to
/// minify ([`crate::route::Router::body_was_compact_json`]), so a Storage JSON record embeds it
/// as it is instead of checking and minifying it again on an endpoint's thread.
const FLAG_BODY_COMPACT_JSON: u8 = 4;

/// Flag, with [`FLAG_JSON_TYPED`]: routing read the body as stored and its strict scanner read
/// it whole, but it has whitespace to minify or a backslash ([`BodyJson::Strict`]), so a
/// Storage JSON record strips its whitespace without checking its grammar again.
const FLAG_BODY_STRICT_JSON: u8 = 8;

/// One endpoint a record goes to, with the application properties that endpoint's enrichments
/// add to its copy (stamped at acceptance, as IoT Hub enriches when it routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The endpoint's id in the store (stable across restarts; see `Store::endpoint_ids`).
    pub endpoint: u16,
    /// Enrichment properties for this endpoint's copy, in the table's order.
    pub enrichments: Vec<(String, String)>,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the router accepted the message.
    pub enqueued_time: SystemTime,
    /// The endpoints it routes to.
    pub destinations: Vec<Destination>,
    /// The message as accepted.
    pub message: Message,
}

/// A record's bytes as the pipeline's tail holds them, shared by the endpoint workers that
/// take it, with what they share of its rendering.
#[derive(Debug, Default)]
pub(crate) struct StoredRecord {
    /// The encoded record.
    pub bytes: Vec<u8>,
    /// What every endpoint's JSON copy has in common, rendered once for all of them.
    pub json: SharedJson,
}

impl StoredRecord {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        StoredRecord {
            bytes,
            json: SharedJson::default(),
        }
    }
}

/// The record's bytes (a stored record is read, sliced and measured as its bytes).
impl std::ops::Deref for StoredRecord {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

/// A record that does not decode: the store is damaged (or written by a newer hubroute).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("damaged store record: {0}")]
pub struct CorruptRecord(pub &'static str);

fn source_code(s: Option<Source>) -> u8 {
    match s {
        None => 0,
        Some(s) => Source::ALL
            .iter()
            .position(|x| *x == s)
            .map_or(0, |i| i as u8 + 1),
    }
}

/// Appends `n` as an unsigned LEB128 length (the record format's, and the store log's).
pub(crate) fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `s` with its length. Most names and values are short: one of at most 16 bytes is
/// stored with its one-byte length as one fixed 17-byte copy (see [`put_str_after`]).
#[inline]
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_str_after(out, [], s);
}

/// Appends the `H` bytes of `head` (at most one: a value's presence byte), `s`'s length and
/// `s`. A string of at most 16 bytes goes with them as one fixed copy of `H + 17` bytes (the
/// string placed in it by two overlapping loads from its two ends) whose bytes past it are cut
/// off again, instead of pushes and a `memcpy` call of a variable length, which cost more
/// than the copy itself (the record encoding was the routing thread's third cost).
#[inline(always)]
fn put_str_after<const H: usize>(out: &mut Vec<u8>, head: [u8; H], s: &str) {
    let b = s.as_bytes();
    let n = b.len();
    if n > 16 || H > 1 {
        out.extend_from_slice(&head);
        // Shorter than 128 bytes: a one-byte length.
        match u8::try_from(n) {
            Ok(byte) if byte < 0x80 => out.push(byte),
            _ => put_len(out, n),
        }
        out.extend_from_slice(b);
        return;
    }
    let mut w = [0u8; 18];
    w[..H].copy_from_slice(&head);
    w[H] = n as u8;
    // The string's bytes go to `w[at..at + n]` (`at + n <= 18`).
    let at = H + 1;
    if let (Some(first), Some(last)) = (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        w[at..at + 8].copy_from_slice(first);
        w[at + n - 8..at + n].copy_from_slice(last);
    } else if let (Some(first), Some(last)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        w[at..at + 4].copy_from_slice(first);
        w[at + n - 4..at + n].copy_from_slice(last);
    } else {
        for (k, &c) in b.iter().enumerate() {
            w[at + k] = c;
        }
    }
    out.extend_from_slice(&w[..H + 17]);
    out.truncate(out.len() - (16 - n));
}

fn put_properties(out: &mut Vec<u8>, p: &Properties) {
    put_len(out, p.len());
    for (name, value) in p.iter() {
        put_str(out, name);
        match value {
            Some(v) => put_str_after(out, [1], v),
            None => out.push(0),
        }
    }
}

/// Appends the encoding of one record to `out`.
pub fn encode(
    out: &mut Vec<u8>,
    enqueued_time: SystemTime,
    destinations: &[Destination],
    message: &Message,
) {
    encode_routed(out, enqueued_time, destinations, message, BodyJson::Unknown);
}

/// [`encode`] of a message whose body routing found to be compact JSON, or not (see
/// [`FLAG_BODY_COMPACT_JSON`]; only a record whose content type says JSON takes the flag).
pub(crate) fn encode_routed(
    out: &mut Vec<u8>,
    enqueued_time: SystemTime,
    destinations: &[Destination],
    message: &Message,
    body_json: BodyJson,
) {
    out.push(VERSION);
    let nanos = enqueued_time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    out.extend_from_slice(&nanos.to_le_bytes());
    out.push(source_code(message.source));
    out.push(match crate::sink::record::json_typed_message(message) {
        true => match body_json {
            BodyJson::Compact => FLAG_JSON_TYPED | FLAG_BODY_COMPACT_JSON,
            BodyJson::Strict => FLAG_JSON_TYPED | FLAG_BODY_STRICT_JSON,
            BodyJson::Unknown => FLAG_JSON_TYPED,
        },
        false => 0,
    });
    put_len(out, destinations.len());
    for d in destinations {
        out.extend_from_slice(&d.endpoint.to_le_bytes());
        put_len(out, d.enrichments.len());
        for (k, v) in &d.enrichments {
            put_str(out, k);
            put_str(out, v);
        }
    }
    put_properties(out, &message.system_properties);
    put_properties(out, &message.app_properties);
    put_len(out, message.body.len());
    out.extend_from_slice(&message.body);
}

/// A cursor over a record's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        if self.bytes.len() < n {
            return Err(CorruptRecord("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.take(1)?[0])
    }

    fn len(&mut self) -> Result<usize, CorruptRecord> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(n).map_err(|_| CorruptRecord("length overflows"));
            }
        }
        Err(CorruptRecord("length overflows"))
    }

    fn string(&mut self) -> Result<String, CorruptRecord> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CorruptRecord("string not UTF-8"))
    }

    /// The header; its flags are `None` in a version 1 record (written before flags).
    fn header(&mut self) -> Result<(SystemTime, Option<Source>, Option<u8>), CorruptRecord> {
        let version = self.byte()?;
        if version != 1 && version != VERSION {
            return Err(CorruptRecord("unknown record version"));
        }
        let mut nanos = [0u8; 8];
        nanos.copy_from_slice(self.take(8)?);
        let time = UNIX_EPOCH + Duration::from_nanos(u64::from_le_bytes(nanos));
        let source = match self.byte()? {
            0 => None,
            n => Some(
                *Source::ALL
                    .get(usize::from(n) - 1)
                    .ok_or(CorruptRecord("unknown source"))?,
            ),
        };
        let flags = if version == 1 {
            None
        } else {
            Some(self.byte()?)
        };
        Ok((time, source, flags))
    }

    fn properties(&mut self) -> Result<Properties, CorruptRecord> {
        let n = self.len()?;
        let mut p = Properties::new();
        for _ in 0..n {
            let name = self.string()?;
            let value = match self.byte()? {
                0 => None,
                1 => Some(self.string()?),
                _ => return Err(CorruptRecord("bad property presence flag")),
            };
            p.insert(name, value);
        }
        Ok(p)
    }
}

/// The endpoint ids a record goes to, without decoding the message; with its enqueued time.
pub fn peek(bytes: &[u8], endpoint: u16) -> Result<(bool, SystemTime), CorruptRecord> {
    let mut r = Reader { bytes };
    let (time, _, _) = r.header()?;
    let n = r.len()?;
    for _ in 0..n {
        let mut id = [0u8; 2];
        id.copy_from_slice(r.take(2)?);
        if u16::from_le_bytes(id) == endpoint {
            return Ok((true, time));
        }
        let enrichments = r.len()?;
        for _ in 0..enrichments * 2 {
            let len = r.len()?;
            r.take(len)?;
        }
    }
    Ok((false, time))
}

/// `endpoint`'s copy of a record, read in place (`None`: the record does not go to it). The
/// whole record is checked, so a damaged one is an error here, not a short copy later.
pub fn view<'a>(
    bytes: &'a [u8],
    endpoint: u16,
    endpoint_name: &'a str,
    hub_name: &'a str,
    sequence: u64,
) -> Result<Option<CopyView<'a>>, CorruptRecord> {
    Ok(locate(bytes, endpoint, Check::Utf8)?
        .map(|parts| parts.view(bytes, endpoint_name, hub_name, sequence, None)))
}

/// [`view`] of a record [`view`] has already checked (its bytes, read again): the
/// properties' UTF-8 is not checked again (their iteration checks it as it reads).
pub fn view_checked<'a>(
    bytes: &'a [u8],
    endpoint: u16,
    endpoint_name: &'a str,
    hub_name: &'a str,
    sequence: u64,
) -> Result<Option<CopyView<'a>>, CorruptRecord> {
    Ok(locate(bytes, endpoint, Check::Lengths)?
        .map(|parts| parts.view(bytes, endpoint_name, hub_name, sequence, None)))
}

/// What [`locate`] checks of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Everything: lengths, presence bytes, the strings' UTF-8 (a record read from the store's
    /// files, which a crash or another program may have damaged).
    Utf8,
    /// The structure only: a record this process encoded from `&str`s (the pipeline's tail),
    /// or one already checked. Renderers copy its strings as bytes; the UTF-8 check of every
    /// property list was about a tenth of an endpoint thread's work.
    Lengths,
}

/// Where the parts of one endpoint's copy lie in a record: what [`view`] reads, kept by an
/// endpoint worker so that each delivery attempt renders the copy without reading the record
/// again ([`CopyParts::view`] only slices it). Offsets into the record's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CopyParts {
    /// When the router accepted the message.
    pub enqueued_time: SystemTime,
    source: Option<Source>,
    flags: Option<u8>,
    enrichments: (usize, usize),
    system_properties: (usize, usize),
    app_properties: (usize, usize),
    body: usize,
    /// Whether the record goes to more than one endpoint (whose copies may share a rendering).
    pub fanout: bool,
}

/// Finds `endpoint`'s copy in a record (`None`: the record does not go to it), checking what
/// `check` says; a damaged record is an error.
pub(crate) fn locate(
    bytes: &[u8],
    endpoint: u16,
    check: Check,
) -> Result<Option<CopyParts>, CorruptRecord> {
    let mut r = Reader { bytes };
    // A list's offsets in `bytes`, after checking it as `check` says.
    let list = |r: &mut Reader<'_>, presence: bool| {
        let start = bytes.len() - r.bytes.len();
        match check {
            Check::Utf8 => PackedProperties::split(&mut r.bytes, presence),
            Check::Lengths => PackedProperties::skip(&mut r.bytes, presence),
        }
        .map_err(CorruptRecord)?;
        Ok::<_, CorruptRecord>((start, bytes.len() - r.bytes.len()))
    };
    let (enqueued_time, source, flags) = r.header()?;
    let n = r.len()?;
    let mut mine = None;
    for _ in 0..n {
        let mut id = [0u8; 2];
        id.copy_from_slice(r.take(2)?);
        let enrichments = list(&mut r, false)?;
        if u16::from_le_bytes(id) == endpoint && mine.is_none() {
            mine = Some(enrichments);
        }
    }
    let Some(enrichments) = mine else {
        return Ok(None);
    };
    let system_properties = list(&mut r, true)?;
    let app_properties = list(&mut r, true)?;
    let body_len = r.len()?;
    let body = bytes.len() - r.bytes.len();
    r.take(body_len)?;
    if !r.bytes.is_empty() {
        return Err(CorruptRecord("trailing bytes"));
    }
    Ok(Some(CopyParts {
        enqueued_time,
        source,
        flags,
        enrichments,
        system_properties,
        app_properties,
        body,
        fanout: n > 1,
    }))
}

impl CopyParts {
    /// The copy in `bytes`, the record [`locate`] found these parts in (other bytes give a
    /// copy with empty parts, never a panic), sharing its JSON rendering through `shared`.
    pub(crate) fn view<'a>(
        &self,
        bytes: &'a [u8],
        endpoint_name: &'a str,
        hub_name: &'a str,
        sequence: u64,
        shared: Option<&'a SharedJson>,
    ) -> CopyView<'a> {
        let list = |(start, end): (usize, usize), presence: bool| match (
            bytes.get(start..end),
            bytes.get(start..),
        ) {
            (Some(list), Some(room)) => PackedProperties::located(list, room, presence),
            _ => PackedProperties::EMPTY,
        };
        CopyView {
            endpoint: endpoint_name,
            enqueued_time: self.enqueued_time,
            hub_name,
            sequence,
            source: self.source,
            system_properties: list(self.system_properties, true),
            app_properties: list(self.app_properties, true),
            enrichments: list(self.enrichments, false),
            body: bytes.get(self.body..).unwrap_or_default(),
            // Either flag: the sink checks the body as it embeds it (a record of bit 0's time
            // was parsed, but not checked for UTF-8).
            body_is_json: self
                .flags
                .map(|f| f & (FLAG_JSON_BODY | FLAG_JSON_TYPED) != 0),
            body_json: match self.flags {
                Some(f) if f & FLAG_JSON_TYPED == 0 => BodyJson::Unknown,
                Some(f) if f & FLAG_BODY_COMPACT_JSON != 0 => BodyJson::Compact,
                Some(f) if f & FLAG_BODY_STRICT_JSON != 0 => BodyJson::Strict,
                _ => BodyJson::Unknown,
            },
            shared_json: shared,
        }
    }
}

/// Decodes a whole record.
pub fn decode(bytes: &[u8]) -> Result<Record, CorruptRecord> {
    let mut r = Reader { bytes };
    let (enqueued_time, source, _) = r.header()?;
    let n = r.len()?;
    let mut destinations = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let mut id = [0u8; 2];
        id.copy_from_slice(r.take(2)?);
        let count = r.len()?;
        let mut enrichments = Vec::with_capacity(count.min(16));
        for _ in 0..count {
            enrichments.push((r.string()?, r.string()?));
        }
        destinations.push(Destination {
            endpoint: u16::from_le_bytes(id),
            enrichments,
        });
    }
    let system_properties = r.properties()?;
    let app_properties = r.properties()?;
    let body_len = r.len()?;
    let body = r.take(body_len)?.to_vec();
    if !r.bytes.is_empty() {
        return Err(CorruptRecord("trailing bytes"));
    }
    Ok(Record {
        enqueued_time,
        destinations,
        message: Message {
            system_properties,
            app_properties,
            body,
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// Strings of every length around the short copy's 4, 8 and 16 bytes (and the one-byte
    /// length's 127 and the two bytes' 16383), ASCII or not, null or not, encode as a length
    /// and the bytes, pushed one by one.
    #[test]
    fn properties_encode_as_lengths_and_bytes() {
        let text = "abcdefghijklmnopqrstuvwxyz\u{e9}0123456789".repeat(5);
        let mut p = Properties::new();
        for len in (0..50).chain(120..136) {
            // Names of every length too.
            for (name, v) in [
                (format!("n{len}"), text.get(..len)),
                ("_".repeat(len), text.get(1..len + 1)),
            ] {
                let value = (len % 3 != 1).then(|| v.unwrap_or("\u{e9}").to_string());
                p.insert(name, value);
            }
        }
        // Lengths of two and three LEB128 bytes.
        p.insert("x".repeat(300), Some("y".repeat(20_000)));
        // The reference, pushed byte by byte.
        let mut want = Vec::new();
        put_len(&mut want, p.len());
        for (n, v) in p.iter() {
            put_len(&mut want, n.len());
            want.extend(n.bytes());
            match v {
                Some(v) => {
                    want.push(1);
                    put_len(&mut want, v.len());
                    want.extend(v.bytes());
                }
                None => want.push(0),
            }
        }
        for prefix in [0, 3, 100] {
            let mut out = vec![7u8; prefix];
            put_properties(&mut out, &p);
            assert_eq!(out[..prefix], vec![7u8; prefix]);
            assert_eq!(out[prefix..], want);
        }
    }

    #[test]
    fn round_trips_and_peeks() {
        let mut m = Message::default();
        m.system_properties.insert("messageId", Some("m1".into()));
        m.app_properties.insert("nullish", None);
        m.app_properties.insert("Ünïcode", Some("välue".into()));
        m.body = vec![0, 159, 146, 150, b'{'];
        m.source = Some(Source::TwinChangeEvents);
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let dest = vec![
            Destination {
                endpoint: 3,
                enrichments: vec![("k".into(), "v".into())],
            },
            Destination {
                endpoint: 300,
                enrichments: vec![],
            },
        ];
        let mut buf = Vec::new();
        encode(&mut buf, t, &dest, &m);
        let r = decode(&buf).unwrap();
        assert_eq!(r.message, m);
        assert_eq!(r.destinations, dest);
        assert_eq!(r.enqueued_time, t);
        assert_eq!(peek(&buf, 300).unwrap(), (true, t));
        let v = view(&buf, 3, "ep", "hub", 9).unwrap().unwrap();
        let e = v.to_envelope();
        let mut enriched = m.clone();
        enriched.app_properties.insert("k", Some("v".into()));
        assert_eq!(e.message, enriched);
        assert_eq!((e.enqueued_time, e.sequence), (t, 9));
        assert!(view(&buf, 4, "ep", "hub", 9).unwrap().is_none());
        for cut in 0..buf.len() {
            assert!(
                view(&buf[..cut], 300, "ep", "hub", 9).is_err(),
                "view cut at {cut}"
            );
        }
        assert_eq!(peek(&buf, 4).unwrap(), (false, t));
        // Every truncation is an error, never a panic.
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// Records of earlier versions still read and render as before: version 1 (no flags:
    /// the sink reads the content type) and version 2 with bit 0 (typed and parsed, but not
    /// checked for UTF-8: a body that is not UTF-8 is base64, not embedded).
    #[test]
    fn reads_earlier_record_versions() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let dest = [Destination {
            endpoint: 1,
            enrichments: vec![],
        }];
        let body_of = |record: &[u8]| {
            let v = view(record, 1, "ep", "hub", 1).unwrap().unwrap();
            let mut line = Vec::new();
            crate::sink::record::write_view_json(&v, None, &mut line);
            let line: serde_json::Value = serde_json::from_slice(&line).unwrap();
            line["Body"].clone()
        };
        for (body, utf8) in [
            (&b" {\"a\": \"x\"}"[..], true),
            (b"{\"a\":\"\xff\"}", false),
        ] {
            let mut m = Message::default();
            m.system_properties
                .insert("contentType", Some("application/json".into()));
            m.system_properties
                .insert("contentEncoding", Some("utf-8".into()));
            m.body = body.to_vec();
            let mut now = Vec::new();
            encode(&mut now, t, &dest, &m);
            assert_eq!(now[10], FLAG_JSON_TYPED);
            let want = if utf8 {
                serde_json::json!({"a": "x"})
            } else {
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(body))
            };
            assert_eq!(body_of(&now), want);
            // Version 2 as written before bit 1: serde_json's check, which passed both.
            let mut v2 = now.clone();
            v2[10] = FLAG_JSON_BODY;
            assert_eq!(body_of(&v2), want);
            // Version 1: no flags byte.
            let mut v1 = now.clone();
            v1[0] = 1;
            v1.remove(10);
            assert_eq!(
                view(&v1, 1, "ep", "hub", 1).unwrap().unwrap().body_is_json,
                None
            );
            assert_eq!(body_of(&v1), want);
            assert_eq!(decode(&v1).unwrap().message, m);
            assert_eq!(decode(&v2).unwrap().message, m);
        }
    }

    /// A writer whose bytes a test reads back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON Lines sink writes the same line from a view as from the envelope it decodes
    /// to: properties (null, escaped, enriched in place and added), system property names in
    /// their Storage spelling, the stamped time, a JSON body minified, a binary body base64.
    #[test]
    fn views_render_as_envelopes() {
        use crate::sink::{JsonLinesSink, Sink};
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let bodies: [(&[u8], bool); 4] = [
            (b" {\"a\" : [1, \"x y\\\" \"],\n\"b\":null} ", true),
            (b"{not json", true),
            (&[0, 159, 146, 150], true),
            (b"{\"a\":1}", false),
        ];
        for (body, json) in bodies {
            let mut m = Message::default();
            m.system_properties
                .insert("messageId", Some("m\"1\u{1}".into()));
            m.system_properties
                .insert("CONTENTTYPE", Some("application/json".into()));
            if json {
                m.system_properties
                    .insert("contentEncoding", Some("UTF-8".into()));
            }
            m.system_properties
                .insert("enqueuedTime", Some("old".into()));
            m.app_properties.insert("nullish", None);
            m.app_properties.insert("Ünïcode", Some("välue\n".into()));
            m.app_properties.insert("Site", Some("a".into()));
            m.body = body.to_vec();
            let dest = [Destination {
                endpoint: 5,
                enrichments: vec![("site".into(), "b".into()), ("added".into(), "c".into())],
            }];
            let mut buf = Vec::new();
            encode(&mut buf, t, &dest, &m);
            let v = view(&buf, 5, "ep", "hub", 9).unwrap().unwrap();
            let (a, b) = (Shared::default(), Shared::default());
            let mut by_view = JsonLinesSink::to_writer(Box::new(a.clone()), "a");
            let mut by_envelope = JsonLinesSink::to_writer(Box::new(b.clone()), "b");
            by_view.write_views(&[v, v]).unwrap();
            by_envelope
                .write_batch(&[v.to_envelope(), v.to_envelope()])
                .unwrap();
            let (a, b) = (a.0.lock().unwrap().clone(), b.0.lock().unwrap().clone());
            assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        }
    }

    /// Endpoints that take the same record share one rendering of what their JSON copies have
    /// in common (system properties, body): whichever endpoint renders first, every copy's
    /// line is the one it renders on its own, for JSON, not-JSON and binary bodies. Locating a
    /// copy without the UTF-8 check finds the same parts.
    #[test]
    fn shared_renderings_are_each_endpoints_own() {
        use crate::sink::record::write_view_json;
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let dest = [
            Destination {
                endpoint: 1,
                enrichments: vec![("site".into(), "b".into())],
            },
            Destination {
                endpoint: 2,
                enrichments: vec![],
            },
            Destination {
                endpoint: 3,
                enrichments: vec![("added".into(), "c\"".into())],
            },
        ];
        for body in [
            &b" {\"a\" : [1, \"x\"]}"[..],
            b"{not json",
            &[0, 159, 146, 150],
        ] {
            let mut m = Message::default();
            m.system_properties
                .insert("contentType", Some("application/json".into()));
            m.system_properties
                .insert("contentEncoding", Some("utf-8".into()));
            m.system_properties.insert(
                "connectionAuthMethod",
                Some("{\"scope\":\"device\"}".into()),
            );
            m.app_properties.insert("Site", Some("a".into()));
            m.body = body.to_vec();
            let mut bytes = Vec::new();
            encode(&mut bytes, t, &dest, &m);
            let record = StoredRecord::new(bytes);
            for first in [1u16, 2, 3] {
                let shared = StoredRecord::new(record.bytes.clone());
                for id in std::iter::once(first).chain([1, 2, 3]) {
                    let name = format!("ep{id}");
                    let parts = locate(&record, id, Check::Utf8).unwrap().unwrap();
                    let lengths = locate(&record, id, Check::Lengths).unwrap().unwrap();
                    assert_eq!(format!("{parts:?}"), format!("{lengths:?}"));
                    assert!(parts.fanout);
                    let own = parts.view(&record, &name, "hub", 9, None);
                    let with = parts.view(&record, &name, "hub", 9, Some(&shared.json));
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    write_view_json(&own, Some(&name), &mut a);
                    write_view_json(&with, Some(&name), &mut b);
                    assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
                }
            }
        }
    }
}
