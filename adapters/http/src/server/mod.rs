//! The connection layer under poem's endpoints: accept, limit, optionally TLS, then HTTP/1.1
//! or HTTP/2 by hyper, with graceful shutdown.
//!
//! poem's own `Server` offers no HTTP/1 header size or header timeout knobs and performs an
//! acceptor's work inside its accept loop (one slow TLS handshake would hold up every other
//! client), so connections are served here with hyper-util's auto builder directly; each
//! request is handed to the poem endpoint unchanged.
//!
//! - [`serve`] (the accept loop, connection limit and drain) in `accept`;
//! - one connection's TLS handshake, HTTP protocol and idle timeout in `connection`;
//! - [`tls`]: the rustls configuration, its reload and mutual TLS;
//! - [`tls_stats`]: the handshake and reload counters, and their place on `/metrics`;
//! - [`hsts`]: `Strict-Transport-Security` on every https response.
//!
//! The composition root fills [`ServerConfig`] and [`tls::TlsConfig`] from its settings;
//! nothing here reads configuration itself.

mod accept;
mod config;
mod connection;
pub mod hsts;
pub mod tls;
pub mod tls_stats;

pub use accept::{ConnectionStats, serve};
pub use config::ServerConfig;
pub use hsts::{HSTS_VALUE, Hsts};
pub use tls::{TlsConfig, TlsError, TlsState, TlsVersion};
pub use tls_stats::TlsStats;
