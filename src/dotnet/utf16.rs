//! .NET string indexing and ordinal comparison, answered over UTF-8 `&str`.
//!
//! The engine's strings are .NET UTF-16 strings: `length`, `substring` and
//! `index_of` count UTF-16 code units (`Length.cs:36`, `Substring.cs:49,65`,
//! `IndexOf.cs:39`, conformance rule R21), and string comparison is ordinal
//! over UTF-16 code units (`ComparisonOperators.cs:22`, R18). Each function
//! below gives the UTF-16 answer for the same text, with an ASCII fast path
//! where UTF-8 bytes and UTF-16 units coincide.

use std::borrow::Cow;
use std::cmp::Ordering;

/// `s.Length` in .NET: the number of UTF-16 code units. `utf16_len("😀")` is
/// 2.
pub fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        return s.len();
    }
    // Every scalar starts with one non-continuation byte; a 4-byte sequence
    // (lead byte 0xF0..0xF4) is a surrogate pair and counts twice.
    s.bytes()
        .map(|b| usize::from(b & 0xC0 != 0x80) + usize::from(b >= 0xF0))
        .sum()
}

/// Where a UTF-16 offset falls in `s`: the byte offset of the scalar that
/// starts at or contains it, and whether it falls between the two halves of
/// a surrogate pair. `None` when the offset is beyond the end.
fn locate(s: &str, unit: usize) -> Option<(usize, bool)> {
    let mut units = 0;
    for (byte, c) in s.char_indices() {
        if units == unit {
            return Some((byte, false));
        }
        units += c.len_utf16();
        if units > unit {
            return Some((byte, true));
        }
    }
    (units == unit).then_some((s.len(), false))
}

/// .NET `s.Substring(start)` (`len` `None`) or `s.Substring(start, len)`,
/// counting UTF-16 code units. `None` where .NET throws
/// `ArgumentOutOfRangeException`: `start` beyond the length, or `start + len`
/// beyond the length. (The engine's `substring` builtin is stricter for the
/// three-argument form, see R21; that check belongs to the caller.)
///
/// Deviation: where a boundary falls between the halves of a surrogate pair,
/// .NET returns a string holding a lone surrogate, which a Rust `str` cannot
/// hold. That half is returned as U+FFFD instead; the result then has the
/// same UTF-16 length as .NET's. For example `substring("😀x", 1, None)` is
/// `"\u{FFFD}x"`. Borrows whenever no replacement is needed.
pub fn substring(s: &str, start: usize, len: Option<usize>) -> Option<Cow<'_, str>> {
    if s.is_ascii() {
        let end = match len {
            Some(n) => start.checked_add(n)?,
            None => s.len(),
        };
        return s.get(start..end).map(Cow::Borrowed);
    }
    let (start_byte, start_split) = locate(s, start)?;
    let (end_byte, end_split) = match len {
        Some(n) => locate(s, start.checked_add(n)?)?,
        None => (s.len(), false),
    };
    if start_split && end_split && start_byte == end_byte {
        // Both boundaries in the middle of the same pair: an empty range.
        return Some(Cow::Borrowed(""));
    }
    if !start_split && !end_split {
        return s.get(start_byte..end_byte).map(Cow::Borrowed);
    }
    let mut out = String::with_capacity(end_byte.saturating_sub(start_byte) + 6);
    let mut from = start_byte;
    if start_split {
        // The low half of the pair that starts at `start_byte`.
        out.push('\u{FFFD}');
        from += s
            .get(start_byte..)
            .and_then(|t| t.chars().next())
            .map_or(0, char::len_utf8);
    }
    out.push_str(s.get(from..end_byte)?);
    if end_split {
        // The high half of the pair that starts at `end_byte`.
        out.push('\u{FFFD}');
    }
    Some(Cow::Owned(out))
}

