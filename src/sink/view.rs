//! Copies read in place from the bytes the durable pipeline stores them as ([`CopyView`]), so
//! that a sink can render a copy without building a [`Message`] for it.
//!
//! Why: an endpoint worker used to decode every record into a `Message` (a `String` per
//! property name and value), wrap it in an [`Envelope`], and the sink then rebuilt the same
//! strings as JSON — for every endpoint a message went to. A view borrows the record's bytes:
//! the JSON Lines sink writes its line straight from them into one reused buffer
//! ([`Sink::write_views`](super::Sink::write_views)); every other sink gets envelopes decoded
//! from the views, exactly as before.

use std::sync::OnceLock;
use std::time::SystemTime;

use super::Envelope;
use crate::eval::BodyJson;
use crate::message::{eq_ignore_case, Message, Properties, Source};

/// A list of properties in the store's packed form: a LEB128 count, then per property its
/// name (LEB128 length, UTF-8 bytes), with `presence` a byte 0 (null) or 1 (a value
/// follows), then the value (length, bytes). Without `presence` every value follows (the
/// form of enrichments). Checked once by [`PackedProperties::split`]; iterating cannot fail.
#[derive(Debug, Clone, Copy)]
pub struct PackedProperties<'a> {
    bytes: &'a [u8],
    /// `bytes` and what follows them in their record: renderers read a string's room
    /// ([`Text`]) from it, so a list's last strings are copied as blocks too.
    room: &'a [u8],
    presence: bool,
}

/// Why packed bytes are not a valid list.
pub type PackedError = &'static str;

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], PackedError> {
    if bytes.len() < n {
        return Err("truncated");
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

/// Reads a LEB128 length.
pub(crate) fn read_len(bytes: &mut &[u8]) -> Result<usize, PackedError> {
    // Most lengths are one byte.
    if let Some((&b, rest)) = bytes.split_first() {
        if b < 0x80 {
            *bytes = rest;
            return Ok(usize::from(b));
        }
    }
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = take(bytes, 1)?[0];
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return usize::try_from(n).map_err(|_| "length overflows");
        }
    }
    Err("length overflows")
}

fn read_str<'a>(bytes: &mut &'a [u8]) -> Result<&'a str, PackedError> {
    let n = read_len(bytes)?;
    std::str::from_utf8(take(bytes, n)?).map_err(|_| "string not UTF-8")
}

