//! The checker: name resolution and static types, `Ast ──check──▶ Ir`.
//!
//! It follows the reference engine's `ConditionVisitor` rule for rule: what the engine rejects
//! is an error here (R10, R13, R17, R24), with the engine's message; a rejected sub-expression
//! becomes the undefined constant of type undefined and checking goes on, so one condition can
//! report several errors, as the engine does. Warnings (lints) flag conditions the engine
//! accepts but that cannot mean what their author wanted.

mod dialect;
mod lint;

pub use dialect::{Dialect, HubRule};

/// The static types live in [`crate::ty`], below the checker, the built-ins and the IR that
/// all use them; re-exported here, where they are decided.
pub use crate::ty::Ty;

use crate::body::{validate_body_path, validate_twin_change_path};
use crate::diagnostic::{codes, CompileError, Diagnostic};
use crate::dotnet::eq_ignore_case;
use crate::functions::{self, Func};
use crate::ir::{ArithOp, CmpOp, Ir, PathTest, TwinSection};
use crate::span::Span;
use crate::syntax::{Ast, BinaryOp, Expr, ExprKind, Invalid, Literal, UnaryOp};

/// What the condition may use. The reference engine's `RouteCompilerFlags` plus the route's
/// source, and the dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `$body.path` reads the message body (R11); off, it is an ordinary `$` property.
    pub body_query: bool,
    /// `twin_change_includes` is available (R24), if the route's source is twin changes.
    pub twin_change_includes: bool,
    /// The route's source is twin-change events (`twinChangeEvents`).
    pub twin_change_source: bool,
    /// IoT Hub's documented language, or the Edge engine's exact one.
    pub dialect: Dialect,
}

impl Options {
    /// IoT Hub's behaviour for a device-message route: the hub dialect, body queries on.
    pub fn iot_hub() -> Self {
        Options {
            body_query: true,
            twin_change_includes: true,
            twin_change_source: false,
            dialect: Dialect::Hub,
        }
    }

    /// The Edge engine with no compiler flags (`RouteCompilerFlags.None`).
    pub fn edge_none() -> Self {
        Options {
            body_query: false,
            twin_change_includes: false,
            twin_change_source: false,
            dialect: Dialect::Edge,
        }
    }

    /// Whether IoT Hub's documented language applies (not the Edge engine's).
    pub fn hub(&self) -> bool {
        self.dialect == Dialect::Hub
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::iot_hub()
    }
}

/// A condition that passed the checker.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// The checked expression (`Ir::Undefined` for an empty condition).
    pub ir: Ir,
    /// Its static type, which decides how the result converts to a route match (R12).
    pub ty: Ty,
    /// Lints.
    pub warnings: Vec<Diagnostic>,
    /// The hub dialect's rules this condition relied on, where the Edge engine would read it
    /// differently (empty in the Edge dialect).
    pub hub_rules: Vec<HubRule>,
}

/// Checks a parsed condition. `source` is the text it was parsed from (for messages).
pub fn check(ast: &Ast, source: &str, options: &Options) -> Result<Checked, CompileError> {
    let mut checker = Checker {
        source,
        options,
        errors: Vec::new(),
        warnings: Vec::new(),
        hub_rules: Vec::new(),
    };
    let (ir, ty) = match &ast.root {
        Some(root) => checker.expr(root),
        None => (Ir::Undefined, Ty::Undefined),
    };
    if let Some(trailing) = ast.trailing {
        checker.warnings.push(lint::trailing(source, trailing));
    }
    if checker.errors.is_empty() {
        if let Some(root) = &ast.root {
            if let Some(w) = lint::never_true(ty, root.span) {
                checker.warnings.push(w);
            }
        }
        Ok(Checked {
            ir,
            ty,
            warnings: checker.warnings,
            hub_rules: checker.hub_rules,
        })
    } else {
        let mut all = checker.errors;
        all.extend(checker.warnings);
        Err(CompileError(all))
    }
}

struct Checker<'a> {
    source: &'a str,
    options: &'a Options,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    hub_rules: Vec<HubRule>,
}

