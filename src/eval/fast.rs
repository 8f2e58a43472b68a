//! The route table's body plan and the reusable per-message scratch space.
//!
//! A [`BodyPlan`] interns every `$body` path of every route of a table into
//! one [`PathSet`], so that a message's body is decoded and scanned at most
//! once for all routes, and only the referenced values are recorded. A
//! [`BodyScratch`] holds the buffers that decoding and extraction need; the
//! caller keeps it across messages, so routing allocates nothing once the
//! buffers have grown to the largest body seen.

use super::context::{Bag, PropRef};
use crate::body::{BodyPath, Extraction, PathSet, PathSlot};
use crate::message::names::{CONTENT_ENCODING, CONTENT_TYPE, CONTENT_TYPE_JSON};
use crate::message::{eq_ignore_case, Message, NameSet, ABSENT};
use std::cell::Cell;

/// Every `$body` path and every property name of a set of programs (one per
/// route, in order), interned once.
#[derive(Debug, Clone)]
pub struct BodyPlan {
    pub(super) set: PathSet,
    /// For each program, where its paths' values and its property names are.
    pub(super) programs: Vec<ProgramSlots>,
    /// The distinct application property names of all programs: resolved
    /// for each message in one walk over its bag, they are then read by
    /// position however many routes use them.
    app: NameSet,
    /// The same for system properties.
    sys: NameSet,
    /// How many tests the programs share ([`crate::compile::share`]): the size of a
    /// message's store of their results.
    pub(super) shared: usize,
}

/// What a plan needs to know of a compiled condition. The compiler's `Program` implements
/// it, so that the evaluator does not import the compiler that imports it.
pub(crate) trait Planned {
    /// The `$body` paths the program reads, in its local numbering.
    fn body_paths(&self) -> &[BodyPath];
    /// The property names it reads, in its local numbering.
    fn props(&self) -> &[PropRef];
    /// How many shared-test slots it uses.
    fn shared_ids(&self) -> usize;
}

/// Where one program's values are for a message: the plan's slot of each of its local
/// `$body` paths, and the place of each of its property names ([`Planned::props`]) in the
/// resolved positions (application names first, then system names). The route loop points
/// the context at the current program's, so that a read indexes one table.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProgramSlots {
    pub(super) paths: Box<[PathSlot]>,
    pub(super) props: Box<[u32]>,
}

impl BodyPlan {
    /// A plan for `programs`, indexed as given (`None`: a route without a
    /// condition).
    pub(crate) fn new<'p, P: Planned + 'p>(
        programs: impl IntoIterator<Item = Option<&'p P>>,
    ) -> BodyPlan {
        let programs: Vec<Option<&P>> = programs.into_iter().collect();
        let all = programs
            .iter()
            .flatten()
            .flat_map(|p| p.body_paths().iter());
        let (set, slots) = PathSet::build(all);
        let mut slots = slots.into_iter();
        let paths: Vec<Box<[PathSlot]>> = programs
            .iter()
            .map(|p| match p {
                Some(p) => slots.by_ref().take(p.body_paths().len()).collect(),
                None => Box::default(),
            })
            .collect();
        let (app, sys, props) = intern_props(&programs);
        let programs_slots = paths
            .into_iter()
            .zip(props)
            .map(|(paths, props)| ProgramSlots { paths, props })
            .collect();
        let shared = programs
            .iter()
            .flatten()
            .map(|p| p.shared_ids())
            .max()
            .unwrap_or(0);
        BodyPlan {
            set,
            programs: programs_slots,
            app,
            sys,
            shared,
        }
    }

    /// Where each property name of the plan is in `message` (as
    /// [`crate::message::Properties::get`] finds it; [`ABSENT`] when it is
    /// not there), into `out`: one walk over each bag for all the table's
    /// names, instead of a scan of the bag for every reference.
    pub(super) fn resolve_props(&self, message: &Message, out: &mut Vec<u32>) {
        // `resolve` overwrites every position: only a new size needs writing here.
        out.resize(self.app.len() + self.sys.len(), ABSENT);
        let (app, sys) = out.split_at_mut(self.app.len());
        self.app.resolve(&message.app_properties, app);
        self.sys.resolve(&message.system_properties, sys);
    }

