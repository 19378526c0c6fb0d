//! `[rate_limit]`: the per-caller rate limit and daily quota on `/mcp`, and what happens
//! when the limiter's backend cannot be reached (`QUDAG_RATE_LIMIT*`, `QUDAG_DAILY_QUOTA`).
//!
//! The burst follows the rate unless it is given: a caller may spend at most one minute's
//! worth of requests at once, and never more than [`MAX_DEFAULT_BURST`]. A burst that is
//! given (`QUDAG_RATE_LIMIT_BURST`, `burst` in the file) is used as it is, also above the
//! rate: a larger bucket that refills at the same rate is a deliberate choice, not a mistake.

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::parse::{parse_bool, parse_choice, parse_num, unknown};
use super::redis::StateStore;

/// What to do when the rate limiter's backend is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Let requests through.
    #[default]
    FailOpen,
    /// Refuse requests with 503.
    FailClosed,
}

/// The largest burst a caller gets when none is configured.
pub const MAX_DEFAULT_BURST: u32 = 100;

/// Rate limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests per minute per caller; 0 turns rate limiting off.
    pub requests_per_minute: u32,
    /// Requests a caller may make at once from a full allowance; unset, it follows the rate
    /// ([`RateLimitSettings::effective_burst`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Count authenticated callers per principal rather than per address.
    pub per_user: bool,
    /// Keys remembered at most (memory limiter).
    pub max_keys: usize,
    /// `fail-open` or `fail-closed`.
    pub on_failure: FailurePolicy,
    /// Where limiter state lives: `memory` (this process) or `redis` (shared by all nodes).
    pub store: StateStore,
    /// Requests per authenticated principal per rolling day; 0 for none.
    pub daily_quota: u32,
    /// Failed authentications per minute per client address; unset, the rate
    /// ([`RateLimitSettings::effective_auth_failures`]); 0 for no such limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_failures: Option<u32>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            burst: None,
            per_user: true,
            max_keys: 100_000,
            on_failure: FailurePolicy::FailOpen,
            store: StateStore::Memory,
            daily_quota: 0,
            auth_failures: None,
        }
    }
}

impl RateLimitSettings {
    /// The burst in force: the configured one, else one minute's worth of requests up to
    /// [`MAX_DEFAULT_BURST`] (at least 1).
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or_else(|| self.requests_per_minute.clamp(1, MAX_DEFAULT_BURST))
    }

    /// Failed authentications allowed per minute per address: the configured number, else
    /// the rate (0: no limit).
    pub fn effective_auth_failures(&self) -> u32 {
        self.auth_failures.unwrap_or(self.requests_per_minute)
    }

    /// The burst of the failed-authentication allowance: the rate limit's burst while the
    /// allowance follows the rate, else the allowance's minute's worth, at most
    /// [`MAX_DEFAULT_BURST`].
    pub fn auth_failure_burst(&self) -> u32 {
        match self.auth_failures {
            None => self.effective_burst(),
            Some(n) => n.clamp(1, MAX_DEFAULT_BURST),
        }
    }

    /// Set `field` from a variable's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "requests_per_minute" => self.requests_per_minute = parse_num(v)?,
            "burst" => self.burst = Some(parse_num(v)?),
            "per_user" => self.per_user = parse_bool(v)?,
            "max_keys" => self.max_keys = parse_num(v)?,
            "on_failure" => {
                self.on_failure = parse_choice(
                    v,
                    &[("fail-open", FailurePolicy::FailOpen), ("fail-closed", FailurePolicy::FailClosed)],
                )?;
            }
            "store" => self.store = parse_choice(v, &[("memory", StateStore::Memory), ("redis", StateStore::Redis)])?,
            "daily_quota" => self.daily_quota = parse_num(v)?,
            "auth_failures" => self.auth_failures = Some(parse_num(v)?),
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section; with limiting off (`QUDAG_RATE_LIMIT=0`) the other values are moot.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.requests_per_minute > 0 {
            if self.burst == Some(0) {
                return Err(ConfigError::invalid("QUDAG_RATE_LIMIT_BURST", 0, "must be at least 1"));
            }
            if self.max_keys == 0 {
                return Err(ConfigError::invalid("QUDAG_RATE_LIMIT_MAX_KEYS", 0, "must be at least 1"));
            }
        }
        Ok(())
    }
}
