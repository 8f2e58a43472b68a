//! The `is_*` built-ins.

use super::Func;
use crate::eval::Value;

/// Runs `is_bool`, `is_defined`, `is_null` or `is_number`/`is_string` on a converted argument.
pub fn test<'a>(func: Func, v: &Value<'_>) -> Value<'a> {
    let b = match func {
        // Defined but not a bool: false; undefined: undefined.
        Func::IsBool => match v {
            Value::Undefined => return Value::Undefined,
            Value::Bool(_) => true,
            _ => false,
        },
        Func::IsDefined => v.is_defined(),
        Func::IsNullString => matches!(v, Value::NullStr),
        // The engine tests "is not the QueryValue.Null singleton": a missing path is false,
        // every present value true (R16).
        Func::IsNullBody => match v {
            Value::Undefined => return Value::Undefined,
            Value::Missing => false,
            _ => true,
        },
        // ±Infinity and NaN are not numbers here (R27).
        Func::IsNumber => matches!(v, Value::Number(n) if n.is_finite()),
        Func::IsString => matches!(v, Value::Str(_)),
        _ => return Value::Undefined,
    };
    Value::Bool(b)
}
