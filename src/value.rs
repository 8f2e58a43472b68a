//! Runtime values and three-valued booleans: what the evaluator computes and the built-in
//! functions take and give, in a module of its own so that neither owns the other
//! (re-exported as `hubroute::eval::{Value, Bool3}`).

use std::borrow::Cow;
use std::cmp::Ordering;

/// A three-valued boolean, the result of a condition (R26).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bool3 {
    /// Definitely true: the route matches.
    True,
    /// Definitely false.
    False,
    /// Undefined: the route does not match, and `NOT` keeps it undefined.
    Undefined,
}

impl Bool3 {
    /// `true` → True, `false` → False.
    pub fn from_bool(b: bool) -> Bool3 {
        if b {
            Bool3::True
        } else {
            Bool3::False
        }
    }

    /// Kleene conjunction.
    pub fn and(self, other: Bool3) -> Bool3 {
        match (self, other) {
            (Bool3::False, _) | (_, Bool3::False) => Bool3::False,
            (Bool3::True, Bool3::True) => Bool3::True,
            _ => Bool3::Undefined,
        }
    }

    /// Kleene disjunction.
    pub fn or(self, other: Bool3) -> Bool3 {
        match (self, other) {
            (Bool3::True, _) | (_, Bool3::True) => Bool3::True,
            (Bool3::False, Bool3::False) => Bool3::False,
            _ => Bool3::Undefined,
        }
    }

    /// The engine's `Bool.CompareTo`: False < True (R19). Undefined compares as the middle
    /// value but is never compared (comparisons with it are undefined).
    pub fn rank(self) -> i8 {
        match self {
            Bool3::False => -1,
            Bool3::Undefined => 0,
            Bool3::True => 1,
        }
    }

    /// `"true"`, `"false"` or `"undefined"`, as the conformance corpus and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Bool3::True => "true",
            Bool3::False => "false",
            Bool3::Undefined => "undefined",
        }
    }
}

impl std::ops::Not for Bool3 {
    type Output = Bool3;

    /// Kleene negation.
    fn not(self) -> Bool3 {
        match self {
            Bool3::True => Bool3::False,
            Bool3::False => Bool3::True,
            Bool3::Undefined => Bool3::Undefined,
        }
    }
}

impl std::fmt::Display for Bool3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A runtime value. Which variants occur depends on the expression's static type:
///
/// | static type | variants |
/// |---|---|
/// | string | `Undefined`, `NullStr`, `Str` |
/// | number | `Undefined`, `Number` (never NaN) |
/// | bool | `Undefined`, `Bool` |
/// | null | `Null` |
/// | undefined | `Undefined` |
/// | body | all but the number rule: a JSON `NaN` is a defined body number |
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Undefined (absent property, NaN number, undefined bool, unreadable body).
    Undefined,
    /// The null value (the literal; a JSON null in the body).
    Null,
    /// A body path that matched nothing: null, but the engine's `QueryValue.Null` singleton,
    /// which `is_null` tells apart from a JSON null (R16).
    Missing,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string, borrowed from the message where possible.
    Str(Cow<'a, str>),
    /// A property that is present with a null value: a string that is null (R01).
    NullStr,
}

impl<'a> Value<'a> {
    /// A number, with NaN as undefined (the number type's rule).
    pub fn number(n: f64) -> Value<'a> {
        if n.is_nan() {
            Value::Undefined
        } else {
            Value::Number(n)
        }
    }

    /// A Bool3 as a bool-typed value.
    pub fn bool3(b: Bool3) -> Value<'a> {
        match b {
            Bool3::True => Value::Bool(true),
            Bool3::False => Value::Bool(false),
            Bool3::Undefined => Value::Undefined,
        }
    }

    /// A bool-typed value as a Bool3 (anything else is undefined).
    pub fn as_bool3(&self) -> Bool3 {
        match self {
            Value::Bool(b) => Bool3::from_bool(*b),
            _ => Bool3::Undefined,
        }
    }

    /// Whether the value is defined (`is_defined` of any type, after conversion).
    pub fn is_defined(&self) -> bool {
        !matches!(self, Value::Undefined)
    }

    /// A value that borrows nothing.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Undefined => Value::Undefined,
            Value::Null => Value::Null,
            Value::Missing => Value::Missing,
            Value::Bool(b) => Value::Bool(b),
            Value::Number(n) => Value::Number(n),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::NullStr => Value::NullStr,
        }
    }

    /// The body type rank used when body values of different types meet (R14):
    /// bool < number < string < null.
    pub fn body_rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::Str(_) | Value::NullStr => 3,
            Value::Null | Value::Missing => 4,
            Value::Undefined => 0,
        }
    }

    /// The engine's `QueryValue.CompareTo` for two defined body values.
    pub fn body_cmp(&self, other: &Value<'_>) -> Ordering {
        let (ra, rb) = (self.body_rank(), other.body_rank());
        if ra != rb {
            return ra.cmp(&rb);
        }
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Number(a), Value::Number(b)) => dotnet_double_cmp(*a, *b),
            (Value::Str(a), Value::Str(b)) => crate::dotnet::compare_ordinal(a, b),
            (Value::NullStr, Value::NullStr) => Ordering::Equal,
            (Value::NullStr, _) => Ordering::Less,
            (_, Value::NullStr) => Ordering::Greater,
            _ => Ordering::Equal,
        }
    }
}

/// .NET `double.CompareTo`: NaN is equal to itself and less than every other value;
/// -0 equals +0.
pub fn dotnet_double_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}
