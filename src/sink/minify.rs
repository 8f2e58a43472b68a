//! The check and minifying of a body a Storage JSON record embeds, over bitmasks of its
//! structure: simdjson's two stages on SSE2 blocks.
//!
//! Why: the token-by-token check (`sink::json::check`) dispatched on every byte where a
//! token starts and scanned every string to its end, about 9k instructions for a compact
//! body of 800 bytes. Here stage 1 classifies 64 bytes at a time into masks (quotes, with
//! the escape rule carried across chunks; inside strings, as the prefix XOR of the quotes;
//! whitespace, structural bytes and control bytes outside and inside strings), which checks
//! the strings' contents at once (no control byte inside, escapes as serde_json takes them;
//! UTF-8 is checked on the whole text before) and finds where each token starts. Stage 2
//! walks only those starts to check the grammar and the scalars between them. A body
//! without whitespace (the usual case) is then copied with one `memcpy`; else the runs
//! between its whitespace are.
//!
//! The result is the reference check's, byte for byte (the tests run both over mutated
//! bodies and at every block boundary).

use super::json::{number, push_run, Stop};
use crate::bytes::Block;

/// The bytes stage 1 classifies at once (four SSE2 blocks, one bit each in a `u64`).
const CHUNK: usize = 64;

/// The bytes that may follow a scalar (a number, `true`, `false`, `null`): whitespace,
/// structural bytes and a quote (which the grammar then rejects). Any other byte there
/// means the scalar's text goes on past what its rule takes (`01`, `truex`, `1-`).
const fn scalar_ends() -> [bool; 256] {
    let mut t = [false; 256];
    let ends = b" \t\n\r{}[]:,\"";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
}

static SCALAR_ENDS: [bool; 256] = scalar_ends();

/// Whether a scalar ending at `end` ends its text there (the end of the text does too).
#[inline(always)]
fn ends_scalar(b: &[u8], end: usize) -> bool {
    b.get(end).is_none_or(|&c| SCALAR_ENDS[usize::from(c)])
}

/// Bit `k` is the XOR of bits `0..=k`: from an opening quote up to (not including) its
/// closing quote, the bytes inside a string.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// One mask of a chunk's four blocks: block `k`'s in bits `16k..16k + 16`.
#[inline(always)]
fn gather(blocks: &[Block; 4], f: impl Fn(Block) -> u32) -> u64 {
    let [a, b, c, d] = *blocks;
    u64::from(f(a)) | u64::from(f(b)) << 16 | u64::from(f(c)) << 32 | u64::from(f(d)) << 48
}

/// Block `k` of a chunk.
#[inline(always)]
fn quarter(chunk: &[u8; CHUNK], k: usize) -> Block {
    Block::load(chunk[16 * k..].first_chunk::<16>().unwrap_or(&SPACES))
}

/// Sixteen spaces (a quarter of a chunk never falls back to it: the chunks are 64 bytes).
const SPACES: [u8; 16] = [b' '; 16];

/// Checks the escape whose backslash is at `at`: `\" \\ \/ \b \f \n \r \t`, or `\u` and four
/// hex digits (any code unit, as serde_json's `IgnoredAny` takes them).
#[inline]
fn escape(b: &[u8], at: usize) -> Result<(), Stop> {
    match b.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(()),
        Some(b'u') => match b.get(at + 2..at + 6) {
            Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(()),
            _ => Err(Stop::Invalid),
        },
        _ => Err(Stop::Invalid),
    }
}

/// Stage 1 run chunk by chunk as stage 2 asks for more tokens, copying the text without
/// its whitespace to `out` as it goes.
struct Tokens<'t, 'o> {
    text: &'t [u8],
    out: &'o mut Vec<u8>,
    /// The offset of the next chunk to classify.
    next: usize,
    /// All ones when the chunk before ended inside a string.
    in_string: u64,
    /// The chunk before ended with a backslash that escapes the next byte.
    escaping: bool,
    /// Bit 0: the chunk before ended with a byte of a scalar.
    scalar: u64,
    /// Where the text not yet copied to `out` begins.
    copied: usize,
}

/// The token starts of the chunk at `base` not yet taken: structural bytes, opening quotes,
/// and the first byte of each scalar. A local of stage 2 (so in registers), refilled by
/// [`Tokens::more`].
struct Cursor {
    starts: u64,
    base: usize,
}

/// The offset of the next token, or the text's length after the last one.
#[inline(always)]
fn next(c: &mut Cursor, t: &mut Tokens) -> Result<usize, Stop> {
    if c.starts == 0 {
        (c.starts, c.base) = t.more()?;
    }
    let k = c.starts.trailing_zeros() as usize;
    c.starts &= c.starts - 1;
    Ok(c.base + k)
}

