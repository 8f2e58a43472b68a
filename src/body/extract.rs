//! Single-pass extraction of a fixed set of `$body` paths.
//!
//! A route table reads the same few paths of every message (`type`,
//! `Weather.Temperature`, ...). Building a whole [`JsonDoc`](super::JsonDoc)
//! for each message would allocate and record every value; instead the
//! table's paths are interned once into a [`PathSet`] (a trie of field names
//! and array indexes), and each body is run through the one parser with an
//! [`Extractor`] that records only the values at those paths. Everything
//! else is still parsed, so validation, date detection, the depth limit and
//! every Json.NET leniency are exactly [`JsonDoc::parse`](super::JsonDoc::parse)'s,
//! and invalid JSON anywhere still makes every value undefined (R15).
//!
//! Only plain paths (`a.b[2].c`: fields and non-negative indexes) go into
//! the trie. Wildcards, scans, multiple selections and negative indexes
//! are [`PathSlot::Complex`]: the caller evaluates those on a full
//! `JsonDoc`. Paths `JPath` rejects are [`PathSlot::Error`].
//!
//! Duplicate property names keep the last value (as `JsonDoc` does by
//! marking earlier ones dead): a later occurrence of a recorded name resets
//! everything recorded below it before recording the new value.

use super::doc::{Kind, Selected};
use super::number::parse_number;
use super::parse::{Build, Frame, Parser, Stop, Strs};
use super::path::{BodyPath, Step};

/// No trie node: the value is not wanted.
pub(super) const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
enum TrieStep {
    Root,
    Field(Box<str>),
    Index(u32),
}

#[derive(Debug, Clone)]
struct TrieNode {
    step: TrieStep,
    /// Children, as node ids.
    children: Box<[u32]>,
    /// The field children with the length and first byte of their names,
    /// so that a lookup rejects most names without comparing them (a body's
    /// names mostly miss, and a string comparison is a `memcmp` call).
    fields: Box<[FieldKey]>,
    /// One past the last node of this subtree (nodes are in pre-order, so a
    /// subtree's slots are one contiguous range).
    end: u32,
    /// Bit [`name_bit`] of each field child's name set: a body's names
    /// mostly miss, and most misses are then one test instead of a walk
    /// over `fields`.
    mask: u64,
    /// `fields` hashed by [`name_hash`] (index + 1, 0 for an empty bucket, linear
    /// probing), so that a name that passes `mask` is found in one comparison instead of a
    /// walk over `fields`, whose exit the CPU mispredicted on nearly every name of a
    /// referenced object. All zero for a node with more than [`HASHED_FIELDS`] fields,
    /// which is walked.
    buckets: [u16; 64],
}

/// The most field children a trie node hashes (half its buckets, so that probe sequences
/// stay short).
const HASHED_FIELDS: usize = 32;

/// The first eight bytes of a name (zero-padded), as one word: names
/// compare a word at a time, and most names fit in one.
#[inline(always)]
fn name_prefix(name: &[u8]) -> u64 {
    match name.first_chunk::<8>() {
        Some(word) => u64::from_le_bytes(*word),
        // Byte by byte: a copy of a variable length is a `memcpy` call.
        None => name
            .iter()
            .rev()
            .fold(0, |word, &c| (word << 8) | u64::from(c)),
    }
}

/// A bit (of 64) chosen by a name's length and prefix, for
/// [`TrieNode::mask`].
#[inline(always)]
fn name_bit(len: usize, prefix: u64) -> u64 {
    1 << name_hash(len, prefix)
}

/// A name's bucket (of 64), from its length and [`name_prefix`].
#[inline(always)]
fn name_hash(len: usize, prefix: u64) -> usize {
    let h = prefix
        .wrapping_add(len as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 58) as usize
}

/// A field child of a trie node, for [`PathSet::field`].
#[derive(Debug, Clone, Copy)]
struct FieldKey {
    len: u32,
    node: u32,
    /// [`name_prefix`] of the name: with `len`, it decides names of up to
    /// eight bytes without looking at the name itself.
    prefix: u64,
}

/// Where a path's value comes from after extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSlot {
    /// The value recorded in this slot of an [`Extraction`].
    Slot(u32),
    /// `JPath` rejects the path: the value is always an error (undefined).
    Error,
    /// Not a plain path: evaluate it on a full document.
    Complex,
}

/// An interned, deduplicated set of plain body paths, as a trie.
#[derive(Debug, Clone)]
pub struct PathSet {
    nodes: Vec<TrieNode>,
}

