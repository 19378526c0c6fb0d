//! `[mcp]`: the MCP endpoint: allowed browser origins, body and time limits, long-lived
//! streams, the proxies whose forwarding headers are believed, the public URL, and the key
//! sealing input-required request state (`QUDAG_CORS_ORIGINS`, `QUDAG_TRUSTED_PROXIES`,
//! `QUDAG_REQUEST_STATE_KEY`, ...).
//!
//! The request-state key is a [`SecretString`]: it is decoded here (hex) only to hand its
//! bytes to the engine, and never shown or echoed in an error.

use std::net::IpAddr;

use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::parse::{non_empty, parse_list, parse_num, unknown};
use super::redacted::{self, REDACTED};

/// The MCP endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpSettings {
    /// Browser origins allowed to call `/mcp` besides loopback ones (loopback origins are
    /// allowed when the server is bound to loopback).
    pub cors_origins: Vec<String>,
    /// The largest request body accepted on `/mcp` and every route outside `/admin/`, in
    /// bytes.
    pub max_body_bytes: usize,
    /// The largest request body accepted on `/admin/*`, in bytes.
    pub admin_max_body_bytes: usize,
    /// Request-body bytes one client address may have held at once, across all its
    /// requests in flight; 0 for no such bound.
    pub max_body_bytes_per_address: usize,
    /// Hex key (at least 32 bytes) sealing input-required request state; random per
    /// process when unset, so several nodes must share one.
    #[serde(serialize_with = "redacted::secret")]
    pub request_state_key: Option<SecretString>,
    /// Proxies (IP addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// The server's external base URL (e.g. `https://mcp.example.com`), for the
    /// protected-resource metadata and DPoP; derived from each request when unset.
    pub public_url: Option<String>,
    /// Seconds until a response must start (503 after).
    pub request_timeout_secs: u64,
    /// Seconds a request body may take to arrive, from the request's head (408 after).
    pub body_timeout_secs: u64,
    /// Long-lived SSE streams (GET streams, `subscriptions/listen`) one principal may hold.
    pub max_streams_per_principal: usize,
    /// Long-lived SSE streams this node holds at most.
    pub max_streams: usize,
    /// Tool calls one principal may have running at once.
    pub max_tool_calls_per_principal: usize,
    /// Server-to-client requests (sampling, elicitation, roots) one principal may have
    /// waiting for answers.
    pub max_pending_requests_per_principal: usize,
    /// Seconds between SSE keep-alive comments.
    pub sse_keepalive_secs: u64,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            admin_max_body_bytes: 64 * 1024,
            max_body_bytes_per_address: 16 * 1024 * 1024,
            request_state_key: None,
            trusted_proxies: Vec::new(),
            public_url: None,
            request_timeout_secs: 120,
            body_timeout_secs: 30,
            max_streams_per_principal: 16,
            max_streams: 10_000,
            max_tool_calls_per_principal: 8,
            max_pending_requests_per_principal: 16,
            sse_keepalive_secs: 15,
        }
    }
}

// `SecretString` has no `==`: the key is compared through `redacted::same`. The
// destructuring names every field, so a new one cannot be left out of the comparison.
impl PartialEq for McpSettings {
    fn eq(&self, other: &Self) -> bool {
        let Self {
            cors_origins,
            max_body_bytes,
            admin_max_body_bytes,
            max_body_bytes_per_address,
            request_state_key,
            trusted_proxies,
            public_url,
            request_timeout_secs,
            body_timeout_secs,
            max_streams_per_principal,
            max_streams,
            max_tool_calls_per_principal,
            max_pending_requests_per_principal,
            sse_keepalive_secs,
        } = self;
        *cors_origins == other.cors_origins
            && *max_body_bytes == other.max_body_bytes
            && *admin_max_body_bytes == other.admin_max_body_bytes
            && *max_body_bytes_per_address == other.max_body_bytes_per_address
            && redacted::same(request_state_key, &other.request_state_key)
            && *trusted_proxies == other.trusted_proxies
            && *public_url == other.public_url
            && *request_timeout_secs == other.request_timeout_secs
            && *body_timeout_secs == other.body_timeout_secs
            && *max_streams_per_principal == other.max_streams_per_principal
            && *max_streams == other.max_streams
            && *max_tool_calls_per_principal == other.max_tool_calls_per_principal
            && *max_pending_requests_per_principal == other.max_pending_requests_per_principal
            && *sse_keepalive_secs == other.sse_keepalive_secs
    }
}

