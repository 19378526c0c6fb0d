//! The MCP endpoint end to end: both wire eras over real HTTP against the conformance
//! fixture.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod admission;
mod bounds;
mod client;
mod envelope;
mod stateful;
mod stateless;
mod transport;
