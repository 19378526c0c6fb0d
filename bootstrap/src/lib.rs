//! The QuDAG MCP server's composition root: configuration, telemetry, the choice and
//! wiring of adapters, and the `qudag-mcp` command line.
//!
//! This is the only crate that names concrete adapters (in [`wiring`]); everything else
//! sees ports.

pub mod app;
pub mod cli;
pub mod dev;
#[doc(hidden)]
pub mod fuzzing;
pub mod settings;
pub mod telemetry;
pub mod wiring;

pub mod tls {
    //! The https listener's live configuration and counters (see [`crate::App::tls`]),
    //! which the HTTP adapter's connection layer owns.
    pub use qudag_adapter_http::server::{TlsConfig, TlsError, TlsState, TlsStats, TlsVersion};
}

pub use app::App;
/// The OAuth adapter, for tests and tools that inspect the verifier.
pub use qudag_adapter_oauth as oauth;
pub use qudag_adapter_oauth::install_crypto_provider;
pub use settings::Settings;

/// The server's version, from the crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
