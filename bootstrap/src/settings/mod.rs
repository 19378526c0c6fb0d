//! The server's configuration: one [`Settings`] tree, layered
//! defaults → TOML file (`--config`) → `QUDAG_*` environment → command-line flags,
//! and validated as a whole before anything starts.
//!
//! Each TOML section is a module holding its type, its defaults, how it reads a variable's
//! text ([`ServerSettings`] reads `server.port` from `QUDAG_PORT`) and how it checks itself;
//! this module only layers them and checks the rules that span sections (a store in Redis
//! needs a Redis URL). Every environment variable is declared once in [`ENV_VARS`] with its
//! TOML key, default and meaning; `docs/configuration.md` documents exactly that list (a
//! test keeps them in step). An invalid value is a [`ConfigError`] naming where it came from
//! (the variable, the file and key, or the flag) and the value itself.
//!
//! Secrets are `secrecy::SecretString`s and connection URLs are shown only through
//! [`redact_url`]: what [`Settings::to_toml`] and `Debug` print is safe to log.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod audit;
mod auth;
mod database;
mod error;
mod logging;
mod mcp;
mod parse;
mod rate_limit;
mod redacted;
mod redis;
mod server;
mod sessions;
mod tools;
mod vars;

pub use audit::{AuditAck, AuditSettings, AuditSinkKind, FsyncMode, QueueFull};
pub use auth::AuthSettings;
pub use database::DatabaseSettings;
pub use error::ConfigError;
pub use logging::{LogFormat, LoggingSettings};
pub use mcp::{McpSettings, parse_cidr};
/// How a URL that may carry credentials is shown (the server's one redaction rule).
pub use qudag_domain::redact::redact_url;
pub use rate_limit::{FailurePolicy, MAX_DEFAULT_BURST, RateLimitSettings};
pub use redis::{RedisSettings, StateStore};
pub use server::{Protocol, ServerSettings, TlsVersion};
pub use sessions::SessionSettings;
pub use tools::{DataStore, ToolSettings};
pub use vars::{ENV_VARS, EnvVar};

/// Everything the server can be told.
///
/// Its `Serialize` is for showing it: secrets come out as `<redacted>` and URLs without
/// their passwords.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// Listening socket and shutdown.
    pub server: ServerSettings,
    /// Log level and format.
    pub logging: LoggingSettings,
    /// MCP sessions (stateful protocol era).
    pub sessions: SessionSettings,
    /// Rate limits on `/mcp`.
    pub rate_limit: RateLimitSettings,
    /// Authentication of `/mcp` callers.
    pub auth: AuthSettings,
    /// The MCP endpoint.
    pub mcp: McpSettings,
    /// Redis, for state shared by every node.
    pub redis: RedisSettings,
    /// The QuDAG tools: key material, where vault entries and names live, simulation limits.
    pub tools: ToolSettings,
    /// PostgreSQL, for data every node shares.
    pub database: DatabaseSettings,
    /// The audit trail.
    pub audit: AuditSettings,
}

/// Values given as command-line flags (the highest layer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagOverrides {
    /// `--host`
    pub host: Option<String>,
    /// `--port`
    pub port: Option<String>,
    /// `--log-level`
    pub log_level: Option<String>,
    /// `--log-format`
    pub log_format: Option<String>,
    /// `serve --dev` / `dev-token`: developer mode (local signing key).
    pub dev_mode: bool,
    /// `serve --fixtures`: test fixtures, served without authentication.
    pub fixtures: bool,
}