impl<'a> PackedProperties<'a> {
    /// An empty list.
    pub const EMPTY: PackedProperties<'static> = PackedProperties {
        bytes: &[0],
        room: &[0],
        presence: true,
    };

    /// Splits a valid list off the front of `bytes` (advancing it past the list).
    ///
    /// The strings' UTF-8 is checked in one SIMD pass over the whole list when every length
    /// is one byte (under 128): lengths and presence bytes are then ASCII, which no UTF-8
    /// sequence can span, so the list is UTF-8 exactly when each string is. A from_utf8 per
    /// string was most of reading a record.
    pub fn split(bytes: &mut &'a [u8], presence: bool) -> Result<Self, PackedError> {
        let start = *bytes;
        let mut short_lengths = true;
        let mut string = |bytes: &mut &'a [u8]| -> Result<(), PackedError> {
            let len = read_len(bytes)?;
            short_lengths &= len < 0x80;
            take(bytes, len).map(|_| ())
        };
        let n = read_len(bytes)?;
        for _ in 0..n {
            string(bytes)?;
            let present = if presence {
                match take(bytes, 1)?[0] {
                    0 => false,
                    1 => true,
                    _ => return Err("bad property presence flag"),
                }
            } else {
                true
            };
            if present {
                string(bytes)?;
            }
        }
        let list = &start[..start.len() - bytes.len()];
        if short_lengths {
            simdutf8::basic::from_utf8(list).map_err(|_| "string not UTF-8")?;
        } else {
            Self::split_slowly(&mut &list[..], presence)?;
        }
        Ok(PackedProperties {
            bytes: list,
            room: start,
            presence,
        })
    }

    /// [`PackedProperties::split`] checking each string on its own (a list with a length of
    /// 128 or more, whose length bytes are not ASCII).
    fn split_slowly(bytes: &mut &'a [u8], presence: bool) -> Result<(), PackedError> {
        let n = read_len(bytes)?;
        for _ in 0..n {
            read_str(bytes)?;
            let present = if presence {
                match take(bytes, 1)?[0] {
                    0 => false,
                    1 => true,
                    _ => return Err("bad property presence flag"),
                }
            } else {
                true
            };
            if present {
                read_str(bytes)?;
            }
        }
        Ok(())
    }

    /// Splits a list off the front of `bytes` that [`PackedProperties::split`] has already
    /// checked (the same bytes, read again): only the lengths are followed, no UTF-8 is
    /// checked. On bytes that were not checked it may return a list whose iteration ends early.
    pub fn skip(bytes: &mut &'a [u8], presence: bool) -> Result<Self, PackedError> {
        let start = *bytes;
        let n = read_len(bytes)?;
        // Every length one byte (under 128, most lists): an offset moved by each length
        // with one bounds check a byte read, instead of a slice split per string.
        let list = *bytes;
        let mut pos = 0;
        let mut short = true;
        // Up to the first long length, the offsets are the ones the loop below reaches, so
        // an error here is the one it would give.
        for _ in 0..n {
            let name = *list.get(pos).ok_or("truncated")?;
            if name >= 0x80 {
                short = false;
                break;
            }
            pos += 1 + usize::from(name);
            let present = !presence || {
                let flag = *list.get(pos).ok_or("truncated")?;
                pos += 1;
                flag == 1
            };
            if present {
                let value = *list.get(pos).ok_or("truncated")?;
                if value >= 0x80 {
                    short = false;
                    break;
                }
                pos += 1 + usize::from(value);
            }
        }
        if short {
            *bytes = list.get(pos..).ok_or("truncated")?;
            return Ok(PackedProperties {
                bytes: &start[..start.len() - bytes.len()],
                room: start,
                presence,
            });
        }
        for _ in 0..n {
            skip_string(bytes)?;
            if !presence || take(bytes, 1)?[0] == 1 {
                skip_string(bytes)?;
            }
        }
        Ok(PackedProperties {
            bytes: &start[..start.len() - bytes.len()],
            room: start,
            presence,
        })
    }

    /// The list that [`PackedProperties::split`] or [`PackedProperties::skip`] split off as
    /// `bytes` before (the pipeline keeps where a record's lists lie, not the lists), with
    /// `room`, the record from the list's start on (`bytes` when it does not start with it).
    #[cfg(feature = "store")]
    pub(crate) fn located(bytes: &'a [u8], room: &'a [u8], presence: bool) -> Self {
        let room = if room.starts_with(bytes) { room } else { bytes };
        PackedProperties {
            bytes,
            room,
            presence,
        }
    }

    /// The list as it is packed (lengths, presence bytes, strings).
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes the list takes in its record (what rendering it takes, roughly).
    pub(crate) fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The properties in order (names and values as stored; `None`: present but null).
    pub fn iter(&self) -> PackedIter<'a> {
        let mut bytes = self.bytes;
        let left = read_len(&mut bytes).unwrap_or(0);
        PackedIter {
            bytes,
            left,
            presence: self.presence,
        }
    }

    /// The properties in order as bytes, without a UTF-8 check per string: for renderers
    /// copying them out of a record whose strings were checked when it was read (see
    /// `codec::view`). The Avro renderer's; JSON copies use [`PackedProperties::iter_texts`].
    #[cfg(feature = "avro")]
    pub(crate) fn iter_bytes(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> {
        self.iter_texts()
            .map(|(n, v)| (n.bytes, v.map(|v| v.bytes)))
    }

    /// The properties in order, each string with its room ([`Text`]) and without a UTF-8
    /// check, for renderers that copy short strings as whole blocks.
    pub(crate) fn iter_texts(&self) -> RawIter<'a> {
        // The count bounds the walk: it reads the room only as far as the list goes.
        let mut bytes = self.room;
        let left = read_len(&mut bytes).unwrap_or(0);
        RawIter {
            bytes,
            left,
            presence: self.presence,
        }
    }

    /// The value of the first property named `name` (ignoring case), if any.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| eq_ignore_case(n, name))
            .map(|(_, v)| v)
    }
}

/// Iterates a [`PackedProperties`].
#[derive(Debug, Clone)]
pub struct PackedIter<'a> {
    bytes: &'a [u8],
    left: usize,
    presence: bool,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked by `split`: these cannot fail; if they did, the list just ends.
        let name = read_str(&mut self.bytes).ok()?;
        let present = !self.presence || take(&mut self.bytes, 1).ok()?[0] == 1;
        let value = if present {
            Some(read_str(&mut self.bytes).ok()?)
        } else {
            None
        };
        Some((name, value))
    }
}

