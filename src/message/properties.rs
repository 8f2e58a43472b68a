//! Property bags with the engine's case-insensitive names.
//!
//! The engine copies both property dictionaries into .NET dictionaries with
//! `StringComparer.OrdinalIgnoreCase` (`Message.cs:49-50`, conformance rule
//! R01), so `$ContentType` finds `contentType`. Bags are small, so a vector
//! with a linear scan beats hashing and keeps the insertion order for output;
//! a bag that grows past [`INDEX_FROM`] names also gets a hash index, so that a
//! message with tens of thousands of properties (still under 256 KB) loads in
//! linear time instead of quadratic (found by fuzzing: 40,000 names took 9 s).

use crate::bytes::bytes_eq;
pub use crate::dotnet::eq_ignore_case;
use std::collections::HashMap;

/// Size from which a bag keeps a hash index of its folded names.
pub const INDEX_FROM: usize = 32;

/// FNV-1a over the name folded as `OrdinalIgnoreCase` folds it, so that names
/// equal under [`eq_ignore_case`] hash alike. No allocation for ASCII names.
fn folded_hash(name: &str) -> u64 {
    let step = |h: u64, b: u8| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    let seed = 0xcbf2_9ce4_8422_2325;
    if name.is_ascii() {
        name.bytes()
            .fold(seed, |h, b| step(h, b.to_ascii_uppercase()))
    } else {
        crate::dotnet::fold_ignore_case(name)
            .bytes()
            .fold(seed, step)
    }
}

/// Whether two ASCII byte strings are equal up to ASCII case. Names are
/// usually spelled the same in a route and a message, so they are first
/// compared exactly, in place ([`bytes_eq`]); only names that differ are
/// compared with case folding.
#[inline]
fn eq_ascii_fold(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (bytes_eq(a, b) || a.eq_ignore_ascii_case(b))
}

/// A property bag: names compare case-insensitively (.NET
/// `OrdinalIgnoreCase`), insertion order is kept, and a value may be `null`
/// (present but null, which the engine distinguishes from absent).
#[derive(Debug)]
pub struct Properties {
    entries: Vec<(String, Option<String>)>,
    /// Emptied value strings of entries [`Properties::clear`] dropped, reused by
    /// [`Properties::insert_str`] (names stay in `kept`): a bag refilled for each message of
    /// a stream keeps its strings' memory instead of allocating every name and value again.
    spare: Vec<String>,
    /// Whether every name is ASCII (kept in step with `entries`), so that a
    /// lookup of an ASCII name can compare with plain ASCII case folding
    /// without re-checking each name ([`Properties::names_ascii`]).
    ascii: bool,
    /// Whether some name may start with `$` (set on insert; a removal leaves it set): see
    /// [`Properties::may_have_dollar_name`].
    dollar: bool,
    /// Whether every name is [`plain`] (kept in step with `entries`): [`Properties::clear`]
    /// then keeps each name as one a line can hold unescaped, without looking at it.
    plain: bool,
    /// For bags of [`INDEX_FROM`] names or more: folded-name hash → positions.
    index: Option<HashMap<u64, Vec<usize>>>,
    /// [`scan_key`] of each name, in step with `entries`: an ASCII lookup
    /// scans these packed words (rejecting nearly every name in one
    /// comparison) instead of loading each name's length and first byte
    /// through its `String`.
    keys: Vec<u64>,
    /// Bit [`key_bit`] of every name's key (a removal leaves its bit set): an ASCII name
    /// whose bit is clear is not in the bag, so inserting a new name into an ASCII bag
    /// mostly skips the scan for a duplicate.
    bloom: u64,
    /// The names (with their keys and whether they are [`plain`]) that the entries held at each position
    /// before [`Properties::clear`]: a stream's messages mostly carry the same names in the
    /// same order (some left out or added), so [`Properties::insert_line_name_found`] takes a kept
    /// name back when the next name is the same text, instead of hashing and copying it. A
    /// taken slot is left empty with the key [`TAKEN`] (no name has it).
    kept: Vec<(String, u64, bool)>,
    /// Where in `kept` the next name is looked for: after the last one taken.
    kept_cursor: usize,
    /// How many entries were taken back from `kept` since [`Properties::clear`]
    /// (`usize::MAX` after a removal), and the end of the `kept` positions they came from:
    /// when every entry was taken back from the first positions (a message with the last
    /// one's names in its order, or fewer), the kept names after them are as tidy as the
    /// last clear left them, and `clear` skips tidying them.
    reused: usize,
    reused_end: usize,
    /// Kept names no longer kept (the next message had other names), for names copied in:
    /// names and values keep to separate strings, so each string's capacity settles at its
    /// role's length within a few messages instead of moving between short names and long
    /// values.
    spare_names: Vec<String>,
}

/// Whether a JSON string holding `name` needs no escape: ASCII without `"`, `\\` or control
/// characters (a name a line holds as it is).
fn plain(name: &str) -> bool {
    name.bytes()
        .all(|b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
}

/// Whether `rest` (a line from just after a string's opening quote) holds the name of a kept
/// slot (one not taken, and [`plain`]) and then the closing quote, for
/// [`Properties::kept_match`]. A function always inlined rather than a closure: the closure
/// was called, not inlined, at the cursor's slot, and its call cost as much as the test.
#[inline(always)]
fn kept_opens((k, key, plain): &(String, u64, bool), rest: &[u8]) -> bool {
    let n = k.len();
    rest.get(n) == Some(&b'"') && *plain && *key != TAKEN && bytes_eq(&rest[..n], k.as_bytes())
}

/// The key of a [`Properties::kept`] slot whose name was taken ([`scan_key`] never gives it).
const TAKEN: u64 = u64::MAX;

/// How many names [`Properties::clear`] keeps (those of the message cleared, when it had more).
const KEPT_MAX: usize = 32;

/// How many kept names from the cursor on [`Properties::kept_find`] tries: a message without
/// one of the last message's optional properties still finds the rest.
const KEPT_WINDOW: usize = 3;

/// A name's length (top 16 bits, saturated) and a 48-bit hash of its bytes folded towards
/// lower case (`| 0x20`), packed: two ASCII names equal up to case have equal keys, so
/// unequal keys rule a name out without comparing it, and different names nearly never
/// have equal keys. (A key of four of the name's bytes, used before, was equal for
/// `connectionDeviceId` and `connectionModuleId`, so every message's device id was compared
/// in full with the module id a route table reads.) Never `u64::MAX`.
#[inline]
fn scan_key(name: &str) -> u64 {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let b = name.as_bytes();
    let mut h = 0u64;
    let step = |h: u64, w: u64| (h ^ (w | FOLD)).wrapping_mul(K).rotate_left(29);
    // Eight bytes at a time, the last word padded with zeros. Whole words are loaded as
    // such and the last one's bytes shifted in (a copy of a variable length into a padded
    // word was a `memcpy` call per name, most of a lookup's cost).
    let mut words = b.chunks_exact(8);
    for chunk in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        h = step(h, u64::from_le_bytes(w));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let w = rest
            .iter()
            .rev()
            .fold(0u64, |w, &byte| (w << 8) | u64::from(byte));
        h = step(h, w);
    }
    h ^= h >> 31;
    h = h.wrapping_mul(K);
    h ^= h >> 29;
    ((b.len().min(0xFFFE) as u64) << 48) | (h & 0xFFFF_FFFF_FFFF)
}

