//! Reading back what a Storage endpoint wrote: Avro, AvroDeflate and JSON record files, or a
//! directory of them, as messages that can be routed again.
//!
//! Captured traffic is the best test data a routing change has, and IoT Hub (or hubroute's
//! [`super::StorageSink`]) keeps it as Storage records (`EnqueuedTimeUtc`, `Properties`,
//! `SystemProperties`, `Body`). [`Replay`] turns each record back into the [`Message`] that was
//! routed: `Properties` become application properties, `SystemProperties` system properties
//! (in any of IoT Hub's spellings, see [`crate::message::naming`]), and `Body` the body bytes.
//! A JSON record's `Body` is the body itself when the record embeds it (content type
//! `application/json`, encoding `utf-8`, the rule of [`super::json_body_text`]), else base64.
//!
//! Nothing is skipped silently: a file that cannot be opened or is not a record file, and a
//! record that cannot be read, are each an item [`ReplayError`] with the file and record number,
//! and reading goes on with the next record or file.
//!
//! For `run --input`: [`Replay::open`] a path for which [`is_storage_path`] holds, and route each
//! `Ok` item's `message` like a JSON Lines message; report each `Err` like an invalid line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::record::json_body_text;
use crate::message::naming::canonical_name;
use crate::message::Message;

/// Code of a stored file that cannot be read at all (missing, not Avro, unknown extension).
pub const UNREADABLE_FILE: &str = "E0520";
/// Code of one stored record that cannot be read (bad JSON, wrong shape, bad base64, a corrupt
/// Avro block).
pub const UNREADABLE_RECORD: &str = "E0521";

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The file it came from.
    pub file: PathBuf,
    /// Its 1-based position in the file.
    pub record: u64,
    /// The message as it was routed.
    pub message: Message,
    /// The record's `EnqueuedTimeUtc`, as written.
    pub enqueued_time_utc: String,
}

/// A file or record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: [{code}] {reason}", file.display(), record.map(|r| format!(" record {r}")).unwrap_or_default())]
pub struct ReplayError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based record, or `None` when the whole file is unreadable.
    pub record: Option<u64>,
    /// [`UNREADABLE_FILE`] or [`UNREADABLE_RECORD`].
    pub code: &'static str,
    /// Why.
    pub reason: String,
}

/// Whether `path` is something [`Replay`] reads: a directory, or a file ending in `.avro` or
/// `.json` (the Storage sink's extensions). A `.jsonl` file is message JSON Lines, not this.
pub fn is_storage_path(path: &Path) -> bool {
    path.is_dir()
        || matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("avro" | "json")
        )
}

