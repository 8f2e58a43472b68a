//! The route table's body plan and the reusable per-message scratch space.
//!
//! A [`BodyPlan`] interns every `$body` path of every route of a table into
//! one [`PathSet`], so that a message's body is decoded and scanned at most
//! once for all routes, and only the referenced values are recorded. A
//! [`BodyScratch`] holds the buffers that decoding and extraction need; the
//! caller keeps it across messages, so routing allocates nothing once the
//! buffers have grown to the largest body seen.

use crate::body::{Extraction, PathSet, PathSlot};
use crate::compile::Program;
use crate::message::names::{CONTENT_ENCODING, CONTENT_TYPE, CONTENT_TYPE_JSON};
use crate::message::{eq_ignore_case, Message};

/// Every `$body` path of a set of programs (one per route, in order),
/// interned once.
#[derive(Debug, Clone)]
pub struct BodyPlan {
    pub(super) set: PathSet,
    /// For each program: its local path index → where the value is.
    pub(super) programs: Vec<Box<[PathSlot]>>,
}

impl BodyPlan {
    /// A plan for `programs`, indexed as given (`None`: a route without a
    /// condition).
    pub fn new<'p>(programs: impl IntoIterator<Item = Option<&'p Program>>) -> BodyPlan {
        let programs: Vec<Option<&Program>> = programs.into_iter().collect();
        let all = programs
            .iter()
            .flatten()
            .flat_map(|p| p.body_paths().iter());
        let (set, slots) = PathSet::build(all);
        let mut slots = slots.into_iter();
        let programs = programs
            .iter()
            .map(|p| match p {
                Some(p) => slots.by_ref().take(p.body_paths().len()).collect(),
                None => Box::default(),
            })
            .collect();
        BodyPlan { set, programs }
    }

    /// Number of distinct plain paths (trie nodes, including the root).
    pub fn slot_count(&self) -> usize {
        self.set.len()
    }
}

/// Reusable buffers for reading bodies: keep one per thread and pass it to
/// each message's context.
#[derive(Debug, Default)]
pub struct BodyScratch {
    /// The decoded text, when the body bytes are not valid UTF-8 already.
    pub(super) text: String,
    pub(super) extraction: Extraction,
}

/// The text the engine parses (R23), without allocating: valid UTF-8 is
/// borrowed from the message (`Ok(Some)`); anything else is decoded into
/// `buf` (`Ok(None)`) exactly as [`Message::body_text`] decodes it. `Err`
/// when the body is unreadable. Mirrors `Message::body_text`, which builds
/// an error value with the reason (and allocates); a unit test checks that
/// the two agree.
pub(super) fn decode_body<'m>(
    message: &'m Message,
    buf: &mut String,
) -> Result<Option<&'m str>, ()> {
    #[derive(PartialEq)]
    enum Enc {
        Utf8,
        Utf16,
        Utf32,
    }
    let enc = match message.system_properties.get(CONTENT_ENCODING) {
        Some(Some(name)) if eq_ignore_case("utf-8", name) => Enc::Utf8,
        Some(Some(name)) if eq_ignore_case("utf-16", name) => Enc::Utf16,
        Some(Some(name)) if eq_ignore_case("utf-32", name) => Enc::Utf32,
        _ => return Err(()),
    };
    match message.system_properties.get(CONTENT_TYPE) {
        Some(Some(t)) if eq_ignore_case(t, CONTENT_TYPE_JSON) => {}
        _ => return Err(()),
    }
    let bytes = &message.body;
    buf.clear();
    match enc {
        Enc::Utf8 => {
            if let Ok(s) = std::str::from_utf8(bytes) {
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
        Enc::Utf16 => {
            let chunks = bytes.chunks_exact(2);
            let odd = !chunks.remainder().is_empty();
            let units = chunks.map(|c| u16::from_le_bytes([c[0], c[1]]));
            buf.extend(char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)));
            if odd {
                buf.push(char::REPLACEMENT_CHARACTER);
            }
        }
        Enc::Utf32 => {
            let chunks = bytes.chunks_exact(4);
            let partial = !chunks.remainder().is_empty();
            buf.extend(chunks.map(|c| {
                char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            }));
            if partial {
                buf.push(char::REPLACEMENT_CHARACTER);
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_agrees_with_message_body_text() {
        let bodies: [&[u8]; 6] = [
            b"{\"a\":1}",
            b"\xEF\xBB\xBF{}\xFF",
            &[b'{', 0, b'}', 0, 0x3D, 0xD8, b'x'],
            &[b'a', 0, 0, 0, 0, 0, 0x11, 0, 1],
            b"",
            "{\"c\":\"M\u{fc}nchen\"}".as_bytes(),
        ];
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