/// [`scan_key`] at compile time (the same key, byte by byte), for [`KeyedName`].
const fn scan_key_const(name: &str) -> u64 {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let b = name.as_bytes();
    let mut h = 0u64;
    let mut i = 0;
    while i < b.len() {
        let mut w = 0u64;
        let mut j = 0;
        while j < 8 && i + j < b.len() {
            w |= (b[i + j] as u64) << (8 * j);
            j += 1;
        }
        h = (h ^ (w | FOLD)).wrapping_mul(K).rotate_left(29);
        i += 8;
    }
    h ^= h >> 31;
    h = h.wrapping_mul(K);
    h ^= h >> 29;
    let len = if b.len() < 0xFFFE { b.len() } else { 0xFFFE };
    ((len as u64) << 48) | (h & 0xFFFF_FFFF_FFFF)
}

/// A fixed ASCII name with its [`scan_key`] worked out at compile time: the names every
/// message is checked for (`messageId`, the creation time) are looked up without hashing
/// them each time, and a bag without the name mostly says so by one bloom test.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedName {
    name: &'static str,
    key: u64,
}

impl KeyedName {
    /// `name`, which must be ASCII.
    pub(crate) const fn new(name: &'static str) -> Self {
        assert!(name.is_ascii());
        KeyedName {
            name,
            key: scan_key_const(name),
        }
    }

    /// The name.
    pub(crate) const fn name(&self) -> &'static str {
        self.name
    }
}

impl Default for Properties {
    fn default() -> Self {
        Properties {
            entries: Vec::new(),
            spare: Vec::new(),
            ascii: true,
            dollar: false,
            plain: true,
            index: None,
            keys: Vec::new(),
            bloom: 0,
            kept: Vec::new(),
            kept_cursor: 0,
            reused: 0,
            reused_end: 0,
            spare_names: Vec::new(),
        }
    }
}

