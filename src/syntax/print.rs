//! Canonical printing: one space around binary operators, upper-case `AND`/`OR`/`NOT`,
//! parentheses only where precedence needs them, comments and ignored trailing input dropped.
//! Literals and names keep their source spelling, so parse → print → parse gives the same tree.

use super::ast::*;
use std::fmt::{self, Display, Write};

impl Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.root {
            Some(e) => e.fmt(f),
            None => Ok(()),
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(lit) => lit.fmt(f),
            ExprKind::Property(name) | ExprKind::SysProperty(name) => f.write_str(name),
            ExprKind::SysPropertyEscaped(name) => write!(f, "{{{name}}}"),
            ExprKind::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    arg.fmt(f)?;
                }
                f.write_char(')')
            }
            ExprKind::Unary { op, operand, .. } => {
                // `- x`, never `-x`: a minus glued to a name is part of the name (R04).
                f.write_str(match op {
                    UnaryOp::Neg => "- ",
                    UnaryOp::Not => "NOT ",
                })?;
                operand_fmt(f, operand, operand.precedence() < PREFIX_PRECEDENCE)
            }
            ExprKind::Binary {
                op, left, right, ..
            } => {
                let p = op.precedence();
                operand_fmt(f, left, left.precedence() < p)?;
                write!(f, " {} ", op.as_str())?;
                operand_fmt(f, right, right.precedence() <= p)
            }
            ExprKind::Invalid(invalid) => match invalid {
                Invalid::Symbol { operands, text, .. } => match operands.as_slice() {
                    [] => f.write_str(text),
                    [x] => write!(f, "{text} {x}"),
                    [l, r, ..] => {
                        operand_fmt(f, l, false)?;
                        // An unterminated string ends at a bad escape, so the symbol after it
                        // (always `\`) is printed right after it: a space there would become
                        // part of the string on reparse (found by fuzz target `parse`).
                        if !ends_unterminated(l) {
                            f.write_char(' ')?;
                        }
                        write!(f, "{text} ")?;
                        operand_fmt(f, r, r.precedence() == 0)
                    }
                },
                Invalid::ExtraParen { inner, .. } => write!(f, "({inner}))"),
                Invalid::MissingParen { inner, .. } => write!(f, "({inner}"),
                Invalid::UnterminatedString { text, .. } => f.write_str(text),
            },
        }
    }
}

/// Whether the last token `e` prints (unparenthesised, as the symbol's left operand is) is
/// an unterminated string.
fn ends_unterminated(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Invalid(Invalid::UnterminatedString { .. }) => true,
        ExprKind::Unary { operand, .. } => {
            operand.precedence() >= PREFIX_PRECEDENCE && ends_unterminated(operand)
        }
        ExprKind::Binary { op, right, .. } => {
            right.precedence() > op.precedence() && ends_unterminated(right)
        }
        ExprKind::Invalid(Invalid::Symbol { operands, .. }) => match operands.as_slice() {
            [x] => ends_unterminated(x),
            [_, r, ..] => r.precedence() != 0 && ends_unterminated(r),
            [] => false,
        },
        ExprKind::Invalid(Invalid::MissingParen { inner, .. }) => ends_unterminated(inner),
        _ => false,
    }
}

/// Whether `e` prints an unclosed `(` last (a missing-parenthesis error). Such an operand is
/// never wrapped in parentheses: the wrapper's `)` would close the inner `(` on reparse
/// (found by fuzz target `parse`). Nothing follows it in the source, so the parser rebuilds
/// the same tree without the wrapper.
fn ends_open(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Invalid(Invalid::MissingParen { .. }) => true,
        ExprKind::Unary { operand, .. } => ends_open(operand),
        ExprKind::Binary { right, .. } => ends_open(right),
        ExprKind::Invalid(Invalid::Symbol { operands, .. }) => {
            operands.last().is_some_and(ends_open)
        }
        _ => false,
    }
}

fn operand_fmt(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens && !ends_open(e) {
        write!(f, "({e})")
    } else {
        e.fmt(f)
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Number { text, .. } | Literal::String { text, .. } => f.write_str(text),
            Literal::Null => f.write_str("null"),
            Literal::Undefined => f.write_str("undefined"),
        }
    }
}
