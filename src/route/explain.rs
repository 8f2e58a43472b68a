//! Why a message went where it went: every route's outcome, with the sub-expressions and
//! values that decided it, and the notes a user needs ("the body is not queryable: …",
//! "fell back: no route matched"). This answers the cloud's most asked routing question.

use super::table::{condition_options, route_matches, Route, RouteTable};
use crate::eval::{BodyProblem, Bool3, EvalContext, TwinLookup, Value};
use crate::message::{Message, Source};
use crate::syntax::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::Condition;
use serde::Serialize;

/// A route's outcome for one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The condition is true: the message goes to the route's endpoint.
    True,
    /// The condition is false.
    False,
    /// The condition is undefined (does not route).
    Undefined,
    /// The route is disabled and was not evaluated.
    Disabled,
    /// The route is for another source and was not evaluated.
    SourceMismatch,
}

/// One sub-expression and its value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeExplanation {
    /// The sub-expression's text.
    pub text: String,
    /// Its value (`true`, `"hot"`, `72.5`, `null`, `undefined`).
    pub value: String,
    /// The sub-expressions it was computed from (literals omitted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<NodeExplanation>,
}

/// One route's explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteExplanation {
    /// Route name.
    pub name: String,
    /// Route source.
    pub source: String,
    /// Its endpoint.
    pub endpoint: String,
    /// What happened.
    pub outcome: Outcome,
    /// The condition's evaluation tree (none for a route without condition, or not evaluated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<NodeExplanation>,
    /// What a user should know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The explanation of one message's routing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// The source the message was routed as.
    pub source: String,
    /// Every route, in order.
    pub routes: Vec<RouteExplanation>,
    /// The fallback route, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<RouteExplanation>,
    /// Where the message goes.
    pub endpoints: Vec<String>,
    /// Whether that is the fallback's doing.
    pub fell_back: bool,
    /// Notes about the message as a whole.
    pub notes: Vec<String>,
}

impl RouteTable {
    /// Explains where a message from `source` goes and why.
    pub fn explain(
        &self,
        message: &Message,
        source: Source,
        twin: Option<&dyn TwinLookup>,
    ) -> Explanation {
        let ctx = match twin {
            Some(t) => EvalContext::new(message).with_twin(t),
            None => EvalContext::new(message),
        };
        let routing = self.route_in(&ctx, source);
        let routes: Vec<RouteExplanation> = self
            .routes
            .iter()
            .map(|r| self.explain_route(r, &ctx, source))
            .collect();
        let fallback = self.fallback.as_ref().map(|f| {
            let mut e = self.explain_route(f, &ctx, source);
            if !routing.fallback && e.outcome == Outcome::True {
                e.notes.push("not used: the fallback route applies only to device messages that matched no route".into());
            }
            e
        });
        let mut notes = Vec::new();
        if routing.fallback {
            notes
                .push("fell back: no route matched, so the fallback route sent the message".into());
        } else if routing.endpoints.is_empty() {
            notes.push(match (&self.fallback, source) {
                (_, s) if s != Source::DeviceMessages => "no route matched; the fallback route covers only device messages, so this message is dropped".into(),
                (Some(f), _) if !f.enabled => "no route matched and the fallback route is disabled: the message is dropped".into(),
                (Some(_), _) => "no route matched and the fallback route's condition is not true: the message is dropped".into(),
                (None, _) => "no route matched and there is no fallback route: the message is dropped".into(),
            });
        }
        if let Err(problem) = ctx.body() {
            if self
                .routes
                .iter()
                .chain(&self.fallback)
                .any(|r| reads_body(r) && r.source == source && r.enabled)
            {
                notes.push(body_note(problem));
            }
        }
        Explanation {
            source: source.to_string(),
            routes,
            fallback,
            endpoints: routing
                .endpoints
                .iter()
                .map(|&id| self.endpoint(id).name.clone())
                .collect(),
            fell_back: routing.fallback,
            notes,
        }
    }

