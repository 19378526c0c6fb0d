//! How long to wait between attempts at something that failed: the one schedule behind
//! every retry loop (the audit queue's writer, the event store's poll, the pub/sub
//! reconnect, the answer router, the audit spool's replay, the resumable stream's writes).
//!
//! The schedule is pure arithmetic on [`Duration`]s; the caller sleeps and measures time
//! with whatever clock it runs on. Keeping the waiting out of here is what lets one helper
//! serve loops in every ring, and lets a test list the delays without sleeping.
//!
//! ```
//! use std::time::Duration;
//! use qudag_domain::backoff::Backoff;
//!
//! let mut backoff = Backoff::exponential(Duration::from_millis(50), Duration::from_secs(2));
//! let delays: Vec<_> = (0..8).map(|_| backoff.next_delay().as_millis()).collect();
//! assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
//! ```

use std::time::Duration;

/// A schedule of delays: the first, then each one grown (multiplied by a factor, or
/// extended by a step) up to a maximum, with an optional deadline after which the caller
/// gives up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    growth: Growth,
    give_up_after: Option<Duration>,
    next: Duration,
}

/// How one delay becomes the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Growth {
    /// Multiplied by this factor.
    Factor(u32),
    /// Extended by this much.
    Step(Duration),
}

impl Backoff {
    /// `first`, then doubled each time up to `max`: for a backend that may stay away a
    /// while, so retries thin out quickly but never wait longer than `max`.
    pub const fn exponential(first: Duration, max: Duration) -> Self {
        Self { first, max, growth: Growth::Factor(2), give_up_after: None, next: first }
    }

    /// `step`, `2·step`, `3·step`, … up to `max`: for a periodic job that should slow down
    /// gently while its target is away.
    pub const fn linear(step: Duration, max: Duration) -> Self {
        Self { first: step, max, growth: Growth::Step(step), give_up_after: None, next: step }
    }

    /// The same schedule with each delay multiplied by `factor` instead of 2.
    #[must_use]
    pub const fn factor(mut self, factor: u32) -> Self {
        self.growth = Growth::Factor(factor);
        self
    }

    /// The same schedule, ending once `limit` has passed since the first attempt
    /// (see [`Backoff::next_delay_within`]).
    #[must_use]
    pub const fn give_up_after(mut self, limit: Duration) -> Self {
        self.give_up_after = Some(limit);
        self
    }

    /// The delay before the next attempt; the schedule then moves on.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = match self.growth {
            Growth::Factor(factor) => delay.saturating_mul(factor),
            Growth::Step(step) => delay.saturating_add(step),
        }
        .min(self.max);
        delay
    }

    /// As [`Backoff::next_delay`], for a caller that started `elapsed` ago: `None` once
    /// the deadline set by [`Backoff::give_up_after`] has passed, and otherwise a delay
    /// that ends no later than the deadline. Without a deadline, never `None`.
    pub fn next_delay_within(&mut self, elapsed: Duration) -> Option<Duration> {
        match self.give_up_after {
            Some(limit) if elapsed >= limit => None,
            Some(limit) => Some(self.next_delay().min(limit - elapsed)),
            None => Some(self.next_delay()),
        }
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn take(backoff: &mut Backoff, n: usize) -> Vec<u128> {
        (0..n).map(|_| backoff.next_delay().as_millis()).collect()
    }

    #[test]
    fn exponential_doubles_up_to_the_maximum_and_starts_over_on_reset() {
        let mut backoff = Backoff::exponential(ms(100), Duration::from_secs(5));
        assert_eq!(take(&mut backoff, 8), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(take(&mut backoff, 2), [100, 200]);
    }

    #[test]
    fn a_maximum_that_is_not_a_power_of_two_away_is_reached_exactly() {
        let mut backoff = Backoff::exponential(ms(20), ms(200));
        assert_eq!(take(&mut backoff, 6), [20, 40, 80, 160, 200, 200]);
    }

    #[test]
    fn another_factor() {
        let mut backoff = Backoff::exponential(ms(10), ms(1_000)).factor(3);
        assert_eq!(take(&mut backoff, 6), [10, 30, 90, 270, 810, 1000]);
    }

    #[test]
    fn linear_grows_by_its_step() {
        let mut backoff = Backoff::linear(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(take(&mut backoff, 7), [1000, 2000, 3000, 4000, 5000, 5000, 5000]);
        backoff.reset();
        assert_eq!(take(&mut backoff, 1), [1000]);
    }

    #[test]
    fn the_deadline_clips_the_last_delay_then_ends_the_schedule() {
        let mut backoff = Backoff::exponential(ms(50), Duration::from_secs(2)).give_up_after(ms(120));
        assert_eq!(backoff.next_delay_within(Duration::ZERO), Some(ms(50)));
        assert_eq!(backoff.next_delay_within(ms(50)), Some(ms(70)), "100 ms would pass the deadline");
        assert_eq!(backoff.next_delay_within(ms(120)), None);
        assert_eq!(backoff.next_delay_within(ms(500)), None);
    }

    #[test]
    fn without_a_deadline_the_schedule_never_ends() {
        let mut backoff = Backoff::exponential(ms(50), ms(100));
        assert_eq!(backoff.next_delay_within(Duration::MAX), Some(ms(50)));
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let mut backoff = Backoff::exponential(Duration::MAX / 2, Duration::MAX);
        assert_eq!(take(&mut backoff, 3).len(), 3);
        assert_eq!(backoff.next_delay(), Duration::MAX);
    }

    proptest! {
        #[test]
        fn delays_never_shrink_and_never_pass_the_maximum(
            first in 0u64..10_000, max in 0u64..100_000, factor in 1u32..5, steps in 1usize..40,
        ) {
            let mut backoff = Backoff::exponential(ms(first), ms(max)).factor(factor);
            let delays = take(&mut backoff, steps);
            prop_assert!(delays.windows(2).all(|w| w[0] <= w[1]));
            prop_assert!(delays.iter().all(|d| *d <= u128::from(max)));
        }
    }
}
