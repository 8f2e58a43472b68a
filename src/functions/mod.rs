//! The built-in functions: their signatures as data (overloads tried in order, as the
//! engine's `Builtin.Get` does) and their run-time behaviour, one family per module.
//!
//! An overload marked `query_value` accepts body values wherever it expects a string, number,
//! bool or null, and then receives *every* argument converted to a body value (the engine's
//! `QueryValue`); its implementation therefore works on body-domain values and checks their
//! run-time type itself (a number where a string is expected gives undefined, not an error).

pub(crate) mod math;
mod predicates;

pub use predicates::path_test;
mod strings;

use crate::ty::Ty;
use crate::value::Value;

/// What a path-test built-in asks of a body path ([`crate::ir::Ir::PathTest`]); a kind of
/// built-in like [`Func`], evaluated by [`path_test`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathTest {
    /// `twin_change_includes`: whether the path is present (R24).
    Includes,
    /// `is_array` (hub dialect).
    IsArray,
    /// `is_object` (hub dialect).
    IsObject,
    /// `is_primitive` (hub dialect): a string, number, bool or null.
    IsPrimitive,
}

/// A resolved overload: what a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    /// `abs(x)`
    Abs,
    /// `exp(x)`
    Exp,
    /// `ceiling(x)`
    Ceiling,
    /// `floor(x)`
    Floor,
    /// `sign(x)`
    Sign,
    /// `sqrt(x)`
    Sqrt,
    /// `square(x)`
    Square,
    /// `power(x, y)`
    Power,
    /// `as_number(string or body)`
    AsNumber,
    /// `as_number(number)`: the number itself.
    Identity,
    /// `is_bool(bool or body)`
    IsBool,
    /// `is_defined(x)` for string, number, bool and body operands.
    IsDefined,
    /// `is_null(string)`: the property is present with a null value.
    IsNullString,
    /// `is_null(body)`: true unless the path was missing (R16).
    IsNullBody,
    /// `is_number(number or body)`
    IsNumber,
    /// `is_string(string or body)`
    IsString,
    /// Constant true (`is_defined(null)`, `is_null(null)`).
    ConstTrue,
    /// Constant false (`is_bool(3)`, `is_defined(undefined)`, ...).
    ConstFalse,
    /// `is_primitive(x)` (hub dialect) of a value that is not a body path.
    IsPrimitive,
    /// `concat(a, b, ...)` and `a || b`
    Concat,
    /// `length(s)`
    Length,
    /// `lower(s)`
    Lower,
    /// `upper(s)`
    Upper,
    /// `substring(s, start)`
    Substring,
    /// `substring(s, start, length)`
    SubstringLength,
    /// `index_of(s, t)`
    IndexOf,
    /// `starts_with(s, t)`
    StartsWith,
    /// `ends_with(s, t)`
    EndsWith,
    /// `contains(s, t)`
    Contains,
}

