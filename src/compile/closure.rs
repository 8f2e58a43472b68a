//! A program's condition as a tree of closures: the last compilation step.
//!
//! The node interpreter ([`Program::truth`], [`Program::eval_node`]) pays for its generality
//! on every node: a bounds-checked lookup, a dispatch over every kind of node, and a call
//! that saves and restores registers. A route's condition is mostly `AND`, `OR` and `NOT`
//! over comparisons of a property or a `$body` path with a constant, so those shapes become
//! closures specialised for their operand kinds, with the constants moved in, and calling
//! each other directly; property-to-string equality, the commonest test of all, compares
//! bytes without building a value. The usual calls get the same treatment: `is_defined` of a
//! property, `starts_with`/`ends_with`/`contains` with a constant, `lower`/`upper` compared
//! with a constant, and numeric expressions (arithmetic, math built-ins, `as_number`)
//! compared with a number, which evaluate over `Option<f64>`. Any other node, and any
//! operand off the fast shape (a non-ASCII string for a case mapping), is evaluated by the
//! interpreter, so every operator keeps one definition; the differential tests generate each
//! specialised shape and compare it with the reference interpreter.

use super::{ascii_case_cmp, shared_truth, short_integer, Node, NodeId, Program, Truth};
use crate::body::Selected;
use crate::eval::context::selected_value;
use crate::eval::context::PropRef;
use crate::eval::dotnet_double_cmp;
use crate::eval::{ops, EvalContext, Value};
use crate::functions::{math, Func};
use crate::ir::CmpOp;
use crate::ty::Ty;
use std::borrow::Cow;
use std::fmt;

/// A closure-compiled test: given its program (for what the interpreter evaluates) and a
/// context, the truth of the condition.
type TestFn = dyn Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync;

/// The root test of a program ([`Program::seal`]). Boxed, like the closures under it: a
/// call through an `Arc<dyn Fn>` works out the closure's offset in its allocation from the
/// vtable on every call, which cost ~160 instructions per message on routes-10 when every
/// closure was shared. A cloned program builds its own ([`Program`]'s `Clone`).
pub(super) struct Test(Box<TestFn>);

