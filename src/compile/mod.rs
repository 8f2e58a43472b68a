//! The compiler: checked [`Ir`] → [`Program`], a flat table of nodes evaluated without
//! allocation, with constants folded and `$body` paths parsed once.
//!
//! Folding evaluates every message-independent subtree once, here, with the same operator
//! code the evaluator uses, so it cannot change a result. Short-circuits are taken only where
//! three-valued logic allows: `false AND x` is false and `true OR x` is true when neither
//! operand can be null (null is absorbing for AND and neutral for OR, R26); body operands never
//! short-circuit (R13).

use crate::body::BodyPath;
use crate::eval::context::{Bag, PropRef};
use crate::eval::{interp, ops, EvalContext, Value};
use crate::functions::{self, Func};
use crate::ir::{ArithOp, CmpOp, Ir, PathTest};
use crate::message::{names, Message};
use crate::ty::Ty;
use smallvec::SmallVec;
use std::borrow::Cow;

mod closure;
mod share;
pub(crate) use share::share;

type NodeId = u32;

#[derive(Clone, Debug)]
enum Node {
    Const(Value<'static>),
    /// Property names are prepared once ([`PropRef`]) for the lookup in every message.
    /// An application or system property (the name knows its bag).
    Prop(PropRef),
    AppOrSysProp(PropRef, PropRef),
    Body(u32, Option<PropRef>),
    Twin(u32),
    PathTest(PathTest, u32),
    Neg(NodeId),
    Not(NodeId, Ty),
    Arith(ArithOp, NodeId, NodeId, Ty),
    Cmp(CmpOp, NodeId, NodeId, Ty),
    /// `lower(x) op y` / `upper(x) op y` (`case_left`), or `y op lower(x)`: compared without
    /// building the mapped string when both are ASCII.
    CmpCase {
        op: CmpOp,
        func: Func,
        arg: NodeId,
        other: NodeId,
        ty: Ty,
        case_left: bool,
    },
    And(NodeId, NodeId, Ty, Ty),
    Or(NodeId, NodeId, Ty, Ty),
    Coalesce(NodeId, NodeId),
    Call(Func, Box<[NodeId]>),
    /// A test that several programs of a route table contain ([`share`]): its value is kept
    /// for the message, under this id, by a context that has a store for it.
    Shared(u32, NodeId),
}

/// A compiled condition: evaluate it with [`Program::eval`].
#[derive(Debug)]
pub struct Program {
    nodes: Vec<Node>,
    root: NodeId,
    ty: Ty,
    paths: Vec<BodyPath>,
    twin_paths: Vec<BodyPath>,
    /// The distinct property names the program reads, each with its bag.
    props: Vec<PropRef>,
    /// The condition as a tree of closures ([`closure`]), rebuilt whenever the nodes change.
    test: closure::Test,
}

impl Clone for Program {
    /// The same program, with its own closure tree built from the nodes.
    fn clone(&self) -> Self {
        let mut program = Program {
            nodes: self.nodes.clone(),
            root: self.root,
            ty: self.ty,
            paths: self.paths.clone(),
            twin_paths: self.twin_paths.clone(),
            props: self.props.clone(),
            test: closure::Test::default(),
        };
        program.seal();
        program
    }
}

/// Compiles checked IR of static type `ty`.
pub fn compile(ir: &Ir, ty: Ty) -> Program {
    let mut c = Compiler {
        nodes: Vec::new(),
        paths: Vec::new(),
        path_text: Vec::new(),
        twin_paths: Vec::new(),
        props: Vec::new(),
        empty: Message::default(),
    };
    let root = c.node(ir);
    let mut program = Program {
        nodes: c.nodes,
        root,
        ty,
        paths: c.paths,
        twin_paths: c.twin_paths,
        props: c.props,
        test: closure::Test::default(),
    };
    program.seal();
    program
}

struct Compiler {
    nodes: Vec<Node>,
    paths: Vec<BodyPath>,
    path_text: Vec<String>,
    twin_paths: Vec<BodyPath>,
    props: Vec<PropRef>,
    empty: Message,
}

impl Compiler {
    fn push(&mut self, n: Node) -> NodeId {
        self.nodes.push(n);
        (self.nodes.len() - 1) as NodeId
    }

