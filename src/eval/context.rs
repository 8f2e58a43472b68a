//! What an evaluation reads: the message, its body parsed at most once, and the device twin.

use super::fast::{decode_body_with, BodyPlan, BodyScratch, ProgramSlots};
use crate::body::Extraction;
use crate::body::{BodyPath, JsonDoc, PathSlot, Selected};
use crate::bytes::Block;
use crate::ir::PathTest;
use crate::message::{names, Message, Properties};
use crate::value::Value;
use std::borrow::Cow;
use std::cell::{Cell, OnceCell};

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
///
/// A context made by a route table's router also carries the table's [`BodyPlan`] and a
/// caller-owned [`BodyScratch`]: its routes' plain `$body` paths are then read by one
/// extraction pass into reused buffers (no allocation), and only paths the plan cannot
/// extract (wildcards, scans) fall back to a full [`JsonDoc`].
pub struct EvalContext<'m> {
    message: &'m Message,
    body: OnceCell<Result<JsonDoc, BodyProblem>>,
    twin: Option<&'m dyn TwinLookup>,
    fast: Option<Fast<'m>>,
}

/// The plan-driven body state of a router's context. It borrows the caller's
/// [`BodyScratch`] for the message rather than taking it: moving the buffers into the
/// context and back out again copied a few hundred bytes twice per message.
struct Fast<'m> {
    plan: &'m BodyPlan,
    /// The slots of the plan's program being evaluated (set by the route loop).
    program: Cell<Option<&'m ProgramSlots>>,
    /// The body buffers until the body is first needed.
    spare: Cell<Option<BodyBuffers<'m>>>,
    body: OnceCell<FastBody<'m>>,
    /// Where each of the plan's property names is in the message (see
    /// [`BodyPlan::resolve_props`]).
    props: &'m [u32],
    /// The results of the plan's shared tests for this message, by id ([`SharedSlot`]).
    shared: &'m [Cell<Kept>],
}

/// The scratch buffers a body is decoded and extracted into.
struct BodyBuffers<'m> {
    text: &'m mut String,
    extraction: &'m mut Extraction,
}

/// A message's body after extraction.
struct FastBody<'m> {
    /// The text: the message's bytes when they are UTF-8, else the decoded buffer.
    text: &'m str,
    /// The extracted values (`None` when the body is unreadable).
    extraction: Option<&'m Extraction>,
    /// Readable (R23) and valid JSON.
    ok: bool,
}

impl<'m> EvalContext<'m> {
    /// A context for one message.
    pub fn new(message: &'m Message) -> Self {
        EvalContext {
            message,
            body: OnceCell::new(),
            twin: None,
            fast: None,
        }
    }

    /// A context that reads plain body paths through `plan` (whose program indexes are
    /// selected with [`EvalContext::set_program`]), into `scratch`'s buffers, which it
    /// borrows for the message.
    pub(crate) fn with_plan(
        message: &'m Message,
        plan: &'m BodyPlan,
        scratch: &'m mut BodyScratch,
    ) -> Self {
        let BodyScratch {
            props,
            text,
            extraction,
            shared,
        } = scratch;
        plan.resolve_props(message, props);
        shared.clear();
        shared.resize(plan.shared, Cell::new(Kept::Unknown));
        EvalContext {
            message,
            body: OnceCell::new(),
            twin: None,
            fast: Some(Fast {
                plan,
                program: Cell::new(None),
                spare: Cell::new(Some(BodyBuffers { text, extraction })),
                body: OnceCell::new(),
                props,
                shared,
            }),
        }
    }

    /// Shared test `id`'s result for this message (`Ok`), or where to keep it once evaluated
    /// (`Err`); `None` when this context keeps no results (one without a plan).
    #[inline(always)]
    pub(crate) fn shared(&self, id: u32) -> Option<Result<Value<'static>, SharedSlot<'_>>> {
        let cell = self.fast.as_ref()?.shared.get(id as usize)?;
        Some(match cell.get() {
            Kept::Unknown => Err(SharedSlot(cell)),
            Kept::Undefined => Ok(Value::Undefined),
            Kept::Null => Ok(Value::Null),
            Kept::Bool(b) => Ok(Value::Bool(b)),
            Kept::Number(n) => Ok(Value::Number(n)),
        })
    }

    /// Selects which program of the plan the following evaluations belong to, so that a
    /// program's local body path indexes map to the plan's slots.
    pub(crate) fn set_program(&self, index: usize) {
        if let Some(fast) = &self.fast {
            fast.program.set(fast.plan.programs.get(index));
        }
    }