/// Iterates a [`PackedProperties`] as [`Text`]s ([`PackedProperties::iter_texts`]).
#[derive(Debug, Clone)]
pub(crate) struct RawIter<'a> {
    bytes: &'a [u8],
    left: usize,
    presence: bool,
}

/// A string of a packed list as renderers take it: its bytes, and the list's bytes from the
/// string's start on (`room`, at least as long). Why: a renderer tests and copies a short
/// string as one 16- or 32-byte block read from `room` (the bytes past the string are
/// masked off or cut back), instead of a loop and a `memcpy` call of the string's length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<'a> {
    /// The string.
    pub bytes: &'a [u8],
    /// The string and what follows it in its list; starts with `bytes`.
    pub room: &'a [u8],
}

impl Text<'static> {
    /// The empty string (a null property's value as the Storage records write it).
    pub(crate) const EMPTY: Text<'static> = Text {
        bytes: b"",
        room: b"",
    };
}

fn read_text<'a>(bytes: &mut &'a [u8]) -> Option<Text<'a>> {
    // A one-byte length (under 128), most strings: the length and the string in one step.
    if let Some((&n, rest)) = bytes.split_first() {
        if n < 0x80 {
            let (string, after) = rest.split_at_checked(usize::from(n))?;
            *bytes = after;
            return Some(Text {
                bytes: string,
                room: rest,
            });
        }
    }
    let n = read_len(bytes).ok()?;
    let room = *bytes;
    let string = take(bytes, n).ok()?;
    Some(Text {
        bytes: string,
        room,
    })
}

/// Passes a string (its length, its bytes) for [`PackedProperties::skip`]: a one-byte
/// length as [`read_text`] takes it, others with [`read_len`]'s errors.
#[inline(always)]
fn skip_string(bytes: &mut &[u8]) -> Result<(), PackedError> {
    if let Some((&n, rest)) = bytes.split_first() {
        if n < 0x80 {
            *bytes = rest.get(usize::from(n)..).ok_or("truncated")?;
            return Ok(());
        }
    }
    let n = read_len(bytes)?;
    take(bytes, n).map(|_| ())
}

impl<'a> Iterator for RawIter<'a> {
    type Item = (Text<'a>, Option<Text<'a>>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name = read_text(&mut self.bytes)?;
        let present = !self.presence || take(&mut self.bytes, 1).ok()?[0] == 1;
        let value = if present {
            Some(read_text(&mut self.bytes)?)
        } else {
            None
        };
        Some((name, value))
    }
}

/// Two property names read from a record are the same ignoring case ([`eq_ignore_case`]);
/// ASCII names are compared as bytes.
fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(a), Ok(b)) => eq_ignore_case(a, b),
        _ => a == b,
    }
}

/// [`same_name`]`(name, e)` for an enrichment name `e` (`e_ascii`: whether it is ASCII),
/// mostly decided by the lengths: a name of `e`'s length or shorter equals an ASCII `e` only
/// byte for byte ignoring ASCII case (a non-ASCII character takes more bytes than the ASCII
/// one it could equal), and a longer ASCII name never does (`record::name_is`'s rule).
#[inline(always)]
fn name_matches(name: &[u8], e: &[u8], e_ascii: bool) -> bool {
    if e_ascii {
        if name.len() <= e.len() {
            return name.eq_ignore_ascii_case(e);
        }
        if name.is_ascii() {
            return false;
        }
    }
    same_name(name, e)
}

/// The part of a stored record's JSON rendering that is the same for every endpoint (its
/// system properties and its body), rendered by the first endpoint that renders the record and
/// copied by the others that take it: the body's minifying check is most of rendering a JSON
/// copy, and escaping the system properties most of the rest.
#[derive(Debug, Default)]
pub struct SharedJson(OnceLock<Vec<u8>>);

impl SharedJson {
    /// The shared text, rendered by `render` on the first call into a buffer of `capacity`
    /// (an estimate of its length: growing it step by step cost more than rendering it).
    pub(crate) fn get_or_render(
        &self,
        capacity: usize,
        render: impl FnOnce(&mut Vec<u8>),
    ) -> &[u8] {
        self.0.get_or_init(|| {
            let mut text = Vec::with_capacity(capacity);
            render(&mut text);
            text
        })
    }
}

