//! JSON text at the speed of copying it: the validity check the store's records keep (is a
//! body JSON a Storage JSON record may embed?), string escaping, and minifying, all on bytes.
//! The sinks render copies with it; a message's own JSON (`Message::write_json`, the bridge's
//! stream records) escapes its strings with it.
//!
//! Why not serde_json: these run for every message (the check, on the routing thread) and for
//! every byte of every copy (escaping and minifying, on the endpoint threads). serde_json's
//! `IgnoredAny` parse cost about 18k instructions per message and its escaper goes through a
//! `Formatter` per string; here the check walks the bytes once with a byte-class table and
//! skips string contents eight bytes at a time, and escaping copies runs between the bytes
//! that need it. The output is what serde_json accepts and writes, byte for byte (the tests
//! compare both on generated inputs).

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use crate::bytes::Block;

/// A byte that ends a run of a JSON string's plain content: `"`, `\` or a control character.
const fn string_stops() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}

/// [`string_stops`] as a table.
static STOPS: [bool; 256] = string_stops();

/// Eight copies of a byte in a word.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const LO: u64 = splat(0x01);
const HI: u64 = splat(0x80);

/// The eight bytes at `pos` as a little-endian word (byte `pos` lowest), if there are eight.
#[inline(always)]
fn word(b: &[u8], pos: usize) -> Option<u64> {
    // `pos` is at most `b.len()`, so `pos + 8` cannot overflow.
    let chunk: [u8; 8] = b.get(pos..pos + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// Bit 7 of each byte of `w` that is a `"`, a `\` or a control character. Only the lowest
/// flagged byte is sure: the borrows of the zero-byte test may flag bytes above a true match,
/// never below one.
#[inline(always)]
fn stop_bits(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(LO) & !x;
    (zero(w ^ splat(b'"')) | zero(w ^ splat(b'\\')) | (w.wrapping_sub(splat(0x20)) & !w)) & HI
}

/// Bit 7 of each byte of `w` that is not an ASCII digit (exact: no carry crosses a byte, as
/// the addition works on seven bits).
#[inline(always)]
fn non_digit_bits(w: u64) -> u64 {
    let x = w ^ splat(b'0');
    (((x & splat(0x7f)) + splat(0x76)) | x) & HI
}

/// The offset of the lowest flagged byte of a non-zero mask from [`stop_bits`] or
/// [`non_digit_bits`].
#[inline(always)]
fn first_flagged(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// The offset of the first stop byte ([`STOPS`]) at or after `pos`, or `b.len()`: eight
/// bytes at a time, the first one found in the word by its lowest flag; then one at a time at
/// the end of the text. Where SSE2 is there (every x86_64), [`next_stop`] takes sixteen bytes
/// at a time and comes here only for texts shorter than sixteen bytes.
#[inline(always)]
fn next_stop_words(b: &[u8], mut pos: usize) -> usize {
    while let Some(w) = word(b, pos) {
        let mask = stop_bits(w);
        if mask != 0 {
            return pos + first_flagged(mask);
        }
        pos += 8;
    }
    while let Some(&c) = b.get(pos) {
        if STOPS[usize::from(c)] {
            return pos;
        }
        pos += 1;
    }
    pos
}

/// The sixteen bytes at `pos`, if there are sixteen.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn block(b: &[u8], pos: usize) -> Option<&[u8; 16]> {
    b.get(pos..)?.first_chunk::<16>()
}

/// The offset of the first stop byte ([`STOPS`]) at or after `pos`, or `b.len()`: sixteen
/// bytes at a time with SSE2; the end of a text of sixteen bytes or more is its last sixteen
/// bytes, with the ones before `pos` shifted out of the mask, so a string ending near the
/// end of a body is one block too. (Before SSE2 through safe functions, the compiler's own
/// sixteen-byte vectors measured slower than words: their mask went through memory.)
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn next_stop(b: &[u8], mut pos: usize) -> usize {
    while let Some(chunk) = block(b, pos) {
        let mask = Block::load(chunk).string_stops();
        if mask != 0 {
            return pos + mask.trailing_zeros() as usize;
        }
        pos += 16;
    }
    let n = b.len();
    if pos >= n {
        return n;
    }
    match b.last_chunk::<16>() {
        Some(last) => {
            // `pos` is within the last sixteen bytes: `n - 16 < pos < n`.
            let mask = Block::load(last).string_stops() >> (pos - (n - 16));
            if mask != 0 {
                pos + mask.trailing_zeros() as usize
            } else {
                n
            }
        }
        None => next_stop_words(b, pos),
    }
}

/// [`next_stop_words`] where SSE2 is not there.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn next_stop(b: &[u8], pos: usize) -> usize {
    next_stop_words(b, pos)
}

/// Why a check stopped.
enum Stop {
    /// Not JSON.
    Invalid,
    /// Nested deeper than the bit stack holds: serde_json decides.
    TooDeep,
}

type Step = Result<usize, Stop>;

/// Whether `c` is whitespace between JSON tokens.
#[inline(always)]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\t' | b'\r')
}

#[inline(always)]
fn ws(b: &[u8], mut pos: usize) -> usize {
    while let Some(&c) = b.get(pos) {
        if !is_ws(c) {
            break;
        }
        pos += 1;
    }
    pos
}

/// After the opening quote: the offset past the closing one. Escapes as serde_json's
/// `ignore_str` takes them (`\u` needs four hex digits, any code unit).
#[inline(always)]
fn string(b: &[u8], pos: usize) -> Step {
    // Most names and values close within the sixteen bytes from their start, without an
    // escape: one block, whose first stop is the closing quote.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if let Some(chunk) = block(b, pos) {
        let k = Block::load(chunk).string_stops().trailing_zeros() as usize;
        // A longer string goes on from the block's end, one with an escape from its stop.
        return match chunk.get(k) {
            Some(b'"') => Ok(pos + k + 1),
            Some(_) => string_runs(b, pos + k),
            None => string_runs(b, pos + 16),
        };
    }
    string_runs(b, pos)
}

/// [`string`] run by run: from each stop to the next, past escapes.
#[inline(always)]
fn string_runs(b: &[u8], mut pos: usize) -> Step {
    loop {
        pos = next_stop(b, pos);
        match b.get(pos) {
            Some(b'"') => return Ok(pos + 1),
            Some(b'\\') => match b.get(pos + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 2,
                Some(b'u') => {
                    let hex = b.get(pos + 2..pos + 6).ok_or(Stop::Invalid)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Stop::Invalid);
                    }
                    pos += 6;
                }
                _ => return Err(Stop::Invalid),
            },
            _ => return Err(Stop::Invalid),
        }
    }
}

/// The offset of the first byte at or after `pos` that is not a digit, or `b.len()`: eight
/// bytes at a time.
#[inline(always)]
fn digits(b: &[u8], mut pos: usize) -> usize {
    while let Some(w) = word(b, pos) {
        let mask = non_digit_bits(w);
        if mask != 0 {
            return pos + first_flagged(mask);
        }
        pos += 8;
    }
    while let Some(b'0'..=b'9') = b.get(pos) {
        pos += 1;
    }
    pos
}

/// A number from its first byte (`-` or a digit): `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
/// With SSE2, a number that ends within the sixteen bytes from its start (all but the
/// longest) is checked on one block's digit mask ([`number_in_block`]); else, and where SSE2
/// is not there, eight bytes at a time ([`number_words`]).
#[inline(always)]
fn number(b: &[u8], pos: usize) -> Step {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if let Some(end) = block(b, pos).and_then(number_in_block) {
        return end.map(|len| pos + len);
    }
    number_words(b, pos)
}

