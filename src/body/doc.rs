//! The parsed body document and path evaluation over it.
//!
//! A document is a flat, pre-order node table: every container records where
//! its subtree ends, so walking children, scanning descendants and skipping
//! subtrees are loops, never recursion, and a lookup that returns a
//! primitive borrows from the document instead of allocating.

use std::borrow::Cow;

use smallvec::SmallVec;

use super::parse::Strs;
use super::path::{BodyPath, Step};

/// Where a string lives: in the copied body text (no escapes) or in the
/// document's buffer of unescaped strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: u32,
    pub len: u32,
    pub unescaped: bool,
}

/// What a node holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Number(f64),
    Str(Span),
    Date,
    Undefined,
    Object,
    Array,
    /// `new Name(...)`: indexable like an array, selected as an object.
    Constructor,
}

impl Kind {
    /// What a path that selected exactly this token yields; strings borrow
    /// from `strs`. Shared by [`JsonDoc`] and the path extractor.
    #[inline]
    pub(crate) fn selected<'a>(self, strs: &Strs<'a>) -> Selected<'a> {
        match self {
            Kind::Null => Selected::Null,
            Kind::Bool(b) => Selected::Bool(b),
            Kind::Number(n) => Selected::Number(n),
            Kind::Str(s) => Selected::String(Cow::Borrowed(strs.get(s))),
            Kind::Date => Selected::Date,
            Kind::Undefined => Selected::Undefined,
            Kind::Object | Kind::Constructor => Selected::Object,
            Kind::Array => Selected::Array,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    /// The property name when the parent is an object.
    pub key: Option<Span>,
    /// Index one past the last node of this subtree.
    pub end: u32,
    /// Shadowed by a later property of the same name (last one wins).
    pub dead: bool,
}

/// A JSON body parsed as Json.NET 13's `JObject.Parse` reads it; see
/// [`JsonDoc::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct JsonDoc {
    pub(crate) text: Box<str>,
    pub(crate) unescaped: String,
    pub(crate) nodes: Vec<Node>,
}

/// The result of evaluating a [`BodyPath`] against a [`JsonDoc`], with the
/// distinctions the engine's `JsonMessageQueryValueProvider` makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Selected<'a> {
    /// No token matched (the engine's `QueryValue.Null` singleton).
    Missing,
    /// A JSON `null`.
    Null,
    /// A JSON boolean.
    Bool(bool),
    /// A number, as the double the engine compares.
    Number(f64),
    /// A string (not a date). Always borrowed from the document (escaped
    /// strings are kept unescaped in the document), so never allocated.
    String(Cow<'a, str>),
    /// A string Json.NET read as a date; the engine treats it as an object.
    Date,
    /// An object or a `new Name(...)` constructor.
    Object,
    /// An array.
    Array,
    /// The `undefined` literal (or an empty array slot such as `[1,,2]`).
    Undefined,
    /// More than one token matched (wildcards, scans, multiple indexes).
    Multiple,
    /// The path cannot be evaluated: `JPath` rejects its text, a negative
    /// index met an array, or the path is too expensive to evaluate.
    Error,
}

/// Upper bound on tokens produced while evaluating one path, so that nested
/// wildcards and scans over a large body cannot take quadratic time.
const MAX_SELECT_WORK: usize = 1 << 20;

type Set = SmallVec<[u32; 4]>;

impl JsonDoc {
    pub(crate) fn str_of(&self, span: Span) -> &str {
        let src: &str = if span.unescaped {
            &self.unescaped
        } else {
            &self.text
        };
        let (s, e) = (span.start as usize, (span.start + span.len) as usize);
        src.get(s..e).unwrap_or("")
    }

    fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    /// Live children of container `i`, in document order.
    fn children(&self, i: u32) -> impl Iterator<Item = u32> + '_ {
        let end = self.node(i).end;
        let mut c = i + 1;
        std::iter::from_fn(move || {
            while c < end {
                let here = c;
                let n = self.node(here);
                c = n.end;
                if !n.dead {
                    return Some(here);
                }
            }
            None
        })
    }

    fn field(&self, obj: u32, name: &str) -> Option<u32> {
        self.children(obj)
            .find(|&c| self.node(c).key.is_some_and(|k| self.str_of(k) == name))
    }

    fn is_indexable(&self, i: u32) -> bool {
        matches!(self.node(i).kind, Kind::Array | Kind::Constructor)
    }

    /// `PathFilter.GetTokenIndex`; `Err` where .NET's list indexer throws.
    fn index(&self, t: u32, index: i32) -> Result<Option<u32>, ()> {
        if !self.is_indexable(t) {
            return Ok(None);
        }
        let Ok(index) = usize::try_from(index) else {
            return Err(());
        };
        Ok(self.children(t).nth(index))
    }

    fn apply(&self, step: &Step, t: u32, out: &mut Set) -> Result<(), ()> {
        let is_object = self.node(t).kind == Kind::Object;
        match step {
            Step::Field(Some(name)) if is_object => out.extend(self.field(t, name)),
            Step::Field(None) if is_object => out.extend(self.children(t)),
            Step::Fields(names) if is_object => {
                out.extend(names.iter().filter_map(|n| self.field(t, n)));
            }
            Step::Field(_) | Step::Fields(_) => {}
            Step::Index(Some(i)) => out.extend(self.index(t, *i)?),
            Step::Index(None) if self.is_indexable(t) => out.extend(self.children(t)),
            Step::Index(None) => {}
            Step::Indexes(list) => {
                for &i in list {
                    out.extend(self.index(t, i)?);
                }
            }
            Step::Scan(name) => {
                if name.is_none() {
                    out.push(t);
                }
                let end = self.node(t).end;
                let mut c = t + 1;
                while c < end {
                    let n = self.node(c);
                    if n.dead {
                        c = n.end;
                        continue;
                    }
                    let hit = match (name, n.key) {
                        (None, _) => true,
                        (Some(name), Some(k)) => self.str_of(k) == &**name,
                        (Some(_), None) => false,
                    };
                    if hit {
                        out.push(c);
                    }
                    if out.len() > MAX_SELECT_WORK {
                        return Err(());
                    }
                    c += 1;
                }
            }
        }
        Ok(())
    }

    /// Evaluates `path` as `JObject.SelectTokens(path).ToList()` and
    /// classifies the result as the engine does. Field names are
    /// case-sensitive. Allocates only when a wildcard or scan keeps more than
    /// a handful of tokens alive.
    pub fn select(&self, path: &BodyPath) -> Selected<'_> {
        let Ok(steps) = &path.steps else {
            return Selected::Error;
        };
        let mut current: Set = SmallVec::new();
        current.push(0);
        let mut next: Set = SmallVec::new();
        let mut work = 0usize;
        for step in steps {
            next.clear();
            for &t in &current {
                if self.apply(step, t, &mut next).is_err() {
                    return Selected::Error;
                }
                if next.len() > MAX_SELECT_WORK {
                    return Selected::Error;
                }
            }
            work += next.len();
            if work > MAX_SELECT_WORK {
                return Selected::Error;
            }
            std::mem::swap(&mut current, &mut next);
            if current.is_empty() {
                return Selected::Missing;
            }
        }
        match current.as_slice() {
            [] => Selected::Missing,
            [one] => self.classify(*one),
            _ => Selected::Multiple,
        }
    }

    fn classify(&self, i: u32) -> Selected<'_> {
        self.node(i).kind.selected(&Strs {
            text: &self.text,
            unescaped: &self.unescaped,
        })
    }
}
