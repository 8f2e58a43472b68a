//! The lexer: the reference grammar's lexer rules, run as ANTLR runs them — at each position
//! every rule is tried, the longest match wins, and a tie goes to the rule listed first.
//!
//! That rule is what makes the language surprising (R04): `-`, `+`, `*`, `.`, `!`, `|`, `&`,
//! digits and `$` are identifier characters, so `key2-1` and `a+b` are one identifier, while
//! `-1` is an integer (the integer rule comes first) and `||` is the concat operator.
//! Whitespace (space, tab, CR, LF) is skipped and `/* ... */` comments are dropped.

use super::token::{Token, TokenKind};
use crate::span::Span;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, digit1, one_of};
use nom::combinator::{opt, recognize};
use nom::sequence::{pair, preceded};
use nom::{IResult, Parser};

/// Characters that end an identifier (`ID_CHARS` excludes them, along with whitespace).
fn is_id_char(c: char) -> bool {
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
            | ' '
            | '\t'
            | '\n'
            | '\r'
    )
}

/// `QUERY_PATH_CHARS`: identifier characters plus `[` and `]`.
fn is_path_char(c: char) -> bool {
    is_id_char(c) || c == '[' || c == ']'
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

type Res<'a> = IResult<&'a str, &'a str>;

/// A keyword in any ASCII case (the grammar spells them `[Aa] [Nn] [Dd]`, ASCII only).
fn keyword<'a>(word: &'static str) -> impl Fn(&'a str) -> Res<'a> {
    move |i: &'a str| {
        let n = word.len();
        if i.len() >= n && i.as_bytes()[..n].eq_ignore_ascii_case(word.as_bytes()) {
            Ok((&i[n..], &i[..n]))
        } else {
            Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Tag,
            )))
        }
    }
}

/// STRING: a quoted string whose escapes are `\' \" \\ \uXXXX`.
fn string_lit(i: &str) -> Res<'_> {
    let quote = i.chars().next().filter(|&q| q == '\'' || q == '"');
    let Some(q) = quote else {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Char,
        )));
    };
    let body = string_body(&i[1..], q);
    if i[1 + body..].starts_with(q) {
        Ok((&i[2 + body..], &i[..2 + body]))
    } else {
        Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Char,
        )))
    }
}

/// UNTERMINATED_STRING: a quote and as much string body as is valid.
fn unterminated_lit(i: &str) -> Res<'_> {
    let Some(q) = i.chars().next().filter(|&q| q == '\'' || q == '"') else {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Char,
        )));
    };
    let body = string_body(&i[1..], q);
    Ok((&i[1 + body..], &i[..1 + body]))
}

/// Length of the longest valid string body (up to the closing quote or a bad escape).
fn string_body(s: &str, quote: char) -> usize {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b if b == quote as u8 => return i,
            b'\\' => match bytes.get(i + 1) {
                Some(b'\'' | b'"' | b'\\') => i += 2,
                Some(b'u')
                    if bytes.len() >= i + 6
                        && bytes[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) =>
                {
                    i += 6
                }
                _ => return i,
            },
            _ => i += 1,
        }
    }
    i
}

fn exponent(i: &str) -> Res<'_> {
    recognize((one_of("eE"), opt(one_of("+-")), digit1)).parse(i)
}

fn integer_lit(i: &str) -> Res<'_> {
    recognize(pair(opt(char('-')), digit1)).parse(i)
}

fn hex_lit(i: &str) -> Res<'_> {
    recognize((
        char('0'),
        one_of("xX"),
        take_while1(|c: char| c.is_ascii_hexdigit()),
    ))
    .parse(i)
}

fn real_lit(i: &str) -> Res<'_> {
    let digits = take_while(|c: char| c.is_ascii_digit());
    let with_point = recognize((
        opt(char('-')),
        take_while(|c: char| c.is_ascii_digit()),
        char('.'),
        digit1,
        opt(exponent),
    ));
    let exp_only = recognize((opt(char('-')), digits, exponent));
    with_point.or(exp_only).parse(i)
}

fn sys_prop(i: &str) -> Res<'_> {
    recognize(preceded(char('$'), take_while1(is_path_char))).parse(i)
}

fn comment(i: &str) -> Res<'_> {
    let (rest, _) = tag("/*")(i)?;
    match rest.find("*/") {
        Some(end) => Ok((&rest[end + 2..], &i[..end + 4])),
        None => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Tag,
        ))),
    }
}

/// Length of a match of `rule` at the start of `i`, if any.
fn matched<'a>(mut rule: impl FnMut(&'a str) -> Res<'a>, i: &'a str) -> usize {
    rule(i).map(|(_, m)| m.len()).unwrap_or(0)
}

/// Splits `source` into tokens (no whitespace or comments), ending with one `Eof`.
pub fn tokenize(source: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < source.len() {
        let rest = &source[pos..];
        let ws = rest.len() - rest.trim_start_matches(is_ws).len();
        if ws > 0 {
            pos += ws;
            continue;
        }
        let c = matched(comment, rest);
        if c > 0 {
            pos += c;
            continue;
        }
        let (kind, len) = longest_match(rest);
        tokens.push(Token {
            kind,
            span: Span::new(pos, pos + len),
        });
        pos += len;
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span::new(source.len(), source.len()),
    });
    tokens
}

