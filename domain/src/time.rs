//! Time as the core sees it: microseconds since the Unix epoch.
//!
//! The core never reads a clock; the application's `Clock` port supplies a [`Timestamp`],
//! which keeps every rule deterministic under test.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time, in microseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Self = Self(0);

    /// A timestamp from microseconds since the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// A timestamp from milliseconds since the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000))
    }

    /// A timestamp from whole seconds since the epoch (saturating), as JWT claims carry.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch (truncated).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// Whole seconds since the epoch (truncated).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// This instant moved forward by `d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_micros(d)))
    }

    /// This instant moved back by `d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_micros(d)))
    }

    /// How long after `earlier` this instant is; zero when it is not after it.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// RFC 3339 / ISO 8601 in UTC with microseconds, e.g. `2026-11-24T10:15:30.000250Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0 / 1_000_000;
        let micros = self.0 % 1_000_000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3_600, (rem % 3_600) / 60, rem % 60)
    }

    /// Parse an RFC 3339 date-time (`2026-11-24T10:15:30Z`, `…30.25+01:00`); instants before
    /// 1970 and beyond microsecond range are refused. Returns `None` on any malformed input.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let (secs, micros) = rfc3339_parts(text)?;
        u64::try_from(secs).ok()?.checked_mul(1_000_000)?.checked_add(micros).map(Self)
    }

    /// Like [`Self::parse_rfc3339`], but a well-formed instant before 1970 is read as the
    /// epoch itself: for bounds of a range of events, where "from 1900" means "from the
    /// beginning".
    pub fn parse_rfc3339_clamped(text: &str) -> Option<Self> {
        let (secs, micros) = rfc3339_parts(text)?;
        if secs < 0 {
            return Some(Self::UNIX_EPOCH);
        }
        u64::try_from(secs).ok()?.checked_mul(1_000_000)?.checked_add(micros).map(Self)
    }

    /// The UTC calendar day this instant falls on, as days since the epoch.
    pub const fn day_number(self) -> u64 {
        self.0 / 86_400_000_000
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A duration in whole microseconds, saturating at `u64::MAX`.
pub fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The parts of an RFC 3339 date-time: seconds since the epoch (negative before 1970) and
/// microseconds; `None` on malformed input.
fn rfc3339_parts(text: &str) -> Option<(i64, u64)> {
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0u64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = b.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        for (k, d) in digits.iter().take(6).enumerate() {
            micros += u64::from(d - b'0') * 10u64.pow(5 - k as u32);
        }
    }
    let offset_secs: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::try_from(num(i + 1..i + 3)?).ok()?;
            let m = i64::try_from(num(i + 4..i + 6)?).ok()?;
            let _ = (h1, h2, m1, m2);
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 3_600 + m * 60;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day)?;
    let local = days.checked_mul(86_400)?.checked_add(i64::try_from(hour * 3_600 + minute * 60 + second).ok()?)?;
    Some((local.checked_sub(offset_secs)?, micros))
}

/// Days in `month` of `year` (Gregorian).
fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A (year, month, day) to days since the epoch, negative before 1970 (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<i64> {
    let y = i64::try_from(year).ok()? - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::try_from(if month > 2 { month - 3 } else { month + 9 }).ok()?;
    let doy = (153 * mp + 2) / 5 + i64::try_from(day).ok()? - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Days since the epoch to a (year, month, day) in the proleptic Gregorian calendar.
///
/// Howard Hinnant's `civil_from_days`, restricted to dates on or after 1970.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants_as_rfc3339() {
        assert_eq!(Timestamp::UNIX_EPOCH.to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.789 UTC.
        let t = Timestamp::from_millis(951_827_696_789);
        assert_eq!(t.to_rfc3339(), "2000-02-29T12:34:56.789000Z");
        // 2026-11-24T00:00:00Z
        assert_eq!(Timestamp::from_secs(1_795_478_400).to_rfc3339(), "2026-11-24T00:00:00.000000Z");
    }

    #[test]
    fn parses_rfc3339_and_round_trips() {
        for t in [0, 951_827_696_789_000, 1_795_478_400_000_000, 1_795_478_400_123_456] {
            let t = Timestamp::from_micros(t);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        }
        assert_eq!(Timestamp::parse_rfc3339("2026-11-24T00:00:00Z"), Some(Timestamp::from_secs(1_795_478_400)));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-24T01:30:00+01:30"), Some(Timestamp::from_secs(1_795_478_400)));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-11-23T22:00:00.5-02:00"),
            Some(Timestamp::from_millis(1_795_478_400_500))
        );
        for bad in [
            "",
            "2026-11-24",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-24T00:00:00",
            "2026-11-24T24:00:00Z",
            "2026-11-24T00:00:00.Z",
            "2026-11-24T00:00:00+1:00",
            "２026-11-24T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
        assert!(Timestamp::parse_rfc3339("2024-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn clamped_parsing_reads_instants_before_1970_as_the_epoch() {
        for early in
            ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1970-01-01T00:30:00+01:00", "1900-02-28T12:00:00.5-23:59"]
        {
            assert_eq!(Timestamp::parse_rfc3339(early), None, "{early}");
            assert_eq!(Timestamp::parse_rfc3339_clamped(early), Some(Timestamp::UNIX_EPOCH), "{early}");
        }
        assert_eq!(
            Timestamp::parse_rfc3339_clamped("2026-11-24T01:30:00+01:30"),
            Some(Timestamp::from_secs(1_795_478_400))
        );
        assert_eq!(
            Timestamp::parse_rfc3339_clamped("9999-12-31T23:59:59.999999-23:59").map(|t| t.day_number()),
            Some(2_932_897)
        );
        for bad in ["", "1969-13-01T00:00:00Z", "1900-02-29T00:00:00Z", "yesterday"] {
            assert_eq!(Timestamp::parse_rfc3339_clamped(bad), None, "{bad}");
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(10);
        assert_eq!(t.saturating_sub(Duration::from_secs(20)), Timestamp::UNIX_EPOCH);
        assert_eq!(
            Timestamp::from_micros(u64::MAX).saturating_add(Duration::from_secs(1)),
            Timestamp::from_micros(u64::MAX)
        );
        assert_eq!(Timestamp::from_secs(5).saturating_duration_since(Timestamp::from_secs(9)), Duration::ZERO);
        assert_eq!(t.day_number(), 0);
        assert_eq!(Timestamp::from_secs(86_400).day_number(), 1);
    }
}
