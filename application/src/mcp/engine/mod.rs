//! The engine: what the server does with each inbound MCP message, in both wire eras.
//!
//! The transport parses and classifies a message, authenticates its sender once
//! ([`Admission::authenticate`]) and hands the engine the [`Caller`]. Every entry point here
//! takes that caller and runs the rest of the admission path itself: the limit per principal
//! for the operation's cost, then the session, then (in `dispatch`) authorization before
//! anything is read or run, the run, and its audit record. The transport only frames what
//! comes back ([`wire`](super::wire) shapes it for the era).
//!
//! | inbound | entry point |
//! |---|---|
//! | `initialize` | [`McpEngine::initialize`] |
//! | request, notification, response (stateful, stateless, batch item) | [`McpEngine::accept`], then [`McpEngine::run`] for a request |
//! | GET stream of a session | [`McpEngine::open_stream`] |
//! | `subscriptions/listen` | [`McpEngine::open_listen`] |
//! | stateless notification, unknown method | [`McpEngine::admit_unrouted`] |
//! | DELETE of a session | [`McpEngine::end_session`] |
#![allow(deprecated)] // logging, sampling and subscriptions are deprecated in 2026-07-28, current before it

mod dispatch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use qudag_domain::clip::{NAME_BYTES, QUOTE_BYTES, clip, clip_owned};
use qudag_domain::principal::Principal;
use qudag_domain::quota::{Cost, Decision};
use qudag_domain::session::{ClientInfo, ProtocolVersion as DomainVersion, Session, SessionId};
use rmcp::model::{
    ClientCapabilities, ClientJsonRpcMessage, ClientNotification, ClientRequest, ClientResult, ErrorData, GetMeta,
    InitializeRequestParams, InitializeResult, JsonObject, JsonRpcMessage, NumberOrString, PromptsCapability,
    ProtocolVersion, RequestId, RequestStateCodec, ResourcesCapability, SamplingCapability, ServerCapabilities,
    ServerResult, ToolsCapability,
};
use serde_json::Value;
use tracing::Instrument;

use super::bus::{ANSWERS_TOPIC, NodeMessage};
use super::catalog::{Catalog, ResourceError};
use super::context::{AnswerOrigin, Outbox, PendingRequests};
use super::wire;
use crate::admission::{Admission, Caller, Refusal};
use crate::limits::{CallerLimits, Limit, Slots, holder_of};
use crate::ports::EventBus;
use crate::ports::metrics::ToolOutcome;
use crate::usecases::{SessionError, SessionService};

/// Items per page of a list result.
pub const PAGE_SIZE: usize = 100;

/// The wire era of one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Era {
    /// 2025-03-26 … 2025-11-25: initialize handshake and sessions.
    Stateful(ProtocolVersion),
    /// 2026-07-28: each request carries its own `_meta`.
    Stateless(ProtocolVersion),
}

impl Era {
    /// Whether this is the stateless era.
    pub fn is_stateless(&self) -> bool {
        matches!(self, Self::Stateless(_))
    }

    /// The protocol version.
    pub fn version(&self) -> &ProtocolVersion {
        match self {
            Self::Stateful(v) | Self::Stateless(v) => v,
        }
    }
}

/// Where an inbound message belongs, as the transport read it off the wire.
#[derive(Clone, Copy, Debug)]
pub enum Route<'a> {
    /// The stateful session named by `Mcp-Session-Id`.
    Session(&'a str),
    /// An item of a JSON-RPC batch in the session named by `Mcp-Session-Id` (2025-03-26
    /// sessions only).
    Batch(&'a str),
    /// A stateless request of this protocol version.
    Stateless(&'a ProtocolVersion),
}

/// One admitted request, ready to [run](McpEngine::run).
#[derive(Debug)]
pub struct Call {
    inbound: Inbound,
    request: ClientRequest,
    decision: Option<Decision>,
}

impl Call {
    /// The rate-limit decision that admitted it (for `RateLimit` headers).
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Its session (stateful era).
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.inbound.session.as_ref()
    }

    /// Whether it is a stateless request.
    pub fn is_stateless(&self) -> bool {
        self.inbound.era.is_stateless()
    }

    /// A signal that turns true when the handler asks for its response's connection to be
    /// closed mid-call (stateful streams resume with `Last-Event-ID`); `None` outside a
    /// session.
    pub fn close_signal(&mut self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.inbound.session.as_ref()?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.inbound.disconnect = Some(Arc::new(tx));
        Some(rx)
    }
}

/// What [`McpEngine::accept`] made of a message.
#[derive(Debug)]
pub enum Accepted {
    /// A request to run (boxed: a call is large, an absorbed message is nothing).
    Call(Box<Call>),
    /// A notification or a response, taken in; nothing to answer.
    Absorbed,
}

/// One admitted request as the handlers see it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The authenticated caller and the transport's facts.
    pub caller: Caller,
    /// The era.
    pub era: Era,
    /// The session (stateful era).
    pub session: Option<Arc<Session>>,
    /// Set by a handler that wants the response's connection closed (stateful streams).
    pub disconnect: Option<Arc<tokio::sync::watch::Sender<bool>>>,
}

