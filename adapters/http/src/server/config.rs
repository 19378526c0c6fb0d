//! What the composition root decides about connections: their limits and the drain.

use std::time::Duration;

use ipnet::IpNet;

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
    /// Connections one client address may hold open at once; 0 for no such limit. Beyond
    /// it, a new connection from that address is closed as soon as it is accepted.
    pub max_connections_per_address: usize,
    /// Peers the per-address limit does not apply to: the trusted proxies, each of whose
    /// connections carries many clients.
    pub unlimited_peers: Vec<IpNet>,
    /// Time to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time open connections get to finish once shutdown begins.
    pub shutdown_grace: Duration,
}
