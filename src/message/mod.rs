//! The message being routed: system and application properties, body bytes
//! and source, plus the rules IoT Hub applies to them.
//!
//! * [`Properties`]: bags with .NET `OrdinalIgnoreCase` names (R01).
//! * [`Message::from_json_str`] / [`Message::to_json_value`]: the JSON shape
//!   the CLI and the conformance corpus use.
//! * [`Message::validate`]: IoT Hub's charset, `messageId`, size and
//!   creation-time limits, all violations at once.
//! * [`Message::body_text`]: whether `$body` is readable and the text it
//!   decodes to (R23).

mod encoding;
mod json;
mod json_scan;
pub mod names;
pub mod naming;
mod properties;
mod source;
mod validate;

pub use encoding::BodyUnreadable;
pub use json::MessageError;
pub use properties::{eq_ignore_case, Properties};
pub(crate) use properties::{KeyedName, NameSet, ABSENT};
pub use source::{Source, UnknownSource};
pub use validate::{
    Protocol, Violation, CREATION_TIME_FORMAT, MAX_MESSAGE_ID_LEN, MAX_MESSAGE_SIZE,
    MESSAGE_ID_CHARSET, MESSAGE_ID_TOO_LONG, MESSAGE_TOO_LARGE, PROPERTY_NAME_CHARSET,
    PROPERTY_VALUE_CHARSET,
};

/// A device message as the router sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// IoT Hub system properties (`$name` in conditions).
    pub system_properties: Properties,
    /// Application properties (bare names in conditions).
    pub app_properties: Properties,
    /// The body bytes, decoded only when a `$body` query needs them.
    pub body: Vec<u8>,
    /// The routing source, when known.
    pub source: Option<Source>,
}