    fn path(&mut self, text: &str) -> u32 {
        if let Some(i) = self.path_text.iter().position(|p| p == text) {
            return i as u32;
        }
        self.path_text.push(text.to_string());
        self.paths.push(BodyPath::parse(text));
        (self.paths.len() - 1) as u32
    }

    /// The program's reference to property `name` of `bag`, numbered among its distinct
    /// names.
    fn prop(&mut self, bag: Bag, name: &str) -> PropRef {
        if let Some(p) = self
            .props
            .iter()
            .find(|p| p.bag() == bag && p.name() == name)
        {
            return p.clone();
        }
        let p = PropRef::new(name, bag, self.props.len() as u32);
        self.props.push(p.clone());
        p
    }

    fn node(&mut self, ir: &Ir) -> NodeId {
        if is_constant(ir) {
            let ctx = EvalContext::new(&self.empty);
            let v = interp::eval(ir, &ctx).into_owned();
            return self.push(Node::Const(v));
        }
        let n = match ir {
            Ir::AppProp(name) => Node::Prop(self.prop(Bag::App, name)),
            Ir::SysProp(name) => Node::Prop(self.prop(Bag::Sys, name)),
            // Anti-spoofing: a stamped name reads only what the router stamped, so the test
            // costs nothing per message.
            Ir::AppOrSysProp { sys, .. } if names::is_stamped(sys) => {
                Node::Prop(self.prop(Bag::Sys, sys))
            }
            Ir::AppOrSysProp { app, sys } => {
                Node::AppOrSysProp(self.prop(Bag::App, app), self.prop(Bag::Sys, sys))
            }
            Ir::Body { path, app_override } => {
                let app_override = app_override.as_deref().map(|n| self.prop(Bag::App, n));
                Node::Body(self.path(path), app_override)
            }
            Ir::Twin { section, path } => {
                self.twin_paths
                    .push(BodyPath::parse(&format!("{}{path}", section.prefix())));
                Node::Twin((self.twin_paths.len() - 1) as u32)
            }
            Ir::PathTest(test, path) => Node::PathTest(*test, self.path(path)),
            Ir::ToBody(inner, _) => return self.node(inner),
            Ir::Neg(a) => Node::Neg(self.node(a)),
            Ir::Not(a, ty) => Node::Not(self.node(a), *ty),
            Ir::Arith(op, a, b, ty) => Node::Arith(*op, self.node(a), self.node(b), *ty),
            Ir::Cmp(op, a, b, ty) => {
                let (a, b) = (self.node(a), self.node(b));
                self.cmp(*op, a, b, *ty)
            }
            // AND and OR are symmetric in every operand typing (`ops::and`, `ops::or`) and
            // evaluation has no side effects, so the cheaper operand goes first: a property
            // test that short-circuits then saves reading the body.
            Ir::And(a, b, lt, rt) => {
                let (a, b, lt, rt) = self.cheap_first(a, b, *lt, *rt);
                Node::And(a, b, lt, rt)
            }
            Ir::Or(a, b, lt, rt) => {
                let (a, b, lt, rt) = self.cheap_first(a, b, *lt, *rt);
                Node::Or(a, b, lt, rt)
            }
            Ir::Coalesce(a, b, _) => Node::Coalesce(self.node(a), self.node(b)),
            Ir::Call(func, args) => Node::Call(*func, args.iter().map(|a| self.node(a)).collect()),
            Ir::Str(_) | Ir::Num(_) | Ir::Bool(_) | Ir::Null | Ir::Undefined => {
                unreachable!("constants are folded")
            }
        };
        self.push(n)
    }
}

impl Compiler {
    /// A comparison node, specialised when one side is `lower(x)` / `upper(x)`.
    fn cmp(&self, op: CmpOp, a: NodeId, b: NodeId, ty: Ty) -> Node {
        let case_call = |id: NodeId| match &self.nodes[id as usize] {
            Node::Call(func @ (Func::Lower | Func::Upper), args) if args.len() == 1 => {
                Some((*func, args[0]))
            }
            _ => None,
        };
        let special = |(func, arg): (Func, NodeId), other, case_left| Node::CmpCase {
            op,
            func,
            arg,
            other,
            ty,
            case_left,
        };
        if let Some(call) = case_call(a) {
            special(call, b, true)
        } else if let Some(call) = case_call(b) {
            special(call, a, false)
        } else {
            Node::Cmp(op, a, b, ty)
        }
    }

