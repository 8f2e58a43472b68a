//! Json.NET 13 `JObject.Parse` leniency and strictness, without recursion.
//!
//! Accepted beyond RFC 8259, because Json.NET accepts it and the engine then
//! routes on it: `/* */` and `//` comments between tokens, single-quoted
//! strings, unquoted property names, `NaN`, `Infinity`, `-Infinity`,
//! `undefined`, hex (`0x1F`) and octal (`012`) integers, trailing commas,
//! empty array slots (`[1,,2]`), `new Name(...)` constructors. Rejected:
//! a top level that is not an object, nesting deeper than 64 (the reader's
//! default `MaxDepth`) and non-comment content after the object. Duplicate
//! property names keep the last value.

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use crate::bytes::Block;
use std::fmt;

use super::date::{check_date, DateCheck};
use super::doc::{JsonDoc, Kind, Node, Span};
use super::number::{is_number_char, is_plain_decimal, parse_number};

/// Json.NET's default `JsonReader.MaxDepth`.
pub const MAX_DEPTH: usize = 64;

/// Why a body is not a JSON object Json.NET would load, with the 1-based line
/// and column (in characters) of the offending input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// What went wrong.
    pub message: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (line {}, column {})",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for JsonError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
    Constructor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After `{` or `,` in an object: a property name or `}`.
    Key,
    /// After `:`: the property value.
    PropertyValue,
    /// After `[`, `(` or `,` in an array or constructor: a value or the end.
    Element,
    /// After a complete value: `,` or the end of the container.
    PostValue,
}

/// An open container.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    node: u32,
    container: Container,
    state: State,
    /// The builder does not want this container's contents
    /// ([`Build::wants_children`]): they are validated but not reported.
    quiet: bool,
    /// This container itself was reported (its parent is not quiet), so its
    /// end is too.
    pushed: bool,
}

/// The two string sources a [`Span`] can point into, for a [`Build`]er that
/// needs the text of a key or value.
pub(crate) struct Strs<'s> {
    /// The body text.
    pub text: &'s str,
    /// Unescaped strings.
    pub unescaped: &'s str,
}

impl<'s> Strs<'s> {
    /// The text of `span`.
    pub fn get(&self, span: Span) -> &'s str {
        let src = if span.unescaped {
            self.unescaped
        } else {
            self.text
        };
        src.get(span.start as usize..(span.start + span.len) as usize)
            .unwrap_or("")
    }
}

/// What the parser does with the values it reads. There is one parser (one
/// set of Json.NET leniencies and limits); a builder decides what to keep:
/// [`JsonDoc`] keeps every value in a node table, the route table's
/// extractor (`extract.rs`) keeps only the paths its routes read and
/// validates and skips the rest.
pub(crate) trait Build {
    /// Whether errors carry a message and position. The extractor only needs
    /// to know that the body is invalid (every value is then undefined), and
    /// must not allocate to say so.
    const MESSAGES: bool;

    /// A value in document order: a leaf, or a container being opened.
    /// `key` is its property name when the parent is an object. Returns a
    /// handle the parser passes back to [`Build::close`] for a container;
    /// `Err` when the document has too many values.
    fn push(&mut self, kind: Kind, key: Option<Span>, strs: &Strs<'_>) -> Result<u32, ()>;

    /// A number leaf whose literal `text` the parser has validated (see
    /// [`is_plain_decimal`]) but not converted: converting is most of the
    /// cost of a number, and a builder that drops the value need not pay it.
    fn push_number(&mut self, text: &str, key: Option<Span>, strs: &Strs<'_>) -> Result<u32, ()> {
        let v = parse_number(text).unwrap_or(f64::NAN);
        self.push(Kind::Number(v), key, strs)
    }

    /// Whether the builder wants the value of the property named `key` in
    /// the (reported) object being read. When it does not, the parser may
    /// validate and skip the value without reporting it, as it skips the
    /// contents of a container [`Build::wants_children`] declines: at a
    /// level the extractor records, most properties are ones no route reads,
    /// and going through [`Parser::skip_quiet`]'s strict loop spares them
    /// the general path's per-value work (dispatch, date detection, builder
    /// calls). The parser may also still report the value (when the skip
    /// loop hands it back, for a leniency or an error), so a builder must
    /// accept either.
    #[inline]
    fn wants_key(&mut self, key: Span, strs: &Strs<'_>) -> bool {
        let _ = (key, strs);
        true
    }

    /// Whether the builder wants the values inside the container it was just
    /// given. When it does not, the parser still validates them (and every
    /// container below) but reports none of them: the extractor skips most
    /// of a body this way.
    fn wants_children(&self) -> bool {
        true
    }

    /// The container opened as `handle` is complete.
    fn close(&mut self, handle: u32, strs: &Strs<'_>) -> Result<(), ()>;
}

/// Parser state. `unescaped` and `stack` are moved in and out so a caller
/// can reuse their allocations across documents.
pub(crate) struct Parser<'a, B> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    pub(crate) unescaped: String,
    pub(crate) stack: Vec<Frame>,
    pending_key: Option<Span>,
    pub(crate) builder: B,
}

/// A parse error: boxed, so that the `Result` every step returns stays two
/// words (a 40-byte error made each return go through memory), and absent
/// for a builder without [`Build::MESSAGES`], which must not allocate.
pub(crate) struct Failure(Option<Box<JsonError>>);

type R<T> = Result<T, Failure>;

/// `char.IsLetterOrDigit` for one UTF-16 unit: astral characters are
/// surrogate pairs, which are neither. Non-ASCII BMP characters use Rust's
/// alphanumeric test, an approximation of the letter and decimal-digit
/// categories.
fn is_letter_or_digit(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        (c as u32) <= 0xFFFF && c.is_alphanumeric()
    }
}

fn valid_identifier_char(c: char) -> bool {
    is_letter_or_digit(c) || c == '_' || c == '$'
}

/// Whitespace as the reader skips it: `char.IsWhiteSpace`, plus NUL, which
/// the reader steps over when it is not the end of its buffer.
fn is_ws(c: char) -> bool {
    c.is_whitespace() || c == '\0'
}

/// [`is_ws`] for ASCII bytes, as a table: whitespace is skipped before and
/// after every token, so this test runs more often than any other. (ASCII
/// `char::is_whitespace` is exactly tab, LF, VT, FF, CR and space.)
pub(super) static ASCII_WS: [bool; 128] = {
    let mut t = [false; 128];
    t[0] = true;
    let mut c = 0x09;
    while c <= 0x0D {
        t[c] = true;
        c += 1;
    }
    t[b' ' as usize] = true;
    t
};

