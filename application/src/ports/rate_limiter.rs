//! `RateLimiter`: GCRA decisions for a key.
//!
//! Adapters: `MemoryRateLimiter` (adapters/memory) and `RedisRateLimiter` (adapters/redis,
//! one limit shared by every node). The arithmetic is the domain's
//! [`QuotaPolicy::decide`](qudag_domain::quota::QuotaPolicy::decide); an adapter only stores
//! the per-key state and makes read-decide-write atomic.

use std::fmt;

use async_trait::async_trait;
use qudag_domain::quota::{Cost, Decision, QuotaPolicy};

use crate::BoxError;

/// What a limit is counted against: a principal or a client address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RateLimitKey(String);

impl RateLimitKey {
    /// The key of a principal (`user:<issuer>#<subject>`).
    pub fn principal(id: &qudag_domain::principal::PrincipalId) -> Self {
        Self(format!("user:{id}"))
    }

    /// The key of a client address (`ip:<addr>`).
    pub fn address(addr: &std::net::IpAddr) -> Self {
        Self(format!("ip:{addr}"))
    }

    /// A key with an explicit name (tests, custom policies).
    pub fn custom(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<RateLimitKey> for String {
    fn from(key: RateLimitKey) -> Self {
        key.0
    }
}

impl fmt::Display for RateLimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Errors a rate limiter may return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimiterError {
    /// The backend cannot be reached; the configured failure policy decides.
    #[error("rate limiter unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

/// Rate-limit decisions.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Decide a request of `cost` for `key` under `policy`, and record it when allowed.
    /// Read, decide and write are one atomic step: concurrent callers on any node sharing
    /// the limiter never together exceed the policy.
    ///
    /// # Errors
    /// `Unavailable` when the backend cannot be reached.
    async fn check(&self, key: &RateLimitKey, policy: &QuotaPolicy, cost: Cost) -> Result<Decision, RateLimiterError>;
}
