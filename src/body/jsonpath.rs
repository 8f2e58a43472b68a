//! Compile-time validation of `$body.<path>` and `twin_change_includes(<path>)`
//! paths, answering exactly what the reference engine's ANTLR grammar
//! (`RC/query/jsonpath/JsonPath.g4`) answers.
//!
//! The grammar is `expr: innerExpr ('.' innerExpr)*; innerExpr: IDENTIFIER |
//! IDENTIFIER '[' INT ']'` with no EOF anchor, run by ANTLR with its default
//! error strategy. Three consequences the port keeps:
//!
//! * the lexer takes the longest match, ties going to the earlier rule, so
//!   `123` is INT but `123abc` and even a lone space are IDENTIFIERs;
//! * characters no lexer rule matches (`(`, `"`, `=`, ...) are reported only to
//!   the console and skipped, so they never make a path invalid;
//! * the parse stops after the first complete `innerExpr` that is not
//!   followed by `.`, so anything after it is ignored (`a[0]xyz` is valid).

use std::fmt;

/// Why a path is not accepted, with the byte offset of the offending token
/// (the path's length when the path ended too early).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPathError {
    /// What was expected and what was found.
    pub message: String,
    /// Byte offset into the path text.
    pub offset: usize,
}

impl fmt::Display for JsonPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for JsonPathError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dot,
    Open,
    Close,
    Int,
    Ident,
    Eof,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Dot => "'.'",
            Kind::Open => "'['",
            Kind::Close => "']'",
            Kind::Int => "an integer",
            Kind::Ident => "a name",
            Kind::Eof => "end of path",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
}

/// `fragment ID_CHARS: ~[()<>@,;:\\"/[\]?={}.\t\n\r]`.
fn is_ident_char(c: char) -> bool {
    !matches!(
        c,
        '(' | ')'
            | '<'
            | '>'
            | '@'
            | ','
            | ';'
            | ':'
            | '\\'
            | '"'
            | '/'
            | '['
            | ']'
            | '?'
            | '='
            | '{'
            | '}'
            | '.'
            | '\t'
            | '\n'
            | '\r'
    )
}

fn is_ws_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Byte length of the longest prefix of `s` whose chars satisfy `pred`.
fn run_len(s: &str, pred: impl Fn(char) -> bool) -> usize {
    s.char_indices()
        .find(|&(_, c)| !pred(c))
        .map_or(s.len(), |(i, _)| i)
}

/// The token stream the ANTLR lexer hands the parser: whitespace skipped,
/// unmatched characters dropped, always ending with `Eof`.
fn lex(path: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(c) = path[pos..].chars().next() {
        let rest = &path[pos..];
        let single = match c {
            '.' => Some(Kind::Dot),
            '[' => Some(Kind::Open),
            ']' => Some(Kind::Close),
            _ => None,
        };
        if let Some(kind) = single {
            tokens.push(Token { kind, start: pos });
            pos += 1;
            continue;
        }
        let int = run_len(rest, |c| c.is_ascii_digit());
        let ident = run_len(rest, is_ident_char);
        let ws = run_len(rest, is_ws_char);
        // Longest match; on a tie the rule declared first (INT, IDENTIFIER,
        // WS) wins.
        let best = int.max(ident).max(ws);
        if best == 0 {
            // Lexer error: ANTLR reports it and skips the character.
            pos += c.len_utf8();
        } else if int == best {
            tokens.push(Token {
                kind: Kind::Int,
                start: pos,
            });
            pos += best;
        } else if ident == best {
            tokens.push(Token {
                kind: Kind::Ident,
                start: pos,
            });
            pos += best;
        } else {
            pos += best;
        }
    }
    tokens.push(Token {
        kind: Kind::Eof,
        start: path.len(),
    });
    tokens
}

fn expect(tokens: &[Token], i: usize, kind: Kind) -> Result<(), JsonPathError> {
    let t = tokens[i.min(tokens.len() - 1)];
    if t.kind == kind {
        Ok(())
    } else {
        Err(JsonPathError {
            message: format!(
                "expected {} but found {}",
                kind.describe(),
                t.kind.describe()
            ),
            offset: t.start,
        })
    }
}