impl Default for Test {
    /// A test that answers undefined, until [`Program::seal`] builds the real one.
    fn default() -> Self {
        Test(Box::new(|_, _| Truth::Undefined))
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
    fn closure(&self, id: NodeId) -> Box<TestFn> {
        match &self.nodes[id as usize] {
            // Plain bool operands (the usual case): Kleene's AND and OR, with the short-circuit.
            // Each side that is one of the commonest leaves is called directly (see `Pair`).
            Node::And(a, b, lt, rt) if Truth::short_circuits(*lt, *rt) => self.leaf_into(
                *a,
                Pair {
                    program: self,
                    b: *b,
                    or: false,
                },
            ),
            Node::Or(a, b, lt, rt) if Truth::short_circuits(*lt, *rt) => self.leaf_into(
                *a,
                Pair {
                    program: self,
                    b: *b,
                    or: true,
                },
            ),
            Node::And(a, b, lt, rt) => {
                let (fa, fb, lt, rt) = (self.closure(*a), self.closure(*b), *lt, *rt);
                let short = Truth::short_circuits(lt, rt);
                Box::new(move |p, ctx| Truth::and_then(short, lt, rt, fa(p, ctx), || fb(p, ctx)))
            }
            Node::Or(a, b, lt, rt) => {
                let (fa, fb, lt, rt) = (self.closure(*a), self.closure(*b), *lt, *rt);
                let short = Truth::short_circuits(lt, rt);
                Box::new(move |p, ctx| Truth::or_else(short, lt, rt, fa(p, ctx), || fb(p, ctx)))
            }
            Node::Not(a, ty) => self.leaf_into(*a, NotOf(*ty)),
            Node::Cmp(op, a, b, ty) => {
                if let Some(f) = self.number_test(*op, *a, *b, *ty) {
                    return f;
                }
                self.cmp_test(*op, *a, *b, *ty)
            }
            Node::Call(func, args) => self.call_test(*func, args, Boxed).unwrap_or_else(|_| {
                let (func, args) = (*func, args.clone());
                Box::new(move |p, ctx| Truth::of(&p.call(func, &args, ctx)))
            }),
            Node::CmpCase {
                op,
                func,
                arg,
                other,
                ty,
                case_left,
            } => {
                let Node::Const(Value::Str(k)) = &self.nodes[*other as usize] else {
                    return interpreted(id);
                };
                if !(k.is_ascii() && matches!(ty, Ty::String | Ty::Body)) {
                    return interpreted(id);
                }
                let (op, lower, case_left, k) = (*op, *func == Func::Lower, *case_left, k.clone());
                // The interpreter's ASCII case, for an ASCII string; anything else is left to
                // the interpreter.
                let holds = move |s: &str| op.holds(ascii_case_cmp(lower, s, &k, case_left));
                if let Some(read) = self.reader(*arg) {
                    return Box::new(move |p, ctx| match read.get(ctx) {
                        Some(Some(s)) if s.is_ascii() => Truth::from_bool(holds(s)),
                        _ => p.truth(id, ctx),
                    });
                }
                // `upper($body.location.country) = 'US'`: the body's string read in place.
                let Node::Body(local, app_override) = &self.nodes[*arg as usize] else {
                    return interpreted(id);
                };
                let (local, app_override) = (*local, app_override.clone());
                Box::new(
                    move |p, ctx| match p.body_value(local, app_override.as_ref(), ctx) {
                        Value::Str(s) if s.is_ascii() => Truth::from_bool(holds(&s)),
                        _ => p.truth(id, ctx),
                    },
                )
            }
            // A constant condition (`true`, the usual fallback route's).
            Node::Const(v) => {
                let t = Truth::of(v);
                Box::new(move |_, _| t)
            }
            Node::Shared(_, inner) if self.is_shared_test(*inner) => self.leaf_into(id, Boxed),
            _ => interpreted(id),
        }
    }

    /// Whether the shared node over `inner` is evaluated as a test, its truth kept for the
    /// message ([`shared_truth`]): a comparison or logical operator (evaluated by
    /// [`Program::truth`]), or one of [`Program::call_test`]'s calls, whose values are only
    /// `true`, `false` and undefined, so that the truth kept is the value kept, whichever of
    /// the programs sharing it reads it first.
    fn is_shared_test(&self, inner: NodeId) -> bool {
        self.is_test(inner)
            || matches!(
                self.nodes[inner as usize],
                Node::Call(
                    Func::IsDefined | Func::StartsWith | Func::EndsWith | Func::Contains,
                    _
                )
            )
    }
}

impl Program {
    /// The closure for comparison `a op b` that is not numeric: a property or `$body` path
    /// against a constant read in place, anything else through [`Program::compare`]. The
    /// two kinds of property get a closure each rather than sharing a [`Reader`]: property
    /// equality is the commonest test, and the reader's dispatch cost it ~10% of the
    /// properties-only table's instructions.
    fn cmp_test(&self, op: CmpOp, a: NodeId, b: NodeId, ty: Ty) -> Box<TestFn> {
        match (&self.nodes[a as usize], &self.nodes[b as usize]) {
            (Node::Prop(name), Node::Const(k)) => {
                let name = name.clone();
                prop_test(op, ty, k, move |ctx| ctx.prop(&name))
            }
            (Node::AppOrSysProp(app, sys), Node::Const(k)) => {
                let (app, sys) = (app.clone(), sys.clone());
                prop_test(op, ty, k, move |ctx| ctx.app_or_sys_prop(&app, &sys))
            }
            (Node::Body(local, app_override), Node::Const(k)) => {
                Box::new(body_test(op, ty, *local, app_override, k))
            }
            _ => Box::new(move |p, ctx| p.compare(op, ty, a, b, ctx)),
        }
    }

