//! `long.TryParse(digits, NumberStyles.HexNumber, CultureInfo.InvariantCulture)`.
//!
//! The engine converts a `HEX_INTEGER_LITERAL` by passing the text after `0x`
//! to this call and then casting the `long` to `double`
//! (`ConditionVisitor.VisitHex`); when the call fails the literal becomes the
//! undefined literal (R07). `NumberStyles.HexNumber` is
//! `AllowLeadingWhite | AllowTrailingWhite | AllowHexSpecifier`, and .NET's
//! `TryParseBinaryIntegerHexOrBinaryNumberStyle` reads the digits as an
//! unsigned 64-bit pattern, so `FFFFFFFFFFFFFFFF` is -1.

/// A `long` holds at most 16 significant hex digits (`MaxHexDigitCount`).
const MAX_HEX_DIGITS: usize = 16;

/// .NET `Number.IsWhite`: U+0009..U+000D and U+0020.
fn is_white(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// .NET `long.TryParse(digits, NumberStyles.HexNumber, InvariantCulture)`:
/// the caller passes the text after `0x`.
///
/// Digits are ASCII `0-9`, `a-f`, `A-F`; no sign or `0x` prefix is allowed.
/// The bits are taken as two's complement (`FFFFFFFFFFFFFFFF` is -1,
/// `8000000000000000` is `i64::MIN`). Leading zeros are skipped before
/// counting, so `0000FFFFFFFFFFFFFFFF` is still -1, while a 17th significant
/// digit overflows and gives `None`. As in .NET, white space (U+0009..U+000D,
/// U+0020) may surround the digits and trailing NUL characters are ignored.
pub fn parse_hex_i64(digits: &str) -> Option<i64> {
    let bytes = digits.as_bytes();
    let mut i = bytes.iter().take_while(|&&b| is_white(b)).count();
    if !bytes.get(i).is_some_and(u8::is_ascii_hexdigit) {
        return None;
    }
    while bytes.get(i) == Some(&b'0') {
        i += 1;
    }
    let start = i;
    let mut value: u64 = 0;
    while let Some(d) = bytes.get(i).and_then(|&b| char::from(b).to_digit(16)) {
        if i - start == MAX_HEX_DIGITS {
            return None; // Overflow: .NET's TryParse returns false.
        }
        value = (value << 4) | u64::from(d);
        i += 1;
    }
    // Trailing white space, then only NUL characters (`TrailingZeros`).
    while bytes.get(i).is_some_and(|&b| is_white(b)) {
        i += 1;
    }
    let rest = bytes.get(i..).unwrap_or_default();
    // Reinterpreting the bit pattern is the two's-complement cast .NET does.
    rest.iter()
        .all(|&b| b == 0)
        .then_some(i64::from_ne_bytes(value.to_ne_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        for (s, v) in [
            ("0", 0),
            ("00", 0),
            ("1", 1),
            ("10", 16),
            ("FF", 255),
            ("ff", 255),
            ("fF", 255),
            ("DEADBEEF", 3_735_928_559),
            ("deadbeef", 3_735_928_559),
            ("7FFFFFFFFFFFFFFF", i64::MAX),
            ("8000000000000000", i64::MIN),
            ("FFFFFFFFFFFFFFFF", -1),
            ("FFFFFFFFFFFFFFFE", -2),
            ("0000FFFFFFFFFFFFFFFF", -1),
            ("0123456789abcdef", 0x0123_4567_89ab_cdef),
            ("123456789ABCDEF0", 0x1234_5678_9ABC_DEF0),
        ] {
            assert_eq!(parse_hex_i64(s), Some(v), "{s:?}");
        }
    }

    #[test]
    fn overflow() {
        for s in [
            "10000000000000000",
            "FFFFFFFFFFFFFFFFF",
            "1000000000000000000000",
            "00010000000000000000",
        ] {
            assert_eq!(parse_hex_i64(s), None, "{s:?}");
        }
    }

    #[test]
    fn white_space_and_nul() {
        for (s, v) in [
            (" FF", 255),
            ("FF ", 255),
            ("\t\r\nFF\x0b\x0c", 255),
            ("FF\0", 255),
            ("FF \0\0", 255),
        ] {
            assert_eq!(parse_hex_i64(s), Some(v), "{s:?}");
        }
        for s in ["F F", "FF\0 ", "\u{a0}FF", "FF\u{a0}", " ", ""] {
            assert_eq!(parse_hex_i64(s), None, "{s:?}");
        }
    }

    #[test]
    fn rejects_non_hex() {
        for s in [
            "0x10", "-1", "+1", "G", "1G", "FFh", "\u{ff26}", "1.0", "1,0", "(1)",
        ] {
            assert_eq!(parse_hex_i64(s), None, "{s:?}");
        }
    }
}