/// [`number`] at the start of a block: its length, or an error, when both are decided
/// within the block; `None` when a run of digits (or the exponent's sign) reaches the
/// block's end. Why: a body's numbers (readings, counters, coordinates) are short, and
/// taking each run's end from one mask costs less than the word loop's two or three runs.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn number_in_block(chunk: &[u8; 16]) -> Option<Step> {
    // Bits 16 and up are set, so every run ends by bit 16 at the latest.
    let others = !Block::load(chunk).digits();
    let run_end = |from: usize| (others >> from).trailing_zeros() as usize + from;
    let mut pos = usize::from(chunk[0] == b'-');
    let end = run_end(pos);
    if end >= 16 {
        return None;
    }
    if end == pos || (chunk[pos] == b'0' && end > pos + 1) {
        return Some(Err(Stop::Invalid));
    }
    pos = end;
    if chunk[pos] == b'.' {
        let end = run_end(pos + 1);
        if end >= 16 {
            return None;
        }
        if end == pos + 1 {
            return Some(Err(Stop::Invalid));
        }
        pos = end;
    }
    if chunk[pos] | 0x20 == b'e' {
        pos += 1;
        if let Some(b'+' | b'-') = chunk.get(pos) {
            pos += 1;
        }
        let end = run_end(pos);
        if end >= 16 {
            return None;
        }
        if end == pos {
            return Some(Err(Stop::Invalid));
        }
        pos = end;
    }
    Some(Ok(pos))
}

/// [`number`] eight bytes at a time.
#[inline(always)]
fn number_words(b: &[u8], mut pos: usize) -> Step {
    if b[pos] == b'-' {
        pos += 1;
    }
    // The integer part: one digit or more, without a leading zero unless it is only `0`.
    let end = digits(b, pos);
    if end == pos || (b[pos] == b'0' && end > pos + 1) {
        return Err(Stop::Invalid);
    }
    pos = end;
    if b.get(pos) == Some(&b'.') {
        let end = digits(b, pos + 1);
        if end == pos + 1 {
            return Err(Stop::Invalid);
        }
        pos = end;
    }
    if let Some(b'e' | b'E') = b.get(pos) {
        pos += 1;
        if let Some(b'+' | b'-') = b.get(pos) {
            pos += 1;
        }
        let end = digits(b, pos);
        if end == pos {
            return Err(Stop::Invalid);
        }
        pos = end;
    }
    Ok(pos)
}

/// What the check does with the whitespace between tokens: nothing ([`Ignore`]), or copy
/// the text without it ([`Minify`]), so that checking and minifying are one pass.
trait Gaps {
    /// Whitespace from `from` to `to` (empty when `from == to`) was skipped.
    fn gap(&mut self, b: &[u8], from: usize, to: usize);
}

#[cfg(test)]
struct Ignore;

#[cfg(test)]
impl Gaps for Ignore {
    #[inline(always)]
    fn gap(&mut self, _: &[u8], _: usize, _: usize) {}
}

/// Copies the text between gaps to `out`; `start` is where the uncopied text begins.
struct Minify<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
}

impl Gaps for Minify<'_> {
    #[inline(always)]
    fn gap(&mut self, b: &[u8], from: usize, to: usize) {
        if to > from {
            push_run(self.out, b, self.start, from);
            self.start = to;
        }
    }
}

/// The longest run [`push_run`] copies as one block.
const RUN_BLOCK: usize = 32;

/// Appends `b[start..end]`: a run of [`RUN_BLOCK`] bytes or fewer (between the whitespace of
/// a spaced body: a member name with its colon, a value with its comma) as one copy of
/// [`RUN_BLOCK`] bytes, then cut back to its length, when the text has that many bytes from
/// `start`. Why: a copy of a constant length is two vector moves in line, where a slice of
/// unknown length calls `memcpy` for each run.
#[inline(always)]
fn push_run(out: &mut Vec<u8>, b: &[u8], start: usize, end: usize) {
    if end - start <= RUN_BLOCK {
        if let Some(chunk) = b.get(start..).and_then(|r| r.first_chunk::<RUN_BLOCK>()) {
            return push_block_cut(out, chunk, end - start);
        }
    }
    out.extend_from_slice(&b[start..end]);
}

/// [`ws`], telling `g` what was skipped.
#[inline(always)]
fn skip<G: Gaps>(g: &mut G, b: &[u8], pos: usize) -> usize {
    let end = ws(b, pos);
    g.gap(b, pos, end);
    end
}

/// The byte at `pos` after any whitespace there (`None` at the end), and its offset. Compact
/// text, most bodies, pays one test per token for whitespace it does not have.
#[inline(always)]
fn token<G: Gaps>(g: &mut G, b: &[u8], pos: usize) -> (Option<u8>, usize) {
    match b.get(pos) {
        Some(&c) if !is_ws(c) => (Some(c), pos),
        None => (None, pos),
        Some(_) => {
            let pos = skip(g, b, pos);
            (b.get(pos).copied(), pos)
        }
    }
}

/// After `{` or a comma in an object: a member name and its colon; the offset after the
/// colon (where the value, or whitespace before it, starts).
#[inline(always)]
fn member_name<G: Gaps>(g: &mut G, b: &[u8], mut pos: usize) -> Step {
    // Compact text first: the quote and the colon where they are expected (whitespace
    // is tested only when they are not there).
    if b.get(pos) != Some(&b'"') {
        let (c, at) = token(g, b, pos);
        if c != Some(b'"') {
            return Err(Stop::Invalid);
        }
        pos = at;
    }
    pos = string(b, pos + 1)?;
    if b.get(pos) == Some(&b':') {
        return Ok(pos + 1);
    }
    let (c, at) = token(g, b, pos);
    if c != Some(b':') {
        return Err(Stop::Invalid);
    }
    Ok(at + 1)
}

/// The whole text is one JSON value with only whitespace around it.
///
/// Each step dispatches on the byte where a token is expected; whitespace is one more arm
/// (skipped, then the step runs again), not a skip before every token.
fn check<G: Gaps>(g: &mut G, b: &[u8]) -> Result<(), Stop> {
    // The open containers, innermost in bit 0: set for an object.
    let mut objects: u64 = 0;
    let mut depth = 0u32;
    let mut pos = 0;
    'value: loop {
        pos = match b.get(pos) {
            Some(b'"') => string(b, pos + 1)?,
            Some(b'-' | b'0'..=b'9') => number(b, pos)?,
            Some(&open @ (b'{' | b'[')) => {
                if depth == u64::BITS {
                    return Err(Stop::TooDeep);
                }
                let object = open == b'{';
                let close = if object { b'}' } else { b']' };
                let (c, at) = token(g, b, pos + 1);
                if c == Some(close) {
                    at + 1
                } else {
                    objects = (objects << 1) | u64::from(object);
                    depth += 1;
                    pos = if object { member_name(g, b, at)? } else { at };
                    continue 'value;
                }
            }
            Some(b't') if b[pos..].starts_with(b"true") => pos + 4,
            Some(b'f') if b[pos..].starts_with(b"false") => pos + 5,
            Some(b'n') if b[pos..].starts_with(b"null") => pos + 4,
            Some(&c) if is_ws(c) => {
                pos = skip(g, b, pos);
                continue 'value;
            }
            _ => return Err(Stop::Invalid),
        };
        // After a value: the end of the text, or a comma, or closing brackets.
        loop {
            let object = objects & 1 != 0;
            match b.get(pos) {
                Some(b',') if depth > 0 => {
                    pos = if object {
                        member_name(g, b, pos + 1)?
                    } else {
                        pos + 1
                    };
                    continue 'value;
                }
                Some(b'}') if depth > 0 && object => {}
                Some(b']') if depth > 0 && !object => {}
                Some(&c) if is_ws(c) => {
                    pos = skip(g, b, pos);
                    continue;
                }
                None if depth == 0 => return Ok(()),
                _ => return Err(Stop::Invalid),
            }
            pos += 1;
            objects >>= 1;
            depth -= 1;
        }
    }
}

