//! Use cases and ports of the QuDAG MCP server.
//!
//! The application ring knows *what* the server does and names, as traits in [`ports`],
//! everything it needs from the outside world. It never names a technology: adapters
//! implement the ports, and only the bootstrap crate chooses and wires them.
//!
//! - [`admission`]: the one path every inbound operation takes — limit per address →
//!   authenticate → limit per principal → authorize → run → audit.
//! - [`limits`]: what one caller may hold at once (sessions, subscriptions, tool calls,
//!   requests to the client), and the error naming the bound reached.
//! - [`mcp`]: the MCP engine (both wire eras), its catalog and its typed bus messages.
//! - [`ports`]: see its list of ports and their adapters.
//! - [`usecases`]: sessions, the vault, `.dark` names and simulation, the admin operations,
//!   the audit queue, reading and checkpoints, the server's keys, health.
//! - [`tools`]: the QuDAG tools, thin adapters from arguments to use cases.
//! - [`metrics`]: the server's counters, gauges and histograms, which the http adapter
//!   serves at `/metrics`.
//! - [`tracecontext`]: continuing a caller's W3C trace context (`traceparent`, `_meta`).
//! - `testkit` (feature `testkit`): one contract suite per port with backend adapters,
//!   which every one of them must pass, a manual clock, and mockall mocks of the ports.
#![deny(missing_docs)]

pub mod admission;
pub mod limits;
pub mod mcp;
pub mod ports;
pub mod tools;
pub mod tracecontext;
pub mod usecases;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

/// A boxed error from an adapter, kept as the source of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