impl PathSet {
    /// Interns `paths`; returns the set and, for each path, where its value
    /// will be.
    pub fn build<'p>(paths: impl IntoIterator<Item = &'p BodyPath>) -> (PathSet, Vec<PathSlot>) {
        // Build an insertion-order tree first, then renumber it in pre-order.
        let mut tree: Vec<(TrieStep, Vec<usize>)> = vec![(TrieStep::Root, Vec::new())];
        let mut leaf_of: Vec<Option<usize>> = Vec::new();
        let mut kinds: Vec<PathSlot> = Vec::new();
        for path in paths {
            let Ok(steps) = &path.steps else {
                kinds.push(PathSlot::Error);
                leaf_of.push(None);
                continue;
            };
            let mut plain = Vec::with_capacity(steps.len());
            for step in steps {
                match step {
                    Step::Field(Some(name)) => plain.push(TrieStep::Field(name.clone())),
                    Step::Index(Some(i)) if *i >= 0 => plain.push(TrieStep::Index(*i as u32)),
                    _ => break,
                }
            }
            if plain.len() != steps.len() {
                kinds.push(PathSlot::Complex);
                leaf_of.push(None);
                continue;
            }
            let mut at = 0;
            for step in plain {
                at = match tree[at].1.iter().find(|&&c| tree[c].0 == step) {
                    Some(&c) => c,
                    None => {
                        tree.push((step, Vec::new()));
                        let c = tree.len() - 1;
                        tree[at].1.push(c);
                        c
                    }
                };
            }
            kinds.push(PathSlot::Slot(0));
            leaf_of.push(Some(at));
        }
        // Pre-order renumbering, iteratively.
        let mut new_id = vec![0u32; tree.len()];
        let mut order = Vec::with_capacity(tree.len());
        let mut todo = vec![0usize];
        while let Some(n) = todo.pop() {
            new_id[n] = order.len() as u32;
            order.push(n);
            todo.extend(tree[n].1.iter().rev());
        }
        let mut nodes: Vec<TrieNode> = order
            .iter()
            .map(|&old| TrieNode {
                step: tree[old].0.clone(),
                children: tree[old].1.iter().map(|&c| new_id[c]).collect(),
                fields: tree[old]
                    .1
                    .iter()
                    .filter_map(|&c| match &tree[c].0 {
                        TrieStep::Field(name) => Some(FieldKey {
                            len: name.len() as u32,
                            prefix: name_prefix(name.as_bytes()),
                            node: new_id[c],
                        }),
                        _ => None,
                    })
                    .collect(),
                end: 0,
                mask: 0,
                buckets: [0; 64],
            })
            .collect();
        for node in &mut nodes {
            node.mask = node
                .fields
                .iter()
                .fold(0, |m, k| m | name_bit(k.len as usize, k.prefix));
            if node.fields.len() <= HASHED_FIELDS {
                for (j, k) in node.fields.iter().enumerate() {
                    let mut b = name_hash(k.len as usize, k.prefix);
                    while node.buckets[b] != 0 {
                        b = (b + 1) % 64;
                    }
                    node.buckets[b] = j as u16 + 1;
                }
            }
        }
        for i in (0..nodes.len()).rev() {
            let end = match nodes[i].children.last() {
                Some(&last) => nodes[last as usize].end,
                None => i as u32 + 1,
            };
            nodes[i].end = end;
        }
        for (kind, leaf) in kinds.iter_mut().zip(&leaf_of) {
            if let Some(leaf) = leaf {
                *kind = PathSlot::Slot(new_id[*leaf]);
            }
        }
        (PathSet { nodes }, kinds)
    }

    /// Number of slots an extraction records.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the set holds no path (only the root).
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// The child of `parent` for the property `name`, or [`NONE`].
    #[inline(always)]
    pub(super) fn field(&self, parent: u32, name: &[u8]) -> u32 {
        self.field_with(parent, name, name_prefix(name))
    }

    /// [`PathSet::field`] of the name `text[start..end]`, whose prefix is read as one word
    /// from `text` when eight bytes follow `start` (in a body, the closing quote and what
    /// follows it), with the bytes past the name masked off: a short name's prefix is then
    /// not built a byte at a time.
    #[inline(always)]
    pub(super) fn field_in(&self, parent: u32, text: &[u8], start: usize, end: usize) -> u32 {
        let name = &text[start..end];
        let prefix = match text.get(start..).and_then(<[u8]>::first_chunk::<8>) {
            Some(word) if name.len() < 8 => {
                u64::from_le_bytes(*word) & ((1u64 << (8 * name.len())) - 1)
            }
            _ => name_prefix(name),
        };
        self.field_with(parent, name, prefix)
    }

    /// [`PathSet::field`] given the name's [`name_prefix`].
    #[inline(always)]
    fn field_with(&self, parent: u32, name: &[u8], prefix: u64) -> u32 {
        let node = &self.nodes[parent as usize];
        let home = name_hash(name.len(), prefix);
        if node.mask & (1 << home) == 0 {
            return NONE;
        }
        if node.fields.len() > HASHED_FIELDS {
            return node
                .fields
                .iter()
                .find(|key| self.is_field(key, name, prefix))
                .map_or(NONE, |key| key.node);
        }
        // At most HASHED_FIELDS of the 64 buckets are full: the probe meets an empty one.
        let mut b = home;
        while let Some(&entry) = node.buckets.get(b).filter(|&&e| e != 0) {
            let key = &node.fields[usize::from(entry) - 1];
            if self.is_field(key, name, prefix) {
                return key.node;
            }
            b = (b + 1) % 64;
        }
        NONE
    }

    /// Whether field child `key` is named `name` (whose [`name_prefix`] is `prefix`).
    #[inline(always)]
    fn is_field(&self, key: &FieldKey, name: &[u8], prefix: u64) -> bool {
        if key.len as usize != name.len() || key.prefix != prefix {
            return false;
        }
        if name.len() <= 8 {
            return true;
        }
        match &self.nodes[key.node as usize].step {
            TrieStep::Field(n) => crate::bytes::bytes_eq(&n.as_bytes()[8..], &name[8..]),
            _ => false,
        }
    }

    /// Whether some path goes below `node` (else its contents are skipped).
    #[inline]
    pub(super) fn has_children(&self, node: u32) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }

    /// Records `kind` as the value of `node` in `slots`. A repeated name
    /// replaces the earlier value and everything recorded below it.
    #[inline]
    pub(super) fn record(&self, slots: &mut [Option<Kind>], node: u32, kind: Kind) {
        let end = self.nodes[node as usize].end as usize;
        for s in &mut slots[node as usize + 1..end] {
            *s = None;
        }
        slots[node as usize] = Some(kind);
    }

    /// The child of `parent` for array element `index`, or [`NONE`].
    pub(super) fn index(&self, parent: u32, index: u32) -> u32 {
        for &c in self.nodes[parent as usize].children.iter() {
            if self.nodes[c as usize].step == TrieStep::Index(index) {
                return c;
            }
        }
        NONE
    }
}