/// A clone has the entries only, not the spare and kept strings kept for reuse.
impl Clone for Properties {
    fn clone(&self) -> Self {
        Properties {
            entries: self.entries.clone(),
            spare: Vec::new(),
            ascii: self.ascii,
            dollar: self.dollar,
            plain: self.plain,
            index: self.index.clone(),
            keys: self.keys.clone(),
            bloom: self.bloom,
            kept: Vec::new(),
            kept_cursor: 0,
            reused: 0,
            reused_end: 0,
            spare_names: Vec::new(),
        }
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Properties {}

impl Properties {
    /// An empty bag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `name` is. When it and every name in the bag are ASCII, equality
    /// under `OrdinalIgnoreCase` is equal length and equality up to ASCII case,
    /// tested first on the first byte folded to lower case (equal for any two
    /// ASCII-case-equal bytes); otherwise the full comparison.
    #[inline]
    fn position(&self, name: &str) -> Option<usize> {
        self.position_known(name, name.is_ascii())
    }

    /// [`Properties::position`] given whether `name` is ASCII (`name_ascii`
    /// must be `name.is_ascii()`), for a caller that worked it out once.
    #[inline]
    fn position_known(&self, name: &str, name_ascii: bool) -> Option<usize> {
        debug_assert_eq!(name_ascii, name.is_ascii());
        if let Some(index) = &self.index {
            return index
                .get(&folded_hash(name))?
                .iter()
                .copied()
                .find(|&i| eq_ignore_case(&self.entries[i].0, name));
        }
        if self.ascii && name_ascii {
            return self.position_ascii(name);
        }
        self.entries
            .iter()
            .position(|(n, _)| eq_ignore_case(n, name))
    }

    /// [`Properties::position`] for an ASCII `name` in a bag of ASCII names
    /// without an index.
    #[inline]
    fn position_ascii(&self, name: &str) -> Option<usize> {
        self.position_keyed(scan_key(name), name.as_bytes())
    }

    /// Where the ASCII name `nb`, whose [`scan_key`] is `key`, is in a bag of ASCII names
    /// without an index: the keys compared first, the names only where they agree.
    #[inline]
    fn position_keyed(&self, key: u64, nb: &[u8]) -> Option<usize> {
        self.find_keyed(key, nb).map(|(i, _)| i)
    }

    /// [`Properties::position_keyed`] with the entry's value.
    #[inline]
    fn find_keyed(&self, key: u64, nb: &[u8]) -> Option<(usize, &Option<String>)> {
        self.keys
            .iter()
            .zip(&self.entries)
            .enumerate()
            .find(|(_, (&k, (n, _)))| k == key && eq_ascii_fold(n.as_bytes(), nb))
            .map(|(i, (_, (_, v)))| (i, v))
    }

    /// Gives entry `i` `value`, keeping the replaced value's memory for a later value.
    #[inline]
    fn replace_value(&mut self, i: usize, value: Option<String>) {
        if let Some(old) = std::mem::replace(&mut self.entries[i].1, value) {
            self.spare.push(old);
        }
    }

    /// Sets `name` to `value`. A name already present in another case keeps
    /// its position and original spelling and takes the new value.
    pub fn insert(&mut self, name: impl Into<String>, value: Option<String>) {
        let name = name.into();
        match self.position(&name) {
            Some(i) => self.entries[i].1 = value,
            None => self.push_new(name, value, None),
        }
    }

    /// Appends `name`, which is not in the bag; `key` is its [`scan_key`] if known.
    fn push_new(&mut self, name: String, value: Option<String>, key: Option<u64>) {
        let ascii = name.is_ascii();
        let key = key.unwrap_or_else(|| scan_key(&name));
        self.plain &= plain(&name);
        self.push_known(name, value, key, ascii);
    }

    /// [`Properties::push_new`] given the name's key and whether it is ASCII (the caller
    /// keeps [`Properties::plain`] in step).
    #[inline]
    fn push_known(&mut self, name: String, value: Option<String>, key: u64, ascii: bool) {
        self.ascii &= ascii;
        self.dollar |= name.starts_with('$');
        self.bloom |= key_bit(key);
        let hash = self.index.as_ref().map(|_| folded_hash(&name));
        self.keys.push(key);
        self.entries.push((name, value));
        match (&mut self.index, hash) {
            (Some(index), Some(h)) => index.entry(h).or_default().push(self.entries.len() - 1),
            _ if self.entries.len() >= INDEX_FROM => self.reindex(),
            _ => {}
        }
    }

    /// Empties the bag, keeping the memory of its names and values for the next
    /// [`Properties::insert_str`]s: parsing a stream of messages into one reused bag
    /// allocates nothing once the bag has held its largest message.
    pub fn clear(&mut self) {
        let all_plain = self.plain;
        let n = self.entries.len();
        if self.kept.len() < n {
            self.kept.resize_with(n, || (String::new(), TAKEN, false));
        }
        // Backwards, so that the spare values are taken in the order they were held: the next
        // message's first value gets this one's first value's string, and a value's string
        // settles at that property's length.
        while let Some((name, value)) = self.entries.pop() {
            let i = self.entries.len();
            // The name stays at its position for the next message's name there; what was
            // kept there before and not taken (a name this message lacked, unless its key is
            // one of this message's: kept twice, the copy would never be taken) moves on past
            // this message's names.
            let plain = all_plain || self::plain(&name);
            let old = std::mem::replace(&mut self.kept[i], (name, self.keys[i], plain));
            if old.0.capacity() > 0 {
                if !self.has_key(old.1) {
                    self.kept.push(old);
                } else {
                    self.spare_names.push(old.0);
                }
            }
            if let Some(v) = value {
                self.spare.push(v);
            }
        }
        // This message's names stay kept, and after them names of earlier messages not taken
        // since, up to [`KEPT_MAX`] in all (a bag cleared again while empty keeps them):
        // application properties come and go from message to message, and a name taken back
        // costs a comparison where one copied in costs a hash and a copy. Strings kept for
        // names beyond that go to the spare names, so every string stays in use and a warm
        // stream allocates nothing.
        // Nothing to tidy when every name was taken back from the first `n` kept positions
        // (most messages of a stream): each of them now holds one of this message's names
        // (the loop above moved nothing on), and the kept names after them are those the last
        // tidy left, untouched: no taken slot among them, and none equal to a name taken back
        // (kept names are distinct).
        let tidy = !(self.reused == n && self.reused_end <= n && self.kept.len() <= KEPT_MAX);
        // When every name was taken back (from anywhere), none of the kept names left equals
        // one of this message's, so only the taken slots go.
        let dedup = self.reused != n;
        if tidy && n > 0 && self.kept.len() > n {
            let mut to = n;
            for from in n..self.kept.len() {
                let key = self.kept[from].1;
                if key != TAKEN && !(dedup && self.has_key(key)) {
                    if to != from {
                        self.kept.swap(to, from);
                    }
                    to += 1;
                }
            }
            for (s, _, _) in self.kept.drain(to.min(KEPT_MAX.max(n))..) {
                if s.capacity() > 0 {
                    self.spare_names.push(s);
                }
            }
        }
        self.keys.clear();
        self.bloom = 0;
        self.kept_cursor = 0;
        self.reused = 0;
        self.reused_end = 0;
        self.index = None;
        self.ascii = true;
        self.dollar = false;
        self.plain = true;
    }

    /// Whether a name of the bag has packed key `key` (its bloom bit first, which rules out
    /// nearly every other key at once).
    #[inline]
    fn has_key(&self, key: u64) -> bool {
        self.bloom & key_bit(key) != 0 && self.keys.contains(&key)
    }

    /// An empty string from the spare ones [`Properties::clear`] kept (or a new one), to be
    /// filled and given back to [`Properties::insert_spare`] or [`Properties::recycle`].
    pub(crate) fn take_spare(&mut self) -> String {
        let mut s = self.spare.pop().unwrap_or_default();
        s.clear();
        s
    }

    /// Keeps `s`'s memory for a later [`Properties::take_spare`].
    pub(crate) fn recycle(&mut self, s: String) {
        self.spare.push(s);
    }

    /// [`Properties::insert`] of a borrowed name and value, copied into spare strings.
    pub fn insert_str(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(|v| {
            let mut s = self.take_spare();
            s.push_str(v);
            s
        });
        self.insert_spare(name, value);
    }

    /// [`Properties::insert`] of a borrowed name (copied into a spare string when new) and a
    /// value taken from [`Properties::take_spare`]; a replaced value's memory is kept.
    pub(crate) fn insert_spare(&mut self, name: &str, value: Option<String>) {
        let (at, key) = self.find(name);
        match at {
            Some(i) => self.replace_value(i, value),
            None => self.push_spare(name, value, key),
        }
    }

    /// [`Properties::insert_spare`] of a name not in the bag; `Err(value)` (nothing inserted)
    /// when it is.
    pub(crate) fn insert_spare_absent(
        &mut self,
        name: &str,
        value: Option<String>,
    ) -> Result<(), Option<String>> {
        match self.find(name) {
            (Some(_), _) => Err(value),
            (None, key) => {
                self.push_spare(name, value, key);
                Ok(())
            }
        }
    }

    /// Where `name` is, byte for byte, among the ASCII names the bag held before
    /// [`Properties::clear`] and not yet taken: the few from the cursor on (the same order as
    /// the last message), then, when `anywhere`, all of them: application properties come
    /// in no fixed order, and a name compared by length first costs a few instructions where
    /// one copied in and hashed costs hundreds.
    #[inline]
    fn kept_find(&self, name: &str, anywhere: bool) -> Option<usize> {
        let from = self.kept_cursor.min(self.kept.len());
        let to = (from + KEPT_WINDOW).min(self.kept.len());
        let same = |j: &usize| {
            let (k, key, plain) = &self.kept[*j];
            *plain && *key != TAKEN && bytes_eq(k.as_bytes(), name.as_bytes())
        };
        let near = (from..to).find(same);
        if near.is_some() || !anywhere {
            return near;
        }
        (0..from).chain(to..self.kept.len()).find(same)
    }

    /// The kept name that `rest` (a line from just after a string's opening quote) starts
    /// with, followed by the closing quote: its [`Properties::kept_position`] and length,
    /// looked for near the cursor, then, when `anywhere`, among all kept names. A kept name is
    /// [`plain`], so those bytes are the whole string, unescaped: the line's name is found by
    /// comparisons (the quote at the name's length rules out most at once) instead of a scan
    /// for its end and another for the name.
    #[inline]
    pub(crate) fn kept_match(&self, rest: &[u8], anywhere: bool) -> Option<(usize, usize)> {
        if !self.ascii || self.index.is_some() {
            return None;
        }
        let same = |slot: &(String, u64, bool)| kept_opens(slot, rest);
        let kept = &self.kept;
        let from = self.kept_cursor.min(kept.len());
        // The name at the cursor first, compared in place: most of a line's names are the
        // last message's next one, and the search below is a call whose entry and exit cost
        // about as much as the comparison.
        if let Some((k, _, _)) = kept.get(from).filter(|k| same(k)) {
            return Some((from, k.len()));
        }
        // Then the rest of the window, or when `anywhere` everything after the cursor (a name
        // the last message lacked is among the names kept from earlier messages, after the
        // last message's), then before it: the order of the window, after it, before it.
        let next = (from + 1).min(kept.len());
        let to = if anywhere {
            kept.len()
        } else {
            (from + KEPT_WINDOW).min(kept.len())
        };
        let at = match kept[next..to].iter().position(same) {
            Some(p) => next + p,
            None if anywhere => kept[..from].iter().position(same)?,
            None => return None,
        };
        Some((at, kept[at].0.len()))
    }

    /// Where `name` is among the names the bag held before [`Properties::clear`] that
    /// [`Properties::insert_line_name_found`] takes back (when not in the bag already); only
    /// near the cursor unless `anywhere`.
    #[inline]
    pub(crate) fn kept_position(&self, name: &str, anywhere: bool) -> Option<usize> {
        if self.ascii && self.index.is_none() {
            self.kept_find(name, anywhere)
        } else {
            None
        }
    }

    /// [`Properties::insert_spare`] (`replace`) or [`Properties::insert_spare_absent`] (not
    /// `replace`: `Err(value)`, nothing inserted, when the name is present) of a name read
    /// from a message line. When the name is one the last message had near this position
    /// (anywhere for `replace`, application properties: [`Properties::kept_position`]) and
    /// no name in the bag can equal it (the bloom bit of its
    /// key is clear in an ASCII bag), that string and key are taken back: no hash, no scan,
    /// no copy.
    /// (The readers call [`Properties::insert_line_name_found`] with a position they looked
    /// for themselves; this is the tests' shorthand.)
    #[cfg(test)]
    pub(crate) fn insert_line_name(
        &mut self,
        name: &str,
        value: Option<String>,
        replace: bool,
    ) -> Result<(), Option<String>> {
        // Application properties (`replace`) are looked for among all the kept names.
        let found = self.kept_position(name, replace);
        self.insert_line_name_found(found, name, value, replace)
    }

    /// `insert_line_name` given `name`'s [`Properties::kept_position`], worked
    /// out with nothing inserted since (values may have been taken from the spare ones). The
    /// common case (a kept name taken back into a small bag) is inlined into the reader, with
    /// no result to pass back; the rest is [`Properties::insert_line_name_other`].
    #[inline(always)]
    pub(crate) fn insert_line_name_found(
        &mut self,
        found: Option<usize>,
        name: &str,
        value: Option<String>,
        replace: bool,
    ) -> Result<(), Option<String>> {
        if let Some(j) = found {
            if let Some(&(_, key, _)) = self.kept.get(j) {
                if self.bloom & key_bit(key) == 0
                    && self.index.is_none()
                    && self.entries.len() + 1 < INDEX_FROM
                {
                    let owned = self.take_kept(j);
                    // [`Properties::push_known`] of a kept name, which is plain (so ASCII):
                    // `ascii` and `plain` stay, and no index is built or needed.
                    self.dollar |= owned.as_bytes().first() == Some(&b'$');
                    self.bloom |= key_bit(key);
                    self.keys.push(key);
                    self.entries.push((owned, value));
                    return Ok(());
                }
            }
        }
        self.insert_line_name_other(found, name, value, replace)
    }

    /// Takes kept name `j` back (its slot marked taken, the cursor after it, counted as
    /// reused), for the two ways [`Properties::insert_line_name_found`] inserts it.
    #[inline(always)]
    fn take_kept(&mut self, j: usize) -> String {
        let owned = std::mem::take(&mut self.kept[j].0);
        self.kept[j].1 = TAKEN;
        self.kept_cursor = j + 1;
        self.reused = self.reused.wrapping_add(1);
        self.reused_end = self.reused_end.max(j + 1);
        owned
    }

    /// [`Properties::insert_line_name_found`] but for its inlined common case.
    #[inline(never)]
    fn insert_line_name_other(
        &mut self,
        found: Option<usize>,
        name: &str,
        value: Option<String>,
        replace: bool,
    ) -> Result<(), Option<String>> {
        if let Some(j) = found {
            let key = self.kept[j].1;
            // Either the bloom bit is clear (no name of the bag can equal it), or it is set by
            // another name nearly as often as by this one (a bag of 13 names sets a fifth of
            // the bits): then the bag's keys say whether the name is there, as `find` would
            // (the kept name is `name`, byte for byte, so `key` is its key; `found` means an
            // ASCII bag without an index). Absent, the kept name is taken back all the same,
            // instead of a copy, and the kept one left to tidy.
            let at = if self.bloom & key_bit(key) == 0 {
                None
            } else {
                self.position_keyed(key, name.as_bytes())
            };
            let Some(i) = at else {
                let owned = self.take_kept(j);
                self.push_known(owned, value, key, true);
                return Ok(());
            };
            // Present: replaced (its value's memory kept), or refused.
            if !replace {
                return Err(value);
            }
            self.replace_value(i, value);
            return Ok(());
        }
        if replace {
            self.insert_spare(name, value);
            Ok(())
        } else {
            self.insert_spare_absent(name, value)
        }
    }

    /// Appends `name` (copied into a spare string) with its [`scan_key`] if known.
    fn push_spare(&mut self, name: &str, value: Option<String>, key: Option<u64>) {
        let mut owned = match self.spare_names.pop() {
            Some(mut s) => {
                s.clear();
                s
            }
            None => self.take_spare(),
        };
        owned.push_str(name);
        self.push_new(owned, value, key);
    }

    /// [`Properties::position`], with `name`'s [`scan_key`] when it was worked out (so that
    /// inserting the name does not hash it again).
    #[inline]
    fn find(&self, name: &str) -> (Option<usize>, Option<u64>) {
        if self.index.is_none() && self.ascii && name.is_ascii() {
            let key = scan_key(name);
            if self.bloom & key_bit(key) == 0 {
                return (None, Some(key));
            }
            return (self.position_keyed(key, name.as_bytes()), Some(key));
        }
        (self.position(name), None)
    }

    /// Rebuilds the hash index from `entries`.
    fn reindex(&mut self) {
        let mut index: HashMap<u64, Vec<usize>> = HashMap::with_capacity(self.entries.len());
        for (i, (n, _)) in self.entries.iter().enumerate() {
            index.entry(folded_hash(n)).or_default().push(i);
        }
        self.index = Some(index);
    }

    /// Whether every name in the bag is ASCII. Two ASCII names are equal
    /// under `OrdinalIgnoreCase` exactly when they have the same length and
    /// are equal up to ASCII case, which is much cheaper to test.
    pub fn names_ascii(&self) -> bool {
        self.ascii
    }

    /// `None` when absent, `Some(None)` when present with a null value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.position(name).map(|i| self.entries[i].1.as_deref())
    }

    /// [`Properties::get`] when the caller knows whether `name` is ASCII
    /// (`name_ascii` must be `name.is_ascii()`): a route's property names
    /// are fixed, so the check is made once when it is compiled instead of
    /// on every lookup.
    #[inline]
    pub(crate) fn get_known(&self, name: &str, name_ascii: bool) -> Option<Option<&str>> {
        self.position_known(name, name_ascii)
            .map(|i| self.entries[i].1.as_deref())
    }

    /// [`Properties::get`] of a fixed name: in a bag of ASCII names without an index, its bloom
    /// bit and then the packed keys, with no hashing of the name.
    #[inline]
    pub(crate) fn get_keyed(&self, name: &KeyedName) -> Option<Option<&str>> {
        if self.index.is_some() || !self.ascii {
            return self.get(name.name);
        }
        if self.bloom & key_bit(name.key) == 0 {
            return None;
        }
        self.find_keyed(name.key, name.name.as_bytes())
            .map(|(_, v)| v.as_deref())
    }

    /// Removes `name` (in any case) and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Option<String>> {
        let removed = self.position(name).map(|i| {
            self.reused = usize::MAX;
            self.keys.remove(i);
            self.entries.remove(i).1
        });
        self.ascii = self.entries.iter().all(|(n, _)| n.is_ascii());
        self.plain = self.entries.iter().all(|(n, _)| plain(n));
        if removed.is_some() {
            self.index = None;
            if self.entries.len() >= INDEX_FROM {
                self.reindex();
            }
        }
        removed
    }