/// One endpoint's copy of a stored message, borrowed from the stored record.
#[derive(Debug, Clone, Copy)]
pub struct CopyView<'a> {
    /// The endpoint name.
    pub endpoint: &'a str,
    /// When the router accepted the message.
    pub enqueued_time: SystemTime,
    /// The hub's name (the `{iothub}` token of Storage file names).
    pub hub_name: &'a str,
    /// The message's sequence number (the store's).
    pub sequence: u64,
    /// The message's source, if it carries one.
    pub source: Option<Source>,
    /// The system properties as accepted.
    pub system_properties: PackedProperties<'a>,
    /// The application properties as accepted, before this endpoint's enrichments.
    pub app_properties: PackedProperties<'a>,
    /// This endpoint's enrichments: they set application properties, replacing the value of
    /// one with the same name (ignoring case), as [`Properties::insert`] does.
    pub enrichments: PackedProperties<'a>,
    /// The body.
    pub body: &'a [u8],
    /// Whether the content type says JSON in UTF-8, when the store knows (`None`: the sink
    /// reads the content type). A Storage JSON record then embeds the body if it is JSON text
    /// in UTF-8, which the sink checks as it minifies it.
    pub body_is_json: Option<bool>,
    /// What routing found of the body as JSON (only meaningful with `body_is_json` of
    /// `Some(true)`): `Compact`, a Storage JSON record embeds it as it is, without checking it
    /// again; `Strict`, it strips its whitespace without checking its grammar again (a string
    /// holding a backslash or a control byte sends it to the full check); `Unknown`, it
    /// checks and minifies it in full.
    pub body_json: BodyJson,
    /// Where the endpoints taking the same record share what their JSON copies have in common
    /// (`None`: the copy renders all of its own, e.g. a record only this endpoint takes).
    pub shared_json: Option<&'a SharedJson>,
}