/// Whether `c` ends a literal or number in [`Parser::skip_quiet`]: ASCII
/// whitespace (NUL included, as [`ASCII_WS`]), `,`, `}` or `]`. Each of these
/// is also a separator for the general parser (`at_separator`, `number`);
/// the other separators (`/`, `)`, Unicode whitespace, the end of input) send
/// the token back to the general parser instead.
#[inline(always)]
pub(super) fn strict_terminator(c: Option<&u8>) -> bool {
    match c {
        Some(&c) if c < 0x80 => ASCII_WS[c as usize] || matches!(c, b',' | b'}' | b']'),
        _ => false,
    }
}

/// The offset from `start` of the first `quote` or backslash in `b[start..]`: where a string
/// ends or its first escape is.
///
/// On x86_64 the bytes are compared 16 at a time (SSE2 through `safe_arch`'s safe functions):
/// most names and values end in the first block, so the loop's exit is nearly always taken at
/// once, where the word loop before it mispredicted its exit on each string (about half of the
/// scanner's and skipper's mispredictions). The last bytes of a text shorter than a block from
/// `start` are read as the text's last 16 bytes (the block overlaps what was already seen,
/// whose bits are shifted out), so no byte loop runs unless the whole text is shorter than 16.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn find_stop(b: &[u8], start: usize, quote: u8) -> Option<usize> {
    // One bit per byte, the first byte lowest; only the low 16 bits can be set.
    let stops = |block: &[u8; 16]| Block::load(block).eq_either(quote, b'\\');
    let mut i = start;
    while let Some(block) = b.get(i..).and_then(<[u8]>::first_chunk::<16>) {
        let mask = stops(block);
        if mask != 0 {
            return Some(i - start + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    let left = b.len().saturating_sub(i);
    match b.last_chunk::<16>() {
        // The last block ends at the text's end; its first `16 - left` bytes were read.
        Some(last) => {
            let mask = stops(last) >> (16 - left);
            (mask != 0).then(|| i - start + mask.trailing_zeros() as usize)
        }
        None => b
            .get(i..)?
            .iter()
            .position(|&c| c == quote || c == b'\\')
            .map(|j| i - start + j),
    }
}

/// [`find_stop`] where SSE2 is missing.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn find_stop(b: &[u8], start: usize, quote: u8) -> Option<usize> {
    find_stop_words(b, start, quote)
}

/// [`find_stop`] without SSE2: the bytes are tested eight at a time in a `u64` (a zero-byte
/// test on `word ^ needle`: its lowest set bit is always the first match, as a borrow only
/// spreads upwards). Compiled on x86_64 too for its tests, so both paths stay checked.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
#[inline(always)]
fn find_stop_words(b: &[u8], start: usize, quote: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let rest = b.get(start..)?;
    let quotes = LO * u64::from(quote);
    let slashes = LO * u64::from(b'\\');
    let mut i = 0;
    while let Some(chunk) = rest.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let q = word ^ quotes;
        let s = word ^ slashes;
        let hits = ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s)) & HI;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    rest[i..]
        .iter()
        .position(|&c| c == quote || c == b'\\')
        .map(|j| i + j)
}

/// Why the strict reading of a document stopped short of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Something the strict reading does not answer for: the general parser must read the
    /// document.
    Unsure,
    /// The text ends inside the document after nothing but strict JSON, which the general
    /// parser reads alike: the document is invalid, and reading it again cannot change
    /// that.
    Truncated,
}

/// The end of the double-quoted string at `b[start]` when it closes, escape-free, within the
/// 16 bytes after its opening quote: most names and values do. One block is compared, and
/// whether its first stop is a quote is read from the masks (the lowest set bit of quotes or
/// backslashes, tested against the quotes), with none of [`find_stop`]'s loop and bounds
/// bookkeeping or a second load of the stop byte: that was half of each string's cost.
/// `None`: the general loop of [`strict_string`] decides.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn short_string(b: &[u8], start: usize) -> Option<usize> {
    let v = Block::load(b.get(start + 1..)?.first_chunk::<16>()?);
    let (quotes, slashes) = (v.eq(b'"'), v.eq(b'\\'));
    let stops = quotes | slashes;
    let first = stops & stops.wrapping_neg();
    (first & quotes != 0).then(|| start + 2 + first.trailing_zeros() as usize)
}

/// [`short_string`] where SSE2 is missing: the general loop reads every string.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn short_string(_: &[u8], _: usize) -> Option<usize> {
    None
}

/// The end (one past the closing quote) of the double-quoted string whose
/// opening quote is at `b[start]`, and whether it has escapes;
/// [`Stop::Truncated`] when the text ends inside it, [`Stop::Unsure`] for an
/// escape that is not one `string` accepts (`\b \t \n \f \r \\ \" \' \/`,
/// `\u` and four hex digits), which the general parser must read. Surrogate
/// pairing changes only the unescaped text, never validity: the general
/// parser reads a pair as two such escapes.
#[inline(always)]
pub(super) fn strict_string(b: &[u8], start: usize) -> Result<(usize, bool), Stop> {
    if let Some(end) = short_string(b, start) {
        return Ok((end, false));
    }
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        let stop = find_stop(b, i, b'"').ok_or(Stop::Truncated)?;
        i += stop;
        if b[i] == b'"' {
            return Ok((i + 1, escaped));
        }
        escaped = true;
        match b.get(i + 1).ok_or(Stop::Truncated)? {
            b'b' | b't' | b'n' | b'f' | b'r' | b'\\' | b'"' | b'\'' | b'/' => i += 2,
            b'u' => {
                let digits = b.get(i + 2..i + 6).ok_or(Stop::Truncated)?;
                if !digits.iter().all(u8::is_ascii_hexdigit) {
                    return Err(Stop::Unsure);
                }
                i += 6;
            }
            _ => return Err(Stop::Unsure),
        }
    }
}

/// The end of the strict RFC 8259 number at `b[start]`
/// (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`), or `None`. Every such
/// literal passes [`is_plain_decimal`], so the general parser accepts it
/// whenever a [`strict_terminator`] follows; anything else (hex, octal,
/// `.5`, `5.`, `1e`, ...) is left to the general parser.
#[inline(always)]
pub(super) fn strict_number(b: &[u8], start: usize) -> Option<usize> {
    if let Some(end) = short_number(b, start) {
        return Some(end);
    }
    scalar_number(b, start)
}

