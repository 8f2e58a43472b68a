//! Tokens of the routing-condition language, as the reference lexer (GrammarLexer.g4) makes them.

use crate::span::Span;

/// What a token is. The order of the variants does not matter; the lexer's rule order does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `{` (only used by `{$x}`).
    LBrace,
    /// `}`.
    RBrace,
    /// `SELECT`, `FROM`, `WHERE`, `INTO` in any case: reserved, start no expression.
    Reserved,
    /// A complete string literal with its quotes.
    String,
    /// A string literal with no closing quote (or a bad escape): always an error.
    UnterminatedString,
    /// `-?[0-9]+`.
    Integer,
    /// `0x` followed by hex digits.
    Hex,
    /// `1.5`, `.5`, `1e3`, `-2.5E-3`.
    Real,
    /// `true` (lowercase only).
    True,
    /// `false` (lowercase only).
    False,
    /// `null` (lowercase only).
    Null,
    /// `undefined` (lowercase only).
    Undefined,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// `+`.
    Plus,
    /// `-`.
    Minus,
    /// `*`.
    Star,
    /// `/`.
    Slash,
    /// `%`.
    Percent,
    /// `AND` in any case.
    And,
    /// `OR` in any case.
    Or,
    /// `NOT` in any case.
    Not,
    /// `=`.
    Eq,
    /// `!=`.
    NotEq,
    /// `<>`.
    LtGt,
    /// `<=`.
    Le,
    /// `>=`.
    Ge,
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `||`.
    Concat,
    /// `??`.
    Coalesce,
    /// `$` followed by path characters: a system property or `$body.` query.
    SysProp,
    /// A bare name: an application property, or a function name before `(`.
    Id,
    /// A name containing `[` or `]` that is not a `$` property: the reference lexer makes a
    /// token no parser rule accepts, so it starts no expression.
    QueryPath,
    /// A character no rule matches (`@ ; : \ ?`).
    Unknown,
    /// End of input.
    Eof,
}

/// A token: its kind and where it is. The text is `&source[span]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Where it is.
    pub span: Span,
}
