//! The engine's operator overloads on its run-time types, by *dynamic* type: what the C#
//! operators on `Null`, `Undefined`, `Bool`, `double` and `string` return for every pairing,
//! including pairings the checker never lets a condition reach (`null + 3` is 3 here, a type
//! error in a condition). The conformance corpus asserts this algebra directly (its
//! `operator` records), and it documents why the checker's rules are what they are.

use crate::value::Bool3;
use std::cmp::Ordering;

/// A value of one of the engine's run-time types.
#[derive(Clone, Debug, PartialEq)]
pub enum Dyn {
    /// `Null.Instance`.
    Null,
    /// `Undefined.Instance`.
    Undefined,
    /// A double (NaN is the undefined number).
    Number(f64),
    /// A string.
    String(String),
    /// A `Bool`.
    Bool(Bool3),
}

/// Applies operator `op` (`add sub mul div mod neg not lt gt le ge eq ne and or is_defined`)
/// to operands; `None` where the engine defines no such operator.
pub fn apply(op: &str, args: &[Dyn]) -> Option<Dyn> {
    use Dyn::*;
    match (op, args) {
        ("is_defined", [x]) => Some(Bool(Bool3::from_bool(match x {
            Undefined => false,
            Null | String(_) => true,
            Number(n) => !n.is_nan(),
            Bool(b) => *b != Bool3::Undefined,
        }))),
        ("not", [x]) => Some(Bool(match x {
            Null => Bool3::True,
            Undefined => Bool3::Undefined,
            Bool(b) => !*b,
            _ => return None,
        })),
        ("neg", [x]) => match x {
            Null => Some(Number(0.0)),
            Undefined => Some(Undefined),
            Number(n) => Some(Number(-n)),
            _ => None,
        },
        ("add" | "sub" | "mul" | "div" | "mod", [a, b]) => arith(op, a, b),
        ("lt" | "gt" | "le" | "ge" | "eq" | "ne", [a, b]) => compare(op, a, b).map(Bool),
        ("and" | "or", [a, b]) => logic(op == "and", a, b),
        _ => None,
    }
}

fn arith(op: &str, a: &Dyn, b: &Dyn) -> Option<Dyn> {
    use Dyn::*;
    let n = |x: f64| Some(Number(x));
    match (a, b) {
        (Undefined, Undefined | Number(_) | Bool(_) | String(_) | Null)
        | (Number(_) | Bool(_) | String(_) | Null, Undefined) => Some(Undefined),
        (Number(x), Number(y)) => n(match op {
            "add" => x + y,
            "sub" => x - y,
            "mul" => x * y,
            "div" => x / y,
            _ => x % y,
        }),
        (Null, Number(y)) => n(match op {
            "add" => *y,
            "sub" => -y,
            _ => 0.0,
        }),
        (Number(x), Null) => n(match op {
            "add" | "sub" => *x,
            "mul" => 0.0,
            "div" if *x >= 0.0 => f64::INFINITY,
            "div" => f64::NEG_INFINITY,
            _ => f64::NAN,
        }),
        (Null, Null) => n(match op {
            "div" | "mod" => f64::NAN,
            _ => 0.0,
        }),
        _ => None,
    }
}

fn compare(op: &str, a: &Dyn, b: &Dyn) -> Option<Bool3> {
    use Dyn::*;
    let holds = |ord: Ordering| {
        Bool3::from_bool(match op {
            "lt" => ord == Ordering::Less,
            "gt" => ord == Ordering::Greater,
            "le" => ord != Ordering::Greater,
            "ge" => ord != Ordering::Less,
            "eq" => ord == Ordering::Equal,
            _ => ord != Ordering::Equal,
        })
    };
    Some(match (a, b) {
        (Undefined, _) | (_, Undefined) => Bool3::Undefined,
        (Null, Null) => Bool3::from_bool(matches!(op, "eq" | "le" | "ge")),
        (Null, _) | (_, Null) => Bool3::Undefined,
        (Number(x), Number(y)) if x.is_nan() || y.is_nan() => Bool3::Undefined,
        (Number(x), Number(y)) => holds(crate::value::dotnet_double_cmp(*x, *y)),
        (String(x), String(y)) => holds(crate::dotnet::compare_ordinal(x, y)),
        (Bool(x), Bool(y)) if *x == Bool3::Undefined || *y == Bool3::Undefined => Bool3::Undefined,
        (Bool(x), Bool(y)) => holds(x.rank().cmp(&y.rank())),
        _ => return None,
    })
}

fn logic(is_and: bool, a: &Dyn, b: &Dyn) -> Option<Dyn> {
    use Dyn::*;
    Some(match (a, b) {
        (Null, Null) => Null,
        (Null, Bool(_)) | (Bool(_), Null) if is_and => Null,
        (Null, Bool(y)) => Bool(*y),
        (Bool(x), Null) => Bool(*x),
        (Bool(x), Bool(y)) => Bool(if is_and { x.and(*y) } else { x.or(*y) }),
        (Undefined, Undefined) => Bool(Bool3::Undefined),
        (Undefined, Bool(y)) | (Bool(y), Undefined) => Bool(if is_and {
            y.and(Bool3::Undefined)
        } else {
            y.or(Bool3::Undefined)
        }),
        (Undefined, Number(_) | String(_)) | (Number(_) | String(_), Undefined) => {
            Bool(Bool3::Undefined)
        }
        _ => return None,
    })
}