impl CopyView<'_> {
    /// The copy's application properties with the enrichments applied, in
    /// [`Properties::insert`]'s order: the message's own (an enriched one keeps its place and
    /// name, with the enrichment's value), then enrichments of new names, in order.
    pub fn for_each_app_property<'s>(&'s self, mut f: impl FnMut(&'s str, Option<&'s str>)) {
        // One merge for both forms: the record's strings were checked as UTF-8 when it was
        // read, so the conversion back to `str` cannot fail.
        let text = |b: &'s [u8]| std::str::from_utf8(b).unwrap_or_default();
        self.for_each_app_property_bytes(|name, value| f(text(name), value.map(text)));
    }

    /// [`CopyView::for_each_app_property`] as bytes, for renderers (no UTF-8 check per
    /// string: the record's were checked when it was read).
    pub(crate) fn for_each_app_property_bytes<'s>(
        &'s self,
        mut f: impl FnMut(&'s [u8], Option<&'s [u8]>),
    ) {
        self.for_each_app_property_text(|name, value| f(name.bytes, value.map(|v| v.bytes)));
    }

    /// [`CopyView::for_each_app_property_bytes`] as [`Text`]s, for renderers that copy
    /// short strings as blocks.
    #[inline]
    pub(crate) fn for_each_app_property_text<'s>(
        &'s self,
        mut f: impl FnMut(Text<'s>, Option<Text<'s>>),
    ) {
        let enrichments = self.enrichments;
        if enrichments.bytes == [0] {
            for (name, value) in self.app_properties.iter_texts() {
                f(name, value);
            }
            return;
        }
        self.merge_enrichments(f);
    }

    /// [`CopyView::for_each_app_property_text`] of a copy with enrichments (out of line: the
    /// copies without are the common case).
    #[inline(never)]
    fn merge_enrichments<'s>(&'s self, mut f: impl FnMut(Text<'s>, Option<Text<'s>>)) {
        let enrichments = self.enrichments;
        let mut list = enrichments.iter_texts();
        if let (Some((e, value)), None) = (list.next(), list.next()) {
            // One enrichment, the common case: one comparison per property, by length
            // first ([`name_matches`]), no array and no test of the lists for ASCII.
            let e_ascii = e.bytes.is_ascii();
            let mut named = false;
            for (name, own) in self.app_properties.iter_texts() {
                if name_matches(name.bytes, e.bytes, e_ascii) {
                    named = true;
                    f(name, value);
                } else {
                    f(name, own);
                }
            }
            if !named {
                f(e, value);
            }
            return;
        }
        // Both lists ASCII (lengths and presence bytes under 128 are ASCII too): every name
        // is, and names compare as bytes, without a check per comparison.
        let ascii = self.app_properties.bytes.is_ascii() && enrichments.bytes.is_ascii();
        let same = |a: Text<'_>, b: Text<'_>| {
            if ascii {
                a.bytes.eq_ignore_ascii_case(b.bytes)
            } else {
                same_name(a.bytes, b.bytes)
            }
        };
        // A few enrichments (the common case): read once into an array, with a bit per
        // enrichment set when a property of the message has its name, instead of reading
        // the packed lists again for every property.
        const FEW: usize = 8;
        let mut few: [(Text<'s>, Option<Text<'s>>); FEW] = [(Text::EMPTY, None); FEW];
        let mut count = 0;
        for (slot, e) in few.iter_mut().zip(enrichments.iter_texts()) {
            *slot = e;
            count += 1;
        }
        if count < FEW || enrichments.iter_texts().nth(FEW).is_none() {
            let few = &few[..count];
            let mut named = 0u32;
            for (name, value) in self.app_properties.iter_texts() {
                let mut last = None;
                for (j, (n, v)) in few.iter().enumerate() {
                    if same(*n, name) {
                        named |= 1 << j;
                        last = Some(*v);
                    }
                }
                f(name, last.unwrap_or(value));
            }
            for (i, (name, _)) in few.iter().enumerate() {
                if named & (1 << i) != 0 || few[..i].iter().any(|(n, _)| same(*n, *name)) {
                    continue;
                }
                let last = few.iter().rev().find(|(n, _)| same(*n, *name));
                f(*name, last.and_then(|(_, v)| *v));
            }
            return;
        }
        let enriched = |name: Text<'_>| {
            enrichments
                .iter_texts()
                .filter(|(n, _)| same(*n, name))
                .last()
                .map(|(_, v)| v)
        };
        for (name, value) in self.app_properties.iter_texts() {
            match enriched(name) {
                Some(v) => f(name, v),
                None => f(name, value),
            }
        }
        for (i, (name, _)) in enrichments.iter_texts().enumerate() {
            let first = !enrichments.iter_texts().take(i).any(|(n, _)| same(n, name));
            if first && !self.app_properties.iter_texts().any(|(n, _)| same(n, name)) {
                f(name, enriched(name).flatten());
            }
        }
    }

    /// The copy as an [`Envelope`] (partition 0), for sinks that take envelopes.
    pub fn to_envelope(&self) -> Envelope {
        let mut system_properties = Properties::new();
        for (n, v) in self.system_properties.iter() {
            system_properties.insert(n, v.map(str::to_string));
        }
        let mut app_properties = Properties::new();
        for (n, v) in self.app_properties.iter() {
            app_properties.insert(n, v.map(str::to_string));
        }
        for (n, v) in self.enrichments.iter() {
            app_properties.insert(n, v.map(str::to_string));
        }
        Envelope {
            endpoint: self.endpoint.to_string(),
            message: Message {
                system_properties,
                app_properties,
                body: self.body.to_vec(),
                source: self.source,
            },
            enqueued_time: self.enqueued_time,
            hub_name: self.hub_name.to_string(),
            partition: 0,
            sequence: self.sequence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy with application properties `app` and enrichments `en` (packed lists), nothing else.
    fn view_of<'a>(app: &mut &'a [u8], en: &mut &'a [u8]) -> CopyView<'a> {
        CopyView {
            endpoint: "ep",
            enqueued_time: SystemTime::UNIX_EPOCH,
            hub_name: "hub",
            sequence: 7,
            source: None,
            system_properties: PackedProperties::EMPTY,
            app_properties: PackedProperties::split(app, true).unwrap(),
            enrichments: PackedProperties::split(en, false).unwrap(),
            body: b"",
            body_is_json: None,
            body_json: BodyJson::Unknown,
            shared_json: None,
        }
    }

    fn packed(props: &[(&str, Option<&str>)], presence: bool) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, s: &str) {
            let mut n = s.len();
            while n >= 0x80 {
                out.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = vec![props.len() as u8];
        for (n, v) in props {
            put(&mut out, n);
            if presence {
                out.push(u8::from(v.is_some()));
            }
            if let Some(v) = v {
                put(&mut out, v);
            }
        }
        out
    }

    #[test]
    fn enrichments_apply_as_inserts_do() {
        let app = packed(&[("a", Some("1")), ("B", None), ("c", Some("3"))], true);
        let en = packed(
            &[("b", Some("x")), ("new", Some("n1")), ("NEW", Some("n2"))],
            false,
        );
        let (mut a, mut e) = (&app[..], &en[..]);
        let view = view_of(&mut a, &mut e);
        let mut seen = Vec::new();
        view.for_each_app_property(|n, v| seen.push((n.to_string(), v.map(str::to_string))));
        let envelope = view.to_envelope();
        let inserted: Vec<_> = envelope
            .message
            .app_properties
            .iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect();
        assert_eq!(seen, inserted);
        let mut bytes = Vec::new();
        view.for_each_app_property_bytes(|n, v| {
            bytes.push((
                String::from_utf8(n.to_vec()).unwrap(),
                v.map(|v| String::from_utf8(v.to_vec()).unwrap()),
            ))
        });
        assert_eq!(bytes, seen);
        assert_eq!(seen[1], ("B".into(), Some("x".into())));
        assert_eq!(seen[3], ("new".into(), Some("n2".into())));
        assert_eq!(seen.len(), 4);
    }

    /// Any number of enrichments (up to eight read into an array, more read from the packed
    /// list), ASCII or not, merge as `Properties::insert` merges them.
    #[test]
    fn many_enrichments_apply_as_inserts_do() {
        let app = packed(
            &[
                ("a", Some("1")),
                ("B", None),
                ("Ünï", Some("u")),
                ("d", Some("4")),
            ],
            true,
        );
        let names = ["b", "x", "X", "A", "ünï", "y", "x", "z", "Y", "w", "D", "v"];
        for n in 0..=names.len() {
            for ascii_only in [false, true] {
                let values: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
                let en: Vec<(&str, Option<&str>)> = names[..n]
                    .iter()
                    .zip(&values)
                    .filter(|(name, _)| !ascii_only || name.is_ascii())
                    .map(|(name, v)| (*name, Some(v.as_str())))
                    .collect();
                let en = packed(&en, false);
                let (mut a, mut e) = (&app[..], &en[..]);
                let view = view_of(&mut a, &mut e);
                let mut seen = Vec::new();
                view.for_each_app_property(|n, v| seen.push((n.to_string(), v.map(String::from))));
                let inserted: Vec<_> = view
                    .to_envelope()
                    .message
                    .app_properties
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.map(String::from)))
                    .collect();
                assert_eq!(seen, inserted, "{n} enrichments");
            }
        }
    }

    /// `skip` splits off what `split` splits off, with the same rest, on lists of short and
    /// of long lengths (the fast walk and the LEB128 one), with and without presence bytes;
    /// a list cut anywhere is an error for both.
    #[test]
    fn skip_splits_what_split_splits() {
        let long = "x".repeat(200);
        for presence in [true, false] {
            let value = |v: Option<&'static str>| if presence { v } else { Some("v") };
            for list in [
                packed(&[], presence),
                packed(&[("a", value(Some("1"))), ("b", value(None))], presence),
                packed(
                    &[("a", value(Some("1"))), ("n", Some(long.as_str()))],
                    presence,
                ),
                packed(
                    &[(long.as_str(), value(None)), ("b", value(Some("2")))],
                    presence,
                ),
            ] {
                let mut bytes = list.clone();
                bytes.extend_from_slice(b"\x05after");
                let (mut a, mut b) = (&bytes[..], &bytes[..]);
                let split = PackedProperties::split(&mut a, presence).unwrap();
                let skip = PackedProperties::skip(&mut b, presence).unwrap();
                assert_eq!((split.bytes(), a), (skip.bytes(), b));
                for cut in 0..list.len() {
                    let mut b = &list[..cut];
                    assert!(
                        PackedProperties::skip(&mut b, presence).is_err(),
                        "cut {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn damaged_lists_are_errors() {
        let good = packed(&[("a", Some("1")), ("b", None)], true);
        for cut in 0..good.len() {
            let mut b = &good[..cut];
            assert!(PackedProperties::split(&mut b, true).is_err(), "cut {cut}");
        }
        let mut bad = good.clone();
        bad[3] = 7; // presence flag
        assert!(PackedProperties::split(&mut &bad[..], true).is_err());
        // Strings that are not UTF-8, in lists of short and of long strings; and a sequence
        // that only the bytes after a string would complete.
        let long = "é".repeat(100);
        for list in [
            packed(&[("a", Some("\u{e9}")), ("b", Some(&long))], true),
            packed(&[("a", Some("\u{e9}")), ("b", Some("x"))], true),
        ] {
            assert!(PackedProperties::split(&mut &list[..], true).is_ok());
            let at = list.iter().position(|&b| b == 0xc3).unwrap();
            for byte in [0x80, 0xff, 0xe2] {
                let mut bad = list.clone();
                bad[at] = byte;
                assert!(PackedProperties::split(&mut &bad[..], true).is_err());
            }
        }
    }
}
