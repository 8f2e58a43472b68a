//! Grammar-aware generators driven by [`arbitrary::Unstructured`]: routing conditions,
//! messages (properties, JSON bodies in every supported encoding, raw bytes), device twins and
//! routing configurations. The vocabulary follows `tests/differential.rs`, widened with
//! `$twin`, `twin_change_includes`, the documented aliases, odd literals, comments and keyword
//! casing, so that most generated conditions compile and reach the evaluator.
//!
//! Every generator is total: when the fuzzer's input runs out, `Unstructured` yields the
//! smallest choice, so generation ends in a leaf instead of failing.

use arbitrary::{Result, Unstructured};
use hubroute::body::JsonDoc;
use hubroute::message::{Message, Source};
use hubroute::Options;
use std::sync::LazyLock;

/// Fixed leaves: literals of every kind and the names the generated messages define.
pub const LEAVES: &[&str] = &[
    "1",
    "0",
    "-3",
    "2.5",
    ".5",
    "0x1F",
    "0xFFFFFFFFFFFFFFFF",
    "1e3",
    "-1E-2",
    "1e400",
    "'a'",
    "'10'",
    "\"b\"",
    "''",
    "'\\u00FC'",
    "'2017-03-09T00:00:00Z'",
    "true",
    "false",
    "null",
    "undefined",
    "key1",
    "key2",
    "num",
    "null_value",
    "missing",
    "$sys1",
    "$num",
    "{$sys1}",
    "$contentType",
    "$contentEncoding",
    "$messageId",
    "$connectionDeviceId",
    "{$contentType}",
    "$body.n",
    "$body.s",
    "$body.b",
    "$body.z",
    "$body.list[1]",
    "$body.list[0]",
    "$body.o.x",
    "$body.missing",
    "$body.o",
    "$body.when",
    "{$body.n}",
    "$twin.tags.n",
    "$twin.tags.s",
    "$twin.properties.desired.n",
    "$twin.properties.reported.s",
    "$twin.properties.reported.o.x",
];

/// Every built-in function, then names in other casings, aliases and an unknown name, which
/// must compile or fail to compile cleanly.
pub static FUNCS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let odd = ["STARTSWITH", "EndsWith", "ABS", "nosuchfunction"];
    hubroute::functions::BUILTINS
        .iter()
        .chain(hubroute::functions::HUB_BUILTINS)
        .map(|b| b.name)
        .chain(odd)
        .collect()
});

/// Binary operators, keywords in several casings.
pub const BINOPS: &[&str] = &[
    "+", "-", "*", "/", "%", "||", "<", "<=", ">", ">=", "=", "!=", "<>", "AND", "OR", "??", "and",
    "or", "And",
];

/// What goes between tokens: mostly a space, sometimes other whitespace or a comment.
const SEPARATORS: &[&str] = &[" ", " ", " ", " ", "\n", "\t", "\r\n", " /* c */ ", "/**/"];

/// Application property names the message generator may define.
pub const APP_NAMES: &[&str] = &[
    "key1",
    "key2",
    "num",
    "null_value",
    "$sys1",
    "$body.n",
    "processingPath",
    "KEY1",
];

/// System property names the message generator may define (besides content type/encoding).
pub const SYS_NAMES: &[&str] = &[
    "sys1",
    "num",
    "messageId",
    "connectionDeviceId",
    "iothub-creation-time-utc",
];

/// Property values: numbers as text, empty, non-ASCII, dates, JSON-ish.
pub const VALUES: &[&str] = &[
    "a",
    "10",
    "2.5",
    "",
    "ü",
    "-1",
    "hot",
    "true",
    "1e3",
    "0x10",
    " 7 ",
    "NaN",
    "Infinity",
    "2024-01-02T03:04:05Z",
    "application/json",
    "\u{1F600}",
];

/// Keys used in generated JSON bodies and twins (the paths above read some of them).
const KEYS: &[&str] = &[
    "n", "s", "b", "z", "list", "o", "x", "when", "N", "a b", "", "$", "tags",
];