    /// Compiles both operands of AND/OR and orders them cheaper first, with their types.
    fn cheap_first(&mut self, a: &Ir, b: &Ir, lt: Ty, rt: Ty) -> (NodeId, NodeId, Ty, Ty) {
        let (a, b) = (self.node(a), self.node(b));
        if self.cost(a) > self.cost(b) {
            (b, a, rt, lt)
        } else {
            (a, b, lt, rt)
        }
    }

    /// A rough evaluation cost: constants are free, properties cheap, and anything reading
    /// the body or the twin dear (it may decode and scan the body).
    fn cost(&self, id: NodeId) -> u32 {
        let c = |id: &NodeId| self.cost(*id);
        match &self.nodes[id as usize] {
            Node::Const(_) => 0,
            Node::Prop(_) | Node::AppOrSysProp(..) => 1,
            Node::Body(..) | Node::Twin(_) | Node::PathTest(..) => 1000,
            Node::Neg(a) | Node::Not(a, _) | Node::Shared(_, a) => c(a),
            Node::Arith(_, a, b, _)
            | Node::Cmp(_, a, b, _)
            | Node::And(a, b, ..)
            | Node::Or(a, b, ..)
            | Node::Coalesce(a, b)
            | Node::CmpCase {
                arg: a, other: b, ..
            } => (c(a) + c(b)).saturating_add(1),
            Node::Call(_, args) => args.iter().map(c).fold(1, u32::saturating_add),
        }
    }
}

/// Whether an IR subtree reads nothing from the message.
fn is_constant(ir: &Ir) -> bool {
    match ir {
        Ir::Str(_) | Ir::Num(_) | Ir::Bool(_) | Ir::Null | Ir::Undefined => true,
        Ir::AppProp(_)
        | Ir::SysProp(_)
        | Ir::AppOrSysProp { .. }
        | Ir::Body { .. }
        | Ir::Twin { .. }
        | Ir::PathTest(..) => false,
        Ir::ToBody(a, _) | Ir::Neg(a) | Ir::Not(a, _) => is_constant(a),
        Ir::Arith(_, a, b, _)
        | Ir::Cmp(_, a, b, _)
        | Ir::And(a, b, ..)
        | Ir::Or(a, b, ..)
        | Ir::Coalesce(a, b, _) => is_constant(a) && is_constant(b),
        Ir::Call(_, args) => args.iter().all(is_constant),
    }
}

/// The evaluator's body plan reads a program through this trait, so that `eval` does not
/// import `compile`.
impl crate::eval::Planned for Program {
    fn body_paths(&self) -> &[BodyPath] {
        Program::body_paths(self)
    }

    fn props(&self) -> &[PropRef] {
        Program::props(self)
    }

    fn shared_ids(&self) -> usize {
        Program::shared_ids(self)
    }
}

impl Program {
    /// The static type of the condition.
    pub fn ty(&self) -> Ty {
        self.ty
    }

