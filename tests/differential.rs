//! Differential test: on generated conditions and messages, the compiled evaluator (with its
//! constant folding and short-circuits) must give exactly the reference interpreter's answer,
//! and the canonical printed form of a condition must evaluate the same as the original.
//! The generator is a small deterministic PRNG, so a failure is reproducible from its seed.

use hubroute::eval::EvalContext;
use hubroute::message::Message;
use hubroute::{Condition, Options};
use std::sync::LazyLock;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const LEAVES: &[&str] = &[
    "1",
    "0",
    "-3",
    "2.5",
    "0x1F",
    "1e3",
    "'a'",
    "'10'",
    "\"b\"",
    "''",
    "'\\u00FC'",
    "true",
    "false",
    "null",
    "undefined",
    "key1",
    "key2",
    "num",
    "null_value",
    "missing",
    "$sys1",
    "$num",
    "{$sys1}",
    "$body.n",
    "$body.s",
    "$body.b",
    "$body.z",
    "$body.list[1]",
    "$body.o.x",
    "$body.missing",
    "$body.o",
    "{$body.n}",
    "$body[0]",
    "enqueuedTime",
    "messageId",
];
/// Numeric subexpressions for tests that share them.
const NUMERIC: &[&str] = &[
    "as_number(num)",
    "as_number(key1) % 2",
    "abs($body.n - 1)",
    "$body.n / 0",
    "floor(as_number(num))",
];
/// String constants for the shaped calls and comparisons (ASCII, empty, mixed case, and one
/// that is not ASCII).
const STRINGS: &[&str] = &[
    "'a'", "'A'", "''", "'10'", "'1'", "'0'", "'.5'", "'ü'", "'Ab'",
];
/// Every built-in function, so that a new one is generated as soon as it exists.
static FUNCS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    hubroute::functions::BUILTINS
        .iter()
        .chain(hubroute::functions::HUB_BUILTINS)
        .map(|b| b.name)
        .collect()
});
const BINOPS: &[&str] = &[
    "+", "-", "*", "/", "%", "||", "<", "<=", ">", ">=", "=", "!=", "<>", "AND", "OR", "??",
];

fn expr(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 {
        return rng.pick(LEAVES).to_string();
    }
    match rng.below(10) {
        0..=2 => rng.pick(LEAVES).to_string(),
        3 => format!("NOT {}", expr(rng, depth - 1)),
        4 => format!("- {}", expr(rng, depth - 1)),
        5 => {
            let f = rng.pick(&FUNCS);
            let n = rng.below(4);
            let args: Vec<String> = (0..n).map(|_| expr(rng, depth - 1)).collect();
            format!("{f}({})", args.join(", "))
        }
        6 => format!("({})", expr(rng, depth - 1)),
        // The shapes the evaluator compiles specially: a call on a property with a
        // constant, a case-mapped property compared with a constant (either side), and a
        // `$body` path compared with a constant.
        7 => {
            let cmp = rng.pick(&["=", "<>", "<", ">="]);
            let x = rng.pick(LEAVES);
            match rng.below(6) {
                0 => {
                    let f = rng.pick(&["starts_with", "ends_with", "contains", "is_defined"]);
                    match f {
                        "is_defined" => format!("{f}({x})"),
                        _ => format!("{f}({x}, {})", rng.pick(STRINGS)),
                    }
                }
                1 => format!(
                    "{}({x}) {cmp} {}",
                    rng.pick(&["lower", "upper"]),
                    rng.pick(STRINGS)
                ),
                2 => format!(
                    "{} {cmp} {}({x})",
                    rng.pick(STRINGS),
                    rng.pick(&["lower", "upper"])
                ),
                3 => {
                    // Numeric expressions compared with a number, on either side.
                    let x = rng.pick(&[x, "$body.n", "num", "$body.n", "$body.s"]);
                    let x = match rng.below(3) {
                        0 => format!("as_number({x})"),
                        1 => format!("{}({x})", rng.pick(&["abs", "floor", "sqrt", "sign"])),
                        _ => x.to_string(),
                    };
                    let n = rng.pick(&["1", "0", "-3", "2.5"]);
                    let arith = format!("{x} {} {n}", rng.pick(&["+", "-", "*", "/", "%"]));
                    let k = rng.pick(&["1", "0", "-3", "2.5"]);
                    match rng.below(3) {
                        0 => format!("{arith} {cmp} {k}"),
                        1 => format!("{k} {cmp} abs({arith})"),
                        _ => format!("{x} {cmp} {k}"),
                    }
                }
                // `AND` and `OR` of two of the leaf tests the evaluator fuses into one closure
                // (a property or `$x` equal to a string, a `$body` path against a constant,
                // the usual calls), or of one of them and any other test; `NOT` of one.
                4 => {
                    let leaf = |rng: &mut Rng| match rng.below(6) {
                        0 => format!(
                            "{} {} {}",
                            rng.pick(&["key1", "key2", "missing", "null_value", "$sys1", "$num"]),
                            rng.pick(&["=", "<>", "!="]),
                            rng.pick(STRINGS)
                        ),
                        1 => format!(
                            "{} {} {}",
                            rng.pick(&["$body.n", "$body.s", "$body.b", "$body.missing"]),
                            rng.pick(&["=", "<>", "<", ">="]),
                            rng.pick(&["1", "-3", "true", "'a'", "null"])
                        ),
                        2 => format!(
                            "{}({}, {})",
                            rng.pick(&["starts_with", "ends_with", "contains"]),
                            rng.pick(&["key1", "$sys1", "missing", "$body.s", "$body.n"]),
                            rng.pick(STRINGS)
                        ),
                        3 => format!(
                            "is_defined({})",
                            rng.pick(&["key1", "$sys1", "missing", "null_value"])
                        ),
                        4 => expr(rng, 1),
                        _ => format!("({})", rng.pick(LEAVES)),
                    };
                    let (a, b) = (leaf(rng), leaf(rng));
                    match rng.below(3) {
                        0 => format!("NOT {a}"),
                        _ => format!("{a} {} {b}", rng.pick(&["AND", "OR"])),
                    }
                }
                _ => {
                    let body = rng.pick(&["$body.n", "$body.s", "$body.b", "$body.missing"]);
                    let k = rng.pick(&["1", "0", "-3", "2.5", "true", "false", "'a'", "'10'"]);
                    format!(
                        "{body} {} {k}",
                        rng.pick(&["=", "<>", "<", "<=", ">", ">="])
                    )
                }
            }
        }
        _ => format!(
            "{} {} {}",
            expr(rng, depth - 1),
            rng.pick(BINOPS),
            expr(rng, depth - 1)
        ),
    }
}

