//! [`Router`]: a route table with reusable per-thread state, the allocation-free way to route
//! a stream of messages.

use super::table::{route_matches, Route, RouteTable, Routing};
use crate::eval::context::BodyJson;
use crate::eval::{BodyPlan, BodyScratch, EvalContext, TwinLookup};
use crate::message::{Message, Source};

/// Routes messages through one table, reusing its scratch space between messages.
///
/// The table's `$body` paths are interned once (a [`BodyPlan`]); each message's body is then
/// decoded and scanned at most once, only if a route that is still undecided reads it, and
/// into buffers kept here. In steady state [`Router::route_into`] allocates nothing (string
/// functions that build new strings, such as `concat` or `lower` of a non-ASCII value, are
/// the exception). Use one router per thread.
///
/// ```
/// use hubroute::route::{RouteTable, Routing};
/// use hubroute::message::{Message, Source};
/// let config = r#"{"routes": [{"name": "hot", "source": "DeviceMessages",
///     "condition": "$body.t > 50", "endpointNames": ["events"], "isEnabled": true}]}"#;
/// let table = RouteTable::from_json(config, "myhub").table.unwrap();
/// let msg = Message::from_json_str(r#"{"systemProperties": {"contentType": "application/json",
///     "contentEncoding": "utf-8"}, "body": "{\"t\": 72}"}"#).unwrap();
/// let mut router = table.router();
/// let mut out = Routing::default();
/// router.route_into(&msg, Source::DeviceMessages, &mut out);
/// assert_eq!(out.endpoints.len(), 1);
/// ```
#[derive(Debug)]
pub struct Router<'t> {
    table: &'t RouteTable,
    scratch: BodyScratch,
    /// See [`Router::body_was_compact_json`] and [`Router::body_json`].
    body_json: BodyJson,
}

impl RouteTable {
    /// A router over this table (see [`Router`]).
    pub fn router(&self) -> Router<'_> {
        Router {
            table: self,
            scratch: BodyScratch::default(),
            body_json: BodyJson::Unknown,
        }
    }
}

/// The plan of a table's routes and fallback (see [`RouteTable`]'s `plan`).
pub(super) fn plan_of(routes: &[Route], fallback: Option<&Route>) -> BodyPlan {
    BodyPlan::new(
        routes
            .iter()
            .chain(fallback)
            .map(|r| r.condition.as_ref().map(|c| c.program())),
    )
}

impl Router<'_> {
    /// Where a message from `source` goes.
    pub fn route(&mut self, message: &Message, source: Source) -> Routing {
        self.route_fresh(message, source, None)
    }

    /// Where a message from `source` goes, written into `out` (whose buffer is reused, so
    /// that even a message matching many endpoints allocates nothing once warmed up).
    pub fn route_into(&mut self, message: &Message, source: Source, out: &mut Routing) {
        self.body_json = route_with_plan(self.table, &mut self.scratch, message, source, None, out);
    }

    /// Where a message goes, reading `$twin` from `twin`.
    pub fn route_with_twin(
        &mut self,
        message: &Message,
        source: Source,
        twin: &dyn TwinLookup,
    ) -> Routing {
        self.route_fresh(message, source, Some(twin))
    }

    /// Whether the last message this router routed had a body routing read as stored and
    /// found JSON with nothing to minify: what the strict scanner reads whole, with no byte
    /// at or below space and no backslash (see `EvalContext::body_json`). A
    /// Storage JSON record may then embed it as it is. `false` when no route needed the body.
    pub fn body_was_compact_json(&self) -> bool {
        self.body_json == BodyJson::Compact
    }

    /// What routing found of the last message's body as JSON ([`BodyJson`]), which its
    /// store record keeps.
    #[cfg(feature = "store")]
    pub(crate) fn body_json(&self) -> BodyJson {
        self.body_json
    }

    fn route_fresh(
        &mut self,
        message: &Message,
        source: Source,
        twin: Option<&dyn TwinLookup>,
    ) -> Routing {
        let mut out = Routing::default();
        self.body_json = route_with_plan(
            self.table,
            &mut self.scratch,
            message,
            source,
            twin,
            &mut out,
        );
        out
    }
}