    /// Whether any node reads the body (`$body` or `twin_change_includes`).
    pub fn reads_body(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n, Node::Body(..) | Node::PathTest(..)))
    }

    /// Whether any node reads the device twin.
    pub fn reads_twin(&self) -> bool {
        !self.twin_paths.is_empty()
    }

    /// The distinct property names this program reads (a [`PropRef`]'s slot indexes this).
    pub(crate) fn props(&self) -> &[PropRef] {
        &self.props
    }

    /// The parsed `$body` paths this program reads.
    pub fn body_paths(&self) -> &[BodyPath] {
        &self.paths
    }

    /// Evaluates the condition's value.
    pub fn value<'c>(&'c self, ctx: &'c EvalContext<'_>) -> Value<'c> {
        self.eval_node(self.root, ctx)
    }

    /// Evaluates the condition: whether the route matches (R12).
    pub fn eval(&self, ctx: &EvalContext<'_>) -> crate::eval::Bool3 {
        use crate::eval::Bool3;
        // `ops::to_route` of the value, which only needs its truth.
        match (self.ty, self.test.run(self, ctx)) {
            (Ty::Null, _) => Bool3::False,
            (Ty::Bool | Ty::Body, Truth::True) => Bool3::True,
            (Ty::Bool | Ty::Body, Truth::False) => Bool3::False,
            _ => Bool3::Undefined,
        }
    }

    /// The truth of node `id`: what the logical operators and a route's verdict read of a
    /// value. Tests (comparisons, `AND`, `OR`, `NOT`) are evaluated here, without building a
    /// [`Value`] for each operand and result, and reading their common operands (constants,
    /// properties, `$body` paths) in place rather than through a recursive call: that
    /// overhead was most of the cost of evaluating a route. A test's value is always one of
    /// the four truths, so [`Program::eval_node`] gives a test's value from here.
    fn truth(&self, id: NodeId, ctx: &EvalContext<'_>) -> Truth {
        match &self.nodes[id as usize] {
            Node::Cmp(op, a, b, ty) => self.compare(*op, *ty, *a, *b, ctx),
            Node::And(a, b, lt, rt) => {
                let short = Truth::short_circuits(*lt, *rt);
                Truth::and_then(short, *lt, *rt, self.truth(*a, ctx), || self.truth(*b, ctx))
            }
            Node::Or(a, b, lt, rt) => {
                let short = Truth::short_circuits(*lt, *rt);
                Truth::or_else(short, *lt, *rt, self.truth(*a, ctx), || self.truth(*b, ctx))
            }
            Node::Not(a, ty) => Truth::not_of(*ty, || self.truth(*a, ctx)),
            Node::Shared(shared, inner) if self.is_test(*inner) => {
                shared_truth(ctx, *shared, || self.truth(*inner, ctx))
            }
            _ => Truth::of(&self.eval_node(id, ctx)),
        }
    }

    /// Whether node `id` is evaluated by [`Program::truth`] (its value is a truth).
    fn is_test(&self, id: NodeId) -> bool {
        matches!(
            self.nodes[id as usize],
            Node::Cmp(..) | Node::And(..) | Node::Or(..) | Node::Not(..)
        )
    }

    /// `a op b` (operands of static type `ty`), with the operands read in place.
    #[inline(always)]
    fn compare(&self, op: CmpOp, ty: Ty, a: NodeId, b: NodeId, ctx: &EvalContext<'_>) -> Truth {
        let x = self.operand(a, ctx);
        Truth::from(ops::compare(op, ty, &x, &self.operand(b, ctx)))
    }

    /// `func(args)`, with the arguments read in place. Fixed-size arrays for the usual
    /// arities: collecting into a `SmallVec` was a quarter of the cost of evaluating
    /// property-only conditions.
    #[inline(always)]
    fn call<'c>(&'c self, func: Func, args: &[NodeId], ctx: &'c EvalContext<'_>) -> Value<'c> {
        match *args {
            [] => functions::call(func, &mut []),
            [a] => {
                let a = self.operand(a, ctx);
                if func == Func::AsNumber {
                    if let Some(n) = short_integer(&a) {
                        return Value::Number(n);
                    }
                }
                functions::call(func, &mut [a])
            }
            [a, b] => {
                let a = self.operand(a, ctx);
                functions::call(func, &mut [a, self.operand(b, ctx)])
            }
            [a, b, c] => {
                let (a, b) = (self.operand(a, ctx), self.operand(b, ctx));
                functions::call(func, &mut [a, b, self.operand(c, ctx)])
            }
            _ => {
                let mut values: SmallVec<[Value<'c>; 4]> =
                    args.iter().map(|&a| self.operand(a, ctx)).collect();
                functions::call(func, &mut values)
            }
        }
    }

    /// `$body` path `local` of this program (or the application property overriding it) as
    /// the interpreter reads it: the one read of a body value that the interpreter and the
    /// closures built for body paths share.
    #[inline(always)]
    fn body_value<'c>(
        &self,
        local: u32,
        app_override: Option<&PropRef>,
        ctx: &'c EvalContext<'_>,
    ) -> Value<'c> {
        ctx.body_value_at(local, &self.paths[local as usize], app_override)
    }

    /// The value of an operand: constants, properties and `$body` paths read in place, anything
    /// else evaluated.
    #[inline(always)]
    fn operand<'c>(&'c self, id: NodeId, ctx: &'c EvalContext<'_>) -> Value<'c> {
        match &self.nodes[id as usize] {
            Node::Const(v) => borrow(v),
            Node::Prop(name) => ctx.prop_ref(name),
            Node::Body(path, app_override) => self.body_value(*path, app_override.as_ref(), ctx),
            _ => self.eval_node(id, ctx),
        }
    }

    fn eval_node<'c>(&'c self, id: NodeId, ctx: &'c EvalContext<'_>) -> Value<'c> {
        match &self.nodes[id as usize] {
            Node::Shared(shared, inner) => match ctx.shared(*shared) {
                Some(Ok(known)) => known,
                Some(Err(store)) => {
                    let v = self.eval_node(*inner, ctx);
                    store.keep(&v);
                    v
                }
                None => self.eval_node(*inner, ctx),
            },
            Node::Const(v) => borrow(v),
            Node::Prop(name) => ctx.prop_ref(name),
            Node::AppOrSysProp(app, sys) => ctx.app_or_sys_ref(app, sys),
            Node::Body(path, app_override) => self.body_value(*path, app_override.as_ref(), ctx),
            Node::Twin(path) => ctx.twin_value(&self.twin_paths[*path as usize]),
            Node::PathTest(test, path) => {
                ctx.path_test_at(*test, *path, &self.paths[*path as usize])
            }
            Node::Neg(a) => ops::neg(&self.eval_node(*a, ctx)),
            Node::Not(..) | Node::Cmp(..) | Node::And(..) | Node::Or(..) => {
                self.truth(id, ctx).value()
            }
            Node::Arith(op, a, b, ty) => {
                ops::arith(*op, *ty, &self.eval_node(*a, ctx), &self.eval_node(*b, ctx))
            }
            Node::CmpCase {
                op,
                func,
                arg,
                other,
                ty,
                case_left,
            } => {
                let x = self.eval_node(*arg, ctx);
                let y = self.eval_node(*other, ctx);
                if let (Value::Str(s), Value::Str(t), Ty::String | Ty::Body) = (&x, &y, ty) {
                    if s.is_ascii() && t.is_ascii() {
                        let ord = ascii_case_cmp(*func == Func::Lower, s, t, *case_left);
                        return Value::Bool(op.holds(ord));
                    }
                }
                let mapped = functions::call(*func, &mut [x]);
                let (l, r) = if *case_left {
                    (&mapped, &y)
                } else {
                    (&y, &mapped)
                };
                Value::bool3(ops::compare(*op, *ty, l, r))
            }
            Node::Coalesce(a, b) => {
                let left = self.eval_node(*a, ctx);
                if left.is_defined() {
                    left
                } else {
                    self.eval_node(*b, ctx)
                }
            }
            Node::Call(func, args) => self.call(*func, args, ctx),
        }
    }
}

