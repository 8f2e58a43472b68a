//! Which JSON string values Json.NET 13 turns into Date tokens.
//!
//! `JObject.Parse` reads with `DateParseHandling.DateTime`, so a string value
//! that looks like an ISO-8601 date-time or a Microsoft `/Date(ticks)/` date
//! becomes a `JTokenType.Date` token, which the engine treats as an object:
//! the body value is undefined (conformance rule R15). This module ports the
//! detection (`DateTimeUtils.TryParseDateTime` and `DateTimeParser`)
//! including its quirks, such as hour 24 and a trailing two-digit "zone".

/// What Json.NET makes of a string value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateCheck {
    /// Stays a string.
    NotDate,
    /// Becomes a Date token.
    Date,
    /// Json.NET throws while building the `DateTime` (for example
    /// `9999-12-31T24:00:00`, or Microsoft ticks outside the `DateTime`
    /// range), which fails the whole parse.
    Throws,
}

/// Parsed fields of an ISO-8601 date-time as `DateTimeParser` accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IsoDateTime {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// The time-zone designator.
    pub zone: Zone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    /// No designator.
    Unspecified,
    /// `Z` or `z`.
    Utc,
    /// `+HH`, `-HH:mm`, ... (whatever follows the seconds that is not `Z`).
    Offset,
}

pub(crate) fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

fn digits2(b: &[u8], i: usize) -> Option<u32> {
    let d = b.get(i..i + 2)?;
    if d.iter().all(u8::is_ascii_digit) {
        Some(u32::from(d[0] - b'0') * 10 + u32::from(d[1] - b'0'))
    } else {
        None
    }
}

fn at(b: &[u8], i: usize, c: u8) -> bool {
    b.get(i) == Some(&c)
}

/// `DateTimeParser.Parse`: `yyyy-MM-ddTHH:mm:ss[.f{1,7}][zone]`.
pub(crate) fn parse_iso(s: &str) -> Option<IsoDateTime> {
    let b = s.as_bytes();
    let year = {
        let d = b.get(0..4)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        d.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'))
    };
    let month = digits2(b, 5)?;
    let day = digits2(b, 8)?;
    if year < 1
        || !at(b, 4, b'-')
        || !at(b, 7, b'-')
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || !at(b, 10, b'T')
    {
        return None;
    }
    let hour = digits2(b, 11)?;
    let minute = digits2(b, 14)?;
    let second = digits2(b, 17)?;
    if hour > 24
        || !at(b, 13, b':')
        || !at(b, 16, b':')
        || minute >= 60
        || second >= 60
        || (hour == 24 && (minute != 0 || second != 0))
    {
        return None;
    }
    let mut i = 19;
    if at(b, i, b'.') {
        let mut n = 0;
        let mut nonzero = false;
        i += 1;
        while n < 7 && b.get(i).is_some_and(u8::is_ascii_digit) {
            nonzero |= b[i] != b'0';
            n += 1;
            i += 1;
        }
        if n == 0 || (hour == 24 && nonzero) {
            return None;
        }
    }
    let zone = parse_zone(b, i)?;
    Some(IsoDateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        zone,
    })
}

/// `DateTimeParser.ParseZone`, quirks included: after the seconds it accepts
/// `Z`, or an optional sign with two digits, then an optional `:` and an
/// optional two digits, as long as the text ends exactly there.
fn parse_zone(b: &[u8], mut i: usize) -> Option<Zone> {
    let end = b.len();
    let mut zone = Zone::Unspecified;
    if i < end {
        let ch = b[i];
        if ch == b'Z' || ch == b'z' {
            zone = Zone::Utc;
            i += 1;
        } else {
            if i + 2 < end && digits2(b, i + 1).is_some() && (ch == b'+' || ch == b'-') {
                zone = Zone::Offset;
                i += 3;
            }
            if i < end {
                if b[i] == b':' {
                    i += 1;
                }
                if i + 1 < end && digits2(b, i).is_some() {
                    i += 2;
                }
            }
        }
    }
    (i == end).then_some(zone)
}

