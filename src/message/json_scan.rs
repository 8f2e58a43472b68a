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

use crate::bytes::{Block, BLOCKS};
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

/// A JSON string's content as it is in the line: `raw` is between the quotes, `escaped` says
/// whether it holds a backslash (then it must go through [`unescape`]). For names, which are
/// looked up before they are copied; values are read with [`Reader::string_into`].
#[derive(Clone, Copy)]
struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The string's value: `raw` itself, or, when it holds escapes, `raw` unescaped into
    /// `scratch` (emptied first).
    #[inline]
    fn text<'s>(&self, scratch: &'s mut String) -> Res<&'s str>
    where
        'a: 's,
    {
        if !self.escaped {
            return Ok(self.raw);
        }
        scratch.clear();
        unescape(self.raw, scratch)?;
        Ok(scratch)
    }
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

/// One bit per byte of `block` (bit `k` for byte `k`) that is `\`, `"` and a control byte
/// (below 0x20), in that order: SSE2 compares of the 16 bytes at once ([`Block`]).
#[inline(always)]
fn block_masks(block: &[u8; 16]) -> (u32, u32, u32) {
    let v = Block::load(block);
    (v.eq(b'\\'), v.eq(b'"'), v.control())
}

/// The first position from `i` of a `"`, `\` or control character, or `b.len()`: 16 bytes at
/// a time while they last (SSE2), then eight, as strings are most of a message's bytes.
#[inline]
fn find_special(b: &[u8], mut i: usize) -> usize {
    if BLOCKS {
        while let Some(block) = b.get(i..).and_then(<[u8]>::first_chunk::<16>) {
            let (backslash, quote, control) = block_masks(block);
            let m = backslash | quote | control;
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
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

/// Where the escaped string whose content goes on at `b[i]` (after an escape) ends, 16 bytes a
/// block while they last (SSE2): a block's backslashes say which bytes they escape, so an
/// escaped quote (the JSON in `connectionAuthMethod`) does not stop the scan, and the first
/// quote or control byte no backslash escapes does. A block with two backslashes in a row (or
/// one after the last block's last) is left to the byte-wise loop of [`Reader::string`], as is
/// the rest of the line when fewer than 16 bytes are left: the position returned is where it
/// takes over (at the backslash the last block ended with), or that quote or control byte.
#[inline(always)]
fn string_end_blocks(b: &[u8], mut i: usize) -> usize {
    if !BLOCKS {
        return i;
    }
    // 1 when the last block ended with a backslash: it escapes this block's first byte.
    let mut carry = 0u32;
    while let Some(block) = b.get(i..).and_then(<[u8]>::first_chunk::<16>) {
        let (backslash, quote, control) = block_masks(block);
        let after = backslash << 1 | carry;
        if backslash & after != 0 {
            break;
        }
        let stop = (quote | control) & !after;
        if stop != 0 {
            return i + stop.trailing_zeros() as usize;
        }
        carry = backslash >> 15;
        i += 16;
    }
    i - carry as usize
}

fn hex4(b: &[u8]) -> Res<u16> {
    let mut v = 0u16;
    for &c in b.get(..4).ok_or(NotMine)? {
        let d = (c as char).to_digit(16).ok_or(NotMine)?;
        v = v << 4 | d as u16;
    }
    Ok(v)
}

/// The character of the `\\uXXXX` escape at `b[at]` (a surrogate pair makes one, as serde_json
/// reads it; anything it would refuse is [`NotMine`]) and the escape's length.
fn unicode_escape(b: &[u8], at: usize) -> Res<(char, usize)> {
    let hi = hex4(b.get(at + 2..).ok_or(NotMine)?)?;
    match hi {
        0xD800..=0xDBFF => {
            if b.get(at + 6..at + 8) != Some(b"\\u") {
                return Err(NotMine);
            }
            let lo = hex4(&b[at + 8..])?;
            if !(0xDC00..=0xDFFF).contains(&lo) {
                return Err(NotMine);
            }
            let c = 0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
            Ok((char::from_u32(c).ok_or(NotMine)?, 12))
        }
        0xDC00..=0xDFFF => Err(NotMine),
        _ => Ok((char::from_u32(u32::from(hi)).ok_or(NotMine)?, 6)),
    }
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
            let (c, len) = unicode_escape(b, at)?;
            out.char(c);
            return Ok(at + len);
        }
        _ => return Err(NotMine),
    };
    out.ascii(byte);
    Ok(at + 2)
}

/// The byte a one-character escape `\\c` stands for (`"`, `\\`, `/`, `b`, `f`, `n`, `r`, `t`), or 0
/// (`u`, which [`escape`] decodes, and every byte JSON does not allow there).
const SIMPLE_ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'/' as usize] = b'/';
    t[b'b' as usize] = 8;
    t[b'f' as usize] = 12;
    t[b'n' as usize] = b'\n';
    t[b'r' as usize] = b'\r';
    t[b't' as usize] = b'\t';
    t
};

/// The eight bytes of `b` from `i`, padded with spaces (never special) past its end.
#[inline(always)]
fn word_at(b: &[u8], i: usize) -> [u8; 8] {
    if let Some(w) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        return *w;
    }
    let mut w = [b' '; 8];
    let rest = b.get(i..).unwrap_or_default();
    w[..rest.len()].copy_from_slice(rest);
    w
}

const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// Bit 7 of each byte of `w` that is `"`, `\\` or a control character, exactly: unlike
/// [`special_bytes`], every flagged byte is special (no borrows cross bytes), so one word's
/// flags serve for every escape in it. [`string_bytes_within`] computes its three parts apart.
#[cfg(test)]
fn special_bytes_exact(w: u64) -> u64 {
    let low = w & LOW7;
    eq_bytes(w, low, b'"') | eq_bytes(w, low, b'\\') | control_bytes(w, low)
}

/// Bit 7 of each byte of `w` below 0x20, exactly; `low` is `w & LOW7` (`low + 0x60` has bit 7
/// set when the byte's low seven bits are 0x20 or more, and stays within the byte).
#[inline(always)]
fn control_bytes(w: u64, low: u64) -> u64 {
    !(low.wrapping_add(LO * 0x60) | w) & HI
}

/// Bit 7 of each byte of `w` that is `c` (below 0x80), exactly; `low` is `w & LOW7`. The sum
/// stays within each byte (at most `0x7F + 0x7F`), so no borrow or carry crosses bytes.
#[inline(always)]
fn eq_bytes(w: u64, low: u64, c: u8) -> u64 {
    !((low ^ (LO * u64::from(c))).wrapping_add(LOW7) | w) & HI
}

