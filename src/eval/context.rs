//! What an evaluation reads: the message, its body parsed at most once, and the device twin.

use super::value::Value;
use crate::body::{BodyPath, JsonDoc, Selected};
use crate::message::Message;
use std::borrow::Cow;
use std::cell::OnceCell;

/// A source of device twins, for `$twin.` references (IoT Hub only).
pub trait TwinLookup {
    /// The value at `path` (from the twin's root: `tags.x`, `properties.desired.x`, ...) of
    /// the twin of the message's device, as a body value; undefined when there is no twin, no
    /// such path, or the path holds an object or array.
    fn twin_value<'t>(&'t self, message: &Message, path: &BodyPath) -> Value<'t>;
}

/// Why the body could not be read (R23), kept for `explain`.
#[derive(Clone, Debug, PartialEq)]
pub enum BodyProblem {
    /// contentType / contentEncoding missing or unsupported.
    Unreadable(String),
    /// The decoded text is not a JSON object Json.NET would load.
    InvalidJson(String),
}

/// Per-message evaluation state. The body is decoded and parsed lazily, once, and only when a
/// condition needs it.
pub struct EvalContext<'m> {
    message: &'m Message,
    body: OnceCell<Result<JsonDoc, BodyProblem>>,
    twin: Option<&'m dyn TwinLookup>,
}

impl<'m> EvalContext<'m> {
    /// A context for one message.
    pub fn new(message: &'m Message) -> Self {
        EvalContext {
            message,
            body: OnceCell::new(),
            twin: None,
        }
    }

    /// Adds a twin source for `$twin.` references.
    pub fn with_twin(mut self, twin: &'m dyn TwinLookup) -> Self {
        self.twin = Some(twin);
        self
    }

    /// The message.
    pub fn message(&self) -> &'m Message {
        self.message
    }

    /// The parsed body, or why there is none.
    pub fn body(&self) -> &Result<JsonDoc, BodyProblem> {
        self.body.get_or_init(|| {
            let text = self
                .message
                .body_text()
                .map_err(|e| BodyProblem::Unreadable(e.to_string()))?;
            JsonDoc::parse(&text).map_err(|e| BodyProblem::InvalidJson(e.to_string()))
        })
    }

    /// Whether the body has been parsed (for tests of laziness).
    pub fn body_parsed(&self) -> bool {
        self.body.get().is_some()
    }

    /// A property value as a string-typed value.
    fn string_value(v: Option<Option<&'m str>>) -> Option<Value<'m>> {
        v.map(|v| match v {
            Some(s) => Value::Str(Cow::Borrowed(s)),
            None => Value::NullStr,
        })
    }

    /// Application property (R01).
    pub fn app(&self, name: &str) -> Value<'m> {
        Self::string_value(self.message.app_properties.get(name)).unwrap_or(Value::Undefined)
    }

    /// System property (R02).
    pub fn sys(&self, name: &str) -> Value<'m> {
        Self::string_value(self.message.system_properties.get(name)).unwrap_or(Value::Undefined)
    }

    /// `$x`: application property `$x`, else system property `x` (R01).
    pub fn app_or_sys(&self, app: &str, sys: &str) -> Value<'m> {
        Self::string_value(self.message.app_properties.get(app)).unwrap_or_else(|| self.sys(sys))
    }

    /// `$body.path` (R11, R15): an application property named like the whole token overrides.
    pub fn body_value<'c>(&'c self, path: &BodyPath, app_override: Option<&str>) -> Value<'c> {
        if let Some(name) = app_override {
            if let Some(v) = Self::string_value(self.message.app_properties.get(name)) {
                return v;
            }
        }
        match self.body() {
            Ok(doc) => selected_value(doc.select(path)),
            Err(_) => Value::Undefined,
        }
    }

    /// `twin_change_includes(path)` (R24): false for an absent path, true for any present one.
    pub fn twin_change_includes(&self, path: &BodyPath) -> Value<'static> {
        match self.body() {
            Ok(doc) => match doc.select(path) {
                Selected::Missing => Value::Bool(false),
                Selected::Error => Value::Undefined,
                _ => Value::Bool(true),
            },
            Err(_) => Value::Undefined,
        }
    }

    /// `$twin.path`, with `path` from the twin's root.
    pub fn twin_value<'c>(&'c self, path: &BodyPath) -> Value<'c> {
        match self.twin {
            Some(t) => t.twin_value(self.message, path),
            None => Value::Undefined,
        }
    }
}

/// What `$body.path` yields for a JSON lookup (R15): objects, arrays, several matches and
/// date-time strings are undefined; a missing path is the null singleton.
pub fn selected_value(s: Selected<'_>) -> Value<'_> {
    match s {
        Selected::Missing => Value::Missing,
        Selected::Null => Value::Null,
        Selected::Bool(b) => Value::Bool(b),
        Selected::Number(n) => Value::Number(n),
        Selected::String(s) => Value::Str(s),
        _ => Value::Undefined,
    }
}
