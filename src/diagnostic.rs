//! Diagnostics as data: a stable code, a severity, a message, a primary span and notes.
//!
//! Rendering (source line and caret, JSON) is the CLI's job; the library only describes.
//! Codes are never reused. `E00xx` are syntax errors, `E01xx` type and name errors, `E02xx`
//! limits, `W0xxx` warnings about conditions the engine accepts but a user probably did not mean.

use crate::span::{LineCol, SourceMap, Span};
use std::fmt;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The condition does not compile (the reference engine throws `RouteCompilationException`).
    Error,
    /// The condition compiles, with the engine's result, but is probably not what was meant.
    Warning,
}

/// Stable diagnostic codes. Each constant's doc shows a condition that triggers it.
pub mod codes {
    /// `3 = )` at the start, `f(a b)`: the parser found no way to go on.
    pub const SYNTAX: &str = "E0001";
    /// `3 = @ 3`: a character that is no token (`@ ; : \ ?`).
    pub const INVALID_SYMBOL: &str = "E0002";
    /// `(a))`: a closing parenthesis with no opening one.
    pub const UNMATCHED_PAREN: &str = "E0003";
    /// `(2 + 22 = 24`: an opening parenthesis that is never closed.
    pub const MISSING_PAREN: &str = "E0004";
    /// `'abc`: a string with no closing quote, or with an escape other than `\' \" \\ \uXXXX`.
    pub const UNTERMINATED_STRING: &str = "E0005";
    /// `from = 'x'`: SELECT, FROM, WHERE and INTO are reserved in any case.
    pub const RESERVED_WORD: &str = "E0006";
    /// `key[0] = 1`: a name with `[` or `]` that is not a `$` property.
    pub const BRACKET_NAME: &str = "E0007";
    /// `3 + '4'`: operand types do not fit the operator (no implicit conversion, R10).
    pub const OPERAND_TYPES: &str = "E0101";
    /// `as_number(true)`: argument count or types fit no overload of the function.
    pub const ARGUMENTS: &str = "E0102";
    /// `nope(1)`: no such built-in function (or not enabled for this route, R24).
    pub const UNKNOWN_FUNCTION: &str = "E0103";
    /// `$body.a..b`: the `$body` path is not a supported JSONPath (R11).
    pub const BODY_PATH: &str = "E0104";
    /// `$body.n % 2`, `undefined AND null`: the reference engine crashes building this
    /// expression; hubroute reports it instead (R17, R26).
    pub const UNSUPPORTED_OPERATION: &str = "E0105";
    /// A condition longer than the configured maximum.
    pub const TOO_LONG: &str = "E0201";
    /// A condition nested deeper than the configured maximum.
    pub const TOO_DEEP: &str = "E0202";
    /// `true garbage`: input after a complete condition is ignored (R05).
    pub const TRAILING_INPUT: &str = "W0001";
    /// `undefined = undefined`, `3 % 0 > 1`: the comparison is undefined for every message.
    pub const ALWAYS_UNDEFINED: &str = "W0002";
    /// `null = null`: the comparison has the same result for every message.
    pub const CONSTANT_COMPARISON: &str = "W0003";
    /// `$body.x = 1` compiled without body queries: it reads system property `body.x` (R11).
    pub const BODY_QUERY_DISABLED: &str = "W0004";
    /// `3`, `'on'`: the condition's type can never route a message (R12).
    pub const NEVER_TRUE: &str = "W0005";
    /// `$Body.x` in a route whose messages may lack contentType/contentEncoding (router lint).
    pub const BODY_NEEDS_CONTENT_TYPE: &str = "W0006";
    /// Hub dialect: `$body` alone or `$body[n]`, which IoT Hub does not support (undefined).
    pub const WHOLE_BODY: &str = "W0007";
}

/// One problem found in a condition.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    /// Stable code, see [`codes`].
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// One plain line, no position (positions are in `span`).
    pub message: String,
    /// Where, in bytes of the condition text.
    #[serde(skip)]
    pub span: Span,
    /// Further explanation and hints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A consequence of an earlier error: an operator whose operand already failed (`=` in
    /// `3 + '4' = 7`). IoT Hub reports it too, so it is kept, but it is no problem of its own;
    /// renderers for people leave it out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub follows: bool,
}

impl Diagnostic {
    /// An error.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            notes: Vec::new(),
            follows: false,
        }
    }

    /// A warning.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Start and end as the reference engine reports them: 1-based, end column exclusive,
    /// columns in UTF-16 code units.
    pub fn range(&self, source: &SourceMap<'_>) -> (LineCol, LineCol) {
        let start = source.line_col(self.span.start as usize);
        let mut end = source.line_col(self.span.end as usize);
        if end.line != start.line {
            // The engine reports a token's range on its first line.
            let len = source.line_text(start.line).encode_utf16().count() as u32;
            end = LineCol {
                line: start.line,
                column: len + 2,
            };
        }
        (start, end)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}[{}]: {}", self.code, self.message)
    }
}

/// The diagnostics of a condition that failed to compile (at least one error), plus any
/// warnings found on the way.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", summary(.0))]
pub struct CompileError(pub Vec<Diagnostic>);

impl CompileError {
    /// The first error (there always is one).
    pub fn first(&self) -> &Diagnostic {
        self.0.iter().find(|d| d.is_error()).unwrap_or(&self.0[0])
    }

    /// All errors, in source order of discovery.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }
}

fn summary(diags: &[Diagnostic]) -> String {
    match diags.iter().find(|d| d.is_error()) {
        Some(d) => {
            let more = diags.iter().filter(|d| d.is_error()).count() - 1;
            if more == 0 {
                d.to_string()
            } else {
                format!("{d} (and {more} more)")
            }
        }
        None => "no errors".to_string(),
    }
}