    /// The extracted body: decoded (into the scratch unless the bytes are UTF-8) and scanned
    /// once for every path of the plan.
    #[inline(always)]
    fn fast_body<'c>(&'c self, fast: &'c Fast<'m>) -> &'c FastBody<'m> {
        fast.body.get_or_init(|| self.extract_body(fast))
    }

    /// What routing found of the body as JSON ([`BodyJson`]). `Compact`: routing read the
    /// message's body as it is stored (UTF-8, no byte-order mark) and found it JSON the
    /// strict scanner reads whole, without a byte at or below space (so no whitespace to
    /// minify away, and no control byte) and without a backslash (the scanner takes
    /// Json.NET's escapes, such as `\'`, in strings it skips; serde_json does not): such a
    /// body is JSON exactly as serde_json reads it, and a Storage JSON record may embed it as
    /// it is. `Strict`: the other bodies routing read as stored and the strict scanner read
    /// whole (with whitespace, or a backslash). `Unknown` when routing did not read the body
    /// (no route needed it) or read anything else.
    pub(crate) fn body_json(&self) -> BodyJson {
        let Some(body) = self.fast.as_ref().and_then(|f| f.body.get()) else {
            return BodyJson::Unknown;
        };
        let stored = &self.message.body[..];
        if !(body.ok
            && body.extraction.is_some_and(Extraction::is_strict)
            && std::ptr::eq(body.text.as_bytes(), stored))
        {
            return BodyJson::Unknown;
        }
        if nothing_to_minify_or_unescape(stored) {
            BodyJson::Compact
        } else {
            BodyJson::Strict
        }
    }

    /// Decodes and scans the body for [`EvalContext::fast_body`] (once per message, so kept
    /// out of line of the reads).
    #[cold]
    #[inline(never)]
    fn extract_body(&self, fast: &Fast<'m>) -> FastBody<'m> {
        let unreadable = FastBody {
            text: "",
            extraction: None,
            ok: false,
        };
        // Taken once: `fast.body` is initialised once.
        let Some(BodyBuffers { text, extraction }) = fast.spare.take() else {
            return unreadable;
        };
        let [encoding, content_type] = fast.plan.content_props(self.message, fast.props);
        let Ok(borrowed) = decode_body_with(self.message, encoding, content_type, text) else {
            return unreadable;
        };
        let text: &'m str = borrowed.unwrap_or(text);
        let ok = extraction.run(&fast.plan.set, text);
        FastBody {
            text,
            extraction: Some(extraction),
            ok,
        }
    }

    /// `path` (local index `local` of the program being evaluated) in the body; `None` when
    /// the body is unreadable or not valid JSON. The path itself is only needed when the
    /// plan does not have it (then the whole body is parsed), so it is asked for only then.
    #[inline(always)]
    pub(crate) fn select_at<'c, 'p>(
        &'c self,
        local: u32,
        path: impl FnOnce() -> &'p BodyPath,
    ) -> Option<Selected<'c>> {
        if let Some(fast) = &self.fast {
            let slot = fast.program.get().and_then(|p| p.paths.get(local as usize));
            match slot {
                Some(PathSlot::Slot(id)) => {
                    let body = self.fast_body(fast);
                    return match body.extraction {
                        Some(extraction) if body.ok => Some(extraction.get(*id, body.text)),
                        _ => None,
                    };
                }
                // Undefined whether or not the body is readable.
                Some(PathSlot::Error) => return Some(Selected::Error),
                Some(PathSlot::Complex) | None => {}
            }
        }
        match self.body() {
            Ok(doc) => Some(doc.select(path())),
            Err(_) => None,
        }
    }

    /// The number at path `local` of the program being evaluated, exactly when
    /// [`EvalContext::select_at`] would select [`Selected::Number`]; `None` for anything else
    /// (another kind, missing, an unreadable or invalid body). A slot of the plan is read
    /// without making a [`Selected`] of it: the conversion is a jump over every kind of
    /// value, and numeric comparisons of body paths are the commonest body test.
    #[inline(always)]
    pub(crate) fn number_at<'p>(
        &self,
        local: u32,
        path: impl FnOnce() -> &'p BodyPath,
    ) -> Option<f64> {
        if let Some(fast) = &self.fast {
            let slot = fast.program.get().and_then(|p| p.paths.get(local as usize));
            if let Some(PathSlot::Slot(id)) = slot {
                let body = self.fast_body(fast);
                return match body.extraction {
                    Some(extraction) if body.ok => extraction.number(*id),
                    _ => None,
                };
            }
        }
        match self.select_at(local, path)? {
            Selected::Number(n) => Some(n),
            _ => None,
        }
    }

    /// `$body.path` for path `local` of the program being evaluated (see
    /// [`EvalContext::body_value`]).
    #[inline(always)]
    pub(crate) fn body_value_at<'c>(
        &'c self,
        local: u32,
        path: &BodyPath,
        app_override: Option<&PropRef>,
    ) -> Value<'c> {
        if let Some(v) = self.body_override(app_override) {
            return v;
        }
        match self.select_at(local, || path) {
            Some(s) => selected_value(s),
            None => Value::Undefined,
        }
    }

    /// The application property named like a whole `$body.x` token, which overrides the
    /// body path when the message has it (R11): its string value, or null string.
    #[inline(always)]
    pub(crate) fn body_override(&self, app_override: Option<&PropRef>) -> Option<Value<'m>> {
        let name = app_override?;
        if !self.message.app_properties.may_have_dollar_name() {
            return None;
        }
        Self::string_value(self.prop(name))
    }

    /// A [`PathTest`] of path `local` of the program being evaluated.
    pub fn path_test_at(&self, test: PathTest, local: u32, path: &BodyPath) -> Value<'static> {
        crate::functions::path_test(test, self.select_at(local, || path))
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

    /// A property value as a string-typed value (`None`: absent).
    pub(crate) fn string_value(v: Option<Option<&'m str>>) -> Option<Value<'m>> {
        v.map(|v| match v {
            Some(s) => Value::Str(Cow::Borrowed(s)),
            None => Value::NullStr,
        })
    }

    /// Application property (R01).
    pub fn app(&self, name: &str) -> Value<'m> {
        Self::string_value(lookup(&self.message.app_properties, name)).unwrap_or(Value::Undefined)
    }

    /// System property (R02).
    pub fn sys(&self, name: &str) -> Value<'m> {
        Self::string_value(lookup(&self.message.system_properties, name))
            .unwrap_or(Value::Undefined)
    }

    /// `$x`: application property `$x`, else system property `x` (R01). A name the router
    /// stamps from the connection ([`names::is_stamped`]) reads the system property only: a
    /// device must not route as another device by naming an application property
    /// `$connectionDeviceId`.
    pub fn app_or_sys(&self, app: &str, sys: &str) -> Value<'m> {
        if names::is_stamped(sys) {
            return self.sys(sys);
        }
        Self::string_value(lookup(&self.message.app_properties, app))
            .unwrap_or_else(|| self.sys(sys))
    }

    /// A compiled name's property: from the positions the plan resolved for this message
    /// when the context has them (a router's), else looked up.
    #[inline(always)]
    pub(crate) fn prop(&self, name: &PropRef) -> Option<Option<&'m str>> {
        let bag = match name.bag {
            Bag::App => &self.message.app_properties,
            Bag::Sys => &self.message.system_properties,
        };
        if let Some(fast) = &self.fast {
            let resolved = fast
                .program
                .get()
                .and_then(|p| p.props.get(name.slot as usize))
                .and_then(|&global| fast.props.get(global as usize));
            if let Some(&position) = resolved {
                return bag.get_at(position);
            }
        }
        name.lookup(bag)
    }

    /// The string value of a compiled name's property (R01, R02), undefined when absent.
    #[inline]
    pub(crate) fn prop_ref(&self, name: &PropRef) -> Value<'m> {
        Self::string_value(self.prop(name)).unwrap_or(Value::Undefined)
    }

    /// `$x` of compiled names (application property `$x`, else system property `x`), as
    /// [`Properties::get`] returns it. The compiler never builds this lookup for a stamped
    /// name ([`names::is_stamped`]); it reads the system property alone.
    #[inline(always)]
    pub(crate) fn app_or_sys_prop(&self, app: &PropRef, sys: &PropRef) -> Option<Option<&'m str>> {
        if self.message.app_properties.may_have_dollar_name() {
            if let Some(v) = self.prop(app) {
                return Some(v);
            }
        }
        self.prop(sys)
    }

    /// [`EvalContext::app_or_sys_prop`] as a value.
    #[inline]
    pub(crate) fn app_or_sys_ref(&self, app: &PropRef, sys: &PropRef) -> Value<'m> {
        Self::string_value(self.app_or_sys_prop(app, sys)).unwrap_or(Value::Undefined)
    }

    /// `$body.path` (R11, R15): an application property named like the whole token overrides.
    pub fn body_value<'c>(&'c self, path: &BodyPath, app_override: Option<&str>) -> Value<'c> {
        if let Some(name) = app_override {
            if let Some(v) = Self::string_value(lookup(&self.message.app_properties, name)) {
                return v;
            }
        }
        match self.body() {
            Ok(doc) => selected_value(doc.select(path)),
            Err(_) => Value::Undefined,
        }
    }

    /// A [`PathTest`] of a body path: `twin_change_includes(path)` (R24), `is_array`, ...
    pub fn path_test(&self, test: PathTest, path: &BodyPath) -> Value<'static> {
        crate::functions::path_test(test, self.body().as_ref().ok().map(|doc| doc.select(path)))
    }

    /// `$twin.path`, with `path` from the twin's root.
    pub fn twin_value<'c>(&'c self, path: &BodyPath) -> Value<'c> {
        match self.twin {
            Some(t) => t.twin_value(self.message, path),
            None => Value::Undefined,
        }
    }
}

