//! Use cases and ports of the QuDAG MCP server.
//!
//! The application ring knows *what* the server does and names, as traits in [`ports`],
//! everything it needs from the outside world. It never names a technology: adapters
//! implement the ports, and only the bootstrap crate chooses and wires them.
//!
//! - [`admission`]: the one path every inbound operation takes — limit per address →
//!   authenticate → limit per principal → authorize → run → audit.
//! - [`mcp`]: the MCP engine (both wire eras), its catalog and its typed bus messages.
//! - [`ports`]: see its list of ports and their adapters.
//! - [`usecases`]: sessions, the admin operations, audit reading and checkpoints, health.
//! - [`tools`]: the QuDAG tools, thin adapters from arguments to use cases.
//! - `testkit` (feature `testkit`): one contract suite per port that every adapter must
//!   pass, a manual clock, and mockall mocks of the ports.
#![deny(missing_docs)]

pub mod admission;
pub mod mcp;
pub mod ports;
pub mod tools;
pub mod tracecontext;
pub mod usecases;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

/// A boxed error from an adapter, kept as the source of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
