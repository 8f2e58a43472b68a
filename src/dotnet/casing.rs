//! .NET invariant case mapping and `OrdinalIgnoreCase` equality.
//!
//! `lower`/`upper` call `ToLowerInvariant`/`ToUpperInvariant` (`Lower.cs:36`,
//! R21), and property names, function names and the JSON content type are
//! matched with `StringComparer.OrdinalIgnoreCase` (R01, R03, R23).
//!
//! On .NET 5+ with ICU (the default on Linux and current Windows), the
//! invariant culture's casing is `GlobalizationNative_ChangeCaseInvariant`
//! (`pal_casing.c`): ICU's `u_toupper`/`u_tolower` per code point, the
//! *simple* 1:1 mappings of `UnicodeData.txt`, except that U+0131 (dotless
//! i) stays itself when uppercased and U+0130 (I with dot) stays itself when
//! lowercased, to match Windows' invariant casing. So `upper('ß')` is `ß` and
//! Greek capital sigma always lowercases to `σ` (no final-sigma context).
//!
//! Rust's `char::to_uppercase`/`to_lowercase` are the *full* mappings; for
//! one-char results they equal the simple mappings (checked against ICU 72
//! for every scalar), and the few multi-char results are mapped here by a
//! small rule. Unicode versions can differ between Rust's tables and the
//! ICU a .NET process loads; characters added to Unicode recently may case
//! differently.

use std::borrow::Cow;

/// Simple uppercase of a character whose full uppercase has several chars
/// (the unconditional SpecialCasing.txt entries). Only the Greek letters
/// with iota subscript have a simple uppercase (their titlecase form); all
/// others (`ß`, `ŉ`, `ǰ`, `ΐ`, `ΰ`, `և`, `ẖ`..`ẚ`, `ὐ`.., `ﬀ`..`ﬆ`, `ﬓ`..`ﬗ`,
/// and the titlecase forms themselves) map to themselves.
fn special_simple_upper(c: char) -> char {
    let cp = u32::from(c);
    let mapped = match cp {
        0x1F80..=0x1FAF if cp & 0xF < 8 => cp + 8,
        0x1FB3 => 0x1FBC,
        0x1FC3 => 0x1FCC,
        0x1FF3 => 0x1FFC,
        _ => cp,
    };
    char::from_u32(mapped).unwrap_or(c)
}

/// Keeps `c` when a mapping would change its UTF-16 length: .NET casing
/// writes into a buffer of the source's length (ICU's simple mappings never
/// do this; the guard only protects that invariant).
fn same_width(c: char, mapped: char) -> char {
    if mapped.len_utf16() == c.len_utf16() {
        mapped
    } else {
        c
    }
}

/// The simple (1:1) uppercase mapping, ICU `u_toupper`.
fn simple_upper(c: char) -> char {
    let mut full = c.to_uppercase();
    match (full.next(), full.next()) {
        (Some(u), None) => same_width(c, u),
        _ => special_simple_upper(c),
    }
}

/// The simple (1:1) lowercase mapping, ICU `u_tolower`. The only scalar with
/// a multi-char full lowercase is U+0130, which .NET keeps anyway.
fn simple_lower(c: char) -> char {
    let mut full = c.to_lowercase();
    match (full.next(), full.next()) {
        (Some(l), None) => same_width(c, l),
        _ => c,
    }
}

/// `ToUpperInvariant` for one scalar.
fn upper_invariant(c: char) -> char {
    if c == '\u{131}' {
        c
    } else {
        simple_upper(c)
    }
}

/// `ToLowerInvariant` for one scalar.
fn lower_invariant(c: char) -> char {
    if c == '\u{130}' {
        c
    } else {
        simple_lower(c)
    }
}

/// Applies a per-scalar mapping, borrowing when nothing changes.
fn map_chars<'a>(s: &'a str, ascii: fn(&u8) -> bool, f: fn(char) -> char) -> Cow<'a, str> {
    if s.is_ascii() && !s.bytes().any(|b| ascii(&b)) {
        return Cow::Borrowed(s);
    }
    let Some((first, _)) = s.char_indices().find(|&(_, c)| f(c) != c) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(s.get(..first).unwrap_or_default());
    out.extend(s.get(first..).unwrap_or_default().chars().map(f));
    Cow::Owned(out)
}

/// .NET `s.ToUpperInvariant()`: simple 1:1 uppercase per scalar.
/// `ß` stays `ß`, `ı` (U+0131) stays `ı`, `ſ` becomes `S`, `ǆ` becomes `Ǆ`,
/// `ᾳ` becomes `ᾼ`. Borrows when nothing changes.
pub fn to_upper_invariant(s: &str) -> Cow<'_, str> {
    map_chars(s, u8::is_ascii_lowercase, upper_invariant)
}