/// Whether `text` is JSON as `serde_json::from_slice::<serde::de::IgnoredAny>` accepts it
/// (which does not check UTF-8 inside strings; callers check that on its own).
#[cfg(test)]
pub(crate) fn is_json(text: &[u8]) -> bool {
    match check(&mut Ignore, text) {
        Ok(()) => true,
        Err(Stop::Invalid) => false,
        Err(Stop::TooDeep) => serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok(),
    }
}

/// Appends `text` without its insignificant whitespace when it is UTF-8 (checked with SIMD)
/// and JSON as serde_json reads it, in one pass; else leaves `out` as it was and returns
/// `false`. Where a Storage JSON record embeds a body, this is its only check: the routing
/// thread records only whether the content type says JSON, and sinks that never embed
/// (Avro) never check.
pub(crate) fn push_minified_if_json(text: &[u8], out: &mut Vec<u8>) -> bool {
    if simdutf8::basic::from_utf8(text).is_err() {
        return false;
    }
    let mark = out.len();
    // Room for the last run's whole block too (see `push_run`).
    out.reserve(text.len() + RUN_BLOCK);
    let mut m = Minify { out, start: 0 };
    let result = check(&mut m, text);
    let start = m.start;
    match result {
        Ok(()) => {
            out.extend_from_slice(&text[start.min(text.len())..]);
            true
        }
        Err(Stop::Invalid) => {
            out.truncate(mark);
            false
        }
        Err(Stop::TooDeep) => {
            out.truncate(mark);
            let ok = serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok();
            if ok {
                minify_into(text, out);
            }
            ok
        }
    }
}

/// Appends `text` without its whitespace between tokens, trusting its grammar: `text` is a
/// body routing's strict scanner read whole as stored (UTF-8, RFC 8259 JSON but for what a
/// string it skipped may hold; `codec`'s strict flag). Sixteen bytes at a time: the quotes'
/// running parity marks the strings (exact, as nothing is escaped), and the whitespace
/// outside them is left out, the runs between copied as blocks. `false`, with `out` as it
/// was, when a block holds a backslash, a control byte inside a string or one outside that
/// is not whitespace: the full check ([`push_minified_if_json`]) decides those.
///
/// Why: the full check's grammar walk cost about 8 instructions per byte of a body with a
/// space in it (a spaced body, a string with a space), the most of an endpoint thread's
/// work; routing already walked the grammar.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub(crate) fn push_stripped_strict(text: &[u8], out: &mut Vec<u8>) -> bool {
    let mark = out.len();
    out.reserve(text.len() + 16);
    // All ones while the text at the block's start is inside a string.
    let mut inside_at_start = 0u32;
    let mut pos = 0;
    // Two blocks a step while there are 32 bytes (their masks joined in 32 bits: half the
    // loop's and the parity's work a byte), then the rest a block at a time.
    while let Some(pair) = text.get(pos..).and_then(|r| r.first_chunk::<32>()) {
        let (Some(lo), Some(hi)) = (pair.first_chunk::<16>(), pair.last_chunk::<16>()) else {
            break;
        };
        let (a, b) = (Block::load(lo), Block::load(hi));
        let join = |x: u32, y: u32| x | y << 16;
        if join(a.eq(b'\\'), b.eq(b'\\')) != 0 {
            out.truncate(mark);
            return false;
        }
        let control = join(a.control(), b.control());
        let inside = prefix_xor(join(a.eq(b'"'), b.eq(b'"'))) ^ inside_at_start;
        inside_at_start = ((inside as i32) >> 31) as u32;
        let outside_control = control & !inside;
        let ws_control = |v: Block| v.eq(b'\n') | v.eq(b'\t') | v.eq(b'\r');
        if control & inside != 0
            || (outside_control != 0 && outside_control & !join(ws_control(a), ws_control(b)) != 0)
        {
            out.truncate(mark);
            return false;
        }
        let gaps = (join(a.eq(b' '), b.eq(b' ')) | control) & !inside;
        if gaps == 0 {
            out.extend_from_slice(pair);
        } else {
            strip_block(out, lo, gaps & 0xffff);
            strip_block(out, hi, gaps >> 16);
        }
        pos += 32;
    }
    while pos < text.len() {
        // The last block is the text's tail padded with spaces, which are left out.
        let mut padded = [b' '; 16];
        let (chunk, real) = match block(text, pos) {
            Some(chunk) => (chunk, 0xffff),
            None => {
                let tail = &text[pos..];
                padded[..tail.len()].copy_from_slice(tail);
                (&padded, (1u32 << tail.len()) - 1)
            }
        };
        let b = Block::load(chunk);
        let control = b.control();
        if b.eq(b'\\') != 0 {
            out.truncate(mark);
            return false;
        }
        let inside = (prefix_xor(b.eq(b'"')) ^ inside_at_start) & 0xffff;
        inside_at_start = if inside & 0x8000 != 0 { u32::MAX } else { 0 };
        let outside_control = control & !inside;
        if control & inside & real != 0
            || (outside_control != 0
                && outside_control & !(b.eq(b'\n') | b.eq(b'\t') | b.eq(b'\r')) != 0)
        {
            out.truncate(mark);
            return false;
        }
        let gaps = ((b.eq(b' ') | control) & !inside | !real) & 0xffff;
        if gaps == 0 {
            out.extend_from_slice(chunk);
        } else {
            strip_block(out, chunk, gaps);
        }
        pos += 16;
    }
    true
}

/// Each bit of `m` xor the bits below it: bit `k` is the parity of the bits up to `k`, so
/// after a quote mask, the bytes inside a string (and its opening quote).
#[inline(always)]
fn prefix_xor(mut m: u32) -> u32 {
    m ^= m << 1;
    m ^= m << 2;
    m ^= m << 4;
    m ^= m << 8;
    m ^= m << 16;
    m
}

/// Appends the bytes of `chunk` not flagged in `gaps` (its low 16 bits): each half as a
/// word with its flagged bytes taken out ([`compact_word`]), written whole and cut back.
/// Why: copying the runs between the gaps (a spaced body has two or three in a block) cost
/// about 25 instructions a gap; taking a byte out of a word costs about 10.
#[inline(always)]
fn strip_block(out: &mut Vec<u8>, chunk: &[u8; 16], gaps: u32) {
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&chunk[at..at + 8]);
        u64::from_le_bytes(w)
    };
    for (w, g) in [(word(0), gaps & 0xff), (word(8), gaps >> 8 & 0xff)] {
        let (w, kept) = compact_word(w, g);
        let at = out.len();
        out.extend_from_slice(&w.to_le_bytes());
        out.truncate(at + kept);
    }
}

