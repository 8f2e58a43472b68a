//! Syntax: tokens, the parser and the span-carrying AST, with canonical printing.
//!
//! `text ──parse──▶ Ast`. The grammar is the reference engine's (R03–R09); see
//! `grammar/routing-query.ebnf` for the language as implemented.

pub mod ast;
pub mod lexer;
pub mod parser;
mod print;
pub mod token;

pub use ast::{Ast, BinaryOp, Expr, ExprKind, Invalid, Literal, UnaryOp};
pub use parser::{parse, parse_with_limits, unescape, Limits};