impl Tokens<'_, '_> {
    /// Stage 1 on the chunks up to the next one with a token start: its starts and offset;
    /// after the last chunk, one start at the text's length (the end).
    #[inline(never)]
    fn more(&mut self) -> Result<(u64, usize), Stop> {
        loop {
            let base = self.next;
            let Some(rest) = self.text.get(base..).filter(|r| !r.is_empty()) else {
                // The end of the text inside a string: that string is not closed.
                return if self.in_string != 0 {
                    Err(Stop::Invalid)
                } else {
                    Ok((1, self.text.len()))
                };
            };
            self.next = base + CHUNK;
            let starts = match rest.first_chunk::<CHUNK>() {
                Some(chunk) => self.classify(base, chunk)?,
                None => self.classify_last(base, rest)?,
            };
            if starts != 0 {
                return Ok((starts, base));
            }
        }
    }

    /// [`Tokens::classify`] on the text's last bytes, fewer than a chunk, padded with spaces.
    #[cold]
    fn classify_last(&mut self, base: usize, rest: &[u8]) -> Result<u64, Stop> {
        let mut padded = [b' '; CHUNK];
        padded[..rest.len()].copy_from_slice(rest);
        self.classify(base, &padded)
    }

    /// Stage 1 on the chunk at `base`: its token starts; its strings' contents checked, its
    /// text up to its last whitespace copied.
    #[inline(always)]
    fn classify(&mut self, base: usize, chunk: &[u8; CHUNK]) -> Result<u64, Stop> {
        let blocks = [
            quarter(chunk, 0),
            quarter(chunk, 1),
            quarter(chunk, 2),
            quarter(chunk, 3),
        ];
        let quotes = gather(&blocks, |v| v.eq(b'"'));
        let backslashes = gather(&blocks, |v| v.eq(b'\\'));
        let structural = gather(&blocks, Block::json_structural);
        // Whitespace and control bytes are both at most 0x20: none in most chunks.
        let low = gather(&blocks, |v| v.at_most(0x20));

        let escaped = if backslashes == 0 && !self.escaping {
            0
        } else {
            self.escapes(base, backslashes)?
        };
        let quotes = quotes & !escaped;
        let in_string = prefix_xor(quotes) ^ self.in_string;
        self.in_string = ((in_string as i64) >> 63) as u64;
        let (white, control) = if low == 0 {
            (0, 0)
        } else {
            (
                gather(&blocks, Block::json_whitespace),
                gather(&blocks, Block::control),
            )
        };
        if control & in_string != 0 {
            return Err(Stop::Invalid);
        }
        let white = white & !in_string;
        let structural = structural & !in_string;
        let scalar = !(white | structural | in_string | quotes);
        let scalar_starts = scalar & !(scalar << 1 | self.scalar);
        self.scalar = scalar >> 63;
        if white != 0 {
            // Not past the text's end (the padding of its last chunk is spaces).
            let white = match self.text.len() - base {
                n if n < CHUNK => white & ((1u64 << n) - 1),
                _ => white,
            };
            self.copy_between(base, white);
        }
        Ok(structural | (quotes & in_string) | scalar_starts)
    }

    /// The escaped bytes of the chunk at `base` (each after an escaping backslash), each
    /// escape checked.
    #[inline(never)]
    fn escapes(&mut self, base: usize, mut backslashes: u64) -> Result<u64, Stop> {
        let mut escaped = 0;
        if self.escaping {
            escaped = 1;
            backslashes &= !1;
            self.escaping = false;
        }
        while backslashes != 0 {
            // An escaping backslash (the escaped ones are cleared below).
            let k = backslashes.trailing_zeros();
            escape(self.text, base + k as usize)?;
            if k == 63 {
                self.escaping = true;
                break;
            }
            escaped |= 2 << k;
            backslashes &= !(3 << k);
        }
        Ok(escaped)
    }

    /// Copies the text up to each run of whitespace (bits of `white`) in the chunk at
    /// `base`, and skips the run. Each run is copied as [`push_run`] copies (a block of
    /// constant length in line, not a `memcpy` call per run).
    #[inline(never)]
    fn copy_between(&mut self, base: usize, mut white: u64) {
        while white != 0 {
            let k = white.trailing_zeros();
            let at = base + k as usize;
            if at > self.copied {
                push_run(self.out, self.text, self.copied, at);
            }
            let after = !white & (u64::MAX << k);
            if after == 0 {
                self.copied = base + CHUNK;
                break;
            }
            let k = after.trailing_zeros();
            self.copied = base + k as usize;
            white &= u64::MAX << k;
        }
    }
}