/// Routes one message with `table`'s plan, in `scratch`; what it found of its body as JSON
/// ([`Router::body_json`]).
pub(super) fn route_with_plan(
    table: &RouteTable,
    scratch: &mut BodyScratch,
    message: &Message,
    source: Source,
    twin: Option<&dyn TwinLookup>,
    out: &mut Routing,
) -> BodyJson {
    let mut ctx = EvalContext::with_plan(message, &table.plan, scratch);
    if let Some(twin) = twin {
        ctx = ctx.with_twin(twin);
    }
    route_ctx(table, &ctx, source, out);
    ctx.body_json()
}

/// The route loop: every enabled route of `source` whose endpoint is not chosen yet, in
/// order, then the fallback if nothing matched. Tells the context which route it evaluates,
/// so that a plan-carrying context maps each program's body paths to the plan's slots.
pub(super) fn route_ctx(
    table: &RouteTable,
    ctx: &EvalContext<'_>,
    source: Source,
    out: &mut Routing,
) {
    out.endpoints.clear();
    out.fallback = false;
    // Endpoints chosen so far, as bits for the first `CHOSEN_BITS` ids: with many routes,
    // scanning `out.endpoints` before each one was a visible part of the per-route cost.
    // Larger ids (tables with that many endpoints) scan the list as before.
    const CHOSEN_BITS: usize = 512;
    let mut chosen = [0u64; CHOSEN_BITS / 64];
    for (i, route) in table.routes.iter().enumerate() {
        if !route.enabled || route.source != source {
            continue;
        }
        let id = usize::from(route.endpoint.0);
        let bit = chosen.get(id / 64).map(|word| (word >> (id % 64)) & 1 != 0);
        let taken = match bit {
            Some(taken) => taken,
            None => out.endpoints.contains(&route.endpoint),
        };
        if taken {
            continue;
        }
        ctx.set_program(i);
        if route_matches(route, ctx) {
            out.endpoints.push(route.endpoint);
            if let Some(word) = chosen.get_mut(id / 64) {
                *word |= 1 << (id % 64);
            }
        }
    }
    if out.endpoints.is_empty() && source == Source::DeviceMessages {
        if let Some(fallback) = table.fallback.as_ref().filter(|f| f.enabled) {
            ctx.set_program(table.routes.len());
            if route_matches(fallback, ctx) {
                out.endpoints.push(fallback.endpoint);
                out.fallback = true;
            }
        }
    }
}

#[cfg(test)]
mod compact_body_tests {
    use crate::message::{Message, Source};
    use crate::route::RouteTable;

