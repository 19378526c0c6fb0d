//! The `RateLimiter` contract.
//!
//! Limiters read time from their own source (the process clock, or the shared backend's
//! clock so that nodes agree), so the checks that need time to pass use short real
//! periods instead of a manual clock.
//!
//! ```ignore
//! qudag_application::rate_limiter_contract!(make_limiter); // async fn make_limiter() -> Arc<dyn RateLimiter>
//! ```

use std::sync::Arc;
use std::time::Duration;

use qudag_domain::quota::{Cost, QuotaPolicy};

use crate::ports::{RateLimitKey, RateLimiter};

fn key(name: &str) -> RateLimitKey {
    RateLimitKey::custom(format!("contract:{name}"))
}

fn slow(burst: u32) -> QuotaPolicy {
    // One unit per hour: nothing refills during a test.
    QuotaPolicy::new(1, Duration::from_secs(3_600), burst).expect("policy")
}

/// A fresh key allows exactly the burst, then refuses with a retry hint.
pub async fn allows_exactly_the_burst(limiter: Arc<dyn RateLimiter>) {
    let policy = slow(7);
    let k = key("burst");
    for expected in (0..7).rev() {
        let d = limiter.check(&k, &policy, Cost::ONE).await.expect("check");
        assert!(d.allowed);
        assert_eq!(d.remaining, expected);
        assert_eq!(d.limit, 7);
    }
    let d = limiter.check(&k, &policy, Cost::ONE).await.expect("check");
    assert!(!d.allowed);
    let retry = d.retry_after.expect("retry hint");
    assert!(retry > Duration::from_secs(3_500) && retry <= Duration::from_secs(3_600), "{retry:?}");
}

/// Units come back at the policy's rate.
pub async fn refills_at_the_rate(limiter: Arc<dyn RateLimiter>) {
    // 20 per second: one unit every 50 ms.
    let policy = QuotaPolicy::new(20, Duration::from_secs(1), 2).expect("policy");
    let k = key("refill");
    assert!(limiter.check(&k, &policy, Cost::ONE).await.expect("check").allowed);
    assert!(limiter.check(&k, &policy, Cost::ONE).await.expect("check").allowed);
    let denied = limiter.check(&k, &policy, Cost::ONE).await.expect("check");
    assert!(!denied.allowed);
    tokio::time::sleep(denied.retry_after.expect("hint") + Duration::from_millis(20)).await;
    assert!(limiter.check(&k, &policy, Cost::ONE).await.expect("check").allowed, "a unit refilled after retry_after");
}

/// Costs spend several units; a denial spends nothing; a cost over the burst is never allowed.
pub async fn cost_weights_are_honoured(limiter: Arc<dyn RateLimiter>) {
    let policy = slow(10);
    let k = key("cost");
    let d = limiter.check(&k, &policy, Cost::new(7)).await.expect("check");
    assert!(d.allowed);
    assert_eq!(d.remaining, 3);
    let d = limiter.check(&k, &policy, Cost::new(4)).await.expect("check");
    assert!(!d.allowed);
    assert_eq!(d.remaining, 3);
    let d = limiter.check(&k, &policy, Cost::new(3)).await.expect("check");
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
    let d = limiter.check(&key("cost-huge"), &policy, Cost::new(11)).await.expect("check");
    assert!(!d.allowed);
    assert_eq!(d.retry_after, None);
}

/// Concurrent callers together never exceed the limit.
pub async fn concurrent_callers_never_exceed_the_limit(limiter: Arc<dyn RateLimiter>) {
    let policy = slow(25);
    let k = key("concurrent");
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let limiter = limiter.clone();
            let k = k.clone();
            tokio::spawn(async move { limiter.check(&k, &policy, Cost::ONE).await.expect("check").allowed })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.expect("task") {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 25);
}

/// Keys do not share allowance.
pub async fn keys_are_independent(limiter: Arc<dyn RateLimiter>) {
    let policy = slow(1);
    assert!(limiter.check(&key("a"), &policy, Cost::ONE).await.expect("check").allowed);
    assert!(!limiter.check(&key("a"), &policy, Cost::ONE).await.expect("check").allowed);
    assert!(limiter.check(&key("b"), &policy, Cost::ONE).await.expect("check").allowed);
}

/// Once a key's state has fully drained it behaves as new: the whole burst is back.
pub async fn drained_keys_start_afresh(limiter: Arc<dyn RateLimiter>) {
    // 100 per second, burst 3: full again 30 ms after the last use.
    let policy = QuotaPolicy::new(100, Duration::from_secs(1), 3).expect("policy");
    let k = key("expiry");
    let mut last = None;
    for _ in 0..3 {
        last = Some(limiter.check(&k, &policy, Cost::ONE).await.expect("check"));
    }
    let reset = last.expect("decided").reset_after;
    tokio::time::sleep(reset + Duration::from_millis(20)).await;
    let d = limiter.check(&k, &policy, Cost::new(3)).await.expect("check");
    assert!(d.allowed, "full burst after reset_after");
}

/// Expand the `RateLimiter` contract into one `#[tokio::test]` per check.
///
/// `$make` is an async function returning a fresh `Arc<dyn RateLimiter>` whose keys no
/// other test shares.
#[macro_export]
macro_rules! rate_limiter_contract {
    ($make:path) => {
        $crate::__contract_tests!($crate::testkit::rate_limiter, $make;
            allows_exactly_the_burst,
            refills_at_the_rate,
            cost_weights_are_honoured,
            concurrent_callers_never_exceed_the_limit,
            keys_are_independent,
            drained_keys_start_afresh,
        );
    };
}