    /// Hands `sink` the test of node `id`: as a closure of its own type when it is one of the
    /// commonest leaves (a property compared with a string for equality, a `$body` path
    /// compared with a constant, one of [`Program::call_test`]'s calls), so that the `AND`,
    /// `OR` or `NOT` above it calls it directly and can inline it; as a call of
    /// [`Program::closure`]'s boxed closure otherwise. The leaves are built by the same
    /// functions as [`Program::cmp_test`]'s and `call_test`'s, so each shape keeps one
    /// definition.
    fn leaf_into<S: TestSink>(&self, id: NodeId, sink: S) -> Box<TestFn> {
        match &self.nodes[id as usize] {
            // A shared test around a leaf: the leaf is called directly from the closure that
            // keeps its truth, one call through a box fewer per shared test. (A shared node's
            // inner node is never shared itself.)
            Node::Shared(shared, inner) if self.is_shared_test(*inner) => {
                self.unshared_leaf_into(*inner, SharedOf(*shared, sink))
            }
            _ => self.unshared_leaf_into(id, sink),
        }
    }

    /// [`Program::leaf_into`] for a node that is not shared.
    fn unshared_leaf_into<S: TestSink>(&self, id: NodeId, sink: S) -> Box<TestFn> {
        if let Node::Cmp(op, a, b, ty) = &self.nodes[id as usize] {
            let (op, ty) = (*op, *ty);
            // Neither operand is numeric (a property, a body path, a constant), so
            // `number_test` would decline these and `cmp_test` build the same leaves.
            match (&self.nodes[*a as usize], &self.nodes[*b as usize]) {
                (Node::Prop(name), Node::Const(Value::Str(text))) if string_eq(op, ty) => {
                    let name = name.clone();
                    return sink.take(prop_eq(op, text, move |ctx| ctx.prop(&name)));
                }
                (Node::AppOrSysProp(app, sys), Node::Const(Value::Str(text)))
                    if string_eq(op, ty) =>
                {
                    let (app, sys) = (app.clone(), sys.clone());
                    return sink.take(prop_eq(op, text, move |ctx| {
                        ctx.app_or_sys_prop(&app, &sys)
                    }));
                }
                (Node::Body(local, app_override), Node::Const(k)) => {
                    return sink.take(body_test(op, ty, *local, app_override, k));
                }
                _ => {}
            }
        }
        let sink = match &self.nodes[id as usize] {
            Node::Call(func, args) => match self.call_test(*func, args, sink) {
                Ok(f) => return f,
                Err(sink) => sink,
            },
            _ => sink,
        };
        let f = self.closure(id);
        sink.take(move |p, ctx| f(p, ctx))
    }
}

/// Whether `op` and `ty` make a property-to-string comparison [`prop_eq`]'s shape.
fn string_eq(op: CmpOp, ty: Ty) -> bool {
    matches!(op, CmpOp::Eq | CmpOp::Ne) && ty == Ty::String
}

/// What takes a test closure of a concrete type (see [`Program::leaf_into`]).
trait TestSink {
    fn take<F>(self, f: F) -> Box<TestFn>
    where
        F: Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static;
}

/// Boxes the closure as it is.
struct Boxed;

impl TestSink for Boxed {
    fn take<F>(self, f: F) -> Box<TestFn>
    where
        F: Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static,
    {
        Box::new(f)
    }
}

/// `NOT` of a test of type `.0`, calling the test directly when it is a leaf.
struct NotOf(Ty);

impl TestSink for NotOf {
    fn take<F>(self, f: F) -> Box<TestFn>
    where
        F: Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static,
    {
        let ty = self.0;
        Box::new(move |p, ctx| Truth::not_of(ty, || f(p, ctx)))
    }
}

/// A shared test ([`shared_truth`]) around the test it takes, then handed to `.1`.
struct SharedOf<S>(u32, S);

impl<S: TestSink> TestSink for SharedOf<S> {
    fn take<F>(self, f: F) -> Box<TestFn>
    where
        F: Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static,
    {
        let shared = self.0;
        self.1
            .take(move |p, ctx| shared_truth(ctx, shared, || f(p, ctx)))
    }
}

/// Kleene's `AND` (or `OR`) with the short-circuit, of plain bool operands: takes the left
/// side, then has its program hand the right side to [`PairWith`]. One closure is built for
/// each combination of the sides' types, so a route of two usual tests (`messageType =
/// 'alert' AND $body.type = 'x'`) is one call through a box instead of three, and the sides'
/// branches are not shared by every route's `AND`: callgrind's branch simulation counted the
/// indirect calls from the one `AND` closure as the commonest mispredicted branch of routing.
struct Pair<'a> {
    program: &'a Program,
    b: NodeId,
    or: bool,
}

