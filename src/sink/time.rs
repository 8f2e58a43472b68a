//! UTC time for sinks: IoT Hub's timestamp format and an injectable clock.
//!
//! The formatting is done here (a few lines of civil-calendar arithmetic) instead of pulling in a
//! date-time crate: sinks only ever need "this instant, in UTC, as IoT Hub prints it" and the
//! date parts of a Storage file name.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a sink gets "now" from. Storage files are named and rolled by wall-clock time; tests
/// (and replays) substitute a [`ManualClock`] so they neither sleep nor depend on the date.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Clones share the same time, so a test keeps one clone
/// and hands another to the sink.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock to `time` (backwards too).
    pub fn set(&self, time: SystemTime) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = time;
    }

    /// Moves the clock forward by `by` (saturating at the latest representable time).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = now.checked_add(by) {
            *now = t;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A UTC instant broken into calendar parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UtcParts {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Hundreds of nanoseconds (.NET ticks) within the second: 0..10_000_000.
    pub ticks: u32,
}

/// Splits `time` into UTC calendar parts (proleptic Gregorian; times before 1970 work too).
pub(crate) fn utc_parts(time: SystemTime) -> UtcParts {
    // Whole seconds since the epoch, floored, and the non-negative nanoseconds after them.
    let (secs, nanos): (i64, u32) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    UtcParts {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        ticks: nanos / 100,
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day). Exact for
/// the whole `i64` day range a `SystemTime` can produce (the arithmetic stays far from overflow
/// because the day count is at most `i64::MAX / 86400`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `time` as IoT Hub writes `EnqueuedTimeUtc` and the `enqueuedTime` system property in Storage
/// records: ISO 8601 in UTC with seven fractional digits (.NET's `o` format), e.g.
/// `2019-05-10T06:06:32.7220000Z`. Sub-100 ns precision is truncated, as .NET ticks are.
pub fn format_enqueued_time(time: SystemTime) -> String {
    let p = utc_parts(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.ticks
    )
}

/// What [`format_enqueued_time`] returns, in a buffer of its own: digits written directly
/// (the `format!` machinery cost about a thousand instructions per copy rendered).
pub(crate) struct EnqueuedTimeText {
    bytes: [u8; 28],
    /// A year outside 0..=9999, which needs more (or signed) digits: formatted.
    other: Option<String>,
}

thread_local! {
    /// The whole second since the epoch last formatted on this thread and its text up to the
    /// fraction (`2019-05-10T06:06:32`): copies rendered one after another were mostly
    /// accepted within the same second, and the date's arithmetic was a third of rendering
    /// a small copy's fixed part.
    static LAST_SECOND: std::cell::Cell<(u64, [u8; 19])> =
        const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

impl EnqueuedTimeText {
    pub fn new(time: SystemTime) -> Self {
        let Ok(since) = time.duration_since(UNIX_EPOCH) else {
            return Self::format(time);
        };
        let (secs, ticks) = (since.as_secs(), since.subsec_nanos() / 100);
        let (last, prefix) = LAST_SECOND.with(std::cell::Cell::get);
        if last != secs {
            let text = Self::format(time);
            if text.other.is_none() {
                let mut prefix = [0u8; 19];
                prefix.copy_from_slice(&text.bytes[..19]);
                LAST_SECOND.with(|c| c.set((secs, prefix)));
            }
            return text;
        }
        let mut bytes = *b"0000-00-00T00:00:00.0000000Z";
        bytes[..19].copy_from_slice(&prefix);
        let mut n = ticks;
        for b in bytes[20..27].iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
        EnqueuedTimeText { bytes, other: None }
    }

    /// [`EnqueuedTimeText::new`] from the calendar parts, without the cache.
    fn format(time: SystemTime) -> Self {
        let p = utc_parts(time);
        if !(0..=9999).contains(&p.year) {
            return EnqueuedTimeText {
                bytes: [0; 28],
                other: Some(format_enqueued_time(time)),
            };
        }
        let mut b = *b"0000-00-00T00:00:00.0000000Z";
        let mut put = |at: usize, width: usize, mut n: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, p.year as u64);
        put(5, 2, u64::from(p.month));
        put(8, 2, u64::from(p.day));
        put(11, 2, u64::from(p.hour));
        put(14, 2, u64::from(p.minute));
        put(17, 2, u64::from(p.second));
        put(20, 7, u64::from(p.ticks));
        EnqueuedTimeText {
            bytes: b,
            other: None,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.other {
            Some(s) => s.as_bytes(),
            None => &self.bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.other {
            Some(s) => s,
            // Digits and separators written above: always ASCII.
            None => std::str::from_utf8(&self.bytes).unwrap_or_default(),
        }
    }
}

/// Reads back what [`format_enqueued_time`] writes (`2019-05-10T06:06:32.7220000Z`, any number
/// of fraction digits, or none), so a router can keep the time the bridge stamped as the
/// record's `EnqueuedTimeUtc`. `None` for anything else, or a time before 1970.
pub fn parse_enqueued_time(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = text.get(19..)?.strip_suffix('Z')?;
    let nanos = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        _ => return None,
    };
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Howard Hinnant's `days_from_civil`, the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `500ms`, `30s`, `2m`, `1h` or a plain number of seconds.
/// (Command-line and URL spelling of the retry, idle and acknowledgement times.)
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn formats_like_iot_hub() {
        // 2019-05-10T06:06:32.722Z, the example in IoT Hub's documentation.
        assert_eq!(
            format_enqueued_time(at(1_557_468_392, 722_000_000)),
            "2019-05-10T06:06:32.7220000Z"
        );
        assert_eq!(
            format_enqueued_time(UNIX_EPOCH),
            "1970-01-01T00:00:00.0000000Z"
        );
        assert_eq!(
            format_enqueued_time(at(951_782_400, 99)),
            "2000-02-29T00:00:00.0000000Z",
            "leap day; sub-tick nanoseconds truncate"
        );
        assert_eq!(
            format_enqueued_time(at(4_102_444_799, 999_999_999)),
            "2099-12-31T23:59:59.9999999Z"
        );
    }

    /// The direct digits are the formatted text, over a spread of times and years.
    #[test]
    fn text_is_the_formatted_time() {
        let mut t = UNIX_EPOCH - Duration::from_secs(86_400 * 365 * 2000);
        for _ in 0..5_000 {
            let text = EnqueuedTimeText::new(t);
            assert_eq!(text.as_bytes(), format_enqueued_time(t).as_bytes());
            t += Duration::new(86_400 * 301 + 3_607, 123_456_789);
        }
        // Within a second and across: the cached date and time of the second is the same.
        let mut t = UNIX_EPOCH + Duration::new(1_793_000_000 - 2, 999_999_950);
        for i in 0..2_000u32 {
            let text = EnqueuedTimeText::new(t);
            assert_eq!(text.as_bytes(), format_enqueued_time(t).as_bytes());
            t += Duration::from_nanos(u64::from(i % 7) * 49_999_983 + 1);
        }
    }

    #[test]
    fn before_the_epoch() {
        let t = UNIX_EPOCH - Duration::new(1, 500_000_000);
        assert_eq!(format_enqueued_time(t), "1969-12-31T23:59:58.5000000Z");
        let t = UNIX_EPOCH - Duration::from_secs(86_400 * 365);
        assert_eq!(format_enqueued_time(t), "1969-01-01T00:00:00.0000000Z");
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        // Day by day from 1600 to 2400, the date advances by exactly one calendar day.
        let mut prev = civil_from_days(-135_140 - 1);
        for days in -135_140..157_000 {
            let cur = civil_from_days(days);
            let (y, m, d) = prev;
            let next_day = (y, m, d + 1);
            let next_month = (y, m + 1, 1);
            let next_year = (y + 1, 1, 1);
            assert!(
                cur == next_day || cur == next_month || cur == next_year,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
    }

    #[test]
    fn manual_clock_is_shared() {
        let c = ManualClock::new(UNIX_EPOCH);
        let c2 = c.clone();
        c.advance(Duration::from_secs(5));
        assert_eq!(c2.now(), at(5, 0));
        c2.set(at(1, 0));
        assert_eq!(c.now(), at(1, 0));
        assert!(SystemClock.now() > UNIX_EPOCH);
    }

    #[test]
    fn enqueued_time_round_trips() {
        for t in [
            at(0, 0),
            at(1_557_468_392, 722_000_000),
            at(4_102_444_799, 999_999_900),
        ] {
            assert_eq!(parse_enqueued_time(&format_enqueued_time(t)), Some(t));
        }
        assert_eq!(
            parse_enqueued_time("2019-05-10T06:06:32Z"),
            Some(at(1_557_468_392, 0))
        );
        for bad in [
            "",
            "2019-05-10 06:06:32Z",
            "2019-13-10T06:06:32Z",
            "2019-05-10T06:06:32.Z",
            "2019-05-10T06:06:32+01:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_enqueued_time(bad), None, "{bad}");
        }
    }
}
