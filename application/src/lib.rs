//! Use cases and ports of the QuDAG MCP server.
//!
//! The application ring knows *what* the server does and names, as traits in [`ports`],
//! everything it needs from the outside world. It never names a technology: adapters
//! implement the ports, and only the bootstrap crate chooses and wires them.
//!
//! - [`ports`]: `SessionStore`, `RateLimiter`, `AuditSink` / `AuditQuery`,
//!   `TokenVerifier`, `EventBus`, `Clock`, `HealthIndicator`, `Metrics`.
//! - [`usecases`]: the request pipeline (authenticate → rate-limit → dispatch → authorize →
//!   audit), session handling and health reporting.
//! - `testkit` (feature `testkit`): one contract suite per port that every adapter must
//!   pass, a manual clock, and mockall mocks of the ports.
#![deny(missing_docs)]

pub mod mcp;
pub mod ports;
pub mod tools;
pub mod tracecontext;
pub mod usecases;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

/// A boxed error from an adapter, kept as the source of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
