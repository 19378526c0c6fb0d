//! `[redis]`: the Redis every node shares for sessions, rate limits, the notification bus
//! and membership (`QUDAG_REDIS_*`), and [`StateStore`], the choice of keeping such state
//! in this process or in Redis.
//!
//! The URL may carry a password: it is shown only through the one redaction rule.

use std::fmt;

use qudag_domain::redact::redact_url;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::parse::{parse_num, unknown};
use super::redacted;

/// Where shared state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateStore {
    /// In this process.
    #[default]
    Memory,
    /// In Redis (`QUDAG_REDIS_URL`), shared by every node.
    Redis,
}

/// Redis.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`.
    #[serde(serialize_with = "redacted::url")]
    pub url: Option<String>,
    /// Prefix of every key the server writes.
    pub key_prefix: String,
    /// Connections per node.
    pub pool_size: u32,
    /// Milliseconds a command may take before Redis counts as unavailable.
    pub command_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self { url: None, key_prefix: "qudag:".into(), pool_size: 16, command_timeout_ms: 1_000 }
    }
}

// Shows the URL, but never its password.
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .finish()
    }
}

impl RedisSettings {
    /// Set `field` from a variable's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "url" => {
                if !(v.starts_with("redis://") || v.starts_with("rediss://")) {
                    return Err("expected a redis:// URL".into());
                }
                self.url = Some(v.to_owned());
            }
            "key_prefix" => self.key_prefix = v.to_owned(),
            "pool_size" => self.pool_size = parse_num(v)?,
            "command_timeout_ms" => self.command_timeout_ms = parse_num(v)?,
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section, naming the variable of the first bad value.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.pool_size == 0 {
            return Err(ConfigError::invalid("QUDAG_REDIS_POOL_SIZE", 0, "must be at least 1"));
        }
        if self.command_timeout_ms == 0 {
            return Err(ConfigError::invalid("QUDAG_REDIS_TIMEOUT_MS", 0, "must be at least 1"));
        }
        Ok(())
    }
}