/// How `lower(s)` (or `upper(s)`) orders against `t`, both ASCII (`case_left`; else the
/// reverse, `t` against the mapped `s`): invariant case mapping of ASCII is ASCII case mapping,
/// and the ordinal (UTF-16) order of ASCII strings is their byte order.
#[inline(always)]
fn ascii_case_cmp(lower: bool, s: &str, t: &str, case_left: bool) -> std::cmp::Ordering {
    let map = |c: u8| {
        if lower {
            c.to_ascii_lowercase()
        } else {
            c.to_ascii_uppercase()
        }
    };
    let ord = s.bytes().map(map).cmp(t.bytes());
    if case_left {
        ord
    } else {
        ord.reverse()
    }
}

/// `as_number` of the usual property value, a short unsigned integer (`"5"`), computed
/// directly: `double.TryParse` of 1 to 15 ASCII digits and nothing else is exactly their
/// integer value, and the general parser (every `NumberStyles.Any` form) costs far more.
#[inline]
fn short_integer(v: &Value<'_>) -> Option<f64> {
    let Value::Str(s) = v else { return None };
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 15 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')) as f64)
}

/// What the logical operators and a route's verdict read of a value: a bool, null, or
/// anything else (undefined). Tests only ever yield these four values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Null,
    Undefined,
}

