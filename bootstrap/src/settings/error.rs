//! [`ConfigError`]: why a configuration cannot be used, worded for the operator who wrote it.
//!
//! Every message names where the value came from (a variable, `file:key`, or a flag) and,
//! unless it is a secret, the value itself, so the fix is obvious from one line.

use std::fmt;

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value is malformed or out of range.
    #[error("invalid {source_name}={value:?}: {reason}")]
    Invalid {
        /// Where it came from: a variable, `file:key`, or `--flag`.
        source_name: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration file cannot be read or parsed.
    #[error("configuration file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl ConfigError {
    pub(super) fn invalid(source: impl Into<String>, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        Self::Invalid { source_name: source.into(), value: value.to_string(), reason: reason.into() }
    }
}
