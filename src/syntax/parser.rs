//! The parser: precedence climbing over the reference grammar (Condition.g4), reproducing how
//! ANTLR's adaptive prediction behaves on it, because that behaviour is part of the language.
//!
//! The start rule has no end-of-input anchor, so ANTLR stops after the longest prefix that is a
//! complete expression (R05). Concretely:
//! * a binary operator (or a stray symbol such as `@` between expressions, the grammar's
//!   `expr syntax_error expr`) is committed to as soon as it is read: a missing or invalid
//!   right operand is a syntax error (`a = '1' AND`, `a = '1' @`, `a /* b` whose unclosed
//!   comment is `/` `*`); what is no operator ends the expression and is ignored trailing
//!   input (`a = '1' b` is `a = '1'`; `as_number(key2)-1 = 2` is `as_number(key2)` because
//!   `-1` is a literal);
//! * once an operand has begun, errors inside it are real syntax errors;
//! * a name directly followed by `(` is always a call;
//! * a parenthesised expression or call directly followed by an unmatched `)` is the grammar's
//!   "unmatched closing parenthesis" error alternative where ANTLR's prediction takes it
//!   (`Parser::extra_paren`, and the retry in [`parse_with_limits`] for inner ones); `(`
//!   without `)` is "missing closing parenthesis"; a lone unknown symbol is "invalid symbol".
//!   Those produce [`Invalid`] nodes, reported by the checker with the type errors, as the
//!   engine does.
//!
//! `scripts/antlr_diff.py` compares these decisions with the grammar run by ANTLR.

use super::ast::*;
use super::lexer::tokenize;
use super::token::{Token, TokenKind};
use crate::diagnostic::{codes, CompileError, Diagnostic};
use crate::span::Span;

/// Limits on what the parser accepts, so that adversarial input gets an error, not a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest condition, in bytes.
    pub max_length: usize,
    /// Deepest nesting of expressions (parentheses, operators, calls).
    pub max_depth: usize,
}

impl Default for Limits {
    /// 64 KiB and 128 levels: far beyond any real route condition, and far below the stack
    /// even of a debug build on a 2 MiB test thread (fuzzing measured 1.9 MiB for 255
    /// levels in debug, under 320 KiB in release).
    fn default() -> Self {
        Limits {
            max_length: 64 * 1024,
            max_depth: 128,
        }
    }
}

/// Parses a condition with the default [`Limits`].
pub fn parse(source: &str) -> Result<Ast, CompileError> {
    parse_with_limits(source, &Limits::default())
}

/// Parses a condition.
pub fn parse_with_limits(source: &str, limits: &Limits) -> Result<Ast, CompileError> {
    if source.len() > limits.max_length {
        return Err(CompileError(vec![Diagnostic::error(
            codes::TOO_LONG,
            Span::new(limits.max_length, source.len()),
            format!(
                "condition is {} bytes long; the limit is {}",
                source.len(),
                limits.max_length
            ),
        )]));
    }
    let tokens = tokenize(source);
    let parser = |tokens: &[Token], forced_extra: Option<usize>| Parser {
        source,
        tokens: tokens.to_vec(),
        pos: 0,
        nesting: 0,
        paren_depth: 0,
        max_depth: limits.max_depth,
        forced_extra,
        inner_extra: Vec::new(),
    };
    let mut first = parser(&tokens, None);
    let ast = first.condition().map_err(|d| CompileError(vec![d]))?;
    // ANTLR's prediction takes the "unmatched ')'" alternative for an inner parenthesised
    // expression or call directly followed by `)` when that reading gets further into the
    // input than the plain one, which stops early and leaves trailing input
    // (`f((a)) / 1, g(b))`, `f((a)), b) c`). Each such `)` is tried in turn (a bounded
    // number: this is a rare input, and invalid either way).
    let end = |ast: &Ast| ast.trailing.map_or(source.len(), |t| t.start as usize);
    if ast.trailing.is_some() {
        for &at in first.inner_extra.iter().take(MAX_EXTRA_TRIES) {
            let mut retry = parser(&tokens, Some(at));
            if let Ok(further) = retry.condition() {
                if end(&further) > end(&ast) {
                    return Ok(further);
                }
            }
        }
    }
    Ok(ast)
}