impl Truth {
    /// A bool's truth.
    #[inline]
    fn from_bool(b: bool) -> Truth {
        if b {
            Truth::True
        } else {
            Truth::False
        }
    }

    /// The truth of a value.
    #[inline]
    fn of(v: &Value<'_>) -> Truth {
        match v {
            Value::Bool(true) => Truth::True,
            Value::Bool(false) => Truth::False,
            Value::Null => Truth::Null,
            _ => Truth::Undefined,
        }
    }

    /// The value a test with this truth has.
    #[inline]
    fn value(self) -> Value<'static> {
        match self {
            Truth::True => Value::Bool(true),
            Truth::False => Value::Bool(false),
            Truth::Null => Value::Null,
            Truth::Undefined => Value::Undefined,
        }
    }

    /// [`ops::and`] on truths.
    #[inline]
    fn and(lt: Ty, rt: Ty, a: Truth, b: Truth) -> Truth {
        if lt == Ty::Body {
            return match (a, b) {
                (Truth::True, Truth::True) => Truth::True,
                (Truth::True | Truth::False, Truth::True | Truth::False) => Truth::False,
                _ => Truth::Undefined,
            };
        }
        if lt == Ty::Null || rt == Ty::Null {
            return Truth::Null;
        }
        Truth::from(a.bool3().and(b.bool3()))
    }

    /// [`ops::or`] on truths.
    #[inline]
    fn or(lt: Ty, rt: Ty, a: Truth, b: Truth) -> Truth {
        if lt == Ty::Body {
            return match (a, b) {
                (Truth::False, Truth::False) => Truth::False,
                (Truth::True | Truth::False, Truth::True | Truth::False) => Truth::True,
                _ => Truth::Undefined,
            };
        }
        match (lt, rt) {
            (Ty::Null, Ty::Null) => Truth::Null,
            (Ty::Null, _) => b,
            (_, Ty::Null) => a,
            _ => Truth::from(a.bool3().or(b.bool3())),
        }
    }

    /// Whether Kleene's short-circuit is exact for `AND`/`OR` operands of these types
    /// (known when the program is compiled, so a closure decides it once).
    #[inline]
    fn short_circuits(lt: Ty, rt: Ty) -> bool {
        is_plain_bool(lt) && is_plain_bool(rt)
    }

    /// `a AND b`, where `b` is evaluated only if the result needs it: not when `a` is false
    /// and `short` ([`Truth::short_circuits`]) says that decides it.
    #[inline(always)]
    fn and_then(short: bool, lt: Ty, rt: Ty, a: Truth, b: impl FnOnce() -> Truth) -> Truth {
        if short && a == Truth::False {
            return Truth::False;
        }
        Truth::and(lt, rt, a, b())
    }

    /// `a OR b`, where `b` is evaluated only if the result needs it (see [`Truth::and_then`]).
    #[inline(always)]
    fn or_else(short: bool, lt: Ty, rt: Ty, a: Truth, b: impl FnOnce() -> Truth) -> Truth {
        if short && a == Truth::True {
            return Truth::True;
        }
        Truth::or(lt, rt, a, b())
    }

    /// `NOT a`, where `a` is not evaluated when it is null-typed (`NOT null` is true).
    #[inline(always)]
    fn not_of(ty: Ty, a: impl FnOnce() -> Truth) -> Truth {
        match ty {
            Ty::Null => Truth::True,
            _ => Truth::not(ty, a()),
        }
    }

    /// [`ops::not`] on a truth.
    #[inline]
    fn not(ty: Ty, a: Truth) -> Truth {
        match (ty, a) {
            (Ty::Null, _) => Truth::True,
            (_, Truth::True) => Truth::False,
            (_, Truth::False) => Truth::True,
            _ => Truth::Undefined,
        }
    }

    /// `Value::as_bool3` of the value.
    #[inline]
    fn bool3(self) -> crate::eval::Bool3 {
        use crate::eval::Bool3;
        match self {
            Truth::True => Bool3::True,
            Truth::False => Bool3::False,
            _ => Bool3::Undefined,
        }
    }
}

