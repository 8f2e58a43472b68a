//! When and how the body becomes text (conformance rule R23).
//!
//! The engine reads `$body` only when `contentType` is `application/json` and
//! `contentEncoding` names one of three .NET encodings (`Message.cs:162-195`,
//! `Constants.cs`). Bytes are decoded with `Encoding.GetString`, which keeps
//! a byte-order mark as U+FEFF and replaces invalid sequences with U+FFFD.
//! Users most often hit this as "my body query never matches", so the
//! reasons say exactly what to set.

use std::borrow::Cow;

use super::names::{CONTENT_ENCODING, CONTENT_TYPE, CONTENT_TYPE_JSON};
use super::properties::eq_ignore_case;
use super::Message;

/// Why `$body` cannot be read for a message; every `$body` value is then
/// undefined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyUnreadable {
    /// No `contentType` system property.
    #[error("the message has no 'contentType' system property; set it to 'application/json' to query the body")]
    MissingContentType,
    /// `contentType` is not `application/json` (any case); empty when null.
    #[error("content type '{0}' is not supported; set the 'contentType' system property to 'application/json' to query the body")]
    UnsupportedContentType(String),
    /// No `contentEncoding` system property.
    #[error("the message has no 'contentEncoding' system property; set it to 'utf-8', 'utf-16' or 'utf-32' to query the body")]
    MissingContentEncoding,
    /// `contentEncoding` is not utf-8, utf-16 or utf-32 (any case); empty
    /// when null.
    #[error("content encoding '{0}' is not supported; set the 'contentEncoding' system property to 'utf-8', 'utf-16' or 'utf-32'")]
    UnsupportedContentEncoding(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16Le,
    Utf32Le,
}

fn decode_utf16le(bytes: &[u8]) -> String {
    let chunks = bytes.chunks_exact(2);
    let odd = !chunks.remainder().is_empty();
    let units = chunks.map(|c| u16::from_le_bytes([c[0], c[1]]));
    let mut s: String = char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if odd {
        s.push(char::REPLACEMENT_CHARACTER);
    }
    s
}

fn decode_utf32le(bytes: &[u8]) -> String {
    let chunks = bytes.chunks_exact(4);
    let partial = !chunks.remainder().is_empty();
    let mut s: String = chunks
        .map(|c| {
            char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect();
    if partial {
        s.push(char::REPLACEMENT_CHARACTER);
    }
    s
}

impl Message {
    fn body_encoding(&self) -> Result<Encoding, BodyUnreadable> {
        let name = match self.system_properties.get(CONTENT_ENCODING) {
            None => return Err(BodyUnreadable::MissingContentEncoding),
            Some(None) => return Err(BodyUnreadable::UnsupportedContentEncoding(String::new())),
            Some(Some(name)) => name,
        };
        [
            ("utf-8", Encoding::Utf8),
            ("utf-16", Encoding::Utf16Le),
            ("utf-32", Encoding::Utf32Le),
        ]
        .into_iter()
        .find(|(n, _)| eq_ignore_case(n, name))
        .map(|(_, e)| e)
        .ok_or_else(|| BodyUnreadable::UnsupportedContentEncoding(name.to_string()))
    }

    /// The body as the text the engine parses, or why the engine would not
    /// read it. The encoding is checked before the content type, in the
    /// engine's order. Valid UTF-8 is borrowed.
    pub fn body_text(&self) -> Result<Cow<'_, str>, BodyUnreadable> {
        let encoding = self.body_encoding()?;
        match self.system_properties.get(CONTENT_TYPE) {
            None => return Err(BodyUnreadable::MissingContentType),
            Some(Some(t)) if eq_ignore_case(t, CONTENT_TYPE_JSON) => {}
            Some(t) => {
                return Err(BodyUnreadable::UnsupportedContentType(
                    t.unwrap_or_default().to_string(),
                ))
            }
        }
        Ok(match encoding {
            Encoding::Utf8 => String::from_utf8_lossy(&self.body),
            Encoding::Utf16Le => Cow::Owned(decode_utf16le(&self.body)),
            Encoding::Utf32Le => Cow::Owned(decode_utf32le(&self.body)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ct: Option<&str>, ce: Option<&str>, body: &[u8]) -> Message {
        let mut m = Message::default();
        if let Some(ct) = ct {
            m.system_properties.insert("contentType", Some(ct.into()));
        }
        if let Some(ce) = ce {
            m.system_properties
                .insert("contentEncoding", Some(ce.into()));
        }
        m.body = body.to_vec();
        m
    }

    #[test]
    fn requires_type_and_encoding() {
        let j = Some("Application/JSON");
        assert!(matches!(
            msg(j, Some("UTF-8"), b"{}").body_text(),
            Ok(Cow::Borrowed("{}"))
        ));
        assert_eq!(
            msg(None, Some("utf-8"), b"").body_text(),
            Err(BodyUnreadable::MissingContentType)
        );
        assert_eq!(
            msg(j, None, b"").body_text(),
            Err(BodyUnreadable::MissingContentEncoding)
        );
        assert_eq!(
            msg(None, None, b"").body_text(),
            Err(BodyUnreadable::MissingContentEncoding)
        );
        assert_eq!(
            msg(Some("text/plain"), Some("utf-8"), b"").body_text(),
            Err(BodyUnreadable::UnsupportedContentType("text/plain".into()))
        );
        assert_eq!(
            msg(j, Some("latin1"), b"").body_text(),
            Err(BodyUnreadable::UnsupportedContentEncoding("latin1".into()))
        );
        let e = msg(None, Some("utf-8"), b"")
            .body_text()
            .unwrap_err()
            .to_string();
        assert!(e.contains("application/json"), "{e}");
    }

    #[test]
    fn decodes_like_dotnet() {
        let j = Some("application/json");
        // UTF-8: BOM kept, invalid bytes replaced.
        let t = msg(j, Some("utf-8"), b"\xEF\xBB\xBF{}\xFF")
            .body_text()
            .unwrap()
            .into_owned();
        assert_eq!(t, "\u{FEFF}{}\u{FFFD}");
        // UTF-16LE (Encoding.Unicode), odd trailing byte and lone surrogate.
        let t = msg(j, Some("UTf-16"), &[b'{', 0, b'}', 0, 0x3D, 0xD8, b'x'])
            .body_text()
            .unwrap()
            .into_owned();
        assert_eq!(t, "{}\u{FFFD}\u{FFFD}");
        // UTF-32LE, invalid code point and partial unit.
        let t = msg(j, Some("utf-32"), &[b'a', 0, 0, 0, 0, 0, 0x11, 0, 1])
            .body_text()
            .unwrap()
            .into_owned();
        assert_eq!(t, "a\u{FFFD}\u{FFFD}");
        // A UTF-16 body declared as UTF-8 does not become the same text.
        let t = msg(j, Some("utf-8"), &[b'{', 0, b'}', 0])
            .body_text()
            .unwrap()
            .into_owned();
        assert_eq!(t, "{\0}\0");
    }
}
