//! The fast path of [`Message::from_json_str`]: message JSON read straight from the line into
//! a reused [`Message`], without an intermediate tree. Strings without escapes are copied once
//! from the line into the message's reused strings; escaped strings (a JSON body in `body`,
//! `connectionAuthMethod`) are unescaped straight into them; `bodyBase64` is decoded into the
//! reused body; system property names are canonicalised as they are read.
//!
//! This reader only says "here is the message" or "not mine" ([`NotMine`]): for anything it
//! does not accept (every error, and rare shapes it leaves to the general path: duplicate or
//! non-ASCII system property names, surrogate pairs that are not well formed) the caller runs
//! the serde path, which gives the error, its code and position. So its only obligation is
//! that every line it accepts is one the serde path accepts, with the same message; the
//! differential tests in `json.rs` hold it to that.

use base64::Engine;

use super::naming::{canonical_name, MESSAGE_SOURCE};
use super::{Message, Properties, Source};

/// The line is not one this reader accepts; the general path decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotMine;

type Res<T> = Result<T, NotMine>;

/// Where an unescaped string goes.
trait Sink {
    fn text(&mut self, s: &str);
    fn char(&mut self, c: char);
    /// An ASCII byte (`b < 0x80`).
    fn ascii(&mut self, b: u8);
}

impl Sink for String {
    #[inline]
    fn text(&mut self, s: &str) {
        self.push_str(s);
    }
    #[inline]
    fn char(&mut self, c: char) {
        self.push(c);
    }
    #[inline]
    fn ascii(&mut self, b: u8) {
        self.push(char::from(b));
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn text(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
    #[inline]
    fn char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    #[inline]
    fn ascii(&mut self, b: u8) {
        self.push(b);
    }
}

/// A JSON string's content as it is in the line: `raw` is between the quotes, `escaped` says
/// whether it holds a backslash (then it must go through [`unescape`]). For names, which are
/// looked up before they are copied; values are read with [`Reader::string_into`].
#[derive(Clone, Copy)]
struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of `w` that is `"`, `\` or a control character (below 0x20); bytes
/// above the lowest flagged one may be flagged wrongly (borrows), so only the lowest counts.
#[inline(always)]
fn special_bytes(w: u64) -> u64 {
    let quote = w ^ (LO * b'"' as u64);
    let backslash = w ^ (LO * b'\\' as u64);
    ((w.wrapping_sub(LO * 0x20) & !w)
        | (quote.wrapping_sub(LO) & !quote)
        | (backslash.wrapping_sub(LO) & !backslash))
        & HI
}

/// The first position from `i` of a `"`, `\` or control character, or `b.len()`: eight bytes
/// at a time, as strings are most of a message's bytes.
#[inline]
fn find_special(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let m = special_bytes(u64::from_le_bytes(w));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !(b[i] == b'"' || b[i] == b'\\' || b[i] < 0x20) {
        i += 1;
    }
    i
}

fn hex4(b: &[u8]) -> Res<u16> {
    let mut v = 0u16;
    for &c in b.get(..4).ok_or(NotMine)? {
        let d = (c as char).to_digit(16).ok_or(NotMine)?;
        v = v << 4 | d as u16;
    }
    Ok(v)
}

/// Decodes the escape at `b[at]` (a backslash) into `out`, as serde_json reads it (`\uXXXX`
/// pairs of surrogates make one character; anything it would refuse is [`NotMine`]); returns
/// the position after it.
#[inline]
fn escape(b: &[u8], at: usize, out: &mut impl Sink) -> Res<usize> {
    let byte = match b.get(at + 1).ok_or(NotMine)? {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 8,
        b'f' => 12,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let hi = hex4(b.get(at + 2..).ok_or(NotMine)?)?;
            let (c, len) = match hi {
                0xD800..=0xDBFF => {
                    if b.get(at + 6..at + 8) != Some(b"\\u") {
                        return Err(NotMine);
                    }
                    let lo = hex4(&b[at + 8..])?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return Err(NotMine);
                    }
                    let c = 0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                    (char::from_u32(c).ok_or(NotMine)?, 12)
                }
                0xDC00..=0xDFFF => return Err(NotMine),
                _ => (char::from_u32(u32::from(hi)).ok_or(NotMine)?, 6),
            };
            out.char(c);
            return Ok(at + len);
        }
        _ => return Err(NotMine),
    };
    out.ascii(byte);
    Ok(at + 2)
}