/// The record files under `path`: `path` itself when it is a file, else every `.avro` and
/// `.json` file below it, in name order (the Storage layout's names sort by time).
pub fn record_files(path: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    let unreadable = |p: &Path, e: std::io::Error| ReplayError {
        file: p.to_path_buf(),
        record: None,
        code: UNREADABLE_FILE,
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| unreadable(&dir, e))? {
            let p = entry.map_err(|e| unreadable(&dir, e))?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("avro" | "json")
            ) {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The records of one file.
enum Open {
    Json(std::io::Lines<BufReader<File>>),
    #[cfg(feature = "avro")]
    Avro(Box<apache_avro::Reader<'static, BufReader<File>>>),
}

/// The records of a file or directory, in order (see the module docs).
pub struct Replay {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, Open, u64)>,
    pending: Option<ReplayError>,
}

impl Replay {
    /// Reads `path`: a record file, or a directory searched for them.
    pub fn open(path: &Path) -> Replay {
        let (files, pending) = match record_files(path) {
            Ok(f) => (f, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Replay {
            files: files.into_iter(),
            current: None,
            pending,
        }
    }

    fn open_file(path: &Path) -> Result<Open, ReplayError> {
        let fail = |reason: String| ReplayError {
            file: path.to_path_buf(),
            record: None,
            code: UNREADABLE_FILE,
            reason,
        };
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Ok(Open::Json(BufReader::new(file).lines())),
            #[cfg(feature = "avro")]
            Some("avro") => apache_avro::Reader::new(BufReader::new(file))
                .map(|r| Open::Avro(Box::new(r)))
                .map_err(|e| fail(format!("not an Avro object container file: {e}"))),
            #[cfg(not(feature = "avro"))]
            Some("avro") => Err(fail(
                "reading Avro needs hubroute built with the `avro` feature".into(),
            )),
            _ => Err(fail(
                "not a Storage record file (expected .avro or .json)".into(),
            )),
        }
    }
}

impl Iterator for Replay {
    type Item = Result<Replayed, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        loop {
            let Some((file, open, count)) = &mut self.current else {
                let path = self.files.next()?;
                match Replay::open_file(&path) {
                    Ok(open) => self.current = Some((path, open, 0)),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            };
            let item = match open {
                Open::Json(lines) => match lines.next() {
                    None => None,
                    Some(Err(e)) => Some(Err(e.to_string())),
                    Some(Ok(line)) if line.trim().is_empty() => continue,
                    Some(Ok(line)) => Some(from_json_record(&line)),
                },
                #[cfg(feature = "avro")]
                Open::Avro(reader) => reader.next().map(|v| {
                    v.map_err(|e| format!("corrupt Avro data: {e}"))
                        .and_then(from_avro_record)
                }),
            };
            let Some(item) = item else {
                self.current = None;
                continue;
            };
            *count += 1;
            let (file, record) = (file.clone(), *count);
            if item.is_err() && !matches!(open, Open::Json(_)) {
                // A corrupt Avro block leaves the reader nowhere to resume: the file ends here.
                self.current = None;
            }
            return Some(match item {
                Ok((message, enqueued_time_utc)) => Ok(Replayed {
                    file,
                    record,
                    message,
                    enqueued_time_utc,
                }),
                Err(reason) => Err(ReplayError {
                    file,
                    record: Some(record),
                    code: UNREADABLE_RECORD,
                    reason,
                }),
            });
        }
    }
}

/// A Storage JSON record; `Body` kept as its JSON text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRecord {
    #[serde(rename = "EnqueuedTimeUtc")]
    enqueued_time_utc: String,
    #[serde(rename = "Properties", default)]
    properties: Vec<(String, Option<String>)>,
    #[serde(rename = "SystemProperties", default)]
    system_properties: Vec<(String, Option<String>)>,
    #[serde(rename = "Body", default)]
    body: Option<Box<RawValue>>,
    /// The JSON Lines sink's extra member.
    #[serde(default)]
    #[allow(dead_code)]
    endpoint: Option<String>,
}

/// A message from the four fields, names read in any spelling; the body still to be set.
fn message_from(
    properties: impl IntoIterator<Item = (String, Option<String>)>,
    system_properties: impl IntoIterator<Item = (String, Option<String>)>,
) -> Message {
    let mut m = Message::default();
    for (n, v) in properties {
        m.app_properties.insert(n, v);
    }
    for (n, v) in system_properties {
        let name = canonical_name(&n).map_or(n, str::to_string);
        m.system_properties.insert(name, v);
    }
    m
}

fn from_json_record(line: &str) -> Result<(Message, String), String> {
    // Maps are read as ordered pairs so that properties keep the order they were written in.
    let record: JsonRecord = serde_json::from_str(&ObjectsAsPairs(line).to_string())
        .map_err(|e| format!("not a Storage JSON record: {e}"))?;
    let mut m = message_from(record.properties, record.system_properties);
    if let Some(raw) = record.body {
        let text = raw.get();
        // What the writer embedded is the body's own text; anything else is base64 of it.
        m.body = text.as_bytes().to_vec();
        if json_body_text(&m).is_none() {
            let b64: String = serde_json::from_str(text)
                .map_err(|_| "'Body' is neither embedded JSON nor a base64 string".to_string())?;
            m.body = BASE64
                .decode(b64.trim())
                .map_err(|e| format!("'Body' is not valid base64: {e}"))?;
        }
    }
    Ok((m, record.enqueued_time_utc))
}

/// Rewrites the `Properties` and `SystemProperties` objects of a record line as arrays of
/// `[name, value]` pairs, keeping their order (serde's maps would not), and leaves the rest as
/// it is. Only these two members are touched, found at the top level of the record.
struct ObjectsAsPairs<'a>(&'a str);

impl std::fmt::Display for ObjectsAsPairs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[derive(Deserialize)]
        struct Top<'a>(#[serde(borrow)] std::collections::BTreeMap<&'a str, &'a RawValue>);
        let Ok(top) = serde_json::from_str::<Top>(self.0) else {
            // Not an object: let the record parser report it.
            return f.write_str(self.0);
        };
        f.write_str("{")?;
        for (i, (k, v)) in top.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{}:",
                serde_json::to_string(k).map_err(|_| std::fmt::Error)?
            )?;
            if matches!(*k, "Properties" | "SystemProperties") {
                match ordered_pairs(v.get()) {
                    Some(pairs) => f.write_str(&pairs)?,
                    None => f.write_str(v.get())?,
                }
            } else {
                f.write_str(v.get())?;
            }
        }
        f.write_str("}")
    }
}

