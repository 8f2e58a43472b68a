//! Shortest round-trip text of a double, as the routing grammar reads it.
//!
//! Used wherever a number has to be written back as condition text
//! (printing a compiled condition, diagnostics): the text must lex as an
//! `INTEGER_LITERAL` (`-?[0-9]+`) or `REAL_LITERAL`
//! (`-?[0-9]*\.[0-9]+([eE][+-]?[0-9]+)?` or `-?[0-9]*[eE][+-]?[0-9]+`) and
//! [`super::parse_double_any`] must give back the same bits.
//!
//! The layout is .NET Core 3.0+'s `double.ToString()` (round-trip `"R"`,
//! formatted like `"G"` with 15 as the switch-over precision): the shortest
//! digits that round-trip, plain notation while the decimal exponent is in
//! -5 < e < 15, otherwise `d[.ddd]E±XX` with at least two exponent digits
//! (`1E+15`, `1E-05`, `1.5E+300`). Integers carry no `.0`.

/// Shortest text for `d` in .NET `double.ToString()` layout, or `None` for
/// NaN and ±Infinity, which no number literal can spell (`1/0` and `0/0`
/// are expressions, not literals).
///
/// `-0.0` gives `"-0"`, which the grammar reads as an `INTEGER_LITERAL` and
/// .NET parses back to negative zero.
pub fn format_double(d: f64) -> Option<String> {
    if !d.is_finite() {
        return None;
    }
    if d == 0.0 {
        return Some(if d.is_sign_negative() { "-0" } else { "0" }.to_owned());
    }
    // Rust's `{:e}` prints the shortest round-trip digits: `-1.2345e-7`.
    let sci = format!("{d:e}");
    let (mantissa, exp) = sci.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let (int_digit, frac_digits) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let n_digits = int_digit.len() + frac_digits.len();

    let mut out = String::with_capacity(n_digits + 8);
    if negative {
        out.push('-');
    }
    if !(-5 < exp && exp < 15) {
        out.push_str(int_digit);
        if !frac_digits.is_empty() {
            out.push('.');
            out.push_str(frac_digits);
        }
        out.push('E');
        out.push(if exp < 0 { '-' } else { '+' });
        let magnitude = exp.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(exp.unsigned_abs() - 1) {
            out.push('0');
        }
        out.push_str(int_digit);
        out.push_str(frac_digits);
    } else {
        // 0 <= exp < 15: `exp + 1` integer digits.
        let int_len = usize::try_from(exp).unwrap_or(0) + 1;
        out.push_str(int_digit);
        if frac_digits.len() < int_len {
            out.push_str(frac_digits);
            for _ in 0..(int_len - 1 - frac_digits.len()) {
                out.push('0');
            }
        } else {
            let (more_int, frac) = frac_digits.split_at(int_len - 1);
            out.push_str(more_int);
            if !frac.is_empty() {
                out.push('.');
                out.push_str(frac);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::number_parse::{parse_double_any, parse_integer_literal, parse_real_literal};
    use super::*;

    fn f(d: f64) -> String {
        format_double(d).unwrap_or_default()
    }

    #[test]
    fn layouts() {
        for (d, s) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (50.0, "50"),
            (-50.0, "-50"),
            (1.0, "1"),
            (12.34, "12.34"),
            (-12.34, "-12.34"),
            (0.5, "0.5"),
            (0.1, "0.1"),
            (0.30000000000000004, "0.30000000000000004"),
            (1.0 / 3.0, "0.3333333333333333"),
            (100.0, "100"),
            (123456789012345.0, "123456789012345"),
            (100000000000000.0, "100000000000000"),
            (1e15, "1E+15"),
            (1.5e15, "1.5E+15"),
            (1e300, "1E+300"),
            (-1e300, "-1E+300"),
            (1.2345678901234568e29, "1.2345678901234568E+29"),
            (f64::MAX, "1.7976931348623157E+308"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (0.00001, "1E-05"),
            (1.5e-7, "1.5E-07"),
            (5e-324, "5E-324"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            (9007199254740993.0, "9.007199254740992E+15"),
            (1234.5, "1234.5"),
            (999999999999999.9, "999999999999999.9"),
        ] {
            assert_eq!(f(d), s, "{d:e}");
        }
    }

    #[test]
    fn non_finite_is_none() {
        assert_eq!(format_double(f64::INFINITY), None);
        assert_eq!(format_double(f64::NEG_INFINITY), None);
        assert_eq!(format_double(f64::NAN), None);
    }

    /// Every output is a grammar literal that parses back to the same bits.
    #[test]
    fn round_trips_through_the_grammar() {
        let mut samples = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.2,
            0.3,
            1e-5,
            1e-4,
            1e14,
            1e15,
            1e16,
            1e21,
            1e22,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            123.456,
            -987654.321,
            2.5e-8,
        ];
        // A deterministic spread of bit patterns.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(f64::from_bits(x));
        }
        for d in samples.into_iter().filter(|d| d.is_finite()) {
            let s = f(d);
            let back = parse_integer_literal(&s).or_else(|| parse_real_literal(&s));
            assert_eq!(back.map(f64::to_bits), Some(d.to_bits()), "{d:e} -> {s}");
            assert_eq!(
                parse_double_any(&s).map(f64::to_bits),
                Some(d.to_bits()),
                "{s}"
            );
        }
    }
}
