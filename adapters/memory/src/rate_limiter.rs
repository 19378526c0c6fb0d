//! `MemoryRateLimiter`: GCRA state per key in this process, decided by the domain's
//! arithmetic under the key's shard lock, with a bound on how many keys are remembered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use qudag_application::ports::{Clock, ComponentHealth, HealthIndicator, RateLimitKey, RateLimiter, RateLimiterError};
use qudag_domain::quota::{Cost, Decision, GcraState, QuotaPolicy};

use crate::shard::{SHARDS, Sharded};

/// GCRA state per key in this process's memory, for at most about `max_keys` keys.
///
/// A shard that reaches its share of `max_keys` first drops idle keys (whose state has
/// fully drained, so forgetting them changes no decision); if every key is still active it
/// drops the eighth of them closest to draining. A flood of distinct keys therefore costs
/// bounded memory, at worst returning a little allowance to the keys closest to full.
pub struct MemoryRateLimiter {
    keys: Sharded<String, GcraState>,
    max_keys_per_shard: usize,
    clock: Arc<dyn Clock>,
    evicted_active: AtomicU64,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter").field("max_keys_per_shard", &self.max_keys_per_shard).finish()
    }
}

impl MemoryRateLimiter {
    /// A limiter remembering at most about `max_keys` keys.
    pub fn new(max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys: Sharded::new(),
            max_keys_per_shard: max_keys.div_ceil(SHARDS).max(1),
            clock,
            evicted_active: AtomicU64::new(0),
        }
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.keys.each_shard().map(|s| s.len()).sum()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop every key whose state has drained; returns how many were dropped.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now().as_micros();
        let mut dropped = 0;
        for mut shard in self.keys.each_shard() {
            let before = shard.len();
            shard.retain(|_, s| s.tat > now);
            dropped += before - shard.len();
        }
        dropped
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &RateLimitKey, policy: &QuotaPolicy, cost: Cost) -> Result<Decision, RateLimiterError> {
        let now = self.clock.now();
        let mut shard = self.keys.shard(key.as_str());
        let state = shard.get(key.as_str()).copied();
        let (decision, next) = policy.decide(state, now, cost.units());
        if !decision.allowed {
            return Ok(decision);
        }
        if state.is_none() && shard.len() >= self.max_keys_per_shard {
            let now_us = now.as_micros();
            shard.retain(|_, s| s.tat > now_us);
            if shard.len() >= self.max_keys_per_shard {
                let mut tats: Vec<u64> = shard.values().map(|s| s.tat).collect();
                let cut = (tats.len() / 8).max(1);
                let (_, threshold, _) = tats.select_nth_unstable(cut - 1);
                let threshold = *threshold;
                let before = shard.len();
                shard.retain(|_, s| s.tat > threshold);
                self.evicted_active.fetch_add((before - shard.len()) as u64, Ordering::Relaxed);
            }
        }
        shard.insert(key.as_str().to_owned(), next);
        Ok(decision)
    }
}

#[async_trait]
impl HealthIndicator for MemoryRateLimiter {
    async fn health(&self) -> ComponentHealth {
        let evicted = self.evicted_active.load(Ordering::Relaxed);
        ComponentHealth::up(format!("memory: {} keys, {evicted} active keys evicted under pressure", self.len()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use qudag_application::testkit::ManualClock;
    use qudag_domain::Timestamp;

    use super::*;

    #[tokio::test]
    async fn a_flood_of_distinct_keys_stays_bounded() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
        let limiter = MemoryRateLimiter::new(1_000, clock.clone());
        let policy = QuotaPolicy::new(1, Duration::from_secs(3_600), 5).unwrap();
        for i in 0..50_000 {
            let d = limiter.check(&RateLimitKey::custom(format!("ip:{i}")), &policy, Cost::ONE).await.unwrap();
            assert!(d.allowed);
        }
        let held = limiter.len();
        assert!(held <= 1_000 + SHARDS, "held {held} keys");
    }

    #[tokio::test]
    async fn idle_keys_are_evicted_before_active_ones() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
        let limiter = MemoryRateLimiter::new(SHARDS * 2, clock.clone());
        let slow = QuotaPolicy::new(1, Duration::from_secs(3_600), 1).unwrap();
        let hot = RateLimitKey::custom("hot");
        assert!(limiter.check(&hot, &slow, Cost::ONE).await.unwrap().allowed);
        // Ten per second: each of these keys drains 100 ms after its use, long before the
        // next one arrives, so every shard always has an idle key to give up first.
        let fast = QuotaPolicy::new(10, Duration::from_secs(1), 1).unwrap();
        for i in 0..2_000 {
            limiter.check(&RateLimitKey::custom(format!("k{i}")), &fast, Cost::ONE).await.unwrap();
            clock.advance(Duration::from_millis(200));
        }
        assert!(!limiter.check(&hot, &slow, Cost::ONE).await.unwrap().allowed, "the active key kept its state");
        assert!(limiter.len() <= SHARDS * 2);
    }

    #[tokio::test]
    async fn sweep_forgets_drained_keys() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
        let limiter = MemoryRateLimiter::new(10_000, clock.clone());
        let policy = QuotaPolicy::new(10, Duration::from_secs(1), 1).unwrap();
        for i in 0..10 {
            limiter.check(&RateLimitKey::custom(format!("k{i}")), &policy, Cost::ONE).await.unwrap();
        }
        assert_eq!(limiter.sweep(), 0, "nothing has drained yet");
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.sweep(), 10);
        assert!(limiter.is_empty());
    }

    #[tokio::test]
    async fn denials_store_nothing() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
        let limiter = MemoryRateLimiter::new(100, clock);
        let policy = QuotaPolicy::new(1, Duration::from_secs(60), 2).unwrap();
        let d = limiter.check(&RateLimitKey::custom("big"), &policy, Cost::new(3)).await.unwrap();
        assert!(!d.allowed);
        assert!(limiter.is_empty());
    }
}