/// How many inner unmatched-')' readings a parse tries (see [`parse_with_limits`]).
const MAX_EXTRA_TRIES: usize = 16;

struct Parser<'s> {
    source: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    /// Current depth of the tree being built.
    nesting: usize,
    /// Number of open `(` (grouping or call) around the current position.
    paren_depth: usize,
    max_depth: usize,
    /// The token index of an inner `)` to read as the unmatched-')' alternative.
    forced_extra: Option<usize>,
    /// Token indexes of inner `)`s directly after a parenthesised expression or call, where
    /// that alternative could apply.
    inner_extra: Vec<usize>,
}

type PResult<T> = Result<T, Diagnostic>;

impl<'s> Parser<'s> {
    fn peek(&self) -> Token {
        self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn kind_at(&self, pos: usize) -> TokenKind {
        self.tokens[pos.min(self.tokens.len() - 1)].kind
    }

    fn bump(&mut self) -> Token {
        let t = self.peek();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn text(&self, span: Span) -> &'s str {
        &self.source[span.range()]
    }

    fn condition(&mut self) -> PResult<Ast> {
        if self.peek().kind == TokenKind::Eof {
            return Ok(Ast {
                root: None,
                trailing: None,
                complexity: 1,
            });
        }
        if !self.viable(self.pos) {
            return Err(self.unexpected(self.peek()));
        }
        let root = self.expr(0)?;
        let complexity = self.pos;
        let next = self.peek();
        let trailing = (next.kind != TokenKind::Eof)
            .then(|| Span::new(next.span.start as usize, self.source.len()));
        Ok(Ast {
            root: Some(root),
            trailing,
            complexity,
        })
    }

    /// Whether the tokens at `pos` begin a complete expression, i.e. whether ANTLR would
    /// commit to parsing an operand there rather than stop.
    fn viable(&self, mut pos: usize) -> bool {
        use TokenKind::*;
        loop {
            match self.kind_at(pos) {
                Minus | Not | LParen => pos += 1,
                LBrace => {
                    return self.kind_at(pos + 1) == SysProp && self.kind_at(pos + 2) == RBrace
                }
                String | UnterminatedString | Integer | Hex | Real | True | False | Null
                | Undefined | SysProp | Id | Unknown => return true,
                _ => return false,
            }
        }
    }

    fn unexpected(&self, t: Token) -> Diagnostic {
        let text = self.text(t.span);
        match t.kind {
            TokenKind::Eof => Diagnostic::error(codes::SYNTAX, t.span, "Syntax error: unexpected end of condition"),
            TokenKind::Reserved => Diagnostic::error(
                codes::RESERVED_WORD,
                t.span,
                format!("Syntax error: '{text}' is a reserved word"),
            )
            .with_note("SELECT, FROM, WHERE and INTO are reserved in any case; quote the property name with a different spelling or rename it"),
            TokenKind::QueryPath => Diagnostic::error(
                codes::BRACKET_NAME,
                t.span,
                format!("Syntax error: '{text}' is not a valid name"),
            )
            .with_note("'[' and ']' may appear only in $ properties such as $body.list[0]"),
            _ => Diagnostic::error(codes::SYNTAX, t.span, format!("Syntax error: unexpected '{text}'")),
        }
    }

    fn enter(&mut self, at: Span) -> PResult<()> {
        self.nesting += 1;
        if self.nesting > self.max_depth {
            return Err(Diagnostic::error(
                codes::TOO_DEEP,
                at,
                format!(
                    "condition is nested more than {} levels deep",
                    self.max_depth
                ),
            ));
        }
        Ok(())
    }

    /// expr with operators binding at least as tightly as `min_prec`.
    fn expr(&mut self, min_prec: u8) -> PResult<Expr> {
        let saved = self.nesting;
        self.enter(self.peek().span)?;
        let mut left = self.prefix()?;
        while let Some((op, prec)) = binary_op(self.peek().kind) {
            if prec < min_prec {
                break;
            }
            // ANTLR commits to the operator as soon as it reads it: a missing or invalid
            // right operand is a syntax error, not trailing input.
            let op_tok = self.bump();
            if !self.viable(self.pos) {
                return Err(self.unexpected(self.peek()));
            }
            self.enter(op_tok.span)?;
            let right = self.expr(prec + 1)?;
            let span = left.span.to(right.span);
            left = Expr {
                span,
                kind: match op {
                    Some(op) => ExprKind::Binary {
                        op,
                        op_span: op_tok.span,
                        left: Box::new(left),
                        right: Box::new(right),
                    },
                    None => ExprKind::Invalid(Invalid::Symbol {
                        symbol: op_tok.span,
                        text: self.text(op_tok.span).to_string(),
                        operands: vec![left, right],
                    }),
                },
            };
        }
        self.nesting = saved;
        Ok(left)
    }

    fn prefix(&mut self) -> PResult<Expr> {
        use TokenKind::*;
        let t = self.peek();
        match t.kind {
            Minus | Not => {
                self.bump();
                if !self.viable(self.pos) {
                    return Err(self.unexpected(self.peek()));
                }
                let operand = self.expr(PREFIX_PRECEDENCE)?;
                Ok(Expr {
                    span: t.span.to(operand.span),
                    kind: ExprKind::Unary {
                        op: if t.kind == Minus {
                            UnaryOp::Neg
                        } else {
                            UnaryOp::Not
                        },
                        op_span: t.span,
                        operand: Box::new(operand),
                    },
                })
            }
            Unknown => {
                self.bump();
                let mut operands = Vec::new();
                let mut span = t.span;
                if self.viable(self.pos) {
                    let operand = self.expr(0)?;
                    span = span.to(operand.span);
                    operands.push(operand);
                }
                Ok(Expr {
                    span,
                    kind: ExprKind::Invalid(Invalid::Symbol {
                        symbol: t.span,
                        text: self.text(t.span).to_string(),
                        operands,
                    }),
                })
            }
            LParen => self.group(),
            Id if self.kind_at(self.pos + 1) == LParen => self.call(),
            Id => {
                self.bump();
                Ok(self.leaf(t, ExprKind::Property(self.text(t.span).to_string())))
            }
            SysProp => {
                self.bump();
                Ok(self.leaf(t, ExprKind::SysProperty(self.text(t.span).to_string())))
            }
            LBrace => {
                self.bump();
                let prop = self.peek();
                if prop.kind != SysProp {
                    return Err(self.unexpected(prop));
                }
                self.bump();
                let close = self.peek();
                if close.kind != RBrace {
                    return Err(self.unexpected(close));
                }
                self.bump();
                Ok(Expr {
                    span: t.span.to(close.span),
                    kind: ExprKind::SysPropertyEscaped(self.text(prop.span).to_string()),
                })
            }
            String | UnterminatedString | Integer | Hex | Real | True | False | Null
            | Undefined => {
                self.bump();
                Ok(self.literal(t))
            }
            _ => Err(self.unexpected(t)),
        }
    }

    fn leaf(&self, t: Token, kind: ExprKind) -> Expr {
        Expr { kind, span: t.span }
    }

    fn literal(&self, t: Token) -> Expr {
        let text = self.text(t.span);
        let lit = match t.kind {
            TokenKind::True => Literal::Bool(true),
            TokenKind::False => Literal::Bool(false),
            TokenKind::Null => Literal::Null,
            TokenKind::Undefined => Literal::Undefined,
            TokenKind::Integer | TokenKind::Real => Literal::Number {
                // The literal forms (`-?[0-9]+`, `.5`, `1e3`, `-1.2E-3`) are a subset of what
                // Rust's correctly rounded parser accepts; overflow gives ±Infinity as .NET does.
                value: text.parse::<f64>().ok(),
                text: text.to_string(),
            },
            TokenKind::Hex => Literal::Number {
                value: parse_hex_literal(&text[2..]),
                text: text.to_string(),
            },
            TokenKind::String => Literal::String {
                value: unescape(&text[1..text.len() - 1]),
                text: text.to_string(),
            },
            _ => {
                return Expr {
                    span: t.span,
                    kind: ExprKind::Invalid(Invalid::UnterminatedString {
                        value: unescape(&text[1..]),
                        text: text.to_string(),
                    }),
                }
            }
        };
        Expr {
            span: t.span,
            kind: ExprKind::Literal(lit),
        }
    }

    /// `( expr )`, or the error alternatives around it.
    fn group(&mut self) -> PResult<Expr> {
        let open = self.bump();
        if !self.viable(self.pos) {
            return Err(self.unexpected(self.peek()));
        }
        self.paren_depth += 1;
        let inner = self.expr(0)?;
        self.paren_depth -= 1;
        let close = self.peek();
        if close.kind != TokenKind::RParen {
            return Ok(Expr {
                span: open.span.to(inner.span),
                kind: ExprKind::Invalid(Invalid::MissingParen {
                    inner: Box::new(inner),
                    paren: open.span,
                }),
            });
        }
        self.bump();
        // The node covers its parentheses, so that every node's span is a standalone
        // expression (explain re-evaluates sub-expressions from their text).
        let whole = open.span.to(close.span);
        let inner = Expr {
            span: whole,
            ..inner
        };
        Ok(self.extra_paren(inner, whole, false))
    }

    /// After a complete `( ... )` or call at the top level, a further `)` is the grammar's
    /// "unmatched closing parenthesis" alternative. For a call, ANTLR's prediction takes it
    /// only if the token after that `)` could follow an expression (an operator, a stray
    /// symbol, `)`, `,` or the end); otherwise the call ends the expression and the `)` starts
    /// the ignored rest (`f(x)) c` is `f(x)`; `f(x))` and `f(x)) = 1` are errors). A
    /// parenthesised expression always takes it: there the competing "missing ')'"
    /// alternative makes ANTLR decide with the full context.
    fn extra_paren(&mut self, inner: Expr, whole: Span, call: bool) -> Expr {
        let next = self.peek();
        let follows = |kind: TokenKind| {
            binary_op(kind).is_some()
                || matches!(kind, TokenKind::RParen | TokenKind::Comma | TokenKind::Eof)
        };
        let nested = self.paren_depth > 0 && next.kind == TokenKind::RParen;
        if nested {
            self.inner_extra.push(self.pos);
        }
        if (self.paren_depth == 0
            && next.kind == TokenKind::RParen
            && (!call || follows(self.kind_at(self.pos + 1))))
            || (nested && self.forced_extra == Some(self.pos))
        {
            self.bump();
            let inner = Expr {
                span: whole,
                ..inner
            };
            return Expr {
                span: whole.to(next.span),
                kind: ExprKind::Invalid(Invalid::ExtraParen {
                    inner: Box::new(inner),
                    paren: next.span,
                }),
            };
        }
        inner
    }

    fn call(&mut self) -> PResult<Expr> {
        let name = self.bump();
        self.bump(); // (
        let first_arg = self.pos;
        self.paren_depth += 1;
        let mut args = Vec::new();
        if self.peek().kind != TokenKind::RParen {
            loop {
                if !self.viable(self.pos) {
                    return Err(self.unexpected(self.peek()));
                }
                args.push(self.expr(0)?);
                match self.peek().kind {
                    TokenKind::Comma => {
                        self.bump();
                    }
                    TokenKind::RParen => break,
                    _ => {
                        let t = self.peek();
                        return Err(Diagnostic::error(
                            codes::SYNTAX,
                            t.span,
                            format!(
                                "Syntax error: expected ',' or ')' in the arguments of '{}'",
                                self.text(name.span)
                            ),
                        ));
                    }
                }
            }
        }
        let raw_args: String = self.tokens[first_arg..self.pos]
            .iter()
            .map(|t| self.text(t.span))
            .collect();
        let close = self.bump();
        self.paren_depth -= 1;
        let expr = Expr {
            span: name.span.to(close.span),
            kind: ExprKind::Call {
                name: self.text(name.span).to_string(),
                name_span: name.span,
                args,
                raw_args,
            },
        };
        let whole = expr.span;
        Ok(self.extra_paren(expr, whole, true))
    }
}

/// The binary operator a token stands for, with its precedence. An unknown symbol between two
/// expressions is the grammar's loosest "binary" error alternative (`None`).
fn binary_op(kind: TokenKind) -> Option<(Option<BinaryOp>, u8)> {
    use TokenKind as T;
    let op = match kind {
        T::Star => BinaryOp::Mul,
        T::Slash => BinaryOp::Div,
        T::Percent => BinaryOp::Mod,
        T::Plus => BinaryOp::Add,
        T::Minus => BinaryOp::Sub,
        T::Concat => BinaryOp::Concat,
        T::Lt => BinaryOp::Lt,
        T::Le => BinaryOp::Le,
        T::Gt => BinaryOp::Gt,
        T::Ge => BinaryOp::Ge,
        T::Eq => BinaryOp::Eq,
        T::NotEq => BinaryOp::Ne,
        T::LtGt => BinaryOp::LtGt,
        T::And => BinaryOp::And,
        T::Or => BinaryOp::Or,
        T::Coalesce => BinaryOp::Coalesce,
        T::Unknown => return Some((None, 0)),
        _ => return None,
    };
    Some((Some(op), op.precedence()))
}

/// A hex literal's digits as .NET `long.TryParse(HexNumber)` reads them: 64-bit two's
/// complement; more than 16 significant digits overflow, which the engine turns into the
/// undefined literal (R07).
fn parse_hex_literal(digits: &str) -> Option<f64> {
    let significant = digits.trim_start_matches('0');
    if significant.len() > 16 {
        return None;
    }
    if significant.is_empty() {
        return Some(0.0);
    }
    u64::from_str_radix(significant, 16)
        .ok()
        .map(|v| v as i64 as f64)
}

/// Unescapes a string literal's body as the engine does (R08): first every `\uXXXX` (also
/// `\UXXXX`) becomes its UTF-16 unit, then `\'`, `\"` and `\\` lose their backslash. The order
/// makes `'\\u0041'` read as `\A`. Unpaired surrogates become U+FFFD.
pub fn unescape(body: &str) -> String {
    if !body.contains('\\') {
        return body.to_string();
    }
    let units: Vec<u16> = body.encode_utf16().collect();
    let is_hex = |u: u16| u < 128 && (u as u8).is_ascii_hexdigit();
    let mut pass1 = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        if units[i] == b'\\' as u16
            && i + 6 <= units.len()
            && matches!(units[i + 1], 0x55 | 0x75)
            && units[i + 2..i + 6].iter().all(|&u| is_hex(u))
        {
            let hex: String = units[i + 2..i + 6]
                .iter()
                .map(|&u| u as u8 as char)
                .collect();
            pass1.push(u16::from_str_radix(&hex, 16).unwrap_or(0xFFFD));
            i += 6;
        } else {
            pass1.push(units[i]);
            i += 1;
        }
    }
    let mut pass2 = Vec::with_capacity(pass1.len());
    let mut i = 0;
    while i < pass1.len() {
        if pass1[i] == b'\\' as u16 && matches!(pass1.get(i + 1), Some(&(0x22 | 0x27 | 0x5C))) {
            pass2.push(pass1[i + 1]);
            i += 2;
        } else {
            pass2.push(pass1[i]);
            i += 1;
        }
    }
    String::from_utf16_lossy(&pass2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_quirk_and_escapes() {
        assert_eq!(
            unescape(r#"he said, \"Tch\u00FCss!\""#),
            "he said, \"Tchüss!\""
        );
        assert_eq!(unescape(r"\\u0041"), r"\A");
        assert_eq!(unescape(r"a\\b"), r"a\b");
        assert_eq!(unescape(r"\uD83D\uDE00"), "😀");
        assert_eq!(unescape(r"\uD83D"), "\u{FFFD}");
    }

    #[test]
    fn hex_literals() {
        assert_eq!(parse_hex_literal("FFFFFFFFFFFFFFFF"), Some(-1.0));
        assert_eq!(parse_hex_literal("DEADBEEF"), Some(3735928559.0));
        assert_eq!(parse_hex_literal("10000000000000000"), None);
        assert_eq!(parse_hex_literal("00000000000000000001"), Some(1.0));
    }

    fn root(q: &str) -> Expr {
        parse(q).unwrap().root.unwrap()
    }

    #[test]
    fn trailing_input_is_ignored() {
        let ast = parse("as_number(key2)-1 = 2").unwrap();
        assert!(matches!(ast.root.unwrap().kind, ExprKind::Call { .. }));
        assert!(ast.trailing.is_some());
        assert!(matches!(root("a = '1' b").kind, ExprKind::Binary { .. }));
        assert!(parse("a = '1' b").unwrap().trailing.is_some());
        // ANTLR commits to an operator once read: a missing right operand is an error.
        assert!(parse("3 =").is_err());
        assert!(parse("3 = (").is_err());
        assert!(parse("a = '1' AND").is_err());
        assert!(parse("a = '1' @").is_err());
        assert!(!parse("a = '1' @ b").unwrap().is_error_free());
        // An unclosed comment is '/' and '*'.
        assert!(parse("a /* b").is_err());
        assert!(parse("3 = f(").is_err());
        assert!(parse("").unwrap().root.is_none());
    }

    #[test]
    fn inner_extra_paren_when_it_reads_further() {
        for q in [
            "f((a)) / 1, g(b))",
            "f((a)), b) c",
            "((a)) + 1) c",
            "(f()) < g)",
        ] {
            assert!(!parse(q).unwrap().is_error_free(), "{q}");
        }
        for q in ["f((a)) , b", "((a)) b)", "((a)) , b)", "f(g(x)) = 1"] {
            let ast = parse(q).unwrap();
            assert!(ast.is_error_free(), "{q}");
        }
    }

    #[test]
    fn extra_paren_after_a_call_as_antlr_predicts_it() {
        for q in [
            "f(x))",
            "f(x)) = 1",
            "f(x)) ,",
            "f(x)) )",
            "f(x)) @ c",
            "(x)) c",
        ] {
            assert!(!parse(q).unwrap().is_error_free(), "{q}");
        }
        for q in ["f(x)) c", "a > f(x)) 'b'", "f(x)) NOT", "f(x)) ("] {
            let ast = parse(q).unwrap();
            assert!(ast.is_error_free() && ast.trailing.is_some(), "{q}");
        }
    }

    #[test]
    fn precedence() {
        let e = root("NOT a = b");
        let ExprKind::Binary { op, left, .. } = e.kind else {
            panic!()
        };
        assert_eq!(op, BinaryOp::Eq);
        assert!(matches!(
            left.kind,
            ExprKind::Unary {
                op: UnaryOp::Not,
                ..
            }
        ));
        let e = root("a ?? b = c");
        assert!(matches!(
            e.kind,
            ExprKind::Binary {
                op: BinaryOp::Coalesce,
                ..
            }
        ));
    }

    #[test]
    fn error_alternatives() {
        assert!(matches!(
            root("(a))").kind,
            ExprKind::Invalid(Invalid::ExtraParen { .. })
        ));
        assert!(matches!(
            root("(2 + 22 = 24").kind,
            ExprKind::Invalid(Invalid::MissingParen { .. })
        ));
        assert!(matches!(
            root("@").kind,
            ExprKind::Invalid(Invalid::Symbol { .. })
        ));
        assert!(parse("from = 'x'").is_err());
        assert!(parse("f(a b)").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let q = "(".repeat(100_000) + "1" + &")".repeat(100_000);
        let unlimited_length = Limits {
            max_length: usize::MAX,
            ..Limits::default()
        };
        let err = parse_with_limits(&q, &unlimited_length).unwrap_err();
        assert_eq!(err.first().code, codes::TOO_DEEP);
        assert_eq!(parse(&q).unwrap_err().first().code, codes::TOO_LONG);
        let q = vec!["a"; 50_000].join(" AND ");
        assert_eq!(
            parse_with_limits(&q, &unlimited_length)
                .unwrap_err()
                .first()
                .code,
            codes::TOO_DEEP
        );
        let q = "x".repeat(2 << 20);
        assert_eq!(parse(&q).unwrap_err().first().code, codes::TOO_LONG);
    }
}