/// The end of the strict number at `b[start]` when it has no exponent and ends within the
/// 16 bytes from `start`, as most numbers in a body do; `None` leaves it to
/// [`scalar_number`], which decides. The block's digits are found at once (a byte is a
/// digit when, less `'0'`, it is at most 9 unsigned), and the integer and fraction runs are
/// read from that one mask: the word loop before it loaded and tested each run on its own.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn short_number(b: &[u8], start: usize) -> Option<usize> {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, max_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i, sub_i8_m128i,
    };
    let block = b.get(start..)?.first_chunk::<16>()?;
    let v = load_unaligned_m128i(block);
    let nine = set_splat_i8_m128i(9);
    let offsets = sub_i8_m128i(v, set_splat_i8_m128i(b'0' as i8));
    let digits = move_mask_i8_m128i(cmp_eq_mask_i8_m128i(max_u8_m128i(offsets, nine), nine));
    // A set bit for each byte that is not a digit; bits 16 and up (past the block) too, so
    // that a run reaching the block's end is seen as ending there.
    let others = !(digits as u32);
    let mut i = usize::from(block[0] == b'-');
    match block[i] {
        b'0' => i += 1,
        b'1'..=b'9' => i += (others >> i).trailing_zeros() as usize,
        _ => return None,
    }
    if *block.get(i)? == b'.' {
        i += 1;
        let run = (others >> i).trailing_zeros() as usize;
        if run == 0 {
            return None;
        }
        i += run;
    }
    match block.get(i)? {
        b'e' | b'E' => None,
        _ => Some(start + i),
    }
}

/// [`short_number`] where SSE2 is missing: [`scalar_number`] reads every number.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn short_number(_: &[u8], _: usize) -> Option<usize> {
    None
}

/// [`strict_number`] a run of digits at a time.
#[inline(always)]
fn scalar_number(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + usize::from(b[start] == b'-');
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i += digit_run(b, i),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        match digit_run(b, i) {
            0 => return None,
            n => i += n,
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        match digit_run(b, i) {
            0 => return None,
            n => i += n,
        }
    }
    Some(i)
}

/// How many ASCII digits `b` has from `start` on. Eight bytes are tested at once as a word,
/// without a branch per digit: a loop over the digits of each number of a body mispredicted
/// its exit nearly every time. A byte is a digit when, XORed with `'0'`, its high nibble is
/// zero and its low nibble plus 6 stays below 16 (no carry crosses a byte).
#[inline(always)]
fn digit_run(b: &[u8], start: usize) -> usize {
    const NIBBLES_HI: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const NIBBLES_LO: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    let mut i = start;
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*chunk) ^ 0x3030_3030_3030_3030;
        let over_nine = ((x & NIBBLES_LO) + 0x0606_0606_0606_0606) & 0x1010_1010_1010_1010;
        let bad = (x & NIBBLES_HI) | over_nine;
        if bad != 0 {
            return i + (bad.trailing_zeros() / 8) as usize - start;
        }
        i += 8;
    }
    i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count() - start
}

/// Whether the strict string `src[start..end]` (quotes included; `escaped`
/// as [`strict_string`] says) may be skipped without a look at its value:
/// `value` rejects a string that Json.NET reads as a date but cannot
/// convert. That needs a Microsoft date (`/Date(...)/`) or an ISO date in
/// year 9999 (see `check_date`); with escapes, the unescaped text decides,
/// so any string that could start with `/` or a digit goes to the general
/// path.
#[inline(always)]
pub(super) fn skipped_string_ok(src: &str, start: usize, end: usize, escaped: bool) -> bool {
    let text = &src.as_bytes()[start + 1..end - 1];
    let suspect = match text.first() {
        Some(b'/') => escaped || check_date(&src[start + 1..end - 1]) == DateCheck::Throws,
        Some(b'\\') => true,
        Some(b'0'..=b'9') => escaped || text.starts_with(b"9999"),
        _ => false,
    };
    !suspect
}

/// What a string value with the (unescaped) text `text` becomes, as
/// `value` reads it: a string, or a date (R15); `Err` when Json.NET reads
/// it as a date it cannot convert, which fails the whole parse.
#[inline]
pub(super) fn string_kind(text: &str, span: Span) -> Result<Kind, ()> {
    let maybe_date = match text.as_bytes().first() {
        Some(b'/') => true,
        Some(d) => d.is_ascii_digit() && (19..=40).contains(&text.len()),
        None => false,
    };
    if !maybe_date {
        // `check_date` would say `NotDate` (its first tests).
        return Ok(Kind::Str(span));
    }
    match check_date(text) {
        DateCheck::NotDate => Ok(Kind::Str(span)),
        DateCheck::Date => Ok(Kind::Date),
        DateCheck::Throws => Err(()),
    }
}

/// A value [`strict_value`] read.
enum Strict {
    /// A string, number or literal, ending before this offset.
    Scalar(usize),
    /// The opening bracket of a container.
    Open(Container),
}

/// The strict-JSON value starting at `src[pos]` as [`Parser::skip_quiet`]
/// reads it: a scalar (and where it ends) or the opening bracket of a
/// container; `None` for anything the general parser must read (see
/// `skip_quiet`), including a string that might be a date that throws.
#[inline(always)]
fn strict_value(src: &str, pos: usize) -> Option<Strict> {
    let b = src.as_bytes();
    match *b.get(pos)? {
        b'{' => Some(Strict::Open(Container::Object)),
        b'[' => Some(Strict::Open(Container::Array)),
        b'"' => {
            let (end, escaped) = strict_string(b, pos).ok()?;
            skipped_string_ok(src, pos, end, escaped).then_some(Strict::Scalar(end))
        }
        c @ (b't' | b'f' | b'n') => {
            let word: &[u8] = match c {
                b't' => b"true",
                b'f' => b"false",
                _ => b"null",
            };
            let end = pos + word.len();
            if b[pos..].starts_with(word) && strict_terminator(b.get(end)) {
                Some(Strict::Scalar(end))
            } else {
                None
            }
        }
        b'-' | b'0'..=b'9' => {
            let end = strict_number(b, pos)?;
            if strict_terminator(b.get(end)) {
                Some(Strict::Scalar(end))
            } else {
                None
            }
        }
        _ => None,
    }
}

impl<'a, B: Build> Parser<'a, B> {
    /// A parser over `text` that reuses `unescaped` and `stack` (cleared).
    pub(crate) fn new(
        text: &'a str,
        mut unescaped: String,
        mut stack: Vec<Frame>,
        builder: B,
    ) -> Self {
        unescaped.clear();
        stack.clear();
        Parser {
            src: text,
            b: text.as_bytes(),
            pos: 0,
            unescaped,
            stack,
            pending_key: None,
            builder,
        }
    }

    /// Parses the whole text as `JObject.Parse` does.
    pub(crate) fn parse(&mut self) -> R<()> {
        if u32::try_from(self.src.len()).is_err() {
            return Err(self.error(format_args!("Body is too large.")));
        }
        self.run()
    }