impl TestSink for Pair<'_> {
    fn take<F>(self, fa: F) -> Box<TestFn>
    where
        F: Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static,
    {
        self.program.leaf_into(self.b, PairWith { fa, or: self.or })
    }
}

/// [`Pair`] with its left side.
struct PairWith<A> {
    fa: A,
    or: bool,
}

impl<A> TestSink for PairWith<A>
where
    A: Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static,
{
    fn take<F>(self, fb: F) -> Box<TestFn>
    where
        F: Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static,
    {
        let fa = self.fa;
        if self.or {
            Box::new(move |p, ctx| match fa(p, ctx) {
                Truth::True => Truth::True,
                x => Truth::from(x.bool3().or(fb(p, ctx).bool3())),
            })
        } else {
            Box::new(move |p, ctx| match fa(p, ctx) {
                Truth::False => Truth::False,
                x => Truth::from(x.bool3().and(fb(p, ctx).bool3())),
            })
        }
    }
}

/// The test `$body.path op k` (path `local` of the program, overridden by the application
/// property `app_override` when the message has it).
fn body_test(
    op: CmpOp,
    ty: Ty,
    local: u32,
    app_override: &Option<PropRef>,
    k: &Value<'static>,
) -> impl Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static {
    let (k, app_override) = (k.clone(), app_override.clone());
    // `$body.path op number`, the commonest body test: a number in the path's slot is compared
    // as `body_compare` compares two numbers, without making a `Selected` of it and matching
    // it against the constant's kind (a jump through a table per test, mispredicted as the
    // routes' kinds alternate). Anything else in the slot takes the general way below.
    let number = match k {
        Value::Number(n) if ty == Ty::Body => Some(n),
        _ => None,
    };
    move |p, ctx| {
        if let Some(v) = ctx.body_override(app_override.as_ref()) {
            return Truth::from(ops::compare(op, ty, &v, &k));
        }
        if let Some(n) = number {
            if let Some(x) = ctx.number_at(local, || &p.paths[local as usize]) {
                return Truth::from_bool(op.holds(dotnet_double_cmp(x, n)));
            }
        }
        match ctx.select_at(local, || &p.paths[local as usize]) {
            Some(s) => body_compare(op, ty, s, &k),
            // An unreadable body: undefined, as `ops::compare` gives it.
            None if ty != Ty::Null => Truth::Undefined,
            None => Truth::from(ops::compare(op, ty, &Value::Undefined, &k)),
        }
    }
}

/// A property operand read in place: its value as [`crate::message::Properties::get`]
/// returns it.
#[derive(Clone)]
enum Reader {
    Prop(PropRef),
    AppOrSys(PropRef, PropRef),
}

impl Reader {
    #[inline(always)]
    fn get<'m>(&self, ctx: &EvalContext<'m>) -> Option<Option<&'m str>> {
        match self {
            Reader::Prop(name) => ctx.prop(name),
            Reader::AppOrSys(app, sys) => ctx.app_or_sys_prop(app, sys),
        }
    }
}

