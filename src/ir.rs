//! The checked intermediate representation: span-free, every name resolved, every operator
//! specialised for its operands' static types, every implicit conversion explicit.
//!
//! `Ast ──check──▶ Ir ──compile──▶ Program`. The reference interpreter (`eval::interp`) walks
//! this tree directly; the compiled evaluator runs the flat `Program` made from it. Both share
//! the operator semantics in `eval::ops`, so they can only disagree on traversal, which the
//! differential tests check.

use crate::functions::Func;
/// The built-in path tests, beside [`Func`] in `functions`, which evaluates them.
pub use crate::functions::PathTest;
use crate::ty::Ty;

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`, `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl TwinSection {
    /// The section's path from the twin document's root, with a trailing dot.
    pub fn prefix(&self) -> &'static str {
        match self {
            TwinSection::Tags => "tags.",
            TwinSection::Desired => "properties.desired.",
            TwinSection::Reported => "properties.reported.",
        }
    }
}

impl CmpOp {
    /// Whether an ordering satisfies the operator.
    ///
    /// As a bit of a per-operator mask of the orderings it accepts (bit 0 `Less`, bit 1
    /// `Equal`, bit 2 `Greater`), which compiles to a table lookup: the jump over the six
    /// operators that a `match` on the pair compiled to was shared by every comparison of the
    /// compiled conditions, and mispredicted whenever the operator changed from one test to the
    /// next.
    #[inline]
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        let accepts: u8 = match self {
            CmpOp::Eq => 0b010,
            CmpOp::Ne => 0b101,
            CmpOp::Lt => 0b001,
            CmpOp::Le => 0b011,
            CmpOp::Gt => 0b100,
            CmpOp::Ge => 0b110,
        };
        // `ord` is -1, 0 or 1.
        (accepts >> (ord as i8 + 1)) & 1 != 0
    }
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%` (numbers only; the engine has no `%` for body values)
    Mod,
}

/// Where a `$twin.` reference reads from (IoT Hub only; the Edge engine has no `$twin`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TwinSection {
    /// `$twin.tags.…`
    Tags,
    /// `$twin.properties.desired.…`
    Desired,
    /// `$twin.properties.reported.…`
    Reported,
}

/// A checked expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Ir {
    /// A string constant.
    Str(String),
    /// A number constant (NaN: undefined).
    Num(f64),
    /// A bool constant (`None`: undefined bool).
    Bool(Option<bool>),
    /// The null constant.
    Null,
    /// The undefined constant.
    Undefined,
    /// Application property (bare name, R01). Type string.
    AppProp(String),
    /// System property (`{$x}`, R02). Type string.
    SysProp(String),
    /// `$x`: application property `$x`, else system property `x` (R01). Type string.
    AppOrSysProp {
        /// Application property name (with the `$`).
        app: String,
        /// System property name (without it).
        sys: String,
    },
    /// `$body.path` (R11): an application property named like the whole token overrides
    /// the body, read as a string body value. Type body.
    Body {
        /// The JSONPath after `$body.`.
        path: String,
        /// The token, when an application property of that name would override the body.
        app_override: Option<String>,
    },
    /// `$twin.<section>.path`: a value of the device twin (IoT Hub only). Type body.
    Twin {
        /// Which part of the twin.
        section: TwinSection,
        /// The path inside it.
        path: String,
    },
    /// A test of what a body path holds: `twin_change_includes(path)` (R24), or the hub
    /// dialect's `is_array` / `is_object` / `is_primitive` of `$body.path`, which need the JSON
    /// kind that a body value (undefined for arrays and objects) no longer has. Type bool.
    PathTest(PathTest, String),
    /// A value of static type `from` converted to a body value.
    ToBody(Box<Ir>, Ty),
    /// Unary minus on a number.
    Neg(Box<Ir>),
    /// `NOT` on an operand of the given type (bool, null or body).
    Not(Box<Ir>, Ty),
    /// Arithmetic on numbers (`Ty::Number`) or body values (`Ty::Body`).
    Arith(ArithOp, Box<Ir>, Box<Ir>, Ty),
    /// A comparison of two operands of the same static type (after conversion).
    Cmp(CmpOp, Box<Ir>, Box<Ir>, Ty),
    /// `AND`: operand types (each bool, null or undefined; or both body).
    And(Box<Ir>, Box<Ir>, Ty, Ty),
    /// `OR`: operand types as for `AND`.
    Or(Box<Ir>, Box<Ir>, Ty, Ty),
    /// `??`: left if defined, else right; both of the given type.
    Coalesce(Box<Ir>, Box<Ir>, Ty),
    /// A built-in function, overload resolved.
    Call(Func, Vec<Ir>),
}

#[cfg(test)]
mod tests {
    use super::CmpOp;
    use std::cmp::Ordering::{self, Equal, Greater, Less};

    /// The mask of each operator accepts exactly the orderings its definition names.
    #[test]
    fn holds_is_each_operators_definition() {
        let ops = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ];
        let defined = |op: CmpOp, ord: Ordering| match op {
            CmpOp::Eq => ord == Equal,
            CmpOp::Ne => ord != Equal,
            CmpOp::Lt => ord == Less,
            CmpOp::Le => ord != Greater,
            CmpOp::Gt => ord == Greater,
            CmpOp::Ge => ord != Less,
        };
        for op in ops {
            for ord in [Less, Equal, Greater] {
                assert_eq!(op.holds(ord), defined(op, ord), "{op:?} {ord:?}");
            }
        }
    }
}