fn sep(u: &mut Unstructured<'_>) -> Result<&'static str> {
    u.choose(SEPARATORS).copied()
}

/// A string literal with arbitrary content, quoted and escaped so it lexes as one token
/// (or, rarely, left unterminated on purpose).
fn string_literal(u: &mut Unstructured<'_>) -> Result<String> {
    let quote = if u.arbitrary()? { '\'' } else { '"' };
    let len = u.int_in_range(0..=12)?;
    let mut s = String::new();
    s.push(quote);
    for _ in 0..len {
        let c: char = match u.int_in_range(0..=5)? {
            0 => char::from(u.int_in_range(b' '..=b'~')?),
            1 => u.arbitrary()?,
            _ => *u.choose(&['a', 'Z', '0', ' ', 'é', '\u{FFFD}', '\u{1F600}', '\\'])?,
        };
        match c {
            '\\' => {
                if u.arbitrary()? {
                    s.push_str("\\u00");
                    s.push_str(&format!("{:02X}", u.arbitrary::<u8>()?));
                } else {
                    s.push_str("\\\\");
                }
            }
            c if c == quote => {
                s.push('\\');
                s.push(c);
            }
            c => s.push(c),
        }
    }
    if u.ratio(1, 40)? {
        return Ok(s); // unterminated
    }
    s.push(quote);
    Ok(s)
}

fn number_literal(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=4)? {
        0 => u.arbitrary::<i64>()?.to_string(),
        1 => format!("0x{:X}", u.arbitrary::<u64>()?),
        2 => {
            let f: f64 = u.arbitrary()?;
            if f.is_finite() {
                format!("{f:e}")
            } else {
                "1.0".into()
            }
        }
        3 => format!("{}.{}", u.int_in_range(0..=999)?, u.int_in_range(0..=999)?),
        _ => format!(
            "{}e{}{}",
            u.int_in_range(0..=99)?,
            if u.arbitrary()? { "-" } else { "+" },
            u.int_in_range(0..=400)?
        ),
    })
}

fn ascii_case(u: &mut Unstructured<'_>, name: &str) -> Result<String> {
    Ok(match u.int_in_range(0..=5)? {
        0 => name.to_ascii_uppercase(),
        1 => name.to_ascii_lowercase(),
        _ => name.to_string(),
    })
}

fn body_path(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(1..=3)?;
    let mut parts = Vec::new();
    for _ in 0..n {
        let mut seg =
            (*u.choose(&["n", "s", "b", "z", "list", "o", "x", "when", "N", "1"])?).to_string();
        if u.ratio(1, 4)? {
            seg.push_str(&format!("[{}]", u.int_in_range(0..=3)?));
        }
        parts.push(seg);
    }
    Ok(parts.join("."))
}

/// A leaf expression.
pub fn leaf(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=9)? {
        0..=3 => (*u.choose(LEAVES)?).to_string(),
        4 => string_literal(u)?,
        5 => number_literal(u)?,
        6 => {
            let name = *u.choose(APP_NAMES)?;
            ascii_case(u, name)?
        }
        7 => {
            let name = *u.choose(SYS_NAMES)?;
            format!("${}", ascii_case(u, name)?)
        }
        8 => format!("$body.{}", body_path(u)?),
        _ => {
            let section = *u.choose(&["tags", "properties.desired", "properties.reported"])?;
            format!("$twin.{section}.{}", body_path(u)?)
        }
    })
}

/// A condition of at most `depth` nested operators.
pub fn expr(u: &mut Unstructured<'_>, depth: u32) -> Result<String> {
    if depth == 0 {
        return leaf(u);
    }
    Ok(match u.int_in_range(0..=11)? {
        0..=2 => leaf(u)?,
        3 => format!(
            "{}{}{}",
            u.choose(&["NOT", "not", "Not"])?,
            sep(u)?,
            expr(u, depth - 1)?
        ),
        4 => format!("-{}{}", sep(u)?, expr(u, depth - 1)?),
        5 | 6 => {
            let f = *u.choose(&FUNCS)?;
            let n = u.int_in_range(0..=3)?;
            let mut args = Vec::with_capacity(n);
            for _ in 0..n {
                args.push(expr(u, depth - 1)?);
            }
            format!("{f}({})", args.join(", "))
        }
        7 => format!("({})", expr(u, depth - 1)?),
        8 if u.ratio(1, 2)? => {
            let section = *u.choose(&["properties.desired", "properties.reported", "tags"])?;
            format!("twin_change_includes({section}.{})", body_path(u)?)
        }
        _ => format!(
            "{}{}{}{}{}",
            expr(u, depth - 1)?,
            sep(u)?,
            u.choose(BINOPS)?,
            sep(u)?,
            expr(u, depth - 1)?
        ),
    })
}

