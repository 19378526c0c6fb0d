//! Rate-limit policies and the GCRA arithmetic.
//!
//! The Generic Cell Rate Algorithm keeps one number per key, the *theoretical arrival time*
//! (TAT): the instant at which the key's bucket would be full again. With emission interval
//! `T = period / limit` and tolerance `τ = T · burst`, a request of cost `c` at `now` is
//! allowed when `max(TAT, now) + c·T − τ ≤ now`, and then moves TAT to `max(TAT, now) + c·T`.
//! This is exactly a token bucket of capacity `burst` refilled at `limit` per `period`, but
//! needs a single timestamp of state and no background refill — which is what lets the Redis
//! adapter decide atomically in one round trip with the same arithmetic as the memory one.
//!
//! Everything here is a pure function of (policy, state, now, cost).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::{Timestamp, duration_micros};

/// A rate: `limit` units of cost per `period`, with up to `burst` units at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaPolicy {
    limit: u32,
    period: Duration,
    burst: u32,
}

impl QuotaPolicy {
    /// `limit` units per `period`, bursting to `burst`.
    ///
    /// # Errors
    /// [`QuotaPolicyError`] when any of the three is zero or the period is shorter than
    /// `limit` microseconds (the arithmetic works in whole microseconds).
    pub fn new(limit: u32, period: Duration, burst: u32) -> Result<Self, QuotaPolicyError> {
        if limit == 0 {
            return Err(QuotaPolicyError::ZeroLimit);
        }
        if burst == 0 {
            return Err(QuotaPolicyError::ZeroBurst);
        }
        if duration_micros(period) < u64::from(limit) {
            return Err(QuotaPolicyError::PeriodTooShort { limit, period });
        }
        Ok(Self { limit, period, burst })
    }

    /// `limit` units per minute, bursting to `burst`.
    ///
    /// # Errors
    /// As [`QuotaPolicy::new`].
    pub fn per_minute(limit: u32, burst: u32) -> Result<Self, QuotaPolicyError> {
        Self::new(limit, Duration::from_secs(60), burst)
    }

    /// Units per period.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The period `limit` applies to.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Units that may be spent at once from a full bucket.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `T`: microseconds one unit of cost takes to refill.
    pub fn emission_interval_micros(&self) -> u64 {
        duration_micros(self.period) / u64::from(self.limit)
    }

    /// `τ = T · burst`: how far ahead of now the TAT may run.
    pub fn tolerance_micros(&self) -> u64 {
        self.emission_interval_micros().saturating_mul(u64::from(self.burst))
    }

    /// Decide a request of `cost` units at `now` against the stored `state` (none for a key
    /// never seen or evicted), returning the decision and the state to store.
    ///
    /// A denied request leaves the state as it was: refusals cost nothing. A cost larger
    /// than the burst can never be allowed and is denied with no `retry_after`.
    pub fn decide(&self, state: Option<GcraState>, now: Timestamp, cost: u32) -> (Decision, GcraState) {
        let now_us = now.as_micros();
        let t = self.emission_interval_micros();
        let tau = self.tolerance_micros();
        let tat = state.map_or(now_us, |s| s.tat.max(now_us));
        let unchanged = GcraState { tat: state.map_or(now_us, |s| s.tat) };

        if cost > self.burst {
            let decision = Decision {
                allowed: false,
                limit: self.burst,
                remaining: remaining(now_us, tat, tau, t),
                reset_after: Duration::from_micros(tat - now_us),
                retry_after: None,
            };
            return (decision, unchanged);
        }

        let new_tat = tat.saturating_add(t.saturating_mul(u64::from(cost)));
        let allow_at = new_tat.saturating_sub(tau);
        if now_us >= allow_at {
            let decision = Decision {
                allowed: true,
                limit: self.burst,
                remaining: remaining(now_us, new_tat, tau, t),
                reset_after: Duration::from_micros(new_tat - now_us),
                retry_after: None,
            };
            (decision, GcraState { tat: new_tat })
        } else {
            let decision = Decision {
                allowed: false,
                limit: self.burst,
                remaining: remaining(now_us, tat, tau, t),
                reset_after: Duration::from_micros(tat - now_us),
                retry_after: Some(Duration::from_micros(allow_at - now_us)),
            };
            (decision, unchanged)
        }
    }
}