/// The parameter list of one overload.
#[derive(Clone, Copy, Debug)]
pub enum Params {
    /// Exactly these types.
    Exact(&'static [Ty]),
    /// Any `n` arguments of any types.
    Any(usize),
    /// At least `len - 1` arguments: the first `len - 1` of the listed types, every further
    /// one of the last type (`concat`).
    Var(&'static [Ty]),
}

/// One overload of a built-in.
#[derive(Clone, Copy, Debug)]
pub struct Overload {
    /// What it takes.
    pub params: Params,
    /// Whether body values are accepted (and every argument converted to one).
    pub query_value: bool,
    /// What it returns.
    pub ret: Ty,
    /// What it runs.
    pub func: Func,
}

/// A built-in function.
#[derive(Debug)]
pub struct Builtin {
    /// Its name (matched case-insensitively).
    pub name: &'static str,
    /// Overloads, tried in order.
    pub overloads: &'static [Overload],
    /// One line for `--help` and explain output.
    pub doc: &'static str,
}

const fn ov(params: Params, query_value: bool, ret: Ty, func: Func) -> Overload {
    Overload {
        params,
        query_value,
        ret,
        func,
    }
}

use Params::{Any, Exact, Var};
use Ty::{Body, Bool, Null, Number as Num, String as Str, Undefined};

macro_rules! numeric {
    ($name:literal, $func:ident, $doc:literal) => {
        Builtin {
            name: $name,
            overloads: &[ov(Exact(&[Num]), true, Num, Func::$func)],
            doc: $doc,
        }
    };
}

macro_rules! string_pair {
    ($name:literal, $ret:ident, $func:ident, $doc:literal) => {
        Builtin {
            name: $name,
            overloads: &[ov(Exact(&[Str, Str]), true, $ret, Func::$func)],
            doc: $doc,
        }
    };
}

/// Every built-in except `twin_change_includes`, which the checker handles itself because it
/// takes its argument's text, not its value (R24).
pub static BUILTINS: &[Builtin] = &[
    numeric!("abs", Abs, "absolute value"),
    numeric!("exp", Exp, "e raised to the power"),
    Builtin {
        name: "power",
        overloads: &[ov(Exact(&[Num, Num]), true, Num, Func::Power)],
        doc: "x raised to the power y",
    },
    numeric!("square", Square, "x squared"),
    numeric!("ceiling", Ceiling, "smallest integer not below x"),
    numeric!("floor", Floor, "largest integer not above x"),
    numeric!("sign", Sign, "-1, 0 or 1"),
    numeric!("sqrt", Sqrt, "square root (undefined for negatives)"),
    Builtin {
        name: "as_number",
        overloads: &[
            ov(Exact(&[Str]), true, Num, Func::AsNumber),
            ov(Exact(&[Num]), false, Num, Func::Identity),
        ],
        doc: "parses a string as .NET double.TryParse(NumberStyles.Any) does",
    },
    Builtin {
        name: "is_bool",
        overloads: &[
            ov(Exact(&[Bool]), true, Bool, Func::IsBool),
            ov(Any(1), false, Bool, Func::ConstFalse),
        ],
        doc: "whether the value is a bool",
    },
    Builtin {
        name: "is_defined",
        overloads: &[
            ov(Exact(&[Str]), false, Bool, Func::IsDefined),
            ov(Exact(&[Num]), false, Bool, Func::IsDefined),
            ov(Exact(&[Bool]), false, Bool, Func::IsDefined),
            ov(Exact(&[Undefined]), false, Bool, Func::ConstFalse),
            ov(Exact(&[Null]), false, Bool, Func::ConstTrue),
            ov(Exact(&[Body]), false, Bool, Func::IsDefined),
        ],
        doc: "whether the value is defined (a null is defined)",
    },
    Builtin {
        name: "is_null",
        overloads: &[
            ov(Exact(&[Str]), false, Bool, Func::IsNullString),
            ov(Exact(&[Body]), false, Bool, Func::IsNullBody),
            ov(Exact(&[Null]), false, Bool, Func::ConstTrue),
            ov(Any(1), false, Bool, Func::ConstFalse),
        ],
        doc: "whether the value is null (for body values: whether the path exists, R16)",
    },
    Builtin {
        name: "is_number",
        overloads: &[
            ov(Exact(&[Num]), true, Bool, Func::IsNumber),
            ov(Any(1), false, Bool, Func::ConstFalse),
        ],
        doc: "whether the value is a finite number",
    },
    Builtin {
        name: "is_string",
        overloads: &[
            ov(Exact(&[Str]), true, Bool, Func::IsString),
            ov(Any(1), false, Bool, Func::ConstFalse),
        ],
        doc: "whether the value is a non-null string",
    },
    Builtin {
        name: "concat",
        overloads: &[ov(Var(&[Str, Str, Str]), true, Str, Func::Concat)],
        doc: "joins two or more strings",
    },
    Builtin {
        name: "length",
        overloads: &[ov(Exact(&[Str]), true, Num, Func::Length)],
        doc: "length in UTF-16 code units",
    },
    Builtin {
        name: "lower",
        overloads: &[ov(Exact(&[Str]), true, Str, Func::Lower)],
        doc: "lower case (invariant, simple mapping)",
    },
    Builtin {
        name: "upper",
        overloads: &[ov(Exact(&[Str]), true, Str, Func::Upper)],
        doc: "upper case (invariant, simple mapping)",
    },
    Builtin {
        name: "substring",
        overloads: &[
            ov(Exact(&[Str, Num]), true, Str, Func::Substring),
            ov(Exact(&[Str, Num, Num]), true, Str, Func::SubstringLength),
        ],
        doc: "part of a string, by UTF-16 code units",
    },
    string_pair!("index_of", Num, IndexOf, "position of t in s, or -1"),
    string_pair!("starts_with", Bool, StartsWith, "whether s starts with t"),
    string_pair!("ends_with", Bool, EndsWith, "whether s ends with t"),
    string_pair!("contains", Bool, Contains, "whether s contains t"),
];

/// Built-ins IoT Hub documents for route conditions that the Edge engine lacks (hub dialect
/// only). Applied to a `$body.path` the checker turns them into [`PathTest`]s,
/// which see the JSON kind; on any other value an array or object cannot occur, since those
/// are undefined as values (R15).
pub static HUB_BUILTINS: &[Builtin] = &[
    Builtin {
        name: "is_array",
        overloads: &[ov(Any(1), false, Bool, Func::ConstFalse)],
        doc: "whether the value is a JSON array",
    },
    Builtin {
        name: "is_object",
        overloads: &[ov(Any(1), false, Bool, Func::ConstFalse)],
        doc: "whether the value is a JSON object",
    },
    Builtin {
        name: "is_primitive",
        overloads: &[ov(Any(1), false, Bool, Func::IsPrimitive)],
        doc: "whether the value is a string, number, bool or null",
    },
];

/// The name of the twin-change built-in (R24).
pub const TWIN_CHANGE_INCLUDES: &str = "twin_change_includes";

/// Spellings the IoT Hub documentation uses that the Edge engine does not know
/// (`grammar/deviations.md`).
pub static DOCUMENTED_ALIASES: &[(&str, &str)] =
    &[("startswith", "starts_with"), ("endswith", "ends_with")];

/// Finds a built-in by name, case-insensitively as the engine does (`OrdinalIgnoreCase`);
/// with `hub` (the hub dialect), also by the documented alternative spellings and among
/// [`HUB_BUILTINS`].
pub fn lookup(name: &str, hub: bool) -> Option<&'static Builtin> {
    let aliases = hub;
    let eq = crate::dotnet::eq_ignore_case;
    let name = match DOCUMENTED_ALIASES
        .iter()
        .find(|(alias, _)| aliases && eq(alias, name))
    {
        Some((_, canonical)) => canonical,
        None => name,
    };
    let hub_only: &[Builtin] = if hub { HUB_BUILTINS } else { &[] };
    BUILTINS.iter().chain(hub_only).find(|b| eq(b.name, name))
}

impl Params {
    /// Whether argument types `given` fit (`Args.Match`, `AnyArgs`, `VarArgs`).
    pub fn matches(&self, given: &[Ty], query_value: bool) -> bool {
        let fits = |expected: Ty, g: Ty| {
            g == expected
                || (query_value
                    && ((g == Ty::Body && expected.meets_body())
                        || (expected == Ty::Body && g.meets_body())))
        };
        match *self {
            Params::Exact(types) => {
                types.len() == given.len() && types.iter().zip(given).all(|(&t, &g)| fits(t, g))
            }
            Params::Any(n) => given.len() == n,
            Params::Var(types) => {
                let n = types.len() - 1;
                let var_fits = |t: Ty, g: Ty| g == t || (query_value && g == Ty::Body);
                given.len() >= n
                    && given[..n].iter().zip(types).all(|(&g, &t)| var_fits(t, g))
                    && given[n..].iter().all(|&g| var_fits(types[n], g))
            }
        }
    }
}

impl Builtin {
    /// The first overload that fits, as `Builtin.Get` picks it.
    pub fn resolve(&self, given: &[Ty]) -> Option<&'static Overload> {
        let overloads: &'static [Overload] = self.overloads;
        overloads
            .iter()
            .find(|o| o.params.matches(given, o.query_value))
    }
}

/// Runs a resolved overload on its (already converted) arguments.
pub fn call<'a>(func: Func, args: &mut [Value<'a>]) -> Value<'a> {
    use Func::*;
    match func {
        Abs | Exp | Ceiling | Floor | Sign | Sqrt | Square => math::unary(func, &args[0]),
        Power => math::power(&args[0], &args[1]),
        AsNumber => math::as_number(&args[0]),
        Identity => std::mem::replace(&mut args[0], Value::Undefined),
        IsBool | IsDefined | IsNullString | IsNullBody | IsNumber | IsString | IsPrimitive => {
            predicates::test(func, &args[0])
        }
        ConstTrue => Value::Bool(true),
        ConstFalse => Value::Bool(false),
        Concat => strings::concat(args),
        Length => strings::length(&args[0]),
        Lower | Upper => strings::case(func, &args[0]),
        Substring => strings::substring(&args[0], &args[1], None),
        SubstringLength => strings::substring(&args[0], &args[1], Some(&args[2])),
        IndexOf | StartsWith | EndsWith | Contains => strings::search(func, &args[0], &args[1]),
    }
}
