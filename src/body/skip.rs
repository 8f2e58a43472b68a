//! Skipping a container no path reads, for the strict scanner.
//!
//! Most of a body's bytes are in subtrees no route reads (`location`, `readings`, `alerts`,
//! `diagnostics.logs`, ...). They must still be validated, since invalid JSON anywhere makes
//! every value undefined, but nothing in them is recorded: no trie node to follow, no
//! element to count, no name to look up. [`skip_container`] reads such a subtree in a loop
//! that does only the validation, with the open containers as a bit stack, so that the
//! scanner's per-token bookkeeping (and the branches on it that the CPU mispredicted) is
//! paid only where a path leads.
//!
//! It answers only for subtrees it is sure of: `Some(end)` means the scanner, reading the
//! same bytes, would have accepted them as one strict container ending at `end`; any doubt
//! (an error, a cut-off text, a leniency, a string that might be a date that throws, the
//! depth limit) is `None`, and the scanner then reads the container itself, token by token,
//! to its own answer. So the skipper never decides validity on its own, and the extractor
//! tests that compare the scanner with the general parser cover it too.
//!
//! Why token by token: a skipper that validates 64 bytes at a time from SSE2 bit masks
//! (in-string prefix XOR, escapes, the byte after each token's whitespace by carried
//! additions, separators' turns by their parity, brackets as a bit stack; branch
//! `skip7-blocks`) was built and tested exact against this one, and lost both in
//! instructions (routes-10 13.9k -> 16.2k per message) and in time (1.28-1.58x -> 1.40-1.67x
//! the floor, interleaved). Without a byte shuffle each byte class costs a compare and a
//! mask move per block, ~350 instructions per 64 bytes with the bit logic, while this loop
//! spends ~25-35 per token and skipped containers are short (median ~70 bytes, 2 chunks).

use super::parse::{skipped_string_ok, strict_number, strict_string};
use super::scan::ws;

/// What a value in a skipped container starts.
enum Value {
    /// A scalar ending before this offset (what may follow it is checked after it).
    Scalar(usize),
    /// A container opens here.
    Open,
}

/// The value at `b[pos]`, as the scanner reads it in a subtree nothing is recorded from.
#[inline(always)]
fn value(text: &str, pos: usize) -> Option<Value> {
    let b = text.as_bytes();
    Some(match *b.get(pos)? {
        b'"' => {
            let (end, escaped) = strict_string(b, pos).ok()?;
            if !skipped_string_ok(text, pos, end, escaped) {
                return None;
            }
            Value::Scalar(end)
        }
        b'-' | b'0'..=b'9' => Value::Scalar(strict_number(b, pos)?),
        b'{' | b'[' => Value::Open,
        b't' if b[pos..].starts_with(b"true") => Value::Scalar(pos + 4),
        b'f' if b[pos..].starts_with(b"false") => Value::Scalar(pos + 5),
        b'n' if b[pos..].starts_with(b"null") => Value::Scalar(pos + 4),
        _ => return None,
    })
}

/// After `{` or a comma in an object (whitespace skipped): a property name and its colon;
/// the start of the value (whitespace skipped).
#[inline(always)]
fn name(b: &[u8], pos: usize) -> Option<usize> {
    if b.get(pos) != Some(&b'"') {
        return None;
    }
    let (end, _) = strict_string(b, pos).ok()?;
    let colon = ws(b, end);
    (b.get(colon) == Some(&b':')).then(|| ws(b, colon + 1))
}

/// The end of the container opening at `text[pos]` (`{` or `[`), when it is strict JSON the
/// scanner accepts with no more than `room` levels open in it (the container itself is
/// one); `None` when unsure (see the module docs).
#[inline(never)]
pub(super) fn skip_container(text: &str, mut pos: usize, room: usize) -> Option<usize> {
    let b = text.as_bytes();
    // Bit 0 is the innermost open container: set for an object.
    let mut objects: u64 = 0;
    let mut depth = 0usize;
    'open: loop {
        // A container opens at `pos`.
        if depth >= room.min(64) {
            return None;
        }
        let object = b[pos] == b'{';
        objects = (objects << 1) | u64::from(object);
        depth += 1;
        pos = ws(b, pos + 1);
        let close = if object { b'}' } else { b']' };
        if b.get(pos) == Some(&close) {
            pos += 1;
            depth -= 1;
            objects >>= 1;
            if depth == 0 {
                return Some(pos);
            }
        } else {
            if object {
                pos = name(b, pos)?;
            }
            match value(text, pos)? {
                Value::Open => continue 'open,
                Value::Scalar(end) => pos = end,
            }
        }
        // After a value: a comma and the next value, or closing brackets.
        loop {
            pos = ws(b, pos);
            let object = objects & 1 != 0;
            match *b.get(pos)? {
                b',' => {
                    pos = ws(b, pos + 1);
                    if object {
                        pos = name(b, pos)?;
                    }
                    match value(text, pos)? {
                        Value::Open => continue 'open,
                        Value::Scalar(end) => {
                            pos = end;
                            continue;
                        }
                    }
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return None,
            }
            pos += 1;
            depth -= 1;
            objects >>= 1;
            if depth == 0 {
                return Some(pos);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::skip_container;

    /// Strict containers are skipped to their end; anything the scanner must read itself is
    /// left to it. (That the answers agree with the general parser is the extractor tests'.)
    #[test]
    fn skips_strict_containers_and_leaves_the_rest() {
        for (text, end) in [
            ("{}", Some(2)),
            ("[ ]", Some(3)),
            (
                "{\"a\": [1, -2.5e3, true, false, null, \"s\\n\", {}]} ,",
                Some(48),
            ),
            ("[[[\"x\"]]]]", Some(9)),
            ("{\"a\":1,}", None),
            ("[1,,2]", None),
            ("{a:1}", None),
            ("['s']", None),
            ("[\"9999-12-31T24:00:00\"]", None),
            ("[01]", None),
            ("[truex]", None),
            ("{\"a\":1", None),
            ("[1 2]", None),
            ("[1}", None),
        ] {
            assert_eq!(skip_container(text, 0, 64), end, "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(skip_container(&deep, 0, 64), Some(128));
        assert_eq!(skip_container(&deep, 0, 63), None);
        let deeper = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(skip_container(&deeper, 0, 64), None);
    }
}