/// Decodes the escape at `b[at]` (a backslash) into `buf` at `*o` (room for four bytes there),
/// moving `*o` on; returns the position after the escape.
#[inline]
fn escape_at(b: &[u8], at: usize, buf: &mut [u8], o: &mut usize) -> Res<usize> {
    let e = *b.get(at + 1).ok_or(NotMine)?;
    match SIMPLE_ESCAPES[usize::from(e)] {
        0 if e == b'u' => {
            let (c, len) = unicode_escape(b, at)?;
            let slot = buf.get_mut(*o..*o + 4).ok_or(NotMine)?;
            *o += c.encode_utf8(slot).len();
            Ok(at + len)
        }
        0 => Err(NotMine),
        d => {
            *buf.get_mut(*o).ok_or(NotMine)? = d;
            *o += 1;
            Ok(at + 2)
        }
    }
}

/// Appends the value of the JSON string whose content starts at `b[start]` (after its opening
/// quote) to `out`, and returns the position after its closing quote. Escape-dense strings (a
/// JSON body given as text has an escaped quote every few bytes) are its reason. Each eight
/// bytes of the line are stored into `out` whole and their backslashes, quotes and control
/// bytes flagged exactly; for each escape in the word the rest of the word from the escaped
/// byte on is stored again over the backslash and the escaped byte replaced by what it stands
/// for (the same byte for `\"`, `\\` and `\/`, the commonest), so a run between two escapes
/// costs a shift and a store instead of a search, a `memcpy` call and an escape call. A word
/// whose special bytes are all `\"` pairs (most words of a JSON body given as text) takes a
/// shorter loop that checks nothing per escape: two masks compared say so for the word.
/// `out` is zero-filled once for the rest of the line (an escape never decodes to more bytes
/// than it takes, so the value fits) and cut back at the end, so the loop writes into a slice
/// without growing it.
#[cfg(test)]
fn string_bytes_into(b: &[u8], start: usize, out: &mut Vec<u8>) -> Res<usize> {
    string_bytes_within(b, start, b.len(), out)
}

/// [`string_bytes_into`] replacing all of `out` (the message's body, read again for each line):
/// `out` keeps the length the last body left it at and is zero-filled only where this string
/// may need more, so a body about as long as the last one costs no fill of its length (most
/// of the unescaping's cost after the loop itself). The loops store every byte of the value
/// before it counts, so what the last body left there is never read.
#[inline(never)]
fn string_bytes_over(b: &[u8], start: usize, out: &mut Vec<u8>) -> Res<usize> {
    let need = b.len().saturating_sub(start) + 32;
    if out.len() < need {
        out.resize(need, 0);
    }
    let end = if BLOCKS {
        string_blocks(b, start, out)
    } else {
        string_words(b, start, out)
    };
    finish(out, 0, end)
}

/// [`string_bytes_into`] of a string known to end before `b[limit]` (its closing quote at
/// `limit - 1` at the latest): `out` grows by `limit - start` bytes at most before it is cut
/// back, so a short value in a long line costs as little as its own length.
#[inline(always)]
fn string_bytes_within(b: &[u8], start: usize, limit: usize, out: &mut Vec<u8>) -> Res<usize> {
    let b = b.get(..limit).ok_or(NotMine)?;
    let first = out.len();
    // The rest of the string, and room for a word or a 32-byte block window stored at its
    // last position.
    out.resize(first + b.len().saturating_sub(start) + 32, 0);
    let buf = &mut out[first..];
    let end = if BLOCKS {
        string_blocks(b, start, buf)
    } else {
        string_words(b, start, buf)
    };
    finish(out, first, end)
}

/// [`string_bytes_within`]'s loop eight bytes at a time, where SSE2 is not there (see
/// [`string_bytes_into`]): the value of the string from `b[start]` into `buf` (room for the
/// rest of `b` and 16 bytes more), `Ok((next, len))` as [`string_blocks`] gives it.
#[inline(always)]
fn string_words(b: &[u8], start: usize, buf: &mut [u8]) -> Res<(usize, usize)> {
    // Where the current word's first unconsumed byte goes: never further on than the bytes
    // read (`at <= i - start`), so the word's 16-byte window of `buf` is within it.
    let (mut at, mut i) = (0usize, start);
    'words: loop {
        let w = u64::from_le_bytes(word_at(b, i));
        let Some(window) = buf.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<16>) else {
            break 'words Err(NotMine);
        };
        window[..8].copy_from_slice(&w.to_le_bytes());
        let low = w & LOW7;
        let backslash = eq_bytes(w, low, b'\\');
        let quote = eq_bytes(w, low, b'"');
        let control = control_bytes(w, low);
        // A backslash in the word's last byte escapes a byte of the next word, which then
        // starts at it (this word takes seven bytes).
        let last = backslash >> 63;
        let mut escapes = backslash & !(last << 63);
        if control == 0 && escapes << 8 == quote {
            // Every special byte of the word is in a `\"` within it (the commonest escape by
            // far: a JSON body given as text): each backslash is left out by storing the rest
            // of the word from its quote on over it, with no check per escape. `shifted >> t`
            // is the word from byte `k + 1` on for the backslash at byte `k` (`t = 8k + 7`).
            let shifted = w >> 1;
            let mut gone = 0usize;
            while escapes != 0 {
                let t = escapes.trailing_zeros();
                let j = ((t >> 3) as usize).wrapping_sub(gone) & 7;
                window[j..j + 8].copy_from_slice(&(shifted >> t).to_le_bytes());
                gone += 1;
                escapes &= escapes - 1;
            }
            if i + 8 >= b.len() {
                // The string does not end within the limit.
                break 'words Err(NotMine);
            }
            let step = 8 - last as usize;
            at += step - gone;
            i += step;
            continue;
        }
        let mut m = backslash | quote | control;
        // Bytes of this word left out so far (one per escape).
        let mut gone = 0usize;
        while m != 0 {
            // The flagged byte's first bit: `8 * k` for byte `k` (its bit 7 is flagged).
            let s = m.trailing_zeros() & !7;
            let k = (s / 8) as usize;
            // Where byte `k` goes in the window: each escape before it took two of the `k`
            // bytes, so this is at most 7 (the mask says so to the bounds checks).
            let j = k.wrapping_sub(gone) & 7;
            match (w >> s) as u8 {
                b'\\' => {}
                b'"' => break 'words Ok((i + k + 1, at + j)),
                _ => break 'words Err(NotMine),
            }
            // What the escaped byte stands for when it is one of the short escapes in this
            // word; 0 for `\u`, an error, or a backslash at the word's end (its second byte
            // is in the next word).
            let d = if s < 56 {
                SIMPLE_ESCAPES[usize::from((w >> (s + 8)) as u8)]
            } else {
                0
            };
            if d == 0 {
                let mut o = at + j;
                match escape_at(b, i + k, buf, &mut o) {
                    Ok(next) => {
                        (at, i) = (o, next);
                        continue 'words;
                    }
                    Err(e) => break 'words Err(e),
                }
            }
            // The word from the escaped byte on, over the backslash.
            let rest = w >> (s + 8);
            window[j..j + 8].copy_from_slice(&rest.to_le_bytes());
            window[j] = d;
            gone += 1;
            // Both bytes of the escape are consumed (an escaped `"` or `\\` is flagged too).
            // `s + 16` may be 64: two shifts.
            m &= (u64::MAX << 16) << s;
        }
        if i + 8 >= b.len() {
            // The string does not end within the limit.
            break 'words Err(NotMine);
        }
        at += 8 - gone;
        i += 8;
    }
}

