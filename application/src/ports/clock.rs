//! `Clock`: the current time.
//!
//! Implementations: [`SystemClock`] here — it needs nothing but the standard library, so
//! every build has it — and `ManualClock` (testkit) for tests that drive time by hand
//! instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use qudag_domain::Timestamp;

/// A source of the current time.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
pub trait Clock: Send + Sync + 'static {
    /// The current time. Successive calls on one clock never go backwards.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock, made monotonic: if the system time steps backwards
/// (an NTP correction), `now` holds still instead of going back, so expiries and rate
/// limits never run in reverse.
#[derive(Debug, Default)]
pub struct SystemClock {
    last: AtomicU64,
}

impl SystemClock {
    /// A new clock.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let previous = self.last.fetch_max(wall, Ordering::AcqRel);
        Timestamp::from_micros(previous.max(wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_and_is_near_the_wall_clock() {
        let clock = SystemClock::new();
        let mut last = clock.now();
        for _ in 0..1_000 {
            let t = clock.now();
            assert!(t >= last);
            last = t;
        }
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(last.as_secs().abs_diff(wall) <= 1);
        // A clock that once saw the future holds there rather than stepping back.
        clock.last.store(u64::MAX - 1, Ordering::SeqCst);
        assert_eq!(clock.now(), Timestamp::from_micros(u64::MAX - 1));
    }
}
