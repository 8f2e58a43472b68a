//! Claims-based security (CBS) as IoT Hub speaks it: a device sends a *put-token* request on a
//! link to `$cbs` (application properties `operation=put-token`, `type=azure-devices.net:sastoken`
//! or `servicebus.windows.net:sastoken`, `name=` the audience, e.g.
//! `myhub.azure-devices.net/devices/d1`; body: the SAS token as a string) and reads the answer
//! on a link from `$cbs` (`status-code` 200, 400 or 401 and `status-description`, correlated by
//! the request's message id). A connection keeps the tokens it was given ([`Tokens`]); a link
//! to a device's events address is authorized when one of them is valid for that device.
//!
//! Plain code: parsing, the answer, the token store. The server does the I/O.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message as AmqpMessage, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};

/// The token types IoT Hub takes in a put-token request.
pub const TOKEN_TYPES: [&str; 2] = [
    "azure-devices.net:sastoken",
    "servicebus.windows.net:sastoken",
];

/// At most this many tokens are kept per connection (a device renewing its token adds one
/// each time; the oldest goes first).
const MAX_TOKENS: usize = 32;

/// A put-token request: whom it is for and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct PutToken {
    /// The audience (`name`), e.g. `myhub.azure-devices.net/devices/d1`.
    pub audience: String,
    /// The SAS token (a secret: never shown).
    pub token: String,
    /// The request's message id, which the answer's correlation id repeats.
    pub message_id: Option<MessageId>,
}

impl std::fmt::Debug for PutToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutToken")
            .field("audience", &self.audience)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Reads a CBS request; `Err((message id, description))` for one that is not a put-token
/// IoT Hub would take (answered with 400).
pub fn parse_request(
    msg: AmqpMessage<Body<Value>>,
) -> Result<PutToken, (Option<MessageId>, String)> {
    let message_id = msg.properties.as_ref().and_then(|p| p.message_id.clone());
    let bad = |what: String| (message_id.clone(), what);
    let props = msg
        .application_properties
        .ok_or_else(|| bad("a CBS request needs application properties".into()))?;
    let get = |name: &str| -> Option<String> {
        props.0.get(name).and_then(|v| match v {
            SimpleValue::String(s) => Some(s.clone()),
            SimpleValue::Symbol(s) => Some(s.0.clone()),
            _ => None,
        })
    };
    match get("operation").as_deref() {
        Some("put-token") => {}
        Some(other) => return Err(bad(format!("unsupported CBS operation '{other}'"))),
        None => return Err(bad("the CBS request has no 'operation'".into())),
    }
    let kind = get("type").unwrap_or_default();
    if !TOKEN_TYPES.contains(&kind.as_str()) {
        return Err(bad(format!(
            "unsupported token type '{kind}'; use {}",
            TOKEN_TYPES.join(" or ")
        )));
    }
    let audience = get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("the put-token request has no 'name' (audience)".into()))?;
    let token = match msg.body {
        Body::Value(AmqpValue(Value::String(s))) => s,
        Body::Value(AmqpValue(Value::Binary(b))) => {
            String::from_utf8(b.into_vec()).map_err(|_| bad("the token is not UTF-8".into()))?
        }
        Body::Data(d) if d.len() == 1 => {
            String::from_utf8(d.into_iter().next().unwrap().0.into_vec())
                .map_err(|_| bad("the token is not UTF-8".into()))?
        }
        _ => {
            return Err(bad(
                "the put-token body must be the token as a string".into()
            ))
        }
    };
    Ok(PutToken {
        audience,
        token,
        message_id,
    })
}

/// The device (and module) an audience names: `[scheme://]host/devices/{id}[/modules/{mid}]`,
/// with anything after that ignored (IoT Hub's SDKs send the bare device path).
pub fn audience_identity(audience: &str) -> Option<(String, Option<String>)> {
    let rest = audience
        .split_once("://")
        .map_or(audience, |(_, after)| after);
    let (_host, path) = rest.split_once('/')?;
    let path = path.strip_prefix("devices/")?;
    let mut parts = path.split('/');
    let device = decode(parts.next().filter(|d| !d.is_empty())?);
    let module = match (parts.next(), parts.next()) {
        (Some("modules"), Some(m)) if !m.is_empty() => Some(decode(m)),
        _ => None,
    };
    Some((device, module))
}