/// .NET `s.ToLowerInvariant()`: simple 1:1 lowercase per scalar.
/// `İ` (U+0130) stays `İ`, `Σ` always becomes `σ`, `K` (Kelvin sign) becomes
/// `k`. Borrows when nothing changes.
pub fn to_lower_invariant(s: &str) -> Cow<'_, str> {
    map_chars(s, u8::is_ascii_uppercase, lower_invariant)
}

/// Uppercase used by .NET's `OrdinalIgnoreCase` (`OrdinalCasing.Icu.cs`).
///
/// BMP: ICU `u_toupper` per UTF-16 unit, except that U+0131 and U+017F (long
/// s) stay themselves ("Disable Turkish I behavior on Ordinal operations" in
/// `InitOrdinalCasingPage`). Supplementary scalars: only the hard-coded
/// ranges of `OrdinalCasing.ToUpperSurrogate` (Deseret, Osage, Old Hungarian,
/// Warang Citi, Medefaidrin, Adlam) are case-folded; other supplementary
/// letters compare case-sensitively.
fn ordinal_upper(c: char) -> char {
    let cp = u32::from(c);
    if cp < 0x1_0000 {
        return if c == '\u{131}' || c == '\u{17F}' {
            c
        } else {
            simple_upper(c)
        };
    }
    let mapped = match cp {
        0x1_0428..=0x1_044F => cp - 0x28,
        0x1_04D8..=0x1_04FB => cp - 0x28,
        0x1_0CC0..=0x1_0CF2 => cp - 0x40,
        0x1_18C0..=0x1_18DF => cp - 0x20,
        0x1_6E60..=0x1_6E7F => cp - 0x20,
        0x1_E922..=0x1_E943 => cp - 0x22,
        _ => cp,
    };
    char::from_u32(mapped).unwrap_or(c)
}

