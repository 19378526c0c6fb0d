//! The engine: one method per MCP request, written against the catalog and the use cases.
//!
//! The transport decides the era of each HTTP request and hands the engine a parsed
//! `rmcp::model::ClientRequest`; the engine answers with a `ServerResult` or an
//! `ErrorData`, and [`wire`](super::wire) shapes that for the era on the way out.
#![allow(deprecated)] // logging, sampling and subscriptions are deprecated in 2026-07-28, current before it

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use qudag_domain::audit::digest_json;
use qudag_domain::principal::Principal;
use qudag_domain::quota::Cost;
use qudag_domain::session::{ClientInfo, ProtocolVersion as DomainVersion, Session};
use rmcp::model::{
    CallToolResult, ClientCapabilities, ClientNotification, ClientRequest, ClientResult, CompleteResult,
    DiscoverResult, ErrorData, GetMeta, InitializeRequestParams, InitializeResult, JsonObject, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel, NumberOrString, PromptsCapability,
    ProtocolVersion, RequestId, RequestStateCodec, ResourcesCapability, ServerCapabilities, ServerResult,
    ToolsCapability,
};
use serde_json::Value;
use tracing::Instrument;

use super::catalog::{Catalog, PromptResponse, ToolResponse};
use super::context::{CallContext, Outbox, PendingRequests};
use super::wire;
use crate::ports::EventBus;
use crate::ports::metrics::ToolOutcome;
use crate::usecases::{Pipeline, PipelineError, RequestContext, SessionError, SessionService};

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

/// One request as the transport hands it over.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Transport facts.
    pub ctx: RequestContext,
    /// The authenticated caller.
    pub principal: Principal,
    /// The era.
    pub era: Era,
    /// The session (stateful era).
    pub session: Option<Arc<Session>>,
    /// Set by a handler that wants the response's connection closed (stateful streams).
    pub disconnect: Option<Arc<tokio::sync::watch::Sender<bool>>>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A JSON-RPC error for the client.
    #[error("{}", .0.message)]
    Rpc(ErrorData),
    /// The pipeline refused (authorization, rate limit, backend).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The session store failed, or the session vanished.
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<ErrorData> for EngineError {
    fn from(e: ErrorData) -> Self {
        Self::Rpc(e)
    }
}

