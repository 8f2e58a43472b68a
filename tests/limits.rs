//! The documented limits: what a user (a condition, a routing configuration) or a device (a
//! message) can send beyond them gets a coded error or an undefined value, never a crash, a
//! stack overflow or unbounded memory. See README.md, section "Fuzzing", for the table.
//!
//! Every test runs on the default test thread (2 MiB stack in debug builds), so "no stack
//! overflow" is checked on a small stack, not on a generous main thread.

use hubroute::diagnostic::codes;
use hubroute::eval::EvalContext;
use hubroute::message::{
    Message, Protocol, Source, MAX_MESSAGE_ID_LEN, MAX_MESSAGE_SIZE, MESSAGE_ID_TOO_LONG,
    MESSAGE_TOO_LARGE,
};
use hubroute::route::RouteTable;
use hubroute::syntax::{parse, parse_with_limits, Limits};
use hubroute::{Bool3, Condition, Options};

fn parse_code(text: &str, limits: &Limits) -> Option<&'static str> {
    parse_with_limits(text, limits).err().map(|e| e.0[0].code)
}

fn compile_code(text: &str) -> Option<&'static str> {
    Condition::compile(text, &Options::iot_hub())
        .err()
        .map(|e| e.0[0].code)
}

// ---------- conditions ----------

#[test]
fn default_limits_are_documented_values() {
    assert_eq!(
        Limits::default(),
        Limits {
            max_length: 64 * 1024,
            max_depth: 128
        }
    );
}

#[test]
fn condition_length_limit_is_e0201() {
    let max = Limits::default().max_length;
    // A string literal filling the limit exactly is fine...
    let at_limit = format!("'{}'", "x".repeat(max - 2));
    assert_eq!(at_limit.len(), max);
    assert!(parse(&at_limit).is_ok());
    assert!(Condition::compile(&at_limit, &Options::iot_hub()).is_ok());
    // ...one byte more is E0201, reported at the limit.
    let over = format!("'{}'", "x".repeat(max - 1));
    let e = parse(&over).unwrap_err();
    assert_eq!(e.0[0].code, codes::TOO_LONG);
    assert_eq!(e.0[0].span.start as usize, max);
    assert_eq!(e.0[0].span.end as usize, over.len());
    assert_eq!(compile_code(&over), Some(codes::TOO_LONG));
    // A caller may choose another limit.
    let tight = Limits {
        max_length: 10,
        ..Limits::default()
    };
    assert_eq!(parse_code("1234567890", &tight), None);
    assert_eq!(parse_code("12345678901", &tight), Some(codes::TOO_LONG));
    // Megabytes are refused before any work is done on them.
    assert_eq!(compile_code(&"a".repeat(10 << 20)), Some(codes::TOO_LONG));
}

#[test]
fn nesting_depth_limit_is_e0202() {
    let depth = Limits::default().max_depth;
    let parens = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert!(Condition::compile(&parens(depth - 1), &Options::iot_hub()).is_ok());
    assert_eq!(compile_code(&parens(depth)), Some(codes::TOO_DEEP));
    // Every way of nesting counts, not only parentheses.
    for deep in [
        format!("{}true", "NOT ".repeat(depth + 1)),
        format!("{}1", "- ".repeat(depth + 1)),
        format!("{}1{}", "abs(".repeat(depth + 1), ")".repeat(depth + 1)),
        format!("true{}", " AND true".repeat(depth + 1)),
        format!("num{}", " + num".repeat(depth + 1)),
        format!("1{}", " = 1".repeat(depth + 1)),
        format!("a{}", " ?? a".repeat(depth + 1)),
    ] {
        assert_eq!(
            compile_code(&deep),
            Some(codes::TOO_DEEP),
            "{}",
            &deep[..40]
        );
    }
}

#[test]
fn hundred_thousand_parentheses_are_e0202_without_stack_overflow() {
    let unlimited_length = Limits {
        max_length: usize::MAX,
        ..Limits::default()
    };
    let n = 100_000;
    // Unclosed, this is a syntax error (no operand ever starts), found without recursion.
    assert_eq!(
        parse_code(&"(".repeat(n), &unlimited_length),
        Some(codes::SYNTAX)
    );
    for text in [
        format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1", "NOT ".repeat(n)),
        format!("{}1{}", "abs(".repeat(n), ")".repeat(n)),
        format!("1{}", " * 1".repeat(n)),
    ] {
        assert_eq!(
            parse_code(&text, &unlimited_length),
            Some(codes::TOO_DEEP),
            "{}",
            &text[..20]
        );
        // With the default limits the length check comes first.
        assert_eq!(compile_code(&text), Some(codes::TOO_LONG));
    }
    // A caller's own depth limit is honoured the same way.
    let limits = Limits {
        max_length: usize::MAX,
        max_depth: 100,
    };
    let parens = format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(parse_code(&parens, &limits), Some(codes::TOO_DEEP));
}