/// An open container during extraction.
#[derive(Debug, Clone, Copy)]
struct XFrame {
    /// The trie node of this container, or `NONE` when nothing below it is
    /// wanted (the subtree is validated and skipped).
    trie: u32,
    object: bool,
    /// Elements seen so far (arrays and constructors).
    count: u32,
}

/// The [`Build`]er that records only the trie's values.
struct Extractor<'s> {
    set: &'s PathSet,
    slots: Vec<Option<Kind>>,
    frames: Vec<XFrame>,
    /// The trie node of the property whose name [`Build::wants_key`] saw
    /// last (`NONE`: not wanted), for the value that follows it: the name
    /// is looked up once, whether or not the parser then reports the value.
    key_child: u32,
}

impl Build for Extractor<'_> {
    const MESSAGES: bool = false;

    fn push(&mut self, kind: Kind, key: Option<Span>, _: &Strs<'_>) -> Result<u32, ()> {
        let child = self.child(key);
        self.record(child, kind);
        Ok(0)
    }

    /// Converts the literal only when a path records it.
    fn push_number(&mut self, text: &str, key: Option<Span>, _: &Strs<'_>) -> Result<u32, ()> {
        let child = self.child(key);
        if child != NONE {
            let v = parse_number(text).unwrap_or(f64::NAN);
            self.record(child, Kind::Number(v));
        }
        Ok(0)
    }

    /// Looks the name up in the trie (once: [`Extractor::child`] uses the
    /// answer), so that the parser can skip what no path reads.
    #[inline]
    fn wants_key(&mut self, key: Span, strs: &Strs<'_>) -> bool {
        self.key_child = match self.frames.last() {
            Some(f) if f.trie != NONE && f.object => {
                self.set.field(f.trie, strs.get(key).as_bytes())
            }
            _ => NONE,
        };
        self.key_child != NONE
    }

    fn wants_children(&self) -> bool {
        self.frames.last().is_some_and(|f| f.trie != NONE)
    }

    fn close(&mut self, _: u32, _: &Strs<'_>) -> Result<(), ()> {
        self.frames.pop();
        Ok(())
    }
}

impl Extractor<'_> {
    /// The trie node of the value being pushed (`NONE`: not wanted).
    /// In a reported object every value follows its name, which the parser
    /// gave [`Build::wants_key`] first: its answer is `key_child`.
    #[inline]
    fn child(&mut self, key: Option<Span>) -> u32 {
        match self.frames.last_mut() {
            None => 0,
            Some(f) if f.trie == NONE => NONE,
            Some(f) if f.object => match key {
                Some(_) => std::mem::replace(&mut self.key_child, NONE),
                None => NONE,
            },
            Some(f) => {
                let i = f.count;
                f.count += 1;
                self.set.index(f.trie, i)
            }
        }
    }

    /// Records `kind` at `child` (when wanted) and opens a frame for a
    /// container.
    #[inline]
    fn record(&mut self, child: u32, kind: Kind) {
        if child != NONE {
            self.set.record(&mut self.slots, child, kind);
        }
        if matches!(kind, Kind::Object | Kind::Array | Kind::Constructor) {
            let wanted = child != NONE && self.set.has_children(child);
            self.frames.push(XFrame {
                trie: if wanted { child } else { NONE },
                object: kind == Kind::Object,
                count: 0,
            });
        }
    }
}

