//! How secrets and connection URLs appear wherever the settings are shown: `check-config`,
//! the configuration digest in the audit trail, and `Debug` output.
//!
//! The settings' `Serialize` exists only to show them, so it never writes a secret (always
//! `<redacted>`) nor a URL's password (the server's one rule, [`redact_url`]). The values
//! themselves are read with `expose_secret()` only where they are handed to an adapter.

use qudag_domain::redact::redact_url;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serializer;

/// What a secret is shown as.
pub(super) const REDACTED: &str = "<redacted>";

/// Serialize a secret that is set as `<redacted>`.
pub(super) fn secret<S: Serializer>(value: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_some(REDACTED),
        None => serializer.serialize_none(),
    }
}

/// Serialize a connection URL with its password redacted.
pub(super) fn url<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => serializer.serialize_some(&redact_url(url)),
        None => serializer.serialize_none(),
    }
}

/// Whether two optional secrets hold the same value (for comparing whole settings, which
/// tests do; `SecretString` itself offers no comparison).
pub(super) fn same(a: &Option<SecretString>, b: &Option<SecretString>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        (None, None) => true,
        _ => false,
    }
}
