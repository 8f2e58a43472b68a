//! Numeric built-ins. They receive body-domain values: anything but a number gives undefined.

use super::Func;
use crate::value::Value;

fn num(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// `abs`, `exp`, `ceiling`, `floor`, `sign`, `sqrt`, `square` (`Math.*` in the engine).
pub fn unary<'a>(func: Func, x: &Value<'_>) -> Value<'a> {
    let Some(x) = num(x) else {
        return Value::Undefined;
    };
    Value::number(match func {
        Func::Abs => x.abs(),
        Func::Exp => x.exp(),
        Func::Ceiling => x.ceil(),
        Func::Floor => x.floor(),
        // Math.Sign: -1, 0 or 1, and 0 for -0.
        Func::Sign if x.is_nan() => f64::NAN,
        Func::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        Func::Sqrt => x.sqrt(),
        Func::Square => x.powi(2),
        _ => f64::NAN,
    })
}

/// `power(x, y)` = `Math.Pow`.
pub fn power<'a>(x: &Value<'_>, y: &Value<'_>) -> Value<'a> {
    match (num(x), num(y)) {
        (Some(x), Some(y)) => Value::number(dotnet_pow(x, y)),
        _ => Value::Undefined,
    }
}

/// `Math.Pow` follows IEEE 754 `pow` on .NET Core, which Rust's `powf` also follows, except
/// that .NET gives NaN for `pow(-1, ±Infinity)` and `pow(1, NaN)`... while C99 gives 1. The
/// .NET Core 3.0+ runtime switched to the C99 answers, so `powf` is exact here.
fn dotnet_pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}

/// `as_number(s)`: parses a string as `double.TryParse(NumberStyles.Any, Invariant)` (R22);
/// a number is returned as is.
pub fn as_number<'a>(v: &Value<'_>) -> Value<'a> {
    match v {
        Value::Str(s) => match crate::dotnet::parse_double_any(s) {
            Some(n) => Value::number(n),
            None => Value::Undefined,
        },
        Value::Number(n) => Value::number(*n),
        _ => Value::Undefined,
    }
}