/// `/Date(ticks[±hh[mm]])/` as `DateTimeUtils.TryParseMicrosoftDate` reads
/// it, assuming the string starts at the beginning of Json.NET's buffer.
fn check_microsoft(s: &str) -> DateCheck {
    let b = s.as_bytes();
    let len = b.len();
    // IndexOf('+' then '-', 7, len - 8): search positions 7 .. len-1.
    let find = |c: u8| (7..len - 1).find(|&i| b[i] == c);
    let (tick_end, offset_ok) = match find(b'+').or_else(|| find(b'-')) {
        Some(idx) => {
            let hours_ok = parse_i32(&b[idx + 1..(idx + 3).min(len)]).is_some() && idx + 3 <= len;
            let minutes_ok =
                len - idx <= 5 || (idx + 5 <= len && parse_i32(&b[idx + 3..idx + 5]).is_some());
            (idx, hours_ok && minutes_ok)
        }
        None => (len - 2, true),
    };
    if !offset_ok {
        return DateCheck::NotDate;
    }
    let Some(ticks) = parse_i64(&b[6..tick_end]) else {
        return DateCheck::NotDate;
    };
    // new DateTime(ticks * 10000 + 621355968000000000) with unchecked
    // (wrapping) arithmetic; out of range throws.
    let dt_ticks = ticks
        .wrapping_mul(10_000)
        .wrapping_add(621_355_968_000_000_000);
    if (0..=3_155_378_975_999_999_999).contains(&dt_ticks) {
        DateCheck::Date
    } else {
        DateCheck::Throws
    }
}

/// `ConvertUtils.Int64TryParse`: optional `-`, then ASCII digits, no overflow.
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

fn parse_i32(b: &[u8]) -> Option<i32> {
    parse_i64(b).and_then(|v| i32::try_from(v).ok())
}

/// Whether Json.NET 13 (`DateParseHandling.DateTime`, no custom format)
/// reads the string value `s` as a Date token.
pub(crate) fn check_date(s: &str) -> DateCheck {
    let b = s.as_bytes();
    if b.first() == Some(&b'/') {
        if b.len() >= 9 && s.starts_with("/Date(") && s.ends_with(")/") {
            return check_microsoft(s);
        }
        return DateCheck::NotDate;
    }
    // Length bounds are in UTF-16 units; a non-ASCII string never parses.
    // The O(1) tests go first: every string value of every body comes here,
    // and almost none is a date. (A non-ASCII string whose byte length is
    // out of range is out of the ASCII-only result either way.)
    if !(19..=40).contains(&b.len()) || !b[0].is_ascii_digit() || b[10] != b'T' || !s.is_ascii() {
        return DateCheck::NotDate;
    }
    match parse_iso(s) {
        None => DateCheck::NotDate,
        // CreateDateTime adds a day for hour 24, which overflows on the last
        // representable day.
        Some(d) if d.hour == 24 && d.year == 9999 && d.month == 12 && d.day == 31 => {
            DateCheck::Throws
        }
        Some(_) => DateCheck::Date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        for s in [
            "2017-03-09T00:00:00Z",
            "2017-03-09T00:00:00",
            "2017-03-09T00:00:00.1234567Z",
            "2017-03-09T00:00:00.1+01:00",
            "2017-03-09T00:00:00-0100",
            "2017-03-09T00:00:00+01",
            "2016-02-29T23:59:59z",
            "2017-03-09T24:00:00",
            // Quirks of DateTimeParser.ParseZone.
            "2017-03-09T00:00:0012",
            "2017-03-09T00:00:00+01:",
            "2017-03-09T00:00:00.123456789",
        ] {
            assert_eq!(check_date(s), DateCheck::Date, "{s}");
        }
        for s in [
            "2017-03-09",
            "2017-03-09 00:00:00Z",
            "2017-02-29T00:00:00Z",
            "2017-13-01T00:00:00Z",
            "2017-00-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2017-03-09T24:00:01",
            "2017-03-09T23:60:00",
            "2017-03-09T00:00:00.",
            "2017-03-09T00:00:00Zx",
            "2017-03-09T00:00:00+1",
            "x2017-03-09T00:00:00",
            "2017-03-09T00:00:00Z and some more text here",
        ] {
            assert_eq!(check_date(s), DateCheck::NotDate, "{s}");
        }
        assert_eq!(check_date("9999-12-31T24:00:00"), DateCheck::Throws);
    }

    #[test]
    fn microsoft_dates() {
        assert_eq!(check_date("/Date(0)/"), DateCheck::Date);
        assert_eq!(check_date("/Date(-1000)/"), DateCheck::Date);
        assert_eq!(check_date("/Date(1234567890123+0100)/"), DateCheck::Date);
        assert_eq!(check_date("/Date(1234567890123-01)/"), DateCheck::Date);
        assert_eq!(check_date("/Date(12x)/"), DateCheck::NotDate);
        assert_eq!(check_date("/Date()/"), DateCheck::NotDate);
        assert_eq!(check_date("/Date(99999999999999999)/"), DateCheck::Throws);
        assert_eq!(check_date("/Dat(0)/"), DateCheck::NotDate);
    }

    #[test]
    fn leap_years() {
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 12), 31);
    }
}