/// Runs every rule at the start of `rest` (which is not whitespace or a comment) and picks
/// the longest match, the earlier rule on a tie.
fn longest_match(rest: &str) -> (TokenKind, usize) {
    use TokenKind::*;
    let first = rest.chars().next().map(char::len_utf8).unwrap_or(1);
    let single = |ch: char| matched(|i| recognize(char(ch)).parse(i), rest);
    let two = |t: &'static str| matched(|i| tag(t)(i), rest);
    // Rule order of the reference lexer: implicit literals first, then GrammarLexer.g4 order.
    let candidates: [(TokenKind, usize); 40] = [
        (LBrace, single('{')),
        (RBrace, single('}')),
        (Reserved, matched(keyword("select"), rest)),
        (Reserved, matched(keyword("from"), rest)),
        (Reserved, matched(keyword("where"), rest)),
        (Reserved, matched(keyword("into"), rest)),
        (String, matched(string_lit, rest)),
        (UnterminatedString, matched(unterminated_lit, rest)),
        (Integer, matched(integer_lit, rest)),
        (Hex, matched(hex_lit, rest)),
        (Real, matched(real_lit, rest)),
        (True, two("true")),
        (False, two("false")),
        (Null, two("null")),
        (Undefined, two("undefined")),
        (LParen, single('(')),
        (RParen, single(')')),
        (Comma, single(',')),
        (Plus, single('+')),
        (Minus, single('-')),
        (Star, single('*')),
        (Slash, single('/')),
        (Percent, single('%')),
        (And, matched(keyword("and"), rest)),
        (Or, matched(keyword("or"), rest)),
        (Not, matched(keyword("not"), rest)),
        (Eq, single('=')),
        (NotEq, two("!=")),
        (LtGt, two("<>")),
        (Le, two("<=")),
        (Ge, two(">=")),
        (Gt, single('>')),
        (Lt, single('<')),
        (Concat, two("||")),
        (Coalesce, two("??")),
        (SysProp, matched(sys_prop, rest)),
        (Id, matched(|i| take_while1(is_id_char)(i), rest)),
        (QueryPath, matched(|i| take_while1(is_path_char)(i), rest)),
        (Unknown, first),
        (Eof, 0),
    ];
    let mut best = (Unknown, first);
    let mut best_len = 0;
    for &(kind, len) in &candidates {
        if len > best_len {
            best = (kind, len);
            best_len = len;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind::*;

    fn kinds(s: &str) -> Vec<(TokenKind, &str)> {
        tokenize(s)
            .into_iter()
            .filter(|t| t.kind != Eof)
            .map(|t| (t.kind, &s[t.span.range()]))
            .collect()
    }

    #[test]
    fn identifier_characters_absorb_operators() {
        assert_eq!(kinds("key2-1"), vec![(Id, "key2-1")]);
        assert_eq!(kinds("a+b"), vec![(Id, "a+b")]);
        assert_eq!(kinds("-1"), vec![(Integer, "-1")]);
        assert_eq!(kinds("-undefined"), vec![(Id, "-undefined")]);
        assert_eq!(kinds("&&"), vec![(Id, "&&")]);
        assert_eq!(kinds("=="), vec![(Eq, "="), (Eq, "=")]);
        assert_eq!(kinds("||"), vec![(Concat, "||")]);
        assert_eq!(kinds("a!=b"), vec![(Id, "a!"), (Eq, "="), (Id, "b")]);
    }

    #[test]
    fn literals_and_keywords() {
        assert_eq!(kinds("5."), vec![(Id, "5.")]);
        assert_eq!(
            kinds(".5 1e3 0xFF"),
            vec![(Real, ".5"), (Real, "1e3"), (Hex, "0xFF")]
        );
        assert_eq!(kinds("TRUE true"), vec![(Id, "TRUE"), (True, "true")]);
        assert_eq!(
            kinds("aNd Or nOT From"),
            vec![(And, "aNd"), (Or, "Or"), (Not, "nOT"), (Reserved, "From")]
        );
        assert_eq!(
            kinds("'a\\'b' \"x"),
            vec![(String, "'a\\'b'"), (UnterminatedString, "\"x")]
        );
        assert_eq!(
            kinds("'a\\x'"),
            vec![(UnterminatedString, "'a"), (Unknown, "\\"), (Id, "x'")]
        );
    }

    #[test]
    fn properties_paths_and_unknowns() {
        assert_eq!(kinds("$body.a[0]"), vec![(SysProp, "$body.a[0]")]);
        assert_eq!(kinds("$ sys1"), vec![(Id, "$"), (Id, "sys1")]);
        assert_eq!(kinds("a[0]"), vec![(QueryPath, "a[0]")]);
        assert_eq!(
            kinds("@;:?"),
            vec![
                (Unknown, "@"),
                (Unknown, ";"),
                (Unknown, ":"),
                (Unknown, "?")
            ]
        );
        assert_eq!(kinds("a /* c */ b"), vec![(Id, "a"), (Id, "b")]);
        assert_eq!(
            kinds("a /* c"),
            vec![(Id, "a"), (Slash, "/"), (Star, "*"), (Id, "c")]
        );
        assert_eq!(
            kinds("{$x}"),
            vec![(LBrace, "{"), (SysProp, "$x"), (RBrace, "}")]
        );
    }
}