/// Validates a `$body.` path (the text after `$body.`) as the engine's
/// `JsonPathValidator.IsSupportedJsonPath` does.
///
/// Valid: `root`, `a.b[0]`, `123abc`, `a[0]xyz` (the rest is ignored).
/// Invalid: `` (empty), `a[`, `a..b`, `a.`, `a["x"]`, `a[]`, `a.0`.
pub fn validate_body_path(path: &str) -> Result<(), JsonPathError> {
    let tokens = lex(path);
    let mut i = 0;
    loop {
        // innerExpr: IDENTIFIER ('[' INT ']')?
        expect(&tokens, i, Kind::Ident)?;
        i += 1;
        if tokens[i].kind == Kind::Open {
            expect(&tokens, i + 1, Kind::Int)?;
            expect(&tokens, i + 2, Kind::Close)?;
            i += 3;
        }
        // ('.' innerExpr)*: any other token ends the parse.
        if tokens[i].kind != Kind::Dot {
            return Ok(());
        }
        i += 1;
    }
}

const TWIN_PREFIXES: [&str; 3] = ["properties.reported.", "properties.desired.", "tags."];

/// Validates the argument of `twin_change_includes(...)` as the engine's
/// `TwinChangeJsonPathValidator` does: a valid body path that starts with
/// `properties.reported.`, `properties.desired.` or `tags.` in any ASCII case
/// (so `properties.reported` alone is rejected).
pub fn validate_twin_change_path(path: &str) -> Result<(), JsonPathError> {
    validate_body_path(path)?;
    let ok = TWIN_PREFIXES.iter().any(|p| {
        path.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    });
    if ok {
        Ok(())
    } else {
        Err(JsonPathError {
            message: format!(
                "'{path}' is not supported. Supported prefixes: 'properties.reported.', \
                 'properties.desired.', 'tags.'"
            ),
            offset: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_body_paths() {
        for p in [
            "root",
            "ROOT",
            "ROOT.LEVEL1",
            "root.level1.level2.level3.level4",
            "root.level1[0]",
            "123abc",
            "message.Weather.HistoricalData[0].Temperature[1]",
        ] {
            assert_eq!(validate_body_path(p), Ok(()), "{p}");
        }
        for p in [
            "ROOT[",
            "root.level1..level2",
            "ROOT.LEVEL1.",
            "root.level1[\"test\"]",
            "root[10000].level1[1].level2[]",
            "",
            "a.0",
            "123",
            "[0]",
        ] {
            assert!(validate_body_path(p).is_err(), "{p}");
        }
    }

    #[test]
    fn lexer_quirks() {
        // A space is an identifier character; tab is whitespace.
        assert_eq!(validate_body_path("a b.c"), Ok(()));
        assert_eq!(validate_body_path("\ta"), Ok(()));
        // Unmatched characters are skipped: `a(.)b` lexes as `a . b`.
        assert_eq!(validate_body_path("a(.)b"), Ok(()));
        assert_eq!(validate_body_path("(a)"), Ok(()));
        // Trailing input after a complete innerExpr is ignored.
        assert_eq!(validate_body_path("a[0]xyz"), Ok(()));
        assert_eq!(validate_body_path("a]"), Ok(()));
        assert_eq!(validate_body_path("a[0][1]"), Ok(()));
        // `-1` is an identifier, not an INT.
        assert!(validate_body_path("a[-1]").is_err());
        assert!(validate_body_path("a[*]").is_err());
        assert!(validate_body_path("a['b']").is_err());
    }

    #[test]
    fn error_offsets() {
        let e = validate_body_path("ab.").unwrap_err();
        assert_eq!(e.offset, 3);
        let e = validate_body_path("ab[x]").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("integer"));
    }

    #[test]
    fn twin_change_paths() {
        for p in [
            "properties.reported.property1",
            "properties.desired.property1",
            "properties.reported.root.level1",
            "PROPERTIES.Reported.x",
            "tags.a",
        ] {
            assert_eq!(validate_twin_change_path(p), Ok(()), "{p}");
        }
        for p in [
            "properties",
            "properties.reported",
            "properties.reported.",
            "tag.a",
            "x.tags.a",
        ] {
            assert!(validate_twin_change_path(p).is_err(), "{p}");
        }
    }
}