// ---------- message bodies ----------

fn json_message(body: String) -> Message {
    let mut m = Message {
        body: body.into_bytes(),
        ..Message::default()
    };
    m.system_properties
        .insert("contentType", Some("application/json".into()));
    m.system_properties
        .insert("contentEncoding", Some("utf-8".into()));
    m
}

#[test]
fn hundred_thousand_nested_arrays_make_the_body_undefined_without_stack_overflow() {
    let n = 100_000;
    let bodies = [
        format!("{{\"a\": {}{}}}", "[".repeat(n), "]".repeat(n)),
        format!("{{\"a\": {}", "[".repeat(n)),
        format!("{}{}", "{\"a\":".repeat(n), "}".repeat(n)),
        "[".repeat(n),
    ];
    let route_config = r#"{"routes": [{"name": "deep", "source": "DeviceMessages",
        "condition": "$body.a = 1 OR NOT is_defined($body.a) OR $body.a[0] = 1",
        "endpointNames": ["events"], "isEnabled": true}]}"#;
    let table = RouteTable::from_json(route_config, "hub").table.unwrap();
    for body in bodies {
        let msg = json_message(body);
        // Json.NET rejects nesting beyond MaxDepth 64, so the body does not load and every
        // `$body` value is undefined (and `is_defined` of it false).
        for (query, want) in [
            ("$body.a = 1", Bool3::Undefined),
            ("$body.a[0][0] = 1", Bool3::Undefined),
            ("is_defined($body.a)", Bool3::False),
        ] {
            let cond = Condition::compile(query, &Options::iot_hub()).unwrap();
            assert_eq!(cond.eval(&msg), want, "{query}");
            assert_eq!(
                cond.eval_reference(&EvalContext::new(&msg)),
                want,
                "{query}"
            );
        }
        // The route's condition is true only through `NOT is_defined($body.a)`; routing
        // follows the reference interpreter's answer on the unreadable body.
        let routing = table.route(&msg, Source::DeviceMessages);
        let cond = &table.routes()[0].condition.as_ref().unwrap();
        let expected = cond.eval_reference(&EvalContext::new(&msg)) == Bool3::True;
        assert_eq!(!routing.endpoints.is_empty(), expected);
    }
}

