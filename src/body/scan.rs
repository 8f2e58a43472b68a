//! The strict fast path of path extraction.
//!
//! Nearly every body a hub routes is plain RFC 8259 JSON. For those, the
//! general parser's state machine (frames, states, builder calls, the
//! leniency checks before each token) is most of the cost of routing. This
//! scanner reads strict JSON alone, in one loop over the bytes, records the
//! values of a [`PathSet`] exactly as the extractor does, and gives up
//! ([`scan`] returns [`Stop::Unsure`]) at the first byte that needs more than strict
//! JSON: a comment, a single quote, an unquoted name, a trailing comma or
//! empty slot, `NaN`, hex or octal, `new`, non-ASCII whitespace, an escape
//! in a recorded name or value, a string that might be a date that throws,
//! the 65th level, and every error. The caller then runs the general parser
//! from the start, so validity, every Json.NET leniency and `MaxDepth` stay
//! the general parser's; the scanner only ever answers for documents on
//! which both agree, and the extractor tests compare the two on strict and
//! lenient documents alike.

use super::doc::{Kind, Span};
use super::extract::{PathSet, NONE};
use super::number::parse_number;
use super::parse::{
    skipped_string_ok, strict_number, strict_string, string_kind, Stop, ASCII_WS, MAX_DEPTH,
};
use super::skip::skip_container;
use Stop::{Truncated, Unsure};

/// How many containers the scanner keeps open itself (see [`scan`]).
const LEVELS: usize = 16;

/// An open container.
#[derive(Clone, Copy, Default)]
struct Level {
    /// Its trie node, or [`NONE`] when nothing below it is recorded.
    trie: u32,
    /// Elements seen so far (arrays).
    count: u32,
    object: bool,
}

/// Skips ASCII whitespace as the general parser does (NUL included);
/// stops at anything else, including non-ASCII bytes. The skipper (`skip.rs`) uses it too.
#[inline(always)]
pub(super) fn ws(b: &[u8], pos: usize) -> usize {
    // Compact JSON has no whitespace at all, and most other JSON one space after each colon
    // and comma: one or two tests for the usual cases.
    match b.get(pos) {
        Some(&c) if c > b' ' => pos,
        Some(b' ') if b.get(pos + 1).is_some_and(|&c| c > b' ') => pos + 1,
        _ => ws_loop(b, pos),
    }
}

/// [`ws`] past the first byte.
#[inline]
fn ws_loop(b: &[u8], mut pos: usize) -> usize {
    while let Some(&c) = b.get(pos) {
        if c >= 0x80 || !ASCII_WS[c as usize] {
            break;
        }
        pos += 1;
    }
    pos
}