/// The MCP engine.
pub struct McpEngine {
    catalog: Arc<Catalog>,
    pipeline: Arc<Pipeline>,
    sessions: Arc<SessionService>,
    pending: Arc<PendingRequests>,
    codec: Arc<RequestStateCodec>,
    events: Arc<dyn EventBus>,
    running: Mutex<HashMap<(String, String), tokio::task::AbortHandle>>,
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
        pipeline: Arc<Pipeline>,
        sessions: Arc<SessionService>,
        events: Arc<dyn EventBus>,
        state_key: Vec<u8>,
    ) -> Result<Self, String> {
        let codec = RequestStateCodec::try_new(state_key).map_err(|e| format!("request-state key: {e}"))?;
        Ok(Self {
            catalog,
            pipeline,
            sessions,
            pending: Arc::new(PendingRequests::default()),
            codec: Arc::new(codec),
            events,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
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

    /// Handle `initialize`: negotiate the version, open a session bound to `principal`.
    ///
    /// # Errors
    /// When the session cannot be stored.
    pub async fn initialize(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        params: &InitializeRequestParams,
    ) -> Result<(Session, InitializeResult), EngineError> {
        let version = wire::negotiate(params.protocol_version.as_str());
        let domain_version = DomainVersion::parse(version.as_str())
            .map_err(|e| ErrorData::internal_error(format!("negotiated version: {e}"), None))?;
        let client = ClientInfo { name: params.client_info.name.clone(), version: params.client_info.version.clone() };
        let caps = serde_json::to_value(&params.capabilities).unwrap_or(Value::Null);
        let session = self.sessions.open(ctx, principal.id(), domain_version, client, caps).await?;
        let mut result = InitializeResult::new(self.capabilities(false))
            .with_protocol_version(version)
            .with_server_info(self.catalog.server_info().clone());
        if let Some(instructions) = self.catalog.instructions() {
            result = result.with_instructions(instructions);
        }
        Ok((session, result))
    }

    /// The quota cost of a request (a tool's own cost for `tools/call`, one otherwise).
    pub fn cost_of(&self, request: &ClientRequest, stateless: bool) -> Cost {
        match request {
            ClientRequest::CallToolRequest(r) => {
                self.catalog.tool(&r.params.name, stateless).map_or(Cost::ONE, |t| t.cost())
            }
            _ => Cost::ONE,
        }
    }

    /// Handle a request.
    ///
    /// # Errors
    /// A JSON-RPC error, a pipeline refusal, or a session failure.
    pub async fn handle(
        &self,
        inbound: &Inbound,
        request: ClientRequest,
        outbox: Option<Outbox>,
    ) -> Result<ServerResult, EngineError> {
        self.handle_with_id(inbound, None, request, outbox).await
    }

    /// [`McpEngine::handle`] for the request whose JSON-RPC id is `rpc_id`, recorded as
    /// `jsonrpc.request.id` on the request's span.
    ///
    /// # Errors
    /// As [`McpEngine::handle`].
    pub async fn handle_with_id(
        &self,
        inbound: &Inbound,
        rpc_id: Option<&RequestId>,
        request: ClientRequest,
        outbox: Option<Outbox>,
    ) -> Result<ServerResult, EngineError> {
        let method = request.method().to_owned();
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
            jsonrpc.request.id = rpc_id.map(tracing::field::display),
            gen_ai.tool.name = tool.as_deref(),
            gen_ai.operation.name = tool.as_ref().map(|_| "execute_tool"),
            request_id = %inbound.ctx.request_id,
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
        let result = self.dispatch(inbound, request, outbox).instrument(span.clone()).await;
        let metrics = self.pipeline.metrics();
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
    pub fn tool_label(&self, name: &str, stateless: bool) -> String {
        self.catalog.tool(name, stateless).map_or("other", |_| name).to_owned()
    }

    /// Count a request the pipeline refused before it reached [`McpEngine::handle`] (a rate
    /// limit, a full audit queue): for `tools/call` it is a call with that outcome.
    pub fn record_refusal(&self, request: &ClientRequest, stateless: bool, error: &PipelineError) {
        if let ClientRequest::CallToolRequest(r) = request {
            let tool = self.tool_label(&r.params.name, stateless);
            let (outcome, _) = pipeline_error_kind(error);
            self.pipeline.metrics().tool_call(&tool, outcome);
        }
    }

    async fn dispatch(
        &self,
        inbound: &Inbound,
        request: ClientRequest,
        outbox: Option<Outbox>,
    ) -> Result<ServerResult, EngineError> {
        let stateless = inbound.era.is_stateless();
        let method = request.method().to_owned();
        if stateless && wire::REMOVED_IN_STATELESS.contains(&method.as_str()) {
            return Err(wire::method_not_found(&method).into());
        }
        let cx = self.context(inbound, &request, outbox);
        match request {
            ClientRequest::PingRequest(_) => Ok(ServerResult::empty(())),
            ClientRequest::InitializeRequest(_) => {
                Err(ErrorData::invalid_request("the session is already initialized", None).into())
            }
            ClientRequest::DiscoverRequest(_) => {
                let versions = wire::all_versions();
                let result = DiscoverResult::new(versions, self.capabilities(true))
                    .with_server_info(self.catalog.server_info().clone())
                    .with_ttl_ms(wire::LIST_TTL_MS)
                    .with_cache_scope(rmcp::model::CacheScope::Public);
                Ok(ServerResult::DiscoverResult(result))
            }
            ClientRequest::SetLevelRequest(r) => {
                let mut session = self.session(inbound)?;
                let level = serde_json::to_value(r.params.level).ok().and_then(|v| v.as_str().map(str::to_owned));
                session.set_log_level(level.unwrap_or_else(|| "info".into()));
                self.sessions.save(&session).await?;
                Ok(ServerResult::empty(()))
            }
            ClientRequest::SubscribeRequest(r) => {
                let mut session = self.session(inbound)?;
                if session.subscribe(r.params.uri) {
                    self.sessions.save(&session).await?;
                }
                Ok(ServerResult::empty(()))
            }
            ClientRequest::UnsubscribeRequest(r) => {
                let mut session = self.session(inbound)?;
                if session.unsubscribe(&r.params.uri) {
                    self.sessions.save(&session).await?;
                }
                Ok(ServerResult::empty(()))
            }
            ClientRequest::ListToolsRequest(r) => {
                let cursor = r.params.and_then(|p| p.cursor);
                let tools: Vec<_> = self.catalog.tool_definitions(stateless).cloned().collect();
                let (tools, next) = wire::page(tools, cursor.as_deref(), PAGE_SIZE)?;
                let mut result = ListToolsResult::with_all_items(tools);
                result.next_cursor = next;
                Ok(ServerResult::ListToolsResult(result))
            }
            ClientRequest::CallToolRequest(r) => {
                let name = r.params.name.to_string();
                let tool = self
                    .catalog
                    .tool(&name, stateless)
                    .ok_or_else(|| ErrorData::invalid_params(format!("unknown tool: {name}"), None))?
                    .clone();
                self.pipeline.authorize(&inbound.ctx, &inbound.principal, &name, tool.permission()).await?;
                let arguments = Value::Object(r.params.arguments.unwrap_or_default());
                let digest = digest_json(&arguments);
                let Value::Object(arguments) = arguments else { unreachable!("built as an object above") };
                let started = Instant::now();
                let outcome = tool.call(&cx, arguments).await;
                let error = match &outcome {
                    Ok(ToolResponse::Complete(result)) if result.is_error == Some(true) => {
                        Some(wire::first_text(&result.content).unwrap_or_else(|| "tool reported an error".into()))
                    }
                    Ok(_) => None,
                    Err(e) => Some(e.message.to_string()),
                };
                self.pipeline
                    .record_call(&inbound.ctx, &inbound.principal, &name, digest, error, started.elapsed())
                    .await;
                match outcome? {
                    ToolResponse::Complete(result) => Ok(ServerResult::CallToolResult(result)),
                    ToolResponse::InputRequired(result) if stateless => Ok(ServerResult::InputRequiredResult(result)),
                    ToolResponse::InputRequired(_) => {
                        Ok(ServerResult::CallToolResult(CallToolResult::error(vec![rmcp::model::ContentBlock::text(
                            "this tool needs input the stateful era cannot carry",
                        )])))
                    }
                }
            }
            ClientRequest::ListPromptsRequest(r) => {
                let cursor = r.params.and_then(|p| p.cursor);
                let prompts: Vec<_> = self.catalog.prompt_definitions(stateless).cloned().collect();
                let (prompts, next) = wire::page(prompts, cursor.as_deref(), PAGE_SIZE)?;
                let mut result = ListPromptsResult::with_all_items(prompts);
                result.next_cursor = next;
                Ok(ServerResult::ListPromptsResult(result))
            }
            ClientRequest::GetPromptRequest(r) => {
                let name = r.params.name.clone();
                let prompt = self
                    .catalog
                    .prompt(&name, stateless)
                    .ok_or_else(|| ErrorData::invalid_params(format!("unknown prompt: {name}"), None))?
                    .clone();
                self.pipeline.authorize(&inbound.ctx, &inbound.principal, &name, prompt.permission()).await?;
                match prompt.get(&cx, r.params.arguments.unwrap_or_default()).await? {
                    PromptResponse::Complete(result) => Ok(ServerResult::GetPromptResult(result)),
                    PromptResponse::InputRequired(result) if stateless => Ok(ServerResult::InputRequiredResult(result)),
                    PromptResponse::InputRequired(_) => {
                        Err(ErrorData::invalid_params("this prompt needs input the stateful era cannot carry", None)
                            .into())
                    }
                }
            }
            ClientRequest::ListResourcesRequest(r) => {
                let cursor = r.params.and_then(|p| p.cursor);
                let resources: Vec<_> = self.catalog.resource_providers().iter().flat_map(|p| p.resources()).collect();
                let (resources, next) = wire::page(resources, cursor.as_deref(), PAGE_SIZE)?;
                let mut result = ListResourcesResult::with_all_items(resources);
                result.next_cursor = next;
                Ok(ServerResult::ListResourcesResult(result))
            }
            ClientRequest::ListResourceTemplatesRequest(r) => {
                let cursor = r.params.and_then(|p| p.cursor);
                let templates: Vec<_> = self.catalog.resource_providers().iter().flat_map(|p| p.templates()).collect();
                let (templates, next) = wire::page(templates, cursor.as_deref(), PAGE_SIZE)?;
                let mut result = ListResourceTemplatesResult::with_all_items(templates);
                result.next_cursor = next;
                Ok(ServerResult::ListResourceTemplatesResult(result))
            }
            ClientRequest::ReadResourceRequest(r) => {
                let uri = r.params.uri.clone();
                for provider in self.catalog.resource_providers() {
                    if let Some(result) = provider.read(&cx, &uri).await? {
                        self.pipeline.authorize(&inbound.ctx, &inbound.principal, &uri, provider.permission()).await?;
                        return Ok(ServerResult::ReadResourceResult(result));
                    }
                }
                Err(wire::resource_not_found(&uri, stateless).into())
            }
            ClientRequest::CompleteRequest(r) => {
                let completer =
                    self.catalog.completer().ok_or_else(|| wire::method_not_found("completion/complete"))?.clone();
                let info = completer.complete(&cx, &r.params).await?;
                Ok(ServerResult::CompleteResult(CompleteResult::new(info)))
            }
            ClientRequest::CustomRequest(r) if wire::is_known_method(&r.method) => {
                Err(ErrorData::invalid_params(format!("invalid params for {}", r.method), None).into())
            }
            other => Err(wire::method_not_found(other.method()).into()),
        }
    }

    /// Handle a notification from the client.
    ///
    /// # Errors
    /// When the session cannot be updated.
    pub async fn notify(&self, inbound: &Inbound, notification: ClientNotification) -> Result<(), EngineError> {
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
                        tracing::debug!(request = %key.1, "Request cancelled by the client");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Route the client's answer to a server-to-client request: to the request waiting on
    /// this node, or else over the bus to the node where it waits ([`Self::route_answers`]).
    /// False when it could not be routed (the bus is down).
    pub async fn deliver(
        &self,
        session: &Session,
        id: &NumberOrString,
        answer: Result<ClientResult, ErrorData>,
    ) -> bool {
        let sid = session.id().as_str();
        if self.pending.waits(sid, id) {
            return self.pending.deliver(sid, id, answer);
        }
        let answer = match answer {
            Ok(result) => serde_json::json!({ "result": result }),
            Err(error) => serde_json::json!({ "error": error }),
        };
        let payload = serde_json::json!({ "session": sid, "id": id, "answer": answer });
        match self.events.publish(&crate::ports::Topic::new(super::context::ANSWERS_TOPIC), payload).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "Cannot forward a client's answer to the other nodes");
                false
            }
        }
    }

    /// Deliver the answers other nodes forward (see [`Self::deliver`]) to the requests
    /// waiting here, until the subscription ends.
    ///
    /// # Errors
    /// When the bus cannot be subscribed to.
    pub async fn route_answers(&self) -> Result<(), crate::ports::EventBusError> {
        use futures::StreamExt;
        let mut answers = self.events.subscribe(&crate::ports::Topic::new(super::context::ANSWERS_TOPIC)).await?;
        while let Some(message) = answers.next().await {
            let p = &message.payload;
            let (Some(session), Ok(id)) =
                (p["session"].as_str(), serde_json::from_value::<NumberOrString>(p["id"].clone()))
            else {
                continue;
            };
            if !self.pending.waits(session, &id) {
                continue;
            }
            let answer = if let Some(error) = p["answer"].get("error") {
                serde_json::from_value::<ErrorData>(error.clone()).map(Err)
            } else {
                serde_json::from_value::<ClientResult>(p["answer"]["result"].clone()).map(Ok)
            };
            match answer {
                Ok(answer) => {
                    self.pending.deliver(session, &id, answer);
                }
                Err(error) => tracing::warn!(%error, "Unreadable answer forwarded by another node"),
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

    fn session(&self, inbound: &Inbound) -> Result<Session, ErrorData> {
        inbound
            .session
            .as_deref()
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("this method needs a session", None))
    }

    fn context(&self, inbound: &Inbound, request: &ClientRequest, outbox: Option<Outbox>) -> CallContext {
        let meta = request.get_meta();
        let stateless = inbound.era.is_stateless();
        let (client_capabilities, log_level) = match (&inbound.session, stateless) {
            (Some(session), false) => (
                serde_json::from_value::<ClientCapabilities>(session.client_capabilities().clone()).unwrap_or_default(),
                session
                    .log_level()
                    .and_then(|l| serde_json::from_value::<LoggingLevel>(Value::String(l.to_owned())).ok()),
            ),
            _ => (meta.client_capabilities().unwrap_or_default(), meta.log_level()),
        };
        let (input_responses, request_state, name) = match request {
            ClientRequest::CallToolRequest(r) => {
                (r.params.input_responses.clone(), r.params.request_state.clone(), r.params.name.to_string())
            }
            ClientRequest::GetPromptRequest(r) => {
                (r.params.input_responses.clone(), r.params.request_state.clone(), r.params.name.clone())
            }
            ClientRequest::ReadResourceRequest(r) => {
                (r.params.input_responses.clone(), r.params.request_state.clone(), r.params.uri.clone())
            }
            _ => (None, None, String::new()),
        };
        let peer =
            inbound.session.as_ref().filter(|_| !stateless).map(|s| (s.id().as_str().to_owned(), self.pending.clone()));
        CallContext {
            request: inbound.ctx.clone(),
            principal: inbound.principal.clone(),
            stateless,
            protocol_version: inbound.era.version().clone(),
            client_capabilities,
            progress_token: meta.get_progress_token(),
            log_level,
            input_responses,
            request_state,
            outbox,
            peer,
            codec: self.codec.clone(),
            events: Some(self.events.clone()),
            disconnect: inbound.disconnect.clone(),
            binding: format!("{}|{}|{}", inbound.principal.id(), request.method(), name),
        }
    }
}

/// The tool-call outcome and the `error.type` of a failed request.
fn engine_error_kind(e: &EngineError) -> (ToolOutcome, &'static str) {
    match e {
        EngineError::Rpc(_) => (ToolOutcome::Error, "jsonrpc_error"),
        EngineError::Pipeline(p) => pipeline_error_kind(p),
        EngineError::Session(SessionError::NotFound) => (ToolOutcome::Error, "session_not_found"),
        EngineError::Session(_) => (ToolOutcome::Unavailable, "session_store_unavailable"),
    }
}

/// The tool-call outcome and the `error.type` of a pipeline refusal.
fn pipeline_error_kind(e: &PipelineError) -> (ToolOutcome, &'static str) {
    match e {
        PipelineError::Unauthenticated(_) => (ToolOutcome::Denied, "unauthenticated"),
        PipelineError::RateLimited(_) => (ToolOutcome::RateLimited, "rate_limited"),
        PipelineError::Forbidden(_) => (ToolOutcome::Denied, "forbidden"),
        PipelineError::Unavailable { .. } => (ToolOutcome::Unavailable, "unavailable"),
        PipelineError::Operation(_) => (ToolOutcome::ToolError, "tool_error"),
        _ => (ToolOutcome::Error, "error"),
    }
}

/// The backend component behind a failure, for `qudag_backend_errors_total`.
fn backend_of(e: &EngineError) -> Option<&'static str> {
    match e {
        EngineError::Pipeline(PipelineError::Unavailable { component, .. }) => Some(component),
        EngineError::Session(SessionError::Store(_)) => Some("session_store"),
        _ => None,
    }
}