/// Whole units still available at `now` with theoretical arrival time `tat`.
fn remaining(now: u64, tat: u64, tau: u64, t: u64) -> u32 {
    let used = tat.saturating_sub(now);
    let free = tau.saturating_sub(used);
    u32::try_from(free / t.max(1)).unwrap_or(u32::MAX)
}

/// Invalid quota policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaPolicyError {
    /// A limit of zero would refuse everything; disable the limiter instead.
    #[error("rate limit must be at least 1 per period")]
    ZeroLimit,
    /// A burst of zero would refuse everything.
    #[error("burst must be at least 1")]
    ZeroBurst,
    /// More units than microseconds in the period.
    #[error("a limit of {limit} per {period:?} is finer than one microsecond per unit")]
    PeriodTooShort {
        /// The limit given.
        limit: u32,
        /// The period given.
        period: Duration,
    },
}

/// The stored state of one key: its theoretical arrival time, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcraState {
    /// Theoretical arrival time, microseconds since the epoch.
    pub tat: u64,
}

impl GcraState {
    /// How long the state still matters at `now`; once zero the key is indistinguishable
    /// from one never seen, so it may be evicted (or given this as its TTL).
    pub fn time_to_idle(&self, now: Timestamp) -> Duration {
        Duration::from_micros(self.tat.saturating_sub(now.as_micros()))
    }
}

/// The outcome of one rate-limit decision, with what the caller needs for `RateLimit`
/// headers and `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The bucket's capacity (the policy's burst).
    pub limit: u32,
    /// Units still available right after this decision.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
    /// For a denial, how long until the same request would be allowed; `None` when allowed,
    /// or when the cost exceeds the burst and no wait would help.
    pub retry_after: Option<Duration>,
}

/// Quota cost of an operation in units of the policy, e.g. an expensive simulation costing
/// more than a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cost(u32);

impl Cost {
    /// One unit: the cost of an ordinary request.
    pub const ONE: Self = Self(1);

    /// A cost of `units` (at least one).
    pub fn new(units: u32) -> Self {
        Self(units.max(1))
    }

    /// The units.
    pub fn units(self) -> u32 {
        self.0
    }
}