/// Cuts `out` back to its `first` bytes and the string's `len` (or to `first` on an error) and
/// passes on the position after the string.
#[inline(always)]
fn finish(out: &mut Vec<u8>, first: usize, end: Res<(usize, usize)>) -> Res<usize> {
    match end {
        Ok((next, len)) => {
            out.truncate(first + len);
            Ok(next)
        }
        Err(e) => {
            out.truncate(first);
            Err(e)
        }
    }
}

/// The block loop of [`string_bytes_within`] (SSE2): unescapes the string from `b[start]` into
/// `buf` 64 bytes at a time while 80 bytes of the line are left and those 64 hold no special
/// byte but `\"` pairs ([`chunk_step`]: most of a JSON body given as text), else 16 bytes at a
/// time, the way the word loop does eight (see [`block_step`]); the last 31 bytes of the line
/// or fewer are read through a copy padded with spaces (never special), so no word loop is
/// needed after it. `Ok((next, len))`: the string ended before `b[next]` and its value is
/// `buf[..len]`.
#[inline(always)]
fn string_blocks(b: &[u8], start: usize, buf: &mut [u8]) -> Res<(usize, usize)> {
    let (mut at, mut i) = (0usize, start);
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<80>) {
        match chunk_step(b, chunk, buf, at, i) {
            Ok(next) => (at, i) = next,
            Err(end) => return end,
        }
    }
    while let Some(two) = b.get(i..).and_then(<[u8]>::first_chunk::<32>) {
        match block_step(b, two, buf, at, i) {
            Ok(next) => (at, i) = next,
            Err(end) => return end,
        }
    }
    while let Some(rest) = b.get(i..).filter(|r| !r.is_empty()) {
        let mut two = [b' '; 32];
        two[..rest.len()].copy_from_slice(rest);
        match block_step(b, &two, buf, at, i) {
            Ok(next) => (at, i) = next,
            Err(end) => return end,
        }
    }
    // The string does not end within the limit.
    Err(NotMine)
}

/// What a step of the body's unescaping ([`chunk_step`], [`block_step`]) came to: `Ok((out,
/// next))` to go on (bytes written so far, where the line continues); `Err(Ok((end, out)))`
/// at the string's end; `Err(Err(e))` an error, or a case the step leaves to the general
/// path.
type Step = Result<(usize, usize), Res<(usize, usize)>>;

/// Four blocks of [`string_blocks`] at once: `chunk` holds the line's 80 bytes from `b[i]`,
/// whose first 64 are read; `buf[at]` is where `b[i]` goes. Per block as in [`block_step`] (the
/// block stored, then for each `\"` the rest of it from the quote on stored over the
/// backslash), but the masks of four blocks are tested together, and their control bytes
/// with one mask move: a fourth of the per-block checks and loop steps, which were most of
/// the cost of a body with a `\"` every eight bytes. The first byte not in a `\"` pair
/// (another escape, the string's end) is decoded after the pairs before it; 64 bytes with a
/// control byte (an error, or white space after the string) are left to [`block_step`].
/// Returns as [`block_step`] does.
#[inline(always)]
fn chunk_step(b: &[u8], chunk: &[u8; 80], buf: &mut [u8], at: usize, i: usize) -> Step {
    let (blocks, _) = chunk.split_first_chunk::<64>().ok_or(Err(NotMine))?;
    let (mut backslash, mut quote) = (0u64, 0u64);
    let mut least: Option<Block> = None;
    for (j, block) in blocks.chunks_exact(16).enumerate() {
        let v = Block::load(block.first_chunk::<16>().ok_or(Err(NotMine))?);
        backslash |= u64::from(v.eq(b'\\')) << (16 * j);
        quote |= u64::from(v.eq(b'"')) << (16 * j);
        least = Some(least.map_or(v, |l| l.min(v)));
    }
    if least.ok_or(Err(NotMine))?.control() != 0 {
        let two = chunk.first_chunk::<32>().ok_or(Err(NotMine))?;
        return block_step(b, two, buf, at, i);
    }
    // `at <= i - start` and `buf` has `b.len() - start + 32` bytes: the window is there.
    let window = (buf.get_mut(at..))
        .and_then(<[u8]>::first_chunk_mut::<80>)
        .ok_or(Err(NotMine))?;
    // As in `block_step`: the pairs before the first byte not in one.
    let escapes = backslash & !(1 << 63);
    let bad = quote ^ escapes << 1;
    let first = bad.trailing_zeros();
    let pairs = escapes & ((1u128 << first) - 1) as u64 >> 1;
    let mut gone = 0usize;
    for j in 0..4usize {
        // Block `j` stored after the escapes before it, each of which took two of its bytes.
        let to = (16 * j).wrapping_sub(gone) & 63;
        let mut block = [0u8; 16];
        block.copy_from_slice(&blocks[16 * j..16 * j + 16]);
        window[to..to + 16].copy_from_slice(&block);
        let mut e = pairs >> (16 * j) & 0xffff;
        while e != 0 {
            // Byte `k + 1` (the quote) goes to `k - gone`; `k <= 62`, and the masks say to the
            // bounds checks that both 16-byte ranges are within `chunk` and `window`.
            let k = (16 * j + e.trailing_zeros() as usize) & 63;
            let mut rest = [0u8; 16];
            rest.copy_from_slice(&chunk[k + 1..k + 17]);
            let to = k.wrapping_sub(gone) & 63;
            window[to..to + 16].copy_from_slice(&rest);
            gone += 1;
            e &= e - 1;
        }
    }
    if bad == 0 {
        let read = 64 - (backslash >> 63) as usize;
        return Ok((at + read - gone, i + read));
    }
    // Another escape at the byte before, or (no control byte here) the string's end.
    let k = (first & 63) as usize;
    if let Some(step) = escape_before(b, buf, escapes, k, at + k - gone, i + k) {
        return step;
    }
    Err(Ok((i + k + 1, at + k - gone)))
}

