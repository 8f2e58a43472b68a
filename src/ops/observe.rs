//! Which routes a routed message went through, and which evaluated to undefined and why: the
//! per-route numbers and IoT Hub's routes resource logs (`UndefinedRouteEvaluation`).
//!
//! The router's hot path returns only endpoints (each once); which route sent a message there
//! is recovered here, cheaply: an endpoint named by one route of the message's source was
//! reached by that route, and only an endpoint several routes name needs its candidates
//! evaluated again, in order, up to the first that matches.

use crate::eval::{Bool3, EvalContext, TwinLookup};
use crate::message::{Message, Source};
use crate::route::{NodeExplanation, Outcome, RouteTable, Routing};

fn context<'m>(message: &'m Message, twin: Option<&'m dyn TwinLookup>) -> EvalContext<'m> {
    match twin {
        Some(t) => EvalContext::new(message).with_twin(t),
        None => EvalContext::new(message),
    }
}

/// The names of the routes that sent `message` to the endpoints of `routing` (the fallback
/// route's name when it was the fallback), in the order of `routing`'s endpoints.
pub fn matched_routes<'t>(
    table: &'t RouteTable,
    message: &Message,
    source: Source,
    twin: Option<&dyn TwinLookup>,
    routing: &Routing,
) -> Vec<&'t str> {
    if routing.fallback {
        return table
            .fallback()
            .map(|f| f.name.as_str())
            .into_iter()
            .collect();
    }
    let mut ctx = None;
    routing
        .endpoints
        .iter()
        .filter_map(|&endpoint| {
            let mut candidates = table
                .routes()
                .iter()
                .filter(|r| r.enabled && r.source == source && r.endpoint == endpoint);
            let first = candidates.next()?;
            let mut rest = candidates.peekable();
            if rest.peek().is_none() {
                return Some(first.name.as_str());
            }
            let ctx = ctx.get_or_insert_with(|| context(message, twin));
            std::iter::once(first)
                .chain(rest)
                .find(|r| {
                    r.condition
                        .as_ref()
                        .is_none_or(|c| c.eval_in(ctx) == Bool3::True)
                })
                .map(|r| r.name.as_str())
        })
        .collect()
}

/// Indexes (into [`RouteTable::routes`]) of the enabled routes of `source` whose condition is
/// undefined for `message`.
pub fn undefined_routes(
    table: &RouteTable,
    message: &Message,
    source: Source,
    twin: Option<&dyn TwinLookup>,
) -> Vec<usize> {
    let ctx = context(message, twin);
    table
        .routes()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.enabled && r.source == source)
        .filter(|(_, r)| {
            r.condition
                .as_ref()
                .is_some_and(|c| c.eval_in(&ctx) == Bool3::Undefined)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Why route `index` is undefined for `message`: the undefined sub-expressions that made it so
/// and the explanation's notes (an unqueryable body, a missing twin).
pub fn undefined_reason(
    table: &RouteTable,
    message: &Message,
    source: Source,
    twin: Option<&dyn TwinLookup>,
    index: usize,
) -> String {
    let explanation = table.explain(message, source, twin);
    let Some(route) = explanation.routes.get(index) else {
        return "the route is undefined".into();
    };
    if route.outcome != Outcome::Undefined {
        return "the route is undefined".into();
    }
    let mut leaves = Vec::new();
    if let Some(tree) = &route.condition {
        undefined_leaves(tree, &mut leaves);
    }
    let mut parts: Vec<String> = Vec::new();
    if !leaves.is_empty() {
        parts.push(format!("undefined: {}", leaves.join(", ")));
    }
    let reads_body = leaves.iter().any(|l| l.contains("$body"));
    let notes = route.notes.iter().chain(
        explanation
            .notes
            .iter()
            .filter(|n| reads_body && n.contains("body")),
    );
    for note in notes {
        if !parts.contains(note) {
            parts.push(note.clone());
        }
    }
    if parts.is_empty() {
        "a property on the route condition is not present in the message".into()
    } else {
        parts.join("; ")
    }
}

/// The deepest undefined sub-expressions of `node`.
fn undefined_leaves(node: &NodeExplanation, out: &mut Vec<String>) {
    if node.value != "undefined" {
        return;
    }
    let before = out.len();
    for child in &node.children {
        undefined_leaves(child, out);
    }
    if out.len() == before && !out.contains(&node.text) {
        out.push(node.text.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"endpoints": {"eventHubs": [{"name": "a"}, {"name": "b"}]},
        "routes": [
          {"name": "r1", "source": "DeviceMessages", "condition": "level = 'hot'", "endpointNames": ["a"], "isEnabled": true},
          {"name": "r2", "source": "DeviceMessages", "condition": "level = 'warm'", "endpointNames": ["a"], "isEnabled": true},
          {"name": "r3", "source": "DeviceMessages", "condition": "$body.t > 50", "endpointNames": ["b"], "isEnabled": true}],
        "fallbackRoute": {"name": "fb", "source": "DeviceMessages", "condition": "true", "endpointNames": ["events"], "isEnabled": true}}"#;

    fn table() -> RouteTable {
        RouteTable::from_json(CONFIG, "hub").table.unwrap()
    }

    #[test]
    fn the_route_that_matched_is_found_among_several_naming_one_endpoint() {
        let t = table();
        let m = Message::from_json_str(r#"{"appProperties": {"level": "warm"}}"#).unwrap();
        let routing = t.route(&m, Source::DeviceMessages);
        assert_eq!(
            matched_routes(&t, &m, Source::DeviceMessages, None, &routing),
            ["r2"]
        );
        let m = Message::from_json_str(r#"{"appProperties": {"level": "cold"}}"#).unwrap();
        let routing = t.route(&m, Source::DeviceMessages);
        assert!(routing.fallback);
        assert_eq!(
            matched_routes(&t, &m, Source::DeviceMessages, None, &routing),
            ["fb"]
        );
    }

    #[test]
    fn undefined_routes_come_with_their_reason() {
        let t = table();
        // No level and a body that cannot be queried (no content type): all undefined.
        let m = Message::from_json_str(r#"{"body": "{\"t\": 70}"}"#).unwrap();
        let undefined = undefined_routes(&t, &m, Source::DeviceMessages, None);
        assert_eq!(undefined, [0, 1, 2]);
        let reason = undefined_reason(&t, &m, Source::DeviceMessages, None, 0);
        assert!(reason.contains("undefined: level"), "{reason}");
        let reason = undefined_reason(&t, &m, Source::DeviceMessages, None, 2);
        assert!(reason.contains("$body.t"), "{reason}");
        assert!(reason.contains("body"), "{reason}");
    }
}
