//! Operator semantics on runtime values, shared by the reference interpreter and the compiled
//! evaluator. Each function is told the operands' static types by the checker, and follows
//! the engine's operator for exactly those types (`Bool.cs`, `Null.cs`, `Undefined.cs`,
//! `ComparisonOperators.cs`, `QueryValue.cs`).

use crate::bytes::bytes_eq;
use crate::ir::{ArithOp, CmpOp};
use crate::ty::Ty;
use crate::value::{dotnet_double_cmp, Bool3, Value};

/// Whether two strings are equal, compared in place ([`bytes_eq`]).
#[inline(always)]
pub(crate) fn str_eq(a: &str, b: &str) -> bool {
    bytes_eq(a.as_bytes(), b.as_bytes())
}

/// `s.starts_with(prefix)`, comparing as [`str_eq`] does.
#[inline(always)]
pub(crate) fn starts_with(s: &str, prefix: &str) -> bool {
    let (s, prefix) = (s.as_bytes(), prefix.as_bytes());
    s.get(..prefix.len())
        .is_some_and(|head| bytes_eq(head, prefix))
}

/// `s.ends_with(suffix)`, comparing as [`str_eq`] does.
#[inline(always)]
pub(crate) fn ends_with(s: &str, suffix: &str) -> bool {
    let (s, suffix) = (s.as_bytes(), suffix.as_bytes());
    s.len() >= suffix.len() && bytes_eq(&s[s.len() - suffix.len()..], suffix)
}

/// A comparison of two operands of static type `ty` (R14, R18, R19, R26, R27).
pub fn compare(op: CmpOp, ty: Ty, a: &Value<'_>, b: &Value<'_>) -> Bool3 {
    let ord = match (ty, a, b) {
        // Null with null is constant: `=`, `<=`, `>=` hold.
        (Ty::Null, _, _) => {
            return Bool3::from_bool(matches!(op, CmpOp::Eq | CmpOp::Le | CmpOp::Ge))
        }
        (_, Value::Undefined, _) | (_, _, Value::Undefined) => return Bool3::Undefined,
        // Equality of strings, as either type: the UTF-16 units are equal exactly when the
        // UTF-8 bytes are, so the ordinal order (the usual test is `name = 'constant'`)
        // need not be worked out.
        (_, Value::Str(x), Value::Str(y)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
            return Bool3::from_bool(str_eq(x, y) == (op == CmpOp::Eq));
        }
        (Ty::Body, a, b) => a.body_cmp(b),
        (_, Value::Str(x), Value::Str(y)) => crate::dotnet::compare_ordinal(x, y),
        (_, Value::Number(x), Value::Number(y)) => dotnet_double_cmp(*x, *y),
        (_, Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        // A null string compared as a string, and anything else, is undefined.
        _ => return Bool3::Undefined,
    };
    Bool3::from_bool(op.holds(ord))
}

/// Arithmetic on numbers, or on body values (defined only when both are numbers, R17).
pub fn arith<'a>(op: ArithOp, ty: Ty, a: &Value<'_>, b: &Value<'_>) -> Value<'a> {
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return Value::Undefined;
    };
    let r = arith_f64(op, *x, *y);
    if ty == Ty::Body {
        // A body number stays defined even when NaN (QueryValue keeps the double).
        Value::Number(r)
    } else {
        Value::number(r)
    }
}

/// The double an arithmetic operator gives for two numbers (NaN included; whether NaN is
/// undefined depends on the operands' type, see [`arith`]).
#[inline(always)]
pub fn arith_f64(op: ArithOp, x: f64, y: f64) -> f64 {
    match op {
        ArithOp::Add => x + y,
        ArithOp::Sub => x - y,
        ArithOp::Mul => x * y,
        ArithOp::Div => x / y,
        // C#'s `%` on doubles truncates like Rust's (fmod).
        ArithOp::Mod => remainder(x, y),
    }
}