    fn table() -> RouteTable {
        RouteTable::from_json(
            r#"{"routes": [{"name": "hot", "source": "DeviceMessages", "condition": "$body.Weather.Temperature > 50", "endpointNames": ["hot"], "isEnabled": true}],
                "endpoints": {"serviceBusQueues": [{"name": "hot"}]}}"#,
            "hub",
        )
        .table
        .expect("the table builds")
    }

    fn message(body: &[u8], json: bool) -> Message {
        let mut m = Message::default();
        if json {
            m.system_properties
                .insert_str("contentType", Some("application/json"));
            m.system_properties
                .insert_str("contentEncoding", Some("utf-8"));
        }
        m.body = body.to_vec();
        m
    }

    /// `Router::body_was_compact_json` promises what a Storage JSON record relies on to embed a
    /// body without checking it: serde_json reads it, and minifying it changes nothing. Checked
    /// on compact, spaced, lenient, invalid and byte-order-marked bodies, and on a compact body
    /// with each byte replaced by, or preceded by, each of the bytes that matter to JSON, or
    /// removed.
    #[test]
    fn a_compact_json_body_is_one_serde_json_reads_and_minifying_keeps() {
        let table = table();
        let mut router = table.router();
        let mut flagged = 0;
        let mut stripped = 0;
        let mut check = |body: &[u8], json: bool| -> bool {
            router.route(&message(body, json), Source::DeviceMessages);
            let compact = router.body_was_compact_json();
            // A strict body's whitespace is stripped without a grammar check: when the strip
            // takes it, serde_json reads it and the strip wrote what minifying writes.
            if router.body_json() == super::BodyJson::Strict {
                let mut out = b"x".to_vec();
                if crate::json_text::push_stripped_strict(body, &mut out) {
                    let text = String::from_utf8_lossy(body);
                    assert!(
                        serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok(),
                        "stripped but serde_json refuses {text:?}"
                    );
                    let mut minified = b"x".to_vec();
                    crate::json_text::minify_into(body, &mut minified);
                    assert_eq!(out, minified, "{text:?}");
                    stripped += 1;
                } else {
                    assert_eq!(out, b"x");
                }
            }
            if compact {
                assert!(json, "{:?}", String::from_utf8_lossy(body));
                assert!(
                    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok(),
                    "flagged but serde_json refuses {:?}",
                    String::from_utf8_lossy(body)
                );
                let mut out = Vec::new();
                assert!(crate::json_text::push_minified_if_json(body, &mut out));
                assert_eq!(out, body, "{:?}", String::from_utf8_lossy(body));
                flagged += 1;
            }
            compact
        };
        let compact =
            br#"{"deviceId":"a-1","Weather":{"Temperature":68.5,"Humidity":31},"tags":["x","y z"],"ok":true,"n":null,"e":-1.5e3}"#;
        assert!(
            !check(compact, true),
            "a space inside a string: minified as before"
        );
        let compact =
            br#"{"deviceId":"a-1","Weather":{"Temperature":68.5,"Humidity":31},"tags":["x","y"],"ok":true,"n":null,"e":-1.5e3}"#;
        assert!(check(compact, true), "a compact body is flagged");
        assert!(
            !check(compact, false),
            "only when the content type says JSON"
        );
        for body in [
            &b"{\"Weather\": {\"Temperature\": 68.5}}"[..],
            b"{\"Weather\":{\"Temperature\":68.5},\"city\":\"New York\"}",
            b"\xef\xbb\xbf{\"Weather\":{\"Temperature\":68.5}}",
            b"{'Weather':{'Temperature':68.5}}",
            b"{\"Weather\":{\"Temperature\":68.5,}}",
            b"{\"Weather\":{\"Temperature\":NaN}}",
            b"{\"Weather\":{\"Temperature\":68.5}}/*c*/",
            b"{\"Weather\":{\"Temperature\":68.5}}\0",
            b"{\"Weather\":{\"Temperature\":68.5}}x",
            b"{\"Weather\":{\"Temperature\":068}}",
            b"{\"Weather\":{\"Temperature\":68.5}",
            b"[1,2]",
        ] {
            assert!(!check(body, true), "{:?}", String::from_utf8_lossy(body));
        }
        for body in [
            &br#"{"Weather":{"Temperature":68.5},"u":"\u00e9\ud800"}"#[..],
            br#"{"Weather":{"Temperature":68.5},"q":"\'"}"#,
            br#"{"Weather":{"Temperature":68.5},"q":"\""}"#,
        ] {
            assert!(!check(body, true), "{:?}", String::from_utf8_lossy(body));
        }
        for i in 0..compact.len() {
            for b in *b"\"\\{}[],: \t\n0a-.eE+\x01\x7f\x80\xff/'" {
                let mut body = compact.to_vec();
                body[i] = b;
                check(&body, true);
                body[i] = compact[i];
                body.insert(i, b);
                check(&body, true);
            }
            let mut body = compact.to_vec();
            body.remove(i);
            check(&body, true);
        }
        assert!(flagged > 1, "the mutations flagged some bodies too");
        assert!(
            stripped > 100,
            "spaced and mutated bodies were stripped: {stripped}"
        );
    }
}
