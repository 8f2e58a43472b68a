//! Body paths as Json.NET 13's `JPath` parses them for
//! `JObject.SelectTokens(path)`.
//!
//! The engine hands the text after `$body.` straight to `SelectTokens`, so a
//! path that passed compile-time validation can still carry trailing input
//! (`a[0]xyz`, which `JPath` rejects at run time) or forms the validator
//! never sees. Parsing never fails here: a path `JPath` would throw on is
//! kept as [`BodyPath`] with no steps and evaluates to `Selected::Error`.

use std::fmt;

/// One `JPath` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// `FieldFilter`: a property of an object; `None` is the `*` wildcard
    /// over all property values.
    Field(Option<Box<str>>),
    /// `FieldMultipleFilter`: `['a','b']`.
    Fields(Vec<Box<str>>),
    /// `ScanFilter`: `..name` (all descendants), `None` for `..*`.
    Scan(Option<Box<str>>),
    /// `ArrayIndexFilter`: `[n]`; `None` is `[*]` over all array elements.
    Index(Option<i32>),
    /// `ArrayMultipleIndexFilter`: `[1,2]`.
    Indexes(Vec<i32>),
}

/// A parsed `$body` path, ready to evaluate against any number of
/// documents.
#[derive(Clone, PartialEq, Eq)]
pub struct BodyPath {
    text: Box<str>,
    pub(crate) steps: Result<Vec<Step>, String>,
}

impl fmt::Debug for BodyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyPath")
            .field("text", &self.text)
            .field("steps", &self.steps)
            .finish()
    }
}

impl BodyPath {
    /// Parses `text` as `new JPath(text)` would. Never fails: where `JPath`
    /// throws, the path remembers why and evaluates to `Selected::Error`.
    pub fn parse(text: &str) -> BodyPath {
        let chars: Vec<char> = text.chars().collect();
        let mut p = Parser { s: &chars, i: 0 };
        BodyPath {
            text: text.into(),
            steps: p.main(),
        }
    }

    /// The path text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Why `JPath` rejects the path, if it does.
    pub fn error(&self) -> Option<&str> {
        self.steps.as_ref().err().map(String::as_str)
    }
}

impl fmt::Display for BodyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

type PResult<T> = Result<T, String>;

