//! Anti-spoofing in conditions: a device cannot change a routing decision with an application
//! property named like a system property the router stamps from the connection
//! (`$connectionDeviceId`, `$connectionModuleId`, `$connectionAuthMethod`,
//! `$connectionDeviceGenerationId`, `$enqueuedTime`), in any case, whichever evaluator runs the
//! condition; other `$x` names keep the reference engine's lookup (R01: application property
//! `$x`, then system property `x`).

use hubroute::eval::EvalContext;
use hubroute::message::{Message, Source};
use hubroute::route::RouteTable;
use hubroute::{Bool3, Condition, Options};
use serde_json::json;

/// The stamped names, each with the value the router stamped and the value a device claims.
const STAMPED: [(&str, &str, &str); 5] = [
    ("connectionDeviceId", "evil", "victim"),
    ("connectionModuleId", "evil-module", "victim-module"),
    (
        "connectionAuthMethod",
        "{\"scope\":\"device\"}",
        "{\"scope\":\"hub\"}",
    ),
    ("connectionDeviceGenerationId", "1", "2"),
    (
        "enqueuedTime",
        "2026-01-01T00:00:00.0000000Z",
        "2020-01-01T00:00:00.0000000Z",
    ),
];

/// Spellings a device might use for the application property: any case.
fn spellings(name: &str) -> Vec<String> {
    vec![
        format!("${name}"),
        format!("${}", name.to_uppercase()),
        format!("${}", name.to_lowercase()),
    ]
}

/// Whether each evaluator matches (a route matches only on true): the compiled program, the
/// reference interpreter, and a route table's router (which reads properties through its plan).
fn all_results(condition: &str, msg: &Message) -> [bool; 3] {
    let cond = Condition::compile(condition, &Options::iot_hub()).unwrap();
    let ctx = EvalContext::new(msg);
    let config = json!({"routes": [{"name": "r", "source": "DeviceMessages", "condition": condition,
        "endpointNames": ["events"], "isEnabled": true}]});
    let build = RouteTable::from_json(&config.to_string(), "hub");
    let table = build
        .table
        .unwrap_or_else(|| panic!("{:?}", build.diagnostics));
    let routed = !table
        .route(msg, Source::DeviceMessages)
        .endpoints
        .is_empty();
    [
        cond.eval(msg) == Bool3::True,
        cond.eval_reference(&ctx) == Bool3::True,
        routed,
    ]
}

#[test]
fn stamped_names_read_only_the_stamped_system_property() {
    for (name, stamped, claimed) in STAMPED {
        for app_name in spellings(name) {
            let msg = Message::from_json_value(&json!({
                "systemProperties": {name: stamped},
                "appProperties": {app_name.clone(): claimed},
            }))
            .unwrap();
            for query_name in spellings(name) {
                let claim = format!("{query_name} = '{}'", claimed.replace('\'', "\\'"));
                assert_eq!(
                    all_results(&claim, &msg),
                    [false; 3],
                    "{claim} with application property {app_name}"
                );
                let truth = format!("{query_name} = '{}'", stamped.replace('\'', "\\'"));
                assert_eq!(all_results(&truth, &msg), [true; 3], "{truth}");
            }
        }
    }
}

#[test]
fn a_missing_stamp_is_not_filled_in_by_the_device() {
    // A device (not a module) has no connectionModuleId: `$connectionModuleId` stays
    // undefined rather than reading the device's claim.
    let msg = Message::from_json_value(&json!({
        "systemProperties": {"connectionDeviceId": "evil"},
        "appProperties": {"$connectionModuleId": "victim-module", "$CONNECTIONDEVICEID": "victim"},
    }))
    .unwrap();
    for condition in [
        "$connectionModuleId = 'victim-module'",
        "is_defined($connectionModuleId)",
        "$connectionDeviceId = 'victim'",
    ] {
        assert_eq!(all_results(condition, &msg), [false; 3], "{condition}");
    }
    assert_eq!(all_results("$connectionDeviceId = 'evil'", &msg), [true; 3]);
}

#[test]
fn other_dollar_names_keep_the_reference_lookup() {
    // R01: an application property `$x` overrides system property `x` for names the router
    // does not stamp (the conformance corpus' `$sys4`, and e.g. `$messageId`).
    let msg = Message::from_json_value(&json!({
        "systemProperties": {"sys4": "sysvalue4", "messageId": "m-sys"},
        "appProperties": {"$sys4": "value4", "$MessageId": "m-app"},
    }))
    .unwrap();
    for condition in [
        "$sys4 = 'value4'",
        "$messageId = 'm-app'",
        "{$sys4} = 'sysvalue4'",
    ] {
        assert_eq!(all_results(condition, &msg), [true; 3], "{condition}");
    }
}