const UNDEFINED: (Ir, Ty) = (Ir::Undefined, Ty::Undefined);

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && eq_ignore_case(&s[..prefix.len()], prefix)
}

fn boxed(ir: Ir) -> Box<Ir> {
    Box::new(ir)
}

impl Checker<'_> {
    /// Records that a hub-dialect rule decided something.
    fn hub_rule(&mut self, rule: HubRule) {
        if !self.hub_rules.contains(&rule) {
            self.hub_rules.push(rule);
        }
    }

    fn text(&self, span: Span) -> &str {
        &self.source[span.range()]
    }

    fn error(&mut self, code: &'static str, span: Span, message: String) -> (Ir, Ty) {
        self.errors.push(Diagnostic::error(code, span, message));
        UNDEFINED
    }

    fn operand_error(&mut self, op_span: Span, have: &[Ty], expected: &[Ty]) -> (Ir, Ty) {
        let quote = |ts: &[Ty]| {
            ts.iter()
                .map(|t| format!("'{}'", t.name()))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let arity = match expected.len() {
            1 => "unary ",
            2 => "binary ",
            _ => "",
        };
        let message = format!(
            "Invalid operands to {arity}operator '{}': have {}, expected {}",
            self.text(op_span),
            quote(have),
            quote(expected)
        );
        self.error(codes::OPERAND_TYPES, op_span, message)
    }

    fn expr(&mut self, e: &Expr) -> (Ir, Ty) {
        match &e.kind {
            ExprKind::Literal(lit) => literal(lit),
            ExprKind::Property(name) => self.property(name),
            ExprKind::SysProperty(token) => self.sys_property(token, e.span),
            ExprKind::SysPropertyEscaped(token) => self.escaped_sys_property(token, e.span),
            ExprKind::Call {
                name,
                name_span,
                args,
                raw_args,
            } => self.call(name, *name_span, args, raw_args),
            ExprKind::Unary {
                op,
                op_span,
                operand,
            } => self.unary(*op, *op_span, operand),
            ExprKind::Binary {
                op,
                op_span,
                left,
                right,
            } => self.binary(*op, *op_span, left, right),
            ExprKind::Invalid(invalid) => self.invalid(invalid, e.span),
        }
    }

    fn invalid(&mut self, invalid: &Invalid, span: Span) -> (Ir, Ty) {
        match invalid {
            Invalid::Symbol { symbol, .. } => {
                let message = format!("Syntax error: invalid symbol '{}'", self.text(*symbol));
                self.error(codes::INVALID_SYMBOL, *symbol, message)
            }
            Invalid::ExtraParen { paren, .. } => self.error(
                codes::UNMATCHED_PAREN,
                *paren,
                "Syntax error: unmatched closing ')'".into(),
            ),
            Invalid::MissingParen { paren, .. } => self.error(
                codes::MISSING_PAREN,
                *paren,
                "Syntax error: missing closing ')'".into(),
            ),
            Invalid::UnterminatedString { value, .. } => {
                self.error(
                    codes::UNTERMINATED_STRING,
                    span,
                    "Syntax error: unterminated string".into(),
                );
                (Ir::Str(value.clone()), Ty::String)
            }
        }
    }

    /// `$body.path` when body queries are on: `Some` body read, or the undefined constant
    /// after reporting a bad path.
    fn body_query(&mut self, token: &str, span: Span, app_override: bool) -> Option<(Ir, Ty)> {
        if !starts_with_ci(token, "$body.") {
            return None;
        }
        if !self.options.body_query {
            self.warnings.push(lint::body_query_disabled(token, span));
            return None;
        }
        let path = &token["$body.".len()..];
        let problem = if path.is_empty() {
            Some("$body query cannot be empty".to_string())
        } else {
            validate_body_path(path).err().map(|e| e.to_string())
        };
        if let Some(problem) = problem {
            return Some(self.error(
                codes::BODY_PATH,
                span,
                format!("Invalid $body query '{token}': {problem}"),
            ));
        }
        let ir = Ir::Body {
            path: path.to_string(),
            app_override: app_override.then(|| token.to_string()),
        };
        Some((ir, Ty::Body))
    }

    fn twin(&mut self, token: &str, span: Span) -> Option<(Ir, Ty)> {
        if !self.options.hub() || !starts_with_ci(token, "$twin.") {
            return None;
        }
        let rest = &token["$twin.".len()..];
        let sections = [
            ("tags.", TwinSection::Tags),
            ("properties.desired.", TwinSection::Desired),
            ("properties.reported.", TwinSection::Reported),
        ];
        for (prefix, section) in sections {
            if starts_with_ci(rest, prefix) {
                let path = &rest[prefix.len()..];
                if let Err(e) = validate_body_path(path) {
                    return Some(self.error(
                        codes::BODY_PATH,
                        span,
                        format!("Invalid $twin reference '{token}': {e}"),
                    ));
                }
                let ir = Ir::Twin {
                    section,
                    path: path.to_string(),
                };
                self.hub_rule(HubRule::Twin);
                return Some((ir, Ty::Body));
            }
        }
        Some(self.error(
            codes::BODY_PATH,
            span,
            format!("Invalid $twin reference '{token}': it must start with $twin.tags., $twin.properties.desired. or $twin.properties.reported."),
        ))
    }

    /// A bare name: an application property (R01). In the hub dialect a system-property
    /// keyword Learn documents without `$` (`enqueuedTime`) reads that system property, and the
    /// application property of the name only when the message lacks it, so that a device
    /// cannot override what the hub stamps.
    fn property(&mut self, name: &str) -> (Ir, Ty) {
        let app = Ir::AppProp(name.to_string());
        match DOLLARLESS_KEYWORDS.iter().find(|k| eq_ignore_case(k, name)) {
            Some(keyword) if self.options.hub() => {
                self.hub_rule(HubRule::DollarlessKeyword);
                let sys = Ir::SysProp(keyword.to_string());
                (Ir::Coalesce(boxed(sys), boxed(app), Ty::String), Ty::String)
            }
            _ => (app, Ty::String),
        }
    }

    /// `$body` alone or indexed (`$body[0]`) in the hub dialect: Learn documents it as not
    /// supported and undefined, so it is an undefined body value (which meets any operand),
    /// with a warning, where the Edge engine reads a property named `body...`.
    fn whole_body(&mut self, token: &str, span: Span) -> Option<(Ir, Ty)> {
        let whole = eq_ignore_case(token, "$body")
            || (starts_with_ci(token, "$body[") && !starts_with_ci(token, "$body."));
        if !(whole && self.options.hub() && self.options.body_query) {
            return None;
        }
        self.warnings.push(lint::whole_body(token, span));
        self.hub_rule(HubRule::WholeBody);
        Some((Ir::ToBody(boxed(Ir::Undefined), Ty::Undefined), Ty::Body))
    }

    /// `$x` (R01, R11): body query, then the application property `$x`, then the system
    /// property `x`. A name with brackets that is no body query is undefined.
    fn sys_property(&mut self, token: &str, span: Span) -> (Ir, Ty) {
        if let Some(twin) = self.twin(token, span) {
            return twin;
        }
        if let Some(body) = self.whole_body(token, span) {
            return body;
        }
        let has_brackets = token.contains(['[', ']']);
        match self.body_query(token, span, !has_brackets) {
            Some(body) => body,
            None if has_brackets => UNDEFINED,
            None => (
                Ir::AppOrSysProp {
                    app: token.to_string(),
                    sys: token[1..].to_string(),
                },
                Ty::String,
            ),
        }
    }

    /// `{$x}` (R02): body query or system property, never an application property.
    fn escaped_sys_property(&mut self, token: &str, span: Span) -> (Ir, Ty) {
        if let Some(twin) = self.twin(token, span) {
            return twin;
        }
        if let Some(body) = self.whole_body(token, span) {
            return body;
        }
        match self.body_query(token, span, false) {
            Some(body) => body,
            None if token.contains(['[', ']']) => UNDEFINED,
            None => (Ir::SysProp(token[1..].to_string()), Ty::String),
        }
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Expr], raw_args: &str) -> (Ir, Ty) {
        if eq_ignore_case(name, functions::TWIN_CHANGE_INCLUDES) {
            return self.twin_change_includes(name, name_span, raw_args);
        }
        let Some(builtin) = functions::lookup(name, self.options.hub()) else {
            return self.error(
                codes::UNKNOWN_FUNCTION,
                name_span,
                format!("Invalid built-in function '{name}'"),
            );
        };
        if !eq_ignore_case(builtin.name, name) {
            self.hub_rule(HubRule::FunctionSpelling);
        } else if functions::HUB_BUILTINS
            .iter()
            .any(|b| b.name == builtin.name)
        {
            self.hub_rule(HubRule::TypeTests);
        }
        let (irs, tys): (Vec<Ir>, Vec<Ty>) = args.iter().map(|a| self.expr(a)).unzip();
        let Some(overload) = builtin.resolve(&tys) else {
            let given: Vec<&str> = tys.iter().map(|t| t.name()).collect();
            return self.error(
                codes::ARGUMENTS,
                name_span,
                format!(
                    "Invalid arguments to built-in function '{name}': {name}({})",
                    given.join(", ")
                ),
            );
        };
        let irs = if overload.query_value {
            irs.into_iter()
                .zip(tys)
                .map(|(ir, ty)| to_body(ir, ty))
                .collect()
        } else {
            irs
        };
        if let Some(test) = self.path_test(builtin.name, &irs) {
            return (test, Ty::Bool);
        }
        (Ir::Call(overload.func, irs), overload.ret)
    }

    /// The hub dialect's `is_array` / `is_object` / `is_primitive` of a `$body.path`, which
    /// must see the JSON kind at the path (an application property overriding the token is
    /// not consulted: those functions are IoT Hub's, and IoT Hub has no such override).
    fn path_test(&self, name: &str, irs: &[Ir]) -> Option<Ir> {
        let test = match name {
            "is_array" => PathTest::IsArray,
            "is_object" => PathTest::IsObject,
            "is_primitive" => PathTest::IsPrimitive,
            _ => return None,
        };
        match irs {
            [Ir::Body { path, .. }] if self.options.hub() => Some(Ir::PathTest(test, path.clone())),
            _ => None,
        }
    }

    fn twin_change_includes(&mut self, name: &str, name_span: Span, raw_args: &str) -> (Ir, Ty) {
        if !(self.options.twin_change_includes && self.options.twin_change_source) {
            self.errors.push(
                Diagnostic::error(
                    codes::UNKNOWN_FUNCTION,
                    name_span,
                    format!("Invalid built-in function '{name}'"),
                )
                .with_note("twin_change_includes is available only in routes whose source is twin change events (TwinChangeEvents)"),
            );
            return UNDEFINED;
        }
        let problem = if raw_args.is_empty() {
            Some("twin_change_includes argument cannot be empty".to_string())
        } else {
            validate_twin_change_path(raw_args)
                .err()
                .map(|e| e.to_string())
        };
        match problem {
            Some(p) => self.error(
                codes::ARGUMENTS,
                name_span,
                format!(
                    "Invalid arguments to built-in function '{name}': {name}(string). Error: {p}"
                ),
            ),
            None => (
                Ir::PathTest(PathTest::Includes, raw_args.to_string()),
                Ty::Bool,
            ),
        }
    }

    fn unary(&mut self, op: UnaryOp, op_span: Span, operand: &Expr) -> (Ir, Ty) {
        let before = self.errors.len();
        let (ir, ty) = self.expr(operand);
        let after = self.errors.len();
        let result = self.unary_typed(op, op_span, (ir, ty));
        self.mark_following(before, after);
        result
    }

    /// Marks the errors from `after` on as consequences when the operands' checking (errors
    /// `before..after`) already failed: the operator then only sees their stand-in type.
    fn mark_following(&mut self, before: usize, after: usize) {
        if after > before {
            for d in &mut self.errors[after..] {
                d.follows = true;
            }
        }
    }

    fn unary_typed(&mut self, op: UnaryOp, op_span: Span, (ir, ty): (Ir, Ty)) -> (Ir, Ty) {
        match (op, ty) {
            (UnaryOp::Neg, Ty::Number) => (Ir::Neg(boxed(ir)), Ty::Number),
            (UnaryOp::Neg, Ty::Body) => self.unsupported(
                op_span,
                "the reference engine cannot negate a body value (it has no unary minus for QueryValue)",
            ),
            (UnaryOp::Neg, _) => self.operand_error(op_span, &[ty], &[Ty::Number]),
            (UnaryOp::Not, Ty::Bool | Ty::Null | Ty::Body) => (Ir::Not(boxed(ir), ty), Ty::Bool),
            (UnaryOp::Not, _) => self.operand_error(op_span, &[ty], &[Ty::Bool]),
        }
    }

    fn unsupported(&mut self, span: Span, why: &str) -> (Ir, Ty) {
        self.errors.push(
            Diagnostic::error(
                codes::UNSUPPORTED_OPERATION,
                span,
                format!("Unsupported operation '{}'", self.text(span)),
            )
            .with_note(why.to_string())
            .with_note(
                "IoT Hub rejects this condition (its compiler fails with an internal error)",
            ),
        );
        UNDEFINED
    }

    fn binary(&mut self, op: BinaryOp, op_span: Span, left: &Expr, right: &Expr) -> (Ir, Ty) {
        let before = self.errors.len();
        let (l, lt) = self.expr(left);
        let (r, rt) = self.expr(right);
        let after = self.errors.len();
        let result = self.binary_typed(op, op_span, (l, lt), (r, rt));
        self.mark_following(before, after);
        result
    }

    fn binary_typed(
        &mut self,
        op: BinaryOp,
        op_span: Span,
        (l, lt): (Ir, Ty),
        (r, rt): (Ir, Ty),
    ) -> (Ir, Ty) {
        use BinaryOp::*;
        match op {
            Mul | Div | Mod | Add | Sub => self.arith(op, op_span, (l, lt), (r, rt)),
            Concat => {
                let ok = |t: Ty| matches!(t, Ty::String | Ty::Body);
                if !(ok(lt) && ok(rt)) {
                    return self.operand_error(op_span, &[lt, rt], &[Ty::String, Ty::String]);
                }
                let args = vec![to_body(l, lt), to_body(r, rt)];
                (Ir::Call(Func::Concat, args), Ty::String)
            }
            Lt | Le | Gt | Ge | Eq | Ne | LtGt => {
                let Some((l, r, ty)) = self.same_type(op_span, (l, lt), (r, rt)) else {
                    return UNDEFINED;
                };
                if let Some(w) = lint::comparison(ty, op_span.to(op_span), self.text(op_span)) {
                    self.warnings.push(w);
                }
                (Ir::Cmp(cmp_op(op), boxed(l), boxed(r), ty), Ty::Bool)
            }
            And | Or => self.logic(op, op_span, (l, lt), (r, rt)),
            Coalesce => {
                let Some((l, r, ty)) = self.same_type(op_span, (l, lt), (r, rt)) else {
                    return UNDEFINED;
                };
                if ty == Ty::Undefined {
                    return (r, ty);
                }
                (Ir::Coalesce(boxed(l), boxed(r), ty), ty)
            }
        }
    }

    fn arith(
        &mut self,
        op: BinaryOp,
        op_span: Span,
        (l, lt): (Ir, Ty),
        (r, rt): (Ir, Ty),
    ) -> (Ir, Ty) {
        let ok = |t: Ty| matches!(t, Ty::Number | Ty::Body);
        if !(ok(lt) && ok(rt)) {
            return self.operand_error(op_span, &[lt, rt], &[Ty::Number, Ty::Number]);
        }
        let aop = match op {
            BinaryOp::Mul => ArithOp::Mul,
            BinaryOp::Div => ArithOp::Div,
            BinaryOp::Mod => ArithOp::Mod,
            BinaryOp::Add => ArithOp::Add,
            _ => ArithOp::Sub,
        };
        if lt == Ty::Body || rt == Ty::Body {
            if aop == ArithOp::Mod {
                return self.unsupported(
                    op_span,
                    "the reference engine has no '%' for body values (QueryValue)",
                );
            }
            let ir = Ir::Arith(aop, boxed(to_body(l, lt)), boxed(to_body(r, rt)), Ty::Body);
            return (ir, Ty::Body);
        }
        (Ir::Arith(aop, boxed(l), boxed(r), Ty::Number), Ty::Number)
    }

    /// Comparison and `??` operands: the same static type, or a body value and a string,
    /// number, bool or null (both then become body values).
    fn same_type(
        &mut self,
        op_span: Span,
        (l, lt): (Ir, Ty),
        (r, rt): (Ir, Ty),
    ) -> Option<(Ir, Ir, Ty)> {
        if lt == rt {
            return Some((l, r, lt));
        }
        if (rt == Ty::Body && lt.meets_body()) || (lt == Ty::Body && rt.meets_body()) {
            return Some((to_body(l, lt), to_body(r, rt), Ty::Body));
        }
        self.operand_error(op_span, &[lt, rt], &[lt, lt]);
        // `severity = 2`: properties are strings, the most common surprise of the language.
        let property = |ir: &Ir| match ir {
            Ir::AppProp(n) => Some(n.clone()),
            Ir::SysProp(n) => Some(format!("${n}")),
            Ir::AppOrSysProp { app, .. } => Some(app.clone()),
            _ => None,
        };
        let hint = match (lt, rt) {
            (Ty::String, Ty::Number) => property(&l).map(|n| (n, &r)),
            (Ty::Number, Ty::String) => property(&r).map(|n| (n, &l)),
            _ => None,
        };
        if let (Some((name, number)), Some(d)) = (hint, self.errors.last_mut()) {
            let constant = match number {
                Ir::Num(v) => format!("'{v}'"),
                _ => "the constant".to_string(),
            };
            d.notes.push(format!(
                "message properties are strings: quote the constant ({name} = {constant}) or convert the property (as_number({name}))"
            ));
        }
        None
    }

    /// `AND` / `OR` (R13, R26), including the combinations the engine cannot build.
    fn logic(
        &mut self,
        op: BinaryOp,
        op_span: Span,
        (l, lt): (Ir, Ty),
        (r, rt): (Ir, Ty),
    ) -> (Ir, Ty) {
        let scalar = |t: Ty| matches!(t, Ty::Null | Ty::Bool | Ty::Undefined);
        // The engine tests the *left* operand's type for a body right operand (R13); IoT
        // Hub documents `... = 50 AND $body.Weather.IsEnabled`, so the hub dialect takes a
        // body value on either side, with the same (QueryValue) semantics as on the left.
        let body = lt == Ty::Body || (self.options.hub() && rt == Ty::Body);
        if body && lt != Ty::Body {
            self.hub_rule(HubRule::BodyEitherSide);
        }
        let left_ok = scalar(lt) || body;
        let right_ok = scalar(rt) || body;
        if !(left_ok && right_ok) {
            return self.operand_error(op_span, &[lt, rt], &[Ty::Bool, Ty::Bool]);
        }
        let is_and = op == BinaryOp::And;
        if body {
            if is_and && (rt == Ty::Null || lt == Ty::Null) {
                return self.unsupported(
                    op_span,
                    "the reference engine cannot convert a body value's AND with null to null",
                );
            }
            let (l, r) = (to_body(l, lt), to_body(r, rt));
            let ir = if is_and {
                Ir::And(boxed(l), boxed(r), Ty::Body, Ty::Body)
            } else {
                Ir::Or(boxed(l), boxed(r), Ty::Body, Ty::Body)
            };
            return (ir, Ty::Bool);
        }
        if matches!(
            (lt, rt),
            (Ty::Undefined, Ty::Null) | (Ty::Null, Ty::Undefined)
        ) {
            return self.unsupported(
                op_span,
                "the reference engine has no AND/OR operator for undefined and null",
            );
        }
        let ty = match is_and {
            true if lt == Ty::Null || rt == Ty::Null => Ty::Null,
            false if lt == Ty::Null && rt == Ty::Null => Ty::Null,
            _ => Ty::Bool,
        };
        let ir = if is_and {
            Ir::And(boxed(l), boxed(r), lt, rt)
        } else {
            Ir::Or(boxed(l), boxed(r), lt, rt)
        };
        (ir, ty)
    }
}