    fn peek_char(&self) -> Option<char> {
        // ASCII fast path: most bodies are ASCII, and decoding a char from
        // the rest of the string is the parser's hottest operation.
        match self.b.get(self.pos) {
            Some(&c) if c.is_ascii() => Some(c as char),
            Some(_) => self.src[self.pos..].chars().next(),
            None => None,
        }
    }

    fn strs(&self) -> Strs<'_> {
        Strs {
            text: self.src,
            unescaped: &self.unescaped,
        }
    }

    /// An error at the current position; without messages (see
    /// [`Build::MESSAGES`]) nothing is formatted or allocated.
    #[cold]
    fn error(&self, message: fmt::Arguments<'_>) -> Failure {
        if !B::MESSAGES {
            return Failure(None);
        }
        let before = &self.src[..self.pos.min(self.src.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Failure(Some(Box::new(JsonError {
            message: message.to_string(),
            line: 1 + before.bytes().filter(|&b| b == b'\n').count(),
            column: 1 + before[line_start..].chars().count(),
        })))
    }

    #[cold]
    fn unexpected_end(&self) -> Failure {
        self.error(format_args!(
            "Unexpected end of content while loading JObject."
        ))
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        // Byte-level for ASCII (a table lookup, no char decoding); only a
        // non-ASCII byte decodes a char to test Unicode whitespace, out of line.
        while let Some(&c) = self.b.get(self.pos) {
            if c >= 0x80 {
                return self.skip_ws_unicode();
            }
            if !ASCII_WS[c as usize] {
                return;
            }
            self.pos += 1;
        }
    }

    #[cold]
    #[inline(never)]
    fn skip_ws_unicode(&mut self) {
        while let Some(c) = self.peek_char() {
            if !is_ws(c) {
                return;
            }
            self.pos += c.len_utf8();
        }
    }

    /// Skips whitespace and comments; comments are read and dropped, as
    /// `JObject.Load` does with the default `CommentHandling.Ignore`.
    #[inline]
    fn skip_ws_and_comments(&mut self) -> R<()> {
        loop {
            self.skip_ws();
            if self.b.get(self.pos) != Some(&b'/') {
                return Ok(());
            }
            self.comment()?;
        }
    }

    fn comment(&mut self) -> R<()> {
        self.pos += 1;
        match self.b.get(self.pos) {
            Some(b'*') => {
                let rest = &self.src[self.pos + 1..];
                match rest.find("*/") {
                    Some(i) => self.pos += 1 + i + 2,
                    None => {
                        self.pos = self.src.len();
                        return Err(
                            self.error(format_args!("Unexpected end while parsing comment."))
                        );
                    }
                }
            }
            Some(b'/') => {
                let rest = &self.src[self.pos + 1..];
                self.pos += 1 + rest.find(['\r', '\n']).unwrap_or(rest.len());
            }
            Some(_) => {
                let c = self.peek_char().unwrap_or('?');
                return Err(
                    self.error(format_args!("Error parsing comment. Expected: *, got {c}."))
                );
            }
            None => return Err(self.error(format_args!("Unexpected end while parsing comment."))),
        }
        Ok(())
    }

    /// `JsonTextReader.IsSeparator` after a literal (or the end of input).
    fn at_separator(&self) -> bool {
        let Some(c) = self.peek_char() else {
            return true;
        };
        match c {
            '}' | ']' | ',' | '\0' => true,
            '/' => matches!(self.b.get(self.pos + 1), Some(b'*' | b'/')),
            ')' => self.stack.last().map(|f| f.container) == Some(Container::Constructor),
            _ => c.is_whitespace(),
        }
    }

    fn literal(&mut self, word: &str, kind: Kind) -> R<Kind> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            if self.at_separator() {
                return Ok(kind);
            }
        }
        Err(self.error(format_args!("Error parsing {word} value.")))
    }

    /// Whether values at the current position go unreported.
    #[inline]
    fn quiet(&self) -> bool {
        self.stack.last().is_some_and(|f| f.quiet)
    }

    #[inline]
    fn push_node(&mut self, kind: Kind) -> R<u32> {
        let key = self.pending_key.take();
        if self.quiet() {
            return Ok(0);
        }
        let strs = Strs {
            text: self.src,
            unescaped: &self.unescaped,
        };
        match self.builder.push(kind, key, &strs) {
            Ok(handle) => Ok(handle),
            Err(()) => Err(self.error(format_args!("Document has too many values."))),
        }
    }

    fn open(&mut self, container: Container) -> R<()> {
        if self.stack.len() + 1 > MAX_DEPTH {
            return Err(self.error(format_args!(
                "The reader's MaxDepth of {MAX_DEPTH} has been exceeded."
            )));
        }
        let kind = match container {
            Container::Object => Kind::Object,
            Container::Array => Kind::Array,
            Container::Constructor => Kind::Constructor,
        };
        let parent_quiet = self.quiet();
        let node = self.push_node(kind)?;
        let quiet = parent_quiet || !self.builder.wants_children();
        let state = if container == Container::Object {
            State::Key
        } else {
            State::Element
        };
        self.stack.push(Frame {
            node,
            container,
            state,
            quiet,
            pushed: !parent_quiet,
        });
        Ok(())
    }

    fn close(&mut self) -> R<()> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        if !frame.pushed {
            return Ok(());
        }
        let strs = Strs {
            text: self.src,
            unescaped: &self.unescaped,
        };
        match self.builder.close(frame.node, &strs) {
            Ok(()) => Ok(()),
            Err(()) => Err(self.error(format_args!("Document has too many values."))),
        }
    }

    fn offset_u32(&self, n: usize) -> R<u32> {
        u32::try_from(n).map_err(|_| self.error(format_args!("Body is too large.")))
    }

    /// `ReadStringIntoBuffer`: the string after the opening quote at
    /// `self.pos`. Escape-free strings point into the body text.
    fn string(&mut self, quote: u8) -> R<Span> {
        self.pos += 1;
        let start = self.pos;
        let rest = &self.b[start..];
        let stop = find_stop(self.b, start, quote);
        match stop {
            Some(i) if rest[i] == quote => {
                self.pos = start + i + 1;
                return Ok(Span {
                    start: self.offset_u32(start)?,
                    len: self.offset_u32(i)?,
                    unescaped: false,
                });
            }
            Some(_) => {}
            None => {
                self.pos = self.src.len();
                return Err(self.error(format_args!(
                    "Unterminated string. Expected delimiter: {}.",
                    quote as char
                )));
            }
        }
        let out_start = self.unescaped.len();
        loop {
            let rest = &self.src[self.pos..];
            // Both needles are ASCII, so `i` is a char boundary.
            let Some(i) = memchr::memchr2(quote, b'\\', rest.as_bytes()) else {
                self.pos = self.src.len();
                return Err(self.error(format_args!(
                    "Unterminated string. Expected delimiter: {}.",
                    quote as char
                )));
            };
            self.unescaped.push_str(&rest[..i]);
            self.pos += i;
            if self.b[self.pos] == quote {
                self.pos += 1;
                break;
            }
            self.escape()?;
        }
        Ok(Span {
            start: self.offset_u32(out_start)?,
            len: self.offset_u32(self.unescaped.len() - out_start)?,
            unescaped: true,
        })
    }

    fn hex4(&mut self) -> R<u16> {
        let digits = self.src.get(self.pos..self.pos + 4).unwrap_or("");
        let v = if digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            u16::from_str_radix(digits, 16).ok()
        } else {
            None
        };
        match v {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(self.error(format_args!("Invalid Unicode escape sequence."))),
        }
    }

    /// One escape at `self.pos` (the backslash); surrogates are paired as
    /// Json.NET pairs them, anything unpaired becomes U+FFFD.
    fn escape(&mut self) -> R<()> {
        self.pos += 1;
        let Some(&e) = self.b.get(self.pos) else {
            return Err(self.error(format_args!("Unterminated string.")));
        };
        self.pos += 1;
        let c = match e {
            b'b' => '\u{8}',
            b't' => '\t',
            b'n' => '\n',
            b'f' => '\u{c}',
            b'r' => '\r',
            b'\\' | b'"' | b'\'' | b'/' => e as char,
            b'u' => {
                let mut unit = self.hex4()?;
                loop {
                    if (0xDC00..0xE000).contains(&unit) {
                        self.unescaped.push('\u{FFFD}');
                        return Ok(());
                    }
                    if !(0xD800..0xDC00).contains(&unit) {
                        self.unescaped
                            .push(char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}'));
                        return Ok(());
                    }
                    // A high surrogate: pair it with a following `\uXXXX`.
                    if !self.src[self.pos..].starts_with("\\u") {
                        self.unescaped.push('\u{FFFD}');
                        return Ok(());
                    }
                    self.pos += 2;
                    let next = self.hex4()?;
                    if (0xDC00..0xE000).contains(&next) {
                        let cp = 0x10000
                            + ((u32::from(unit) - 0xD800) << 10)
                            + (u32::from(next) - 0xDC00);
                        self.unescaped
                            .push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        return Ok(());
                    }
                    self.unescaped.push('\u{FFFD}');
                    unit = next;
                }
            }
            _ => {
                // Step back onto the escaped character, which may be
                // multi-byte, so the error position is a char boundary.
                self.pos -= 1;
                let c = self.peek_char().unwrap_or('?');
                return Err(self.error(format_args!("Bad JSON escape sequence: \\{c}.")));
            }
        };
        self.unescaped.push(c);
        Ok(())
    }

    /// `ParseUnquotedProperty`.
    fn unquoted_name(&mut self) -> R<Span> {
        let start = self.pos;
        while let Some(c) = self.peek_char() {
            if valid_identifier_char(c) {
                self.pos += c.len_utf8();
            } else if c.is_whitespace() || c == ':' || c == '\0' {
                break;
            } else {
                return Err(self.error(format_args!(
                    "Invalid JavaScript property identifier character: {c}."
                )));
            }
        }
        if self.pos == self.src.len() {
            return Err(self.error(format_args!(
                "Unexpected end while parsing unquoted property name."
            )));
        }
        Ok(Span {
            start: self.offset_u32(start)?,
            len: self.offset_u32(self.pos - start)?,
            unescaped: false,
        })
    }

    /// A property name and its `:`; returns whether the builder wants the
    /// value ([`Build::wants_key`]; always for a quiet container, whose
    /// values are never reported anyway).
    #[inline]
    fn property_name(&mut self) -> R<bool> {
        let Some(c) = self.peek_char() else {
            return Err(self.unexpected_end());
        };
        let key = match c {
            '"' | '\'' => self.string(c as u8)?,
            c if valid_identifier_char(c) => self.unquoted_name()?,
            c => {
                return Err(self.error(format_args!("Invalid property identifier character: {c}.")))
            }
        };
        self.skip_ws();
        if self.b.get(self.pos) != Some(&b':') {
            return Err(match self.peek_char() {
                Some(c) => self.error(format_args!(
                    "Invalid character after parsing property name. Expected ':' but got: {c}."
                )),
                None => self.error(format_args!(
                    "Invalid character after parsing property name. Expected ':' but got: end of input."
                )),
            });
        }
        self.pos += 1;
        self.pending_key = Some(key);
        if self.quiet() {
            return Ok(true);
        }
        let strs = Strs {
            text: self.src,
            unescaped: &self.unescaped,
        };
        Ok(self.builder.wants_key(key, &strs))
    }

    /// After the name of a property the builder does not want
    /// ([`Build::wants_key`]): reads its value with [`strict_value`]
    /// without reporting it (a container becomes a quiet frame, left to
    /// [`Parser::skip_quiet`]). Anything the strict reader declines is left
    /// at `self.pos` for the general path, which reports it as usual, so
    /// validity and every leniency stay the general parser's.
    #[inline]
    fn skip_unwanted_value(&mut self) {
        let b = self.b;
        let mut pos = self.pos;
        while let Some(&c) = b.get(pos) {
            if c >= 0x80 || !ASCII_WS[c as usize] {
                break;
            }
            pos += 1;
        }
        self.pos = pos;
        let depth = self.stack.len();
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        match strict_value(self.src, pos) {
            Some(Strict::Scalar(end)) => {
                top.state = State::PostValue;
                self.pos = end;
                self.pending_key = None;
            }
            Some(Strict::Open(container)) if depth < MAX_DEPTH => {
                top.state = State::PostValue;
                self.stack.push(Frame {
                    node: 0,
                    container,
                    state: if container == Container::Object {
                        State::Key
                    } else {
                        State::Element
                    },
                    quiet: true,
                    pushed: false,
                });
                self.pos = pos + 1;
                self.pending_key = None;
            }
            _ => {}
        }
    }

    /// A number literal. Its value is only computed when the builder
    /// records it ([`Build::push_number`]); validation is always complete,
    /// so an invalid literal anywhere still fails the parse.
    fn number(&mut self) -> R<()> {
        let start = self.pos;
        while self.b.get(self.pos).is_some_and(|&c| is_number_char(c)) {
            self.pos += 1;
        }
        match self.b.get(self.pos) {
            None => {}
            Some(&c)
                if c < 0x80
                    && !(ASCII_WS[c as usize] || matches!(c, b',' | b'}' | b']' | b')' | b'/')) =>
            {
                let c = c as char;
                return Err(self.error(format_args!(
                    "Unexpected character encountered while parsing number: {c}."
                )));
            }
            Some(&c) if c < 0x80 => {}
            Some(_) => {
                if let Some(c) = self.peek_char() {
                    if !is_ws(c) {
                        return Err(self.error(format_args!(
                            "Unexpected character encountered while parsing number: {c}."
                        )));
                    }
                }
            }
        }
        let text = &self.src[start..self.pos];
        let value = if is_plain_decimal(text) {
            None
        } else {
            match parse_number(text) {
                Some(v) => Some(v),
                None => {
                    return Err(
                        self.error(format_args!("Input string '{text}' is not a valid number."))
                    )
                }
            }
        };
        let key = self.pending_key.take();
        if self.quiet() {
            return Ok(());
        }
        let strs = Strs {
            text: self.src,
            unescaped: &self.unescaped,
        };
        let pushed = match value {
            Some(v) => self.builder.push(Kind::Number(v), key, &strs),
            None => self.builder.push_number(text, key, &strs),
        };
        match pushed {
            Ok(_) => Ok(()),
            Err(()) => Err(self.error(format_args!("Document has too many values."))),
        }
    }

    fn constructor(&mut self) -> R<()> {
        self.literal("new", Kind::Null)?;
        self.skip_ws();
        let start = self.pos;
        while let Some(c) = self.peek_char() {
            if is_letter_or_digit(c) {
                self.pos += c.len_utf8();
            } else if is_ws(c) || c == '(' {
                break;
            } else {
                return Err(self.error(format_args!(
                    "Unexpected character while parsing constructor: {c}."
                )));
            }
        }
        if self.pos == self.src.len() {
            return Err(self.error(format_args!("Unexpected end while parsing constructor.")));
        }
        if self.pos == start {
            return Err(self.error(format_args!("Empty constructor name.")));
        }
        self.skip_ws();
        if self.b.get(self.pos) != Some(&b'(') {
            return Err(self.error(format_args!(
                "Unexpected character while parsing constructor."
            )));
        }
        self.pos += 1;
        self.open(Container::Constructor)
    }

    /// Reads the strict-JSON tokens of quiet containers (whose values the
    /// builder does not want) in one tight loop, with none of the general
    /// path's per-value work (`value` dispatch, spans, builder calls, error
    /// plumbing). It runs the general parser's state machine on the same
    /// frames, so it can stop before any token and leave the rest to the
    /// general path: it returns, with `self.pos` at the start of that token
    /// (or on whitespace before it), at the first byte that needs more than
    /// strict JSON (a comment, single quote, unquoted name, `NaN`, hex or
    /// octal, `new`, `)`, an empty slot, non-ASCII whitespace, the end of
    /// input), at any error (which the general path then reports, or not),
    /// at a string value that might be a date that throws, at the 65th
    /// level, and at the close of a container the builder was told about.
    /// Validity, every leniency and `MaxDepth` are therefore exactly the
    /// general parser's; `run` calls this again after each general step.
    fn skip_quiet(&mut self) {
        let b = self.b;
        let mut pos = self.pos;
        loop {
            let depth = self.stack.len();
            let Some(top) = self.stack.last_mut() else {
                break;
            };
            if !top.quiet {
                break;
            }
            while let Some(&c) = b.get(pos) {
                if c >= 0x80 || !ASCII_WS[c as usize] {
                    break;
                }
                pos += 1;
            }
            let Some(&c) = b.get(pos) else { break };
            match top.state {
                State::Key => match c {
                    b'"' => {
                        let Ok((mut end, _)) = strict_string(b, pos) else {
                            break;
                        };
                        while b
                            .get(end)
                            .is_some_and(|&c| c < 0x80 && ASCII_WS[c as usize])
                        {
                            end += 1;
                        }
                        if b.get(end) != Some(&b':') {
                            break;
                        }
                        pos = end + 1;
                        top.state = State::PropertyValue;
                    }
                    // After `{` or a trailing comma, as `key_or_end`.
                    b'}' if !top.pushed => {
                        pos += 1;
                        self.stack.pop();
                    }
                    _ => break,
                },
                State::PostValue => match c {
                    b',' => {
                        pos += 1;
                        top.state = if top.container == Container::Object {
                            State::Key
                        } else {
                            State::Element
                        };
                    }
                    b'}' if top.container == Container::Object && !top.pushed => {
                        pos += 1;
                        self.stack.pop();
                    }
                    b']' if top.container == Container::Array && !top.pushed => {
                        pos += 1;
                        self.stack.pop();
                    }
                    _ => break,
                },
                State::PropertyValue | State::Element => {
                    // `]` right after `[` or a trailing comma, as `value`.
                    if c == b']' && top.container == Container::Array && !top.pushed {
                        pos += 1;
                        self.stack.pop();
                        continue;
                    }
                    match strict_value(self.src, pos) {
                        Some(Strict::Scalar(end)) => {
                            top.state = State::PostValue;
                            pos = end;
                        }
                        Some(Strict::Open(container)) => {
                            if depth >= MAX_DEPTH {
                                break;
                            }
                            top.state = State::PostValue;
                            let state = if container == Container::Object {
                                State::Key
                            } else {
                                State::Element
                            };
                            self.stack.push(Frame {
                                node: 0,
                                container,
                                state,
                                quiet: true,
                                pushed: false,
                            });
                            pos += 1;
                        }
                        None => break,
                    }
                }
            }
        }
        self.pos = pos;
    }

    /// `ParseValue` in a value position of the innermost container.
    #[inline]
    fn value(&mut self, container: Container) -> R<()> {
        self.skip_ws_and_comments()?;
        let Some(c) = self.peek_char() else {
            return Err(self.unexpected_end());
        };
        let closes = match c {
            ']' => Some(Container::Array),
            ')' => Some(Container::Constructor),
            '}' => Some(Container::Object),
            _ => None,
        };
        if let Some(closing) = closes {
            // `]` or `)` right after `[`, `(` or a trailing comma ends the
            // container; `}` is never a value.
            if closing == container && closing != Container::Object {
                self.pos += 1;
                return self.close();
            }
            return Err(self.error(format_args!(
                "Unexpected character encountered while parsing value: {c}."
            )));
        }
        if let Some(top) = self.stack.last_mut() {
            top.state = State::PostValue;
        }
        let kind = match c {
            '{' => {
                self.pos += 1;
                return self.open(Container::Object);
            }
            '[' => {
                self.pos += 1;
                return self.open(Container::Array);
            }
            // An empty slot (`[1,,2]`, `{"a":,}`): the comma stays for the
            // post-value state.
            ',' => Kind::Undefined,
            '"' | '\'' => {
                let span = self.string(c as u8)?;
                let strs = self.strs();
                let text = strs.get(span);
                match string_kind(text, span) {
                    Ok(kind) => kind,
                    Err(()) => {
                        return Err(self.error(format_args!(
                            "Could not convert string to DateTime: {text}."
                        )))
                    }
                }
            }
            't' => self.literal("true", Kind::Bool(true))?,
            'f' => self.literal("false", Kind::Bool(false))?,
            'n' if self.src[self.pos..].starts_with("ne") => return self.constructor(),
            'n' => self.literal("null", Kind::Null)?,
            'u' => self.literal("undefined", Kind::Undefined)?,
            'N' => self.literal("NaN", Kind::Number(f64::NAN))?,
            'I' => self.literal("Infinity", Kind::Number(f64::INFINITY))?,
            '-' if self.src[self.pos..].starts_with("-I") => {
                self.literal("-Infinity", Kind::Number(f64::NEG_INFINITY))?
            }
            '-' | '.' | '0'..='9' => return self.number(),
            _ => {
                return Err(self.error(format_args!(
                    "Unexpected character encountered while parsing value: {c}."
                )))
            }
        };
        self.push_node(kind)?;
        Ok(())
    }

    fn post_value(&mut self, container: Container) -> R<()> {
        self.skip_ws_and_comments()?;
        let Some(c) = self.peek_char() else {
            return Err(self.unexpected_end());
        };
        let closing = match c {
            '}' => Some(Container::Object),
            ']' => Some(Container::Array),
            ')' => Some(Container::Constructor),
            _ => None,
        };
        if let Some(closing) = closing {
            if closing != container {
                return Err(self.error(format_args!("Unexpected end token {c} in {container:?}.")));
            }
            self.pos += 1;
            return self.close();
        }
        if c == ',' {
            self.pos += 1;
            if let Some(top) = self.stack.last_mut() {
                top.state = if container == Container::Object {
                    State::Key
                } else {
                    State::Element
                };
            }
            return Ok(());
        }
        Err(self.error(format_args!(
            "After parsing a value an unexpected character was encountered: {c}."
        )))
    }

    fn key_or_end(&mut self) -> R<()> {
        self.skip_ws_and_comments()?;
        match self.peek_char() {
            None => Err(self.unexpected_end()),
            Some('}') => {
                self.pos += 1;
                self.close()
            }
            Some(_) => {
                let wanted = self.property_name()?;
                if let Some(top) = self.stack.last_mut() {
                    top.state = State::PropertyValue;
                }
                if !wanted {
                    self.skip_unwanted_value();
                }
                Ok(())
            }
        }
    }

    fn run(&mut self) -> R<()> {
        self.skip_ws_and_comments()?;
        match self.peek_char() {
            None => return Err(self.error(format_args!("Error reading JObject from JsonReader."))),
            Some('{') => {
                self.pos += 1;
                self.open(Container::Object)?;
            }
            Some(c) => {
                return Err(self.error(format_args!(
                    "Error reading JObject from JsonReader. Current JsonReader item is not an object: {c}"
                )))
            }
        }
        // The common cases of `key_or_end` and `post_value` are inlined here
        // (a quoted name; a comma or the matching close bracket); anything
        // else, including comments and every error, takes the full path.
        while let Some(&frame) = self.stack.last() {
            let frame = if frame.quiet {
                // Most of a body the extractor skips goes by here.
                self.skip_quiet();
                match self.stack.last() {
                    Some(&frame) => frame,
                    None => break,
                }
            } else {
                frame
            };
            match frame.state {
                State::Key => {
                    self.skip_ws();
                    if self.b.get(self.pos) == Some(&b'"') {
                        let wanted = self.property_name()?;
                        if let Some(top) = self.stack.last_mut() {
                            top.state = State::PropertyValue;
                        }
                        if !wanted {
                            self.skip_unwanted_value();
                        }
                    } else {
                        self.key_or_end()?;
                    }
                }
                State::PropertyValue | State::Element => self.value(frame.container)?,
                State::PostValue => {
                    self.skip_ws();
                    match (self.b.get(self.pos), frame.container) {
                        (Some(b','), container) => {
                            self.pos += 1;
                            if let Some(top) = self.stack.last_mut() {
                                top.state = if container == Container::Object {
                                    State::Key
                                } else {
                                    State::Element
                                };
                            }
                        }
                        (Some(b'}'), Container::Object) | (Some(b']'), Container::Array) => {
                            self.pos += 1;
                            self.close()?;
                        }
                        _ => self.post_value(frame.container)?,
                    }
                }
            }
        }
        self.skip_ws_and_comments()?;
        if let Some(c) = self.peek_char() {
            return Err(self.error(format_args!(
                "Additional text encountered after finished reading JSON content: {c}."
            )));
        }
        Ok(())
    }
}

