//! `[server]`: the listening socket, TLS, the connection limits and shutdown
//! (`QUDAG_PROTOCOL`, `QUDAG_HOST`, `QUDAG_PORT`, `QUDAG_TLS_*`, ...).
//!
//! The limits are checked here against what hyper and rustls accept, so a value that would
//! make the connection layer fail at the first request is refused before the server binds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::parse::{non_empty, parse_choice, parse_num, unknown};

/// The transport protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Plain HTTP (behind a TLS-terminating proxy, or on loopback).
    #[default]
    Http,
    /// HTTPS with rustls.
    Https,
}

/// Listening socket and shutdown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// `http` or `https`.
    pub protocol: Protocol,
    /// The address to bind (an IP address; `localhost` means 127.0.0.1).
    pub host: String,
    /// The TCP port (0 picks a free one).
    pub port: u16,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// PEM certificate chain (leaf first), required with `https`.
    pub tls_cert_path: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), required with `https`.
    pub tls_key_path: Option<PathBuf>,
    /// PEM CA certificates; when set, clients must present a certificate they issued (mTLS).
    pub tls_ca_path: Option<PathBuf>,
    /// The lowest TLS version accepted.
    pub tls_min_version: TlsVersion,
    /// Seconds a client gets to complete the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Largest request head (request line and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Seconds a client gets to send a complete request head.
    pub header_timeout_secs: u64,
    /// Seconds a connection may stay silent (no bytes either way, no request in flight).
    pub keepalive_timeout_secs: u64,
    /// Connections served at once; further ones wait in the accept backlog.
    pub max_connections: usize,
    /// Connections one client address may hold open at once (trusted proxies exempt); 0
    /// for no such limit.
    pub max_connections_per_address: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            protocol: Protocol::Http,
            host: "127.0.0.1".into(),
            port: 3000,
            shutdown_grace_secs: 30,
            tls_cert_path: None,
            tls_key_path: None,
            tls_ca_path: None,
            tls_min_version: TlsVersion::V1_3,
            tls_handshake_timeout_secs: 10,
            max_header_bytes: 65_536,
            header_timeout_secs: 10,
            keepalive_timeout_secs: 75,
            max_connections: 10_000,
            max_connections_per_address: 256,
        }
    }
}

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[default]
    #[serde(rename = "1.3")]
    V1_3,
}

impl ServerSettings {
    /// The socket address to bind.
    ///
    /// # Errors
    /// When the host is not an IP address (nor `localhost`), naming `QUDAG_HOST`.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        let ip = parse_host(&self.host).map_err(|reason| ConfigError::invalid("QUDAG_HOST", &self.host, reason))?;
        Ok(SocketAddr::new(ip, self.port))
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Set `field` from a variable's or flag's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "protocol" => self.protocol = parse_choice(v, &[("http", Protocol::Http), ("https", Protocol::Https)])?,
            "host" => {
                parse_host(v)?;
                self.host = v.to_owned();
            }
            "port" => self.port = parse_num(v)?,
            "shutdown_grace_secs" => self.shutdown_grace_secs = parse_num(v)?,
            "tls_cert_path" => self.tls_cert_path = non_empty(v).map(PathBuf::from),
            "tls_key_path" => self.tls_key_path = non_empty(v).map(PathBuf::from),
            "tls_ca_path" => self.tls_ca_path = non_empty(v).map(PathBuf::from),
            "tls_min_version" => {
                self.tls_min_version = parse_choice(v, &[("1.3", TlsVersion::V1_3), ("1.2", TlsVersion::V1_2)])?;
            }
            "tls_handshake_timeout_secs" => self.tls_handshake_timeout_secs = parse_num(v)?,
            "max_header_bytes" => self.max_header_bytes = parse_num(v)?,
            "header_timeout_secs" => self.header_timeout_secs = parse_num(v)?,
            "keepalive_timeout_secs" => self.keepalive_timeout_secs = parse_num(v)?,
            "max_connections" => self.max_connections = parse_num(v)?,
            "max_connections_per_address" => self.max_connections_per_address = parse_num(v)?,
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section, naming the variable of the first bad value.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.protocol == Protocol::Https {
            if self.tls_cert_path.is_none() {
                return Err(ConfigError::invalid("QUDAG_TLS_CERT_PATH", "", "required when QUDAG_PROTOCOL=https"));
            }
            if self.tls_key_path.is_none() {
                return Err(ConfigError::invalid("QUDAG_TLS_KEY_PATH", "", "required when QUDAG_PROTOCOL=https"));
            }
        }
        let ranges: [(&str, u64, u64, u64); 3] = [
            ("QUDAG_TLS_HANDSHAKE_TIMEOUT_SECS", self.tls_handshake_timeout_secs, 1, 300),
            ("QUDAG_HEADER_TIMEOUT_SECS", self.header_timeout_secs, 1, 300),
            ("QUDAG_KEEPALIVE_TIMEOUT_SECS", self.keepalive_timeout_secs, 1, 3_600),
        ];
        for (name, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(ConfigError::invalid(name, value, format!("must be {low} to {high} seconds")));
            }
        }
        // hyper refuses a read buffer under 8 KiB.
        if !(8_192..=16 * 1024 * 1024).contains(&self.max_header_bytes) {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_HEADER_BYTES",
                self.max_header_bytes,
                "must be 8192 to 16777216",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_CONNECTIONS", 0, "must be at least 1"));
        }
        self.bind_addr()?;
        Ok(())
    }
}

fn parse_host(v: &str) -> Result<IpAddr, String> {
    if v.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    v.parse::<IpAddr>().map_err(|_| "expected an IP address such as 127.0.0.1, 0.0.0.0 or ::, or `localhost`".into())
}
