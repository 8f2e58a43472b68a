//! The grammar's example queries (`grammar/examples`) and the canonical printer:
//! valid examples compile cleanly, invalid ones fail with the code their header names, and
//! parse → print → parse gives the same tree for every query in the examples and the corpus.

use hubroute::span::Span;
use hubroute::syntax::{self, Expr, ExprKind, Invalid};
use hubroute::{Condition, Options};
use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text.trim_end_matches('\n').to_string())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no examples in {}", dir.display());
    out
}

#[test]
fn valid_examples_compile_without_diagnostics() {
    for (path, query) in files("grammar/examples/valid") {
        match Condition::compile(&query, &Options::iot_hub()) {
            Ok(c) => assert!(
                c.warnings().is_empty(),
                "{}: unexpected warnings {:?}",
                path.display(),
                c.warnings()
            ),
            Err(e) => panic!("{}: {e:?}", path.display()),
        }
    }
}

#[test]
fn invalid_examples_fail_with_their_code() {
    for (path, query) in files("grammar/examples/invalid") {
        let code = query
            .split("expect: ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("{}: no '/* expect: CODE */' header", path.display()));
        // `dialect: edge` in the header: an error of the Edge engine that the hub dialect lifts.
        let options = match query.contains("dialect: edge") {
            true => Options {
                dialect: hubroute::Dialect::Edge,
                ..Options::iot_hub()
            },
            false => Options::iot_hub(),
        };
        let err = Condition::compile(&query, &options)
            .err()
            .unwrap_or_else(|| panic!("{}: compiled", path.display()));
        assert!(
            err.errors().any(|d| d.code == code),
            "{}: expected {code}, got {:?}",
            path.display(),
            err.0
        );
    }
}

/// The tree with every span zeroed, for comparing trees of different texts.
fn unspanned(e: &Expr) -> Expr {
    let z = Span::default();
    let b = |e: &Expr| Box::new(unspanned(e));
    let kind = match &e.kind {
        ExprKind::Call {
            name,
            args,
            raw_args,
            ..
        } => ExprKind::Call {
            name: name.clone(),
            name_span: z,
            args: args.iter().map(unspanned).collect(),
            // The argument text matters only to twin_change_includes (R24); printing may
            // drop redundant parentheses and upper-case keywords in it.
            raw_args: if name.eq_ignore_ascii_case("twin_change_includes") {
                raw_args.to_ascii_lowercase()
            } else {
                String::new()
            },
        },
        ExprKind::Unary { op, operand, .. } => ExprKind::Unary {
            op: *op,
            op_span: z,
            operand: b(operand),
        },
        ExprKind::Binary {
            op, left, right, ..
        } => ExprKind::Binary {
            op: *op,
            op_span: z,
            left: b(left),
            right: b(right),
        },
        ExprKind::Invalid(inv) => ExprKind::Invalid(match inv {
            Invalid::Symbol { text, operands, .. } => Invalid::Symbol {
                symbol: z,
                text: text.clone(),
                operands: operands.iter().map(unspanned).collect(),
            },
            Invalid::ExtraParen { inner, .. } => Invalid::ExtraParen {
                inner: b(inner),
                paren: z,
            },
            Invalid::MissingParen { inner, .. } => Invalid::MissingParen {
                inner: b(inner),
                paren: z,
            },
            other => other.clone(),
        }),
        other => other.clone(),
    };
    Expr { kind, span: z }
}

fn assert_round_trip(origin: &str, query: &str) -> bool {
    let Ok(ast) = syntax::parse(query) else {
        return false;
    };
    let printed = ast.to_string();
    let again = syntax::parse(&printed).unwrap_or_else(|e| {
        panic!("{origin}: printed form {printed:?} of {query:?} does not parse: {e}")
    });
    assert_eq!(
        ast.root.as_ref().map(unspanned),
        again.root.as_ref().map(unspanned),
        "{origin}: {query:?} printed as {printed:?} parses differently"
    );
    assert_eq!(
        again.to_string(),
        printed,
        "{origin}: printing is not stable"
    );
    assert!(
        again.trailing.is_none(),
        "{origin}: printed form has trailing input"
    );
    true
}

#[test]
fn parse_print_parse_round_trips() {
    let mut checked = 0;
    for (path, query) in files("grammar/examples/valid")
        .into_iter()
        .chain(files("grammar/examples/invalid"))
    {
        checked += assert_round_trip(&path.display().to_string(), &query) as usize;
    }
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases");
    for entry in std::fs::read_dir(&cases).expect("conformance corpus beside the repo") {
        let path = entry.unwrap().path();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(q) = case["query"].as_str() {
                checked += assert_round_trip(case["id"].as_str().unwrap(), q) as usize;
            }
        }
    }
    assert!(checked > 700, "only {checked} queries round-tripped");
}