    /// The message's `contentEncoding` and `contentType` from positions
    /// [`BodyPlan::resolve_props`] gave (they are always resolved).
    pub(super) fn content_props<'m>(
        &self,
        message: &'m Message,
        resolved: &[u32],
    ) -> [Option<Option<&'m str>>; 2] {
        let at = |i: usize| {
            let position = resolved.get(self.app.len() + i).copied().unwrap_or(ABSENT);
            message.system_properties.get_at(position)
        };
        [at(0), at(1)]
    }

    /// Number of distinct plain paths (trie nodes, including the root).
    pub fn slot_count(&self) -> usize {
        self.set.len()
    }
}

/// The distinct property names of `programs`, per bag, and for each program
/// where each of its names is in the resolved positions (application names
/// first).
fn intern_props<P: Planned>(programs: &[Option<&P>]) -> (NameSet, NameSet, Vec<Box<[u32]>>) {
    /// `name`'s index in `names`, added if new.
    fn intern<'n>(names: &mut Vec<&'n str>, name: &'n str) -> usize {
        names.iter().position(|n| *n == name).unwrap_or_else(|| {
            names.push(name);
            names.len() - 1
        })
    }
    let mut app: Vec<&str> = Vec::new();
    // Every plan resolves the two names reading a body needs, first.
    let mut sys: Vec<&str> = vec![CONTENT_ENCODING, CONTENT_TYPE];
    let mut local: Vec<Vec<(Bag, usize)>> = Vec::with_capacity(programs.len());
    for program in programs {
        let refs = program.map_or(&[][..], |p| p.props());
        local.push(
            refs.iter()
                .map(|r| match r.bag() {
                    Bag::App => (Bag::App, intern(&mut app, r.name())),
                    Bag::Sys => (Bag::Sys, intern(&mut sys, r.name())),
                })
                .collect(),
        );
    }
    let offset = app.len();
    let props = local
        .iter()
        .map(|names| {
            names
                .iter()
                .map(|&(bag, i)| match bag {
                    Bag::App => i as u32,
                    Bag::Sys => (offset + i) as u32,
                })
                .collect()
        })
        .collect();
    (NameSet::new(app), NameSet::new(sys), props)
}

/// Reusable buffers for reading bodies: keep one per thread and pass it to
/// each message's context.
#[derive(Debug, Default)]
pub struct BodyScratch {
    /// Where the plan's property names are in the current message.
    pub(super) props: Vec<u32>,
    /// The decoded text, when the body bytes are not valid UTF-8 already.
    pub(super) text: String,
    pub(super) extraction: Extraction,
    /// The current message's results of the plan's shared tests (see
    /// [`super::context::SharedSlot`]).
    pub(super) shared: Vec<Cell<super::context::Kept>>,
}

impl BodyScratch {
    /// Lets go of the buffers a body larger than `bytes` grew, for scratch kept past its
    /// message (per thread, by [`crate::route::RouteTable::route`]): one huge body must not
    /// pin its size for the life of the thread.
    pub(crate) fn trim(&mut self, bytes: usize) {
        if self.text.capacity() > bytes {
            self.text = String::new();
        }
        self.extraction.trim(bytes);
    }
}

/// The text the engine parses (R23), without allocating: valid UTF-8 is
/// borrowed from the message (`Ok(Some)`); anything else is decoded into
/// `buf` (`Ok(None)`) exactly as [`Message::body_text`] decodes it. `Err`
/// when the body is unreadable. Mirrors `Message::body_text`, which builds
/// an error value with the reason (and allocates); a unit test checks that
/// the two agree.
#[cfg(test)]
pub(super) fn decode_body<'m>(
    message: &'m Message,
    buf: &mut String,
) -> Result<Option<&'m str>, ()> {
    let sys = &message.system_properties;
    decode_body_with(
        message,
        sys.get(CONTENT_ENCODING),
        sys.get(CONTENT_TYPE),
        buf,
    )
}

/// `a` and the ASCII constant `known` are equal under `OrdinalIgnoreCase`:
/// for an ASCII `a` that is ASCII case folding, far cheaper than the full
/// comparison (which non-ASCII text still gets: .NET folds a few non-ASCII
/// letters to ASCII ones).
#[inline]
fn eq_known(known: &str, a: &str) -> bool {
    if a.is_ascii() {
        a.eq_ignore_ascii_case(known)
    } else {
        eq_ignore_case(known, a)
    }
}