/// .NET `StringComparer.OrdinalIgnoreCase.Equals(a, b)`: equal UTF-16
/// lengths and equal simple uppercase per unit (see `ordinal_upper` for
/// the exact table). ASCII strings take a byte-wise fast path.
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    let mut ca = a.chars();
    let mut cb = b.chars();
    loop {
        match (ca.next(), cb.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if x != y && ordinal_upper(x) != ordinal_upper(y) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The key under which `eq_ignore_case` groups names: two names are equal under
/// `OrdinalIgnoreCase` exactly when their folds are equal. Used to index large property bags.
pub fn fold_ignore_case(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_lowercase()) {
            return Cow::Owned(s.to_ascii_uppercase());
        }
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(ordinal_upper).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_agrees_with_eq_ignore_case() {
        let names = [
            "a", "A", "Straße", "STRAßE", "ı", "I", "i", "ÄÖü", "äöÜ", "𐐨", "𐐀", "K", "k",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    eq_ignore_case(a, b),
                    fold_ignore_case(a) == fold_ignore_case(b),
                    "{a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn upper_ascii_borrows() {
        assert!(matches!(
            to_upper_invariant("ABC 123"),
            Cow::Borrowed("ABC 123")
        ));
        assert!(matches!(to_upper_invariant(""), Cow::Borrowed("")));
        assert!(matches!(to_upper_invariant("ÀÉ日"), Cow::Borrowed(_)));
        assert_eq!(to_upper_invariant("abc"), "ABC");
        assert_eq!(to_upper_invariant("aBc-xyz_09"), "ABC-XYZ_09");
        assert!(matches!(to_upper_invariant("abc"), Cow::Owned(_)));
    }

    #[test]
    fn lower_ascii_borrows() {
        assert!(matches!(to_lower_invariant("abc 123"), Cow::Borrowed(_)));
        assert!(matches!(to_lower_invariant("àé日"), Cow::Borrowed(_)));
        assert_eq!(to_lower_invariant("ABC"), "abc");
        assert_eq!(to_lower_invariant("VALUE3"), "value3");
    }

    #[test]
    fn upper_is_simple_mapping() {
        for (s, u) in [
            ("ß", "ß"),
            ("straße", "STRAßE"),
            ("ı", "ı"),
            ("i", "I"),
            ("ſ", "S"),
            ("é", "É"),
            ("ÿ", "Ÿ"),
            ("µ", "Μ"),
            ("ǆ", "Ǆ"),
            ("ǅ", "Ǆ"),
            ("ŉ", "ŉ"),
            ("ǰ", "ǰ"),
            ("ΐ", "ΐ"),
            ("ΰ", "ΰ"),
            ("և", "և"),
            ("ẖẗẘẙẚ", "ẖẗẘẙẚ"),
            ("ﬀﬁﬂﬃﬄﬅﬆ", "ﬀﬁﬂﬃﬄﬅﬆ"),
            ("ﬓﬔﬕﬖﬗ", "ﬓﬔﬕﬖﬗ"),
            ("ὐ", "ὐ"),
            ("\u{1F80}", "\u{1F88}"),
            ("\u{1F87}", "\u{1F8F}"),
            ("\u{1F88}", "\u{1F88}"),
            ("\u{1F97}", "\u{1F9F}"),
            ("\u{1FA0}", "\u{1FA8}"),
            ("\u{1FAF}", "\u{1FAF}"),
            ("\u{1FB3}", "\u{1FBC}"),
            ("\u{1FBC}", "\u{1FBC}"),
            ("\u{1FC3}", "\u{1FCC}"),
            ("\u{1FF3}", "\u{1FFC}"),
            ("\u{1FB6}", "\u{1FB6}"),
            ("\u{345}", "\u{399}"),
            ("σς", "ΣΣ"),
            ("日本", "日本"),
            ("😀", "😀"),
            ("\u{10428}", "\u{10400}"),
            ("\u{1E922}", "\u{1E900}"),
            ("ⓐ", "Ⓐ"),
        ] {
            assert_eq!(to_upper_invariant(s), u, "{s:?}");
            assert_eq!(utf16_units(&to_upper_invariant(s)), utf16_units(s), "{s:?}");
        }
    }

    fn utf16_units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn lower_is_simple_mapping() {
        for (s, l) in [
            ("İ", "İ"),
            ("I", "i"),
            ("ı", "ı"),
            ("ΣΑΣ", "σασ"),
            ("Σ", "σ"),
            ("\u{212A}", "k"),
            ("\u{2126}", "ω"),
            ("Ǆ", "ǆ"),
            ("ǅ", "ǆ"),
            ("\u{1F88}", "\u{1F80}"),
            ("\u{1FBC}", "\u{1FB3}"),
            ("ẞ", "ß"),
            ("Ⓐ", "ⓐ"),
            ("\u{10400}", "\u{10428}"),
            ("ÀÉÎ", "àéî"),
            ("ÀbC", "àbc"),
        ] {
            assert_eq!(to_lower_invariant(s), l, "{s:?}");
        }
    }

    #[test]
    fn mapping_never_changes_utf16_length() {
        for cp in 0..=0x10FFFFu32 {
            if let Some(c) = char::from_u32(cp) {
                assert_eq!(upper_invariant(c).len_utf16(), c.len_utf16(), "{cp:X}");
                assert_eq!(lower_invariant(c).len_utf16(), c.len_utf16(), "{cp:X}");
                assert_eq!(ordinal_upper(c).len_utf16(), c.len_utf16(), "{cp:X}");
            }
        }
    }

    #[test]
    fn ordinal_ignore_case() {
        for (a, b) in [
            ("", ""),
            ("abc", "ABC"),
            ("application/json", "Application/JSON"),
            ("KEY1", "key1"),
            ("é", "É"),
            ("straße", "STRAßE"),
            ("σ", "Σ"),
            ("ς", "Σ"),
            ("ς", "σ"),
            ("µ", "Μ"),
            ("ÿ", "Ÿ"),
            ("\u{10428}", "\u{10400}"),
            ("\u{104D8}", "\u{104B0}"),
            ("\u{10CC0}", "\u{10C80}"),
            ("\u{118C0}", "\u{118A0}"),
            ("\u{16E60}", "\u{16E40}"),
            ("\u{1E922}", "\u{1E900}"),
            ("😀a", "😀A"),
            ("\u{212A}", "\u{212A}"),
        ] {
            assert!(eq_ignore_case(a, b), "{a:?} {b:?}");
            assert!(eq_ignore_case(b, a), "{b:?} {a:?}");
        }
        for (a, b) in [
            ("abc", "abd"),
            ("abc", "ab"),
            ("ab", "abc"),
            ("ı", "I"),
            ("ı", "i"),
            ("İ", "i"),
            ("ſ", "S"),
            ("ß", "SS"),
            ("ß", "ẞ"),
            ("\u{212A}", "k"),
            ("\u{212A}", "K"),
            // Vithkuqi is not in OrdinalCasing's hard-coded surrogate table.
            ("\u{10597}", "\u{10570}"),
            ("a", "\u{FF41}"),
            ("é", "e"),
        ] {
            assert!(!eq_ignore_case(a, b), "{a:?} {b:?}");
        }
    }
}