/// System-property keywords Microsoft Learn writes without `$`: `enqueuedTime` in the
/// routing-query page (2018) and the "keyword for routing query" column of the message
/// construction page (messageId, userId, connectionDeviceGenerationId, connectionAuthMethod).
const DOLLARLESS_KEYWORDS: &[&str] = &[
    "enqueuedTime",
    "messageId",
    "userId",
    "connectionDeviceGenerationId",
    "connectionAuthMethod",
];

fn literal(lit: &Literal) -> (Ir, Ty) {
    match lit {
        Literal::Bool(b) => (Ir::Bool(Some(*b)), Ty::Bool),
        Literal::Number { value: Some(v), .. } => (Ir::Num(*v), Ty::Number),
        Literal::Number { value: None, .. } => UNDEFINED,
        Literal::String { value, .. } => (Ir::Str(value.clone()), Ty::String),
        Literal::Null => (Ir::Null, Ty::Null),
        Literal::Undefined => UNDEFINED,
    }
}

fn cmp_op(op: BinaryOp) -> CmpOp {
    match op {
        BinaryOp::Lt => CmpOp::Lt,
        BinaryOp::Le => CmpOp::Le,
        BinaryOp::Gt => CmpOp::Gt,
        BinaryOp::Ge => CmpOp::Ge,
        BinaryOp::Eq => CmpOp::Eq,
        _ => CmpOp::Ne,
    }
}