/// A whole condition: an expression, sometimes with comments or ignored trailing input.
pub fn condition(u: &mut Unstructured<'_>) -> Result<String> {
    let depth = u.int_in_range(0..=5)?;
    let mut q = expr(u, depth)?;
    match u.int_in_range(0..=15)? {
        0 => q.push_str(" /* trailing comment */"),
        1 => q.push_str(" ="),
        2 => q = format!("/* lead */ {q}"),
        3 => q.push_str(" )"),
        _ => {}
    }
    Ok(q)
}

/// Compiler options: the two presets most of the time, any combination otherwise.
pub fn options(u: &mut Unstructured<'_>) -> Result<Options> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Options::edge_none(),
        1 => Options {
            body_query: u.arbitrary()?,
            twin_change_includes: u.arbitrary()?,
            twin_change_source: u.arbitrary()?,
            dialect: if u.arbitrary()? {
                hubroute::Dialect::Hub
            } else {
                hubroute::Dialect::Edge
            },
        },
        _ => Options::iot_hub(),
    })
}

/// A JSON value the way devices write them, including Json.NET's leniencies (comments,
/// single quotes, unquoted keys, hex and octal, NaN/Infinity, undefined, empty slots,
/// trailing commas, constructors, dates).
pub fn json_value(u: &mut Unstructured<'_>, depth: u32, out: &mut String) -> Result<()> {
    let pick = if depth == 0 {
        u.int_in_range(0..=9)?
    } else {
        u.int_in_range(0..=13)?
    };
    match pick {
        0 => out.push_str("null"),
        1 => out.push_str(if u.arbitrary()? { "true" } else { "false" }),
        2 => out.push_str(&u.int_in_range(-1000i64..=1000)?.to_string()),
        3 => {
            let f: f64 = u.arbitrary()?;
            out.push_str(&if f.is_finite() {
                format!("{f}")
            } else {
                "1.5".into()
            })
        }
        4 => out.push_str(u.choose(&[
            "0x1F",
            "012",
            "NaN",
            "Infinity",
            "-Infinity",
            "undefined",
            "1e400",
            "-0",
            "1.0e-5",
            "9007199254740993",
            "new Date(1)",
        ])?),
        5 => out.push_str(u.choose(&[
            "\"2017-03-09T00:00:00Z\"",
            "'2017-03-09'",
            "\"10\"",
            "\"\"",
            "\"\\u00FC\"",
            "'single'",
            "\"a\\\"b\"",
        ])?),
        6..=9 => {
            let s: String = u.arbitrary()?;
            out.push_str(&serde_json::Value::String(s.chars().take(16).collect()).to_string());
        }
        10 | 11 => json_object(u, depth - 1, out)?,
        _ => {
            out.push('[');
            let n = u.int_in_range(0..=4)?;
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                if !u.ratio(1, 12)? {
                    json_value(u, depth - 1, out)?;
                }
            }
            if u.ratio(1, 10)? {
                out.push(',');
            }
            out.push(']');
        }
    }
    Ok(())
}

/// A JSON object (a body must be one).
pub fn json_object(u: &mut Unstructured<'_>, depth: u32, out: &mut String) -> Result<()> {
    out.push('{');
    let n = u.int_in_range(0..=6)?;
    for i in 0..n {
        if i > 0 {
            out.push_str(if u.ratio(1, 20)? { ", /* c */ " } else { ", " });
        }
        let key = *u.choose(KEYS)?;
        match u.int_in_range(0..=5)? {
            0 => out.push_str(&format!("'{key}'")),
            1 if !key.is_empty() && !key.contains(' ') && key != "$" => out.push_str(key),
            _ => out.push_str(&serde_json::Value::String(key.into()).to_string()),
        }
        out.push_str(": ");
        json_value(u, depth, out)?;
    }
    if u.ratio(1, 10)? {
        out.push(',');
    }
    out.push('}');
    Ok(())
}

/// How the body is written and what the message says about it.
fn encode(u: &mut Unstructured<'_>, text: &str, encoding: Option<&str>) -> Result<Vec<u8>> {
    let bom = u.ratio(1, 8)?;
    let e = encoding.map(str::to_ascii_lowercase);
    // Mostly encode as declared; sometimes lie about it.
    let actual = if u.ratio(1, 10)? {
        *u.choose(&["utf-8", "utf-16", "utf-32"])?
    } else {
        match e.as_deref() {
            Some("utf-16") => "utf-16",
            Some("utf-32") => "utf-32",
            _ => "utf-8",
        }
    };
    let mut bytes = Vec::new();
    match actual {
        "utf-16" => {
            if bom {
                bytes.extend_from_slice(&[0xFF, 0xFE]);
            }
            for unit in text.encode_utf16() {
                bytes.extend_from_slice(&unit.to_le_bytes());
            }
        }
        "utf-32" => {
            if bom {
                bytes.extend_from_slice(&[0xFF, 0xFE, 0, 0]);
            }
            for c in text.chars() {
                bytes.extend_from_slice(&u32::from(c).to_le_bytes());
            }
        }
        _ => {
            if bom {
                bytes.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
            }
            bytes.extend_from_slice(text.as_bytes());
        }
    }
    if u.ratio(1, 20)? && !bytes.is_empty() {
        let i = u.choose_index(bytes.len())?;
        bytes.truncate(i); // a torn body
    }
    Ok(bytes)
}