fn message(rng: &mut Rng) -> Message {
    let values = [
        "\"a\"", "\"10\"", "\"2.5\"", "null", "\"\"", "\"ü\"", "\"-1\"",
    ];
    let mut app = Vec::new();
    for name in [
        "key1",
        "key2",
        "num",
        "null_value",
        "$sys1",
        "$body.n",
        "enqueuedTime",
    ] {
        if rng.below(3) > 0 {
            app.push(format!("\"{name}\": {}", rng.pick(&values)));
        }
    }
    let mut sys = Vec::new();
    for name in ["sys1", "num", "enqueuedTime"] {
        if rng.below(2) > 0 {
            sys.push(format!("\"{name}\": {}", rng.pick(&values)));
        }
    }
    if rng.below(4) > 0 {
        sys.push("\"contentType\": \"application/json\", \"contentEncoding\": \"utf-8\"".into());
    }
    let json_values = [
        "1",
        "-2.5",
        "0",
        "\\\"a\\\"",
        "\\\"10\\\"",
        "true",
        "false",
        "null",
        "[1,2]",
        "{}",
    ];
    let mut fields = Vec::new();
    for name in ["n", "s", "b", "z"] {
        if rng.below(4) > 0 {
            fields.push(format!("\\\"{name}\\\": {}", rng.pick(&json_values)));
        }
    }
    fields.push(format!(
        "\\\"list\\\": [{}, {}]",
        rng.pick(&json_values),
        rng.pick(&json_values)
    ));
    fields.push(format!(
        "\\\"o\\\": {{\\\"x\\\": {}}}",
        rng.pick(&json_values)
    ));
    let body = if rng.below(8) == 0 {
        "not json".to_string()
    } else {
        format!("{{{}}}", fields.join(", "))
    };
    let text = format!(
        "{{\"appProperties\": {{{}}}, \"systemProperties\": {{{}}}, \"body\": \"{body}\"}}",
        app.join(", "),
        sys.join(", ")
    );
    Message::from_json_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn compiled_evaluator_agrees_with_reference_interpreter() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let options = [Options::iot_hub(), Options::edge_none()];
    let mut compiled = 0;
    for round in 0..20_000 {
        let query = expr(&mut rng, 1 + (round % 4) as u32);
        let opts = &options[round % 2];
        let Ok(cond) = Condition::compile(&query, opts) else {
            continue;
        };
        compiled += 1;
        let printed = cond.ast().to_string();
        let reprinted = Condition::compile(&printed, opts)
            .unwrap_or_else(|e| panic!("{query:?} printed as {printed:?} no longer compiles: {e}"));
        // A clone builds its own closures; every other one is checked.
        let cloned = (round % 2 == 0).then(|| cond.clone());
        for _ in 0..4 {
            let msg = message(&mut rng);
            let fast = cond.eval_in(&EvalContext::new(&msg));
            let reference = cond.eval_reference(&EvalContext::new(&msg));
            assert_eq!(fast, reference, "round {round}: {query:?} on {msg:?}");
            if let Some(cloned) = &cloned {
                assert_eq!(cloned.eval(&msg), fast, "round {round}: clone of {query:?}");
            }
            assert_eq!(
                reprinted.eval(&msg),
                fast,
                "round {round}: {query:?} vs printed {printed:?} on {msg:?}"
            );
        }
    }
    assert!(
        compiled > 2_000,
        "only {compiled} generated conditions compiled"
    );
}