/// Builds a [`JsonDoc`]'s node table: every value, in pre-order.
struct DocBuilder {
    nodes: Vec<Node>,
}

impl Build for DocBuilder {
    const MESSAGES: bool = true;

    fn push(&mut self, kind: Kind, key: Option<Span>, _: &Strs<'_>) -> Result<u32, ()> {
        let idx = u32::try_from(self.nodes.len()).map_err(|_| ())?;
        self.nodes.push(Node {
            kind,
            key,
            end: idx + 1,
            dead: false,
        });
        Ok(idx)
    }

    fn close(&mut self, node: u32, strs: &Strs<'_>) -> Result<(), ()> {
        let end = u32::try_from(self.nodes.len()).map_err(|_| ())?;
        self.nodes[node as usize].end = end;
        if self.nodes[node as usize].kind == Kind::Object {
            self.mark_duplicates(node, strs);
        }
        Ok(())
    }
}

impl DocBuilder {
    /// Last property of a name wins (`DuplicatePropertyNameHandling.Replace`):
    /// earlier ones are marked dead.
    fn mark_duplicates(&mut self, obj: u32, strs: &Strs<'_>) {
        let end = self.nodes[obj as usize].end;
        let mut children: Vec<(u32, Span)> = Vec::new();
        let mut c = obj + 1;
        while c < end {
            let n = &self.nodes[c as usize];
            if let Some(k) = n.key {
                children.push((c, k));
            }
            c = n.end;
        }
        let text = |s: Span| -> &str { strs.get(s) };
        let mut dead = Vec::new();
        if children.len() <= 16 {
            for (i, &(idx, k)) in children.iter().enumerate() {
                if children[i + 1..].iter().any(|&(_, k2)| text(k) == text(k2)) {
                    dead.push(idx);
                }
            }
        } else {
            let mut seen = std::collections::HashSet::new();
            for &(idx, k) in children.iter().rev() {
                if !seen.insert(text(k)) {
                    dead.push(idx);
                }
            }
        }
        for idx in dead {
            self.nodes[idx as usize].dead = true;
        }
    }
}

