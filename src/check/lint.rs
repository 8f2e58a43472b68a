//! Warnings: conditions the reference engine accepts, with results their authors probably did
//! not intend. Each names the rule it comes from.

use super::Ty;
use crate::diagnostic::{codes, Diagnostic};
use crate::span::Span;

/// R05: input after the first complete expression is ignored.
pub fn trailing(source: &str, span: Span) -> Diagnostic {
    Diagnostic::warning(
        codes::TRAILING_INPUT,
        span,
        format!(
            "ignored input after the condition: '{}'",
            source[span.range()].trim()
        ),
    )
    .with_note("IoT Hub stops reading at the end of the first complete expression (an operator glued to a name or number is part of it: write 'a - 1', not 'a-1')")
}

/// A comparison whose result does not depend on the message.
pub fn comparison(ty: Ty, span: Span, op: &str) -> Option<Diagnostic> {
    match ty {
        Ty::Undefined => Some(Diagnostic::warning(
            codes::ALWAYS_UNDEFINED,
            span,
            format!("'{op}' between undefined values is undefined for every message"),
        )),
        Ty::Null => Some(Diagnostic::warning(
            codes::CONSTANT_COMPARISON,
            span,
            format!("'{op}' between nulls has the same result for every message"),
        )),
        _ => None,
    }
}

/// R11: without body queries, `$body.x` is the system property `body.x`.
pub fn body_query_disabled(token: &str, span: Span) -> Diagnostic {
    Diagnostic::warning(
        codes::BODY_QUERY_DISABLED,
        span,
        format!(
            "body queries are disabled: '{token}' reads the system property '{}'",
            &token[1..]
        ),
    )
}

/// Hub dialect: `$body` alone or indexed is not supported and always undefined.
pub fn whole_body(token: &str, span: Span) -> Diagnostic {
    Diagnostic::warning(
        codes::WHOLE_BODY,
        span,
        format!("'{token}' is always undefined: IoT Hub queries only property paths under $body"),
    )
    .with_note("name a property of the body, e.g. '$body.Weather.HistoricalData[0].Month'")
}

/// R12: only a bool (or a body value holding one) can be true.
pub fn never_true(ty: Ty, span: Span) -> Option<Diagnostic> {
    let what = match ty {
        Ty::Number => "a number",
        Ty::String => "a string",
        Ty::Undefined => "undefined",
        Ty::Null => "null",
        _ => return None,
    };
    Some(
        Diagnostic::warning(
            codes::NEVER_TRUE,
            span,
            format!(
                "this condition never routes a message: its value is {what}, which is not true"
            ),
        )
        .with_note(
            "a route matches only when its condition is true; compare the value, e.g. 'x = 1'",
        ),
    )
}