/// A route table's router (body plan, resolved properties, tests shared across routes) routes
/// exactly as each route's condition alone says under the reference interpreter. The routes
/// are built from a small pool of generated tests so that many of them repeat across routes,
/// and each goes to its own endpoint so that every route's answer shows in the result.
#[test]
fn router_agrees_with_reference_interpreter_route_by_route() {
    use hubroute::message::Source;
    use hubroute::route::{RouteTable, Routing};
    let mut rng = Rng(0x5EED_1234_ABCD_0002);
    let options = Options::iot_hub();
    let mut tables = 0;
    let mut shared_tables = 0;
    for _ in 0..300 {
        // Every third table's tests share numeric subexpressions (kept once per message).
        let numeric = tables % 3 == 0;
        let pool: Vec<String> = (0..6)
            .map(|_| match numeric {
                true => format!(
                    "{} {} {}",
                    rng.pick(NUMERIC),
                    rng.pick(&["=", "<>", "<", ">="]),
                    rng.pick(&["1", "0", "-3", "2.5"])
                ),
                false => expr(&mut rng, 2),
            })
            .filter(|q| Condition::compile(q, &options).is_ok())
            .collect();
        if pool.len() < 2 {
            continue;
        }
        let conditions: Vec<String> = (0..10)
            .map(|_| {
                let a = rng.below(pool.len());
                let b = rng.below(pool.len());
                let op = ["AND", "OR"][rng.below(2)];
                format!("({}) {op} ({})", pool[a], pool[b])
            })
            .filter(|q| Condition::compile(q, &options).is_ok())
            .collect();
        let queues: Vec<_> = (0..conditions.len())
            .map(|i| serde_json::json!({"name": format!("q{i}")}))
            .collect();
        let routes: Vec<_> = conditions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({"name": format!("r{i}"), "source": "DeviceMessages",
                    "condition": c, "endpointNames": [format!("q{i}")], "isEnabled": true})
            })
            .collect();
        let config =
            serde_json::json!({"endpoints": {"serviceBusQueues": queues}, "routes": routes});
        let build = RouteTable::from_json(&config.to_string(), "hub");
        let table = build
            .table
            .unwrap_or_else(|| panic!("{config}: {:?}", build.diagnostics));
        tables += 1;
        if conditions.len() > pool.len() {
            shared_tables += 1;
        }
        let mut router = table.router();
        let mut out = Routing::default();
        // A cloned table's programs build their own closures (shared tests included).
        let copy = table.clone();
        let mut copy_router = copy.router();
        let mut copy_out = Routing::default();
        for _ in 0..6 {
            let msg = message(&mut rng);
            router.route_into(&msg, Source::DeviceMessages, &mut out);
            copy_router.route_into(&msg, Source::DeviceMessages, &mut copy_out);
            assert_eq!(copy_out.endpoints, out.endpoints, "clone on {msg:?}");
            let want: Vec<String> = table
                .routes()
                .iter()
                .zip(&conditions)
                .filter(|(r, _)| {
                    r.condition
                        .as_ref()
                        .unwrap()
                        .eval_reference(&EvalContext::new(&msg))
                        == hubroute::eval::Bool3::True
                })
                .map(|(_, c)| c.clone())
                .collect();
            let got: Vec<String> = out
                .endpoints
                .iter()
                .map(|e| conditions[table.endpoint(*e).name[1..].parse::<usize>().unwrap()].clone())
                .collect();
            assert_eq!(got, want, "on {msg:?}");
        }
    }
    assert!(
        tables > 100 && shared_tables > 100,
        "{tables} tables, {shared_tables} with repeats"
    );
}