impl JsonDoc {
    /// Parses a body as Json.NET 13 `JObject.Parse(text)` does (see the
    /// module docs for what is accepted). Never recurses, so any nesting is
    /// safe; more than 64 levels is an error, as in Json.NET.
    pub fn parse(text: &str) -> Result<JsonDoc, JsonError> {
        let builder = DocBuilder { nodes: Vec::new() };
        let mut p = Parser::new(text, String::new(), Vec::new(), builder);
        if let Err(Failure(e)) = p.parse() {
            // `DocBuilder` has messages, so the error is always there.
            return Err(e.map_or_else(
                || JsonError {
                    message: String::new(),
                    line: 0,
                    column: 0,
                },
                |e| *e,
            ));
        }
        Ok(JsonDoc {
            text: text.into(),
            unescaped: p.unescaped,
            nodes: p.builder.nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{
        digit_run, find_stop, find_stop_words, scalar_number, strict_number, strict_string, Stop,
    };

    /// The word-at-a-time digit count agrees with counting byte by byte, for every byte value
    /// at every offset of a word and at the end of the input.
    #[test]
    fn digit_run_counts_like_a_byte_loop() {
        let naive = |b: &[u8], i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        for c in 0..=255u8 {
            for len in 0..20 {
                for at in 0..=len {
                    let mut b = vec![b'7'; len];
                    if at < len {
                        b[at] = c;
                    }
                    for start in 0..=len {
                        assert_eq!(digit_run(&b, start), naive(&b, start), "{b:?} {start}");
                    }
                }
            }
        }
    }

    /// The block-at-a-time scan finds exactly the first quote or backslash,
    /// at every offset, start and length (blocks and the overlapping last block
    /// included), next to bytes one bit away from either (high-bit bytes from
    /// UTF-8 text included).
    #[test]
    fn find_stop_is_the_first_match() {
        let fillers = [
            b'a',
            b'"' ^ 0x80,
            b'\\' ^ 0x80,
            b'"' + 1,
            b'\\' - 1,
            0,
            0xff,
            b'\'',
        ];
        for len in 0..80 {
            for filler in fillers {
                for at in 0..=len {
                    for needle in [b'"', b'\\', b'\''] {
                        let mut bytes = vec![filler; len];
                        if at < len {
                            bytes[at] = needle;
                            if at + 3 < len {
                                bytes[at + 3] = b'"';
                            }
                        }
                        for quote in [b'"', b'\''] {
                            // From every start: the blocks, and the last one overlapping
                            // what was read, fall at every offset of the match.
                            for start in 0..=len {
                                let want = bytes[start..]
                                    .iter()
                                    .position(|&c| c == quote || c == b'\\');
                                assert_eq!(
                                    find_stop(&bytes, start, quote),
                                    want,
                                    "{bytes:?} {start} {quote}"
                                );
                                assert_eq!(
                                    find_stop_words(&bytes, start, quote),
                                    want,
                                    "{bytes:?} {start} {quote}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// `strict_string` byte by byte, as the reference for the block reading.
    fn naive_strict_string(b: &[u8], start: usize) -> Result<(usize, bool), Stop> {
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match *b.get(i).ok_or(Stop::Truncated)? {
                b'"' => return Ok((i + 1, escaped)),
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1).ok_or(Stop::Truncated)? {
                        b'b' | b't' | b'n' | b'f' | b'r' | b'\\' | b'"' | b'\'' | b'/' => i += 2,
                        b'u' => {
                            let digits = b.get(i + 2..i + 6).ok_or(Stop::Truncated)?;
                            if !digits.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Stop::Unsure);
                            }
                            i += 6;
                        }
                        _ => return Err(Stop::Unsure),
                    }
                }
                _ => i += 1,
            }
        }
    }

    /// Strings whose closing quote, escapes or cut-off end fall at every offset of the first
    /// two blocks, and at every distance from the end of the text, read as byte by byte.
    #[test]
    fn strict_string_at_block_boundaries() {
        let specials: [&[u8]; 7] = [b"\"", b"\\n", b"\\\"", b"\\u00e9", b"\\x", b"\\", b"\\u12"];
        for prefix in 0..3 {
            for len in 0..40 {
                for special in specials {
                    for tail in [&b""[..], b"\"", b"abc\"", b"\",1]", b"xxxxxxxxxxxxxxxxxx\""] {
                        let mut text = vec![b' '; prefix];
                        text.push(b'"');
                        text.extend((0..len).map(|k| b"a\x7f\xc3\xa9\x00z"[k % 6]));
                        text.extend_from_slice(special);
                        text.extend_from_slice(tail);
                        for end in prefix + 1..=text.len() {
                            let t = &text[..end];
                            assert_eq!(
                                strict_string(t, prefix),
                                naive_strict_string(t, prefix),
                                "{:?}",
                                String::from_utf8_lossy(t)
                            );
                        }
                    }
                }
            }
        }
    }

    /// The block reading of numbers agrees with the scalar one on every string of up to five
    /// bytes of digits, signs, points and exponents, after runs of digits that carry it
    /// across the block's end, before a terminator, padding or the end of the text.
    #[test]
    fn strict_number_agrees_with_the_scalar_reading() {
        let alphabet = [b'0', b'1', b'9', b'-', b'.', b'e', b'+', b'x'];
        let mut cases = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = cases
                .iter()
                .filter(|c| c.len() == cases.last().map_or(0, Vec::len))
                .flat_map(|c| {
                    alphabet.iter().map(move |&a| {
                        let mut c = c.clone();
                        c.push(a);
                        c
                    })
                })
                .collect();
            cases.extend(longer);
        }
        for case in &cases {
            for pad in [0, 1, 8, 12, 14, 15, 16, 17] {
                for suffix in [&b""[..], b",", b"                "] {
                    let mut text = vec![b'5'; pad];
                    text.extend_from_slice(case);
                    text.extend_from_slice(suffix);
                    for start in [0, pad] {
                        if start < text.len() {
                            assert_eq!(
                                strict_number(&text, start),
                                scalar_number(&text, start),
                                "{:?} from {start}",
                                String::from_utf8_lossy(&text)
                            );
                        }
                    }
                }
            }
        }
    }
}