    /// Name/value pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the bag is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the bag may have a name that starts with `$`. `false` means it has none.
    /// Only such an application property can stand in for a `$body` path or a `$`-name
    /// (R11, R02), which a route reads at every such reference; messages almost never
    /// have one, so the check is a flag kept on insert (no name equals a `$` name up to
    /// case unless it starts with `$` too).
    #[inline]
    pub(crate) fn may_have_dollar_name(&self) -> bool {
        self.dollar
    }
}

/// A bag position meaning "absent", in [`NameSet::resolve`]'s output.
pub(crate) const ABSENT: u32 = u32::MAX;

/// Bags from which [`NameSet::resolve`] looks each name up on its own (a
/// hash index lookup) instead of walking every property.
const RESOLVE_WALK_MAX: usize = 64;

/// A fixed set of property names (a route table's), looked up together in
/// each message's bag: one walk over the bag's packed keys finds every name,
/// instead of one scan of the bag per name and per reference.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameSet {
    /// [`scan_key`] of each ASCII name (`u64::MAX`, which no name has, for
    /// the others), apart from the names so that matching walks one array.
    keys: Vec<u64>,
    names: Vec<Box<str>>,
    /// Bit [`key_bit`] of each ASCII name's key: most of a bag's properties
    /// are not looked up, and this rules them out in one test.
    bloom: u64,
    /// Open-addressed hash table of the ASCII names by key (index + 1; 0 is
    /// empty; a power of two, at most half full): a route table has tens of
    /// names, and comparing each bag property with every one of them was
    /// most of the cost of resolving a message's properties.
    table: Vec<u32>,
    /// The names that are not ASCII (rare), looked up one by one.
    non_ascii: Vec<usize>,
}