#[test]
fn json_nesting_limit_is_json_net_max_depth() {
    let nested = |depth: usize| {
        // One object plus depth-1 arrays beside `n`.
        format!(
            "{{\"n\": 1, \"a\":{}1{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    let cond = Condition::compile("$body.n = 1", &Options::iot_hub()).unwrap();
    assert_eq!(hubroute::body::MAX_DEPTH, 64);
    // At the limit the body loads; one deeper, it does not load at all.
    assert_eq!(cond.eval(&json_message(nested(64))), Bool3::True);
    assert_eq!(cond.eval(&json_message(nested(65))), Bool3::Undefined);
}

// ---------- message size and properties ----------

#[test]
fn message_size_limit_is_256_kb_e0324() {
    assert_eq!(MAX_MESSAGE_SIZE, 256 * 1024);
    let codes_of = |m: &Message| -> Vec<&str> {
        m.validate(Protocol::Mqtt)
            .into_iter()
            .map(|v| v.code)
            .collect()
    };
    let mut m = Message {
        body: vec![b'x'; MAX_MESSAGE_SIZE],
        ..Message::default()
    };
    assert!(codes_of(&m).is_empty());
    m.body.push(b'x');
    assert_eq!(codes_of(&m), [MESSAGE_TOO_LARGE]);
    assert_eq!(MESSAGE_TOO_LARGE, "E0324");

    // Property names and values count towards the size: a small body with one 256 KB
    // application property is too large, and so is one with many small properties.
    let mut m = Message::default();
    m.app_properties
        .insert("big", Some("v".repeat(MAX_MESSAGE_SIZE)));
    assert_eq!(codes_of(&m), [MESSAGE_TOO_LARGE]);
    let mut m = Message::default();
    for i in 0..1_000 {
        m.app_properties
            .insert(format!("p{i}"), Some("v".repeat(300)));
    }
    assert!(m.size() > MAX_MESSAGE_SIZE);
    assert_eq!(codes_of(&m), [MESSAGE_TOO_LARGE]);
    // System property values count too.
    let mut m = Message::default();
    m.system_properties
        .insert("contentType", Some("t".repeat(MAX_MESSAGE_SIZE + 1)));
    assert_eq!(codes_of(&m), [MESSAGE_TOO_LARGE]);
}

#[test]
fn oversized_messages_still_evaluate_and_route() {
    // Validation reports the size; evaluation does not depend on it and stays linear.
    let mut msg = json_message(format!(
        "{{\"a\": \"{}\"}}",
        "x".repeat(2 * MAX_MESSAGE_SIZE)
    ));
    msg.app_properties
        .insert("big", Some("v".repeat(MAX_MESSAGE_SIZE)));
    let cond = Condition::compile(
        "length($body.a) > 0 AND length(big) > 0",
        &Options::iot_hub(),
    )
    .unwrap();
    assert_eq!(cond.eval(&msg), Bool3::True);
    assert!(msg
        .validate(Protocol::Amqp)
        .iter()
        .any(|v| v.code == MESSAGE_TOO_LARGE));
}

#[test]
fn message_id_limit_is_128_characters_e0322() {
    assert_eq!(MAX_MESSAGE_ID_LEN, 128);
    let mut m = Message::default();
    m.system_properties
        .insert("messageId", Some("a".repeat(128)));
    assert!(m.validate(Protocol::Mqtt).is_empty());
    m.system_properties
        .insert("messageId", Some("a".repeat(129)));
    let codes: Vec<_> = m
        .validate(Protocol::Mqtt)
        .into_iter()
        .map(|v| v.code)
        .collect();
    assert_eq!(codes, [MESSAGE_ID_TOO_LONG]);
    assert_eq!(MESSAGE_ID_TOO_LONG, "E0322");
}

#[test]
fn message_json_nesting_is_bounded() {
    // serde_json's recursion limit (128) bounds the message document itself: a deeply nested
    // message is E0301, not a stack overflow.
    let text = format!("{{\"appProperties\": {}", "[".repeat(100_000));
    assert_eq!(Message::from_json_str(&text).unwrap_err().code(), "E0301");
    let text = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    assert_eq!(Message::from_json_str(&text).unwrap_err().code(), "E0301");
}

// ---------- routing configurations ----------

fn config_with_routes(n: usize) -> String {
    let routes: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name": "r{i}", "source": "DeviceMessages", "condition": "key1 = '{i}'",
                    "endpointNames": ["events"], "isEnabled": true}}"#
            )
        })
        .collect();
    format!("{{\"routes\": [{}]}}", routes.join(","))
}

#[test]
fn route_count_limit_is_100_e0415() {
    let build = RouteTable::from_json(&config_with_routes(100), "hub");
    assert!(build.table.is_some(), "{:?}", build.diagnostics);
    assert!(!build.diagnostics.iter().any(|d| d.code == "E0415"));
    let build = RouteTable::from_json(&config_with_routes(101), "hub");
    assert!(build.table.is_none());
    let e: Vec<_> = build
        .diagnostics
        .iter()
        .filter(|d| d.code == "E0415")
        .collect();
    assert_eq!(e.len(), 1, "{:?}", build.diagnostics);
    // Far more routes are one error, not one per route, and no table.
    let build = RouteTable::from_json(&config_with_routes(1_000), "hub");
    assert!(build.table.is_none());
    assert_eq!(
        build
            .diagnostics
            .iter()
            .filter(|d| d.code == "E0415")
            .count(),
        1
    );
}

#[test]
fn route_conditions_get_the_condition_limits() {
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let long = format!("'{}'", "x".repeat(70_000));
    for (condition, code) in [(deep, codes::TOO_LONG), (long, codes::TOO_LONG)] {
        let config = serde_json::json!({"routes": [{"name": "r", "source": "DeviceMessages",
            "condition": condition, "endpointNames": ["events"], "isEnabled": true}]});
        let build = RouteTable::from_json(&config.to_string(), "hub");
        assert!(build.table.is_none());
        let found = build.diagnostics.iter().any(|d| {
            d.condition
                .as_ref()
                .is_some_and(|(_, diag)| diag.code == code)
                || d.code == code
        });
        assert!(found, "{:?}", build.diagnostics);
    }
    let nested = format!("{}1{}", "(".repeat(300), ")".repeat(300));
    let config = serde_json::json!({"routes": [{"name": "r", "source": "DeviceMessages",
        "condition": nested, "endpointNames": ["events"], "isEnabled": true}]});
    let build = RouteTable::from_json(&config.to_string(), "hub");
    assert!(build.table.is_none());
    assert!(build.diagnostics.iter().any(|d| {
        d.condition
            .as_ref()
            .is_some_and(|(_, diag)| diag.code == codes::TOO_DEEP)
            || d.code == codes::TOO_DEEP
    }));
}

