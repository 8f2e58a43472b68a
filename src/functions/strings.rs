//! String built-ins, with .NET's UTF-16 semantics (R21). They receive body-domain values:
//! anything but a defined, non-null string gives undefined.

use super::Func;
use crate::dotnet;
use crate::value::Value;
use std::borrow::Cow;

fn text<'v>(v: &'v Value<'_>) -> Option<&'v str> {
    match v {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// `concat(...)`: every argument must be a defined string; a null string counts as empty.
pub fn concat<'a>(args: &mut [Value<'a>]) -> Value<'a> {
    let mut out = String::new();
    for a in args.iter() {
        match a {
            Value::Str(s) => out.push_str(s),
            Value::NullStr => {}
            _ => return Value::Undefined,
        }
    }
    Value::Str(Cow::Owned(out))
}

/// `length(s)` in UTF-16 code units.
pub fn length<'a>(v: &Value<'_>) -> Value<'a> {
    match text(v) {
        Some(s) => Value::Number(dotnet::utf16_len(s) as f64),
        None => Value::Undefined,
    }
}

/// `lower(s)`, `upper(s)`: invariant simple case mapping.
pub fn case<'a>(func: Func, v: &Value<'a>) -> Value<'a> {
    let Value::Str(s) = v else {
        return Value::Undefined;
    };
    let mapped = if func == Func::Lower {
        dotnet::to_lower_invariant(s)
    } else {
        dotnet::to_upper_invariant(s)
    };
    match mapped {
        Cow::Owned(m) => Value::Str(Cow::Owned(m)),
        // Unchanged: hand back the argument, which is free when it borrows.
        Cow::Borrowed(_) => v.clone(),
    }
}

/// `substring(s, start[, length])` with the engine's bounds (R21): `0 <= start <= len` for
/// two arguments, `0 <= start < len` and `0 <= length <= len - start` for three; fractional
/// positions are truncated after the check.
pub fn substring<'a>(s: &Value<'a>, start: &Value<'_>, length: Option<&Value<'_>>) -> Value<'a> {
    let (Some(s), Value::Number(start)) = (text(s), start) else {
        return Value::Undefined;
    };
    let len = dotnet::utf16_len(s) as f64;
    let start = *start;
    let piece = match length {
        None => {
            if !(start >= 0.0 && start <= len) {
                return Value::Undefined;
            }
            dotnet::substring(s, start as usize, None)
        }
        Some(Value::Number(n)) => {
            let n = *n;
            if !(start >= 0.0 && start < len && n >= 0.0 && n <= len - start) {
                return Value::Undefined;
            }
            dotnet::substring(s, start as usize, Some(n as usize))
        }
        Some(_) => return Value::Undefined,
    };
    match piece {
        Some(p) => Value::Str(Cow::Owned(p.into_owned())),
        None => Value::Undefined,
    }
}

/// `index_of`, `starts_with`, `ends_with`, `contains`: ordinal.
pub fn search<'a>(func: Func, s: &Value<'_>, t: &Value<'_>) -> Value<'a> {
    let (Some(s), Some(t)) = (text(s), text(t)) else {
        return Value::Undefined;
    };
    match func {
        Func::IndexOf => Value::Number(dotnet::index_of(s, t) as f64),
        Func::StartsWith => Value::Bool(s.starts_with(t)),
        Func::EndsWith => Value::Bool(s.ends_with(t)),
        _ => Value::Bool(s.contains(t)),
    }
}