/// When the byte deciding a step (bit `k` of the step's masks, at `i` in the line and `o` in
/// the output) follows a backslash that starts an escape (bit `k - 1` of `escapes`), that
/// escape decoded: the step's result. Shared by [`chunk_step`] and [`block_step`].
#[inline(always)]
fn escape_before(
    b: &[u8],
    buf: &mut [u8],
    escapes: u64,
    k: usize,
    o: usize,
    i: usize,
) -> Option<Step> {
    if k == 0 || escapes >> (k - 1) & 1 == 0 {
        return None;
    }
    let mut o = o - 1;
    Some(match escape_at(b, i - 1, buf, &mut o) {
        Ok(next) => Ok((o, next)),
        Err(e) => Err(Err(e)),
    })
}

/// One block of [`string_blocks`]: `two` holds the line's 32 bytes from `b[i]` (or what is
/// left of it, padded with spaces), whose first 16 are the block; `buf[at]` is where `b[i]`
/// goes. The block is stored whole, and for each `\"` in it the rest of the block from the
/// quote on is stored again over the backslash, a 16-byte copy from `two` (no shifts: SSE2
/// shifts bytes only by constants). In a block with any other special byte, the `\"` pairs
/// before the first one are taken so, that byte is decoded (an escape, the string's end or an
/// error) and the next block starts after it. `Ok((at, i))`: where the next block starts;
/// `Err`: the string ended (`Ok((next, len))`) or is not one this reader accepts.
#[inline(always)]
fn block_step(b: &[u8], two: &[u8; 32], buf: &mut [u8], mut at: usize, i: usize) -> Step {
    // `at <= i - start` (escapes only shrink), `i < b.len()` and `buf` has `b.len() - start +
    // 32` bytes, so the 32-byte window is within it.
    let Some(window) = buf.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<32>) else {
        return Err(Err(NotMine));
    };
    let Some((block, _)) = two.split_first_chunk::<16>() else {
        return Err(Err(NotMine));
    };
    window[..16].copy_from_slice(block);
    let (backslash, quote, control) = block_masks(block);
    // A backslash in the block's last byte escapes a byte of the next block, which then
    // starts at it (this block takes 15 bytes).
    let last = backslash >> 15;
    let escapes = backslash & 0x7fff;
    // The first byte that is not part of a `\"` pair: an unescaped quote (the string's
    // end), a control byte, or the byte after a backslash that is not a quote (another
    // escape, at the byte before it). Every `\"` before it is a pair within the block
    // (no backslash before it is escaped: the byte after that one would be a backslash).
    let bad = (quote ^ escapes << 1) | control;
    let first = bad.trailing_zeros();
    // The `\"` pairs before it: all of the block's when there is none (a JSON body given
    // as text), else those whose quote is before it.
    let mut pairs = escapes & (((1u64 << first) - 1) >> 1) as u32;
    let mut gone = 0usize;
    while pairs != 0 {
        // Byte `k + 1` (the quote) goes to `k - gone` (each escape before it took two of
        // the `k` bytes). `k <= 14`, and the masks say to the bounds checks that both
        // 16-byte ranges are within `two` and `window`.
        let k = (pairs.trailing_zeros() & 15) as usize;
        let j = k.wrapping_sub(gone) & 15;
        let mut rest = [0u8; 16];
        rest.copy_from_slice(&two[k + 1..k + 17]);
        window[j..j + 16].copy_from_slice(&rest);
        gone += 1;
        pairs &= pairs - 1;
    }
    if bad == 0 {
        let step = 16 - last as usize;
        at += step - gone;
        return Ok((at, i + step));
    }
    // That byte decides: another escape (at the backslash before it), the string's end, or
    // an error.
    let k = (first & 15) as usize;
    if let Some(step) = escape_before(b, buf, u64::from(escapes), k, at + k - gone, i + k) {
        return step;
    }
    match block[k] {
        b'"' => Err(Ok((i + k + 1, at + k - gone))),
        _ => Err(Err(NotMine)),
    }
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

/// How far from its opening quote [`Reader::escaped_value_into`] looks for an escaped value's
/// end in its one pass (the value's room is zero-filled that far first).
const ESCAPED_REACH: usize = 192;