/// A message: properties from the shared vocabulary (and arbitrary ones), a content type and
/// encoding (right, wrong, missing or null), and a body that is generated JSON, deeply nested
/// JSON or arbitrary bytes.
pub fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    let mut m = Message::default();
    for name in APP_NAMES {
        if u.ratio(2, 3)? {
            let value = property_value(u)?;
            m.app_properties.insert(*name, value);
        }
    }
    for _ in 0..u.int_in_range(0..=2)? {
        let name: String = u.arbitrary()?;
        let value = property_value(u)?;
        m.app_properties.insert(name, value);
    }
    for name in SYS_NAMES {
        if u.ratio(1, 2)? {
            let value = property_value(u)?;
            m.system_properties.insert(*name, value);
        }
    }
    let content_type = *u.choose(&[
        Some(Some("application/json")),
        Some(Some("application/json")),
        Some(Some("application/json")),
        Some(Some("APPLICATION/JSON")),
        Some(Some("text/plain")),
        Some(Some("")),
        Some(None),
        None,
    ])?;
    if let Some(v) = content_type {
        m.system_properties
            .insert(ascii_case(u, "contentType")?, v.map(String::from));
    }
    let encoding = *u.choose(&[
        Some(Some("utf-8")),
        Some(Some("utf-8")),
        Some(Some("UTF-8")),
        Some(Some("utf-16")),
        Some(Some("utf-32")),
        Some(Some("latin1")),
        Some(None),
        None,
    ])?;
    if let Some(v) = encoding {
        m.system_properties
            .insert(ascii_case(u, "contentEncoding")?, v.map(String::from));
    }
    m.body = match u.int_in_range(0..=9)? {
        0 => u.arbitrary::<Vec<u8>>()?,
        1 => {
            // Deep nesting: far past Json.NET's MaxDepth of 64, and sometimes unbalanced.
            let depth = if u.ratio(1, 8)? {
                u.int_in_range(1..=100_000)?
            } else {
                u.int_in_range(1..=200)?
            };
            let open = *u.choose(&["[", "{\"a\":", "new D("])?;
            let close = match open {
                "[" => "]",
                "new D(" => ")",
                _ => "}",
            };
            let mut t = String::from("{\"n\": ");
            t.push_str(&open.repeat(depth));
            if u.arbitrary()? {
                t.push_str(&close.repeat(depth));
                t.push('}');
            }
            t.into_bytes()
        }
        _ => {
            let mut text = String::new();
            let depth = u.int_in_range(0..=3)?;
            json_object(u, depth, &mut text)?;
            if u.ratio(1, 20)? {
                text.push_str(" trailing");
            }
            encode(u, &text, encoding.flatten())?
        }
    };
    if u.ratio(1, 3)? {
        m.source = Some(*u.choose(&Source::ALL)?);
    }
    Ok(m)
}

fn property_value(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(match u.int_in_range(0..=7)? {
        0 => None,
        1 => Some(u.arbitrary()?),
        _ => Some((*u.choose(VALUES)?).to_string()),
    })
}

/// A device twin document (`tags`, `properties.desired`, `properties.reported`).
pub fn twin(u: &mut Unstructured<'_>) -> Result<Option<JsonDoc>> {
    let mut text = String::from("{\"tags\": ");
    json_object(u, 2, &mut text)?;
    text.push_str(", \"properties\": {\"desired\": ");
    json_object(u, 2, &mut text)?;
    text.push_str(", \"reported\": ");
    json_object(u, 2, &mut text)?;
    text.push_str("}}");
    Ok(JsonDoc::parse(&text).ok())
}