impl Settings {
    /// Load the layers in order: defaults, the TOML file at `file` (if any), the `QUDAG_*`
    /// variables from `env`, then `flags`; then validate the whole.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &FlagOverrides,
    ) -> Result<Self, ConfigError> {
        let mut settings = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("QUDAG_")).collect();
        for var in ENV_VARS {
            if let Some((_, value)) = env.iter().find(|(k, _)| k == var.name) {
                settings.set(var.key, value.trim()).map_err(|reason| ConfigError::invalid(var.name, value, reason))?;
            }
        }
        // Each flag sets the same key as its variable (`--port` as `QUDAG_PORT`).
        let flag_layers: [(&str, &Option<String>, &str); 4] = [
            ("--host", &flags.host, "server.host"),
            ("--port", &flags.port, "server.port"),
            ("--log-level", &flags.log_level, "logging.level"),
            ("--log-format", &flags.log_format, "logging.format"),
        ];
        for (flag, value, key) in flag_layers {
            if let Some(value) = value {
                settings.set(key, value).map_err(|reason| ConfigError::invalid(flag, value, reason))?;
            }
        }
        if flags.fixtures {
            settings.auth.require_auth = false;
        }
        if flags.dev_mode {
            settings.auth.dev_mode = true;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Read a TOML file over the defaults; keys it leaves out keep their defaults.
    ///
    /// # Errors
    /// [`ConfigError::File`] when it cannot be read, is not valid TOML, or has an unknown
    /// key.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.display().to_string(), reason: e.to_string() })?;
        toml::from_str(&text).map_err(|e| ConfigError::File { path: path.display().to_string(), reason: e.to_string() })
    }

    /// Set the value at `key` (`section.field`, as in [`ENV_VARS`]) from its text: the
    /// section the key names reads it.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let (section, field) = key.split_once('.').unwrap_or((key, ""));
        match section {
            "server" => self.server.set(field, value),
            "logging" => self.logging.set(field, value),
            "sessions" => self.sessions.set(field, value),
            "rate_limit" => self.rate_limit.set(field, value),
            "auth" => self.auth.set(field, value),
            "mcp" => self.mcp.set(field, value),
            "redis" => self.redis.set(field, value),
            "tools" => self.tools.set(field, value),
            "database" => self.database.set(field, value),
            "audit" => self.audit.set(field, value),
            _ => Err(parse::unknown(key)),
        }
    }

    /// Check the values together, naming the variable of the first bad one: each section
    /// checks itself, the rules between sections are checked here. The order is kept as it
    /// has always been, so a configuration with several mistakes names the same one first.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.logging.validate()?;
        self.sessions.validate()?;
        self.auth.validate(&self.server, self.mcp.public_url.as_deref())?;
        self.mcp.validate()?;
        // State kept in Redis needs a Redis to keep it in.
        if self.rate_limit.store == StateStore::Redis && self.redis.url.is_none() {
            return Err(ConfigError::invalid("QUDAG_RATE_LIMIT_STORE", "redis", "needs QUDAG_REDIS_URL"));
        }
        if self.sessions.store == StateStore::Redis && self.redis.url.is_none() {
            return Err(ConfigError::invalid("QUDAG_SESSION_STORE", "redis", "needs QUDAG_REDIS_URL"));
        }
        self.redis.validate()?;
        self.sessions.validate_store()?;
        self.tools.validate(&self.database)?;
        self.database.validate()?;
        self.audit.validate(&self.database)?;
        self.rate_limit.validate()
    }

    /// The request-state key's bytes, if one is configured.
    ///
    /// # Errors
    /// When it is not hex or shorter than 32 bytes.
    pub fn request_state_key_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        self.mcp.request_state_key_bytes()
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// The configuration file named by `--config` or `QUDAG_CONFIG`.
pub fn config_path(flag: Option<PathBuf>, env: impl IntoIterator<Item = (String, String)>) -> Option<PathBuf> {
    flag.or_else(|| env.into_iter().find(|(k, _)| k == "QUDAG_CONFIG").map(|(_, v)| PathBuf::from(v)))
}

/// `QUDAG_*` variables the server does not know: likely typos, worth a warning.
pub fn unknown_variables(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    env.into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("QUDAG_") && k != "QUDAG_CONFIG" && !k.starts_with("QUDAG_TEST_"))
        .filter(|k| !ENV_VARS.iter().any(|v| v.name == k))
        .collect()
}

#[cfg(test)]
mod tests;