/// Why a message got no result.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A JSON-RPC error for the client.
    #[error("{}", .0.message)]
    Rpc(ErrorData),
    /// Admission refused it (rate limit, authorization, a backend it needs is down).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The session store failed, or the session is unknown, expired or someone else's.
    #[error(transparent)]
    Session(SessionError),
    /// A bound per caller was reached (HTTP 429, JSON-RPC -31002, with `Retry-After`).
    #[error(transparent)]
    Limit(#[from] Limit),
}

/// A session refused for the caller's allowance is that limit; anything else stays a
/// session error.
impl From<SessionError> for EngineError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Limit(limit) => Self::Limit(limit),
            SessionError::Unrecorded(refusal) => Self::Refused(refusal),
            other => Self::Session(other),
        }
    }
}

impl From<ErrorData> for EngineError {
    fn from(e: ErrorData) -> Self {
        Self::Rpc(e)
    }
}

/// A resource's backend outage is refused as a tool's is; its other errors go out as they are.
impl From<ResourceError> for EngineError {
    fn from(e: ResourceError) -> Self {
        match e {
            ResourceError::Unavailable(outage) => Self::Refused(outage.into()),
            ResourceError::Rpc(e) => Self::Rpc(e),
        }
    }
}

/// The MCP engine.
pub struct McpEngine {
    catalog: Arc<Catalog>,
    admission: Arc<Admission>,
    sessions: Arc<SessionService>,
    pending: Arc<PendingRequests>,
    codec: Arc<RequestStateCodec>,
    events: Arc<dyn EventBus>,
    running: Mutex<HashMap<(String, String), tokio::task::AbortHandle>>,
    limits: CallerLimits,
    tool_calls: Arc<Slots>,
}

impl std::fmt::Debug for McpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpEngine").field("catalog", &self.catalog).finish_non_exhaustive()
    }
}

impl McpEngine {
    /// An engine serving `catalog`, announcing changes on `events`. `state_key` (at least
    /// 32 bytes) seals input-required request state; nodes behind one load balancer must
    /// share it.
    ///
    /// # Errors
    /// When the key is shorter than 32 bytes.
    pub fn new(
        catalog: Arc<Catalog>,
        admission: Arc<Admission>,
        sessions: Arc<SessionService>,
        events: Arc<dyn EventBus>,
        state_key: Vec<u8>,
    ) -> Result<Self, String> {
        let pending = PendingRequests::new(CallerLimits::default().pending_requests, &state_key);
        let codec = RequestStateCodec::try_new(state_key).map_err(|e| format!("request-state key: {e}"))?;
        Ok(Self {
            catalog,
            admission,
            sessions,
            pending: Arc::new(pending),
            codec: Arc::new(codec),
            events,
            running: Mutex::new(HashMap::new()),
            limits: CallerLimits::default(),
            tool_calls: Slots::new(CallerLimits::default().tool_calls),
        })
    }

    /// Keep callers within `limits` (the session bound is the [`SessionService`]'s).
    #[must_use]
    pub fn with_limits(mut self, limits: CallerLimits) -> Self {
        self.pending = Arc::new(self.pending.with_max(limits.pending_requests));
        self.tool_calls = Slots::new(limits.tool_calls);
        self.limits = limits;
        self
    }

    /// The bounds per caller it keeps.
    pub fn limits(&self) -> &CallerLimits {
        &self.limits
    }

