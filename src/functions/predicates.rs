//! The `is_*` built-ins.

use super::Func;
use super::PathTest;
use crate::body::Selected;
use crate::value::Value;

/// A [`PathTest`] on what a body path selected (`None`: the body is unreadable, so the answer
/// is undefined). `twin_change_includes` is true for anything present, a JSON null or an object
/// included (R24). The hub dialect's type tests follow Learn's definitions: a date string is a
/// string, so primitive; a missing path or an `undefined` token is none of the three.
pub fn path_test(test: PathTest, selected: Option<Selected<'_>>) -> Value<'static> {
    let Some(s) = selected else {
        return Value::Undefined;
    };
    if matches!(s, Selected::Error) {
        return Value::Undefined;
    }
    Value::Bool(match test {
        PathTest::Includes => !matches!(s, Selected::Missing),
        PathTest::IsArray => matches!(s, Selected::Array),
        PathTest::IsObject => matches!(s, Selected::Object),
        PathTest::IsPrimitive => matches!(
            s,
            Selected::Null
                | Selected::Bool(_)
                | Selected::Number(_)
                | Selected::String(_)
                | Selected::Date
        ),
    })
}

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
        // Hub dialect: a defined string (null string included), number, bool or null.
        Func::IsPrimitive => matches!(
            v,
            Value::Str(_) | Value::NullStr | Value::Number(_) | Value::Bool(_) | Value::Null
        ),
        _ => return Value::Undefined,
    };
    Value::Bool(b)
}
