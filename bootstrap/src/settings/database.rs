//! `[database]`: the PostgreSQL every node shares for vault entries, `.dark` names and the
//! audit trail (`QUDAG_DATABASE_URL`, `QUDAG_DATABASE_POOL_SIZE`).
//!
//! The URL may carry a password: it is shown only through the one redaction rule.

use std::fmt;

use qudag_domain::redact::redact_url;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::parse::{non_empty, parse_num, unknown};
use super::redacted;

/// PostgreSQL.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`.
    #[serde(serialize_with = "redacted::url")]
    pub url: Option<String>,
    /// Connections per node.
    pub pool_size: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: None, pool_size: 10 }
    }
}

// Shows the URL, but never its password.
impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl DatabaseSettings {
    /// Set `field` from a variable's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "url" => self.url = non_empty(v),
            "pool_size" => self.pool_size = parse_num(v)?,
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.pool_size == 0 {
            return Err(ConfigError::invalid("QUDAG_DATABASE_POOL_SIZE", 0, "must be at least 1"));
        }
        Ok(())
    }
}
