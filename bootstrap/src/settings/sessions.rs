//! `[sessions]`: MCP sessions of the stateful protocol era: their lifetimes, how many are
//! held, and where they live (`QUDAG_SESSION_*`, `QUDAG_MAX_SESSIONS`).

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
    /// Where sessions (and the list of live nodes) live.
    pub store: StateStore,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 1_800,
            absolute_timeout_secs: 86_400,
            max_sessions: 10_000,
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