/// The bytes of the little-endian word `w` not flagged in `gaps` (8 bits), moved down over
/// the flagged ones, and how many there are: the highest flagged byte first, so the
/// positions of the others do not move. The bytes from the flagged one up take the value
/// of the byte above them (`w ^ (w >> 8)` the change, kept where the mask is): three
/// operations on `w` where a mask of the bytes below and one of those above took five.
#[inline(always)]
fn compact_word(mut w: u64, mut gaps: u32) -> (u64, usize) {
    let mut kept = 8;
    while gaps != 0 {
        let k = 31 - gaps.leading_zeros();
        w ^= (w ^ (w >> 8)) & (u64::MAX << (8 * k));
        gaps &= !(1 << k);
        kept -= 1;
    }
    (w, kept)
}

/// [`push_stripped_strict`] where SSE2 is not there: the full check.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub(crate) fn push_stripped_strict(text: &[u8], out: &mut Vec<u8>) -> bool {
    push_minified_if_json(text, out)
}

/// How serde_json writes a byte inside a string literal: 0 as it is, else the letter of its
/// short escape (`\n`), or `u` for `\u00XX`.
const fn escapes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
}

static ESCAPE: [u8; 256] = escapes();

/// Whether any byte of `s` is a `"`, a `\\` or a control character: with SSE2, blocks of
/// sixteen bytes, the last one overlapping the one before (as in [`has_stop_words`]), so a
/// string of 16 to 32 bytes costs two tests; shorter strings as words.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn has_stop(s: &[u8]) -> bool {
    let Some(last) = s.last_chunk::<16>() else {
        return has_stop_words(s);
    };
    let mut pos = 0;
    while pos + 16 < s.len() {
        if let Some(chunk) = block(s, pos) {
            if Block::load(chunk).string_stops() != 0 {
                return true;
            }
        }
        pos += 16;
    }
    Block::load(last).string_stops() != 0
}

/// [`has_stop_words`] where SSE2 is not there.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn has_stop(s: &[u8]) -> bool {
    has_stop_words(s)
}

/// Whether any byte of `s` is a `"`, a `\` or a control character: words of eight bytes,
/// the last one (and a string shorter than eight) read as overlapping loads, so a short
/// string costs one test instead of a loop over its bytes. Only whether a stop is there is
/// asked, not where, so the overlap and [`stop_bits`]' borrows (never without a true stop)
/// do not matter.
#[inline(always)]
fn has_stop_words(s: &[u8]) -> bool {
    let n = s.len();
    let w = if n >= 8 {
        let mut pos = 0;
        while pos + 8 < n {
            if let Some(w) = word(s, pos) {
                if stop_bits(w) != 0 {
                    return true;
                }
            }
            pos += 8;
        }
        word(s, n - 8).unwrap_or(0)
    } else if n >= 4 {
        let half = |at: usize| {
            s.get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
        };
        half(0) | half(n - 4) << 32
    } else if n > 0 {
        // One to three bytes: the first, middle and last cover them; the other bytes are a
        // letter, which needs no escape.
        let at = |i: usize| u64::from(s[i]);
        at(0) | at(n / 2) << 8 | at(n - 1) << 16 | splat(b'a') << 24
    } else {
        return false;
    };
    stop_bits(w) != 0
}

/// Appends `s` as a JSON string literal, escaped exactly as serde_json escapes (`\"`, `\\`,
/// `\b \f \n \r \t`, other control characters as `\u00XX`): a string without such bytes
/// (most names and values) in one copy, else runs without them are copied whole. `s` is
/// UTF-8 (bytes of a `&str`, or of a checked store record).
#[inline]
pub(crate) fn push_string(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    if has_stop(s) {
        push_escaped(out, s);
    } else {
        out.extend_from_slice(s);
    }
    out.push(b'"');
}

/// Appends `s` as [`push_string`] does, where `room` starts with `s` and goes on (a store
/// record's string and the bytes after it, [`crate::sink::view::Text`]): a string of up to
/// 32 bytes that needs no escape (most property names and values) is tested as one or two
/// blocks read from `room` (the bytes past it masked off) and copied as one block of
/// constant length, then cut back. Why: the per-string loop of [`has_stop`] and a `memcpy`
/// call of the string's length were most of rendering a property.
#[inline(always)]
pub(crate) fn push_text(out: &mut Vec<u8>, s: &[u8], room: &[u8]) {
    debug_assert!(room.starts_with(s));
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        let n = s.len();
        if n <= 16 {
            if let Some(chunk) = plain_16(room, n) {
                return push_quoted_block(out, chunk, n);
            }
        } else if n <= 32 {
            if let Some(chunk) = plain_32(room, n) {
                return push_quoted_block(out, chunk, n);
            }
        }
    }
    push_string(out, s);
}

/// `room`'s first 16 bytes when its first `n` (at most 16) need no escape in a JSON string
/// (the bytes past them are masked off): a short string's block, for [`push_text`] and
/// [`put_plain`].
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn plain_16(room: &[u8], n: usize) -> Option<&[u8; 16]> {
    let chunk = room.first_chunk::<16>()?;
    (Block::load(chunk).string_stops() & ((1u32 << n) - 1) == 0).then_some(chunk)
}

/// [`plain_16`] of 32 bytes, for an `n` of 17 to 32.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn plain_32(room: &[u8], n: usize) -> Option<&[u8; 32]> {
    let chunk = room.first_chunk::<32>()?;
    let (a, b) = (chunk.first_chunk::<16>()?, chunk.last_chunk::<16>()?);
    let stops =
        Block::load(a).string_stops() | Block::load(b).string_stops() & ((1u32 << (n - 16)) - 1);
    (stops == 0).then_some(chunk)
}

/// Appends the first `n` bytes of `chunk` (at most `N`) in quotes, copied as the whole
/// block and cut back.
#[inline(always)]
fn push_quoted_block<const N: usize>(out: &mut Vec<u8>, chunk: &[u8; N], n: usize) {
    out.push(b'"');
    push_block_cut(out, chunk, n);
    out.push(b'"');
}

/// A member `"name":"value"` of strings with their room, as [`push_string`] writes each:
/// when both are plain and short (most properties), assembled in a block on
/// the stack ([`put_plain`]) and appended as one copy of constant length, cut back. Why: a
/// push, a copy and a capacity check per piece were most of rendering a property.
#[inline(always)]
pub(crate) fn push_member_text(
    out: &mut Vec<u8>,
    name: &[u8],
    name_room: &[u8],
    value: &[u8],
    value_room: &[u8],
) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        let mut buf = [0u8; MEMBER_BLOCK];
        buf[0] = b'"';
        if let Some(k) = put_plain(&mut buf, 1, name, name_room) {
            if let Some(colon) = buf.get_mut(k..k + 3) {
                colon.copy_from_slice(b"\":\"");
                if let Some(end) = put_plain(&mut buf, k + 3, value, value_room) {
                    if let Some(quote) = buf.get_mut(end) {
                        *quote = b'"';
                        return push_block_cut(out, &buf, end + 1);
                    }
                }
            }
        }
    }
    push_text(out, name, name_room);
    out.push(b':');
    push_text(out, value, value_room);
}