/// [`decode_body`] given the message's `contentEncoding` and `contentType`
/// properties (as [`crate::message::Properties::get`] returns them), which
/// a router's context has already resolved.
pub(super) fn decode_body_with<'m>(
    message: &'m Message,
    encoding: Option<Option<&str>>,
    content_type: Option<Option<&str>>,
    buf: &mut String,
) -> Result<Option<&'m str>, ()> {
    #[derive(PartialEq)]
    enum Enc {
        Utf8,
        Utf16,
        Utf32,
    }
    let enc = match encoding {
        Some(Some(name)) if eq_known("utf-8", name) => Enc::Utf8,
        Some(Some(name)) if eq_known("utf-16", name) => Enc::Utf16,
        Some(Some(name)) if eq_known("utf-32", name) => Enc::Utf32,
        _ => return Err(()),
    };
    match content_type {
        Some(Some(t)) if eq_known(CONTENT_TYPE_JSON, t) => {}
        _ => return Err(()),
    }
    let bytes = &message.body;
    buf.clear();
    match enc {
        Enc::Utf8 => {
            // simdutf8 validates 32 bytes a step where std's validator takes 16 bytes of
            // ASCII a step; both accept exactly the valid UTF-8 (`basic` only says whether).
            if let Ok(s) = simdutf8::basic::from_utf8(bytes) {
                return Ok(Some(s));
            }
            // `String::from_utf8_lossy`: one U+FFFD per invalid sequence.
            for chunk in bytes.utf8_chunks() {
                buf.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    buf.push(char::REPLACEMENT_CHARACTER);
                }
            }
        }
        Enc::Utf16 => decode_wide(bytes, 2, buf),
        Enc::Utf32 => decode_wide(bytes, 4, buf),
    }
    Ok(None)
}