    /// Callers with a tool call running now (each has one entry in the count).
    pub fn callers_running_tools(&self) -> usize {
        self.tool_calls.holders()
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Admission, whose [`authenticate`](Admission::authenticate) makes the [`Caller`] every
    /// entry point takes.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// The session service.
    pub fn sessions(&self) -> &Arc<SessionService> {
        &self.sessions
    }

    /// What the server can do, as declared to clients of an era.
    pub fn capabilities(&self, stateless: bool) -> ServerCapabilities {
        let (tools, prompts, resources) = self.catalog.offers();
        let mut caps = ServerCapabilities::default();
        if tools {
            let mut t = ToolsCapability::default();
            t.list_changed = Some(true);
            caps.tools = Some(t);
        }
        if prompts {
            let mut p = PromptsCapability::default();
            p.list_changed = Some(true);
            caps.prompts = Some(p);
        }
        if resources {
            let mut r = ResourcesCapability::default();
            r.subscribe = Some(true);
            r.list_changed = Some(true);
            caps.resources = Some(r);
        }
        if self.catalog.completer().is_some() {
            caps.completions = Some(JsonObject::new());
        }
        if !stateless {
            caps.logging = Some(JsonObject::new());
        }
        caps
    }

    /// `initialize`: admit, negotiate the version, open a session bound to the caller.
    ///
    /// # Errors
    /// A refusal, or a session that cannot be stored.
    pub async fn initialize(
        &self,
        caller: &Caller,
        params: &InitializeRequestParams,
    ) -> Result<(Session, InitializeResult, Option<Decision>), EngineError> {
        let decision = self.admission.admit(caller, Cost::ONE).await?;
        let version = wire::negotiate(params.protocol_version.as_str());
        let domain_version = DomainVersion::parse(version.as_str())
            .map_err(|e| ErrorData::internal_error(format!("negotiated version: {e}"), None))?;
        // Only what the server uses is kept, and the client's strings only to a fixed size.
        let client = ClientInfo {
            name: clip(&params.client_info.name, NAME_BYTES).into_owned(),
            version: clip(&params.client_info.version, NAME_BYTES).into_owned(),
        };
        let caps = serde_json::to_value(used_capabilities(&params.capabilities)).unwrap_or(Value::Null);
        let holder = holder_of(caller);
        let session =
            self.sessions.open(caller.ctx(), caller.principal().id(), &holder, domain_version, client, caps).await?;
        let mut result = InitializeResult::new(self.capabilities(false))
            .with_protocol_version(version)
            .with_server_info(self.catalog.server_info().clone());
        if let Some(instructions) = self.catalog.instructions() {
            result = result.with_instructions(instructions);
        }
        Ok((session, result, decision))
    }

    /// Admit a message (a request at its cost, anything else at one unit), find its session,
    /// and take it in: a request comes back as a [`Call`] to run, a notification or a
    /// client's answer is handled here.
    ///
    /// # Errors
    /// A refusal, an unknown session, or a batch outside a 2025-03-26 session.
    pub async fn accept(
        &self,
        caller: &Caller,
        route: Route<'_>,
        message: ClientJsonRpcMessage,
    ) -> Result<Accepted, EngineError> {
        let stateless = matches!(route, Route::Stateless(_));
        let cost = match &message {
            JsonRpcMessage::Request(r) => self.cost_of(&r.request, stateless),
            _ => Cost::ONE,
        };
        let decision = match self.admission.admit(caller, cost).await {
            Ok(d) => d,
            Err(refusal) => {
                if let JsonRpcMessage::Request(r) = &message {
                    self.record_refusal(&r.request, stateless, &refusal);
                }
                return Err(refusal.into());
            }
        };
        let (era, session) = match route {
            Route::Stateless(version) => (Era::Stateless(version.clone()), None),
            Route::Session(raw) | Route::Batch(raw) => {
                let session = self.resume(caller, raw).await?;
                let version = session.protocol_version().as_str();
                if matches!(route, Route::Batch(_)) && version != "2025-03-26" {
                    return Err(
                        ErrorData::invalid_request("JSON-RPC batches were removed after 2025-03-26", None).into()
                    );
                }
                (Era::Stateful(wire::version(version)), Some(session))
            }
        };
        let inbound = Inbound { caller: caller.clone(), era, session, disconnect: None };
        match message {
            JsonRpcMessage::Request(r) => Ok(Accepted::Call(Box::new(Call { inbound, request: r.request, decision }))),
            JsonRpcMessage::Notification(n) => {
                self.notify(&inbound, n.notification).await?;
                Ok(Accepted::Absorbed)
            }
            JsonRpcMessage::Response(r) => {
                self.answer(&inbound, &r.id, Ok(r.result)).await?;
                Ok(Accepted::Absorbed)
            }
            JsonRpcMessage::Error(e) => {
                if let Some(id) = &e.id {
                    self.answer(&inbound, id, Err(e.error)).await?;
                }
                Ok(Accepted::Absorbed)
            }
        }
    }

    /// A message no entry point takes (a stateless notification — 2026-07-28 defines none
    /// over HTTP — or a request for an unknown method): admitted and counted like any other
    /// message, then answered by the transport.
    ///
    /// # Errors
    /// A refusal.
    pub async fn admit_unrouted(&self, caller: &Caller) -> Result<(), EngineError> {
        self.admission.admit(caller, Cost::ONE).await?;
        Ok(())
    }

    /// Admit the opening of a session's GET stream, and find the session.
    ///
    /// # Errors
    /// A refusal, or an unknown session.
    pub async fn open_stream(
        &self,
        caller: &Caller,
        session: &str,
    ) -> Result<(Arc<Session>, Option<Decision>), EngineError> {
        let decision = self.admission.admit(caller, Cost::ONE).await?;
        Ok((self.resume(caller, session).await?, decision))
    }

    /// Admit the opening of a `subscriptions/listen` stream asking for `filter`: the
    /// resources it names are checked as `resources/subscribe` checks one, and there may be
    /// no more of them than a session may subscribe to.
    ///
    /// # Errors
    /// A refusal, a resource URI refused, or too many of them.
    pub async fn open_listen(
        &self,
        caller: &Caller,
        filter: &rmcp::model::SubscriptionFilter,
    ) -> Result<Option<Decision>, EngineError> {
        let decision = self.admission.admit(caller, Cost::ONE).await?;
        if let Some(uris) = &filter.resource_subscriptions {
            let max = self.limits.subscriptions_per_session;
            if uris.len() > max {
                return Err(Limit::subscriptions(max).into());
            }
            for uri in uris {
                self.check_subscription(caller, uri, true).await?;
            }
        }
        Ok(decision)
    }

    /// End the caller's session (DELETE), and tell every node its streams are over.
    ///
    /// # Errors
    /// A refusal, or an unknown session.
    pub async fn end_session(&self, caller: &Caller, session: &str) -> Result<SessionId, EngineError> {
        self.admission.admit(caller, Cost::ONE).await?;
        let id = SessionId::parse(session).map_err(|_| SessionError::NotFound)?;
        self.sessions.close(caller.ctx(), &id, caller.principal().id()).await?;
        let ended = NodeMessage::SessionClosed { session: id.as_str().to_owned() };
        if let Err(e) = ended.publish(self.events.as_ref()).await {
            tracing::warn!(error = %e, "Cannot announce the end of a session to its streams");
        }
        Ok(id)
    }

    /// The caller's session called `raw`.
    async fn resume(&self, caller: &Caller, raw: &str) -> Result<Arc<Session>, EngineError> {
        let id = SessionId::parse(raw).map_err(|_| SessionError::NotFound)?;
        Ok(self.sessions.resume(caller.ctx(), &id, caller.principal().id()).await?)
    }

    /// The quota cost of a request (a tool's own cost for `tools/call`, one otherwise).
    fn cost_of(&self, request: &ClientRequest, stateless: bool) -> Cost {
        match request {
            ClientRequest::CallToolRequest(r) => {
                self.catalog.tool(&r.params.name, stateless).map_or(Cost::ONE, |t| t.cost())
            }
            _ => Cost::ONE,
        }
    }

    /// Run an admitted request whose JSON-RPC id is `rpc_id`: authorize, run, audit.
    /// Messages it sends before its result (notifications, requests to the client) go to
    /// `outbox`.
    ///
    /// # Errors
    /// A JSON-RPC error, a refusal, or a session failure.
    pub async fn run(
        &self,
        call: Call,
        rpc_id: &RequestId,
        outbox: Option<Outbox>,
    ) -> Result<ServerResult, EngineError> {
        let Call { inbound, request, .. } = call;
        // The method and id are the caller's text: spans and logs get a short prefix.
        let method = clip(request.method(), QUOTE_BYTES).into_owned();
        let rpc_label = clip_owned(rpc_id.to_string(), QUOTE_BYTES);
        let tool = match &request {
            ClientRequest::CallToolRequest(r) => Some(self.tool_label(&r.params.name, inbound.era.is_stateless())),
            _ => None,
        };
        // Named and attributed after the OpenTelemetry semantic conventions for MCP: the span
        // name is `{mcp.method.name} {target}`, the target being the tool for tools/call.
        let span = tracing::info_span!(
            "mcp.server",
            otel.name = %match &tool { Some(t) => format!("{method} {t}"), None => method.clone() },
            otel.kind = "server",
            mcp.method.name = %method,
            mcp.protocol.version = %inbound.era.version().as_str(),
            mcp.session.id = tracing::field::Empty,
            jsonrpc.request.id = %rpc_label,
            gen_ai.tool.name = tool.as_deref(),
            gen_ai.operation.name = tool.as_ref().map(|_| "execute_tool"),
            request_id = %inbound.caller.ctx().request_id,
            error.type = tracing::field::Empty,
        );
        if let Some(session) = &inbound.session {
            span.record("mcp.session.id", session.id().as_str());
        }
        // A trace context in `_meta` names the caller's span for this very call; it wins over
        // the HTTP headers (which the enclosing `http.request` span continues).
        let meta = request.get_meta();
        crate::tracecontext::continue_trace(
            &span,
            crate::tracecontext::RemoteContext {
                traceparent: meta.get_traceparent(),
                tracestate: meta.get_tracestate(),
            },
        );
        let started = Instant::now();
        let result = self.dispatch(&inbound, request, outbox).instrument(span.clone()).await;
        let metrics = self.admission.metrics();
        metrics.mcp_operation(&method, tool.as_deref(), started.elapsed());
        let outcome = match &result {
            Ok(ServerResult::CallToolResult(r)) if r.is_error == Some(true) => {
                span.record("error.type", "tool_error");
                ToolOutcome::ToolError
            }
            Ok(_) => ToolOutcome::Success,
            Err(e) => {
                let (outcome, kind) = engine_error_kind(e);
                if let Some(component) = backend_of(e) {
                    metrics.backend_error(component);
                }
                span.record("error.type", kind);
                outcome
            }
        };
        if let Some(tool) = &tool {
            metrics.tool_call(tool, outcome);
        }
        result
    }

    /// The `gen_ai.tool.name` label for a call of `name`: the name when the catalog has such
    /// a tool, `other` otherwise (so callers cannot mint label values).
    fn tool_label(&self, name: &str, stateless: bool) -> String {
        self.catalog.tool(name, stateless).map_or("other", |_| name).to_owned()
    }

    /// Count a request admission refused: for `tools/call` it is a call with that outcome.
    fn record_refusal(&self, request: &ClientRequest, stateless: bool, refusal: &Refusal) {
        if let ClientRequest::CallToolRequest(r) = request {
            let tool = self.tool_label(&r.params.name, stateless);
            let (outcome, _) = refusal_kind(refusal);
            self.admission.metrics().tool_call(&tool, outcome);
        }
    }

    /// A notification from the client.
    async fn notify(&self, inbound: &Inbound, notification: ClientNotification) -> Result<(), EngineError> {
        match notification {
            ClientNotification::InitializedNotification(_) => {
                if let Some(session) = &inbound.session
                    && !session.is_initialized()
                {
                    let mut session = Session::clone(session);
                    session.mark_initialized();
                    self.sessions.save(&session).await?;
                }
            }
            ClientNotification::CancelledNotification(n) => {
                if let (Some(session), Some(id)) = (&inbound.session, n.params.request_id) {
                    let key = (session.id().as_str().to_owned(), id.to_string());
                    let handle = self.running_lock().remove(&key);
                    if let Some(handle) = handle {
                        handle.abort();
                        tracing::debug!(request = %clip(&key.1, QUOTE_BYTES), "Request cancelled by the client");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Route the client's answer to a server-to-client request: to the request waiting on
    /// this node, or else over the bus to the node where it waits (`route_answers`). An
    /// answer to no request any node sent in this session — or to one of this node's that
    /// no longer waits — is refused here and never published.
    ///
    /// # Errors
    /// -32600 naming the id, for an answer nothing waits for.
    async fn answer(
        &self,
        inbound: &Inbound,
        id: &NumberOrString,
        answer: Result<ClientResult, ErrorData>,
    ) -> Result<(), EngineError> {
        let unmatched = || {
            let id = clip_owned(id.to_string(), QUOTE_BYTES);
            EngineError::Rpc(ErrorData::invalid_request(
                format!("no request of this session waits for a response with id {id}"),
                None,
            ))
        };
        let Some(session) = &inbound.session else { return Err(unmatched()) };
        let sid = session.id().as_str();
        match self.pending.origin(sid, id) {
            AnswerOrigin::Waiting => {
                self.pending.deliver(sid, id, answer);
                Ok(())
            }
            AnswerOrigin::OtherNode => {
                let message = NodeMessage::Answer { session: sid.to_owned(), id: id.clone(), answer: answer.into() };
                if let Err(error) = message.publish(self.events.as_ref()).await {
                    tracing::warn!(%error, "Cannot forward a client's answer to the other nodes");
                }
                Ok(())
            }
            AnswerOrigin::Gone | AnswerOrigin::Unknown => Err(unmatched()),
        }
    }

    /// Deliver the answers other nodes forward (see `answer`) to the requests
    /// waiting here, until the subscription ends.
    ///
    /// # Errors
    /// When the bus cannot be subscribed to.
    pub async fn route_answers(&self) -> Result<(), crate::ports::EventBusError> {
        use futures::StreamExt;
        let mut answers = self.events.subscribe(&crate::ports::Topic::new(ANSWERS_TOPIC)).await?;
        while let Some(message) = answers.next().await {
            let Some(NodeMessage::Answer { session, id, answer }) = NodeMessage::parse(&message.payload) else {
                tracing::warn!("Unreadable answer forwarded by another node");
                continue;
            };
            if self.pending.waits(&session, &id) {
                self.pending.deliver(&session, &id, answer.into());
            }
        }
        Ok(())
    }

    /// Remember a running request so `notifications/cancelled` can stop it.
    pub fn track(&self, session: &Session, id: &RequestId, handle: tokio::task::AbortHandle) {
        self.running_lock().insert((session.id().as_str().to_owned(), id.to_string()), handle);
    }

    /// Forget a finished request.
    pub fn untrack(&self, session: &Session, id: &RequestId) {
        self.running_lock().remove(&(session.id().as_str().to_owned(), id.to_string()));
    }

    fn running_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), tokio::task::AbortHandle>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a session keeps of the capabilities a client declared: what the server asks about
/// (can it be sent sampling, elicitation, roots requests, and in which forms), never the
/// client's free-form objects (`experimental`, `extensions`, sampling's settings).
fn used_capabilities(sent: &ClientCapabilities) -> ClientCapabilities {
    let mut kept = ClientCapabilities::default();
    kept.roots = sent.roots.clone();
    kept.elicitation = sent.elicitation.clone();
    kept.sampling = sent.sampling.as_ref().map(|s| {
        let mut sampling = SamplingCapability::default();
        sampling.tools = s.tools.as_ref().map(|_| JsonObject::new());
        sampling.context = s.context.as_ref().map(|_| JsonObject::new());
        sampling
    });
    kept
}

/// The principal of an inbound request.
fn principal(inbound: &Inbound) -> &Principal {
    inbound.caller.principal()
}

/// The tool-call outcome and the `error.type` of a failed request.
fn engine_error_kind(e: &EngineError) -> (ToolOutcome, &'static str) {
    match e {
        EngineError::Rpc(_) => (ToolOutcome::Error, "jsonrpc_error"),
        EngineError::Refused(r) => refusal_kind(r),
        EngineError::Session(SessionError::NotFound) => (ToolOutcome::Error, "session_not_found"),
        EngineError::Limit(_) => (ToolOutcome::RateLimited, "limit_reached"),
        EngineError::Session(_) => (ToolOutcome::Unavailable, "session_store_unavailable"),
    }
}

/// The tool-call outcome and the `error.type` of a refusal.
fn refusal_kind(r: &Refusal) -> (ToolOutcome, &'static str) {
    match r {
        Refusal::Unauthenticated(_) => (ToolOutcome::Denied, "unauthenticated"),
        Refusal::RateLimited(_) => (ToolOutcome::RateLimited, "rate_limited"),
        Refusal::Forbidden(_) => (ToolOutcome::Denied, "forbidden"),
        Refusal::Unavailable { .. } => (ToolOutcome::Unavailable, "unavailable"),
    }
}

/// The backend component behind a failure, for `qudag_backend_errors_total`.
fn backend_of(e: &EngineError) -> Option<&'static str> {
    match e {
        EngineError::Refused(Refusal::Unavailable { component, .. }) => Some(component),
        EngineError::Session(SessionError::Store(_)) => Some("session_store"),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod bounds_tests;