/// Reads strict-JSON `text` as `JObject.Parse` would and records `set`'s
/// values into `slots` (cleared, one per trie node). [`Stop::Unsure`]: the
/// text is not strict JSON the scanner answers for (see the module docs);
/// [`Stop::Truncated`]: it ends inside the document after nothing but strict
/// JSON (a cut-off message), so it is invalid without a second reading.
/// `slots` is then in an unspecified state.
///
/// Kept out of line: it runs once per message, so inlining it into its caller saves nothing,
/// and LLVM's choice to do so or not flipped with unrelated edits, moving instruction counts
/// by a few hundred per message between otherwise equal builds.
#[inline(never)]
pub(super) fn scan(set: &PathSet, text: &str, slots: &mut [Option<Kind>]) -> Result<(), Stop> {
    let b = text.as_bytes();
    u32::try_from(b.len()).map_err(|_| Unsure)?;
    // The containers this loop reads itself: those on a recorded path and those the skipper
    // left to it. A body nests further than this only in subtrees the skipper validates (to
    // `MAX_DEPTH`); past it the scanner is unsure and the general parser decides. A stack of
    // `MAX_DEPTH` levels was zeroed on every call, ~130 stores per message.
    let mut levels = [Level::default(); LEVELS];
    let mut depth = 0;
    let mut pos = ws(b, 0);
    if b.get(pos) != Some(&b'{') {
        return Err(Unsure);
    }
    // The trie node of the value at `pos` (the root is node 0).
    let mut child = 0;
    loop {
        // A value at `pos`, whitespace already skipped.
        let c = *b.get(pos).ok_or(Truncated)?;
        match c {
            b'{' | b'[' => {
                if depth == LEVELS {
                    return Err(Unsure);
                }
                let object = c == b'{';
                let trie = open(set, slots, child, object);
                // A subtree no path reads is validated by the skipper's tighter loop when it
                // can answer for it (then the step after a value follows); otherwise it is
                // read token by token. An empty one (`[]`, `{}`: common) is not worth a call.
                let empty = if object { b'}' } else { b']' };
                let skipped = if trie == NONE && b.get(pos + 1) != Some(&empty) {
                    skip_container(text, pos, MAX_DEPTH - depth)
                } else {
                    None
                };
                if let Some(end) = skipped {
                    pos = end;
                } else {
                    levels[depth] = Level {
                        trie,
                        count: 0,
                        object,
                    };
                    depth += 1;
                    pos = ws(b, pos + 1);
                    if b.get(pos) == Some(&empty) {
                        pos += 1;
                        depth -= 1;
                    } else {
                        let top = &mut levels[depth - 1];
                        (pos, child) = next_value(set, text, pos, top)?;
                        continue;
                    }
                }
            }
            b'"' => {
                let (end, escaped) = strict_string(b, pos)?;
                if child != NONE {
                    if escaped {
                        return Err(Unsure);
                    }
                    let span = Span {
                        start: (pos + 1) as u32,
                        len: (end - pos - 2) as u32,
                        unescaped: false,
                    };
                    let kind = string_kind(&text[pos + 1..end - 1], span).map_err(|()| Unsure)?;
                    set.record(slots, child, kind);
                } else if !skipped_string_ok(text, pos, end, escaped) {
                    return Err(Unsure);
                }
                pos = end;
            }
            b't' | b'f' | b'n' => {
                // What follows is checked after the value: only whitespace, a comma or a
                // closing bracket may (the general parser's `strict_terminator`). The words
                // are compared as arrays, in place (a slice comparison called `memcmp`).
                let rest = &b[pos..];
                let (len, kind) = match c {
                    b't' if rest.first_chunk() == Some(b"true") => (4, Kind::Bool(true)),
                    b'f' if rest.first_chunk() == Some(b"false") => (5, Kind::Bool(false)),
                    b'n' if rest.first_chunk() == Some(b"null") => (4, Kind::Null),
                    _ => return Err(Unsure),
                };
                let end = pos + len;
                if child != NONE {
                    set.record(slots, child, kind);
                }
                pos = end;
            }
            b'-' | b'0'..=b'9' => {
                // (A number cut off after `.` or `e` is left to the general parser.)
                let end = strict_number(b, pos).ok_or(Unsure)?;
                if child != NONE {
                    // A strict literal is a plain decimal: the general parser
                    // converts it with the same function.
                    let v = parse_number(&text[pos..end]).unwrap_or(f64::NAN);
                    set.record(slots, child, Kind::Number(v));
                }
                pos = end;
            }
            _ => return Err(Unsure),
        }
        // After a value: a comma and the next value, or closing brackets.
        loop {
            if depth == 0 {
                return if ws(b, pos) == b.len() {
                    Ok(())
                } else {
                    Err(Unsure)
                };
            }
            pos = ws(b, pos);
            let top = &mut levels[depth - 1];
            match *b.get(pos).ok_or(Truncated)? {
                b',' => {
                    (pos, child) = next_value(set, text, ws(b, pos + 1), top)?;
                    break;
                }
                b'}' if top.object => {}
                b']' if !top.object => {}
                _ => return Err(Unsure),
            }
            pos += 1;
            depth -= 1;
        }
    }
}

/// Opens a container that is the value of trie node `child`: records it,
/// and returns the trie node its own values are looked up in ([`NONE`] when
/// no path goes below it).
#[inline(always)]
fn open(set: &PathSet, slots: &mut [Option<Kind>], child: u32, object: bool) -> u32 {
    if child == NONE {
        return NONE;
    }
    let kind = if object { Kind::Object } else { Kind::Array };
    set.record(slots, child, kind);
    if set.has_children(child) {
        child
    } else {
        NONE
    }
}

/// The start of the next value in container `top`, at `pos` (after `[`,
/// `{` or a comma, whitespace skipped), and its trie node: an array element
/// is counted, an object's property name and colon are read and the name
/// looked up.
#[inline(always)]
fn next_value(
    set: &PathSet,
    text: &str,
    pos: usize,
    top: &mut Level,
) -> Result<(usize, u32), Stop> {
    let b = text.as_bytes();
    if !top.object {
        let child = if top.trie == NONE {
            NONE
        } else {
            set.index(top.trie, top.count)
        };
        top.count += 1;
        return Ok((pos, child));
    }
    match b.get(pos) {
        Some(b'"') => {}
        Some(_) => return Err(Unsure),
        None => return Err(Truncated),
    }
    let (end, escaped) = strict_string(b, pos)?;
    let child = if top.trie == NONE {
        NONE
    } else if escaped {
        // The name must be unescaped to be looked up.
        return Err(Unsure);
    } else {
        set.field_in(top.trie, b, pos + 1, end - 1)
    };
    let colon = ws(b, end);
    match b.get(colon) {
        Some(b':') => Ok((ws(b, colon + 1), child)),
        Some(_) => Err(Unsure),
        None => Err(Truncated),
    }
}
