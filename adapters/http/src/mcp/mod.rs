//! `/mcp`: MCP Streamable HTTP in both wire eras on one endpoint.
//!
//! This adapter parses, classifies and frames; what happens to a message is the engine's.
//! Each HTTP request is authenticated once ([`Admission::authenticate`]) and the resulting
//! [`Caller`] is handed to one engine entry point, which runs the rest of the admission path
//! (limit, session, authorization, run, audit). The modules, by job:
//!
//! - [`post`]: POST — media types, the body limit, which era a message belongs to
//!   ([`classify`]), stateful, stateless and batched messages, `initialize`;
//! - [`classify`]: the era of a POST and the 2026-07-28 request-metadata checks;
//! - [`respond`]: a request's answer as plain JSON, or as an SSE stream once it emits
//!   anything first (resumable through the event store in the stateful era);
//! - [`listen`]: the long-lived streams — a session's GET stream, `subscriptions/listen` —
//!   and DELETE of a session;
//! - [`sse`]: SSE framing, keep-alives, the end of streams at shutdown;
//! - [`streams`]: how many long-lived streams a caller and the node may hold;
//! - [`headers`]: reading MCP's headers.
//!
//! Every error is answered through [`crate::errors`].

pub mod classify;
pub mod headers;
pub mod listen;
pub mod post;
pub mod respond;
pub mod sse;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use poem::http::Method;
use poem::{Endpoint, Request, Response};
use qudag_application::admission::{Admission, Caller};
use qudag_application::mcp::McpEngine;
use qudag_application::ports::{EventBus, EventStore};
use qudag_domain::principal::Principal;

use crate::auth::{PublicOrigin, request_context};
use crate::errors::{self, OAuthChallenge, StreamRefusal};

/// Settings of the MCP endpoint.
#[derive(Clone, Debug)]
pub struct McpHttpConfig {
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// Interval of SSE keep-alive comments.
    pub keep_alive: Duration,
    /// Where clients reach the server from, and the proxies whose forwarding headers are
    /// believed.
    pub origin: PublicOrigin,
    /// Long-lived SSE streams allowed at once.
    pub streams: streams::StreamLimits,
}

impl Default for McpHttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            keep_alive: Duration::from_secs(15),
            origin: PublicOrigin::default(),
            streams: streams::StreamLimits::default(),
        }
    }
}

/// The `/mcp` endpoint.
#[derive(Clone)]
pub struct McpEndpoint {
    engine: Arc<McpEngine>,
    events: Arc<dyn EventBus>,
    store: Arc<dyn EventStore>,
    config: Arc<McpHttpConfig>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    slots: Arc<streams::StreamSlots>,
}

impl std::fmt::Debug for McpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpEndpoint").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Endpoint for McpEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        Ok(self.dispatch(&mut req).await)
    }
}

impl McpEndpoint {
    /// An endpoint over `engine`, delivering session notifications from `events` and
    /// keeping stateful SSE streams resumable in `store`.
    pub fn new(
        engine: Arc<McpEngine>,
        events: Arc<dyn EventBus>,
        store: Arc<dyn EventStore>,
        config: McpHttpConfig,
    ) -> Self {
        let slots = streams::StreamSlots::new(config.streams);
        Self { engine, events, store, config: Arc::new(config), shutdown: tokio::sync::watch::channel(false).1, slots }
    }

    /// The engine behind the endpoint.
    pub fn engine(&self) -> &Arc<McpEngine> {
        &self.engine
    }

    /// End every open SSE stream, with a reconnection hint, once `shutdown` turns true.
    pub fn with_shutdown(mut self, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Long-lived SSE streams open now.
    pub fn open_streams(&self) -> usize {
        self.slots.open()
    }

    fn admission(&self) -> &Arc<Admission> {
        self.engine.admission()
    }

    fn draining(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The caller of `req`, or the response refusing it.
    async fn caller(&self, req: &Request) -> Result<Caller, Response> {
        let ctx = request_context(req, &self.config.origin);
        self.admission().authenticate(ctx).await.map_err(|e| errors::refusal(e, None))
    }

    /// A place for a long-lived stream of `principal`, or why not.
    fn stream_slot(&self, principal: &Principal) -> Result<streams::StreamSlot, StreamRefusal> {
        if self.draining() {
            return Err(StreamRefusal::ShuttingDown);
        }
        self.slots.acquire(&principal.id().to_string())
    }

    async fn dispatch(&self, req: &mut Request) -> Response {
        // Each method's future is boxed: poem moves the endpoint's future through every
        // middleware layer, and a future holding all three inline is several kilobytes.
        let mut response = match *req.method() {
            Method::POST => Box::pin(self.post(req)).await,
            Method::GET => Box::pin(self.get(req)).await,
            Method::DELETE => Box::pin(self.delete(req)).await,
            _ => errors::method_not_allowed("GET, POST, DELETE", "method not allowed on the MCP endpoint"),
        };
        if let Some(OAuthChallenge(oauth)) = response.extensions_mut().remove::<OAuthChallenge>()
            && let Some(value) = crate::auth::challenge(&oauth, &self.config.origin.metadata_url(req))
        {
            response.headers_mut().insert("www-authenticate", value);
        }
        response
    }
}
