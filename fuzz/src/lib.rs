//! Shared code for the hubroute fuzz targets: the grammar-aware generators ([`gen`]), a
//! twin source over a generated document ([`DocTwin`]), and the embedded seed queries.
#![forbid(unsafe_code)]

pub mod gen;

use hubroute::body::{BodyPath, JsonDoc};
use hubroute::eval::context::selected_value;
use hubroute::eval::{TwinLookup, Value};
use hubroute::message::Message;

/// A twin that is the same document for every device, as `TwinResolver` reads it: a
/// primitive value, undefined for an absent path or a container.
pub struct DocTwin(pub JsonDoc);

impl TwinLookup for DocTwin {
    fn twin_value<'t>(&'t self, _message: &Message, path: &BodyPath) -> Value<'t> {
        match selected_value(self.0.select(path)) {
            Value::Missing => Value::Undefined,
            v => v,
        }
    }
}

/// Realistic conditions the `eval` target evaluates against arbitrary messages: the valid
/// grammar examples plus body-heavy routes like the benchmark's.
pub const CORPUS_QUERIES: &[&str] = &[
    include_str!("../../grammar/examples/valid/app-property.txt"),
    include_str!("../../grammar/examples/valid/arithmetic.txt"),
    include_str!("../../grammar/examples/valid/array-index.txt"),
    include_str!("../../grammar/examples/valid/as-number.txt"),
    include_str!("../../grammar/examples/valid/coalesce.txt"),
    include_str!("../../grammar/examples/valid/comments.txt"),
    include_str!("../../grammar/examples/valid/concat.txt"),
    include_str!("../../grammar/examples/valid/documented-alias.txt"),
    include_str!("../../grammar/examples/valid/empty-condition.txt"),
    include_str!("../../grammar/examples/valid/escaped-system-property.txt"),
    include_str!("../../grammar/examples/valid/hex-and-reals.txt"),
    include_str!("../../grammar/examples/valid/multiline.txt"),
    include_str!("../../grammar/examples/valid/null-checks.txt"),
    include_str!("../../grammar/examples/valid/string-functions.txt"),
    include_str!("../../grammar/examples/valid/substring.txt"),
    include_str!("../../grammar/examples/valid/system-property.txt"),
    include_str!("../../grammar/examples/valid/twin-reference.txt"),
    include_str!("../../grammar/examples/valid/typical-route.txt"),
    "$contentType = 'application/json' AND $body.n > 0",
    "$body.n = 1 OR $body.s = 'a' OR $body.b = true OR is_null($body.z)",
    "$body.list[1] >= $body.list[0] AND length($body.s) > 0",
    "$body.o.x ?? $body.n ?? 'none'",
    "is_defined($body.missing) OR NOT is_defined($body.o)",
    "as_number($body.s) + $body.n * 2 < 100",
    "concat($body.s, key1, $sys1) = 'aa'",
    "substring($body.s, 0, 1) = upper(lower($body.s))",
    "index_of($body.s, 'a') >= 0 AND contains($body.s, 'a')",
    "$body.when = '2017-03-09T00:00:00Z'",
    "{$body.n} = $body.n",
    "$twin.tags.n = $body.n AND $twin.properties.reported.s = key1",
    "$body.N = 1",
    "$body.n.x",
    "abs($body.n) + sqrt(square($body.n)) + power($body.n, 2) + exp(0) + floor(1.5) + ceiling(1.5) + sign(-$body.n) > 0",
];

/// Whether a syntax tree holds an error alternative (invalid symbol, extra or missing
/// parenthesis, unterminated string). Such trees never compile; the `parse` target requires
/// canonical printing only of trees without them (see README, "Fuzzing", known issues).
pub fn has_invalid(e: &hubroute::syntax::Expr) -> bool {
    use hubroute::syntax::ExprKind;
    match &e.kind {
        ExprKind::Invalid(_) => true,
        ExprKind::Call { args, .. } => args.iter().any(has_invalid),
        ExprKind::Unary { operand, .. } => has_invalid(operand),
        ExprKind::Binary { left, right, .. } => has_invalid(left) || has_invalid(right),
        _ => false,
    }
}