impl Default for Cost {
    fn default() -> Self {
        Self::ONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn policy_is_validated() {
        assert_eq!(QuotaPolicy::new(0, MINUTE, 1), Err(QuotaPolicyError::ZeroLimit));
        assert_eq!(QuotaPolicy::new(1, MINUTE, 0), Err(QuotaPolicyError::ZeroBurst));
        assert!(matches!(
            QuotaPolicy::new(1_000, Duration::from_micros(999), 1),
            Err(QuotaPolicyError::PeriodTooShort { .. })
        ));
        let p = QuotaPolicy::per_minute(600, 10).unwrap();
        assert_eq!(p.emission_interval_micros(), 100_000);
        assert_eq!(p.tolerance_micros(), 1_000_000);
    }

    #[test]
    fn fresh_key_allows_the_burst_then_refills_at_the_rate() {
        let p = QuotaPolicy::per_minute(60, 3).unwrap(); // one per second, burst 3
        let mut state = None;
        for expected_remaining in [2, 1, 0] {
            let (d, s) = p.decide(state, at(0), 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            state = Some(s);
        }
        let (d, _) = p.decide(state, at(0), 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(d.reset_after, Duration::from_secs(3));
        let (d, s) = p.decide(state, at(1_000), 1);
        assert!(d.allowed, "one unit refilled after one second");
        let (d, _) = p.decide(Some(s), at(1_000), 1);
        assert!(!d.allowed);
    }

    #[test]
    fn cost_weights_spend_several_units() {
        let p = QuotaPolicy::per_minute(60, 10).unwrap();
        let (d, s) = p.decide(None, at(0), 7);
        assert!(d.allowed);
        assert_eq!(d.remaining, 3);
        let (d, _) = p.decide(Some(s), at(0), 4);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(d.remaining, 3, "a denial spends nothing");
        let (d, s2) = p.decide(Some(s), at(0), 3);
        assert!(d.allowed);
        assert_eq!(s2.time_to_idle(at(0)), Duration::from_secs(10));
    }

    #[test]
    fn cost_above_burst_is_never_allowed() {
        let p = QuotaPolicy::per_minute(60, 5).unwrap();
        let (d, s) = p.decide(None, at(0), 6);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, None);
        assert_eq!(d.remaining, 5);
        assert_eq!(s.time_to_idle(at(0)), Duration::ZERO);
    }

    proptest! {
        /// A fresh key allows exactly `burst` unit requests at one instant.
        #[test]
        fn fresh_key_allows_exactly_burst(limit in 1u32..10_000, burst in 1u32..200, t0 in 0u64..1u64 << 50) {
            let p = QuotaPolicy::per_minute(limit, burst).unwrap();
            let now = Timestamp::from_micros(t0);
            let mut state = None;
            let mut allowed = 0;
            for _ in 0..burst + 5 {
                let (d, s) = p.decide(state, now, 1);
                if d.allowed { allowed += 1; }
                state = Some(s);
            }
            prop_assert_eq!(allowed, burst);
        }

        /// Over any window of length L, the allowed cost never exceeds burst + ⌈L / T⌉.
        #[test]
        fn never_exceeds_the_rate(
            limit in 1u32..600,
            burst in 1u32..20,
            steps in proptest::collection::vec((0u64..3_000_000, 1u32..4), 1..80),
        ) {
            let p = QuotaPolicy::per_minute(limit, burst).unwrap();
            let t = p.emission_interval_micros();
            let mut now = 1_000_000_000u64;
            let mut state = None;
            let mut allowed: Vec<(u64, u32)> = Vec::new();
            for (dt, cost) in steps {
                now += dt;
                let (d, s) = p.decide(state, Timestamp::from_micros(now), cost);
                state = Some(s);
                if d.allowed { allowed.push((now, cost)); }
            }
            for i in 0..allowed.len() {
                let mut sum = 0u64;
                for j in i..allowed.len() {
                    sum += u64::from(allowed[j].1);
                    let window = allowed[j].0 - allowed[i].0;
                    let bound = u64::from(burst) + window.div_ceil(t);
                    prop_assert!(sum <= bound, "{} units in {} us, bound {}", sum, window, bound);
                }
            }
        }

        /// Waiting `retry_after` after a denial is always enough for the same request.
        #[test]
        fn retry_after_is_sufficient_and_tight(
            limit in 1u32..1_000,
            burst in 1u32..20,
            spend in 1u32..40,
            cost in 1u32..20,
        ) {
            let p = QuotaPolicy::per_minute(limit, burst).unwrap();
            let now = Timestamp::from_secs(1_000);
            let mut state = None;
            for _ in 0..spend {
                state = Some(p.decide(state, now, 1).1);
            }
            let (d, _) = p.decide(state, now, cost);
            if !d.allowed {
                match d.retry_after {
                    Some(wait) => {
                        prop_assert!(p.decide(state, now.saturating_add(wait), cost).0.allowed);
                        if wait > Duration::from_micros(1) {
                            let early = now.saturating_add(wait - Duration::from_micros(1));
                            prop_assert!(!p.decide(state, early, cost).0.allowed);
                        }
                    }
                    None => prop_assert!(cost > burst),
                }
            }
        }

        /// `remaining` after an allowed request is exactly how many more unit requests fit now.
        #[test]
        fn remaining_is_exact(limit in 1u32..1_000, burst in 1u32..50, first in 1u32..50) {
            let p = QuotaPolicy::per_minute(limit, burst).unwrap();
            let now = Timestamp::from_secs(77);
            let (d, s) = p.decide(None, now, first);
            prop_assume!(d.allowed);
            let mut state = Some(s);
            let mut more = 0;
            while p.decide(state, now, 1).0.allowed {
                state = Some(p.decide(state, now, 1).1);
                more += 1;
            }
            prop_assert_eq!(more, d.remaining);
        }

        /// After `reset_after`, the full burst is available again.
        #[test]
        fn reset_after_restores_full_burst(limit in 1u32..1_000, burst in 1u32..50, spend in 1u32..50) {
            let p = QuotaPolicy::per_minute(limit, burst).unwrap();
            let now = Timestamp::from_secs(5);
            let mut state = None;
            let mut last = None;
            for _ in 0..spend {
                let (d, s) = p.decide(state, now, 1);
                state = Some(s);
                last = Some(d);
            }
            let reset = last.unwrap().reset_after;
            let later = now.saturating_add(reset);
            prop_assert_eq!(state.unwrap().time_to_idle(later), Duration::ZERO);
            let (d, _) = p.decide(state, later, burst);
            prop_assert!(d.allowed);
        }
    }
}