impl Program {
    /// The reader of node `id` when it is a property.
    fn reader(&self, id: NodeId) -> Option<Reader> {
        match &self.nodes[id as usize] {
            Node::Prop(name) => Some(Reader::Prop(name.clone())),
            Node::AppOrSysProp(app, sys) => Some(Reader::AppOrSys(app.clone(), sys.clone())),
            _ => None,
        }
    }

    /// The closure for a call of a usual shape on a property, answered without building
    /// values: `is_defined(p)`, and `starts_with`, `ends_with` and `contains` of a property
    /// and a constant string, handed to `sink` ([`Program::leaf_into`]), which is handed
    /// back for any other call.
    fn call_test<S: TestSink>(
        &self,
        func: Func,
        args: &[NodeId],
        sink: S,
    ) -> Result<Box<TestFn>, S> {
        match (func, args) {
            // An absent property is undefined; a present one, even null, is defined.
            (Func::IsDefined, &[a]) => {
                if let Some(read) = self.reader(a) {
                    return Ok(sink.take(move |_, ctx| Truth::from_bool(read.get(ctx).is_some())));
                }
                // `is_defined($body.path)`: whether the value the interpreter would pass it is
                // defined (a missing path is; an object, as the engine's undefined, is not).
                let Node::Body(local, app_override) = &self.nodes[a as usize] else {
                    return Err(sink);
                };
                let (local, app_override) = (*local, app_override.clone());
                Ok(sink.take(move |p, ctx| {
                    Truth::from_bool(p.body_value(local, app_override.as_ref(), ctx).is_defined())
                }))
            }
            (Func::StartsWith | Func::EndsWith | Func::Contains, &[a, b]) => {
                let Node::Const(Value::Str(t)) = &self.nodes[b as usize] else {
                    return Err(sink);
                };
                let t = t.clone();
                // The substring searcher for the constant is built once, here: `str::contains`
                // set one up on every call, which cost more than the search.
                let finder = memchr::memmem::Finder::new(t.as_bytes()).into_owned();
                let test = move |s: &str| {
                    Truth::from_bool(match func {
                        Func::StartsWith => ops::starts_with(s, &t),
                        Func::EndsWith => ops::ends_with(s, &t),
                        _ => finder.find(s.as_bytes()).is_some(),
                    })
                };
                // Anything but a string (a null string, an absent property, any other body
                // value) is not text: undefined.
                if let Some(read) = self.reader(a) {
                    return Ok(sink.take(move |_, ctx| match read.get(ctx) {
                        Some(Some(s)) => test(s),
                        _ => Truth::Undefined,
                    }));
                }
                let Node::Body(local, app_override) = &self.nodes[a as usize] else {
                    return Err(sink);
                };
                let (local, app_override) = (*local, app_override.clone());
                Ok(sink.take(move |p, ctx| {
                    match ctx.body_override(app_override.as_ref()) {
                        Some(Value::Str(s)) => return test(&s),
                        Some(_) => return Truth::Undefined,
                        None => {}
                    }
                    match ctx.select_at(local, || &p.paths[local as usize]) {
                        Some(Selected::String(s)) => test(&s),
                        _ => Truth::Undefined,
                    }
                }))
            }
            _ => Err(sink),
        }
    }
}