/// A system property's value after its key, `"value",`, where `key` holds the key (up to
/// [`KEY_BLOCK`] bytes, `key_len` of them taken), assembled and appended as
/// [`push_member_text`] does; `false` (nothing written) when the value is not plain or
/// longer than 64 bytes.
#[inline(always)]
pub(crate) fn push_keyed_value(
    out: &mut Vec<u8>,
    key: &[u8; KEY_BLOCK],
    key_len: usize,
    value: &[u8],
    value_room: &[u8],
) -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        let mut buf = [0u8; MEMBER_BLOCK];
        if let Some(start) = buf.first_chunk_mut::<KEY_BLOCK>() {
            *start = *key;
        }
        if let Some(quote) = buf.get_mut(key_len) {
            *quote = b'"';
            if let Some(end) = put_plain(&mut buf, key_len + 1, value, value_room) {
                if let Some(close) = buf.get_mut(end..end + 2) {
                    close.copy_from_slice(b"\",");
                    push_block_cut(out, &buf, end + 2);
                    return true;
                }
            }
        }
    }
    let _ = (out, key, key_len, value, value_room);
    false
}

/// The longest key a [`push_keyed_value`] block holds.
pub(crate) const KEY_BLOCK: usize = 32;

/// The stack block a member is assembled in: a quote, a name of up to 32 bytes (or a key of
/// up to [`KEY_BLOCK`]), `":"`, a value of up to 64, and the closing quote and comma.
const MEMBER_BLOCK: usize = 112;

/// Copies the plain string `s` (a whole 16-, 32- or 64-byte block of its `room`) into `buf`
/// at `at`; the offset after it, or `None` when it is longer than 64 bytes, its room is
/// shorter than the block, or a byte of it needs an escape.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn put_plain(buf: &mut [u8; MEMBER_BLOCK], at: usize, s: &[u8], room: &[u8]) -> Option<usize> {
    let n = s.len();
    if n <= 16 {
        buf.get_mut(at..at + 16)?
            .copy_from_slice(plain_16(room, n)?);
    } else if n <= 32 {
        buf.get_mut(at..at + 32)?
            .copy_from_slice(plain_32(room, n)?);
    } else if n <= 64 {
        // Ids and trace contexts (a `traceparent` is 55 bytes).
        let chunk = room.first_chunk::<64>()?;
        let mut stops = 0u64;
        for (i, block) in chunk.chunks_exact(16).enumerate() {
            let block = block.first_chunk::<16>()?;
            stops |= u64::from(Block::load(block).string_stops()) << (16 * i);
        }
        if stops & (u64::MAX >> (64 - n)) != 0 {
            return None;
        }
        buf.get_mut(at..at + 64)?.copy_from_slice(chunk);
    } else {
        return None;
    }
    Some(at + n)
}

/// Appends the first `len` bytes of `buf` (copied whole, then cut back).
#[inline(always)]
fn push_block_cut<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], len: usize) {
    let at = out.len();
    out.extend_from_slice(buf);
    out.truncate(at + len);
}

/// Escaped strings an endpoint thread wrote last: their text and their escaping.
#[derive(Default)]
struct EscapeMemo {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// The entry the next new string replaces once all [`MEMO_ENTRIES`] are taken.
    next: usize,
}

/// Strings [`EscapeMemo`] keeps, and the longest it keeps.
const MEMO_ENTRIES: usize = 8;
const MEMO_MAX_LEN: usize = 256;

thread_local! {
    static ESCAPED: std::cell::RefCell<EscapeMemo> = std::cell::RefCell::default();
}

/// The content of a string literal with its escapes ([`push_string`]): copied from the
/// thread's memo when the same string was escaped lately, else escaped (and remembered, if
/// short). Why: IoT Hub stamps `connectionAuthMethod` on every message, a JSON text whose
/// quotes all need escaping, with a handful of values (scope, type and issuer); escaping it
/// run by run was about a tenth of rendering a copy, comparing it with a remembered one is
/// a few dozen instructions.
#[cold]
fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() > MEMO_MAX_LEN {
        return escape_into(out, s);
    }
    ESCAPED.with_borrow_mut(|memo| {
        if let Some((_, escaped)) = memo.entries.iter().find(|(text, _)| text == s) {
            out.extend_from_slice(escaped);
            return;
        }
        let at = out.len();
        escape_into(out, s);
        // A replaced entry's buffers are reused: strings that keep changing cost no
        // allocation once the memo is full.
        let (text, escaped) = if memo.entries.len() < MEMO_ENTRIES {
            memo.entries.push(Default::default());
            memo.entries.last_mut().expect("just pushed")
        } else {
            let next = memo.next;
            memo.next = (next + 1) % MEMO_ENTRIES;
            &mut memo.entries[next]
        };
        text.clear();
        text.extend_from_slice(s);
        escaped.clear();
        escaped.extend_from_slice(&out[at..]);
    })
}

/// [`push_escaped`] without the memo: runs without a byte to escape are copied whole.
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    // Sixteen bytes a step, every byte to escape found from the block's one mask; the runs
    // between them are copied as 16 bytes of a padded copy of the block and cut back
    // ([`push_block_cut`]), a copy of constant length where a run's own length (a few bytes
    // between the quotes of a JSON text sent as a string) meant a call to `memcpy` per run.
    // (`push_run` on the string itself measured 2-4% slower on the bridge's bench: its
    // 32-byte block needs 32 bytes left in the string.)
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(chunk) = block(s, start) {
        start += 16;
        let mut mask = Block::load(chunk).string_stops();
        if mask == 0 {
            out.extend_from_slice(chunk);
            continue;
        }
        let mut padded = [0u8; 32];
        padded[..16].copy_from_slice(chunk);
        let mut from = 0;
        while mask != 0 {
            let k = mask.trailing_zeros() as usize;
            if let Some(run) = padded.get(from..).and_then(<[u8]>::first_chunk::<16>) {
                push_block_cut(out, run, k - from);
            }
            push_escape(out, chunk[k]);
            from = k + 1;
            mask &= mask - 1;
        }
        if let Some(run) = padded.get(from..).and_then(<[u8]>::first_chunk::<16>) {
            push_block_cut(out, run, 16 - from);
        }
    }
    loop {
        let stop = next_stop(s, start);
        out.extend_from_slice(&s[start..stop]);
        let Some(&c) = s.get(stop) else { break };
        push_escape(out, c);
        start = stop + 1;
    }
}

/// Appends the escape of `c`, a byte [`STOPS`] flags.
#[inline(always)]
fn push_escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[usize::from(c)] {
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(c >> 4)],
            HEX[usize::from(c & 0xf)],
        ]),
        letter => out.extend_from_slice(&[b'\\', letter]),
    }
}