/// `props.get(name)`. [`Properties`] itself does the fast comparison (packed length and
/// first-byte keys, ASCII case folding when every name is ASCII, a hash index for large
/// bags), so that every lookup, here or elsewhere, gets it and there is one definition of
/// name equality.
#[inline]
fn lookup<'p>(props: &'p Properties, name: &str) -> Option<Option<&'p str>> {
    props.get(name)
}

/// A shared test's result for the message being routed: tests yield a bool, null, undefined
/// or (`as_number`, `abs`, ...) a number; a string is not kept (it would borrow).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Kept {
    /// Not evaluated yet for this message (or not a kept kind of value).
    #[default]
    Unknown,
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
}

/// Where a shared test's result is kept for the message being routed.
pub(crate) struct SharedSlot<'c>(&'c Cell<Kept>);

impl SharedSlot<'_> {
    /// Keeps `value` for the rest of the message, if it is one that is kept.
    #[inline]
    pub(crate) fn keep(&self, value: &Value<'_>) {
        self.0.set(match value {
            Value::Undefined => Kept::Undefined,
            Value::Null => Kept::Null,
            Value::Bool(b) => Kept::Bool(*b),
            Value::Number(n) => Kept::Number(*n),
            _ => return,
        });
    }
}

/// Which property bag a compiled name is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bag {
    /// Application properties.
    App,
    /// System properties.
    Sys,
}

