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
                        write!(f, " {text} ")?;
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

fn operand_fmt(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens {
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
