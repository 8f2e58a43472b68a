//! IoT Hub's MQTT property bag: `name=value&name2=value2`, each part URL-encoded, appended to
//! the topic (`devices/d1/messages/events/$.ct=application%2Fjson&level=hot`).
//!
//! Decoding follows what IoT Hub's SDKs write: `%XX` escapes are UTF-8 bytes, `+` is a literal
//! plus (the SDKs escape spaces as `%20`), a part without `=` is a property with a `null` value,
//! empty parts (`a=1&&b=2`) are skipped. Anything else malformed is an error with its offset,
//! never a guess: a bag is a device's assertion about its message.
//!
//! Encoding (for the MQTT sink) writes system properties under IoT Edge hub's wire names
//! ([`wire_name`]): `$.mid`, `$.cid`, `$.uid`, `$.to`, `$.ct`, `$.ce`, `$.cdid`, `$.cmid`, and
//! IoT Hub's `iothub-…` names for the rest of the stamped properties; any other system property
//! as `$.{name}`. Application properties keep their names. A sink standing in for another
//! endpoint kind writes that kind's names instead ([`encode_named`], [`PropertyNaming`]).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::IngestError;
use crate::message::naming::{PropertyNaming, EDGE};
use crate::message::Message;

/// Decodes a bag into `(name, value)` pairs in order (`None`: a name without `=`).
pub fn decode(bag: &str) -> Result<Vec<(String, Option<String>)>, IngestError> {
    let mut out = Vec::new();
    decode_with(bag, &mut String::new(), |name, value| {
        let value = value.map(Escaped::unescape).transpose()?;
        out.push((name.to_string(), value));
        Ok(())
    })?;
    Ok(out)
}

/// A property value as it is in the bag, still percent-encoded.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a> {
    text: &'a str,
    /// Where `text` starts in the bag, for errors.
    at: usize,
}

impl Escaped<'_> {
    /// The decoded value, appended to `out` (a caller's reused string).
    pub fn unescape_into(self, out: &mut String) -> Result<(), IngestError> {
        unescape_into(self.text, self.at, out)
    }

    /// The decoded value.
    pub fn unescape(self) -> Result<String, IngestError> {
        let mut out = String::new();
        self.unescape_into(&mut out)?;
        Ok(out)
    }
}

/// Calls `each` with every property of a bag in order: its decoded name (borrowed from the bag,
/// or decoded into `name_buf` when it has escapes) and its value still encoded (`None`: a name
/// without `=`), so that a caller decodes the value into memory it reuses ([`decode`] collects
/// them). Stops at the first error, the bag's or `each`'s.
pub fn decode_with(
    bag: &str,
    name_buf: &mut String,
    mut each: impl FnMut(&str, Option<Escaped<'_>>) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let mut offset = 0;
    for part in bag.split('&') {
        let start = offset;
        offset += part.len() + 1;
        if part.is_empty() {
            continue;
        }
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (
                n,
                Some(Escaped {
                    text: v,
                    at: start + n.len() + 1,
                }),
            ),
            None => (part, None),
        };
        let name = if name.contains('%') {
            name_buf.clear();
            unescape_into(name, start, name_buf)?;
            name_buf.as_str()
        } else {
            name
        };
        if name.is_empty() {
            return Err(IngestError::MalformedPropertyBag {
                offset: start,
                reason: "a property with an empty name",
            });
        }
        each(name, value)?;
    }
    Ok(())
}

/// Percent-decodes `text` (which starts at byte `base` of the bag) to UTF-8, appended to `out`.
fn unescape_into(text: &str, base: usize, out: &mut String) -> Result<(), IngestError> {
    if !text.contains('%') {
        out.push_str(text);
        return Ok(());
    }
    let bytes = text.as_bytes();
    // The decoded bytes go into `out`'s own memory, checked as UTF-8 once complete.
    let mut decoded = std::mem::take(out).into_bytes();
    let from = decoded.len();
    decoded.reserve(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                let h = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(h, 16).ok()
            });
            match hex {
                Some(b) => decoded.push(b),
                None => {
                    return Err(IngestError::MalformedPropertyBag {
                        offset: base + i,
                        reason: "'%' not followed by two hex digits",
                    })
                }
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    // `out` held UTF-8, so whatever is not is in the decoded part.
    *out = String::from_utf8(decoded).map_err(|e| IngestError::MalformedPropertyBag {
        offset: base,
        reason: if e.utf8_error().valid_up_to() - from < text.len() {
            "escapes that do not decode to UTF-8"
        } else {
            "not UTF-8"
        },
    })?;
    Ok(())
}

/// Appends `text` percent-encoded: everything but RFC 3986's unreserved characters is escaped,
/// so the result is safe in an MQTT topic segment and decodes back exactly.
fn escape_into(text: &str, out: &mut String) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The bag name under which the sink writes system property `name`.
pub fn wire_name(name: &str) -> Cow<'_, str> {
    PropertyNaming::Edge.outbound_name(name)
}

/// The system property a sink-written bag name stands for, when it stands for one (the inverse
/// of [`wire_name`]); `None` for an application property.
pub fn system_name(wire: &str) -> Option<Cow<'static, str>> {
    if let Some((n, _)) = EDGE.iter().find(|(_, w)| w.eq_ignore_ascii_case(wire)) {
        return Some(Cow::Borrowed(*n));
    }
    wire.strip_prefix("$.").map(|n| Cow::Owned(n.to_string()))
}

