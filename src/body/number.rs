//! Json.NET 13 number literals (`JsonTextReader.ParseReadNumber` with
//! `FloatParseHandling.Double`), converted to the `double` the engine sees.
//!
//! Json.NET is more lenient than RFC 8259: `0x1F` is hex, `012` is octal,
//! `.5` and `5.` are numbers, and integers beyond `long` become `BigInteger`.
//! All of them end up as doubles through `JValue.ToObject<double>()`.

/// Whether `c` may continue a number literal (`ReadNumberCharIntoBuffer`).
pub(crate) fn is_number_char(c: u8) -> bool {
    matches!(c, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' | b'x' | b'X' | b'.' | b'+' | b'-')
}

/// Whether `text` is an ordinary decimal literal (`-?digits[.digits][e±digits]`,
/// not an octal-looking `0…`), for which [`parse_number`] is certain to
/// succeed. The parser validates every number with this cheap test and
/// converts only the few it records; anything else takes `parse_number`.
pub(crate) fn is_plain_decimal(text: &str) -> bool {
    let b = text.as_bytes();
    // `0` followed by anything but `.`, `e` or `E` is hex or octal.
    if b.first() == Some(&b'0') && b.len() > 1 && !matches!(b[1], b'.' | b'e' | b'E') {
        return false;
    }
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

/// `Convert.ToInt64(text, radix)` for radix 8 or 16: the digits are read as
/// an unsigned 64-bit pattern (two's complement), overflow fails. `0x` is
/// accepted as a prefix for radix 16.
fn convert_to_i64(text: &str, radix: u32) -> Option<i64> {
    let digits = if radix == 16 {
        text.strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text)
    } else {
        text
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for c in digits.chars() {
        let d = u64::from(c.to_digit(radix)?);
        v = v.checked_mul(u64::from(radix))?.checked_add(d)?;
    }
    Some(v as i64)
}

/// `ConvertUtils.Int64TryParse` outcome.
enum IntParse {
    Ok(i64),
    Overflow,
    Invalid,
}

fn int64_try_parse(text: &str) -> IntParse {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return IntParse::Invalid;
    }
    match text.parse::<i64>() {
        Ok(v) => IntParse::Ok(v),
        Err(_) => IntParse::Overflow,
    }
}

/// [`parse_number`] of the most common literals, computed directly:
/// `-?digits[.digits]` with at most 15 digits in all, not octal-looking.
/// Converting through the general parsers cost more than reading the whole
/// rest of a body. Without a point the literal is a `long` (`-0` is +0, as
/// `(double)0L`); with one, the digits `m` (below 2^53) and the scale `k`
/// (at most 15) are exact doubles, so `m / 10^k` is the correctly rounded
/// value, which is what `double.Parse` and Rust's `parse` return.
#[inline]
fn short_decimal(b: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let negative = b.first() == Some(&b'-');
    let digits = &b[usize::from(negative)..];
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    if digits[0] == b'0' && digits.len() > 1 && digits[1] != b'.' {
        return None;
    }
    let mut m: i64 = 0;
    let mut point = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => m = m * 10 + i64::from(c - b'0'),
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    match point {
        None if digits.len() <= 15 => Some((if negative { -m } else { m }) as f64),
        // Digits on both sides of the point (`5.` and `.5` take the general path).
        Some(p) if p > 0 && p + 1 < digits.len() => {
            let v = m as f64 / POW10[digits.len() - 1 - p];
            Some(if negative { -v } else { v })
        }
        _ => None,
    }
}

/// The double value of a number literal, or `None` where Json.NET throws
/// ("Input string '...' is not a valid number.").
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    short_decimal(text.as_bytes()).or_else(|| parse_number_general(text))
}

