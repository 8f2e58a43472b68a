//! Parser and selection tests over whole documents.

use super::*;

fn doc(text: &str) -> JsonDoc {
    JsonDoc::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn sel<'a>(d: &'a JsonDoc, path: &str) -> Selected<'a> {
    d.select(&BodyPath::parse(path))
}

fn nested(depth: usize) -> String {
    // One object plus depth-1 arrays.
    format!(
        "{{\"a\":{}{}}}",
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

#[test]
fn depth_limit() {
    assert!(JsonDoc::parse(&nested(64)).is_ok());
    let e = JsonDoc::parse(&nested(65)).unwrap_err();
    assert!(e.message.contains("MaxDepth"), "{e}");
}

#[test]
fn deep_input_does_not_overflow() {
    let text = format!("{{\"a\":{}", "[".repeat(100_000));
    assert!(JsonDoc::parse(&text).is_err());
    let text = "[".repeat(100_000);
    assert!(JsonDoc::parse(&text).is_err());
    let text = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    assert!(JsonDoc::parse(&text).is_err());
}

#[test]
fn primitives() {
    let d = doc(r#"{"s":"x","n":1.5,"t":true,"f":false,"z":null,"o":{},"a":[],"u":undefined}"#);
    assert_eq!(sel(&d, "s"), Selected::String("x".into()));
    assert_eq!(sel(&d, "n"), Selected::Number(1.5));
    assert_eq!(sel(&d, "t"), Selected::Bool(true));
    assert_eq!(sel(&d, "f"), Selected::Bool(false));
    assert_eq!(sel(&d, "z"), Selected::Null);
    assert_eq!(sel(&d, "o"), Selected::Object);
    assert_eq!(sel(&d, "a"), Selected::Array);
    assert_eq!(sel(&d, "u"), Selected::Undefined);
    assert_eq!(sel(&d, "S"), Selected::Missing, "names are case-sensitive");
}

#[test]
fn lenient_syntax() {
    let d = doc(
        "// leading\n{ /* c */ 'single': 'q\\'s', bare_Name$1 : 012, hex: 0x1F, \
         nan: NaN, inf: Infinity, ninf: -Infinity, big: 1e400, trail: [1,2,], } // end\n/* more */",
    );
    assert_eq!(sel(&d, "single"), Selected::String("q's".into()));
    assert_eq!(sel(&d, "bare_Name$1"), Selected::Number(10.0));
    assert_eq!(sel(&d, "hex"), Selected::Number(31.0));
    assert!(matches!(sel(&d, "nan"), Selected::Number(n) if n.is_nan()));
    assert_eq!(sel(&d, "inf"), Selected::Number(f64::INFINITY));
    assert_eq!(sel(&d, "ninf"), Selected::Number(f64::NEG_INFINITY));
    assert_eq!(sel(&d, "big"), Selected::Number(f64::INFINITY));
    assert_eq!(sel(&d, "trail[1]"), Selected::Number(2.0));
    assert_eq!(sel(&d, "trail[2]"), Selected::Missing);
}

#[test]
fn empty_slots_and_constructors() {
    let d = doc("{a:[1,,2], b:, c: new Date(1, 'x')}");
    assert_eq!(sel(&d, "a[1]"), Selected::Undefined);
    assert_eq!(sel(&d, "a[2]"), Selected::Number(2.0));
    assert_eq!(sel(&d, "b"), Selected::Undefined);
    assert_eq!(sel(&d, "c"), Selected::Object);
    assert_eq!(sel(&d, "c[1]"), Selected::String("x".into()));
}

#[test]
fn rejected_documents() {
    for text in [
        "",
        "   ",
        "[1]",
        "\"x\"",
        "1",
        "{",
        "{\"a\":1",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{\"a\":]",
        "{,}",
        "{\"a\":tru}",
        "{\"a\":truex}",
        "{\"a\":nul}",
        "{\"a\":1x}",
        "{\"a\":09}",
        "{\"a\":+1}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"bad \\x escape\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":[1}",
        "{\"a\":{]}",
        "{a-b:1}",
        "{\"a\":1 /* open",
        "{\"a\":1 / 2}",
        "{\"a\":new(1)}",
        "{\"a\":\"9999-12-31T24:00:00\"}",
        "Invalid Json",
    ] {
        assert!(JsonDoc::parse(text).is_err(), "{text:?} should be rejected");
    }
}

#[test]
fn error_position() {
    let e = JsonDoc::parse("{\n  \"a\": 1,\n  \"b\": x\n}").unwrap_err();
    assert_eq!((e.line, e.column), (3, 8));
}

#[test]
fn strings_and_escapes() {
    let d = doc(
        r#"{"plain":"abc","esc":"a\"b\\c\/\n\u0041","pair":"\ud83d\ude00","lone":"\ud83dx","low":"\ude00","hh":"\ud83d\ud83d\ude00","raw":"tab	here"}"#,
    );
    assert_eq!(sel(&d, "plain"), Selected::String("abc".into()));
    assert_eq!(sel(&d, "esc"), Selected::String("a\"b\\c/\nA".into()));
    assert_eq!(sel(&d, "pair"), Selected::String("😀".into()));
    assert_eq!(sel(&d, "lone"), Selected::String("\u{FFFD}x".into()));
    assert_eq!(sel(&d, "low"), Selected::String("\u{FFFD}".into()));
    assert_eq!(sel(&d, "hh"), Selected::String("\u{FFFD}😀".into()));
    assert_eq!(sel(&d, "raw"), Selected::String("tab\there".into()));
    let d = doc(r#"{"a\u0062":1}"#);
    assert_eq!(sel(&d, "ab"), Selected::Number(1.0));
}

#[test]
fn dates() {
    let d = doc(
        r#"{"t":"2017-03-09T00:00:00Z","d":"2017-03-09","o":"2017-03-09T00:00:00+01:00","m":"/Date(0)/","k":{"2017-03-09T00:00:00Z":1}}"#,
    );
    assert_eq!(sel(&d, "t"), Selected::Date);
    assert_eq!(sel(&d, "d"), Selected::String("2017-03-09".into()));
    assert_eq!(sel(&d, "o"), Selected::Date);
    assert_eq!(sel(&d, "m"), Selected::Date);
    // Property names are never dates.
    assert_eq!(sel(&d, "k.*"), Selected::Number(1.0));
}

#[test]
fn duplicate_keys_last_wins() {
    let d = doc(r#"{"a":1,"b":2,"a":3}"#);
    assert_eq!(sel(&d, "a"), Selected::Number(3.0));
    assert_eq!(sel(&d, "*"), Selected::Multiple);
    let d = doc(r#"{"a":{"x":1},"a":2}"#);
    assert_eq!(sel(&d, "a"), Selected::Number(2.0));
    assert_eq!(
        sel(&d, "..x"),
        Selected::Missing,
        "shadowed subtree is gone"
    );
    let many: Vec<String> = (0..40).map(|i| format!("\"k{}\":{i}", i % 20)).collect();
    let d = doc(&format!("{{{}}}", many.join(",")));
    assert_eq!(sel(&d, "k3"), Selected::Number(23.0));
}

#[test]
fn selection_shapes() {
    let d = doc(r#"{"a":{"b":[10,{"c":"x"},[1,2]],"only":{"one":5}},"arr":[1],"n":null}"#);
    assert_eq!(sel(&d, "a.b[0]"), Selected::Number(10.0));
    assert_eq!(sel(&d, "a.b[1].c"), Selected::String("x".into()));
    assert_eq!(sel(&d, "a.b[2][1]"), Selected::Number(2.0));
    assert_eq!(sel(&d, "a.b[3]"), Selected::Missing, "index out of range");
    assert_eq!(sel(&d, "a[0]"), Selected::Missing, "index on an object");
    assert_eq!(sel(&d, "a.b.c"), Selected::Missing, "field on an array");
    assert_eq!(sel(&d, "n.x"), Selected::Missing);
    assert_eq!(sel(&d, "a.b[*]"), Selected::Multiple);
    assert_eq!(sel(&d, "arr[*]"), Selected::Number(1.0));
    assert_eq!(sel(&d, "a.only.*"), Selected::Number(5.0));
    assert_eq!(sel(&d, "a.*"), Selected::Multiple);
    assert_eq!(
        sel(&d, "arr.*"),
        Selected::Missing,
        "wildcard field on an array"
    );
    assert_eq!(
        sel(&d, "a.b[-1]"),
        Selected::Error,
        "negative index on an array"
    );
    assert_eq!(sel(&d, "a.only[-1]"), Selected::Missing);
    assert_eq!(
        sel(&d, "a.b[0]x"),
        Selected::Error,
        "JPath rejects the text"
    );
    assert_eq!(sel(&d, "a..c"), Selected::String("x".into()));
    assert_eq!(sel(&d, "a.b[0,5]"), Selected::Number(10.0));
    assert_eq!(sel(&d, "a['only']['one']"), Selected::Number(5.0));
    assert_eq!(sel(&d, "$.arr[0]"), Selected::Number(1.0));
    assert_eq!(sel(&d, ""), Selected::Object);
}

#[test]
fn strings_borrow_from_document() {
    let text = r#"{"plain":"abc","esc":"a\nb"}"#;
    let d = doc(text);
    let Selected::String(s) = sel(&d, "plain") else {
        panic!("not a string")
    };
    let inside = d.text.as_bytes().as_ptr_range();
    assert!(inside.contains(&s.as_ptr()));
    let Selected::String(e) = sel(&d, "esc") else {
        panic!("not a string")
    };
    assert!(d.unescaped.as_bytes().as_ptr_range().contains(&e.as_ptr()));
}

#[test]
fn nul_and_unicode_whitespace() {
    let d = doc("{\u{a0}\"a\"\u{2003}:\u{0}1}");
    assert_eq!(sel(&d, "a"), Selected::Number(1.0));
}

/// Arbitrary short inputs from a JSON-ish alphabet: parsing and selecting
/// must never panic, whatever the outcome.
#[test]
fn no_panics_on_arbitrary_input() {
    const ALPHABET: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        ":",
        ",",
        "\"",
        "'",
        "\\",
        "u",
        "d83d",
        "/",
        "*",
        " ",
        "\0",
        "é",
        "😀",
        "0",
        "1",
        "x",
        "e",
        "-",
        ".",
        "new ",
        "NaN",
        "true",
        "a",
        "T",
        "2017-03-09T00:00:00",
        "/Date(",
        ")/",
        "\n",
        "\\é",
        "\\u",
    ];
    let paths: Vec<BodyPath> = ["a", "*", "a[0]", "..a", "a[*].b", "[-1]", "é['x']"]
        .iter()
        .map(|p| BodyPath::parse(p))
        .collect();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        let mut text = String::from("{");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 12) as usize;
        for i in 0..len {
            let r = seed.rotate_left(i as u32 * 5) as usize;
            text.push_str(ALPHABET[r % ALPHABET.len()]);
        }
        if let Ok(d) = JsonDoc::parse(&text) {
            for p in &paths {
                let _ = d.select(p);
            }
        }
        let _ = validate_body_path(&text[1..]);
        let _ = BodyPath::parse(&text[1..]);
    }
    assert!(JsonDoc::parse("{\"a\":\"\\é\"}").is_err());
}
