//! Arbitrary bytes as a condition: the parser (default and tight limits) must never panic,
//! and whatever parses must print canonically and reparse to the same canonical text (for
//! trees with error alternatives: print and reparse without panicking).
//! Whatever also checks is compiled and evaluated on an empty message, both evaluators.
#![no_main]

use hubroute::eval::EvalContext;
use hubroute::message::Message;
use hubroute::syntax::{parse, parse_with_limits, Limits};
use hubroute::{Condition, Options};
use hubroute_fuzz::has_invalid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_with_limits(
        &text,
        &Limits {
            max_length: 256,
            max_depth: 4,
        },
    );
    let Ok(ast) = parse(&text) else { return };
    let printed = ast.to_string();
    let unlimited_length = Limits {
        max_length: usize::MAX,
        ..Limits::default()
    };
    let again = parse_with_limits(&printed, &unlimited_length);
    if ast.root.as_ref().is_some_and(has_invalid) {
        // Error trees (which never compile) must print and reparse without panicking; their
        // printed form is not always canonical yet (README, "Fuzzing", known issues).
        if let Ok(again) = again {
            let _ = again.to_string();
        }
    } else {
        let again = again
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?} does not reparse: {e}"));
        assert_eq!(
            again.to_string(),
            printed,
            "printing is not canonical for {text:?}"
        );
    }
    for options in [Options::iot_hub(), Options::edge_none()] {
        if let Ok(cond) = Condition::compile(&text, &options) {
            let msg = Message::default();
            let fast = cond.eval(&msg);
            let reference = cond.eval_reference(&EvalContext::new(&msg));
            assert_eq!(fast, reference, "{text:?} with {options:?}");
        }
    }
});
