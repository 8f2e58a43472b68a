//! Grammar-aware generated conditions through parse, check and compile under arbitrary
//! options: no panic; every diagnostic has a code and a span inside the text; a condition that
//! compiles prints to text that compiles again, to the same canonical form.
#![no_main]

use arbitrary::Unstructured;
use hubroute::Condition;
use hubroute_fuzz::gen;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(text) = gen::condition(&mut u) else {
        return;
    };
    let Ok(options) = gen::options(&mut u) else {
        return;
    };
    let in_text = |s: hubroute::span::Span| s.start <= s.end && s.end as usize <= text.len();
    match Condition::compile(&text, &options) {
        Err(e) => {
            assert!(!e.0.is_empty(), "{text:?}: an error without diagnostics");
            for d in &e.0 {
                assert!(d.code.starts_with('E') || d.code.starts_with('W'), "{d:?}");
                assert!(in_text(d.span), "{text:?}: span out of range in {d:?}");
            }
        }
        Ok(cond) => {
            for d in cond.warnings() {
                assert!(
                    in_text(d.span),
                    "{text:?}: warning span out of range in {d:?}"
                );
            }
            let _ = cond.complexity();
            let printed = cond.ast().to_string();
            let again = Condition::compile(&printed, &options).unwrap_or_else(|e| {
                panic!("{text:?} printed as {printed:?} no longer compiles: {e}")
            });
            assert_eq!(again.ast().to_string(), printed, "{text:?}");
            assert_eq!(
                again.checked().ty,
                cond.checked().ty,
                "{text:?} vs {printed:?}"
            );
        }
    }
});