/// The implicit conversion of a string, number, bool, null or undefined to a body value.
fn to_body(ir: Ir, ty: Ty) -> Ir {
    if ty == Ty::Body {
        ir
    } else {
        Ir::ToBody(Box::new(ir), ty)
    }
}

#[cfg(test)]
mod follows_tests {
    use crate::{Condition, Options};

    fn errors(q: &str) -> Vec<(&'static str, bool)> {
        Condition::compile(q, &Options::iot_hub())
            .err()
            .map(|e| e.0.iter().map(|d| (d.code, d.follows)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn errors_caused_by_a_failed_operand_are_marked() {
        // IoT Hub reports both; the second only follows from the first.
        assert_eq!(errors("3 + '4' = 7"), [("E0101", false), ("E0101", true)]);
        assert_eq!(
            errors("as_number(true) = true"),
            [("E0102", false), ("E0101", true)]
        );
        // Independent errors in both operands are each a problem of their own.
        assert_eq!(
            errors("(1 + 'a') + (2 + 'b')"),
            [("E0101", false), ("E0101", false), ("E0101", true)]
        );
        assert_eq!(errors("-(1 + 'x')"), [("E0101", false), ("E0101", true)]);
    }

    #[test]
    fn a_property_compared_with_a_number_gets_a_hint() {
        let e = Condition::compile("severity = 2", &Options::iot_hub()).unwrap_err();
        assert_eq!(e.0[0].code, "E0101");
        assert_eq!(
            e.0[0].notes,
            ["message properties are strings: quote the constant (severity = '2') or convert the property (as_number(severity))"]
        );
        let e = Condition::compile("1.5 < $messageId", &Options::iot_hub()).unwrap_err();
        assert!(
            e.0[0].notes[0].contains("as_number($messageId)"),
            "{:?}",
            e.0[0].notes
        );
        let e = Condition::compile("'a' = 2", &Options::iot_hub()).unwrap_err();
        assert!(e.0[0].notes.is_empty(), "no property, no hint");
    }
}
