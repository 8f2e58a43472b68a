//! Static types of the routing language (R10). Their own module, below the checker that
//! decides them and the built-in signatures and IR that record them, so that none of those
//! imports another for them.

use std::fmt;

/// The static type of an expression. There is no implicit conversion between them, except
/// that a body value meets any of string, number, bool and null (R10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    /// Every property, string literals, string functions.
    String,
    /// IEEE doubles; NaN is how an undefined number is represented (R27).
    Number,
    /// Three-valued booleans.
    Bool,
    /// The `null` literal and what `AND` makes of it.
    Null,
    /// The `undefined` literal, and any expression the checker rejected.
    Undefined,
    /// A value read from the JSON body (`$body.path`), typed at run time (the engine's
    /// `QueryValue`).
    Body,
}

impl Ty {
    /// Whether a body value may meet this type in an operator or an argument (`Args.cs`).
    pub fn meets_body(self) -> bool {
        matches!(self, Ty::String | Ty::Number | Ty::Bool | Ty::Null)
    }

    /// The engine's name for the type, used in its error messages.
    pub fn name(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Number => "number",
            Ty::Bool => "bool",
            Ty::Null => "null",
            Ty::Undefined => "undefined",
            Ty::Body => "unknown",
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Body => "body value",
            t => t.name(),
        })
    }
}
