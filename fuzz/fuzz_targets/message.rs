//! Message JSON, base64 bodies and validation. Arbitrary text through `from_json_str` (the same
//! answer as the general path, `from_json_str_general`) and
//! `from_json_value`; arbitrary `bodyBase64` strings; generated messages through
//! `to_json_value` and back. No panic; whatever loads validates under every protocol, reports
//! coded violations, and round-trips through its JSON form exactly.
#![no_main]

use arbitrary::Unstructured;
use hubroute::eval::EvalContext;
use hubroute::message::{Message, Protocol, MAX_MESSAGE_SIZE, MESSAGE_TOO_LARGE};
use hubroute_fuzz::gen;
use libfuzzer_sys::fuzz_target;

fn exercise(m: &Message) {
    for p in [
        Protocol::Mqtt,
        Protocol::Amqp,
        Protocol::Https,
        Protocol::CloudToDevice,
    ] {
        let violations = m.validate(p);
        for v in &violations {
            assert!(v.code.starts_with("E03"), "{v:?}");
        }
        assert_eq!(
            violations.iter().any(|v| v.code == MESSAGE_TOO_LARGE),
            m.size() > MAX_MESSAGE_SIZE
        );
    }
    let _ = m.body_text();
    let _ = EvalContext::new(m).body();
    let v = m.to_json_value();
    let back = Message::from_json_value(&v).expect("to_json_value output loads");
    assert_eq!(
        canonical(&back),
        canonical(m),
        "from_json_value(to_json_value(m))"
    );
    let text = v.to_string();
    let back = Message::from_json_str(&text).expect("to_json_value text loads");
    assert_eq!(
        canonical(&back),
        canonical(m),
        "from_json_str(to_json_value(m))"
    );
}

type Props = Vec<(String, Option<String>)>;

/// A message with its property bags sorted by name: `to_json_value` builds a
/// `serde_json::Map`, which (without serde_json's `preserve_order` feature) sorts its keys,
/// so the JSON round trip keeps every property but not their order.
fn canonical(m: &Message) -> (Props, Props, &[u8], Option<hubroute::message::Source>) {
    let sorted = |p: &hubroute::message::Properties| {
        let mut v: Props = p
            .iter()
            .map(|(n, v)| (n.to_string(), v.map(String::from)))
            .collect();
        v.sort();
        v
    };
    (
        sorted(&m.system_properties),
        sorted(&m.app_properties),
        &m.body,
        m.source,
    )
}

/// Generated messages keep property names unique case-insensitively, as loading does, and
/// spell system properties as loading stores them: loading reads IoT Hub's other spellings
/// (`content-type`, `$.ct`, `iothub-message-source`) as routing names or the source.
fn load_equivalent(m: &Message) -> bool {
    let routing_spelling = m.system_properties.iter().all(|(n, _)| {
        !hubroute::message::eq_ignore_case(n, hubroute::message::naming::MESSAGE_SOURCE)
            && hubroute::message::naming::canonical_name(n)
                .is_none_or(|c| hubroute::message::eq_ignore_case(c, n))
    });
    let unique = |p: &hubroute::message::Properties| {
        let names: Vec<&str> = p.iter().map(|(n, _)| n).collect();
        names.iter().enumerate().all(|(i, a)| {
            names[..i]
                .iter()
                .all(|b| !hubroute::message::eq_ignore_case(a, b))
        })
    };
    routing_spelling && unique(&m.system_properties) && unique(&m.app_properties)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            // The one-pass reader and the general path load the same message or fail alike.
            assert_eq!(
                Message::from_json_str(&text),
                Message::from_json_str_general(&text),
                "{text:?}"
            );
            if let Ok(m) = Message::from_json_str(&text) {
                exercise(&m);
            } else if let Err(e) = Message::from_json_str(&text) {
                assert!(e.code().starts_with("E03"));
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Ok(m) = Message::from_json_value(&v) {
                    let _ = m.validate(Protocol::Https);
                }
            }
        }
        1 => {
            let s = String::from_utf8_lossy(rest);
            let doc = serde_json::json!({
                "systemProperties": {"contentType": "application/json", "contentEncoding": "utf-16"},
                "bodyBase64": s,
            });
            match Message::from_json_str(&doc.to_string()) {
                Ok(m) => exercise(&m),
                Err(e) => assert_eq!(e.code(), "E0307", "{e}"),
            }
        }
        _ => {
            let mut u = Unstructured::new(rest);
            let Ok(m) = gen::message(&mut u) else { return };
            if load_equivalent(&m) {
                exercise(&m);
            } else {
                let _ = m.validate(Protocol::Https);
                let _ = m.to_json_value();
            }
        }
    }
});
