//! A program's condition as a tree of closures: the last compilation step.
//!
//! The node interpreter ([`Program::truth`], [`Program::eval_node`]) pays for its generality
//! on every node: a bounds-checked lookup, a dispatch over every kind of node, and a call
//! that saves and restores registers. A route's condition is mostly `AND`, `OR` and `NOT`
//! over comparisons of a property or a `$body` path with a constant, so those shapes become
//! closures specialised for their operand kinds, with the constants moved in, and calling
//! each other directly; property-to-string equality, the commonest test of all, compares
//! bytes without building a value. Any other node is evaluated by the interpreter, so every
//! operator keeps one definition, and the differential tests compare both with the
//! reference interpreter.

use super::{shared_truth, Node, NodeId, Program, Truth};
use crate::check::Ty;
use crate::eval::{ops, EvalContext, Value};
use crate::ir::CmpOp;
use std::fmt;
use std::sync::Arc;

/// A closure-compiled test: given its program (for what the interpreter evaluates) and a
/// context, the truth of the condition.
type TestFn = dyn Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync;

/// The root test of a program ([`Program::seal`]).
#[derive(Clone)]
pub(super) struct Test(Arc<TestFn>);

impl Default for Test {
    /// A test that answers undefined, until [`Program::seal`] builds the real one.
    fn default() -> Self {
        Test(Arc::new(|_, _| Truth::Undefined))
    }
}

impl fmt::Debug for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Test(..)")
    }
}

impl Test {
    /// The truth of `program`'s condition (this must be its own test).
    #[inline]
    pub(super) fn run(&self, program: &Program, ctx: &EvalContext<'_>) -> Truth {
        (self.0)(program, ctx)
    }
}

impl Program {
    /// Builds the closure tree from the current nodes. Called when the program is compiled
    /// and again whenever its nodes change ([`super::share`]).
    pub(super) fn seal(&mut self) {
        self.test = Test(self.closure(self.root));
    }

    /// The closure for node `id`.
    fn closure(&self, id: NodeId) -> Arc<TestFn> {
        match &self.nodes[id as usize] {
            Node::And(a, b, lt, rt) => {
                let (fa, fb, lt, rt) = (self.closure(*a), self.closure(*b), *lt, *rt);
                let short = Truth::short_circuits(lt, rt);
                Arc::new(move |p, ctx| Truth::and_then(short, lt, rt, fa(p, ctx), || fb(p, ctx)))
            }
            Node::Or(a, b, lt, rt) => {
                let (fa, fb, lt, rt) = (self.closure(*a), self.closure(*b), *lt, *rt);
                let short = Truth::short_circuits(lt, rt);
                Arc::new(move |p, ctx| Truth::or_else(short, lt, rt, fa(p, ctx), || fb(p, ctx)))
            }
            Node::Not(a, ty) => {
                let (fa, ty) = (self.closure(*a), *ty);
                Arc::new(move |p, ctx| Truth::not_of(ty, || fa(p, ctx)))
            }
            Node::Cmp(op, a, b, ty) => match (&self.nodes[*a as usize], &self.nodes[*b as usize]) {
                (Node::Prop(name), Node::Const(k)) => {
                    let name = name.clone();
                    prop_test(*op, *ty, k, move |ctx| ctx.prop(&name))
                }
                (Node::AppOrSysProp(app, sys), Node::Const(k)) => {
                    let (app, sys) = (app.clone(), sys.clone());
                    prop_test(*op, *ty, k, move |ctx| ctx.app_or_sys_prop(&app, &sys))
                }
                (Node::Body(local, app_override), Node::Const(k)) => {
                    let (op, ty, local, k) = (*op, *ty, *local, k.clone());
                    let app_override = app_override.clone();
                    Arc::new(move |p, ctx| {
                        let path = &p.paths[local as usize];
                        let x = ctx.body_value_at(local, path, app_override.as_ref());
                        Truth::from(ops::compare(op, ty, &x, &k))
                    })
                }
                _ => {
                    let (op, ty, a, b) = (*op, *ty, *a, *b);
                    Arc::new(move |p, ctx| p.compare(op, ty, a, b, ctx))
                }
            },
            Node::Call(func, args) => {
                let (func, args) = (*func, args.clone());
                Arc::new(move |p, ctx| Truth::of(&p.call(func, &args, ctx)))
            }
            Node::Shared(shared, inner) if self.is_test(*inner) => {
                let (f, shared) = (self.closure(*inner), *shared);
                Arc::new(move |p, ctx| shared_truth(ctx, shared, || f(p, ctx)))
            }
            _ => interpreted(id),
        }
    }
}

/// The closure for `property op k`, where `read` finds the property (as
/// [`crate::message::Properties::get`] returns it).
fn prop_test<R>(op: CmpOp, ty: Ty, k: &Value<'static>, read: R) -> Arc<TestFn>
where
    R: for<'m> Fn(&EvalContext<'m>) -> Option<Option<&'m str>> + Send + Sync + 'static,
{
    match (k, op, ty) {
        // `name = 'text'`: an absent property, or one whose value is null, compares as
        // undefined (`ops::compare`).
        (Value::Str(text), CmpOp::Eq | CmpOp::Ne, Ty::String) => {
            let (text, eq) = (text.clone(), op == CmpOp::Eq);
            Arc::new(move |_, ctx| match read(ctx) {
                Some(Some(v)) => Truth::from_bool((v == text) == eq),
                _ => Truth::Undefined,
            })
        }
        _ => {
            let k = k.clone();
            Arc::new(move |_, ctx| {
                let v = EvalContext::string_value(read(ctx)).unwrap_or(Value::Undefined);
                Truth::from(ops::compare(op, ty, &v, &k))
            })
        }
    }
}

/// The closure that has the interpreter evaluate node `id`.
fn interpreted(id: NodeId) -> Arc<TestFn> {
    Arc::new(move |p, ctx| p.truth(id, ctx))
}