fn member(chars: &[char]) -> Option<Box<str>> {
    let m: String = chars.iter().collect();
    (m != "*").then(|| m.into_boxed_str())
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn eat_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.i += 1;
        }
    }

    fn ensure(&self, msg: &str) -> PResult<char> {
        self.peek().ok_or_else(|| msg.to_string())
    }

    /// `JPath.ParseMain`.
    fn main(&mut self) -> PResult<Vec<Step>> {
        let mut start = 0;
        self.eat_spaces();
        let mut steps = Vec::new();
        if self.i == self.s.len() {
            return Ok(steps);
        }
        if self.peek() == Some('$') {
            if self.s.len() == 1 {
                return Ok(steps);
            }
            if matches!(self.s.get(self.i + 1), Some('.' | '[')) {
                self.i += 1;
                start = self.i;
            }
        }
        if !self.path(&mut steps, start)? {
            let last = self.i;
            self.eat_spaces();
            if self.i < self.s.len() {
                return Err(format!(
                    "Unexpected character while parsing path: {}",
                    self.s[last]
                ));
            }
        }
        Ok(steps)
    }

    /// `JPath.ParsePath` (outside queries); returns whether the whole text
    /// was consumed.
    fn path(&mut self, steps: &mut Vec<Step>, mut start: usize) -> PResult<bool> {
        let mut scan = false;
        let mut following_indexer = false;
        let mut following_dot = false;
        while let Some(c) = self.peek() {
            match c {
                '[' | '(' => {
                    if self.i > start {
                        steps.push(field_step(member(&self.s[start..self.i]), scan));
                    }
                    steps.push(self.indexer(c, scan)?);
                    scan = false;
                    self.i += 1;
                    start = self.i;
                    following_indexer = true;
                    following_dot = false;
                }
                ']' | ')' | ' ' => break,
                '.' => {
                    if self.i > start {
                        steps.push(field_step(member(&self.s[start..self.i]), scan));
                        scan = false;
                    }
                    if self.s.get(self.i + 1) == Some(&'.') {
                        scan = true;
                        self.i += 1;
                    }
                    self.i += 1;
                    start = self.i;
                    following_indexer = false;
                    following_dot = true;
                }
                _ => {
                    if following_indexer {
                        return Err(format!("Unexpected character following indexer: {c}"));
                    }
                    self.i += 1;
                }
            }
        }
        let at_end = self.i == self.s.len();
        if self.i > start {
            let mut end = self.i;
            // String.TrimEnd() on the last member.
            while end > start && self.s[end - 1].is_whitespace() {
                end -= 1;
            }
            steps.push(field_step(member(&self.s[start..end]), scan));
        } else if following_dot && at_end {
            return Err("Unexpected end while parsing path.".to_string());
        }
        Ok(at_end)
    }

    /// `JPath.ParseIndexer`, with `self.i` on the opening bracket; leaves
    /// `self.i` on the closing one.
    fn indexer(&mut self, open: char, scan: bool) -> PResult<Step> {
        self.i += 1;
        let close = if open == '[' { ']' } else { ')' };
        self.ensure("Path ended with open indexer.")?;
        self.eat_spaces();
        match self.ensure("Path ended with open indexer.")? {
            '\'' => self.quoted_fields(close, scan),
            '?' => Err("Query filters ([?(...)]) are not supported in body paths.".to_string()),
            _ => self.array_indexer(close),
        }
    }

    /// `JPath.ParseArrayIndexer` without slices (`:` is rejected as
    /// unsupported).
    fn array_indexer(&mut self, close: char) -> PResult<Step> {
        let mut start = self.i;
        let mut end: Option<usize> = None;
        let mut indexes: Option<Vec<i32>> = None;
        while let Some(c) = self.peek() {
            if c == ' ' {
                end = Some(self.i);
                self.eat_spaces();
                continue;
            }
            if c == close {
                let len = end.unwrap_or(self.i) - start;
                if len == 0 {
                    return Err("Array index expected.".to_string());
                }
                let index = to_int32(&self.s[start..start + len])?;
                return Ok(match indexes {
                    Some(mut v) => {
                        v.push(index);
                        Step::Indexes(v)
                    }
                    None => Step::Index(Some(index)),
                });
            } else if c == ',' {
                let len = end.unwrap_or(self.i) - start;
                if len == 0 {
                    return Err("Array index expected.".to_string());
                }
                let index = to_int32(&self.s[start..start + len])?;
                indexes.get_or_insert_with(Vec::new).push(index);
                self.i += 1;
                self.eat_spaces();
                start = self.i;
                end = None;
            } else if c == '*' {
                self.i += 1;
                self.ensure("Path ended with open indexer.")?;
                self.eat_spaces();
                if self.peek() != Some(close) {
                    return Err(format!(
                        "Unexpected character while parsing path indexer: {c}"
                    ));
                }
                return Ok(Step::Index(None));
            } else if c == ':' {
                return Err("Array slices ([a:b]) are not supported in body paths.".to_string());
            } else if !is_dotnet_digit(c) && c != '-' {
                return Err(format!(
                    "Unexpected character while parsing path indexer: {c}"
                ));
            } else {
                if end.is_some() {
                    return Err(format!(
                        "Unexpected character while parsing path indexer: {c}"
                    ));
                }
                self.i += 1;
            }
        }
        Err("Path ended with open indexer.".to_string())
    }

    /// `JPath.ParseQuotedField`: `['a']` or `['a', 'b']`.
    fn quoted_fields(&mut self, close: char, scan: bool) -> PResult<Step> {
        let mut fields: Vec<Box<str>> = Vec::new();
        while self.i < self.s.len() {
            let field = self.quoted_string()?;
            self.eat_spaces();
            let c = self.ensure("Path ended with open indexer.")?;
            if c == close {
                if fields.is_empty() {
                    return Ok(field_step(Some(field), scan));
                }
                fields.push(field);
                if scan {
                    return Err("Scanning several quoted fields is not supported.".to_string());
                }
                return Ok(Step::Fields(fields));
            } else if c == ',' {
                self.i += 1;
                self.eat_spaces();
                fields.push(field);
            } else {
                return Err(format!(
                    "Unexpected character while parsing path indexer: {c}"
                ));
            }
        }
        Err("Path ended with open indexer.".to_string())
    }

    /// `JPath.ReadQuotedString`: `'...'` with `\'`, `\\` and the JSON
    /// escapes `\b \f \n \r \t \/ \"` (no `\u`).
    fn quoted_string(&mut self) -> PResult<Box<str>> {
        self.i += 1; // opening quote
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' && self.i + 1 < self.s.len() {
                self.i += 1;
                let e = self.s[self.i];
                let ch = match e {
                    'b' => '\u{8}',
                    't' => '\t',
                    'n' => '\n',
                    'f' => '\u{c}',
                    'r' => '\r',
                    '\\' | '"' | '\'' | '/' => e,
                    _ => return Err(format!("Unknown escape character: \\{e}")),
                };
                out.push(ch);
                self.i += 1;
            } else if c == '\'' {
                self.i += 1;
                return Ok(out.into_boxed_str());
            } else {
                out.push(c);
                self.i += 1;
            }
        }
        Err("Path ended with an open string.".to_string())
    }
}