/// `{"a":"1","b":null}` as `[["a","1"],["b",null]]`, in order; `None` if not an object.
fn ordered_pairs(object: &str) -> Option<String> {
    use serde::de::{MapAccess, Visitor};
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(object);
    let pairs = serde::Deserializer::deserialize_map(&mut de, V).ok()?;
    let mut out = String::from("[");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        out.push_str(&serde_json::to_string(k).ok()?);
        out.push(',');
        out.push_str(v.get());
        out.push(']');
    }
    out.push(']');
    Some(out)
}

#[cfg(feature = "avro")]
fn from_avro_record(value: apache_avro::types::Value) -> Result<(Message, String), String> {
    use apache_avro::types::Value;
    let Value::Record(fields) = value else {
        return Err("an Avro datum that is not a record".into());
    };
    let string = |v: Value, what: &str| match v {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        Value::Union(_, inner) => match *inner {
            Value::String(s) => Ok(Some(s)),
            Value::Null => Ok(None),
            _ => Err(format!("'{what}' holds a value that is not a string")),
        },
        _ => Err(format!("'{what}' holds a value that is not a string")),
    };
    let map = |v: Value, what: &str| -> Result<Vec<(String, Option<String>)>, String> {
        let v = match v {
            Value::Union(_, inner) => *inner,
            v => v,
        };
        match v {
            Value::Map(m) => {
                // Avro maps have no order; sort for a stable result.
                let mut pairs = m
                    .into_iter()
                    .map(|(k, v)| Ok((k.clone(), string(v, &k)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                pairs.sort();
                Ok(pairs)
            }
            Value::Null => Ok(Vec::new()),
            _ => Err(format!("'{what}' is not a map")),
        }
    };
    let (mut time, mut props, mut sys, mut body) = (None, Vec::new(), Vec::new(), Vec::new());
    for (name, v) in fields {
        match name.as_str() {
            "EnqueuedTimeUtc" => time = string(v, "EnqueuedTimeUtc")?,
            "Properties" => props = map(v, "Properties")?,
            "SystemProperties" => sys = map(v, "SystemProperties")?,
            "Body" => {
                body = match v {
                    Value::Union(_, inner) => match *inner {
                        Value::Bytes(b) => b,
                        Value::Null => Vec::new(),
                        _ => return Err("'Body' is not bytes".into()),
                    },
                    Value::Bytes(b) => b,
                    Value::Null => Vec::new(),
                    _ => return Err("'Body' is not bytes".into()),
                }
            }
            _ => {}
        }
    }
    let time = time.ok_or("the record has no 'EnqueuedTimeUtc'")?;
    let mut m = message_from(props, sys);
    m.body = body;
    Ok((m, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_read_back_in_order_with_either_body_form() {
        let (m, t) = from_json_record(
            r#"{"EnqueuedTimeUtc":"2019-05-10T06:06:32.7220000Z","Properties":{"z":"1","a":""},"SystemProperties":{"contentType":"application/json","contentEncoding":"utf-8","iothub-connection-device-id":"d1"},"Body":{"b":[1,2.50]}}"#,
        )
        .unwrap();
        assert_eq!(t, "2019-05-10T06:06:32.7220000Z");
        let names: Vec<_> = m.app_properties.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["z", "a"]);
        assert_eq!(
            m.system_properties.get("connectionDeviceId"),
            Some(Some("d1"))
        );
        assert_eq!(m.body, br#"{"b":[1,2.50]}"#);

        let (m, _) = from_json_record(
            r#"{"endpoint":"x","EnqueuedTimeUtc":"t","Properties":{},"SystemProperties":{},"Body":"AP8="}"#,
        )
        .unwrap();
        assert_eq!(m.body, [0, 255]);
        for bad in [
            "[1]",
            r#"{"Properties":{}}"#,
            r#"{"EnqueuedTimeUtc":"t","Body":"not base64!"}"#,
            r#"{"EnqueuedTimeUtc":"t","Body":{"a":1}}"#,
            r#"{"EnqueuedTimeUtc":"t","Extra":1}"#,
        ] {
            assert!(from_json_record(bad).is_err(), "{bad}");
        }
    }
}