/// Percent-decodes an id (IoT Hub's ids may hold `%`-escapes in a URI); an undecodable one is
/// kept as it is, and then matches no registered device.
fn decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The expiry (`se=`, seconds since the epoch) of a SAS token, if it has one.
pub fn token_expiry(token: &str) -> Option<SystemTime> {
    let fields = token.trim().strip_prefix("SharedAccessSignature")?.trim();
    fields
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "se")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// The answer to a CBS request: `status-code` and `status-description` as application
/// properties, the request's message id as correlation id, no body.
pub fn response(
    message_id: Option<MessageId>,
    status: i32,
    description: &str,
) -> AmqpMessage<Body<Value>> {
    let props = ApplicationProperties::builder()
        .insert("status-code", SimpleValue::Int(status))
        .insert(
            "status-description",
            SimpleValue::String(description.to_string()),
        )
        .build();
    let properties = Properties {
        correlation_id: message_id,
        ..Properties::default()
    };
    AmqpMessage {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(properties),
        application_properties: Some(props),
        body: Body::Value(AmqpValue(Value::Null)),
        footer: None,
    }
}

/// The tokens one connection was given (by put-token, or as its SASL PLAIN password).
#[derive(Default)]
pub struct Tokens {
    tokens: Vec<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} held)", self.tokens.len())
    }
}

impl Tokens {
    /// Keeps a token that was found valid.
    pub fn add(&mut self, token: String) {
        if self.tokens.contains(&token) {
            return;
        }
        if self.tokens.len() == MAX_TOKENS {
            self.tokens.remove(0);
        }
        self.tokens.push(token);
    }

    /// The newest token that `check` accepts, with what it returned.
    pub fn find<T>(&self, mut check: impl FnMut(&str) -> Option<T>) -> Option<(String, T)> {
        self.tokens
            .iter()
            .rev()
            .find_map(|t| check(t).map(|ok| (t.clone(), ok)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences() {
        assert_eq!(
            audience_identity("hub.azure-devices.net/devices/d1"),
            Some(("d1".into(), None))
        );
        assert_eq!(
            audience_identity("amqps://hub.azure-devices.net/devices/d%231/modules/m1"),
            Some(("d#1".into(), Some("m1".into())))
        );
        assert_eq!(audience_identity("hub.azure-devices.net/other/d1"), None);
        assert_eq!(audience_identity("hub.azure-devices.net/devices/"), None);
        assert_eq!(audience_identity("%"), None);
        assert_eq!(decode("a%"), "a%");
        assert_eq!(decode("a%4"), "a%4");
        assert_eq!(decode("%41"), "A");
    }

    #[test]
    fn expiry() {
        assert_eq!(
            token_expiry("SharedAccessSignature sr=h%2Fdevices%2Fd&sig=x&se=10"),
            Some(UNIX_EPOCH + Duration::from_secs(10))
        );
        assert_eq!(token_expiry("Bearer x"), None);
    }

    #[test]
    fn requests() {
        let request = |props: Vec<(&str, &str)>, body: Body<Value>| {
            let mut b = ApplicationProperties::builder();
            for (k, v) in props {
                b = b.insert(k, SimpleValue::String(v.into()));
            }
            AmqpMessage {
                header: None,
                delivery_annotations: None,
                message_annotations: None,
                properties: Some(Properties {
                    message_id: Some(MessageId::String("r1".into())),
                    ..Properties::default()
                }),
                application_properties: Some(b.build()),
                body,
                footer: None,
            }
        };
        let token = || Body::Value(AmqpValue(Value::String("SharedAccessSignature x".into())));
        let ok = parse_request(request(
            vec![
                ("operation", "put-token"),
                ("type", "servicebus.windows.net:sastoken"),
                ("name", "h/devices/d1"),
            ],
            token(),
        ))
        .unwrap();
        assert_eq!(ok.audience, "h/devices/d1");
        assert!(!format!("{ok:?}").contains("SharedAccessSignature"));
        let (id, why) = parse_request(request(
            vec![("operation", "put-token"), ("type", "jwt"), ("name", "a")],
            token(),
        ))
        .unwrap_err();
        assert_eq!(id, Some(MessageId::String("r1".into())));
        assert!(why.contains("jwt"), "{why}");
        assert!(parse_request(request(vec![("operation", "delete-token")], token())).is_err());
        assert!(parse_request(request(
            vec![
                ("operation", "put-token"),
                ("type", "azure-devices.net:sastoken"),
                ("name", "a")
            ],
            Body::Empty
        ))
        .is_err());
    }

    #[test]
    fn tokens_are_bounded() {
        let mut t = Tokens::default();
        for i in 0..100 {
            t.add(format!("t{i}"));
        }
        assert_eq!(t.find(|s| (s == "t99").then_some(1)).unwrap().0, "t99");
        assert!(t.find(|s| (s == "t0").then_some(1)).is_none());
        assert!(!format!("{t:?}").contains("t9"));
    }
}
