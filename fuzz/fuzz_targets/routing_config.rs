//! Routing configurations: arbitrary text and generated documents (valid and broken, up to
//! more than 100 routes) through reading, validation and table compilation; every built table
//! routes a generated message from every source. No panic; every diagnostic is coded; more
//! than 100 routes is E0415; `explain` agrees with `route`.
#![no_main]

use arbitrary::Unstructured;
use hubroute::eval::{EvalContext, TwinLookup};
use hubroute::message::Source;
use hubroute::route::{Outcome, RouteTable};
use hubroute::Bool3;
use hubroute_fuzz::{gen, DocTwin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let (text, n_routes) = if mode % 4 == 0 {
        (String::from_utf8_lossy(rest).into_owned(), None)
    } else {
        let Ok(doc) = gen::routing_config(&mut u) else {
            return;
        };
        let routing = doc
            .pointer("/properties/routing")
            .or_else(|| doc.get("routing"))
            .unwrap_or(&doc);
        let n = routing["routes"].as_array().map_or(0, Vec::len);
        (doc.to_string(), Some(n))
    };
    let build = RouteTable::from_json(&text, "fuzzhub");
    for d in &build.diagnostics {
        assert!(d.code.len() == 5, "{d:?}");
    }
    if let Some(n) = n_routes {
        // E0415 is among the kept diagnostics unless more than the cap came before it.
        let e0415 = build.diagnostics.iter().any(|d| d.code == "E0415");
        assert!(
            if n > 100 {
                e0415 || build.omitted > 0
            } else {
                !e0415
            },
            "{n} routes"
        );
    }
    let Some(table) = build.table else { return };
    let Ok(msg) = gen::message(&mut u) else {
        return;
    };
    let twin = gen::twin(&mut u).ok().flatten().map(DocTwin);
    let twin_ref = twin.as_ref().map(|t| t as &dyn TwinLookup);
    for source in Source::ALL {
        let routing = match twin_ref {
            Some(t) => table.route_with_twin(&msg, source, t),
            None => table.route(&msg, source),
        };
        let explanation = table.explain(&msg, source, twin_ref);
        let names: Vec<&str> = routing
            .endpoints
            .iter()
            .map(|&id| table.endpoint(id).name.as_str())
            .collect();
        assert_eq!(
            names, explanation.endpoints,
            "explain vs route for {source}"
        );
        assert_eq!(routing.fallback, explanation.fell_back);
        let ctx = match twin_ref {
            Some(t) => EvalContext::new(&msg).with_twin(t),
            None => EvalContext::new(&msg),
        };
        let mut expected: Vec<&str> = Vec::new();
        for (route, e) in table.routes().iter().zip(&explanation.routes) {
            if let (Some(c), Outcome::True | Outcome::False | Outcome::Undefined) =
                (&route.condition, &e.outcome)
            {
                let want = match c.eval_reference(&ctx) {
                    Bool3::True => Outcome::True,
                    Bool3::False => Outcome::False,
                    Bool3::Undefined => Outcome::Undefined,
                };
                assert_eq!(e.outcome, want, "route {} on {source}", route.name);
            }
            if e.outcome == Outcome::True {
                let name = table.endpoint(route.endpoint).name.as_str();
                if !expected.contains(&name) {
                    expected.push(name);
                }
            }
        }
        if !routing.fallback {
            assert_eq!(
                names, expected,
                "routed endpoints vs matching routes for {source}"
            );
        }
    }
});
