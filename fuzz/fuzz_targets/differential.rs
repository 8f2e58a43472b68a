//! The optimised evaluator against the reference interpreter: a generated condition under
//! generated options, on a generated message (and twin), must give the same answer from the
//! compiled program (fresh and shared contexts) and from the interpreter; and parse → print →
//! parse must round-trip: the printed form compiles, prints identically and evaluates the same.
#![no_main]

use arbitrary::Unstructured;
use hubroute::eval::{EvalContext, TwinLookup};
use hubroute::syntax::Limits;
use hubroute::Condition;
use hubroute_fuzz::{gen, DocTwin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(query) = gen::condition(&mut u) else {
        return;
    };
    let Ok(options) = gen::options(&mut u) else {
        return;
    };
    let Ok(cond) = Condition::compile(&query, &options) else {
        return;
    };
    let printed = cond.ast().to_string();
    let unlimited_length = Limits {
        max_length: usize::MAX,
        ..Limits::default()
    };
    let reprinted = Condition::compile_with_limits(&printed, &options, &unlimited_length)
        .unwrap_or_else(|e| panic!("{query:?} printed as {printed:?} no longer compiles: {e}"));
    assert_eq!(reprinted.ast().to_string(), printed, "{query:?}");
    let twin = if u.arbitrary().unwrap_or(false) {
        gen::twin(&mut u).ok().flatten().map(DocTwin)
    } else {
        None
    };
    for _ in 0..3 {
        let Ok(msg) = gen::message(&mut u) else {
            return;
        };
        let ctx = || match &twin {
            Some(t) => EvalContext::new(&msg).with_twin(t as &dyn TwinLookup),
            None => EvalContext::new(&msg),
        };
        let fast = cond.eval_in(&ctx());
        let reference = cond.eval_reference(&ctx());
        assert_eq!(
            fast, reference,
            "compiled vs reference: {query:?} with {options:?} on {msg:?}"
        );
        let shared = ctx();
        assert_eq!(
            cond.eval_reference(&shared),
            fast,
            "{query:?} (shared, reference first)"
        );
        assert_eq!(cond.eval_in(&shared), fast, "{query:?} (shared)");
        assert_eq!(
            reprinted.eval_in(&ctx()),
            fast,
            "{query:?} vs printed {printed:?} on {msg:?}"
        );
    }
});