/// `x % y` on doubles (fmod). Conditions usually take remainders of whole numbers
/// (`as_number(priority) % 2`), for which the software `fmod` cost more than the rest of a
/// route: two integers below 2^53 take the integer remainder instead, which is exact, with
/// the sign of a zero result taken from `x` as `fmod` gives it.
#[inline]
fn remainder(x: f64, y: f64) -> f64 {
    // 2^53. Whole is tested with a conversion, not `trunc`: without SSE4.1 that is a call too.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let whole = |v: f64| v.abs() < EXACT && (v as i64) as f64 == v;
    if whole(x) && whole(y) && y != 0.0 {
        let r = (x as i64 % y as i64) as f64;
        return if r == 0.0 { 0.0f64.copysign(x) } else { r };
    }
    x % y
}

/// Unary minus on a number.
pub fn neg<'a>(a: &Value<'_>) -> Value<'a> {
    match a {
        Value::Number(n) => Value::Number(-n),
        _ => Value::Undefined,
    }
}

/// `NOT` of a bool, null (true) or body value (R26).
pub fn not<'a>(ty: Ty, a: &Value<'_>) -> Value<'a> {
    match ty {
        Ty::Null => Value::Bool(true),
        _ => match a {
            Value::Bool(b) => Value::Bool(!b),
            _ => Value::Undefined,
        },
    }
}

/// `AND` with the operands' static types (R13, R26).
pub fn and<'a>(lt: Ty, rt: Ty, a: &Value<'_>, b: &Value<'_>) -> Value<'a> {
    if lt == Ty::Body {
        return match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => Value::Bool(*x && *y),
            _ => Value::Undefined,
        };
    }
    if lt == Ty::Null || rt == Ty::Null {
        return Value::Null;
    }
    Value::bool3(a.as_bool3().and(b.as_bool3()))
}

/// `OR` with the operands' static types (R13, R26): null is neutral.
pub fn or<'a>(lt: Ty, rt: Ty, a: &Value<'a>, b: &Value<'a>) -> Value<'a> {
    if lt == Ty::Body {
        return match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => Value::Bool(*x || *y),
            _ => Value::Undefined,
        };
    }
    match (lt, rt) {
        (Ty::Null, Ty::Null) => Value::Null,
        (Ty::Null, _) => b.clone(),
        (_, Ty::Null) => a.clone(),
        _ => Value::bool3(a.as_bool3().or(b.as_bool3())),
    }
}

/// The route's verdict on a condition's value of static type `ty` (R12).
pub fn to_route(ty: Ty, v: &Value<'_>) -> Bool3 {
    match (ty, v) {
        (Ty::Null, _) => Bool3::False,
        (Ty::Bool | Ty::Body, Value::Bool(b)) => Bool3::from_bool(*b),
        _ => Bool3::Undefined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer remainder agrees bit for bit with fmod, signed zeros included.
    #[test]
    fn remainder_agrees_with_fmod() {
        let values = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.0,
            -2.0,
            3.0,
            7.0,
            -7.0,
            0.5,
            -2.5,
            1e300,
            -1e300,
            9_007_199_254_740_991.0,
            -9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for x in values {
            for y in values {
                let (got, want) = (remainder(x, y), x % y);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{x} % {y}: {got} != {want}"
                );
            }
        }
    }

    /// `str_eq`, `starts_with` and `ends_with` agree with std's for every length around the
    /// word sizes, with a difference (or none) at every position.
    #[test]
    fn short_string_comparisons_agree_with_std() {
        let base = "abcdefghijklmnopqrstuvwxyz0123456789";
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(str_eq(a, a));
            for at in 0..len {
                let mut b = a.as_bytes().to_vec();
                b[at] = b'!';
                let b = String::from_utf8(b).unwrap();
                assert!(!str_eq(a, &b), "{a:?} {b:?}");
                assert_eq!(starts_with(&b, &a[..at + 1]), b.starts_with(&a[..at + 1]));
                assert_eq!(ends_with(&b, &a[at..]), b.ends_with(&a[at..]));
            }
            for other in [
                &base[..len.saturating_sub(1)],
                &base[..(len + 1).min(base.len())],
            ] {
                assert_eq!(str_eq(a, other), a == other, "{a:?} {other:?}");
                assert_eq!(starts_with(a, other), a.starts_with(other));
                assert_eq!(ends_with(a, other), a.ends_with(other));
            }
        }
    }
}
