//! `[auth]`: authentication of `/mcp` and admin callers, the OAuth 2.0 resource server
//! (`QUDAG_REQUIRE_AUTH`, `QUDAG_OAUTH2_*`, `QUDAG_DEV_KEY_PATH`).
//!
//! The client secret and the HMAC secret are [`SecretString`]s: never shown, never echoed in
//! an error, and read only when the token verifier is built. Authentication may be off only
//! where nobody else can reach the server, so that rule is checked here with the address.

use std::path::PathBuf;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::parse::{non_empty, parse_bool, parse_num, unknown};
use super::redacted::{self, REDACTED};
use super::server::ServerSettings;

/// Authentication of `/mcp` and admin callers: the OAuth 2.0 resource server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Require a bearer token on every `/mcp` request.
    pub require_auth: bool,
    /// Allow `require_auth = false` on a non-loopback address (never in production).
    pub allow_unauthenticated_network: bool,
    /// The authorization server's issuer identifier; its metadata is discovered from it.
    pub issuer_url: Option<String>,
    /// Our audience (RFC 8707 resource): tokens must name it in `aud`.
    pub audience: Option<String>,
    /// The JWKS URL, when it should not be discovered.
    pub jwks_url: Option<String>,
    /// RFC 7662 introspection endpoint, for opaque tokens.
    pub introspection_url: Option<String>,
    /// Our client id at the authorization server (introspection).
    pub client_id: Option<String>,
    /// Our client secret (introspection).
    #[serde(serialize_with = "redacted::secret")]
    pub client_secret: Option<SecretString>,
    /// Shared secret for HS256/384/512 tokens; HMAC tokens are refused without one.
    #[serde(serialize_with = "redacted::secret")]
    pub hmac_secret: Option<SecretString>,
    /// Where tokens carry roles (`roles`, `realm_access.roles`, a namespaced claim).
    pub roles_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`, seconds (at most 60).
    pub leeway_secs: u64,
    /// How long a fetched JWKS is used, seconds.
    pub jwks_cache_secs: u64,
    /// Least seconds between JWKS refetches caused by unknown key ids.
    pub jwks_min_refresh_secs: u64,
    /// Longest token accepted, bytes.
    pub max_token_bytes: usize,
    /// Verified tokens remembered until they expire.
    pub token_cache_size: usize,
    /// Oldest DPoP proof accepted, seconds.
    pub dpop_max_age_secs: u64,
    /// DPoP proof ids remembered per DPoP key against replay.
    pub dpop_replay_per_key: usize,
    /// Seconds an active introspection answer is believed (never past `exp`).
    pub introspection_cache_secs: u64,
    /// Accepted `typ` values of JWT access tokens (`none`: no `typ`).
    pub token_types: String,
    /// Extra CA certificates (PEM file) trusted for the authorization server.
    pub ca_path: Option<PathBuf>,
    /// Developer mode: trust tokens signed by the local developer key (`serve --dev`).
    pub dev_mode: bool,
    /// The developer key file, shared by `serve --dev` and `dev-token`.
    pub dev_key_path: Option<PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            require_auth: true,
            allow_unauthenticated_network: false,
            issuer_url: None,
            audience: None,
            jwks_url: None,
            introspection_url: None,
            client_id: None,
            client_secret: None,
            hmac_secret: None,
            roles_claim: "roles".into(),
            leeway_secs: 30,
            jwks_cache_secs: 300,
            jwks_min_refresh_secs: 10,
            max_token_bytes: 8 * 1024,
            token_cache_size: 10_000,
            dpop_max_age_secs: 300,
            dpop_replay_per_key: 10_000,
            introspection_cache_secs: 60,
            token_types: "at+jwt,none".into(),
            ca_path: None,
            dev_mode: false,
            dev_key_path: None,
        }
    }
}

// `SecretString` has no `==`: the secrets are compared through `redacted::same`. The
// destructuring names every field, so a new one cannot be left out of the comparison.
impl PartialEq for AuthSettings {
    fn eq(&self, other: &Self) -> bool {
        let Self {
            require_auth,
            allow_unauthenticated_network,
            issuer_url,
            audience,
            jwks_url,
            introspection_url,
            client_id,
            client_secret,
            hmac_secret,
            roles_claim,
            leeway_secs,
            jwks_cache_secs,
            jwks_min_refresh_secs,
            max_token_bytes,
            token_cache_size,
            dpop_max_age_secs,
            dpop_replay_per_key,
            introspection_cache_secs,
            token_types,
            ca_path,
            dev_mode,
            dev_key_path,
        } = self;
        *require_auth == other.require_auth
            && *allow_unauthenticated_network == other.allow_unauthenticated_network
            && *issuer_url == other.issuer_url
            && *audience == other.audience
            && *jwks_url == other.jwks_url
            && *introspection_url == other.introspection_url
            && *client_id == other.client_id
            && redacted::same(client_secret, &other.client_secret)
            && redacted::same(hmac_secret, &other.hmac_secret)
            && *roles_claim == other.roles_claim
            && *leeway_secs == other.leeway_secs
            && *jwks_cache_secs == other.jwks_cache_secs
            && *jwks_min_refresh_secs == other.jwks_min_refresh_secs
            && *max_token_bytes == other.max_token_bytes
            && *token_cache_size == other.token_cache_size
            && *dpop_max_age_secs == other.dpop_max_age_secs
            && *dpop_replay_per_key == other.dpop_replay_per_key
            && *introspection_cache_secs == other.introspection_cache_secs
            && *token_types == other.token_types
            && *ca_path == other.ca_path
            && *dev_mode == other.dev_mode
            && *dev_key_path == other.dev_key_path
    }
}

impl AuthSettings {
    /// The audience developer-mode tokens are made for.
    pub fn dev_audience(&self) -> String {
        self.audience.clone().unwrap_or_else(|| "qudag-mcp-dev".into())
    }

    /// The developer key file: `QUDAG_DEV_KEY_PATH`, else `dev.key` in this user's state
    /// directory (`$XDG_STATE_HOME/qudag-mcp`, else `$HOME/.local/state/qudag-mcp`) — never
    /// the shared temporary directory, where another user could plant a key.
    ///
    /// # Errors
    /// A message asking for `QUDAG_DEV_KEY_PATH` when neither `XDG_STATE_HOME` nor `HOME` is
    /// an absolute path.
    pub fn dev_key_file(&self) -> Result<PathBuf, String> {
        match &self.dev_key_path {
            Some(path) => Ok(path.clone()),
            None => default_dev_key_file(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME")),
        }
    }

    /// Set `field` from a variable's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "require_auth" => self.require_auth = parse_bool(v)?,
            "allow_unauthenticated_network" => self.allow_unauthenticated_network = parse_bool(v)?,
            "issuer_url" => self.issuer_url = non_empty(v),
            "audience" => self.audience = non_empty(v),
            "jwks_url" => self.jwks_url = non_empty(v),
            "introspection_url" => self.introspection_url = non_empty(v),
            "client_id" => self.client_id = non_empty(v),
            "client_secret" => self.client_secret = non_empty(v).map(SecretString::from),
            "hmac_secret" => self.hmac_secret = non_empty(v).map(SecretString::from),
            "roles_claim" => self.roles_claim = v.trim().to_owned(),
            "leeway_secs" => self.leeway_secs = parse_num(v)?,
            "jwks_cache_secs" => self.jwks_cache_secs = parse_num(v)?,
            "jwks_min_refresh_secs" => self.jwks_min_refresh_secs = parse_num(v)?,
            "max_token_bytes" => self.max_token_bytes = parse_num(v)?,
            "token_cache_size" => self.token_cache_size = parse_num(v)?,
            "dpop_max_age_secs" => self.dpop_max_age_secs = parse_num(v)?,
            "dpop_replay_per_key" => self.dpop_replay_per_key = parse_num(v)?,
            "introspection_cache_secs" => self.introspection_cache_secs = parse_num(v)?,
            "token_types" => self.token_types = v.trim().to_owned(),
            "ca_path" => self.ca_path = non_empty(v).map(PathBuf::from),
            "dev_key_path" => self.dev_key_path = non_empty(v).map(PathBuf::from),
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section against the address the server binds and the public URL its
    /// protected-resource metadata and DPoP checks use, naming the variable of the first bad
    /// value.
    pub(super) fn validate(&self, server: &ServerSettings, public_url: Option<&str>) -> Result<(), ConfigError> {
        if !self.require_auth && !self.allow_unauthenticated_network && !server.bind_addr()?.ip().is_loopback() {
            return Err(ConfigError::invalid(
                "QUDAG_REQUIRE_AUTH",
                "false",
                format!(
                    "authentication may be off only on a loopback address, not {}; set QUDAG_ALLOW_UNAUTHENTICATED_NETWORK=true to force it",
                    server.host
                ),
            ));
        }
        if self.leeway_secs > 60 {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_LEEWAY_SECS", self.leeway_secs, "must be at most 60"));
        }
        if self.jwks_cache_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_JWKS_CACHE_SECS", 0, "must be at least 1"));
        }
        if self.max_token_bytes < 256 {
            return Err(ConfigError::invalid(
                "QUDAG_OAUTH2_MAX_TOKEN_BYTES",
                self.max_token_bytes,
                "must be at least 256",
            ));
        }
        if self.dpop_max_age_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_DPOP_MAX_AGE_SECS", 0, "must be at least 1"));
        }
        if self.dpop_replay_per_key == 0 {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_DPOP_REPLAY_PER_KEY", 0, "must be at least 1"));
        }
        qudag_adapter_oauth::TokenTypes::parse(&self.token_types)
            .map_err(|e| ConfigError::invalid("QUDAG_OAUTH2_TOKEN_TYPES", &self.token_types, e))?;
        if self.roles_claim.is_empty() {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_ROLES_CLAIM", "", "must name a claim"));
        }
        if let Some(secret) = &self.hmac_secret
            && secret.expose_secret().len() < 32
        {
            return Err(ConfigError::invalid(
                "QUDAG_OAUTH2_HMAC_SECRET",
                REDACTED,
                format!("must be at least 32 bytes, got {}", secret.expose_secret().len()),
            ));
        }
        if let Some(url) = public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::invalid("QUDAG_PUBLIC_URL", url, "must be an absolute http(s) URL"));
        }
        if self.dev_mode {
            let addr = server.bind_addr()?;
            if !addr.ip().is_loopback() {
                return Err(ConfigError::invalid(
                    "QUDAG_HOST",
                    &server.host,
                    "--dev serves on a loopback address only (its signing key sits in a local file)",
                ));
            }
            return Ok(());
        }
        if !self.require_auth {
            return Ok(());
        }
        self.validate_issuer()?;
        // Off loopback, the URLs in metadata, challenges and the DPoP `htu` check must not
        // come from whatever `Host` (or `:authority`) a request carries.
        if public_url.is_none() && !server.bind_addr()?.ip().is_loopback() {
            return Err(ConfigError::invalid(
                "QUDAG_PUBLIC_URL",
                "",
                format!(
                    "is required while authentication is on and the server binds {}, not a loopback address: the external base URL clients use (e.g. https://mcp.example.com)",
                    server.host
                ),
            ));
        }
        Ok(())
    }

    /// The rules while tokens are verified against an authorization server.
    fn validate_issuer(&self) -> Result<(), ConfigError> {
        let Some(issuer) = &self.issuer_url else {
            return Err(ConfigError::invalid(
                "QUDAG_OAUTH2_ISSUER_URL",
                "",
                "is required while authentication is on (QUDAG_REQUIRE_AUTH=true); for local development use `qudag-mcp serve --dev`",
            ));
        };
        qudag_adapter_oauth::secure_url("issuer", issuer)
            .map_err(|e| ConfigError::invalid("QUDAG_OAUTH2_ISSUER_URL", issuer, e.reason))?;
        if self.audience.is_none() {
            return Err(ConfigError::invalid(
                "QUDAG_OAUTH2_AUDIENCE",
                "",
                "is required while authentication is on: the audience (RFC 8707 resource) tokens must be issued for",
            ));
        }
        for (name, url) in
            [("QUDAG_OAUTH2_JWKS_URL", &self.jwks_url), ("QUDAG_OAUTH2_INTROSPECTION_URL", &self.introspection_url)]
        {
            if let Some(u) = url {
                qudag_adapter_oauth::secure_url("URL", u).map_err(|e| ConfigError::invalid(name, u, e.reason))?;
            }
        }
        if self.introspection_url.is_some() {
            if self.client_id.is_none() {
                return Err(ConfigError::invalid("QUDAG_OAUTH2_CLIENT_ID", "", "is required for introspection"));
            }
            if self.client_secret.is_none() {
                return Err(ConfigError::invalid("QUDAG_OAUTH2_CLIENT_SECRET", "", "is required for introspection"));
            }
        }
        Ok(())
    }
}

/// `dev.key` in the per-user state directory given `XDG_STATE_HOME` and `HOME` (relative
/// values ignored, as the XDG base directory specification says).
fn default_dev_key_file(
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf, String> {
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    let state = absolute(xdg_state_home)
        .or_else(|| absolute(home).map(|h| h.join(".local").join("state")))
        .ok_or_else(|| "no per-user directory for the developer key (neither XDG_STATE_HOME nor HOME is set): set QUDAG_DEV_KEY_PATH".to_owned())?;
    Ok(state.join("qudag-mcp").join("dev.key"))
}

#[cfg(test)]
mod dev_key_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_default_developer_key_is_in_the_users_state_directory() {
        let f = |x: Option<&str>, h: Option<&str>| default_dev_key_file(x.map(Into::into), h.map(Into::into));
        assert_eq!(f(Some("/s"), Some("/home/a")).unwrap(), PathBuf::from("/s/qudag-mcp/dev.key"));
        assert_eq!(f(None, Some("/home/a")).unwrap(), PathBuf::from("/home/a/.local/state/qudag-mcp/dev.key"));
        assert_eq!(f(Some("rel"), Some("/home/a")).unwrap(), PathBuf::from("/home/a/.local/state/qudag-mcp/dev.key"));
        let err = f(None, None).unwrap_err();
        assert!(err.contains("QUDAG_DEV_KEY_PATH"), "{err}");
        let temp = std::env::temp_dir();
        assert!(!f(None, Some("/home/a")).unwrap().starts_with(&temp));
    }
}