/// After `{` or a comma in an object, at the token `pos`: a member name and its colon; the
/// offset of the token after the colon.
#[inline(always)]
fn member_name(c: &mut Cursor, t: &mut Tokens, pos: usize) -> Result<usize, Stop> {
    if t.text.get(pos) != Some(&b'"') {
        return Err(Stop::Invalid);
    }
    let colon = next(c, t)?;
    if t.text.get(colon) != Some(&b':') {
        return Err(Stop::Invalid);
    }
    next(c, t)
}

/// Stage 2: the tokens make one JSON value. The code's place is the grammar's state (as in
/// the reference check); the open containers are a bit stack, innermost in bit 0, set for
/// an object.
fn grammar(t: &mut Tokens) -> Result<(), Stop> {
    let b = t.text;
    let mut c = Cursor { starts: 0, base: 0 };
    let mut objects: u64 = 0;
    let mut depth = 0u32;
    let mut pos = next(&mut c, t)?;
    'value: loop {
        match b.get(pos) {
            // A string's contents were checked with its chunk.
            Some(b'"') => {}
            Some(b'-' | b'0'..=b'9') => {
                if !ends_scalar(b, number(b, pos)?) {
                    return Err(Stop::Invalid);
                }
            }
            Some(&open @ (b'{' | b'[')) => {
                if depth == u64::BITS {
                    return Err(Stop::TooDeep);
                }
                let object = open == b'{';
                let close = if object { b'}' } else { b']' };
                pos = next(&mut c, t)?;
                if b.get(pos) != Some(&close) {
                    objects = (objects << 1) | u64::from(object);
                    depth += 1;
                    if object {
                        pos = member_name(&mut c, t, pos)?;
                    }
                    continue 'value;
                }
            }
            Some(b't') if b[pos..].starts_with(b"true") && ends_scalar(b, pos + 4) => {}
            Some(b'f') if b[pos..].starts_with(b"false") && ends_scalar(b, pos + 5) => {}
            Some(b'n') if b[pos..].starts_with(b"null") && ends_scalar(b, pos + 4) => {}
            _ => return Err(Stop::Invalid),
        }
        // After a value: the end of the text, or a comma, or closing brackets.
        loop {
            pos = next(&mut c, t)?;
            let object = objects & 1 != 0;
            match b.get(pos) {
                Some(b',') if depth > 0 => {
                    pos = next(&mut c, t)?;
                    if object {
                        pos = member_name(&mut c, t, pos)?;
                    }
                    continue 'value;
                }
                Some(b'}') if depth > 0 && object => {}
                Some(b']') if depth > 0 && !object => {}
                None if depth == 0 => return Ok(()),
                _ => return Err(Stop::Invalid),
            }
            objects >>= 1;
            depth -= 1;
        }
    }
}

