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