/// Appends valid JSON text without its insignificant whitespace: every space, tab, CR and LF
/// outside string literals (inside them, control characters are always escaped in valid
/// JSON). Copies runs of bytes at once; a body without such whitespace is one copy.
pub(crate) fn minify_into(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(text.len());
    let mut start = 0;
    let mut pos = 0;
    while let Some(&c) = text.get(pos) {
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.extend_from_slice(&text[start..pos]);
                pos = ws(text, pos + 1);
                start = pos;
            }
            b'"' => {
                // To the closing quote: past escapes, whose second byte is never a bare `"`.
                pos += 1;
                loop {
                    pos = next_stop(text, pos);
                    match text.get(pos) {
                        Some(b'\\') => pos += 2,
                        Some(b'"') => {
                            pos += 1;
                            break;
                        }
                        Some(_) => pos += 1,
                        None => break,
                    }
                }
            }
            _ => pos += 1,
        }
    }
    out.extend_from_slice(&text[start.min(text.len())..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_accepts(text: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
    }

    /// Texts around every rule: each, and each of its prefixes and one-byte changes, is
    /// accepted exactly when serde_json accepts it.
    #[test]
    fn accepts_what_serde_json_accepts() {
        let texts: [&[u8]; 24] = [
            b" {\"a\" : [1, -2.5e3, 0.1E+2, 3e-1, true, false, null, \"s\\n\\u00e9\"], \"b\":{}} ",
            b"[[],{},[[{}]]]",
            b"\"\\ud800 lone\"",
            b"-0",
            b"01",
            b"1.",
            b"1.e3",
            b"-",
            b"1e",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{1:1}",
            b"[1 2]",
            b"\"tab\there\"",
            b"\"\\x\"",
            b"\"\\u12G4\"",
            b"tru",
            b"nulls",
            b"\x00{}",
            b"{}\x00",
            b"\"caf\xc3\xa9 \xff\"",
            b"",
            b"   ",
        ];
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for t in texts {
            for cut in 0..=t.len() {
                cases.push(t[..cut].to_vec());
            }
            for i in 0..t.len() {
                for c in [b' ', b'"', b'\\', b',', b'}', b']', b'0', b'e', b'\t', 0x01] {
                    let mut m = t.to_vec();
                    m[i] = c;
                    cases.push(m);
                }
            }
        }
        for c in cases {
            assert_eq!(
                is_json(&c),
                serde_accepts(&c),
                "{:?}",
                String::from_utf8_lossy(&c)
            );
        }
        let deep = format!("{}1{}", "[ ".repeat(300), "]".repeat(300));
        assert!(is_json(deep.as_bytes()));
        assert!(!is_json(&deep.as_bytes()[1..]));
    }

    /// `push_minified_if_json` against serde_json: it takes a text exactly when serde_json
    /// reads it (and it is UTF-8), then writes what `minify_into` writes, else leaves `out`
    /// as it was (the body is then embedded as base64, as before).
    fn assert_minifies_as_serde(text: &[u8]) {
        let mut out = b"x".to_vec();
        let took = push_minified_if_json(text, &mut out);
        let want = serde_accepts(text) && std::str::from_utf8(text).is_ok();
        assert_eq!(took, want, "{:?}", String::from_utf8_lossy(text));
        if took {
            let mut minified = b"x".to_vec();
            minify_into(text, &mut minified);
            assert_eq!(out, minified, "{:?}", String::from_utf8_lossy(text));
        } else {
            assert_eq!(out, b"x");
        }
    }

    /// The fast paths at every length and offset: a string's end found 8 bytes at a
    /// time (and byte by byte near the end of the text), digit runs 8 at a time, whitespace
    /// taken where a token was expected.
    #[test]
    fn fast_paths_minify_exactly_what_serde_json_accepts() {
        const PLAIN: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
        let inserts = [
            "", "\"", "\\", "\\\"", "\\n", "\\u00e9", "\\u00G9", "\\x", "\n", "\u{1}", "\u{1f}",
            " ", "é", "😀", "\u{7f}",
        ];
        for len in 0..40 {
            for at in 0..=len {
                for ins in inserts {
                    let s = format!("{}{ins}{}", &PLAIN[..at], &PLAIN[at..len]);
                    for text in [
                        format!("\"{s}\""),
                        format!("{{\"{s}\":1}}"),
                        format!("[\"{s}\" , {{ \"k\" :\"{s}\"}}]"),
                        format!("{{\"a\":\"{s}"),
                    ] {
                        assert_minifies_as_serde(text.as_bytes());
                    }
                }
            }
        }
        let numbers = [
            "0", "-0", "01", "-", "1.", ".5", "1.5", "1e5", "1E+5", "1e-", "2.50e-07", "-12.0",
        ];
        for digits in 1..20 {
            let run = "7".repeat(digits);
            for n in numbers.iter().map(|n| n.to_string()).chain([
                run.clone(),
                format!("-{run}.{run}e{run}"),
                format!("0{run}"),
            ]) {
                for text in [
                    n.clone(),
                    format!("[{n},{n}]"),
                    format!("{{\"n\": {n} ,\"m\":{n}}}"),
                    format!("[{n}x]"),
                    format!(" {n}\t\r\n"),
                ] {
                    assert_minifies_as_serde(text.as_bytes());
                }
            }
        }
        for text in [
            " { } ",
            "[ ]",
            "{\n\t\"a\" :\r\n [ 1 , 2 ] , \"b\" : { } }",
            "[1 ,]",
            "{ , }",
            "[ true , false , null ]",
            "[tru]",
            "{\"a\"\t:\tnul}",
            "\t",
            "[1]\u{0}",
            "{\"a\" 1}",
            "[\"a\"\n\"b\"]",
            "[[[[ ]]]]",
            "[[[[ ]]]",
        ] {
            assert_minifies_as_serde(text.as_bytes());
        }
    }

    /// The block's number check against the word loop, for numbers of every form (valid
    /// and not) followed by every byte that can end or extend one, at every length up to
    /// and past a block: the same end, or the same error.
    #[test]
    fn block_numbers_end_where_the_word_loop_ends_them() {
        let forms = [
            "0",
            "-0",
            "7",
            "-",
            "01",
            "-01",
            "10",
            "1.",
            "1.5",
            ".5",
            "1e",
            "1e5",
            "1E+5",
            "1e-",
            "1e+",
            "2.50e-07",
            "-12.0",
            "0.0",
            "0e0",
            "1.e5",
            "12345678901234",
            "123456789012345",
            "1234567890123456",
            "0.123456789012",
            "-1.5e+123456789",
            "9e",
            "-.",
            "1.2.3",
        ];
        let tails = [
            "", ",", "]", "}", " ", "x", "5", ".", "e", "E", "-", "+", "\"", "\u{1}",
        ];
        let padding = "0123456789abcdefghij";
        for form in forms {
            for tail in tails {
                for pad in 0..=padding.len() {
                    let text = format!("{form}{tail}{}", &padding[..pad]);
                    let b = text.as_bytes();
                    if !matches!(b[0], b'-' | b'0'..=b'9') {
                        continue;
                    }
                    let ends = |r: Step| r.ok();
                    assert_eq!(ends(number(b, 0)), ends(number_words(b, 0)), "{text:?}");
                    let framed = format!("[{text}]");
                    let framed = framed.as_bytes();
                    assert_eq!(ends(number(framed, 1)), ends(number_words(framed, 1)));
                    assert_minifies_as_serde(
                        format!("[{form}{tail}]{}", " ".repeat(pad)).as_bytes(),
                    );
                    assert_minifies_as_serde(
                        format!("{{\"n\":{form}{tail},\"p\":\"{}\"}}", &padding[..pad]).as_bytes(),
                    );
                }
            }
        }
    }

    /// A body as devices send them (compact, and spaced by a pretty printer), each byte
    /// replaced by each byte that matters to the grammar, the scans or UTF-8, cut at each
    /// byte, and with each byte removed: checked and minified as serde_json reads it.
    #[test]
    fn mutated_bodies_minify_exactly_what_serde_json_accepts() {
        const BODY: &str = r#"{"deviceId":"pump-osak-09","ts":"2026-11-01T08:00:00.105Z","seq":39704,"Weather":{"Temperature":26.7,"Humidity":49.1,"Pressure":1005.3},"location":{"city":"Ōsaka","lat":34.69102,"lon":-135.51075e0,"floor":2},"status":{"online":true,"state":null,"uptimeSec":1240763,"off":false},"firmware":{"note":"a \"quoted\" \\ back\/slash\n\u00e9\ud83d\ude00","buildId":"b08880"},"alerts":[{"code":"TEMP_HIGH","value":13.9,"e":1E+2}],"readings":[[],[0,-0.5,[{}]]],"tags":[]}"#;
        let value: serde_json::Value = serde_json::from_str(BODY).unwrap();
        let spaced = format!("\r\n{}\t ", serde_json::to_string_pretty(&value).unwrap());
        for body in [BODY, spaced.as_str()] {
            let body = body.as_bytes();
            assert_minifies_as_serde(body);
            for at in 0..body.len() {
                for &c in b"\"\\{}[],: \t\n0a\x01\x80\xff" {
                    let mut changed = body.to_vec();
                    changed[at] = c;
                    assert_minifies_as_serde(&changed);
                }
                assert_minifies_as_serde(&body[..at]);
                let mut cut = body.to_vec();
                cut.remove(at);
                assert_minifies_as_serde(&cut);
            }
        }
    }

    /// The sixteen-byte blocks at their boundaries: a stop byte (or a byte just outside the
    /// stops: space, DEL, non-ASCII) at each offset of texts of 0..64 bytes, searched from each
    /// offset (so the last block, shifted, ends every search), and texts shorter than a
    /// block; found where the byte-at-a-time table finds it, by the blocks and by the words.
    #[test]
    fn blocks_find_the_stop_bytes_the_table_finds() {
        let naive = |b: &[u8], pos: usize| {
            (pos..b.len())
                .find(|&i| STOPS[usize::from(b[i])])
                .unwrap_or(b.len())
        };
        for len in 0..64 {
            for c in [b'"', b'\\', 0x00, 0x01, 0x1f, b' ', 0x7f, 0x80, 0xff, b'a'] {
                for at in 0..len {
                    let mut b = vec![b'x'; len];
                    b[at] = c;
                    for pos in 0..=len {
                        assert_eq!(next_stop(&b, pos), naive(&b, pos), "{b:?} from {pos}");
                        // The fallback without SSE2, at every length too.
                        assert_eq!(next_stop_words(&b, pos), naive(&b, pos), "{b:?} {pos}");
                    }
                    assert_eq!(has_stop(&b), naive(&b, 0) < len, "{b:?}");
                    assert_eq!(has_stop_words(&b), naive(&b, 0) < len, "{b:?}");
                }
            }
        }
    }

    /// Whole texts around the blocks: a string whose special byte or closing quote is at
    /// each offset 0..32 after padding of 0..17 bytes, and bodies ending right after a
    /// string, checked and minified exactly as serde_json accepts them.
    #[test]
    fn block_boundaries_minify_exactly_what_serde_json_accepts() {
        for pad in 0..18 {
            for len in 0..33 {
                for ins in ["", "\"", "\\", "\\n", "\\u00e9", "\n", "\u{1f}", "é", " "] {
                    for at in [0, len / 2, len] {
                        let s = format!("{}{ins}{}", "y".repeat(at), "z".repeat(len - at));
                        let spaces = " ".repeat(pad);
                        for text in [
                            format!("{spaces}\"{s}\""),
                            format!("[{spaces}\"{s}\"]"),
                            format!("{{\"{}\":\"{s}\"}}", "k".repeat(pad)),
                            format!("{{\"{}\" : \"{s}\"}}", "k".repeat(pad)),
                            format!("{spaces}\"{s}"),
                        ] {
                            assert_minifies_as_serde(text.as_bytes());
                            let mut out = Vec::new();
                            push_string(&mut out, s.as_bytes());
                            assert_eq!(out, serde_json::to_string(&s).unwrap().as_bytes());
                        }
                    }
                }
            }
        }
    }

    /// The memo of escaped strings gives what escaping gives: the same strings again, more
    /// of them than it keeps, strings that differ only past a prefix, and long ones.
    #[test]
    fn remembered_escapes_are_the_escapes() {
        let long = "\"x\"".repeat(MEMO_MAX_LEN);
        let mut texts: Vec<String> = (0..3 * MEMO_ENTRIES)
            .map(|i| format!("{{\"scope\":\"device\",\"n\":{i}}}"))
            .collect();
        texts.push(long);
        texts.push("a\nb".into());
        texts.push("a\nbc".into());
        for round in 0..3 {
            for t in texts.iter().chain(texts.iter().rev()) {
                let mut out = b"x".to_vec();
                push_string(&mut out, t.as_bytes());
                let want = format!("x{}", serde_json::to_string(t).unwrap());
                assert_eq!(String::from_utf8(out).unwrap(), want, "round {round}");
            }
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let long = "ab\"cdefghijklmnopq\\rstuvwxyz\u{1f}0123456789é€😀".repeat(3);
        for s in [
            "",
            "plain",
            "q\"b\\s/",
            "\u{0}\u{1f}\u{8}\u{c}\n\r\t\u{7f}",
            "Ünï€😀",
            "a\u{1}b",
            long.as_str(),
        ] {
            let mut out = Vec::new();
            push_string(&mut out, s.as_bytes());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
            for other in ["", "v", "a\"b", "x\u{1}"] {
                for (name, value) in [(s, other), (other, s)] {
                    // In a room of their own length, and followed by bytes to escape.
                    for tail in [&b""[..], b"\"\\\x01 padding to pass any block's end."] {
                        let room = |s: &str| [s.as_bytes(), tail].concat();
                        let (name_room, value_room) = (room(name), room(value));
                        let mut out = b"{".to_vec();
                        let (n, v) = (name.as_bytes(), value.as_bytes());
                        push_member_text(&mut out, n, &name_room, v, &value_room);
                        out.push(b'}');
                        let want = serde_json::json!({ name: value }).to_string();
                        assert_eq!(String::from_utf8(out).unwrap(), want);
                    }
                }
            }
        }
    }

    /// The strict strip against minifying: on JSON serde_json reads (with whitespace of every
    /// kind and length at every offset from a block's start, strings with spaces across
    /// block ends), it writes what `minify_into` writes; on a text with a backslash or a
    /// control byte inside a string it declines, leaving `out` as it was.
    #[test]
    fn strict_bodies_are_stripped_as_minifying_strips_them() {
        let docs = [
            "{\"a\": 1, \"b c\": [true, false, null], \"d\": {\"e\": \"f g h\"}}",
            "[1 , 2 ,\t3 ,\r\n\"x   y\" ]",
            "{\n    \"deviceId\": \"edge-gw-osak-02\",\n    \"ts\": \"2026-11-01 08:00\"\n}",
            "\"a string alone with spaces, \\u00e9 and é 😀 in it\"",
            "  {\"n\":-1.5e3}  ",
            "{}",
        ];
        let mut texts: Vec<String> = Vec::new();
        for doc in docs {
            for pad in 0..34 {
                texts.push(format!("{}{doc}", " ".repeat(pad)));
                texts.push(format!("{doc}{}", "\n".repeat(pad)));
                texts.push(format!(
                    "[{}{doc}]",
                    "\"a b\",".repeat(pad % 5) + &" ".repeat(pad)
                ));
            }
        }
        let mut taken = 0;
        for t in &texts {
            let t = t.as_bytes();
            assert!(serde_accepts(t), "{:?}", String::from_utf8_lossy(t));
            let mut out = b"x".to_vec();
            let took = push_stripped_strict(t, &mut out);
            if took {
                let mut want = b"x".to_vec();
                minify_into(t, &mut want);
                assert_eq!(out, want, "{:?}", String::from_utf8_lossy(t));
                taken += 1;
            } else {
                assert!(t.contains(&b'\\'), "{:?}", String::from_utf8_lossy(t));
                assert_eq!(out, b"x");
            }
        }
        assert!(taken > texts.len() / 2);
        for bad in [
            &b"{\"a\": \"x\ty\"}"[..],
            b"[\"\x01\"]",
            b"{\"a\": \"x\\\"y\"}",
            b"{\"a\":\x0c1}",
            b"[\"padding to pass a block's end: \n\"]",
        ] {
            let mut out = b"x".to_vec();
            assert!(!push_stripped_strict(bad, &mut out), "{bad:?}");
            assert_eq!(out, b"x");
        }
    }

    /// A key and a value assembled in one block are the key followed by `push_string`'s
    /// value and a comma; every plain value of up to 32 bytes with room is taken.
    #[test]
    fn keyed_values_are_the_key_and_the_value_string() {
        for key_len in [3, 16, 31, 32] {
            let key: Vec<u8> = (0..key_len).map(|i| b'k' + (i % 3) as u8).collect();
            let mut block = [0u8; KEY_BLOCK];
            block[..key_len].copy_from_slice(&key);
            for len in 0..70 {
                for special in [None, Some(b'"'), Some(0x1f)] {
                    let mut value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if let (Some(c), Some(last)) = (special, value.last_mut()) {
                        *last = c;
                    }
                    for tail in [0, 40, 70] {
                        let mut room = value.clone();
                        room.extend(std::iter::repeat_n(b'"', tail));
                        let mut got = b"x".to_vec();
                        let took = push_keyed_value(&mut got, &block, key_len, &value, &room);
                        let plain = special.is_none() || len == 0;
                        let block_len = match len {
                            0..=16 => 16,
                            17..=32 => 32,
                            _ => 64,
                        };
                        let fits = len <= 64 && room.len() >= block_len;
                        if !crate::bytes::BLOCKS {
                            assert!(!took);
                            continue;
                        }
                        assert_eq!(took, plain && fits, "{key_len} {len} {special:?} {tail}");
                        if took {
                            let mut want = b"x".to_vec();
                            want.extend_from_slice(&key);
                            push_string(&mut want, &value);
                            want.push(b',');
                            assert_eq!(got, want);
                        } else {
                            assert_eq!(got, b"x");
                        }
                    }
                }
            }
        }
    }

    /// Stripping a strict body: at every length up to a few blocks, with gaps at every
    /// offset (spaces, newlines, runs of them, none) and strings across the block edges, the
    /// text is what minifying writes after what `out` held, and nothing more.
    #[test]
    fn strict_bodies_of_every_length_are_stripped_exactly() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut checked = 0;
        for len in 0..100 {
            for _ in 0..40 {
                // Members of random spacing until the text reaches `len` bytes.
                let mut t = String::from("[");
                while t.len() + 2 < len {
                    let gap = [" ", "", "\n  ", "   ", "\t", "\r\n"][rand(6) as usize];
                    let item = match rand(4) {
                        0 => "\"a b  c\"".to_string(),
                        1 => (rand(100_000)).to_string(),
                        2 => "\"é, 😀\"".to_string(),
                        _ => "{\"k\": [1, 2]}".to_string(),
                    };
                    if t.len() > 1 {
                        t.push(',');
                    }
                    t.push_str(gap);
                    t.push_str(&item);
                }
                t.push_str(&" ".repeat(rand(3) as usize));
                t.push(']');
                let t = t.as_bytes();
                let prefix = &b"{\"Body\":"[..rand(9) as usize];
                let mut out = prefix.to_vec();
                assert!(
                    push_stripped_strict(t, &mut out),
                    "{:?}",
                    String::from_utf8_lossy(t)
                );
                let mut want = prefix.to_vec();
                minify_into(t, &mut want);
                assert_eq!(out, want, "{:?}", String::from_utf8_lossy(t));
                checked += 1;
            }
        }
        assert_eq!(checked, 4000);
    }

    /// Taking bytes out of a word keeps the others in order: every mask of a word.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn words_lose_exactly_their_flagged_bytes() {
        let w = u64::from_le_bytes(*b"abcdefgh");
        for gaps in 0..256u32 {
            let (got, kept) = compact_word(w, gaps);
            let want: Vec<u8> = (0..8)
                .filter(|k| gaps & (1 << k) == 0)
                .map(|k| b"abcdefgh"[k])
                .collect();
            assert_eq!(&got.to_le_bytes()[..kept], &want[..], "{gaps:08b}");
        }
    }

    /// A string tested and copied as a block of its room is written as `push_string` writes
    /// it: at every length around the blocks, with a byte to escape at every position (or
    /// none), followed by bytes to escape (which must be masked off) or by nothing.
    #[test]
    fn texts_in_their_room_are_pushed_as_strings_are() {
        for len in 0..70 {
            for stop in std::iter::once(None).chain((0..len).map(Some)) {
                for special in [b'"', b'\\', b'\n', 0x1f] {
                    let mut text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if let Some(at) = stop {
                        text[at] = special;
                    }
                    for tail in [0, 1, 15, 16, 40] {
                        let mut room = text.clone();
                        room.extend(std::iter::repeat_n(special, tail));
                        let mut got = b"x".to_vec();
                        push_text(&mut got, &text, &room);
                        let mut want = b"x".to_vec();
                        push_string(&mut want, &text);
                        assert_eq!(got, want, "{len} {stop:?} {special} {tail}");
                        // As a member's name and as its value, next to a short plain string.
                        for (name, name_room, value, value_room) in [
                            (
                                &text[..],
                                &room[..],
                                &b"v"[..],
                                &b"v and its room to spare"[..],
                            ),
                            (b"n", b"n and its room to spare", &text, &room),
                        ] {
                            let mut got = b"x".to_vec();
                            push_member_text(&mut got, name, name_room, value, value_room);
                            let mut want = b"x".to_vec();
                            push_string(&mut want, name);
                            want.push(b':');
                            push_string(&mut want, value);
                            assert_eq!(got, want, "{len} {stop:?} {special} {tail}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn minify_keeps_strings_and_drops_whitespace_between_tokens() {
        for (text, want) in [
            (
                &b"{ \"a b\" :\t[1 ,\r\n \"\\\" x\"] }"[..],
                &br#"{"a b":[1,"\" x"]}"#[..],
            ),
            (b"  [ \"\\\\\" , \"x  y\" ]  ", br#"["\\","x  y"]"#),
            (b"{\"a\":1}", b"{\"a\":1}"),
        ] {
            let mut out = Vec::new();
            minify_into(text, &mut out);
            assert_eq!(out, want);
            let mut checked = b"x".to_vec();
            assert!(push_minified_if_json(text, &mut checked));
            assert_eq!(&checked[1..], want);
        }
        for bad in [&b"{ \"a\" : 1 ,}"[..], b"[\"\xff\"]", b" "] {
            let mut out = b"x".to_vec();
            assert!(!push_minified_if_json(bad, &mut out));
            assert_eq!(out, b"x");
        }
        let deep = format!("{} 1{}", "[ ".repeat(300), "]".repeat(300));
        let mut out = Vec::new();
        assert!(push_minified_if_json(deep.as_bytes(), &mut out));
        assert_eq!(
            out,
            format!("{}1{}", "[".repeat(300), "]".repeat(300)).as_bytes()
        );
    }
}
