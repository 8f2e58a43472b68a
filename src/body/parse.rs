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

use std::fmt;

use super::date::{check_date, DateCheck};
use super::doc::{JsonDoc, Kind, Node, Span};
use super::number::{is_number_char, parse_number};

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

type R<T> = Result<T, JsonError>;

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
    fn error(&self, message: fmt::Arguments<'_>) -> JsonError {
        if !B::MESSAGES {
            return JsonError {
                message: String::new(),
                line: 0,
                column: 0,
            };
        }
        let before = &self.src[..self.pos.min(self.src.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        JsonError {
            message: message.to_string(),
            line: 1 + before.bytes().filter(|&b| b == b'\n').count(),
            column: 1 + before[line_start..].chars().count(),
        }
    }

    fn unexpected_end(&self) -> JsonError {
        self.error(format_args!(
            "Unexpected end of content while loading JObject."
        ))
    }

    fn skip_ws(&mut self) {
        // ASCII fast path for the usual JSON whitespace.
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.pos) {
            self.pos += 1;
        }
        while let Some(c) = self.peek_char() {
            if !is_ws(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// Skips whitespace and comments; comments are read and dropped, as
    /// `JObject.Load` does with the default `CommentHandling.Ignore`.
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

    fn push_node(&mut self, kind: Kind) -> R<u32> {
        let key = self.pending_key.take();
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
        let node = self.push_node(kind)?;
        let state = if container == Container::Object {
            State::Key
        } else {
            State::Element
        };
        self.stack.push(Frame {
            node,
            container,
            state,
        });
        Ok(())
    }

    fn close(&mut self) -> R<()> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
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
        let stop = rest.iter().position(|&c| c == quote || c == b'\\');
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
            let Some(i) = rest.find([quote as char, '\\']) else {
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

    fn property_name(&mut self) -> R<()> {
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
        Ok(())
    }

    fn number(&mut self) -> R<Kind> {
        let start = self.pos;
        while self.b.get(self.pos).is_some_and(|&c| is_number_char(c)) {
            self.pos += 1;
        }
        if let Some(c) = self.peek_char() {
            if !(is_ws(c) || matches!(c, ',' | '}' | ']' | ')' | '/')) {
                return Err(self.error(format_args!(
                    "Unexpected character encountered while parsing number: {c}."
                )));
            }
        }
        let text = &self.src[start..self.pos];
        match parse_number(text) {
            Some(v) => Ok(Kind::Number(v)),
            None => Err(self.error(format_args!("Input string '{text}' is not a valid number."))),
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

    /// `ParseValue` in a value position of the innermost container.
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
                match check_date(text) {
                    DateCheck::NotDate => Kind::Str(span),
                    DateCheck::Date => Kind::Date,
                    DateCheck::Throws => {
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
            '-' | '.' | '0'..='9' => self.number()?,
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
                self.property_name()?;
                if let Some(top) = self.stack.last_mut() {
                    top.state = State::PropertyValue;
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
        while let Some(&frame) = self.stack.last() {
            match frame.state {
                State::Key => self.key_or_end()?,
                State::PropertyValue | State::Element => self.value(frame.container)?,
                State::PostValue => self.post_value(frame.container)?,
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
        p.parse()?;
        Ok(JsonDoc {
            text: text.into(),
            unescaped: p.unescaped,
            nodes: p.builder.nodes,
        })
    }
}
