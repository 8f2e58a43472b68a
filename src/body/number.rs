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

/// The double value of a number literal, or `None` where Json.NET throws
/// ("Input string '...' is not a valid number.").
pub(crate) fn parse_number(text: &str) -> Option<f64> {
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