impl From<crate::eval::Bool3> for Truth {
    #[inline]
    fn from(b: crate::eval::Bool3) -> Truth {
        use crate::eval::Bool3;
        match b {
            Bool3::True => Truth::True,
            Bool3::False => Truth::False,
            Bool3::Undefined => Truth::Undefined,
        }
    }
}

/// The truth of shared test `shared` ([`share`]) for the message: kept from an earlier route
/// when the context keeps results, else `eval`, whose result is then kept.
#[inline(always)]
fn shared_truth(ctx: &EvalContext<'_>, shared: u32, eval: impl FnOnce() -> Truth) -> Truth {
    match ctx.shared(shared) {
        Some(Ok(known)) => Truth::of(&known),
        Some(Err(store)) => {
            let t = eval();
            store.keep(&t.value());
            t
        }
        None => eval(),
    }
}

/// Operand types for which Kleene short-circuits are exact.
fn is_plain_bool(ty: Ty) -> bool {
    matches!(ty, Ty::Bool | Ty::Undefined)
}

/// A borrowed copy of a constant (no allocation for strings).
fn borrow<'c>(v: &'c Value<'static>) -> Value<'c> {
    match v {
        Value::Str(s) => Value::Str(Cow::Borrowed(s.as_ref())),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logical operators on truths give the truth of the operators on values, for every
    /// operand typing and every kind of value.
    #[test]
    fn truth_operators_agree_with_value_operators() {
        let values = [
            Value::Bool(true),
            Value::Bool(false),
            Value::Null,
            Value::Undefined,
            Value::Missing,
            Value::Number(1.0),
            Value::Str(Cow::Borrowed("x")),
            Value::NullStr,
        ];
        let tys = [
            Ty::String,
            Ty::Number,
            Ty::Bool,
            Ty::Null,
            Ty::Undefined,
            Ty::Body,
        ];
        for lt in tys {
            for rt in tys {
                for a in &values {
                    for b in &values {
                        let (ta, tb) = (Truth::of(a), Truth::of(b));
                        assert_eq!(
                            Truth::and(lt, rt, ta, tb),
                            Truth::of(&ops::and(lt, rt, a, b)),
                            "{lt:?} {rt:?} {a:?} AND {b:?}"
                        );
                        // OR passes a null-typed side's partner through as it is: a test's
                        // value, which is always a truth's.
                        if lt != Ty::Null && rt != Ty::Null
                            || Truth::of(a).value() == *a && Truth::of(b).value() == *b
                        {
                            assert_eq!(
                                Truth::or(lt, rt, ta, tb),
                                Truth::of(&ops::or(lt, rt, a, b)),
                                "{lt:?} {rt:?} {a:?} OR {b:?}"
                            );
                        }
                    }
                }
                for a in &values {
                    assert_eq!(
                        Truth::not(lt, Truth::of(a)),
                        Truth::of(&ops::not(lt, a)),
                        "NOT {a:?} {lt:?}"
                    );
                }
            }
        }
    }

    /// The direct conversion agrees with `as_number`'s general parser.
    #[test]
    fn short_integer_agrees_with_as_number() {
        for text in [
            "0",
            "5",
            "007",
            "123456789012345",
            "1234567890123456",
            "",
            "5 ",
            "-5",
            "1e3",
        ] {
            let v = Value::Str(Cow::Borrowed(text));
            if let Some(n) = short_integer(&v) {
                assert_eq!(
                    functions::call(Func::AsNumber, &mut [v]),
                    Value::Number(n),
                    "{text}"
                );
            } else {
                assert!(
                    text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) || text.is_empty()
                );
            }
        }
    }
}