/// A numeric expression's value: the number, or `None` for undefined. Numeric nodes
/// (arithmetic, the math built-ins, `as_number`) yield only a number or undefined, and give
/// undefined for any operand that is not a number, so a number or "not a number" is all an
/// evaluation of them needs to carry.
type NumFn = dyn Fn(&Program, &EvalContext<'_>) -> Option<f64> + Send + Sync;

impl Program {
    /// `numeric op k` or `k op numeric` (a number constant `k`) as a comparison of doubles,
    /// as [`ops::compare`] orders two numbers of type number or body; `None` for other shapes.
    fn number_test(&self, op: CmpOp, a: NodeId, b: NodeId, ty: Ty) -> Option<Box<TestFn>> {
        if !matches!(ty, Ty::Number | Ty::Body) {
            return None;
        }
        let constant = |id: NodeId| match &self.nodes[id as usize] {
            Node::Const(Value::Number(k)) => Some(*k),
            _ => None,
        };
        let (f, k, flip) = match (self.numeric(a), constant(b)) {
            (Some(f), Some(k)) => (f, k, false),
            _ => (self.numeric(b)?, constant(a)?, true),
        };
        Some(Box::new(move |p, ctx| match f(p, ctx) {
            Some(x) if flip => Truth::from_bool(op.holds(dotnet_double_cmp(k, x))),
            Some(x) => Truth::from_bool(op.holds(dotnet_double_cmp(x, k))),
            None => Truth::Undefined,
        }))
    }

    /// Whether [`Program::numeric`] compiles node `id`.
    fn is_numeric(&self, id: NodeId) -> bool {
        match &self.nodes[id as usize] {
            Node::Arith(..) => true,
            Node::Call(func, args) => {
                args.len() == 1
                    && (UNARY_MATH.contains(func)
                        || (*func == Func::AsNumber && self.reader(args[0]).is_some()))
            }
            Node::Shared(_, inner) => self.is_numeric(*inner),
            _ => false,
        }
    }

    /// The closure of numeric node `id` (arithmetic, a math built-in, `as_number` of a
    /// property, or a shared one of these); `None` for any other node.
    fn numeric(&self, id: NodeId) -> Option<Box<NumFn>> {
        if !self.is_numeric(id) {
            return None;
        }
        match &self.nodes[id as usize] {
            Node::Arith(op, a, b, ty) => {
                let (fa, fb) = (self.operand_number(*a), self.operand_number(*b));
                let (op, body) = (*op, *ty == Ty::Body);
                Some(Box::new(move |p, ctx| {
                    let r = ops::arith_f64(op, fa(p, ctx)?, fb(p, ctx)?);
                    // As `ops::arith`: a body number stays defined even when NaN.
                    (body || !r.is_nan()).then_some(r)
                }))
            }
            Node::Call(func, args) if UNARY_MATH.contains(func) => {
                let (fa, func) = (self.operand_number(args[0]), *func);
                Some(Box::new(move |p, ctx| {
                    number_of(&math::unary(func, &Value::Number(fa(p, ctx)?)))
                }))
            }
            Node::Call(Func::AsNumber, args) => {
                let read = self.reader(args[0])?;
                Some(Box::new(move |_, ctx| match read.get(ctx) {
                    Some(Some(s)) => {
                        let v = Value::Str(Cow::Borrowed(s));
                        short_integer(&v).or_else(|| number_of(&math::as_number(&v)))
                    }
                    // A null string or an absent property is not a number.
                    _ => None,
                }))
            }
            Node::Shared(shared, inner) => {
                let (f, shared) = (self.numeric(*inner)?, *shared);
                Some(Box::new(move |p, ctx| match ctx.shared(shared) {
                    Some(Ok(known)) => number_of(&known),
                    Some(Err(store)) => {
                        let r = f(p, ctx);
                        store.keep(&r.map_or(Value::Undefined, Value::Number));
                        r
                    }
                    None => f(p, ctx),
                }))
            }
            _ => None,
        }
    }

    /// The closure of node `id` as an operand of a numeric node: its number, or `None` when
    /// its value is anything else.
    fn operand_number(&self, id: NodeId) -> Box<NumFn> {
        if let Some(f) = self.numeric(id) {
            return f;
        }
        match &self.nodes[id as usize] {
            Node::Const(v) => {
                let n = number_of(v);
                Box::new(move |_, _| n)
            }
            Node::Body(local, app_override) => {
                let (local, app_override) = (*local, app_override.clone());
                Box::new(move |p, ctx| {
                    // An overriding application property is a string: not a number.
                    if let Some(v) = ctx.body_override(app_override.as_ref()) {
                        return number_of(&v);
                    }
                    ctx.number_at(local, || &p.paths[local as usize])
                })
            }
            _ => Box::new(move |p, ctx| number_of(&p.eval_node(id, ctx))),
        }
    }
}

/// The built-ins of one number that `math::unary` computes.
const UNARY_MATH: [Func; 7] = [
    Func::Abs,
    Func::Exp,
    Func::Ceiling,
    Func::Floor,
    Func::Sign,
    Func::Sqrt,
    Func::Square,
];

/// A value's number, `None` for anything else.
#[inline]
fn number_of(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// The closure for `property op k`, where `read` finds the property (as
/// [`crate::message::Properties::get`] returns it).
fn prop_test<R>(op: CmpOp, ty: Ty, k: &Value<'static>, read: R) -> Box<TestFn>
where
    R: for<'m> Fn(&EvalContext<'m>) -> Option<Option<&'m str>> + Send + Sync + 'static,
{
    match (k, op, ty) {
        // `name = 'text'`: an absent property, or one whose value is null, compares as
        // undefined (`ops::compare`).
        (Value::Str(text), CmpOp::Eq | CmpOp::Ne, Ty::String) => Box::new(prop_eq(op, text, read)),
        _ => {
            let k = k.clone();
            Box::new(move |_, ctx| {
                let v = EvalContext::string_value(read(ctx)).unwrap_or(Value::Undefined);
                Truth::from(ops::compare(op, ty, &v, &k))
            })
        }
    }
}

/// `property = 'text'` (or `<>`, `op`), where `read` finds the property: an absent property,
/// or one whose value is null, compares as undefined (`ops::compare`).
fn prop_eq<R>(
    op: CmpOp,
    text: &str,
    read: R,
) -> impl Fn(&Program, &EvalContext<'_>) -> Truth + Send + Sync + 'static
where
    R: for<'m> Fn(&EvalContext<'m>) -> Option<Option<&'m str>> + Send + Sync + 'static,
{
    let (text, eq) = (Box::<str>::from(text), op == CmpOp::Eq);
    move |_, ctx| match read(ctx) {
        Some(Some(v)) => Truth::from_bool(ops::str_eq(v, &text) == eq),
        _ => Truth::Undefined,
    }
}

/// `$body.path op k` on the selected value: a string, number or bool compared with a
/// constant of its own kind (the usual test) is compared in place, as [`ops::compare`] and
/// `Value::body_cmp` order two defined body values of one rank; anything else goes through
/// the value and [`ops::compare`].
#[inline(always)]
fn body_compare(op: CmpOp, ty: Ty, s: Selected<'_>, k: &Value<'static>) -> Truth {
    if ty == Ty::Body {
        let ord = match (&s, k) {
            (Selected::String(x), Value::Str(y)) => {
                if matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Truth::from_bool(ops::str_eq(x, y) == (op == CmpOp::Eq));
                }
                crate::dotnet::compare_ordinal(x, y)
            }
            (Selected::Number(x), Value::Number(y)) => dotnet_double_cmp(*x, *y),
            (Selected::Bool(x), Value::Bool(y)) => x.cmp(y),
            // Values of different kinds order by kind (`Value::body_cmp`); the common
            // case is a path the body lacks (missing, which ranks as null).
            (
                Selected::Missing | Selected::Null,
                Value::Bool(_) | Value::Number(_) | Value::Str(_),
            )
            | (Selected::Bool(_), Value::Number(_) | Value::Str(_) | Value::Null)
            | (Selected::Number(_), Value::Bool(_) | Value::Str(_) | Value::Null)
            | (Selected::String(_), Value::Bool(_) | Value::Number(_) | Value::Null) => {
                selected_value(s).body_rank().cmp(&k.body_rank())
            }
            _ => return Truth::from(ops::compare(op, ty, &selected_value(s), k)),
        };
        return Truth::from_bool(op.holds(ord));
    }
    Truth::from(ops::compare(op, ty, &selected_value(s), k))
}

/// The closure that has the interpreter evaluate node `id`.
fn interpreted(id: NodeId) -> Box<TestFn> {
    Box::new(move |p, ctx| p.truth(id, ctx))
}