impl McpSettings {
    /// The request-state key's bytes, if one is configured.
    ///
    /// # Errors
    /// When it is not hex or shorter than 32 bytes (the message never holds the key).
    pub fn request_state_key_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(key) = &self.request_state_key else { return Ok(None) };
        let bytes = hex::decode(key.expose_secret()).map_err(|_| "expected an even number of hex digits")?;
        if bytes.len() < 32 {
            return Err(format!("expected at least 32 bytes (64 hex digits), got {}", bytes.len()));
        }
        Ok(Some(bytes))
    }

    /// Set `field` from a variable's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "cors_origins" => self.cors_origins = parse_list(v),
            "max_body_bytes" => self.max_body_bytes = parse_num(v)?,
            "admin_max_body_bytes" => self.admin_max_body_bytes = parse_num(v)?,
            "max_body_bytes_per_address" => self.max_body_bytes_per_address = parse_num(v)?,
            "request_state_key" => self.request_state_key = Some(SecretString::from(v)),
            "trusted_proxies" => {
                let list = parse_list(v);
                for item in &list {
                    parse_cidr(item)?;
                }
                self.trusted_proxies = list;
            }
            "public_url" => self.public_url = non_empty(v).map(|u| u.trim_end_matches('/').to_owned()),
            "request_timeout_secs" => self.request_timeout_secs = parse_num(v)?,
            "body_timeout_secs" => self.body_timeout_secs = parse_num(v)?,
            "max_streams_per_principal" => self.max_streams_per_principal = parse_num(v)?,
            "max_streams" => self.max_streams = parse_num(v)?,
            "max_tool_calls_per_principal" => self.max_tool_calls_per_principal = parse_num(v)?,
            "max_pending_requests_per_principal" => self.max_pending_requests_per_principal = parse_num(v)?,
            "sse_keepalive_secs" => self.sse_keepalive_secs = parse_num(v)?,
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section, naming the variable of the first bad value (the public URL is
    /// checked with authentication, whose metadata and DPoP checks use it).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid("QUDAG_MAX_BODY_BYTES", self.max_body_bytes, "must be at least 1024"));
        }
        if self.admin_max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "QUDAG_ADMIN_MAX_BODY_BYTES",
                self.admin_max_body_bytes,
                "must be at least 1024",
            ));
        }
        let largest = self.max_body_bytes.max(self.admin_max_body_bytes);
        if self.max_body_bytes_per_address != 0 && self.max_body_bytes_per_address < largest {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_BODY_BYTES_PER_ADDRESS",
                self.max_body_bytes_per_address,
                format!(
                    "must be 0 (no bound) or at least the largest single body ({largest} bytes), or no body that size could ever be read"
                ),
            ));
        }
        if self.request_timeout_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_REQUEST_TIMEOUT_SECS", 0, "must be at least 1"));
        }
        if !(1..=3_600).contains(&self.body_timeout_secs) {
            return Err(ConfigError::invalid(
                "QUDAG_BODY_TIMEOUT_SECS",
                self.body_timeout_secs,
                "must be 1 to 3600 seconds",
            ));
        }
        if self.sse_keepalive_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_SSE_KEEPALIVE_SECS", 0, "must be at least 1"));
        }
        if self.max_streams_per_principal == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_STREAMS_PER_PRINCIPAL", 0, "must be at least 1"));
        }
        if self.max_streams < self.max_streams_per_principal {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_STREAMS",
                self.max_streams,
                format!("must be at least QUDAG_MAX_STREAMS_PER_PRINCIPAL ({})", self.max_streams_per_principal),
            ));
        }
        if self.max_tool_calls_per_principal == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_TOOL_CALLS_PER_PRINCIPAL", 0, "must be at least 1"));
        }
        if self.max_pending_requests_per_principal == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_PENDING_REQUESTS_PER_PRINCIPAL", 0, "must be at least 1"));
        }
        self.request_state_key_bytes()
            .map_err(|reason| ConfigError::invalid("QUDAG_REQUEST_STATE_KEY", REDACTED, reason))?;
        Ok(())
    }
}

/// An IP address (a block of one) or a CIDR block such as `10.0.0.0/8`.
///
/// # Errors
/// When `v` is neither; the message names `v` and, for a bad prefix, the longest allowed.
pub fn parse_cidr(v: &str) -> Result<IpNet, String> {
    if let Ok(block) = v.parse::<IpNet>() {
        return Ok(block);
    }
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    match v.split_once('/').map(|(addr, _)| addr.parse::<IpAddr>()) {
        Some(Ok(ip)) => Err(format!("{v:?}: prefix length must be 0 to {}", if ip.is_ipv4() { 32 } else { 128 })),
        _ => Err(format!("{v:?} is not an IP address or CIDR block")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_blocks_become_networks() {
        let block = parse_cidr("10.0.0.0/8").unwrap();
        assert!(block.contains(&"10.200.1.2".parse::<IpAddr>().unwrap()));
        assert!(!block.contains(&"11.0.0.1".parse::<IpAddr>().unwrap()));
        let one = parse_cidr("127.0.0.1").unwrap();
        assert_eq!(one.prefix_len(), 32);
        assert_eq!(parse_cidr("::1").unwrap().prefix_len(), 128);
        assert!(parse_cidr("::/0").unwrap().contains(&"::1".parse::<IpAddr>().unwrap()));
        assert_eq!(parse_cidr("10.0.0.0/33").unwrap_err(), "\"10.0.0.0/33\": prefix length must be 0 to 32");
        assert_eq!(parse_cidr("::1/129").unwrap_err(), "\"::1/129\": prefix length must be 0 to 128");
        assert_eq!(parse_cidr("nope").unwrap_err(), "\"nope\" is not an IP address or CIDR block");
        assert_eq!(parse_cidr("nope/8").unwrap_err(), "\"nope/8\" is not an IP address or CIDR block");
    }

    #[test]
    fn request_state_keys_are_hex_of_at_least_32_bytes() {
        let with = |key: &str| McpSettings { request_state_key: Some(key.into()), ..McpSettings::default() };
        assert_eq!(with(&"aB".repeat(32)).request_state_key_bytes().unwrap().unwrap(), vec![0xab; 32]);
        assert_eq!(with("abc").request_state_key_bytes().unwrap_err(), "expected an even number of hex digits");
        assert_eq!(
            with(&"zz".repeat(32)).request_state_key_bytes().unwrap_err(),
            "expected an even number of hex digits"
        );
        assert_eq!(
            with(&"ab".repeat(31)).request_state_key_bytes().unwrap_err(),
            "expected at least 32 bytes (64 hex digits), got 31"
        );
        assert_eq!(McpSettings::default().request_state_key_bytes(), Ok(None));
    }
}