/// The properties of `message` as percent-encoded `(name, value)` pairs: system properties first
/// (under [`wire_name`]s), then application properties, in their order. The MQTT sink joins them
/// into a bag; the NATS sink writes them as headers.
pub fn pairs(message: &Message) -> Vec<(String, Option<String>)> {
    pairs_named(message, PropertyNaming::Edge)
}

/// [`pairs`] with system property names spelled as `naming` spells them (the endpoint kind a
/// sink stands for). An application property whose name is one of the system names written is
/// left out: the router's stamp is what a consumer must read under that name, never a value a
/// device supplied.
pub fn pairs_named(message: &Message, naming: PropertyNaming) -> Vec<(String, Option<String>)> {
    let system: Vec<_> = message
        .system_properties
        .iter()
        .map(|(n, v)| (naming.outbound_name(n), v))
        .collect();
    let app = message
        .app_properties
        .iter()
        .filter(|(n, _)| !system.iter().any(|(s, _)| s.eq_ignore_ascii_case(n)))
        .map(|(n, v)| (Cow::Borrowed(n), v));
    system
        .iter()
        .map(|(n, v)| (n.clone(), *v))
        .chain(app)
        .map(|(name, value)| {
            let mut n = String::with_capacity(name.len());
            // `$.` stays readable: SDKs write the prefix unescaped and the decoder accepts both.
            match name.strip_prefix("$.") {
                Some(rest) => {
                    n.push_str("$.");
                    escape_into(rest, &mut n);
                }
                None => escape_into(&name, &mut n),
            }
            let v = value.map(|v| {
                let mut out = String::with_capacity(v.len());
                escape_into(v, &mut out);
                out
            });
            (n, v)
        })
        .collect()
}

/// The bag of `message` ([`pairs`] joined); `null` values as a bare name.
pub fn encode(message: &Message) -> String {
    encode_named(message, PropertyNaming::Edge)
}

/// [`encode`] with system property names spelled as `naming` spells them.
pub fn encode_named(message: &Message, naming: PropertyNaming) -> String {
    let mut out = String::new();
    for (name, value) in pairs_named(message, naming) {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(&v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_sdks_write() {
        let bag =
            decode("$.ct=application%2Fjson&$.ce=utf-8&a+b=1%2B1&flag&&%24.mid=x&k=").unwrap();
        assert_eq!(
            bag,
            vec![
                ("$.ct".into(), Some("application/json".into())),
                ("$.ce".into(), Some("utf-8".into())),
                ("a+b".into(), Some("1+1".into())),
                ("flag".into(), None),
                ("$.mid".into(), Some("x".into())),
                ("k".into(), Some(String::new())),
            ]
        );
        assert_eq!(decode("").unwrap(), vec![]);
        assert_eq!(
            decode("caf%C3%A9=%E2%82%AC").unwrap(),
            vec![("café".into(), Some("€".into()))]
        );
    }

    #[test]
    fn malformed_bags_report_offsets() {
        for (bag, offset) in [("a=1&b=%4", 6), ("a=%zz", 2), ("=v", 0), ("x=1&%FF=1", 4)] {
            match decode(bag) {
                Err(IngestError::MalformedPropertyBag { offset: o, .. }) => {
                    assert_eq!(o, offset, "{bag}")
                }
                other => panic!("{bag}: {other:?}"),
            }
        }
    }

    #[test]
    fn encode_round_trips() {
        let mut m = Message::default();
        m.system_properties
            .insert("contentType", Some("application/json".into()));
        m.system_properties
            .insert("connectionDeviceId", Some("d1".into()));
        m.system_properties.insert("dt-subject", Some("c1".into()));
        m.app_properties.insert("a b&c=d", Some("x/y?z=%€".into()));
        m.app_properties.insert("empty", None);
        let bag = encode(&m);
        assert!(
            bag.starts_with("$.ct=application%2Fjson&$.cdid=d1&$.dt-subject=c1&"),
            "{bag}"
        );
        let decoded = decode(&bag).unwrap();
        let names: Vec<_> = decoded
            .iter()
            .map(|(n, _)| system_name(n).map_or(n.clone(), |s| format!("sys:{s}")))
            .collect();
        assert_eq!(
            names,
            [
                "sys:contentType",
                "sys:connectionDeviceId",
                "sys:dt-subject",
                "a b&c=d",
                "empty"
            ]
        );
        assert_eq!(decoded[3].1.as_deref(), Some("x/y?z=%€"));
        assert_eq!(decoded[4].1, None);
    }

    #[test]
    fn named_pairs_use_the_endpoint_kinds_names_and_keep_the_stamp() {
        let mut m = Message::default();
        m.system_properties
            .insert("contentType", Some("application/json".into()));
        m.system_properties
            .insert("connectionDeviceId", Some("d1".into()));
        m.app_properties
            .insert("iothub-connection-device-id", Some("spoofed".into()));
        m.app_properties.insert("level", Some("hot".into()));
        let bag = encode_named(&m, PropertyNaming::EventHubs);
        assert_eq!(
            bag,
            "content-type=application%2Fjson&iothub-connection-device-id=d1&level=hot"
        );
        let bag = encode_named(&m, PropertyNaming::ServiceBus);
        assert!(bag.starts_with("ContentType=application%2Fjson&"), "{bag}");
        assert_eq!(encode(&m), encode_named(&m, PropertyNaming::Edge));
        assert!(encode(&m).contains("iothub-connection-device-id=spoofed"));
    }
}