/// Appends `text` without its whitespace outside strings if it is JSON as serde_json's
/// `IgnoredAny` reads it; on an error `out` may hold part of it (the caller cuts it back).
/// UTF-8 is the caller's check.
pub(super) fn minify_checked(text: &[u8], out: &mut Vec<u8>) -> Result<(), Stop> {
    let mut t = Tokens {
        text,
        out,
        next: 0,
        in_string: 0,
        escaping: false,
        scalar: 0,
        copied: 0,
    };
    grammar(&mut t)?;
    let copied = t.copied.min(text.len());
    t.out.extend_from_slice(&text[copied..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::json::{minify_into, minify_reference, push_minified_if_json};

    /// A body as devices send them (compact), shaped as the bench's.
    const BODY: &str = r#"{"deviceId":"pump-osak-09","ts":"2026-11-01T08:00:00.105Z","seq":39704,"type":"telemetry","Weather":{"Temperature":26.7,"Humidity":49.1,"Pressure":1005.3},"location":{"site":"plant-osaka-01","city":"Ōsaka","country":"JP","lat":34.69102,"lon":-135.51075e0,"building":"B5","floor":2},"status":{"online":true,"mode":"auto","state":null,"uptimeSec":1240763,"off":false},"firmware":{"version":"3.0.1","note":"a \"quoted\" \\ back\/slash\n\u00e9\ud83d\ude00","buildId":"b08880"},"alerts":[{"code":"TEMP_HIGH","value":13.9,"e":1E+2}],"readings":[[],[0,-0.5,[{}]]],"tags":[]}"#;

    fn serde_accepts(text: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
    }

    /// What a check decides in the end: serde_json decides texts nested too deep.
    fn decided(r: Result<(), Stop>, text: &[u8]) -> bool {
        match r {
            Ok(()) => true,
            Err(Stop::Invalid) => false,
            Err(Stop::TooDeep) => serde_accepts(text),
        }
    }

    /// The bitmasks' check and minifying against the token-by-token reference (without the
    /// UTF-8 check, so bytes outside ASCII are tested in every place), and the whole of
    /// `push_minified_if_json` against serde_json.
    fn assert_agrees(text: &[u8]) {
        let mut blocks = b"x".to_vec();
        let result = minify_checked(text, &mut blocks);
        let finished = result.is_ok();
        let took = decided(result, text);
        let mut reference = b"x".to_vec();
        let want = decided(minify_reference(text, &mut reference), text);
        let show = || String::from_utf8_lossy(text).into_owned();
        assert_eq!(took, want, "{:?}", show());
        let mut minified = b"x".to_vec();
        minify_into(text, &mut minified);
        if finished {
            assert_eq!(blocks, minified, "{:?}", show());
        }
        let mut out = b"x".to_vec();
        let pushed = push_minified_if_json(text, &mut out);
        let utf8 = std::str::from_utf8(text).is_ok();
        assert_eq!(pushed, utf8 && serde_accepts(text), "{:?}", show());
        if pushed {
            assert_eq!(out, minified, "{:?}", show());
        } else {
            assert_eq!(out, b"x", "{:?}", show());
        }
    }

    /// The body spaced as pretty printers space it (whitespace between every token).
    fn spaced(body: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        format!("\r\n{}\t ", serde_json::to_string_pretty(&v).unwrap())
    }

    const REPLACEMENTS: &[u8] = b"\"\\{}[],: \t\n0a\x01\x80\xff";

    /// Every byte of a body, compact and spaced, replaced by each byte that matters to the
    /// grammar or the masks: decided as the reference decides, minified as it minifies.
    #[test]
    fn mutated_bodies_agree_with_the_reference() {
        for body in [BODY.to_string(), spaced(BODY)] {
            let body = body.as_bytes();
            assert_agrees(body);
            assert!(serde_accepts(body));
            for at in 0..body.len() {
                for &c in REPLACEMENTS {
                    let mut m = body.to_vec();
                    m[at] = c;
                    assert_agrees(&m);
                }
                assert_agrees(&body[..at]);
                let mut cut = body.to_vec();
                cut.remove(at);
                assert_agrees(&cut);
            }
        }
    }

    /// Tokens ending at each offset 0..64+ of a chunk, after a string or whitespace of each
    /// length: escapes and runs of backslashes across the chunks' boundaries, scalars cut by
    /// a boundary, whitespace runs across them, and bodies that end there.
    #[test]
    fn chunk_boundaries_agree_with_the_reference() {
        let tokens = [
            r#""a""#,
            r#""\"""#,
            r#""\\""#,
            r#""\\\"\\""#,
            r#""\u00e9x""#,
            r#""\u00G9""#,
            r#""\x""#,
            "\"\\",
            "\"\\\\\\\\\\\\\\\\\"",
            "\"é😀\"",
            "\"a\u{1}\"",
            "\"a\tb\"",
            "12345",
            "-0.5e-7",
            "01",
            "1.",
            "true",
            "truex",
            "nul",
            "false",
            "{\"k\" :\n[ ]}",
            "{\"k\"}",
            "[ , ]",
            "\"unterminated",
            "1 2",
            "\\",
            "x",
        ];
        for pad in 0..70 {
            for token in tokens {
                let filler = "y".repeat(pad);
                let spaces = " ".repeat(pad);
                for text in [
                    format!("[\"{filler}\",{token}]"),
                    format!("[\"{filler}\",{token}"),
                    format!("{spaces}{token}{spaces}"),
                    format!("{{\"{filler}\":{token}}}"),
                    format!("[{spaces}{token},\"{filler}\"]"),
                    format!("[\"{filler}\"{spaces},{token}{spaces}]"),
                ] {
                    assert_agrees(text.as_bytes());
                }
            }
        }
    }

    /// Nesting past the bit stack (serde_json decides), and short texts of every kind.
    #[test]
    fn deep_and_short_texts_agree_with_the_reference() {
        for depth in [63, 64, 65, 127, 128, 129, 300] {
            for text in [
                format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
                format!("{} 1 {}", "[ ".repeat(depth), " ]".repeat(depth)),
                format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
                format!("{}1{}", "[".repeat(depth), "]".repeat(depth - 1)),
            ] {
                assert_agrees(text.as_bytes());
            }
        }
        for text in [
            "",
            " ",
            "\"",
            "\"\"",
            "[]",
            "{}",
            "[",
            "]",
            "{",
            "}",
            ":",
            ",",
            "0",
            "-",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:1}",
            "[1 2]",
            "[\"a\":1]",
            "{\"a\":1:2}",
            "nulls",
            "\u{0}{}",
            "{}\u{0}",
            "{}\u{7f}",
            "\u{feff}{}",
            "[1]x",
            "[\"\\u12\"]",
        ] {
            assert_agrees(text.as_bytes());
        }
    }
}
