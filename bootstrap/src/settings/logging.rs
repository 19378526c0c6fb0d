//! `[logging]`: the log level (or filter directive) and format (`QUDAG_LOG_LEVEL`,
//! `QUDAG_LOG_FORMAT`).
//!
//! A directive is checked here rather than left to `tracing-subscriber`, which would quietly
//! ignore a misspelt level and leave the operator without the logs they asked for.

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::parse::{parse_choice, unknown};

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Log level and format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a filter directive such as
    /// `info,qudag_adapter_http=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

impl LoggingSettings {
    /// Set `field` from a variable's or flag's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "level" => {
                validate_log_level(v)?;
                self.level = v.to_owned();
            }
            "format" => self.format = parse_choice(v, &[("text", LogFormat::Text), ("json", LogFormat::Json)])?,
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section (a level from the file has not been through [`Self::set`]).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        validate_log_level(&self.level).map_err(|reason| ConfigError::invalid("QUDAG_LOG_LEVEL", &self.level, reason))
    }
}

fn validate_log_level(v: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let directives: Vec<&str> = v.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        return Err("must not be empty".into());
    }
    for directive in directives {
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("{level:?} is not a level (expected one of: {})", LEVELS.join(", ")));
        }
        if let Some(target) = target
            && (target.is_empty() || !target.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        {
            return Err(format!("{target:?} is not a module path"));
        }
    }
    Ok(())
}