#[test]
fn routing_document_nesting_is_bounded() {
    let text = format!("{{\"routes\": {}", "[".repeat(100_000));
    let build = RouteTable::from_json(&text, "hub");
    assert!(build.table.is_none());
    assert!(!build.diagnostics.is_empty());
}

#[test]
fn endpoint_and_enrichment_limits_are_10_e0421_e0441() {
    let config = |endpoints: usize, enrichments: usize| {
        let hubs: Vec<_> = (0..endpoints)
            .map(|i| serde_json::json!({"name": format!("hub{i}")}))
            .collect();
        let enrich: Vec<_> = (0..enrichments)
            .map(|i| {
                serde_json::json!({"key": format!("k{i}"), "value": "v", "endpointNames": ["events"]})
            })
            .collect();
        serde_json::json!({
            "routes": [{"name": "r", "source": "DeviceMessages", "condition": "true",
                        "endpointNames": ["events"], "isEnabled": true}],
            "endpoints": {"eventHubs": hubs},
            "enrichments": enrich,
        })
        .to_string()
    };
    let codes = |text: String| -> Vec<&'static str> {
        RouteTable::from_json(&text, "hub")
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect()
    };
    assert!(!codes(config(10, 10)).iter().any(|c| c.starts_with('E')));
    assert!(codes(config(11, 0)).contains(&"E0421"));
    assert!(codes(config(0, 11)).contains(&"E0441"));
}

/// A full table of the largest conditions the limits allow, all alike (so that every test is
/// shared across the routes): it builds, and routes as the conditions say. Sharing describes
/// each node by its operands' numbers, so a deep condition costs its size, not size × depth
/// (a description by text was quadratic: 100 routes of 64 KiB at depth 120 were gigabytes).
#[test]
fn a_table_of_maximal_conditions_builds_and_routes() {
    let depth = Limits::default().max_depth - 8;
    let atom = format!("(k = '{}' OR n = 'y')", "x".repeat(200));
    let condition = std::iter::repeat_n(atom.as_str(), depth)
        .collect::<Vec<_>>()
        .join(" AND ");
    assert!(condition.len() < Limits::default().max_length);
    let routes: Vec<_> = (0..100)
        .map(|i| {
            serde_json::json!({"name": format!("r{i}"), "source": "DeviceMessages",
                "condition": condition, "endpointNames": ["events"], "isEnabled": true})
        })
        .collect();
    let config = serde_json::json!({ "routes": routes });
    let build = RouteTable::from_json(&config.to_string(), "hub");
    let table = build.table.expect("the table builds");
    let mut router = table.router();
    for (n, matches) in [("y", true), ("z", false)] {
        let m = Message::from_json_value(&serde_json::json!({"appProperties": {"n": n}})).unwrap();
        let out = router.route(&m, hubroute::message::Source::DeviceMessages);
        assert_eq!(out.endpoints.len(), usize::from(matches), "n = {n}");
    }
}

/// A configuration of any size keeps at most `MAX_DIAGNOSTICS` diagnostics and counts the rest,
/// so memory stays bounded; the counts are exact and the table is refused.
#[test]
fn configuration_diagnostics_are_capped_and_counted() {
    use hubroute::route::validate::MAX_DIAGNOSTICS;
    let routes = vec!["{\"name\": 5, \"isEnabled\": \"no\"}"; 50_000].join(",");
    let build = RouteTable::from_json(&format!("{{\"routes\": [{routes}]}}"), "hub");
    assert!(build.table.is_none());
    assert_eq!(build.diagnostics.len(), MAX_DIAGNOSTICS);
    // Per route: name and isEnabled of the wrong type and source missing (read), then name,
    // source, isEnabled, endpointNames (validation); and E0415 once.
    assert_eq!(
        build.errors,
        50_000 * 7 + 1,
        "{:?}",
        &build.diagnostics[..3]
    );
    assert_eq!(build.warnings, 0);
    assert_eq!(build.omitted, build.errors - MAX_DIAGNOSTICS);
    // Below the cap every diagnostic is kept.
    let build = RouteTable::from_json("{\"routes\": [{}, {}]}", "hub");
    assert_eq!(build.omitted, 0);
    assert_eq!(build.diagnostics.len(), build.errors);
}