/// A bit (of 64) chosen by a packed key, for [`NameSet::bloom`].
#[inline(always)]
fn key_bit(key: u64) -> u64 {
    1 << (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// Where a key's probe sequence starts in a [`NameSet`] table of `size`
/// (a power of two) slots.
#[inline(always)]
fn key_home(key: u64, size: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & size.wrapping_sub(1)
}

impl NameSet {
    /// The set of `names`, in order: name `i` is position `i` of
    /// [`NameSet::resolve`]'s output.
    pub(crate) fn new<'n>(names: impl IntoIterator<Item = &'n str>) -> Self {
        let names: Vec<Box<str>> = names.into_iter().map(Into::into).collect();
        let keys: Vec<u64> = names
            .iter()
            .map(|n| if n.is_ascii() { scan_key(n) } else { u64::MAX })
            .collect();
        let bloom = keys
            .iter()
            .filter(|&&k| k != u64::MAX)
            .fold(0, |b, &k| b | key_bit(k));
        let size = (keys.len() * 2).next_power_of_two().max(8);
        let mut table = vec![0u32; size];
        for (j, &k) in keys.iter().enumerate().filter(|(_, &k)| k != u64::MAX) {
            let mut h = key_home(k, size);
            while table[h] != 0 {
                h = (h + 1) & (size - 1);
            }
            table[h] = j as u32 + 1;
        }
        let non_ascii = (0..keys.len()).filter(|&j| keys[j] == u64::MAX).collect();
        NameSet {
            keys,
            names,
            bloom,
            table,
            non_ascii,
        }
    }

    /// Number of names.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Writes into `out` (one per name) where each name is in `bag`, as
    /// [`Properties::get`] would find it, or [`ABSENT`].
    pub(crate) fn resolve(&self, bag: &Properties, out: &mut [u32]) {
        out.fill(ABSENT);
        if !bag.ascii || bag.entries.len() > RESOLVE_WALK_MAX {
            // Non-ASCII names fold by the full table, and a huge bag has a
            // hash index: look each name up as `get` does.
            for (slot, name) in out.iter_mut().zip(&self.names) {
                *slot = bag.position(name).map_or(ABSENT, |i| i as u32);
            }
            return;
        }
        for (i, &key) in bag.keys.iter().enumerate() {
            if self.bloom & key_bit(key) == 0 {
                continue;
            }
            // Several names of the set may equal one property up to case
            // (they share its key): follow the probe sequence to its end.
            let size = self.table.len();
            let mut h = key_home(key, size);
            while let Some(&entry) = self.table.get(h).filter(|&&e| e != 0) {
                let j = entry as usize - 1;
                if self.keys[j] == key
                    && eq_ascii_fold(bag.entries[i].0.as_bytes(), self.names[j].as_bytes())
                {
                    out[j] = i as u32;
                }
                h = (h + 1) & (size - 1);
            }
        }
        // Non-ASCII names may still equal an ASCII property through .NET's
        // case table (`ſ` and `K` fold to ASCII): ask `position`.
        for &j in &self.non_ascii {
            out[j] = bag.position(&self.names[j]).map_or(ABSENT, |i| i as u32);
        }
    }
}

impl Properties {
    /// The value at a position [`NameSet::resolve`] gave (`None` for
    /// [`ABSENT`]), as [`Properties::get`] returns it.
    #[inline]
    pub(crate) fn get_at(&self, position: u32) -> Option<Option<&str>> {
        self.entries
            .get(position as usize)
            .map(|(_, v)| v.as_deref())
    }
}

impl<N: Into<String>> FromIterator<(N, Option<String>)> for Properties {
    fn from_iter<T: IntoIterator<Item = (N, Option<String>)>>(iter: T) -> Self {
        let mut p = Properties::new();
        for (n, v) in iter {
            p.insert(n, v);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_keys_and_chunked_folding_agree_with_eq_ignore_case() {
        // Names of every length around the 8-byte chunks, differing in case
        // or in one byte at every position; removals keep the keys in step.
        let mut p = Properties::new();
        let base = "abcdefghijklmnopqrstuvwxy";
        for len in 0..=base.len() {
            p.insert(&base[..len], Some(len.to_string()));
        }
        p.insert("\u{e9}t\u{e9}", Some("e".into()));
        assert!(p.remove("ABC").is_some());
        assert!(p.remove("").is_some());
        let names: Vec<String> = p.iter().map(|(n, _)| n.to_string()).collect();
        for len in 0..=base.len() {
            for at in 0..len.max(1) {
                let mut upper = base[..len].to_string();
                let mut other = base[..len].to_string();
                if len > 0 {
                    upper.replace_range(at..at + 1, &base[at..at + 1].to_uppercase());
                    other.replace_range(at..at + 1, "!");
                }
                for probe in [upper, other, format!("{}\u{e9}", &base[..len])] {
                    let want = names
                        .iter()
                        .position(|n| eq_ignore_case(n, &probe))
                        .map(|i| p.iter().nth(i).unwrap().1);
                    assert_eq!(p.get(&probe), want, "{probe:?}");
                    assert_eq!(p.get_known(&probe, probe.is_ascii()), want, "{probe:?}");
                }
            }
        }
        assert_eq!(p.get("\u{c9}T\u{c9}"), Some(Some("e")));
        assert_eq!(p.get_known("\u{c9}T\u{c9}", false), Some(Some("e")));
    }

    /// Keys are equal for names equal up to case, and differ for the similar names of the
    /// system properties every message carries.
    #[test]
    fn keys_fold_case_and_tell_similar_names_apart() {
        assert_eq!(
            scan_key("connectionDeviceId"),
            scan_key("CONNECTIONdeviceID")
        );
        assert_eq!(scan_key(""), scan_key(""));
        let names = [
            "connectionDeviceId",
            "connectionModuleId",
            "connectionDeviceGenerationId",
            "contentType",
            "contentEncoding",
            "messageId",
            "correlationId",
        ];
        for (i, a) in names.iter().enumerate() {
            assert_ne!(scan_key(a), u64::MAX);
            for b in &names[i + 1..] {
                assert_ne!(scan_key(a), scan_key(b), "{a} {b}");
            }
        }
    }

    /// The `$`-name flag is set by any name starting with `$`, and only by such names.
    #[test]
    fn dollar_names_are_flagged() {
        let mut p = Properties::new();
        p.insert("contentType", None);
        p.insert("body.x$", Some("v".into()));
        assert!(!p.may_have_dollar_name());
        p.insert("$body.x", Some("v".into()));
        assert!(p.may_have_dollar_name());
        let q: Properties = [("$x", None)].into_iter().collect();
        assert!(q.may_have_dollar_name());
    }

    /// A name set finds exactly what `get` finds, for ASCII and non-ASCII
    /// names and bags, names equal up to case, and indexed bags.
    #[test]
    fn name_set_resolves_as_get() {
        let names = [
            "contentType",
            "CONTENTTYPE",
            "priority",
            "p",
            "",
            "Stra\u{df}e",
            "\u{17f}",
            "s",
            "k",
            "missing",
            "name3",
            "x",
        ];
        let set = NameSet::new(names);
        assert_eq!(set.len(), names.len());
        let mut bags: Vec<Properties> = vec![
            Properties::new(),
            [
                ("ContentType", None),
                ("Priority", Some("5".into())),
                ("", Some("e".into())),
            ]
            .into_iter()
            .collect(),
            [("S", Some("1".into())), ("P", None)].into_iter().collect(),
            [("\u{212a}", Some("2".into())), ("s", None)]
                .into_iter()
                .collect(),
            [
                ("STRASSE", Some("1".into())),
                ("stra\u{df}e", Some("2".into())),
                ("x", None),
            ]
            .into_iter()
            .collect(),
        ];
        bags.push((0..100).map(|i| (format!("Name{i}"), None)).collect());
        let mut out = vec![0; names.len()];
        for bag in &bags {
            set.resolve(bag, &mut out);
            for (name, &pos) in names.iter().zip(&out) {
                assert_eq!(bag.get_at(pos), bag.get(name), "{name:?}");
            }
        }
    }

    #[test]
    fn case_insensitive_lookup_and_replace() {
        let mut p = Properties::new();
        p.insert("ContentType", Some("a".into()));
        p.insert("other", None);
        p.insert("CONTENTTYPE", Some("b".into()));
        assert_eq!(p.len(), 2);
        assert_eq!(p.get("contenttype"), Some(Some("b")));
        assert_eq!(p.get("OTHER"), Some(None));
        assert_eq!(p.get("missing"), None);
        let names: Vec<_> = p.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["ContentType", "other"]);
        assert_eq!(p.remove("contentTYPE"), Some(Some("b".into())));
        assert_eq!(p.remove("contentTYPE"), None);
        assert!(!p.is_empty());
    }

    #[test]
    fn large_bags_are_indexed_and_behave_the_same() {
        let mut p = Properties::new();
        for i in 0..5_000 {
            p.insert(format!("Name{i}"), Some(i.to_string()));
        }
        p.insert("Straße", Some("x".into()));
        assert_eq!(p.len(), 5_001);
        assert_eq!(p.get("NAME4999"), Some(Some("4999")));
        assert_eq!(p.get("straße"), Some(Some("x")));
        p.insert("name7", None);
        assert_eq!(p.len(), 5_001, "same name in another case replaces");
        assert_eq!(p.get("Name7"), Some(None));
        assert_eq!(p.remove("NAME0"), Some(Some("0".into())));
        assert_eq!(
            p.get("name1"),
            Some(Some("1")),
            "positions reindexed after removal"
        );
        assert_eq!(p.get("name0"), None);
        let names: Vec<_> = p.iter().take(2).map(|(n, _)| n).collect();
        assert_eq!(names, ["Name1", "Name2"]);
        // 40,000 properties load quickly (this was quadratic).
        let json: String = (0..40_000)
            .map(|i| format!("\"p{i}\": \"\""))
            .collect::<Vec<_>>()
            .join(",");
        let m =
            crate::message::Message::from_json_str(&format!("{{\"appProperties\": {{{json}}}}}"))
                .unwrap();
        assert_eq!(m.app_properties.len(), 40_000);
    }

    /// Application properties come in no fixed order: a name the last message had anywhere
    /// is taken back, the bag holds what was inserted, and the kept names stay bounded.
    #[test]
    fn kept_names_are_found_in_any_order() {
        let mut p = Properties::new();
        let sets: [&[&str]; 3] = [
            &["a", "b", "opt1"],
            &["b", "opt1", "a"],
            &["opt1", "a", "b"],
        ];
        for _ in 0..4 {
            for set in sets {
                p.clear();
                for name in set {
                    let mut v = p.take_spare();
                    v.push_str(name);
                    assert!(p.insert_line_name(name, Some(v), true).is_ok());
                }
                let got: Vec<_> = p.iter().collect();
                let want: Vec<_> = set.iter().map(|&n| (n, Some(n))).collect();
                assert_eq!(got, want);
            }
        }
        // The last message's first name, looked for with the cursor past the window.
        p.clear();
        for name in ["b", "x", "y", "z"] {
            assert!(p.kept_position(name, false).is_none() || name == "b");
            assert!(p.insert_line_name(name, None, true).is_ok());
        }
        assert!(p.kept_position("opt1", false).is_none());
        assert!(p.kept_position("opt1", true).is_some());
        assert_eq!(p.insert_line_name("OPT1", None, false), Ok(()));
        assert_eq!(
            p.insert_line_name("B", None, false),
            Err(None),
            "a duplicate"
        );
        for i in 0..100 {
            p.clear();
            assert!(p.insert_line_name(&format!("n{i}"), None, true).is_ok());
            assert!(p.kept.len() <= KEPT_MAX, "{}", p.kept.len());
        }
    }

    /// `clear` keeps each name's very string at its position and gives the values' strings
    /// back first to last, for messages whose names come and go (so that kept names move on
    /// past the message's names); the names of earlier messages stay kept after them.
    #[test]
    fn clear_keeps_names_in_place_and_values_in_order() {
        let messages: [&[&str]; 5] = [
            &["a", "b", "opt1", "c"],
            &["a", "c"],
            &["opt2", "a", "b", "c", "opt1"],
            &["b\\x", "a"],
            &["a", "b", "opt1", "c"],
        ];
        let mut p = Properties::new();
        for round in 0..3 {
            for names in messages {
                for name in names {
                    let found = p.kept_position(name, true);
                    let mut v = p.take_spare();
                    v.push_str(name);
                    v.push_str("-value");
                    assert_eq!(p.insert_line_name_found(found, name, Some(v), true), Ok(()));
                }
                let held: Vec<(*const u8, *const u8)> = p
                    .entries
                    .iter()
                    .map(|(n, v)| (n.as_ptr(), v.as_ref().unwrap().as_ptr()))
                    .collect();
                p.clear();
                assert!(p.is_empty());
                for (j, (name_ptr, _)) in held.iter().enumerate() {
                    assert_eq!(p.kept[j].0.as_ptr(), *name_ptr, "{round} {names:?} {j}");
                    assert_eq!(p.kept[j].0, names[j]);
                    assert_eq!(p.kept[j].2, names[j] != "b\\x");
                }
                if round > 0 {
                    for name in ["a", "b", "c", "opt1", "opt2"] {
                        assert!(p.kept_position(name, true).is_some(), "{round} {name}");
                    }
                }
                let values: Vec<String> = held.iter().map(|_| p.take_spare()).collect();
                for (v, (_, value_ptr)) in values.iter().zip(&held) {
                    assert_eq!(v.as_ptr(), *value_ptr, "{round} {names:?}");
                }
                for v in values.into_iter().rev() {
                    p.recycle(v);
                }
            }
        }
    }

    /// `kept_match` finds what a plain search in its order finds (the window from the cursor,
    /// then, when `anywhere`, after it and before it), for every cursor, with taken slots, a
    /// name that is not plain, names that are prefixes of others and lines that hold a kept
    /// name without its closing quote.
    #[test]
    fn kept_match_finds_what_a_plain_search_finds() {
        let names = [
            "a",
            "ab",
            "abc",
            "b\\x",
            "contentType",
            "x",
            "connectionDeviceId",
            "",
        ];
        let mut p = Properties::new();
        for name in names {
            p.insert_str(name, None);
        }
        p.clear();
        // One taken slot: "x".
        let x = p.kept_position("x", true);
        assert!(x.is_some());
        assert_eq!(p.insert_line_name_found(x, "x", None, false), Ok(()));
        let reference = |p: &Properties, rest: &[u8], anywhere: bool| {
            let len = p.kept.len();
            let from = p.kept_cursor.min(len);
            let to = (from + KEPT_WINDOW).min(len);
            let rest_of: Vec<usize> = if anywhere {
                (to..len).chain(0..from).collect()
            } else {
                Vec::new()
            };
            (from..to).chain(rest_of).find_map(|j| {
                let (k, key, plain) = &p.kept[j];
                let n = k.len();
                (*plain
                    && *key != TAKEN
                    && rest.starts_with(k.as_bytes())
                    && rest.get(n) == Some(&b'"'))
                .then_some((j, n))
            })
        };
        let mut lines: Vec<String> = Vec::new();
        for name in names.iter().chain(&["abcd", "contenttype", "y"]) {
            lines.push(format!("{name}\":1"));
            lines.push(format!("{name}x\""));
            lines.push(name.to_string());
        }
        let mut found = 0;
        for cursor in 0..p.kept.len() + 2 {
            p.kept_cursor = cursor;
            for line in &lines {
                for anywhere in [false, true] {
                    let got = p.kept_match(line.as_bytes(), anywhere);
                    assert_eq!(
                        got,
                        reference(&p, line.as_bytes(), anywhere),
                        "{cursor} {line:?} {anywhere}"
                    );
                    found += usize::from(got.is_some());
                }
            }
        }
        assert!(found > 50, "{found}");
    }

    /// A keyed name finds what `get` finds, and its compile-time key is `scan_key`'s.
    #[test]
    fn keyed_names_find_what_get_finds() {
        const NAMES: [KeyedName; 4] = [
            KeyedName::new("messageId"),
            KeyedName::new("iothub-creation-time-utc"),
            KeyedName::new(""),
            KeyedName::new("connectionDeviceGenerationId"),
        ];
        for n in NAMES {
            assert_eq!(n.key, scan_key(n.name()), "{}", n.name());
        }
        let text = "connectionDeviceGenerationId-iothub-message-source";
        for start in 0..8 {
            for end in start..text.len() {
                assert_eq!(
                    scan_key_const(&text[start..end]),
                    scan_key(&text[start..end])
                );
            }
        }
        let mut bags: Vec<Properties> = vec![
            Properties::new(),
            [("MESSAGEID", Some("1".into())), ("x", None)]
                .into_iter()
                .collect(),
            [("messageid", None), ("\u{e9}", Some("2".into()))]
                .into_iter()
                .collect(),
            [("", Some("e".into()))].into_iter().collect(),
        ];
        bags.push((0..100).map(|i| (format!("Name{i}"), None)).collect());
        bags[4].insert("IOTHUB-creation-time-UTC", Some("t".into()));
        for bag in &bags {
            for n in &NAMES {
                assert_eq!(bag.get_keyed(n), bag.get(n.name()), "{}", n.name());
            }
        }
    }

    /// Names of earlier messages stay kept (not only the last message's), once each, up to
    /// [`KEPT_MAX`]: an optional property that comes back two messages later is taken back.
    #[test]
    fn names_of_earlier_messages_stay_kept_once() {
        let mut p = Properties::new();
        for round in 0..50 {
            for set in [
                &["a", "b", "opt1"][..],
                &["a", "b", "opt2"],
                &["a", "b", "opt3"],
            ] {
                p.clear();
                for name in set {
                    if round > 0 {
                        assert!(p.kept_position(name, true).is_some(), "{round} {name}");
                    }
                    assert!(p.insert_line_name(name, None, true).is_ok());
                }
                let names: Vec<_> = p
                    .kept
                    .iter()
                    .filter(|k| k.1 != TAKEN)
                    .map(|k| &k.0)
                    .collect();
                let mut distinct = names.clone();
                distinct.sort();
                distinct.dedup();
                assert_eq!(names.len(), distinct.len(), "{names:?}");
            }
        }
        for i in 0..100 {
            p.clear();
            assert!(p.insert_line_name(&format!("n{i}"), None, true).is_ok());
        }
        p.clear();
        assert!(p.kept.len() <= KEPT_MAX, "{}", p.kept.len());
    }

    /// The key of every length is the hash of the name's words padded with zeros.
    #[test]
    fn scan_key_hashes_zero_padded_words() {
        let reference = |name: &str| {
            let mut h = 0u64;
            for chunk in name.as_bytes().chunks(8) {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                h = (h ^ (u64::from_le_bytes(w) | 0x2020_2020_2020_2020))
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .rotate_left(29);
            }
            h ^= h >> 31;
            h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
            ((name.len() as u64) << 48) | (h & 0xFFFF_FFFF_FFFF)
        };
        let text = "connectionDeviceGenerationId-\u{e9}-iothub-message-source";
        for start in 0..8 {
            for end in start..text.len() {
                if let Some(name) = text.get(start..end) {
                    assert_eq!(scan_key(name), reference(name), "{name:?}");
                }
            }
        }
    }

    #[test]
    fn non_ascii_simple_case_mapping() {
        assert!(eq_ignore_case("Straße", "STRAßE"));
        assert!(!eq_ignore_case("straße", "STRASSE"));
        assert!(eq_ignore_case("ÄÖü", "äöÜ"));
        // .NET's OrdinalIgnoreCase table does not fold dotless i to I.
        assert!(!eq_ignore_case("applıcation", "APPLICATION"));
        assert!(!eq_ignore_case("a", "ab"));
        assert!(!eq_ignore_case("é", "e"));
    }
}