/// The fields of message JSON, as [`read_into`] matches them.
const FIELDS: [&str; 5] = [
    "systemProperties",
    "appProperties",
    "body",
    "bodyBase64",
    "source",
];

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

    /// The next non-white byte, not consumed. Message lines are mostly written without white
    /// space between tokens: a byte above the space is taken at once.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let c = *self.b.get(self.pos)?;
        if c > b' ' {
            return Some(c);
        }
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
                    // An escaped string (JSON in `connectionAuthMethod`) has more: blocks past
                    // them (a string without is cheaper to scan without looking for them).
                    i = string_end_blocks(self.b, i + 2);
                }
                _ => return Err(NotMine),
            }
        }
        self.pos = i + 1;
        let raw = self.text.get(start..i).ok_or(NotMine)?;
        Ok(JsonStr { raw, escaped })
    }

    /// A string's value appended to `out`: one without escapes (nearly every property value)
    /// copied whole, an escaped one (`connectionAuthMethod` holds JSON) unescaped a word at a
    /// time ([`string_bytes_within`], within the string's end just found) instead of a search,
    /// a copy and a call per escape. The next non-white byte must be its opening quote.
    #[inline]
    fn string_into(&mut self, out: &mut String) -> Res<()> {
        let s = self.string()?;
        if !s.escaped {
            out.push_str(s.raw);
            return Ok(());
        }
        // `string` left `pos` after the closing quote.
        let start = self.pos - 1 - s.raw.len();
        let mut bytes = std::mem::take(out).into_bytes();
        // Up to 31 bytes past its end, so that the blocks that hold it are read from the line
        // itself, not through padded copies of its last bytes.
        let limit = self.b.len().min(self.pos + 31);
        let read = string_bytes_within(self.b, start, limit, &mut bytes);
        // Unescaped from a `&str` (escapes decode to whole characters; `bytes` is cut back to
        // what it held on an error): always UTF-8, so the check never fails.
        *out = String::from_utf8(bytes).map_err(|_| NotMine)?;
        read.map(|_| ())
    }

    /// A message field's name: one of [`FIELDS`], written as it is there (no escapes), else
    /// [`NotMine`]. Compared in place with the five names, not scanned for its end first.
    #[inline]
    fn field(&mut self) -> Res<&'static str> {
        self.expect(b'"')?;
        let rest = self.b.get(self.pos..).unwrap_or_default();
        let field = FIELDS
            .into_iter()
            .find(|f| rest.get(f.len()) == Some(&b'"') && rest.starts_with(f.as_bytes()))
            .ok_or(NotMine)?;
        self.pos += field.len() + 1;
        Ok(field)
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

    /// A name `bag` kept from the last message when the line holds it next, unescaped (see
    /// [`Properties::kept_match`], which looks near the cursor or, when `anywhere`, among all
    /// kept names): its kept position and text, consumed up to its closing quote. `None`
    /// (only white space consumed) otherwise.
    #[inline(always)]
    fn kept_name(&mut self, bag: &Properties, anywhere: bool) -> Option<(usize, &'a str)> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let from = self.pos + 1;
        let (j, n) = bag.kept_match(self.b.get(from..)?, anywhere)?;
        let raw = self.text.get(from..from + n)?;
        self.pos = from + n + 1;
        Some((j, raw))
    }

    /// A property value into a spare string of `bag`. A value without escapes (nearly every
    /// one) is found by one scan for its end and copied from the line; one with escapes is
    /// read again by [`Reader::escaped_value_into`], out of line.
    #[inline(always)]
    fn value_into(&mut self, bag: &mut Properties) -> Res<Option<String>> {
        if self.null_or_string()? {
            return Ok(None);
        }
        // `null_or_string` stopped at the opening quote.
        let start = self.pos + 1;
        let end = find_special(self.b, start);
        if self.b.get(end) != Some(&b'"') {
            return self.escaped_value_into(bag);
        }
        // Between two quotes, so on character boundaries.
        let raw = self.text.get(start..end).ok_or(NotMine)?;
        let mut v = bag.take_spare();
        v.push_str(raw);
        self.pos = end + 1;
        Ok(Some(v))
    }

    /// [`Reader::value_into`] of a string with escapes (or not a string: [`NotMine`]). One
    /// that ends within [`ESCAPED_REACH`] bytes (`connectionAuthMethod`'s JSON) is unescaped
    /// straight from its opening quote, in one pass: its end is not looked for first, which
    /// was a third of its cost. A longer one, or one this reader refuses, is read as before.
    #[inline(never)]
    fn escaped_value_into(&mut self, bag: &mut Properties) -> Res<Option<String>> {
        let mut v = bag.take_spare();
        if self.b.get(self.pos) == Some(&b'"') {
            let start = self.pos + 1;
            let limit = self.b.len().min(start + ESCAPED_REACH);
            let mut bytes = std::mem::take(&mut v).into_bytes();
            let read = string_bytes_within(self.b, start, limit, &mut bytes);
            // As in `string_into`: unescaped from a `&str`, always UTF-8 (empty on an error).
            v = String::from_utf8(bytes).map_err(|_| NotMine)?;
            if let Ok(next) = read {
                self.pos = next;
                return Ok(Some(v));
            }
        }
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
        // `read_into` cleared it: only a repeated field has something to clear (clearing an
        // empty bag again changes nothing).
        if !bag.is_empty() {
            bag.clear();
        }
        if !self.open_object()? {
            return Ok(());
        }
        loop {
            // Replacing never fails.
            if let Some((kept, name)) = self.kept_name(bag, true) {
                self.expect(b':')?;
                let value = self.value_into(bag)?;
                let _ = bag.insert_line_name_found(Some(kept), name, value, true);
            } else {
                let name = self.string()?;
                self.expect(b':')?;
                let value = self.value_into(bag)?;
                // An unescaped name is no kept one (`kept_name` looked everywhere); an escaped
                // one may be, unescaped.
                let text = name.text(scratch)?;
                let found = if name.escaped {
                    bag.kept_position(text, true)
                } else {
                    None
                };
                let _ = bag.insert_line_name_found(found, text, value, true);
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
        // As in `app_properties`.
        if !bag.is_empty() {
            bag.clear();
        }
        let mut source = None;
        let mut seen_source = false;
        if !self.open_object()? {
            return Ok(None);
        }
        loop {
            // Looked for among all kept names, not only near the cursor: an optional system
            // property (`dt-dataschema`, `correlationId`) the last message lacked is kept
            // from an earlier one, and taking it back costs a few comparisons where a name
            // read, respelled and copied in costs about a thousand instructions.
            if let Some((kept, name)) = self.kept_name(bag, true) {
                // A name a recent message had: stored as read (it is a routing name, or one
                // no spelling maps to; never the source), so no lookup of spellings, and
                // found without scanning the line's name first.
                self.expect(b':')?;
                let value = self.value_into(bag)?;
                if let Err(value) = bag.insert_line_name_found(Some(kept), name, value, false) {
                    if let Some(v) = value {
                        bag.recycle(v);
                    }
                    return Err(NotMine);
                }
                if !self.next_member()? {
                    return Ok(source);
                }
                continue;
            }
            let raw_name = self.string()?;
            self.expect(b':')?;
            let name = raw_name.text(scratch)?;
            if !name.is_ascii() {
                return Err(NotMine);
            }
            if name.eq_ignore_ascii_case(MESSAGE_SOURCE) {
                if std::mem::replace(&mut seen_source, true) {
                    return Err(NotMine);
                }
                let value = self.string_or_null()?;
                if let Some(v) = value {
                    let text = v.text(scratch)?;
                    source = Some(text.parse::<Source>().map_err(|_| NotMine)?);
                }
            } else {
                let (name, respelled) = match canonical_name(name) {
                    Some(c) if !c.eq_ignore_ascii_case(name) => (c, true),
                    _ => (name, false),
                };
                // `name` may borrow `scratch`, which the value does not touch.
                let value = self.value_into(bag)?;
                // A name as the line spells it, without escapes, is no kept one (`kept_name`
                // looked everywhere); a respelled or escaped one may be.
                let found = if respelled || raw_name.escaped {
                    bag.kept_position(name, true)
                } else {
                    None
                };
                if let Err(value) = bag.insert_line_name_found(found, name, value, false) {
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
    // The body is emptied at the end when the line has none: `string_bytes_over` reuses
    // what it holds.
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
            let field = r.field()?;
            r.expect(b':')?;
            match field {
                "systemProperties" => {
                    let source = r.system_properties(&mut m.system_properties, scratch)?;
                    if m.source.is_none() {
                        m.source = source;
                    }
                }
                "appProperties" => r.app_properties(&mut m.app_properties, scratch)?,
                "body" if !body_base64 => {
                    body = true;
                    r.expect(b'"')?;
                    r.pos = string_bytes_over(r.b, r.pos, &mut m.body)?;
                }
                "bodyBase64" if !body => {
                    body_base64 = true;
                    m.body.clear();
                    let s = r.string()?;
                    let encoded = s.text(scratch)?.trim();
                    // base64-simd (the sinks' encoder already; SIMD picked at run time) takes
                    // padded base64 with zero trailing bits, which the general path's decoder
                    // reads alike, at a fraction of its instructions per byte; what it refuses
                    // (no padding, errors) is decoded as before.
                    if base64_simd::STANDARD
                        .decode_append(encoded, &mut m.body)
                        .is_err()
                    {
                        m.body.clear();
                        super::json::BASE64
                            .decode_vec(encoded, &mut m.body)
                            .map_err(|_| NotMine)?;
                    }
                }
                "source" => {
                    m.source = match r.string_or_null()? {
                        None => None,
                        Some(s) => {
                            let text = s.text(scratch)?;
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
    if !body && !body_base64 {
        m.body.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`string_blocks`] or [`string_words`].
    type StringLoop = fn(&[u8], usize, &mut [u8]) -> Res<(usize, usize)>;

    /// Calls `each` with string contents of each length in `lens` (letters) holding an
    /// escaped quote at every offset and one of `others` at every later offset.
    fn for_escaped_contents(
        lens: impl Iterator<Item = usize>,
        others: &[&str],
        each: impl FnMut(&str),
    ) {
        for_contents(lens, &["\\\""], others, |_| 1, each);
    }

    /// Calls `each` with string contents of each length in `lens` (letters) holding one of
    /// `firsts` at every offset and one of `others` at every later offset, every `stride(len)`
    /// bytes.
    fn for_contents(
        lens: impl Iterator<Item = usize>,
        firsts: &[&str],
        others: &[&str],
        stride: impl Fn(usize) -> usize,
        mut each: impl FnMut(&str),
    ) {
        for len in lens {
            let base: String = "abcdefghijklmnopqrstuvwxyz"
                .chars()
                .cycle()
                .take(len)
                .collect();
            for at in 0..=len {
                for first in firsts {
                    for other in others {
                        for at2 in (at..=len).step_by(stride(len)) {
                            let mut content = base.clone();
                            content.insert_str(at2, other);
                            content.insert_str(at, first);
                            each(&content);
                        }
                    }
                }
            }
        }
    }

    /// Decodes `line`'s string (from byte 1) with [`both_into`] and checks it against
    /// serde_json's first value of the line: the same text and end, or refused alike (only
    /// `\\u` escapes go to the general path); counts the strings that decoded. Returns
    /// serde_json's string and where it ended.
    fn agrees_with_serde_json(line: &str, checked: &mut usize) -> (Option<String>, usize) {
        let mut values = serde_json::Deserializer::from_str(line).into_iter::<serde_json::Value>();
        let (want, cut) = match values.next() {
            Some(Ok(serde_json::Value::String(w))) => (Some(w), values.byte_offset()),
            _ => (None, 0),
        };
        let mut out = b"prefix".to_vec();
        match (&want, both_into(line.as_bytes(), 1, &mut out)) {
            (Some(w), Ok(end)) => {
                assert_eq!(&out[6..], w.as_bytes(), "{line:?}");
                assert_eq!(end, cut, "{line:?}");
                *checked += 1;
            }
            (Some(w), Err(NotMine)) => {
                assert!(line.contains("\\u"), "refused {line:?} ({w:?})");
                assert_eq!(out, b"prefix");
            }
            (None, Err(NotMine)) => assert_eq!(out, b"prefix"),
            (None, Ok(_)) => panic!("accepted {line:?}"),
        }
        (want, cut)
    }

    /// [`string_bytes_into`], checked to agree with both of its loops (blocks and words, each
    /// whatever the target), so the differential tests hold each to serde_json.
    fn both_into(b: &[u8], start: usize, out: &mut Vec<u8>) -> Res<usize> {
        let each = |run: StringLoop| {
            let mut v = out.clone();
            let first = v.len();
            v.resize(first + b.len().saturating_sub(start) + 32, 0);
            let end = run(b, start, &mut v[first..]);
            (finish(&mut v, first, end), v)
        };
        let blocks = each(string_blocks);
        let words = each(string_words);
        let first = out.len();
        let got = string_bytes_into(b, start, out);
        // Over a body left by a longer or a shorter line (bytes that would be special if
        // read, and as many as this string needs or fewer): the same value, or refused alike.
        for left in [0, 1, 7, b.len() / 2, b.len() + 40] {
            let mut body: Vec<u8> = b"\\\"\x01x".iter().copied().cycle().take(left).collect();
            let over = string_bytes_over(b, start, &mut body);
            assert_eq!(over, got, "over {left}: {:?}", String::from_utf8_lossy(b));
            if got.is_ok() {
                assert_eq!(
                    body,
                    out[first..],
                    "over {left}: {:?}",
                    String::from_utf8_lossy(b)
                );
            }
        }
        assert_eq!(
            blocks,
            (got, out.clone()),
            "blocks: {:?}",
            String::from_utf8_lossy(b)
        );
        assert_eq!(
            words,
            (got, out.clone()),
            "words: {:?}",
            String::from_utf8_lossy(b)
        );
        got
    }

    /// The string's end found a block at a time agrees with the byte-wise scan it replaced
    /// (end, escapes, refusal) for escapes, escaped and doubled backslashes, quotes and control
    /// bytes at every offset of strings up to three blocks long, so also across block ends
    /// (a backslash in a block's last byte) and in the bytes left after the last block.
    #[test]
    fn string_ends_as_the_byte_wise_scan_finds() {
        fn byte_wise(b: &[u8], start: usize) -> Option<(usize, bool)> {
            let (mut i, mut escaped) = (start, false);
            loop {
                i = find_special(b, i);
                match b.get(i) {
                    Some(b'"') => return Some((i, escaped)),
                    Some(b'\\') => {
                        escaped = true;
                        i += 2;
                    }
                    _ => return None,
                }
            }
        }
        let others = [
            "\\\"", "\\\\", "\\\\\\\"", "\\n", "\\\u{1}", "\u{1}", "\"", "\\", "\u{e9}",
        ];
        let mut checked = 0;
        let firsts = ["\\\"", "\\\\", "\\t"];
        for_contents(
            0..50,
            &firsts,
            &others,
            |len| 1 + len / 20,
            |content| {
                for pad in ["\"", "\"}", "\"                    }", "", "\\"] {
                    let line = format!("\"{content}{pad}");
                    let want = byte_wise(line.as_bytes(), 1);
                    // From every position after an escape, as `string` calls it.
                    for (j, _) in line.match_indices('\\').skip(1) {
                        let from = string_end_blocks(line.as_bytes(), j);
                        let (a, b) = (
                            byte_wise(line.as_bytes(), j),
                            byte_wise(line.as_bytes(), from),
                        );
                        assert_eq!(a.map(|e| e.0), b.map(|e| e.0), "{line:?} {j}");
                    }
                    let mut r = Reader {
                        text: &line,
                        b: line.as_bytes(),
                        pos: 0,
                    };
                    match (want, r.string()) {
                        (Some((end, escaped)), Ok(s)) => {
                            assert_eq!(s.raw, &line[1..end], "{line:?}");
                            assert_eq!(s.escaped, escaped, "{line:?}");
                            assert_eq!(r.pos, end + 1, "{line:?}");
                            checked += 1;
                        }
                        (None, Err(NotMine)) => {}
                        (w, g) => panic!("{line:?}: {w:?} {:?}", g.map(|s| s.raw)),
                    }
                }
            },
        );
        assert!(checked > 50_000, "{checked}");
    }

    /// The 16-byte masks flag exactly the backslashes, quotes and control bytes, each byte
    /// value at each offset of a block.
    #[test]
    fn block_masks_flag_exactly_the_special_bytes() {
        for c in 0u8..=255 {
            for k in 0..16 {
                let mut block = [b'a'; 16];
                block[k] = c;
                block[(k + 7) % 16] = c.wrapping_add(0x80);
                let (backslash, quote, control) = block_masks(&block);
                for (j, &d) in block.iter().enumerate() {
                    assert_eq!(backslash >> j & 1 == 1, d == b'\\', "{c} {k} {j}");
                    assert_eq!(quote >> j & 1 == 1, d == b'"', "{c} {k} {j}");
                    assert_eq!(control >> j & 1 == 1, d < 0x20, "{c} {k} {j}");
                }
                assert_eq!((backslash | quote | control) >> 16, 0);
            }
        }
    }

    /// Across the 16-byte blocks and the words after them: a special byte at every offset of
    /// strings up to three blocks long, found first whatever follows it.
    #[test]
    fn find_special_finds_the_first_at_every_block_offset() {
        for len in 0..50 {
            let base: String = "abcdefghijklmnopqrstuvwxyz\u{e9}~"
                .chars()
                .cycle()
                .take(len)
                .collect();
            assert_eq!(find_special(base.as_bytes(), 0), base.len());
            for at in 0..=base.len() {
                if !base.is_char_boundary(at) {
                    continue;
                }
                for c in ["\"", "\\\\", "\n", "\u{0}", "\u{1f}"] {
                    let mut s = base.clone();
                    s.insert_str(at, c);
                    assert_eq!(find_special(s.as_bytes(), 0), at, "{s:?}");
                    s.push('"');
                    assert_eq!(find_special(s.as_bytes(), 0), at, "{s:?}");
                    for from in 0..=at {
                        assert_eq!(find_special(s.as_bytes(), from), at, "{s:?} {from}");
                    }
                }
            }
        }
    }

    /// The block loop (taken while 32 bytes of the line are left) and its hand-over to the
    /// word loop, against serde_json: an escaped quote at every offset of strings up to three
    /// blocks long, next to every other kind of special byte at every later offset, with the
    /// line going on for 0 to 40 bytes after the string (so strings end in each of a block's
    /// last bytes, inside and past the blocks), and strings cut short.
    #[test]
    fn block_boundaries_decode_as_serde_json() {
        let others = [
            "\\\"",
            "\\\\",
            "\\\\\\\"",
            "\\n",
            "\\u0022",
            "\\ud83d\\ude00",
            "\u{e9}",
            "\u{1}",
            "\"",
            "\\",
        ];
        let mut checked = 0;
        let lens = (0..48).step_by(3).chain([15, 16, 17, 31, 32, 33]);
        for_escaped_contents(lens, &others, |content| {
            for pad in [0, 1, 2, 9, 15, 16, 17, 30, 31, 40] {
                let line = format!("\"{content}\"{}", " ".repeat(pad));
                let (want, cut) = agrees_with_serde_json(&line, &mut checked);
                // Within the string's own end, as property values are read.
                if let (Some(w), true) = (&want, cut > 0) {
                    // And up to 31 bytes past it, as `Reader::string_into` reads them.
                    for limit in [cut, line.len().min(cut + 31)] {
                        let mut out = Vec::new();
                        if string_bytes_within(line.as_bytes(), 1, limit, &mut out) == Ok(cut) {
                            assert_eq!(out, w.as_bytes(), "{line:?}");
                        } else {
                            assert!(line.contains("\\u"), "refused {line:?}");
                        }
                    }
                }
            }
        });
        assert!(checked > 50_000, "{checked}");
    }

    /// The 64-byte step ([`chunk_step`], taken while 80 bytes of the line are left) and its
    /// hand-over to the blocks, against serde_json: strings of one to nine blocks with a first
    /// escape (`\"`, a run of them, `\\`, `\n`) at every offset, so across every block and chunk
    /// edge and in a chunk's last byte, and another special byte (`\"`, `\\"`, `\n`, a bare
    /// quote, a control byte, a `\u` escape) at later offsets, with the line going on after
    /// the string for 0 to 80 bytes (so strings end inside a chunk and after it); a body-like
    /// string (a `\"` every few bytes, a `\n` now and then) at every start offset.
    #[test]
    fn chunks_decode_as_serde_json() {
        let others = [
            "\\\"", "\\\\\"", "\\\\\\\"", "\\n", "\"", "\u{1}", "\\u00e9",
        ];
        let firsts = ["\\\"", "\\\"\\\"\\\"", "\\\\", "\\n"];
        let mut checked = 0;
        let lens = [15, 62, 63, 64, 65, 79, 80, 96, 127, 128, 129, 143];
        for_contents(
            lens.into_iter(),
            &firsts,
            &others,
            |len| 1 + len / 6,
            |content| {
                for pad in [0, 17, 80] {
                    let line = format!("\"{content}\"{}", " ".repeat(pad));
                    agrees_with_serde_json(&line, &mut checked);
                }
            },
        );
        assert!(checked > 100_000, "{checked}");
        let body = r#"{\"deviceId\": \"thermostat-muni-03\", \"seq\": 24239, \"type\": \"alert\",\n \"location\": {\"site\": \"plant-munich-03\", \"city\": \"M\u00fcnchen\"}, \"ts\": \"2026-11-01T08:00:00.074Z\"}"#;
        let body = body.repeat(3);
        for at in 0..body.len() {
            if body.is_char_boundary(at) && !body[..at].ends_with('\\') {
                for pad in [0, 40] {
                    let line = format!("\"{}\"{}", &body[at..], " ".repeat(pad));
                    let (want, _) = agrees_with_serde_json(&line, &mut checked);
                    assert!(want.is_some(), "{line:?}");
                }
            }
        }
    }

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
    fn exact_special_bytes_flag_every_special_byte_and_no_other() {
        let special = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut w = x.to_le_bytes();
            // Bytes near the special ones and the borrow-prone neighbours.
            for (j, byte) in w.iter_mut().enumerate() {
                if (x >> (j * 3 + round % 5)) & 3 == 0 {
                    *byte = [b'"', b'\\', 0, 0x1f, 0x20, b'#', b']', 0x80, 0xff, b'!']
                        [(x >> j) as usize % 10];
                }
            }
            let m = special_bytes_exact(u64::from_le_bytes(w));
            for (j, &c) in w.iter().enumerate() {
                assert_eq!(m >> (8 * j + 7) & 1 == 1, special(c), "{w:?} {j}");
            }
            assert_eq!(m & !HI, 0);
        }
    }

    /// The word-at-a-time reader decodes strings as serde_json does (or leaves them to the
    /// general path): escapes of every kind at every offset in a word, across word ends and
    /// at the line's end.
    #[test]
    fn string_bytes_into_decodes_as_serde_json() {
        let pieces = [
            "a",
            "bc",
            "defghij",
            "\\\"",
            "\\\\",
            "\\/",
            "\\n",
            "\\t",
            "\\u00e9",
            "\\u20AC",
            "\\ud83d\\ude00",
            "\u{e9}",
            "#",
            "]",
            " ",
            "\\ud800",
            "\\x",
            "\u{1}",
        ];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut content = String::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                content.push_str(pieces[(x >> 20) as usize % pieces.len()]);
            }
            for tail in ["\"", "\"}", "\"  }  \n  ", "", "\\"] {
                let line = format!("\"{content}{tail}");
                let want: Option<String> = serde_json::from_str::<serde_json::Value>(
                    &line[..line.rfind('"').map_or(0, |q| q + 1).max(1)],
                )
                .ok()
                .and_then(|v| v.as_str().map(String::from));
                let mut out = b"prefix".to_vec();
                let got = both_into(line.as_bytes(), 1, &mut out);
                match (&want, got) {
                    (Some(w), Ok(end)) => {
                        accepted += 1;
                        assert_eq!(&out[6..], w.as_bytes(), "{line:?}");
                        assert_eq!(&out[..6], b"prefix");
                        assert_eq!(line.as_bytes()[end - 1], b'"', "{line:?}");
                    }
                    (_, Err(NotMine)) => {}
                    (None, Ok(_)) => panic!("accepted {line:?}"),
                }
            }
        }
        assert!(accepted > 20_000, "{accepted} strings read");
    }

    /// The word loop's fast path (words whose special bytes are all `\\"` pairs) and the
    /// words it leaves to the general loop, checked against serde_json for one or two escapes
    /// at every offset of a word and across word ends (a backslash in a word's last byte),
    /// next to every other kind of special byte, non-ASCII bytes, and strings cut short.
    #[test]
    fn escaped_quotes_at_every_offset_decode_as_serde_json() {
        let others = [
            "\\\"",
            "\\\\",
            "\\\\\\\"",
            "\\/",
            "\\n",
            "\\u0022",
            "\\ud83d\\ude00",
            "\u{e9}",
            "\u{1}",
            "\"",
            "",
        ];
        let mut checked = 0;
        for_escaped_contents(0..20, &others, |content| {
            for tail in ["\"", "\"}", "", "\\"] {
                agrees_with_serde_json(&format!("\"{content}{tail}"), &mut checked);
            }
        });
        assert!(checked > 10_000, "{checked}");
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

    /// A system property the last line lacked (`dt-dataschema` here) is taken back from the
    /// names kept from the line before, wherever it is among them, and so is a name respelled
    /// to a kept one (`iothub-connection-device-id`): the bag's name is the very string the
    /// earlier line's was, not a copy. Each line loads as the general path loads it.
    #[test]
    fn system_names_are_taken_back_from_anywhere_in_the_kept_names() {
        let with = r#"{"systemProperties":{"messageId":"1","connectionDeviceId":"d","dt-dataschema":"s","contentType":"c"},"body":"{}"}"#;
        let without = r#"{"systemProperties":{"messageId":"2","connectionDeviceId":"d","contentType":"c"},"body":"{}"}"#;
        let respelled = r#"{"systemProperties":{"dt-dataschema":"s","contentType":"c","messageId":"3","iothub-connection-device-id":"d"},"body":"{}"}"#;
        let name_at = |m: &Message, name: &str| {
            m.system_properties
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, _)| n.as_ptr())
        };
        let mut m = Message::default();
        let mut scratch = String::new();
        assert_eq!(read_into(&mut m, with, &mut scratch), Ok(()));
        let schema = name_at(&m, "dt-dataschema").unwrap();
        let device = name_at(&m, "connectionDeviceId").unwrap();
        for line in [without, respelled] {
            assert_eq!(read_into(&mut m, line, &mut scratch), Ok(()));
            assert_eq!(m, Message::from_json_str_general(line).unwrap(), "{line}");
            assert_eq!(name_at(&m, "connectionDeviceId"), Some(device), "{line}");
        }
        assert_eq!(name_at(&m, "dt-dataschema"), Some(schema));
    }
}
