//! What the QuDAG MCP server's tests share, written once: `qudag-mcp` as a child process
//! ([`process`]), a fresh PostgreSQL database per test ([`postgres`]), the test Redis
//! ([`redis`]), temporary directories removed when the test ends ([`temp`]) and a real
//! OpenID Connect issuer ([`oidc`]).
//!
//! The crate depends on none of the workspace's own crates, so any crate's tests — an
//! adapter's as well as the binary's — can use it as a dev-dependency without a cycle and
//! without a second build of a crate whose types would then not match.
//!
//! Helpers fail loudly (panics naming what is missing and how to provide it): a test that
//! cannot reach its backend must fail, not pass silently. `tests/run.sh` provides all of it:
//! Debian's packages, Redis, PostgreSQL and the pinned npm packages.

#![deny(missing_docs)]

pub mod oidc;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod temp;

/// The path of the program `name` (on `PATH`, or in `/usr/sbin` or `/sbin`, where Debian puts
/// daemons such as nginx). Panics with one line naming it and the Debian package `package`
/// that provides it when it is missing.
pub fn program(name: &str, package: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(std::path::PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is needed (Debian package {package}; tests/run.sh installs it)"))
}

/// Install the process-wide rustls crypto provider (aws-lc-rs), if none is installed yet.
///
/// reqwest is built with rustls but without a provider of its own in this workspace, so
/// a client cannot be built before one is installed.
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