use super::doc::Span;

/// The values of a [`PathSet`] in one body, with the buffers an extraction
/// needs. Reuse one across messages: after the first few, extracting
/// allocates nothing.
#[derive(Debug, Default)]
pub struct Extraction {
    unescaped: String,
    stack: Vec<Frame>,
    frames: Vec<XFrame>,
    slots: Vec<Option<Kind>>,
    valid: bool,
    /// The strict scanner read the whole body and found it valid: it is RFC 8259 JSON (see
    /// `scan.rs`).
    strict: bool,
}

impl Extraction {
    /// Parses `text` as [`JsonDoc::parse`](super::JsonDoc::parse) would and
    /// records the set's values. Returns whether the body is valid.
    pub fn run(&mut self, set: &PathSet, text: &str) -> bool {
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        slots.resize(set.len(), None);
        // Strict JSON (nearly every body) is read by the scanner alone, and
        // so is strict JSON cut off before its end (invalid); anything else,
        // valid or not, by the general parser from the start.
        if let Some(valid) = match super::scan::scan(set, text, &mut slots) {
            Ok(()) => Some(true),
            Err(Stop::Truncated) => Some(false),
            Err(Stop::Unsure) => None,
        } {
            self.slots = slots;
            self.unescaped.clear();
            self.valid = valid;
            self.strict = valid;
            return valid;
        }
        slots.clear();
        slots.resize(set.len(), None);
        let mut frames = std::mem::take(&mut self.frames);
        frames.clear();
        let extractor = Extractor {
            set,
            slots,
            frames,
            key_child: NONE,
        };
        let unescaped = std::mem::take(&mut self.unescaped);
        let stack = std::mem::take(&mut self.stack);
        let mut parser = Parser::new(text, unescaped, stack, extractor);
        self.valid = parser.parse().is_ok();
        self.strict = false;
        self.unescaped = parser.unescaped;
        self.stack = parser.stack;
        self.slots = parser.builder.slots;
        self.frames = parser.builder.frames;
        self.valid
    }

    /// Lets go of the unescaped-text buffer when a body grew it past `bytes`.
    pub(crate) fn trim(&mut self, bytes: usize) {
        if self.unescaped.capacity() > bytes {
            self.unescaped = String::new();
        }
    }

    /// Whether the last body extracted was valid JSON.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Whether the last body was read whole by the strict scanner, so it is RFC 8259 JSON
    /// (no leniency of Json.NET's, no NUL as whitespace, at most 64 levels deep).
    pub(crate) fn is_strict(&self) -> bool {
        self.strict
    }

    /// The number in `slot` after [`Extraction::run`]: `Some` exactly when
    /// [`Extraction::get`] gives [`Selected::Number`], read without building the
    /// [`Selected`].
    #[inline]
    pub fn number(&self, slot: u32) -> Option<f64> {
        match self.slots.get(slot as usize).copied().flatten() {
            Some(Kind::Number(n)) if self.valid => Some(n),
            _ => None,
        }
    }