/// [`parse_number`] of any literal.
fn parse_number_general(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let first = *b.first()?;
    let non_base10 = first == b'0' && b.len() > 1 && !matches!(b[1], b'.' | b'e' | b'E');
    if non_base10 {
        let radix = if b[1] == b'x' || b[1] == b'X' { 16 } else { 8 };
        return convert_to_i64(text, radix).map(|v| v as f64);
    }
    match int64_try_parse(text) {
        IntParse::Ok(v) => Some(v as f64),
        // BigInteger: the nearest double of the decimal value.
        IntParse::Overflow => text.parse::<f64>().ok(),
        // double.TryParse(NumberStyles.Float): sign, digits, point,
        // exponent; overflow gives ±Infinity. The literal's alphabet keeps
        // out the `inf`/`nan` spellings Rust would otherwise accept.
        IntParse::Invalid => {
            if b.iter().any(|&c| matches!(c, b'x' | b'X')) {
                return None;
            }
            text.parse::<f64>().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_float() {
        assert_eq!(parse_number("0"), Some(0.0));
        assert_eq!(parse_number("-12"), Some(-12.0));
        assert_eq!(parse_number("1.5"), Some(1.5));
        assert_eq!(parse_number(".5"), Some(0.5));
        assert_eq!(parse_number("5."), Some(5.0));
        assert_eq!(parse_number("-.5"), Some(-0.5));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("0e0"), Some(0.0));
        assert_eq!(parse_number("0.25"), Some(0.25));
        assert_eq!(parse_number("1e400"), Some(f64::INFINITY));
        assert_eq!(parse_number("-1e400"), Some(f64::NEG_INFINITY));
        assert_eq!(
            parse_number("123456789012345678901234567890"),
            Some(1.2345678901234568e29)
        );
        assert_eq!(
            parse_number("9223372036854775807"),
            Some(9.223372036854776e18)
        );
        for bad in ["-", ".", "1e", "1.2.3", "1-2", "1a", "e5", "-0x1", "0e", ""] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }

    /// `is_plain_decimal` must never accept what `parse_number` rejects.
    #[test]
    fn plain_decimal_implies_valid() {
        let alphabet = b"0123456789abcdefxX.+-eE";
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut accepted = 0;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 7) as usize;
            let mut y = x;
            let mut text = String::new();
            for _ in 0..len {
                // Digits, `-`, `.` and `e` most of the time.
                let pick = (y % 40) as usize;
                y /= 40;
                let c = if pick < 23 {
                    alphabet[pick]
                } else {
                    b"0123456789-.e0"[pick % 14]
                };
                text.push(c as char);
            }
            if is_plain_decimal(&text) {
                accepted += 1;
                assert!(parse_number(&text).is_some(), "{text}");
            }
        }
        assert!(accepted > 1000, "{accepted}");
        for ok in [
            "0", "-0", "0.5", "-.5", "5.", "1e5", "1E+5", "-012", "12.5e-3",
        ] {
            assert!(is_plain_decimal(ok), "{ok}");
        }
        for no in [
            "00", "01", "0x1", "-", ".", "1e", "1.2.3", "e5", "", "+1", "1-2",
        ] {
            assert!(!is_plain_decimal(no), "{no}");
        }
    }

    /// The direct conversion of short decimals gives exactly the general
    /// path's double (bit for bit: `-0` and `-0.0` differ).
    #[test]
    fn short_decimal_agrees_with_general() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut taken = 0;
        for _ in 0..300_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 18) as usize;
            let mut y = x >> 5;
            let mut text = String::new();
            for i in 0..len {
                let pick = (y % 16) as usize;
                y = y.rotate_right(4) ^ (i as u64);
                text.push(b"0123456789-.0.95"[pick] as char);
            }
            if let Some(v) = short_decimal(text.as_bytes()) {
                taken += 1;
                let general = parse_number_general(&text).map(f64::to_bits);
                assert_eq!(Some(v.to_bits()), general, "{text}");
            }
        }
        assert!(taken > 10_000, "{taken}");
        for (text, want) in [("-0", 0.0f64), ("-0.0", -0.0), ("0.1", 0.1), ("14.5", 14.5)] {
            assert_eq!(
                short_decimal(text.as_bytes()).map(f64::to_bits),
                Some(want.to_bits())
            );
        }
        for general in [
            "999999999999999.9",
            "1234567890123456",
            "1.",
            ".5",
            "01",
            "1e5",
        ] {
            assert_eq!(short_decimal(general.as_bytes()), None, "{general}");
        }
    }

    #[test]
    fn hex_and_octal() {
        assert_eq!(parse_number("0x1F"), Some(31.0));
        assert_eq!(parse_number("0X1f"), Some(31.0));
        assert_eq!(parse_number("0xFFFFFFFFFFFFFFFF"), Some(-1.0));
        assert_eq!(parse_number("012"), Some(10.0));
        assert_eq!(parse_number("00"), Some(0.0));
        assert_eq!(parse_number("-012"), Some(-12.0));
        for bad in ["0x", "09", "0x1.5", "00.5", "0x10000000000000000", "0b1"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }
}
