//! The MCP protocol engine: the JSON-RPC semantics of both wire eras, over the use cases.
//!
//! - [`bus`]: what nodes tell each other over the event bus (changes, session ends,
//!   clients' answers), typed;
//! - [`catalog`]: what the server offers — tools, prompts, resources, completion — as
//!   handler traits, and the ordered catalog that lists and finds them;
//! - [`context`]: what a handler may do while it runs (progress, logging, requests to the
//!   client, sealed request state);
//! - [`engine`]: every inbound message's way after authentication — limit, session,
//!   authorization, run, audit;
//! - [`wire`]: the pieces of the 2026-07-28 revision that `rmcp::model` does not shape for
//!   us, and the per-era shaping of every outgoing message.
//!
//! Message types come from `rmcp::model`; the transport (HTTP, SSE, sessions on the wire)
//! is the http adapter's.

pub mod bus;
pub mod catalog;
pub mod context;
pub mod engine;
pub mod wire;

#[cfg(feature = "conformance")]
pub mod fixtures;

pub use catalog::{
    Availability, Catalog, CatalogBuilder, Completer, PromptHandler, PromptResponse, ResourceProvider, ToolHandler,
    ToolResponse,
};
pub use context::{CallContext, Change, Outbox};
pub use engine::{Accepted, Call, EngineError, Era, Inbound, McpEngine, Route};
