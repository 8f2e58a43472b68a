//! The reference interpreter: a plain walk over the checked [`Ir`], evaluating every operand.
//! It is the executable specification the compiled evaluator is tested and fuzzed against.

use super::context::EvalContext;
use super::ops;
use crate::body::BodyPath;
use crate::functions;
use crate::ir::Ir;
use crate::value::Value;
use std::borrow::Cow;

/// Evaluates `ir` on the context's message.
pub fn eval<'c>(ir: &Ir, ctx: &'c EvalContext<'_>) -> Value<'c> {
    match ir {
        Ir::Str(s) => Value::Str(Cow::Owned(s.clone())),
        Ir::Num(n) => Value::number(*n),
        Ir::Bool(b) => b.map(Value::Bool).unwrap_or(Value::Undefined),
        Ir::Null => Value::Null,
        Ir::Undefined => Value::Undefined,
        Ir::AppProp(name) => ctx.app(name),
        Ir::SysProp(name) => ctx.sys(name),
        Ir::AppOrSysProp { app, sys } => ctx.app_or_sys(app, sys),
        Ir::Body { path, app_override } => {
            ctx.body_value(&BodyPath::parse(path), app_override.as_deref())
        }
        Ir::Twin { section, path } => {
            ctx.twin_value(&BodyPath::parse(&format!("{}{path}", section.prefix())))
        }
        Ir::PathTest(test, path) => ctx.path_test(*test, &BodyPath::parse(path)),
        Ir::ToBody(inner, _) => eval(inner, ctx),
        Ir::Neg(a) => ops::neg(&eval(a, ctx)),
        Ir::Not(a, ty) => ops::not(*ty, &eval(a, ctx)),
        Ir::Arith(op, a, b, ty) => ops::arith(*op, *ty, &eval(a, ctx), &eval(b, ctx)),
        Ir::Cmp(op, a, b, ty) => Value::bool3(ops::compare(*op, *ty, &eval(a, ctx), &eval(b, ctx))),
        Ir::And(a, b, lt, rt) => ops::and(*lt, *rt, &eval(a, ctx), &eval(b, ctx)),
        Ir::Or(a, b, lt, rt) => ops::or(*lt, *rt, &eval(a, ctx), &eval(b, ctx)),
        Ir::Coalesce(a, b, _) => {
            let (a, b) = (eval(a, ctx), eval(b, ctx));
            if a.is_defined() {
                a
            } else {
                b
            }
        }
        Ir::Call(func, args) => {
            let mut values: Vec<Value<'c>> = args.iter().map(|a| eval(a, ctx)).collect();
            functions::call(*func, &mut values)
        }
    }
}