fn field_step(name: Option<Box<str>>, scan: bool) -> Step {
    if scan {
        Step::Scan(name)
    } else {
        Step::Field(name)
    }
}

/// `char.IsDigit`: the ASCII digits plus other Unicode decimal digits, which
/// then fail `Convert.ToInt32`.
fn is_dotnet_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// `Convert.ToInt32(text, InvariantCulture)` on the indexer text.
fn to_int32(chars: &[char]) -> PResult<i32> {
    let text: String = chars.iter().collect();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Input string '{text}' was not in a correct format."
        ));
    }
    text.parse::<i32>()
        .map_err(|_| format!("Value '{text}' was either too large or too small for an Int32."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(p: &str) -> Vec<Step> {
        BodyPath::parse(p)
            .steps
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn f(name: &str) -> Step {
        Step::Field(Some(name.into()))
    }

    #[test]
    fn simple_paths() {
        assert_eq!(steps("a.b"), vec![f("a"), f("b")]);
        assert_eq!(
            steps("a[0][1].b"),
            vec![f("a"), Step::Index(Some(0)), Step::Index(Some(1)), f("b")]
        );
        assert_eq!(steps("a.*"), vec![f("a"), Step::Field(None)]);
        assert_eq!(steps("a[*]"), vec![f("a"), Step::Index(None)]);
        assert_eq!(steps("$.a"), vec![f("a")]);
        assert_eq!(steps("$a"), vec![f("$a")]);
        assert_eq!(steps(""), vec![]);
        assert_eq!(steps("a  "), vec![f("a")]);
        assert_eq!(steps("a..b"), vec![f("a"), Step::Scan(Some("b".into()))]);
        assert_eq!(steps("a['x y']"), vec![f("a"), f("x y")]);
        assert_eq!(
            steps("a['x','y']"),
            vec![f("a"), Step::Fields(vec!["x".into(), "y".into()])]
        );
        assert_eq!(steps("a[1,2]"), vec![f("a"), Step::Indexes(vec![1, 2])]);
        assert_eq!(steps("a(0)"), vec![f("a"), Step::Index(Some(0))]);
        assert_eq!(steps("a[-1]"), vec![f("a"), Step::Index(Some(-1))]);
    }

    #[test]
    fn rejected_paths() {
        for p in [
            "a[0]xyz",
            "a.",
            "a[",
            "a[]",
            "a[x]",
            "a]",
            "a b",
            "a[99999999999]",
            "a[1:2]",
            "a[?(@.b)]",
            "a['x",
        ] {
            assert!(BodyPath::parse(p).error().is_some(), "{p}");
        }
    }
}