/// Little-endian UTF-16 (`width` 2) or UTF-32 (`width` 4) into `buf`, as
/// `Message::body_text` decodes them (`char::decode_utf16` and
/// `char::from_u32`, U+FFFD for each unpaired surrogate, invalid code point
/// and trailing partial unit). Bodies are mostly ASCII, so the text is built
/// as bytes, one byte per ASCII unit, rather than by pushing chars one at a
/// time through the generic decoders (which cost several times more); the
/// few other units are encoded individually.
fn decode_wide(bytes: &[u8], width: usize, buf: &mut String) {
    let mut out = std::mem::take(buf).into_bytes();
    out.clear();
    out.reserve(bytes.len() / width);
    let unit = |i: usize| -> u32 {
        if width == 2 {
            u32::from(u16::from_le_bytes([bytes[i], bytes[i + 1]]))
        } else {
            u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]])
        }
    };
    let whole = bytes.len() - bytes.len() % width;
    let push = |out: &mut Vec<u8>, c: char| {
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    };
    let mut i = 0;
    while i < whole {
        // Eight ASCII UTF-16 units at a time, as two words: every high byte zero, every low
        // byte below 0x80. Each word's four low bytes are packed with two shift-and-masks.
        if width == 2 && i + 16 <= whole {
            let word = |at: usize| {
                let w = &bytes[at..at + 8];
                u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
            };
            let (lo, hi) = (word(i), word(i + 8));
            if (lo | hi) & 0xFF80_FF80_FF80_FF80 == 0 {
                let pack = |x: u64| {
                    let x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
                    (x | (x >> 16)) & 0xFFFF_FFFF
                };
                out.extend_from_slice(&(pack(lo) | (pack(hi) << 32)).to_le_bytes());
                i += 16;
                continue;
            }
        }
        // Four at a time, likewise.
        if width == 2 && i + 8 <= whole {
            let w = &bytes[i..i + 8];
            let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            if x & 0xFF80_FF80_FF80_FF80 == 0 {
                out.extend_from_slice(&[w[0], w[2], w[4], w[6]]);
                i += 8;
                continue;
            }
        }
        let u = unit(i);
        i += width;
        if u < 0x80 {
            out.push(u as u8);
            continue;
        }
        let c = if width == 4 {
            char::from_u32(u)
        } else if (0xD800..0xDC00).contains(&u) {
            // A high surrogate pairs only with an immediately following low
            // one; otherwise it alone is replaced and the next unit is read
            // afresh (as `decode_utf16` does).
            match (i < whole).then(|| unit(i)) {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    i += width;
                    char::from_u32(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00))
                }
                _ => None,
            }
        } else {
            // Lone low surrogates are not chars.
            char::from_u32(u)
        };
        push(&mut out, c.unwrap_or(char::REPLACEMENT_CHARACTER));
    }
    if whole != bytes.len() {
        push(&mut out, char::REPLACEMENT_CHARACTER);
    }
    // Always valid: only ASCII bytes and whole encoded chars were written.
    *buf = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_drops_only_buffers_grown_past_the_limit() {
        let mut scratch = BodyScratch::default();
        scratch.text.reserve(4096);
        scratch.trim(1 << 20);
        assert!(scratch.text.capacity() >= 4096, "small buffers are kept");
        scratch.text.reserve(2 << 20);
        scratch.trim(1 << 20);
        assert_eq!(
            scratch.text.capacity(),
            0,
            "a buffer past the limit is dropped"
        );
    }

    #[test]
    fn decode_agrees_with_message_body_text() {
        let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
        let utf32 =
            |s: &str| -> Vec<u8> { s.chars().flat_map(|c| (c as u32).to_le_bytes()).collect() };
        let mixed = "{\"c\":\"M\u{fc}nchen \u{1F600}\u{7f}\u{80}\u{FFFF}\"}";
        let owned: Vec<Vec<u8>> = vec![
            utf16(mixed),
            utf32(mixed),
            utf16("{\"a\":1}"),
            // Lone and reversed surrogates, a high one at the end, a
            // partial trailing unit.
            vec![
                0x3D, 0xD8, b'a', 0, 0x00, 0xDC, 0x3D, 0xD8, 0x00, 0xDC, 0x00, 0xDC,
            ],
            vec![b'a', 0, 0x00, 0xDC, 0x3D, 0xD8, 0x00, 0xDC, 0x3D, 0xD8],
            vec![b'a', 0, 0x3D, 0xD8, 0x3D, 0xD8, 0x00, 0xDC, 0xFF],
            // UTF-32: surrogates, beyond U+10FFFF, a partial unit.
            vec![
                b'a', 0, 0, 0, 0x00, 0xD8, 0, 0, 0, 0, 0x11, 0, 0x00, 0xF6, 0x01, 0, 0xFF, 0xFF,
            ],
        ];
        // Long runs of ASCII with other characters at every offset, for the eight-unit steps.
        let long: Vec<String> = (0..24)
            .map(|k| {
                let run = "abcdefghijklmnopqrstuvwxyz0123456789";
                [
                    "{\"c\":\"",
                    &run[..k],
                    "\u{e9}",
                    run,
                    "\u{1F600}",
                    run,
                    "\"}",
                ]
                .concat()
            })
            .collect();
        let owned: Vec<Vec<u8>> = owned
            .into_iter()
            .chain(
                long.iter()
                    .flat_map(|s| [utf16(s), utf32(s), s.as_bytes().to_vec()]),
            )
            .collect();
        let mut bodies: Vec<&[u8]> = vec![
            b"{\"a\":1}",
            b"\xEF\xBB\xBF{}\xFF",
            &[b'{', 0, b'}', 0, 0x3D, 0xD8, b'x'],
            &[b'a', 0, 0, 0, 0, 0, 0x11, 0, 1],
            b"",
            "{\"c\":\"M\u{fc}nchen\"}".as_bytes(),
        ];
        bodies.extend(owned.iter().map(Vec::as_slice));
        let types = [
            None,
            Some(None),
            Some(Some("application/json")),
            Some(Some("Application/JSON")),
            Some(Some("text/plain")),
            Some(Some("application/json; charset=utf-8")),
        ];
        let encodings = [
            None,
            Some(None),
            Some(Some("utf-8")),
            Some(Some("UTF-16")),
            Some(Some("utf-32")),
            Some(Some("latin1")),
        ];
        let mut buf = String::new();
        for body in bodies {
            for ct in types {
                for ce in encodings {
                    let mut m = Message::default();
                    if let Some(ct) = ct {
                        m.system_properties
                            .insert("contentType", ct.map(String::from));
                    }
                    if let Some(ce) = ce {
                        m.system_properties
                            .insert("contentEncoding", ce.map(String::from));
                    }
                    m.body = body.to_vec();
                    let expected = m.body_text().ok().map(|t| t.into_owned());
                    let got = decode_body(&m, &mut buf)
                        .ok()
                        .map(|b| b.unwrap_or(&buf).to_string());
                    assert_eq!(got, expected, "{ct:?} {ce:?} {body:?}");
                }
            }
        }
    }
}
