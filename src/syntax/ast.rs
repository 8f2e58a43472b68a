//! The abstract syntax tree: faithful to the text, every node spanned.
//!
//! Parentheses are not nodes (the tree's shape records grouping); literals keep their source
//! text so that printing and re-parsing gives the same tree. Error alternatives of the reference
//! grammar (an unknown symbol, an unmatched parenthesis) are [`ExprKind::Invalid`] nodes: the
//! reference engine reports them while checking, alongside type errors, so the checker does too.

use crate::span::Span;

/// A parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Ast {
    /// The expression, or `None` for an empty (or whitespace-only) condition, which the
    /// reference engine evaluates to undefined.
    pub root: Option<Expr>,
    /// Input after the first complete expression, which the reference engine ignores (R05).
    pub trailing: Option<Span>,
    /// Number of parse-tree leaves, the reference engine's route complexity (R25).
    pub complexity: usize,
}

/// An expression node.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// The source text it covers.
    pub span: Span,
}

/// A literal, with the value the reference engine gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `true` or `false`.
    Bool(bool),
    /// A number literal (integer, real or hex) with its source text. `None` is a hex literal
    /// that overflows 64 bits, which the reference engine turns into the undefined literal (R07).
    Number {
        /// The value (±Infinity for decimal overflow).
        value: Option<f64>,
        /// The source text, kept for printing.
        text: String,
    },
    /// A string literal: the unescaped value and the source text with its quotes.
    String {
        /// The value after unescaping (R08).
        value: String,
        /// The source text.
        text: String,
    },
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `- x`.
    Neg,
    /// `NOT x`.
    Not,
}

/// Binary operators, from tightest to loosest binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `||`.
    Concat,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `<>` (same meaning as `!=`; kept apart so printing keeps the user's spelling).
    LtGt,
    /// `AND`.
    And,
    /// `OR`.
    Or,
    /// `??`.
    Coalesce,
}

impl BinaryOp {
    /// Binding strength: higher binds tighter (R09).
    pub fn precedence(self) -> u8 {
        use BinaryOp::*;
        match self {
            Mul | Div | Mod => 7,
            Add | Sub | Concat => 6,
            Lt | Le | Gt | Ge => 5,
            Eq | Ne | LtGt => 4,
            And => 3,
            Or => 2,
            Coalesce => 1,
        }
    }

    /// The operator's canonical spelling.
    pub fn as_str(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Mul => "*",
            Div => "/",
            Mod => "%",
            Add => "+",
            Sub => "-",
            Concat => "||",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            Eq => "=",
            Ne => "!=",
            LtGt => "<>",
            And => "AND",
            Or => "OR",
            Coalesce => "??",
        }
    }
}

/// Precedence of the prefix operators `-` and `NOT`, tighter than every binary operator.
pub const PREFIX_PRECEDENCE: u8 = 8;

/// Error alternatives of the reference grammar that still produce a tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Invalid {
    /// A character that is no token (`@`), alone or before or between expressions.
    Symbol {
        /// The symbol's span.
        symbol: Span,
        /// The symbol.
        text: String,
        /// Expressions around it, kept so that printing shows the whole input.
        operands: Vec<Expr>,
    },
    /// `(a))` or `f(a))`: a closing parenthesis after a complete parenthesised expression or call.
    ExtraParen {
        /// The inner expression with its parentheses.
        inner: Box<Expr>,
        /// The span of the extra `)`.
        paren: Span,
    },
    /// `(a` with no closing parenthesis.
    MissingParen {
        /// The expression after `(`.
        inner: Box<Expr>,
        /// The span of `(`.
        paren: Span,
    },
    /// `'abc` with no closing quote.
    UnterminatedString {
        /// The value read so far.
        value: String,
        /// The source text.
        text: String,
    },
}

/// What an expression is.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal.
    Literal(Literal),
    /// A bare name: an application property (R01).
    Property(String),
    /// `$name` (text includes the `$`): the application property `$name`, else the system
    /// property `name` (R01); or, with body queries enabled, `$body.path` (R11).
    SysProperty(String),
    /// `{$name}`: the system property only (R02).
    SysPropertyEscaped(String),
    /// A function call.
    Call {
        /// The name as written (function names are case-insensitive).
        name: String,
        /// The span of the name.
        name_span: Span,
        /// The arguments.
        args: Vec<Expr>,
        /// The text of the argument list without whitespace or comments, which is what
        /// `twin_change_includes` receives instead of a value (R24).
        raw_args: String,
    },
    /// A prefix operator.
    Unary {
        /// Which.
        op: UnaryOp,
        /// Where the operator is.
        op_span: Span,
        /// The operand.
        operand: Box<Expr>,
    },
    /// A binary operator.
    Binary {
        /// Which.
        op: BinaryOp,
        /// Where the operator is.
        op_span: Span,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// An error alternative (reported by the checker).
    Invalid(Invalid),
}

impl Ast {
    /// Whether the tree has no error alternative, i.e. whether the reference grammar accepts
    /// the text without a syntax error (type errors aside). The ANTLR differential check
    /// (`scripts/antlr_diff.py`) compares exactly this, and where parsing stopped.
    pub fn is_error_free(&self) -> bool {
        self.root.as_ref().is_none_or(Expr::is_error_free)
    }
}

impl Expr {
    /// Whether this subtree has no [`ExprKind::Invalid`] node.
    pub fn is_error_free(&self) -> bool {
        match &self.kind {
            ExprKind::Invalid(_) => false,
            ExprKind::Call { args, .. } => args.iter().all(Expr::is_error_free),
            ExprKind::Unary { operand, .. } => operand.is_error_free(),
            ExprKind::Binary { left, right, .. } => left.is_error_free() && right.is_error_free(),
            ExprKind::Literal(_)
            | ExprKind::Property(_)
            | ExprKind::SysProperty(_)
            | ExprKind::SysPropertyEscaped(_) => true,
        }
    }

    /// Binding strength of this node when printed: atoms bind tightest.
    pub fn precedence(&self) -> u8 {
        match &self.kind {
            ExprKind::Binary { op, .. } => op.precedence(),
            ExprKind::Unary { .. } => PREFIX_PRECEDENCE,
            ExprKind::Invalid(Invalid::Symbol { operands, .. }) if !operands.is_empty() => 0,
            _ => u8::MAX,
        }
    }
}