/// Appends the value of the escaped JSON string content `raw` to `out` (see [`escape`]).
fn unescape(raw: &str, out: &mut impl Sink) -> Res<()> {
    let b = raw.as_bytes();
    let mut start = 0;
    while let Some(off) = memchr::memchr(b'\\', &b[start..]) {
        let at = start + off;
        out.text(&raw[start..at]);
        start = escape(b, at, out)?;
    }
    out.text(&raw[start..]);
    Ok(())
}

/// Reads `{"systemProperties": …}` message JSON; see the module docs.
struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-white byte, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Res<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(NotMine)
        }
    }

    /// A string; the next non-white byte must be its opening quote.
    #[inline]
    fn string(&mut self) -> Res<JsonStr<'a>> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        let mut i = start;
        loop {
            i = find_special(self.b, i);
            match self.b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    // The escaped byte is checked by `unescape`; skipping it keeps `\"` inside.
                    i += 2;
                }
                _ => return Err(NotMine),
            }
        }
        self.pos = i + 1;
        let raw = self.text.get(start..i).ok_or(NotMine)?;
        Ok(JsonStr { raw, escaped })
    }

    /// A string's value appended to `out` in one pass (runs between escapes copied, escapes
    /// decoded); the next non-white byte must be its opening quote.
    #[inline]
    fn string_into(&mut self, out: &mut impl Sink) -> Res<()> {
        self.expect(b'"')?;
        let mut i = self.pos;
        loop {
            let j = find_special(self.b, i);
            match self.b.get(j) {
                Some(b'"') => {
                    out.text(self.text.get(i..j).ok_or(NotMine)?);
                    self.pos = j + 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    out.text(self.text.get(i..j).ok_or(NotMine)?);
                    i = escape(self.b, j, out)?;
                }
                _ => return Err(NotMine),
            }
        }
    }

    /// `null` (true) or the opening quote of a string (false, not consumed).
    #[inline]
    fn null_or_string(&mut self) -> Res<bool> {
        match self.peek() {
            Some(b'"') => Ok(false),
            Some(b'n') if self.b.get(self.pos..self.pos + 4) == Some(b"null") => {
                self.pos += 4;
                Ok(true)
            }
            _ => Err(NotMine),
        }
    }

    /// A string or `null` (`None`).
    #[inline]
    fn string_or_null(&mut self) -> Res<Option<JsonStr<'a>>> {
        match self.peek() {
            Some(b'"') => self.string().map(Some),
            Some(b'n') if self.b.get(self.pos..self.pos + 4) == Some(b"null") => {
                self.pos += 4;
                Ok(None)
            }
            _ => Err(NotMine),
        }
    }

    /// `,` (true: another member follows) or `}` (false) after a member.
    #[inline]
    fn next_member(&mut self) -> Res<bool> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b'}') => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(NotMine),
        }
    }

    /// `{` and whether the object has members (false: `{}` was read whole).
    #[inline]
    fn open_object(&mut self) -> Res<bool> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// A property value into a spare string of `bag`.
    #[inline]
    fn value_into(&mut self, bag: &mut Properties) -> Res<Option<String>> {
        if self.null_or_string()? {
            return Ok(None);
        }
        let mut v = bag.take_spare();
        match self.string_into(&mut v) {
            Ok(()) => Ok(Some(v)),
            Err(e) => {
                bag.recycle(v);
                Err(e)
            }
        }
    }

    /// `appProperties`' object, into `bag` (emptied first: a repeated field replaces).
    fn app_properties(&mut self, bag: &mut Properties, scratch: &mut String) -> Res<()> {
        bag.clear();
        if !self.open_object()? {
            return Ok(());
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            let value = self.value_into(bag)?;
            if name.escaped {
                scratch.clear();
                unescape(name.raw, scratch)?;
                bag.insert_spare(scratch, value);
            } else {
                bag.insert_spare(name.raw, value);
            }
            if !self.next_member()? {
                return Ok(());
            }
        }
    }

    /// `systemProperties`' object, into `bag` under routing names; returns the source its
    /// `iothub-message-source` names. Names are ASCII and distinct up to case after
    /// canonicalisation, else [`NotMine`] (the general path merges duplicates as it always did).
    fn system_properties(
        &mut self,
        bag: &mut Properties,
        scratch: &mut String,
    ) -> Res<Option<Source>> {
        bag.clear();
        let mut source = None;
        let mut seen_source = false;
        if !self.open_object()? {
            return Ok(None);
        }
        loop {
            let raw_name = self.string()?;
            self.expect(b':')?;
            let name: &str = if raw_name.escaped {
                scratch.clear();
                unescape(raw_name.raw, scratch)?;
                scratch
            } else {
                raw_name.raw
            };
            if !name.is_ascii() {
                return Err(NotMine);
            }
            if name.eq_ignore_ascii_case(MESSAGE_SOURCE) {
                if std::mem::replace(&mut seen_source, true) {
                    return Err(NotMine);
                }
                let value = self.string_or_null()?;
                if let Some(v) = value {
                    let text: &str = if v.escaped {
                        scratch.clear();
                        unescape(v.raw, scratch)?;
                        scratch
                    } else {
                        v.raw
                    };
                    source = Some(text.parse::<Source>().map_err(|_| NotMine)?);
                }
            } else {
                let name = match canonical_name(name) {
                    Some(c) if !c.eq_ignore_ascii_case(name) => c,
                    _ => name,
                };
                // `name` may borrow `scratch`, which the value does not touch.
                let value = self.value_into(bag)?;
                if let Err(value) = bag.insert_spare_absent(name, value) {
                    if let Some(v) = value {
                        bag.recycle(v);
                    }
                    return Err(NotMine);
                }
            }
            if !self.next_member()? {
                return Ok(source);
            }
        }
    }
}

