//! Corpus conditions (and some generated ones) evaluated on arbitrary messages: arbitrary
//! property names and values, wrong or missing content types and encodings, bodies in UTF-8,
//! UTF-16 and UTF-32 with and without BOM, torn, deeply nested or arbitrary bytes, with and
//! without a twin. No panic, and the compiled evaluator agrees with the reference interpreter.
#![no_main]

use arbitrary::Unstructured;
use hubroute::eval::{EvalContext, TwinLookup};
use hubroute::message::Protocol;
use hubroute::{Condition, Options};
use hubroute_fuzz::{gen, DocTwin, CORPUS_QUERIES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(generated) = u.ratio(1, 4) else { return };
    let query = if generated {
        let Ok(q) = gen::condition(&mut u) else {
            return;
        };
        q
    } else {
        let Ok(q) = u.choose(CORPUS_QUERIES) else {
            return;
        };
        q.to_string()
    };
    let options = if u.ratio(1, 5).unwrap_or(false) {
        Options::edge_none()
    } else {
        Options::iot_hub()
    };
    let Ok(msg) = gen::message(&mut u) else {
        return;
    };
    let twin = if u.arbitrary().unwrap_or(false) {
        gen::twin(&mut u).ok().flatten().map(DocTwin)
    } else {
        None
    };
    let ctx = || match &twin {
        Some(t) => EvalContext::new(&msg).with_twin(t as &dyn TwinLookup),
        None => EvalContext::new(&msg),
    };
    let _ = msg.body_text();
    let _ = msg.validate(Protocol::Mqtt);
    let Ok(cond) = Condition::compile(&query, &options) else {
        return;
    };
    let fast = cond.eval_in(&ctx());
    let reference = cond.eval_reference(&ctx());
    assert_eq!(fast, reference, "{query:?} on {msg:?}");
    // One shared context (the body parsed once) gives the same answers.
    let shared = ctx();
    assert_eq!(cond.eval_in(&shared), fast);
    assert_eq!(cond.eval_reference(&shared), fast);
    if twin.is_none() {
        assert_eq!(cond.eval(&msg), fast);
    }
});