/// A routing configuration document: routes with generated conditions (sometimes more than
/// IoT Hub allows), custom endpoints of every kind, a fallback route and enrichments, each
/// field sometimes missing, mistyped or out of range.
pub fn routing_config(u: &mut Unstructured<'_>) -> Result<serde_json::Value> {
    use serde_json::{json, Value};
    let endpoint_names = [
        "hot", "cold", "archive", "events", "$default", "bad name", "x",
    ];
    let mut endpoints = serde_json::Map::new();
    for kind in [
        "eventHubs",
        "serviceBusQueues",
        "serviceBusTopics",
        "storageContainers",
        "cosmosDBSqlContainers",
    ] {
        if !u.ratio(1, 3)? {
            continue;
        }
        let mut list = Vec::new();
        for _ in 0..u.int_in_range(0..=4)? {
            let mut e = serde_json::Map::new();
            e.insert("name".into(), json!(u.choose(&endpoint_names)?));
            if kind == "storageContainers" {
                if u.ratio(3, 4)? {
                    e.insert("containerName".into(), json!("c"));
                }
                if u.arbitrary()? {
                    e.insert(
                        "fileNameFormat".into(),
                        json!(u.choose(&[
                            "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}",
                            "{iothub}/{YYYY}",
                            "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{bogus}",
                        ])?),
                    );
                }
                if u.arbitrary()? {
                    e.insert(
                        "batchFrequencyInSeconds".into(),
                        json!(u.int_in_range(0i64..=1000)?),
                    );
                }
                if u.arbitrary()? {
                    e.insert("maxChunkSizeInBytes".into(), json!(u.arbitrary::<i64>()?));
                }
                if u.arbitrary()? {
                    e.insert(
                        "encoding".into(),
                        json!(u.choose(&["avro", "AvroDeflate", "json", "xml"])?),
                    );
                }
            }
            list.push(Value::Object(e));
        }
        endpoints.insert(kind.into(), Value::Array(list));
    }
    let sources = [
        "DeviceMessages",
        "TwinChangeEvents",
        "DeviceLifecycleEvents",
        "DeviceConnectionStateEvents",
        "DigitalTwinChangeEvents",
        "DeviceJobLifecycleEvents",
        "MqttBrokerMessages",
        "Nonsense",
    ];
    let n_routes = if u.ratio(1, 30)? {
        u.int_in_range(95..=110)?
    } else {
        u.int_in_range(0..=6)?
    };
    let mut routes = Vec::new();
    for i in 0..n_routes {
        let mut r = serde_json::Map::new();
        r.insert(
            "name".into(),
            if u.ratio(1, 10)? {
                json!(u.choose(&["", "bad name", "dup", "DUP", "x".repeat(65).as_str()])?)
            } else {
                json!(format!("r{i}"))
            },
        );
        r.insert("source".into(), json!(u.choose(&sources)?));
        if !u.ratio(1, 5)? {
            r.insert("condition".into(), json!(condition(u)?));
        }
        let names: Vec<&str> = (0..u.int_in_range(0..=2)?)
            .map(|_| u.choose(&endpoint_names).copied())
            .collect::<Result<_>>()?;
        r.insert(
            "endpointNames".into(),
            json!(if names.is_empty() && u.arbitrary()? {
                vec!["events"]
            } else {
                names
            }),
        );
        if !u.ratio(1, 10)? {
            r.insert("isEnabled".into(), json!(u.ratio(5, 6)?));
        }
        routes.push(Value::Object(r));
    }
    let mut routing = serde_json::Map::new();
    routing.insert("routes".into(), Value::Array(routes));
    routing.insert("endpoints".into(), Value::Object(endpoints));
    if u.arbitrary()? {
        routing.insert(
            "fallbackRoute".into(),
            json!({
                "name": "$fallback",
                "source": u.choose(&sources)?,
                "condition": "true",
                "endpointNames": [u.choose(&endpoint_names)?],
                "isEnabled": u.arbitrary::<bool>()?,
            }),
        );
    }
    if u.arbitrary()? {
        let mut list = Vec::new();
        for _ in 0..u.int_in_range(0..=12)? {
            list.push(json!({
                "key": u.choose(&["k", "k2", "bad key!", "", "deviceType"])?,
                "value": u.choose(&[
                    "$twin.tags.n",
                    "$twin.properties.desired.s",
                    "$twin.other",
                    "$iothubname",
                    "static",
                    "$body.n",
                ])?,
                "endpointNames": [u.choose(&endpoint_names)?],
            }));
        }
        routing.insert("enrichments".into(), Value::Array(list));
    }
    Ok(match u.int_in_range(0..=5)? {
        0 => json!({"properties": {"routing": Value::Object(routing)}}),
        1 => json!({"routing": Value::Object(routing)}),
        _ => Value::Object(routing),
    })
}
