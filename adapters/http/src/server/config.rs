//! What the composition root decides about connections: their limits and the drain.

use std::time::Duration;

/// The connection limits and the shutdown grace period (see `docs/configuration.md`).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest HTTP/1.1 request head; the HTTP/2 header list limit.
    pub max_header_bytes: usize,
    /// Time to send a complete HTTP/1.1 request head.
    pub header_timeout: Duration,
    /// Silence (no bytes, no request in flight) after which a connection is closed.
    pub keepalive_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time open connections get to finish once shutdown begins.
    pub shutdown_grace: Duration,
}
