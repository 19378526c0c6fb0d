//! `[sessions]`: MCP sessions of the stateful protocol era: their lifetimes, how many are
//! held (in all and per caller), what one may hold, and where they live
//! (`QUDAG_SESSION_*`, `QUDAG_MAX_SESSIONS`, `QUDAG_MAX_SESSIONS_PER_PRINCIPAL`,
//! `QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION`, `QUDAG_MAX_SUBSCRIPTION_URI_BYTES`).

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::parse::{parse_choice, parse_num, unknown};
use super::redis::StateStore;

/// MCP sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Seconds a session may stay unused.
    pub idle_timeout_secs: u64,
    /// Seconds a session may live at most.
    pub absolute_timeout_secs: u64,
    /// Live sessions held at most (memory store).
    pub max_sessions: usize,
    /// Live sessions one caller may hold (every store).
    pub max_sessions_per_principal: usize,
    /// Resource subscriptions one session may hold.
    pub max_subscriptions_per_session: usize,
    /// Bytes of a resource URI a subscription may name.
    pub max_subscription_uri_bytes: usize,
    /// Where sessions (and the list of live nodes) live.
    pub store: StateStore,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 1_800,
            absolute_timeout_secs: 86_400,
            max_sessions: 10_000,
            max_sessions_per_principal: 100,
            max_subscriptions_per_session: 32,
            max_subscription_uri_bytes: 1024,
            store: StateStore::Memory,
        }
    }
}

impl SessionSettings {
    /// Set `field` from a variable's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "idle_timeout_secs" => self.idle_timeout_secs = parse_num(v)?,
            "absolute_timeout_secs" => self.absolute_timeout_secs = parse_num(v)?,
            "max_sessions" => self.max_sessions = parse_num(v)?,
            "max_sessions_per_principal" => self.max_sessions_per_principal = parse_num(v)?,
            "max_subscriptions_per_session" => self.max_subscriptions_per_session = parse_num(v)?,
            "max_subscription_uri_bytes" => self.max_subscription_uri_bytes = parse_num(v)?,
            "store" => self.store = parse_choice(v, &[("memory", StateStore::Memory), ("redis", StateStore::Redis)])?,
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the session lifetimes, naming the variable of the first bad value.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.idle_timeout_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_SESSION_IDLE_TIMEOUT_SECS", 0, "must be at least 1"));
        }
        if self.absolute_timeout_secs < self.idle_timeout_secs {
            return Err(ConfigError::invalid(
                "QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS",
                self.absolute_timeout_secs,
                format!("must be at least the idle timeout ({} s)", self.idle_timeout_secs),
            ));
        }
        if self.max_sessions_per_principal == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_SESSIONS_PER_PRINCIPAL", 0, "must be at least 1"));
        }
        if self.max_subscriptions_per_session == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION", 0, "must be at least 1"));
        }
        if !(64..=65_536).contains(&self.max_subscription_uri_bytes) {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_SUBSCRIPTION_URI_BYTES",
                self.max_subscription_uri_bytes,
                "must be 64 to 65536",
            ));
        }
        Ok(())
    }

    /// Check where sessions are kept: checked with the other stores, after the endpoint.
    pub(super) fn validate_store(&self) -> Result<(), ConfigError> {
        if self.max_sessions == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_SESSIONS", 0, "must be at least 1"));
        }
        Ok(())
    }
}