/// A property name fixed in a compiled route, with whether it is ASCII worked out once
/// ([`Properties`] compares ASCII names with plain case folding), so that looking it up in
/// each message does not check it again; and its index among its program's distinct names
/// ([`crate::compile::Program::props`]), through which a router's context finds the
/// position the table's [`BodyPlan`] resolved for the message.
#[derive(Clone, Debug)]
pub(crate) struct PropRef {
    name: Box<str>,
    ascii: bool,
    bag: Bag,
    slot: u32,
}

impl PropRef {
    /// Prepares `name`, the program's distinct name number `slot`, in `bag`.
    pub(crate) fn new(name: &str, bag: Bag, slot: u32) -> Self {
        PropRef {
            name: name.into(),
            ascii: name.is_ascii(),
            bag,
            slot,
        }
    }

    /// The name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The bag it is looked up in.
    pub(crate) fn bag(&self) -> Bag {
        self.bag
    }

    /// [`lookup`] of this name.
    #[inline]
    fn lookup<'p>(&self, props: &'p Properties) -> Option<Option<&'p str>> {
        props.get_known(&self.name, self.ascii)
    }
}

/// What `$body.path` yields for a JSON lookup (R15): objects, arrays, several matches and
/// date-time strings are undefined; a missing path is the null singleton.
#[inline]
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

/// What routing found of a message's body as JSON, kept in its store record (`codec`'s
/// flags) and given to sinks with each copy ([`crate::sink::CopyView::body_json`]), so that a
/// Storage JSON record does not check the body again in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyJson {
    /// Routing did not read the body as stored, or did not find it strict JSON.
    #[default]
    Unknown,
    /// Read as stored (so UTF-8) and read whole by the strict scanner: RFC 8259 JSON,
    /// except that a string the scanner skipped may hold Json.NET's escapes (`\'`) or a
    /// control byte, which the sink's whitespace strip checks for (and then checks whole).
    Strict,
    /// Strict, with no byte at or below space and no backslash: nothing to minify, and JSON
    /// exactly as serde_json reads it.
    Compact,
}

/// Whether `bytes` hold no byte at or below space and no backslash, 16 at a time (the
/// project's [`Block`]).
fn nothing_to_minify_or_unescape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(16);
    let blocks = chunks.by_ref().all(|c| {
        c.first_chunk::<16>().is_some_and(|c| {
            let b = Block::load(c);
            (b.control() | b.eq_either(b' ', b'\\')) == 0
        })
    });
    blocks && chunks.remainder().iter().all(|&b| b > b' ' && b != b'\\')
}