    fn explain_route(
        &self,
        route: &Route,
        ctx: &EvalContext<'_>,
        source: Source,
    ) -> RouteExplanation {
        let mut notes = Vec::new();
        let outcome = if !route.enabled {
            Outcome::Disabled
        } else if route.source != source {
            notes.push(format!(
                "the route is for {} messages; this one is {source}",
                route.source
            ));
            Outcome::SourceMismatch
        } else {
            match &route.condition {
                None => Outcome::True,
                Some(c) => match c.eval_in(ctx) {
                    Bool3::True => Outcome::True,
                    Bool3::False => Outcome::False,
                    Bool3::Undefined => Outcome::Undefined,
                },
            }
        };
        debug_assert!(
            !matches!(outcome, Outcome::True) || route_matches(route, ctx) || !route.enabled
        );
        let evaluated = matches!(outcome, Outcome::True | Outcome::False | Outcome::Undefined);
        let condition = match (&route.condition, evaluated) {
            (Some(c), true) => c
                .ast()
                .root
                .as_ref()
                .map(|root| node(c, root, ctx, route.source)),
            _ => None,
        };
        if evaluated && reads_body(route) {
            if let Err(problem) = ctx.body() {
                notes.push(body_note(problem));
            }
        }
        if route.condition.is_none() && evaluated {
            notes.push("no condition: every message of the source matches".into());
        }
        RouteExplanation {
            name: route.name.clone(),
            source: route.source.to_string(),
            endpoint: self.endpoint(route.endpoint).name.clone(),
            outcome,
            condition,
            notes,
        }
    }
}

fn reads_body(route: &Route) -> bool {
    route
        .condition
        .as_ref()
        .is_some_and(|c| c.program().reads_body())
}

fn body_note(problem: &BodyProblem) -> String {
    match problem {
        BodyProblem::Unreadable(why) => format!("the body is not queryable: {why}; every $body value is undefined"),
        BodyProblem::InvalidJson(why) => format!("the body is not a JSON object IoT Hub can read ({why}); every $body value is undefined"),
    }
}

/// Explains one AST node by compiling its text on its own and evaluating it.
fn node(cond: &Condition, e: &Expr, ctx: &EvalContext<'_>, source: Source) -> NodeExplanation {
    let text = &cond.source()[e.span.range()];
    let value = match Condition::compile(text, &condition_options(source)) {
        Ok(sub) => describe(&sub.program().value(ctx)),
        Err(_) => "?".into(),
    };
    let parts: Vec<&Expr> = match &e.kind {
        ExprKind::Binary {
            op: BinaryOp::And | BinaryOp::Or,
            left,
            right,
            ..
        } => vec![left, right],
        ExprKind::Binary { left, right, .. } => vec![left, right],
        ExprKind::Unary {
            op: UnaryOp::Not | UnaryOp::Neg,
            operand,
            ..
        } => vec![operand],
        ExprKind::Call { args, .. } => args.iter().collect(),
        _ => Vec::new(),
    };
    NodeExplanation {
        text: text.to_string(),
        value,
        children: parts
            .into_iter()
            .filter(|p| !matches!(p.kind, ExprKind::Literal(_)))
            .map(|p| node(cond, p, ctx, source))
            .collect(),
    }
}

/// A value as a user reads it.
pub(crate) fn describe(v: &Value<'_>) -> String {
    match v {
        Value::Undefined => "undefined".into(),
        Value::Null | Value::NullStr => "null".into(),
        Value::Missing => "null (no such path in the body)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_nan() => "NaN".into(),
        Value::Number(n) if n.is_infinite() => {
            if *n > 0.0 { "Infinity" } else { "-Infinity" }.into()
        }
        Value::Number(n) => crate::dotnet::format_double(*n).unwrap_or_else(|| n.to_string()),
        Value::Str(s) => serde_json::to_string(s.as_ref()).unwrap_or_default(),
    }
}