    /// The value in `slot` after [`Extraction::run`] on `text` (the same
    /// text), as [`JsonDoc::select`](super::JsonDoc::select) gives it.
    /// [`Selected::Error`] when the body was invalid.
    #[inline]
    pub fn get<'a>(&'a self, slot: u32, text: &'a str) -> Selected<'a> {
        if !self.valid {
            return Selected::Error;
        }
        match self.slots.get(slot as usize).copied().flatten() {
            None => Selected::Missing,
            Some(kind) => kind.selected(&Strs {
                text,
                unescaped: &self.unescaped,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BodyPath, JsonDoc};
    use super::*;

    /// The extractor must give exactly `JsonDoc::select`'s answer, for every path at once.
    fn check(text: &str, paths: &[&str]) {
        let parsed: Vec<BodyPath> = paths.iter().map(|p| BodyPath::parse(p)).collect();
        let (set, slots) = PathSet::build(&parsed);
        let mut ex = Extraction::default();
        // Run twice on a dirty scratch to check reuse.
        ex.run(&set, "{\"a\":{\"b\":[1,2,{\"c\":3}]},\"x\":\"\\u0041\"}");
        let valid = ex.run(&set, text);
        let doc = JsonDoc::parse(text);
        assert_eq!(valid, doc.is_ok(), "validity of {text:?}");
        // `number` reads a number exactly where `get` selects one (never in an invalid body).
        for slot in &slots {
            if let PathSlot::Slot(id) = slot {
                let want = match ex.get(*id, text) {
                    Selected::Number(n) => Some(n),
                    _ => None,
                };
                let got = ex.number(*id);
                assert_eq!(
                    format!("{got:?}"),
                    format!("{want:?}"),
                    "{text:?} slot {id}"
                );
            }
        }
        let Ok(doc) = doc else { return };
        for (path, slot) in parsed.iter().zip(&slots) {
            let want = doc.select(path);
            match slot {
                PathSlot::Slot(id) => {
                    // Compared as text so that NaN equals NaN.
                    let got = format!("{:?}", ex.get(*id, text));
                    assert_eq!(got, format!("{want:?}"), "{text:?} {path}")
                }
                PathSlot::Error => assert_eq!(want, Selected::Error, "{path}"),
                PathSlot::Complex => {}
            }
        }
    }

    const PATHS: &[&str] = &[
        "",
        "a",
        "a.b",
        "a.b[0]",
        "a.b[1]",
        "a.b[2].c",
        "a.b[5]",
        "a.b.c",
        "a[0]",
        "x",
        "y",
        "y.z",
        "d",
        "n",
        "n[1]",
        "n[1][0]",
        "k\u{e9}y",
        "q\"",
        "a.*",
        "a..c",
        "a.b[-1]",
        "a[0]xyz",
        "['a']['b'][0]",
        "$.a.b[2].c",
    ];

    #[test]
    fn agrees_with_select_on_examples() {
        for text in [
            r#"{"a":{"b":[1,2,{"c":3}]},"x":"s","y":{"z":null}}"#,
            r#"{"a":{"b":[1,2,{"c":3}]},"a":5}"#,
            r#"{"a":5,"a":{"b":[true,"q\u0041"]}}"#,
            r#"{"a":{"b":[1]},"a":{"c":2}}"#,
            r#"{"a":{"b":{"0":1}}}"#,
            "{a: {b: [1,,{c: 0x10}]}, 'x': 'it''s'}",
            "{a: {b: [1,,{c: 0x10}]}, 'x': 'it\\'s', }",
            r#"{"d":"2017-03-09T00:00:00Z","x":"2017-03-09"}"#,
            r#"{"d":"9999-12-31T24:00:00"}"#,
            r#"{"n":new Date(1, [2, 3]),"x":1}"#,
            "{\"k\\u00e9y\":1,\"q\\\"\":[]}",
            "{\"k\u{e9}y\":\"M\u{fc}nchen\"} // c",
            r#"{"a":{"b":[1,2,{"c":3}]}"#,
            r#"{"a":1} x"#,
            r#"{"a":[1,2}"#,
            r#"[1]"#,
            r#"{"y":{"z":NaN},"x":-Infinity,"n":undefined}"#,
            r#"{"a":{"b":[01, 1e400, -0]}}"#,
            r#"{"a":{"b":[1,2,{"c":3,"c":4}]},"x":"\ud83d\ude00"}"#,
            // Errors and leniencies inside subtrees no path reads (validated
            // without being reported to the extractor).
            r#"{"a":1,"skip":{"deep":[1,2,{"q":09}]}}"#,
            r#"{"a":1,"skip":{"deep":[1,2,{"q":"9999-12-31T24:00:00"}]}}"#,
            r#"{"a":1,"skip":{"deep":[1,2,{"q":"2017-03-09T00:00:00Z"}]}}"#,
            r#"{"a":1,"skip":[0x1F, 012, .5, 5., -Infinity, /* c */ new D(1,,2)]}"#,
            r#"{"a":1,"skip":[1e, 2]}"#,
            r#"{"a":1,"skip":{q: 1, 'r': [1,],}, "x": 007}"#,
            r#"{"a":1,"skip":{"q" 1}}"#,
            r#"{"a":1,"skip":[1 2]}"#,
            r#"{"a":1,"skip":[1]]}"#,
            "{\"a\":1,\"skip\":{\"u\\u00e9\":\"\\u12\"}}",
            "{\"a\":1,\"skip\":[1,\u{2003}2\u{a0}],\"x\":3\u{2003}}",
        ] {
            check(text, PATHS);
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(63), "]".repeat(63));
        check(&deep, PATHS);
        let too_deep = format!("{{\"a\":{}{}}}", "[".repeat(64), "]".repeat(64));
        check(&too_deep, PATHS);
        let too_deep_skipped = format!("{{\"s\":{}{}}}", "[".repeat(64), "]".repeat(64));
        check(&too_deep_skipped, PATHS);
        let deep_skipped = format!("{{\"s\":{}{},\"x\":1}}", "[".repeat(63), "]".repeat(63));
        check(&deep_skipped, PATHS);
    }

    /// Value tokens for the skip loop in quiet containers
    /// (`Parser::skip_quiet`): strict JSON it reads itself, and every
    /// leniency and error it must leave to the general parser.
    const SKIP_VALUES: &[&str] = &[
        "1",
        "-0",
        "0",
        "-12.5e+3",
        "1E-2",
        "123456789012345678901234567890",
        "1e400",
        "true",
        "false",
        "null",
        "\"\"",
        "\"s\"",
        "\"\\u0041\\n\\\"\\/\\'\"",
        "\"\\ud83d\\ude00\\ud83d\"",
        "\"M\u{fc}nchen \u{1F600}\"",
        "{}",
        "[]",
        "{ }",
        "[ ]",
        "\"2017-03-09T00:00:00Z\"",
        "\"9999-12-31T24:00:00\"",
        "\"9999-12-31T23:00:00\"",
        "\"\\u0039999-12-31T24:00:00\"",
        "\"999\\u0039-12-31T24:00:00\"",
        "\"/Date(1234)/\"",
        "\"/Date(99999999999999999)/\"",
        "\"\\/Date(99999999999999999)/\"",
        "\"/x\"",
        "\"12\\u0033\"",
        // Leniencies.
        "'s'",
        "'it\\'s'",
        "NaN",
        "Infinity",
        "-Infinity",
        "undefined",
        "0x1F",
        "012",
        "-012",
        ".5",
        "5.",
        "1e5x",
        "new D(1, [2])",
        "new D()",
        "/* c */ 1",
        "1 /* c */",
        "1 // c\n",
        "[1,,2]",
        "[1,]",
        "{\"k\":1,}",
        "{k: 1}",
        "{'k': 1}",
        "{\"k\" : 1 , \"k\":2}",
        "\u{a0}1\u{2003}",
        "\u{0}1\u{0}",
        "\t\r\n 1 \u{b}\u{c}",
        // Errors.
        "tru",
        "nul",
        "truex",
        "null1",
        "true\"x\"",
        "1.5.3",
        "12\"a\"",
        "1:2",
        "1e",
        "1.",
        "-",
        "--1",
        "1-",
        "0x",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"abc",
        "'abc",
        "\"\\",
        "{\"k\" 1}",
        "{\"k\":}",
        "{1:2}",
        "[1 2]",
        "[1]]",
        "{\"k\":1]",
        "[1}",
        "}",
        "]",
        ")",
        ",",
        "{,}",
        "[,]",
        "new",
        "{\"k\":1",
        "\"9999-12-31T24:00:00\u{1}",
        "1\u{1}",
        "true\u{1}",
        "\u{1}",
    ];

    /// Every prefix of a document (a message cut off anywhere) is read as the general parser
    /// reads it: the scanner's "cut off after strict JSON" answers invalid without the
    /// general parser, which must agree, and a cut into a leniency is still the parser's.
    #[test]
    fn agrees_with_select_on_every_prefix() {
        for text in [
            r#"{"a":{"b":[1,2.5e-3,{"c":"x\u00e9\n"}]},"x":true,"y":{"z":null},"w":false}"#,
            "{ \"a\" : { \"b\" : [ 1 , -20 , { \"c\" : \"M\u{fc}nchen\" } ] } , \"x\" : \"s\" }",
            r#"{"x":"2017-03-09T00:00:00Z","a":{"b":[{"c":1}]},"q":"\ud83d\ude00"}"#,
            "{a: {b: [1,,{c: 0x10}]}, 'x': 'it''s' /* c */}",
        ] {
            for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
                check(&text[..end], PATHS);
            }
        }
    }

    /// Paths deeper than the containers the scanner keeps open itself (16), and subtrees
    /// nested to and past `MAX_DEPTH` on a recorded path and beside one: the general parser
    /// takes over where the scanner is unsure, with the same answers.
    #[test]
    fn agrees_with_select_on_deep_paths() {
        for depth in [14, 15, 16, 17, 18, 40, 63, 64, 65] {
            let path = vec!["a"; depth].join(".");
            let nested =
                |inner: &str| format!("{}{inner}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            for inner in [
                "1",
                "[1,{\"b\":2}]",
                "\"9999-12-31T24:00:00\"",
                "{} ,",
                "[1,",
            ] {
                let text = nested(inner);
                check(&text, &[&path, "a", "a.a", "x"]);
                let beside = format!("{{\"x\":{text},\"a\":{{\"a\":3}}}}");
                check(&beside, &[&path, "a.a", "x"]);
            }
            let arrays = format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
            let index = format!("a{}", "[0]".repeat(depth));
            check(&arrays, &[&index, "a", "a[0][0]"]);
        }
    }

    #[test]
    fn agrees_with_select_in_skipped_subtrees() {
        // Where a token can sit in a subtree no path reads.
        let frames = [
            "{\"a\":1,\"s\":@}",
            "{\"a\":1,\"s\":@,\"x\":2}",
            "{\"s\":[@],\"x\":2}",
            "{\"s\":[1,@],\"x\":2}",
            "{\"s\":[@,1],\"x\":2}",
            "{\"s\":{\"k\":@},\"x\":2}",
            "{\"s\":{\"k\":[{\"m\":@}],\"j\":{}},\"x\":2}",
            "{\"s\":{\"k\":[{\"m\":[@]}]},\"y\":{\"z\":@}}",
            "{\"a\":{\"b\":[0,1,2,[@],{\"c\":1,\"d\":@}]},\"x\":{\"q\":@}}",
            "{\"s\":{@:1},\"x\":2}",
            "{\"s\":new D(@),\"x\":2}",
            "{\"s\":[@ ] }",
            "{\"s\":[@]",
            "{\"s\":[@",
            // Unwanted names at recorded levels (`Build::wants_key`): the
            // value is skipped without being reported, whatever the name's
            // form, and a later wanted name still records.
            "{\"a\":{\"s\":@,\"b\":[1]},\"x\":2}",
            "{\"a\":{\"b\":[1],\"s\":@},\"x\":2}",
            "{\"y\":{\"q\":@,\"z\":1},\"y\":{\"q\":@}}",
            "{s:@,\"x\":2}",
            "{'s':@,\"x\":2}",
            "{/*c*/\"s\":@,\"x\":2}",
            "{\"s\" : @ ,\"x\":2}",
            "{\"\\u0073\":@,\"x\":2}",
            "{\"x\":@,\"x\":2}",
            "{\"xx\":@,\"\":@,\"y\":{\"zz\":@,\"z\":@}}",
            "{\"s\":@",
            "{\"s\":@}",
        ];
        for frame in frames {
            for v in SKIP_VALUES {
                check(&frame.replace('@', v), PATHS);
            }
        }
        // Depth exactly 64 and 65 inside skipped subtrees, with every kind
        // of container and strict or lenient content at the bottom.
        for inner in ["", "1", "'x'", "{}", "[]", "/**/", "NaN", "\"k\":1"] {
            for depth in [62usize, 63, 64] {
                for (open, close) in [("[", "]"), ("{\"k\":", "}"), ("[{\"k\":", "}]")] {
                    let n = depth / open.matches(['[', '{']).count();
                    let body = format!("{}{}{}", open.repeat(n), inner, close.repeat(n));
                    check(&format!("{{\"s\":{body},\"x\":1}}"), PATHS);
                    check(
                        &format!("{{\"a\":{{\"b\":[0,1,2,{body}]}},\"x\":1}}"),
                        PATHS,
                    );
                    check(&format!("{{\"s\":new D({body}),\"x\":1}}"), PATHS);
                    check(&format!("{{\"a\":{{\"s\":{body}}},\"x\":1}}"), PATHS);
                    check(&format!("{{\"y\":{{\"q\":[{body}]}},\"x\":1}}"), PATHS);
                }
            }
        }
    }

    /// Strings read 16 bytes at a time: names and values (recorded and skipped, strict and
    /// lenient) whose closing quote or escape falls at every offset of the first blocks, and
    /// documents cut off or ending at every distance from a string's end, agree with the
    /// general parser.
    #[test]
    fn agrees_with_select_at_string_block_boundaries() {
        let frames = [
            "{\"x\":@,\"a\":{\"b\":[1]}}",
            "{\"s\":{\"k\":@,\"j\":[@]},\"x\":2}",
            "{\"s\":{@:1},\"x\":@}",
            "{\"a\":{\"b\":[0,@,{\"c\":@}]}}",
            "{\"x\":@}",
        ];
        for len in 0..36 {
            let filler: String = (0..len)
                .map(|k| ['a', '\u{e9}', '9', '/', ' '][k % 5])
                .collect();
            for special in ["", "\\n", "\\\"", "\\u0041", "\\q", "\\u12G4"] {
                for at in [0, len] {
                    let byte = filler
                        .char_indices()
                        .nth(at)
                        .map_or(filler.len(), |(i, _)| i);
                    let v = format!("\"{}{special}{}\"", &filler[..byte], &filler[byte..]);
                    for frame in frames {
                        let text = frame.replace('@', &v);
                        check(&text, PATHS);
                        // Cut off inside or just after the last string.
                        for cut in text.len().saturating_sub(3)..text.len() {
                            if text.is_char_boundary(cut) {
                                check(&text[..cut], PATHS);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Random documents mostly in skipped subtrees, built from strict and
    /// lenient fragments, whitespace of every kind, and truncated or
    /// corrupted at a random point.
    #[test]
    fn agrees_with_select_on_random_skipped_documents() {
        let mut r = Rng(0x2545_F491_4F6C_DD1D);
        let ws = ["", " ", "\n", "\t", "\u{0}", "\u{a0}", "/*c*/", "//c\n"];
        let keys = [
            "\"a\"",
            "\"x\"",
            "\"s\"",
            "\"k\"",
            "'x'",
            "k",
            "\"\\u0061\"",
        ];
        fn gen(r: &mut Rng, depth: u32, out: &mut String, ws: &[&str], keys: &[&str]) {
            let w = |r: &mut Rng| {
                if r.below(4) == 0 {
                    ws[r.below(ws.len() as u64) as usize]
                } else {
                    ""
                }
            };
            match r.below(if depth > 6 { 2 } else { 5 }) {
                0 | 1 => out.push_str(SKIP_VALUES[r.below(40) as usize]),
                2 | 3 => {
                    out.push('{');
                    for i in 0..r.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(w(r));
                        out.push_str(keys[r.below(keys.len() as u64) as usize]);
                        out.push_str(w(r));
                        out.push(':');
                        out.push_str(w(r));
                        gen(r, depth + 1, out, ws, keys);
                        out.push_str(w(r));
                    }
                    out.push('}');
                }
                _ => {
                    out.push('[');
                    for i in 0..r.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(w(r));
                        gen(r, depth + 1, out, ws, keys);
                        out.push_str(w(r));
                    }
                    out.push(']');
                }
            }
        }
        for _ in 0..3000 {
            let mut text = String::from("{\"a\":{\"b\":[0,1,2,");
            gen(&mut r, 0, &mut text, &ws, &keys);
            text.push_str("]},\"s\":");
            gen(&mut r, 0, &mut text, &ws, &keys);
            text.push_str(",\"x\":1}");
            check(&text, PATHS);
            // Truncated, or with one byte replaced.
            let cut = r.below(text.len() as u64) as usize;
            if text.is_char_boundary(cut) {
                check(&text[..cut], PATHS);
                if let Some(c) = text[cut..].chars().next() {
                    let bad = ["", "\"", "\\", "}", "]", ",", "'", "/", "\u{0}", "x"];
                    let bad = bad[r.below(bad.len() as u64) as usize];
                    check(
                        &format!("{}{}{}", &text[..cut], bad, &text[cut + c.len_utf8()..]),
                        PATHS,
                    );
                }
            }
        }
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    fn value(r: &mut Rng, depth: u32, out: &mut String) {
        let keys = ["a", "b", "c", "x", "y", "z", "n", "d"];
        match r.below(if depth > 4 { 6 } else { 9 }) {
            0 => out.push_str(["1", "-2.5", "0x1F", "1e3", "NaN", "007"][r.below(6) as usize]),
            1 => out.push_str(["true", "false", "null", "undefined"][r.below(4) as usize]),
            2 => out.push_str(
                ["\"s\"", "'t'", "\"\\u0041\"", "\"2017-03-09T00:00:00Z\""][r.below(4) as usize],
            ),
            3 => {}
            4 => out.push_str(["\"x\"", "1", "{}", "[]"][r.below(4) as usize]),
            5 if r.below(20) == 0 => out.push_str(["}", "]", ",,", "tru"][r.below(4) as usize]),
            5 => out.push('0'),
            6 | 7 => {
                out.push('{');
                for i in 0..r.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(keys[r.below(keys.len() as u64) as usize]);
                    out.push_str("\":");
                    value(r, depth + 1, out);
                }
                out.push('}');
            }
            _ => {
                out.push('[');
                for i in 0..r.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    value(r, depth + 1, out);
                }
                out.push(']');
            }
        }
    }

    #[test]
    fn agrees_with_select_on_random_documents() {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let paths: Vec<String> = {
            let mut v: Vec<String> = PATHS.iter().map(|s| s.to_string()).collect();
            for _ in 0..40 {
                let mut p = String::new();
                for i in 0..=r.below(4) {
                    if r.below(3) == 0 && i > 0 {
                        p.push_str(&format!("[{}]", r.below(3)));
                    } else {
                        if i > 0 {
                            p.push('.');
                        }
                        p.push_str(["a", "b", "c", "x", "y", "z", "n", "d"][r.below(8) as usize]);
                    }
                }
                v.push(p);
            }
            v
        };
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        for _ in 0..3000 {
            let mut text = String::from("{");
            for i in 0..r.below(6) {
                if i > 0 {
                    text.push(',');
                }
                text.push('"');
                text.push_str(["a", "b", "c", "x", "y", "z", "n", "d"][r.below(8) as usize]);
                text.push_str("\":");
                value(&mut r, 1, &mut text);
            }
            text.push('}');
            check(&text, &paths);
        }
    }
}