/// Reads `text` into `m` (every field replaced; its memory reused), or [`NotMine`] with `m` in
/// an unspecified state.
pub(super) fn read_into(m: &mut Message, text: &str, scratch: &mut String) -> Res<()> {
    m.source = None;
    m.body.clear();
    m.system_properties.clear();
    m.app_properties.clear();
    let mut r = Reader {
        text,
        b: text.as_bytes(),
        pos: 0,
    };
    let (mut body, mut body_base64) = (false, false);
    if r.open_object()? {
        loop {
            let field = r.string()?;
            r.expect(b':')?;
            if field.escaped {
                return Err(NotMine);
            }
            match field.raw {
                "systemProperties" => {
                    let source = r.system_properties(&mut m.system_properties, scratch)?;
                    if m.source.is_none() {
                        m.source = source;
                    }
                }
                "appProperties" => r.app_properties(&mut m.app_properties, scratch)?,
                "body" if !body_base64 => {
                    body = true;
                    m.body.clear();
                    r.string_into(&mut m.body)?;
                }
                "bodyBase64" if !body => {
                    body_base64 = true;
                    m.body.clear();
                    let s = r.string()?;
                    let encoded: &str = if s.escaped {
                        scratch.clear();
                        unescape(s.raw, scratch)?;
                        scratch
                    } else {
                        s.raw
                    };
                    super::json::BASE64
                        .decode_vec(encoded.trim(), &mut m.body)
                        .map_err(|_| NotMine)?;
                }
                "source" => {
                    m.source = match r.string_or_null()? {
                        None => None,
                        Some(s) => {
                            let text: &str = if s.escaped {
                                scratch.clear();
                                unescape(s.raw, scratch)?;
                                scratch
                            } else {
                                s.raw
                            };
                            Some(text.parse::<Source>().map_err(|_| NotMine)?)
                        }
                    }
                }
                _ => return Err(NotMine),
            }
            if !r.next_member()? {
                break;
            }
        }
    }
    r.ws();
    if r.pos != r.b.len() {
        return Err(NotMine);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_bytes_finds_the_first_quote_backslash_or_control() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for at in 0..text.len() {
            for c in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
                let mut s = text.to_string();
                s.replace_range(at..at + 1, &c.to_string());
                assert_eq!(find_special(s.as_bytes(), 0), at, "{s:?}");
                // A later special byte does not hide an earlier one.
                s.push('"');
                assert_eq!(find_special(s.as_bytes(), 0), at, "{s:?}");
            }
        }
        assert_eq!(find_special("é \u{7f} ~!".as_bytes(), 0), 7);
        for c in 0u8..=255 {
            let b = [b'a', b'b', c, b'd', b'e', b'f', b'g', b'h', b'i'];
            let want = if c == b'"' || c == b'\\' || c < 0x20 {
                2
            } else {
                9
            };
            assert_eq!(find_special(&b, 0), want, "{c}");
        }
    }

    #[test]
    fn unescapes_as_json_does() {
        let mut s = String::new();
        unescape(r#"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00"#, &mut s).unwrap();
        assert_eq!(s, "a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{20ac}\u{1f600}");
        for bad in [
            r"\x",
            r"\u12",
            r"\ud83d",
            r"\ud83dx",
            r"\ude00",
            r"\ud83d\u0041",
            "\\",
        ] {
            assert_eq!(unescape(bad, &mut String::new()), Err(NotMine), "{bad}");
        }
    }
}