/// .NET `haystack.IndexOf(needle, StringComparison.Ordinal)`: the UTF-16
/// offset of the first occurrence, -1 if absent, 0 for an empty needle.
///
/// Both strings are well-formed, so a UTF-16 match can only start on a scalar
/// boundary and a byte-level match at a char boundary is the same match.
pub fn index_of(haystack: &str, needle: &str) -> i64 {
    match haystack.find(needle) {
        Some(byte) => {
            let units = utf16_len(haystack.get(..byte).unwrap_or_default());
            i64::try_from(units).unwrap_or(i64::MAX)
        }
        None => -1,
    }
}

/// A key that orders scalars as their UTF-16 encodings order: code point
/// order, except that U+E000..U+FFFF sort after every supplementary scalar
/// (whose first unit is a surrogate, 0xD800..0xDBFF).
fn utf16_order_key(c: char) -> u32 {
    let cp = u32::from(c);
    if (0xE000..=0xFFFF).contains(&cp) {
        cp + 0x20_0000
    } else {
        cp
    }
}

/// .NET `string.Compare(a, b, StringComparison.Ordinal)` (and
/// `string.CompareOrdinal`) as an ordering: UTF-16 code-unit order, with a
/// proper prefix first.
///
/// This differs from Rust's byte order only when a scalar at or above
/// U+10000 meets one in U+E000..U+FFFF at the first difference: in UTF-16
/// the supplementary one (a surrogate, 0xD800..) sorts first.
pub fn compare_ordinal(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let Some(diff) = ab.iter().zip(bb).position(|(x, y)| x != y) else {
        return ab.len().cmp(&bb.len());
    };
    // Back up to the start of the differing scalar (same in both strings).
    let mut start = diff;
    while start > 0 && !a.is_char_boundary(start) {
        start -= 1;
    }
    let ca = a.get(start..).and_then(|t| t.chars().next());
    let cb = b.get(start..).and_then(|t| t.chars().next());
    match (ca, cb) {
        (Some(x), Some(y)) => utf16_order_key(x).cmp(&utf16_order_key(y)),
        _ => ab.cmp(bb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The UTF-16 answer computed the slow, obvious way, for cross-checks.
    fn units(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn lengths() {
        for (s, n) in [
            ("", 0),
            ("abc", 3),
            ("é", 1),
            ("日本語", 3),
            ("😀", 2),
            ("a😀b", 4),
            ("😀😀", 4),
            ("\u{10FFFF}", 2),
            ("\u{FFFF}", 1),
            ("\0", 1),
        ] {
            assert_eq!(utf16_len(s), n, "{s:?}");
            assert_eq!(utf16_len(s), units(s).len(), "{s:?}");
        }
    }

    #[test]
    fn substring_ascii() {
        assert_eq!(substring("abc", 0, None).as_deref(), Some("abc"));
        assert_eq!(substring("abc", 1, None).as_deref(), Some("bc"));
        assert_eq!(substring("abc", 3, None).as_deref(), Some(""));
        assert_eq!(substring("abc", 4, None), None);
        assert_eq!(substring("abc", 0, Some(2)).as_deref(), Some("ab"));
        assert_eq!(substring("abc", 1, Some(2)).as_deref(), Some("bc"));
        assert_eq!(substring("abc", 3, Some(0)).as_deref(), Some(""));
        assert_eq!(substring("abc", 1, Some(3)), None);
        assert_eq!(substring("abc", usize::MAX, Some(1)), None);
        assert_eq!(substring("abc", 1, Some(usize::MAX)), None);
        assert_eq!(substring("", 0, Some(0)).as_deref(), Some(""));
        assert!(matches!(substring("abc", 1, None), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn substring_counts_utf16_units() {
        let s = "a😀bé日";
        // Units: a, hi, lo, b, é, 日  => length 6.
        assert_eq!(substring(s, 0, Some(3)).as_deref(), Some("a😀"));
        assert_eq!(substring(s, 3, None).as_deref(), Some("bé日"));
        assert_eq!(substring(s, 4, Some(2)).as_deref(), Some("é日"));
        assert_eq!(substring(s, 6, None).as_deref(), Some(""));
        assert_eq!(substring(s, 7, None), None);
        assert_eq!(substring(s, 5, Some(2)), None);
        assert!(matches!(
            substring(s, 1, Some(2)),
            Some(Cow::Borrowed("😀"))
        ));
    }

    #[test]
    fn substring_splitting_a_surrogate_pair() {
        let s = "a😀b";
        assert_eq!(substring(s, 2, None).as_deref(), Some("\u{FFFD}b"));
        assert_eq!(substring(s, 0, Some(2)).as_deref(), Some("a\u{FFFD}"));
        assert_eq!(substring(s, 1, Some(1)).as_deref(), Some("\u{FFFD}"));
        assert_eq!(substring(s, 2, Some(1)).as_deref(), Some("\u{FFFD}"));
        assert_eq!(substring(s, 2, Some(0)).as_deref(), Some(""));
        assert_eq!(
            substring("😀😀", 1, Some(2)).as_deref(),
            Some("\u{FFFD}\u{FFFD}")
        );
        assert_eq!(
            substring("😀x😀", 1, Some(3)).as_deref(),
            Some("\u{FFFD}x\u{FFFD}")
        );
        // The replacement keeps .NET's UTF-16 length.
        for start in 0..=4 {
            for len in 0..=(4 - start) {
                let got = substring("😀😀", start, Some(len)).unwrap_or_default();
                assert_eq!(utf16_len(&got), len, "{start} {len}");
            }
        }
    }

    #[test]
    fn index_of_in_units() {
        for (h, n, i) in [
            ("abc", "", 0),
            ("", "", 0),
            ("", "a", -1),
            ("abc", "c", 2),
            ("abc", "bc", 1),
            ("abc", "d", -1),
            ("😀abc", "a", 2),
            ("é😀日x", "x", 4),
            ("日本語", "語", 2),
            ("a😀b😀", "😀", 1),
            ("aAa", "A", 1),
            ("abcabc", "cab", 2),
        ] {
            assert_eq!(index_of(h, n), i, "{h:?} {n:?}");
        }
    }

    #[test]
    fn ordinal_order_is_utf16_order() {
        use Ordering::*;
        for (a, b, o) in [
            ("", "", Equal),
            ("a", "a", Equal),
            ("a", "b", Less),
            ("b", "a", Greater),
            ("a", "ab", Less),
            ("ab", "a", Greater),
            ("A", "a", Less),
            ("Z", "a", Less),
            ("é", "z", Greater),
            // U+10000 (D800 DC00) sorts before U+FFFD and U+E000 in UTF-16,
            // although its UTF-8 bytes sort after theirs.
            ("\u{10000}", "\u{FFFD}", Less),
            ("\u{FFFD}", "😀", Greater),
            ("\u{E000}", "\u{10FFFF}", Greater),
            ("x\u{FF21}", "x😀", Greater),
            // Below U+E000 BMP scalars still sort first.
            ("\u{D7FF}", "\u{10000}", Less),
            ("日", "😀", Less),
            ("😀", "😁", Less),
            ("😀a", "😀", Greater),
        ] {
            assert_eq!(compare_ordinal(a, b), o, "{a:?} {b:?}");
            assert_eq!(
                compare_ordinal(a, b),
                units(a).cmp(&units(b)),
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn ordinal_order_cross_check() {
        let samples = [
            "",
            "a",
            "b",
            "ab",
            "é",
            "ê",
            "日",
            "\u{E000}",
            "\u{FFFF}",
            "\u{10000}",
            "😀",
            "😁",
            "a😀",
            "a\u{FFFD}",
            "\u{10FFFF}",
            "ÿ",
            "\u{7FF}",
            "\u{800}",
        ];
        for a in samples {
            for b in samples {
                assert_eq!(
                    compare_ordinal(a, b),
                    units(a).cmp(&units(b)),
                    "{a:?} {b:?}"
                );
            }
        }
    }
}
