//! `/mcp`: MCP Streamable HTTP in both wire eras on one endpoint.
//!
//! Each POST is classified: a request carrying an `Mcp-Session-Id`, or an `initialize`
//! without modern `_meta`, is stateful (2025-03-26 … 2025-11-25, basic/transports); one
//! carrying `_meta` protocol metadata or a modern `MCP-Protocol-Version` is stateless
//! (2026-07-28 basic/transports/streamable-http). The engine answers; this module owns the
//! HTTP side: Origin checks, media types, body limits, status codes, the request-metadata
//! headers, sessions on the wire, and the choice between a JSON body and an SSE stream.
//!
//! A request's answer is sent as plain JSON when the handler finishes without emitting
//! anything first (the common case, and the cheapest); as soon as it emits a notification
//! or a request to the client, the response becomes an SSE stream carrying those messages
//! and then the final response.

pub mod headers;
pub mod streams;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, Request, Response};
use qudag_application::mcp::engine::EngineError;
use qudag_application::mcp::wire;
use qudag_application::mcp::{Era, Inbound, McpEngine};
use qudag_application::ports::{EventBus, EventId, EventStore, EventStoreError, StreamKey, Topic};
use qudag_application::usecases::{PipelineError, RequestContext, SessionError};
use qudag_domain::principal::Principal;
use qudag_domain::quota::{Decision, QuotaPolicy};
use qudag_domain::session::SessionId;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorCode, ErrorData, GetMeta, JsonRpcMessage, NotificationMetaObject,
    PromptListChangedNotification, RequestId, ResourceListChangedNotification, ResourceUpdatedNotification,
    ResourceUpdatedNotificationParam, ServerJsonRpcMessage, ServerNotification, SubscriptionFilter,
    SubscriptionsAcknowledgedNotification, SubscriptionsAcknowledgedNotificationParams, ToolListChangedNotification,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::auth::{PublicOrigin, request_context};

/// Application error codes, outside the JSON-RPC and MCP reserved ranges.
pub mod codes {
    /// The caller lacks the permission (HTTP 403).
    pub const FORBIDDEN: i32 = -31001;
    /// Over the rate limit (HTTP 429).
    pub const RATE_LIMITED: i32 = -31002;
    /// A backend is unavailable (HTTP 503).
    pub const UNAVAILABLE: i32 = -31003;
    /// Authentication failed (HTTP 401).
    pub const UNAUTHENTICATED: i32 = -31004;
}

/// Settings of the MCP endpoint.
#[derive(Clone, Debug)]
pub struct McpHttpConfig {
    /// Origins allowed besides loopback ones (`QUDAG_CORS_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// Whether the server is bound to a loopback address: then loopback origins are
    /// allowed and the `Host` header must name loopback (DNS-rebinding protection).
    pub loopback: bool,
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
            allowed_origins: Vec::new(),
            loopback: true,
            max_body_bytes: 4 << 20,
            keep_alive: Duration::from_secs(15),
            origin: PublicOrigin::default(),
            streams: streams::StreamLimits::default(),
        }
    }
}

/// The OAuth error members of a refusal, kept on the response until the challenge
/// header is written (where the request's external URL is known).
#[derive(Clone, Debug)]
struct OAuthChallenge(Value);

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

    fn draining(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A place for a long-lived stream of `principal`, or why not: the refusal, or `None`
    /// while the server is shutting down (see [`stream_refused`]).
    fn stream_slot(&self, principal: &Principal) -> Result<streams::StreamSlot, Option<streams::StreamRefusal>> {
        if self.draining() {
            return Err(None);
        }
        self.slots.acquire(&principal.id().to_string()).map_err(Some)
    }

    async fn dispatch(&self, req: &mut Request) -> Response {
        if let Some(refusal) = self.check_origin(req) {
            return refusal;
        }
        let mut response = self.route(req).await;
        if let Some(OAuthChallenge(oauth)) = response.extensions_mut().remove::<OAuthChallenge>()
            && let Some(value) = crate::auth::challenge(&oauth, &self.config.origin.metadata_url(req))
        {
            response.headers_mut().insert("www-authenticate", value);
        }
        response
    }

    async fn route(&self, req: &mut Request) -> Response {
        match *req.method() {
            Method::POST => self.post(req).await,
            Method::GET => self.get(req).await,
            Method::DELETE => self.delete(req).await,
            _ => Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header("allow", "GET, POST, DELETE")
                .body("method not allowed on the MCP endpoint"),
        }
    }

    /// DNS-rebinding protection (2025-11-25 basic/transports, "Security Warning"): an
    /// `Origin` that is present and not allowed gets 403, as does a non-loopback `Host`
    /// on a loopback-bound server.
    fn check_origin(&self, req: &Request) -> Option<Response> {
        let headers = req.headers();
        if let Some(origin) = headers::text(headers, "origin")
            && !crate::security::origin_allowed(&self.config.allowed_origins, self.config.loopback, origin)
        {
            return Some(rpc_error(
                StatusCode::FORBIDDEN,
                None,
                ErrorData::invalid_request(format!("origin {origin} is not allowed"), None),
            ));
        }
        if self.config.loopback
            && let Some(host) = headers::text(headers, "host")
            && !is_loopback_host(host)
        {
            return Some(rpc_error(
                StatusCode::FORBIDDEN,
                None,
                ErrorData::invalid_request(format!("host {host} is not served here"), None),
            ));
        }
        None
    }

    async fn post(&self, req: &mut Request) -> Response {
        let body = req.take_body();
        let headers = req.headers();
        if !headers::is_json(headers) {
            if headers::text(headers, "content-type")
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
                && let Ok(form) = body.into_bytes_limit(self.config.max_body_bytes).await
                && crate::auth::form_has_token(&form)
            {
                // RFC 6750 §2.2 form-encoded tokens are refused, and audited as such.
                let mut ctx = request_context(req, &self.config.origin);
                ctx.credential_problem =
                    Some(("token_in_body", "access tokens are accepted only in the Authorization header".into()));
                if let Err(e) = self.engine.pipeline().authenticate(&ctx).await {
                    return pipeline_error(e, None);
                }
            }
            return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
        }
        if !(headers::accepts(headers, "application/json") && headers::accepts(headers, "text/event-stream")) {
            return plain(StatusCode::NOT_ACCEPTABLE, "Accept must list application/json and text/event-stream");
        }
        let ctx = request_context(req, &self.config.origin);
        let principal = match self.engine.pipeline().authenticate(&ctx).await {
            Ok(p) => p,
            Err(e) => return pipeline_error(e, None),
        };
        let body = match body.into_bytes_limit(self.config.max_body_bytes).await {
            Ok(b) => b,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body exceeds {} bytes", self.config.max_body_bytes),
                );
            }
            Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")),
        };
        let value: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    None,
                    ErrorData::parse_error(format!("invalid JSON: {e}"), None),
                );
            }
        };
        if value.is_array() {
            return self.batch(ctx, principal, headers, value).await;
        }
        let id = request_id_of(&value);
        let session_header = headers::text(headers, headers::SESSION_ID);
        let meta_version =
            value.pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion").and_then(Value::as_str);
        let header_version = headers::text(headers, headers::PROTOCOL_VERSION);
        let stateless = session_header.is_none()
            && (meta_version.is_some()
                || header_version.is_some_and(|v| !wire::is_stateful_version(v) && v != "2024-11-05"));
        if stateless {
            self.stateless(ctx, principal, headers, value, id).await
        } else {
            self.stateful(ctx, principal, headers, value, id).await
        }
    }

    async fn stateful(
        &self,
        ctx: RequestContext,
        principal: Principal,
        headers: &poem::http::HeaderMap,
        value: Value,
        id: Option<RequestId>,
    ) -> Response {
        if let Some(v) = headers::text(headers, headers::PROTOCOL_VERSION)
            && !wire::is_stateful_version(v)
            && v != "2024-11-05"
        {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                ErrorData::invalid_request(format!("unsupported MCP-Protocol-Version {v}"), None),
            );
        }
        let message: ClientJsonRpcMessage = match serde_json::from_value(value) {
            Ok(m) => m,
            Err(e) => {
                return rpc_error(StatusCode::BAD_REQUEST, id, ErrorData::invalid_request(format!("{e}"), None));
            }
        };
        let message = match message {
            JsonRpcMessage::Request(r) if headers::text(headers, headers::SESSION_ID).is_none() => match r.request {
                ClientRequest::InitializeRequest(init) => {
                    return self.initialize(ctx, principal, r.id, init.params).await;
                }
                request => JsonRpcMessage::request(request, r.id),
            },
            other => other,
        };
        let session = match self.session(&ctx, &principal, headers, id, "initialize first").await {
            Ok(s) => s,
            Err(response) => return response,
        };
        let version = wire::version(session.protocol_version().as_str());
        let session = Arc::new(session);
        let inbound =
            Inbound { ctx, principal, era: Era::Stateful(version), session: Some(session.clone()), disconnect: None };
        match message {
            JsonRpcMessage::Request(r) => {
                if matches!(r.request, ClientRequest::InitializeRequest(_)) {
                    return rpc_error(
                        StatusCode::BAD_REQUEST,
                        Some(r.id),
                        ErrorData::invalid_request("this session is already initialized", None),
                    );
                }
                let cost = self.engine.cost_of(&r.request, false);
                let decision = match self.engine.pipeline().admit(&inbound.ctx, &inbound.principal, cost).await {
                    Ok(d) => d,
                    Err(e) => {
                        self.engine.record_refusal(&r.request, false, &e);
                        return self.refuse(e, Some(r.id));
                    }
                };
                let mut response = self.respond(inbound, r.id, r.request).await;
                add_rate_headers(&mut response, self.engine.pipeline().rate_policy(), decision.as_ref());
                response
            }
            other => match self.absorb(&inbound, &session, other).await {
                Ok(()) => accepted(),
                Err(e) => engine_error(e, None, false).1,
            },
        }
    }

    /// Take in a message that needs no answer: a notification, or the client's answer to
    /// a request of ours (routed to the call waiting for it).
    async fn absorb(
        &self,
        inbound: &Inbound,
        session: &qudag_domain::session::Session,
        message: ClientJsonRpcMessage,
    ) -> Result<(), EngineError> {
        match message {
            JsonRpcMessage::Notification(n) => self.engine.notify(inbound, n.notification).await,
            JsonRpcMessage::Response(r) => {
                if !self.engine.deliver(session, &r.id, Ok(r.result)).await {
                    tracing::debug!(id = %r.id, "Client answered a request nobody waits for");
                }
                Ok(())
            }
            JsonRpcMessage::Error(e) => {
                if let Some(id) = &e.id {
                    self.engine.deliver(session, id, Err(e.error)).await;
                }
                Ok(())
            }
            JsonRpcMessage::Request(_) => Ok(()),
        }
    }

    /// The response for a request the pipeline refused, with rate-limit headers on a 429.
    fn refuse(&self, error: PipelineError, id: Option<RequestId>) -> Response {
        let decision = match &error {
            PipelineError::RateLimited(d) => Some(*d),
            _ => None,
        };
        let mut response = pipeline_error(error, id);
        add_rate_headers(&mut response, self.engine.pipeline().rate_policy(), decision.as_ref());
        response
    }

    async fn initialize(
        &self,
        ctx: RequestContext,
        principal: Principal,
        id: RequestId,
        params: rmcp::model::InitializeRequestParams,
    ) -> Response {
        if self.draining() {
            return shutting_down(Some(id));
        }
        if let Err(e) = self.engine.pipeline().admit(&ctx, &principal, qudag_domain::quota::Cost::ONE).await {
            return self.refuse(e, Some(id));
        }
        match self.engine.initialize(&ctx, &principal, &params).await {
            Ok((session, result)) => {
                let message = ServerJsonRpcMessage::response(rmcp::model::ServerResult::InitializeResult(result), id);
                let mut response = json_response(StatusCode::OK, &message);
                if let Ok(value) = HeaderValue::from_str(session.id().as_str()) {
                    response.headers_mut().insert(headers::SESSION_ID, value);
                }
                response
            }
            Err(e) => engine_error(e, Some(id), false).1,
        }
    }

    /// The caller's session named by `Mcp-Session-Id`: 400 (answering `id`, saying `why`)
    /// without the header, 404 for an unknown, expired or foreign one.
    async fn session(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        headers: &poem::http::HeaderMap,
        id: Option<RequestId>,
        why: &str,
    ) -> Result<qudag_domain::session::Session, Response> {
        let Some(raw) = headers::text(headers, headers::SESSION_ID) else {
            return Err(rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                ErrorData::invalid_request(format!("Mcp-Session-Id header required: {why}"), None),
            ));
        };
        self.resume(ctx, principal, raw).await
    }

    async fn resume(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        raw: &str,
    ) -> Result<qudag_domain::session::Session, Response> {
        let id = SessionId::parse(raw).map_err(|_| session_not_found())?;
        match self.engine.sessions().resume(ctx, &id, principal.id()).await {
            Ok(s) => Ok(s),
            Err(SessionError::NotFound) => Err(session_not_found()),
            Err(e) => Err(engine_error(EngineError::Session(e), None, false).1),
        }
    }

    async fn stateless(
        &self,
        ctx: RequestContext,
        principal: Principal,
        headers: &poem::http::HeaderMap,
        value: Value,
        id: Option<RequestId>,
    ) -> Response {
        let bad = |code: ErrorData| rpc_error(StatusCode::BAD_REQUEST, id.clone(), code);
        let Some(method) = value.get("method").and_then(Value::as_str).map(str::to_owned) else {
            return bad(ErrorData::invalid_request("a stateless POST carries one request or notification", None));
        };
        // 2026-07-28 basic/index, "Request Metadata": the two required keys.
        let meta = value.pointer("/params/_meta").and_then(Value::as_object);
        let Some(meta) = meta else {
            return bad(ErrorData::invalid_params("params._meta is required", None));
        };
        let Some(version) = meta.get("io.modelcontextprotocol/protocolVersion").and_then(Value::as_str) else {
            return bad(ErrorData::invalid_params("_meta io.modelcontextprotocol/protocolVersion is required", None));
        };
        let version = version.to_owned();
        let version = version.as_str();
        if !meta.get("io.modelcontextprotocol/clientCapabilities").is_some_and(Value::is_object) {
            return bad(ErrorData::invalid_params(
                "_meta io.modelcontextprotocol/clientCapabilities is required",
                None,
            ));
        }
        // basic/transports/streamable-http, "Request Metadata Headers".
        if let Err(e) =
            header_matches(headers, headers::PROTOCOL_VERSION, "MCP-Protocol-Version", version, "_meta protocolVersion")
        {
            return bad(e);
        }
        if !wire::is_stateless_version(version) {
            return bad(wire::unsupported_version(version));
        }
        if let Err(e) = header_matches(headers, headers::METHOD, "Mcp-Method", &method, "body method") {
            return bad(e);
        }
        let name_field = match method.as_str() {
            "tools/call" | "prompts/get" => Some("name"),
            "resources/read" => Some("uri"),
            _ => None,
        };
        if let Some(field) = name_field {
            let body_name = value.pointer(&format!("/params/{field}")).and_then(Value::as_str).unwrap_or_default();
            match headers::text(headers, headers::NAME).map(headers::decode_value) {
                Some(Some(h)) if h == body_name => {}
                Some(Some(h)) => {
                    return bad(wire::header_mismatch(format!(
                        "Mcp-Name header {h} does not match body {field} {body_name}"
                    )));
                }
                Some(None) => return bad(wire::header_mismatch("Mcp-Name header is malformed")),
                None => return bad(wire::header_mismatch("Mcp-Name header is required")),
            }
        }
        if method == "tools/call"
            && let Some(refusal) = self.check_param_headers(headers, &value)
        {
            return bad(refusal);
        }
        let Some(request_id) = id.clone() else {
            // No client-to-server notification is defined over HTTP in 2026-07-28; accept and
            // ignore what arrives (basic/transports: 202 for an accepted notification).
            return accepted();
        };
        if method == "subscriptions/listen" {
            let filter = value.pointer("/params/notifications").cloned().unwrap_or(Value::Null);
            return match serde_json::from_value::<SubscriptionFilter>(filter) {
                Ok(filter) => self.listen(&principal, request_id, filter).await,
                Err(e) => bad(ErrorData::invalid_params(format!("params.notifications: {e}"), None)),
            };
        }
        if !wire::is_known_method(&method) || wire::REMOVED_IN_STATELESS.contains(&method.as_str()) {
            return rpc_error(StatusCode::NOT_FOUND, id, wire::method_not_found(&method));
        }
        let message: ClientJsonRpcMessage = match serde_json::from_value(value) {
            Ok(m) => m,
            Err(e) => return bad(ErrorData::invalid_params(format!("{e}"), None)),
        };
        let JsonRpcMessage::Request(r) = message else {
            return bad(ErrorData::invalid_request("expected a request", None));
        };
        let inbound =
            Inbound { ctx, principal, era: Era::Stateless(wire::version(version)), session: None, disconnect: None };
        let cost = self.engine.cost_of(&r.request, true);
        let decision = match self.engine.pipeline().admit(&inbound.ctx, &inbound.principal, cost).await {
            Ok(d) => d,
            Err(e) => {
                self.engine.record_refusal(&r.request, true, &e);
                return self.refuse(e, Some(request_id));
            }
        };
        let mut response = self.respond(inbound, r.id, r.request).await;
        add_rate_headers(&mut response, self.engine.pipeline().rate_policy(), decision.as_ref());
        response
    }

    /// An SSE response of `frames` that ends, telling the client when to reconnect, as soon
    /// as the server starts shutting down, so draining never waits on open streams.
    fn sse(&self, frames: futures::stream::BoxStream<'static, Bytes>) -> Response {
        self.sse_holding(frames, None)
    }

    /// As [`Self::sse`], holding `slot` for as long as the stream is open.
    fn sse_holding(
        &self,
        frames: futures::stream::BoxStream<'static, Bytes>,
        slot: Option<streams::StreamSlot>,
    ) -> Response {
        let frames = frames
            .map(move |frame| {
                let _held = &slot;
                frame
            })
            .boxed();
        let mut shutdown = self.shutdown.clone();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stopped.clone();
        let until = async move {
            let _ = shutdown.wait_for(|down| *down).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        };
        let farewell = futures::stream::once(async move {
            stopped.load(std::sync::atomic::Ordering::SeqCst).then(|| Bytes::from_static(b"retry: 1000\n\n"))
        })
        .filter_map(futures::future::ready);
        // The open-streams gauge goes down when the body is dropped, however the stream ends.
        let open = StreamGauge::open(self.engine.pipeline().metrics().clone());
        let frames = frames.take_until(until).chain(farewell).map(move |frame| {
            let _ = &open;
            frame
        });
        sse_body(frames.boxed(), self.config.keep_alive)
    }

    /// `subscriptions/listen` (2026-07-28 basic/patterns/subscriptions): acknowledge the
    /// subset of `filter` the server honours, then stream the matching change
    /// notifications, each tagged with the subscription id, until the client closes.
    async fn listen(&self, principal: &Principal, id: RequestId, filter: SubscriptionFilter) -> Response {
        let slot = match self.stream_slot(principal) {
            Ok(slot) => slot,
            Err(refusal) => return stream_refused(refusal, Some(id)),
        };
        let accepted = filter.supported_by(&self.engine.capabilities(true));
        // Subscribe before acknowledging, so no change after the ack is missed.
        let changes = match self.events.subscribe(&Topic::new(CHANGES_TOPIC)).await {
            Ok(s) => s,
            Err(e) => return bus_unavailable(Some(id), &e),
        };
        let mut meta = NotificationMetaObject::new();
        meta.set_subscription_id(id.clone());
        let ack =
            ServerNotification::SubscriptionsAcknowledgedNotification(SubscriptionsAcknowledgedNotification::new(
                SubscriptionsAcknowledgedNotificationParams::new(accepted.clone()).with_meta(meta),
            ));
        let notifications = changes.filter_map(move |m| {
            let accepted = accepted.clone();
            let id = id.clone();
            async move {
                let mut n = change_notification(&m.payload, |kind, uri| match kind {
                    "tools" => accepted.tools_list_changed == Some(true),
                    "prompts" => accepted.prompts_list_changed == Some(true),
                    "resources" => accepted.resources_list_changed == Some(true),
                    "resource" => accepted
                        .resource_subscriptions
                        .as_ref()
                        .is_some_and(|uris| uri.is_some_and(|u| uris.iter().any(|s| s == u))),
                    _ => false,
                })?;
                n.get_meta_mut().set_subscription_id(id);
                Some(ServerJsonRpcMessage::notification(n))
            }
        });
        let stream = futures::stream::iter([ServerJsonRpcMessage::notification(ack)]).chain(notifications);
        self.sse_holding(messages_to_frames(stream.boxed()), Some(slot))
    }

    /// `Mcp-Param-*` headers against the tool's `x-mcp-header` annotations.
    fn check_param_headers(&self, headers: &poem::http::HeaderMap, value: &Value) -> Option<ErrorData> {
        let name = value.pointer("/params/name").and_then(Value::as_str)?;
        let tool = self.engine.catalog().tool_definition(name, true)?;
        let properties = tool.input_schema.get("properties").and_then(Value::as_object)?;
        for (property, schema) in properties {
            let Some(header) = schema.get("x-mcp-header").and_then(Value::as_str) else { continue };
            let argument = value.pointer(&format!("/params/arguments/{property}")).filter(|v| !v.is_null());
            let sent = headers::text(headers, &format!("{}{}", headers::PARAM_PREFIX, header.to_ascii_lowercase()));
            match (argument, sent) {
                (None, _) => {}
                (Some(_), None) => {
                    return Some(wire::header_mismatch(format!("Mcp-Param-{header} header is required")));
                }
                (Some(arg), Some(raw)) => {
                    let Some(decoded) = headers::decode_value(raw) else {
                        return Some(wire::header_mismatch(format!("Mcp-Param-{header} header is malformed")));
                    };
                    let matches = match arg {
                        Value::String(s) => *s == decoded,
                        Value::Bool(b) => decoded == b.to_string(),
                        Value::Number(n) => decoded.parse::<f64>().ok() == n.as_f64(),
                        _ => false,
                    };
                    if !matches {
                        return Some(wire::header_mismatch(format!(
                            "Mcp-Param-{header} header does not match argument {property}"
                        )));
                    }
                }
            }
        }
        None
    }

    /// 2025-03-26 batches (basic, "Batching"): only in sessions that negotiated it.
    async fn batch(
        &self,
        ctx: RequestContext,
        principal: Principal,
        headers: &poem::http::HeaderMap,
        value: Value,
    ) -> Response {
        let session = match self
            .session(&ctx, &principal, headers, None, "batches are accepted only in 2025-03-26 sessions")
            .await
        {
            Ok(s) => s,
            Err(response) => return response,
        };
        if session.protocol_version().as_str() != "2025-03-26" {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                ErrorData::invalid_request("JSON-RPC batches were removed after 2025-03-26", None),
            );
        }
        let items = match value {
            Value::Array(items) if !items.is_empty() => items,
            _ => return rpc_error(StatusCode::BAD_REQUEST, None, ErrorData::invalid_request("empty batch", None)),
        };
        let inbound = Inbound {
            ctx,
            principal,
            era: Era::Stateful(wire::version("2025-03-26")),
            session: Some(Arc::new(session.clone())),
            disconnect: None,
        };
        let mut replies = Vec::new();
        for item in items {
            let id = request_id_of(&item);
            let message: ClientJsonRpcMessage = match serde_json::from_value(item) {
                Ok(m) => m,
                Err(e) => {
                    replies.push(ServerJsonRpcMessage::error(ErrorData::invalid_request(format!("{e}"), None), id));
                    continue;
                }
            };
            match message {
                JsonRpcMessage::Request(r) => {
                    if matches!(r.request, ClientRequest::InitializeRequest(_)) {
                        replies.push(ServerJsonRpcMessage::error(
                            ErrorData::invalid_request("initialize must not be part of a batch", None),
                            Some(r.id),
                        ));
                        continue;
                    }
                    let cost = self.engine.cost_of(&r.request, false);
                    if let Err(e) = self.engine.pipeline().admit(&inbound.ctx, &inbound.principal, cost).await {
                        self.engine.record_refusal(&r.request, false, &e);
                        return self.refuse(e, Some(r.id));
                    }
                    let outcome = self.engine.handle_with_id(&inbound, Some(&r.id), r.request, None).await;
                    replies.extend(final_message(r.id, Ok(outcome), false).map(|(m, _)| m));
                }
                other => {
                    if let Err(e) = self.absorb(&inbound, &session, other).await {
                        tracing::warn!(error = %e, "Batched message failed");
                    }
                }
            }
        }
        if replies.is_empty() {
            return accepted();
        }
        let body = format!("[{}]", replies.iter().map(wire::encode).collect::<Vec<_>>().join(","));
        Response::builder().status(StatusCode::OK).content_type("application/json").body(body)
    }

    /// Run a request and answer with JSON, or with SSE once it emits anything before its
    /// final response.
    async fn respond(&self, mut inbound: Inbound, id: RequestId, request: ClientRequest) -> Response {
        let stateless = inbound.era.is_stateless();
        let session = inbound.session.clone();
        // A stateful handler may ask for its response's connection to be closed mid-call.
        let mut disconnect = session.as_ref().map(|_| {
            let (tx, rx) = tokio::sync::watch::channel(false);
            inbound.disconnect = Some(Arc::new(tx));
            rx
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let engine = self.engine.clone();
        let rpc_id = id.clone();
        // The handler runs as its own task (it may outlive this response); it stays a child
        // of this request's span.
        let mut task = tokio::spawn(
            async move { engine.handle_with_id(&inbound, Some(&rpc_id), request, Some(tx)).await }
                .instrument(tracing::Span::current()),
        );
        if let Some(session) = &session {
            self.engine.track(session, &id, task.abort_handle());
        }
        // Closing a stateless response stream cancels its request (2026-07-28
        // streamable-http, "Cancellation"); in the stateful era disconnection is not
        // cancellation, so the work finishes.
        let guard = AbortGuard { handle: task.abort_handle(), armed: stateless };
        let untrack = Untrack { engine: self.engine.clone(), session, id: id.clone() };
        let (first, close_early) = tokio::select! {
            biased;
            joined = &mut task => {
                let mut queued = Vec::new();
                while let Ok(m) = rx.try_recv() {
                    queued.push(m);
                }
                drop(untrack);
                let Some((message, status)) = final_message(id, joined, stateless) else {
                    return Response::builder().status(StatusCode::NO_CONTENT).finish();
                };
                if queued.is_empty() {
                    drop(guard);
                    return json_response(status, &message);
                }
                queued.push(message);
                return self.sse(messages_to_frames(futures::stream::iter(queued).boxed()));
            }
            first = rx.recv() => match first {
                Some(message) => (Some(message), false),
                // The handler finished without sending anything: its channel closed just
                // before its task reported the result. Answer as JSON, as above.
                None => {
                    let joined = (&mut task).await;
                    drop(untrack);
                    let Some((message, status)) = final_message(id, joined, stateless) else {
                        return Response::builder().status(StatusCode::NO_CONTENT).finish();
                    };
                    drop(guard);
                    return json_response(status, &message);
                }
            },
            true = closed(disconnect.as_mut()) => (None, true),
        };
        if let Some(session) = untrack.session.clone()
            && let Ok(stream) = self.store.open(session.id().as_str()).await
        {
            // Stateful: every message goes through the event store first, so a client that
            // loses the connection resumes with Last-Event-ID (2025-11-25 basic/transports,
            // "Resumability and Redelivery").
            let key = StreamKey { session: session.id().as_str().to_owned(), stream };
            let store = self.store.clone();
            let pump_key = key.clone();
            // While the store is unreachable the handler goes on (its messages queue here)
            // and each event is retried in order, so a store outage delays the stream
            // instead of losing its events or its result.
            tokio::spawn(async move {
                let mut rx = rx;
                let mut next = match first {
                    Some(message) => Some(message),
                    None => rx.recv().await,
                };
                while let Some(message) = next {
                    let payload = wire::encode(&message);
                    retry_store("store an SSE event", || store.append(&pump_key, payload.clone())).await;
                    next = rx.recv().await;
                }
                let joined = task.await;
                drop(untrack);
                drop(guard);
                if let Some((last, _)) = final_message(id, joined, false) {
                    let payload = wire::encode(&last);
                    retry_store("store the final SSE event", || store.append(&pump_key, payload.clone())).await;
                }
                retry_store("close an SSE stream", || store.close(&pump_key)).await;
            });
            let priming = close_early || session.protocol_version().as_str() >= "2025-11-25";
            let frames = self.tail(key, 0, priming);
            let frames = if close_early {
                // The priming event carries the id and retry hint to resume from.
                frames.take(1).boxed()
            } else {
                frames.take_until(async move { closed(disconnect.as_mut()).await }).boxed()
            };
            return self.sse(frames);
        }
        let head = futures::stream::iter(first);
        let tail = futures::stream::unfold(Some((rx, task, guard, untrack, id)), move |state| async move {
            let (mut rx, task, guard, untrack, id) = state?;
            match rx.recv().await {
                Some(m) => Some((m, Some((rx, task, guard, untrack, id)))),
                None => {
                    let joined = task.await;
                    drop(untrack);
                    drop(guard);
                    final_message(id, joined, stateless).map(|(m, _)| (m, None))
                }
            }
        });
        self.sse(messages_to_frames(head.chain(tail).boxed()))
    }

    /// The frames of a stored stream after `after`, following it until it closes; with
    /// `priming`, first an event carrying only an id and a retry hint (2025-11-25
    /// basic/transports: the server SHOULD prime the client to reconnect).
    fn tail(&self, key: StreamKey, after: u64, priming: bool) -> futures::stream::BoxStream<'static, Bytes> {
        let store = self.store.clone();
        let wait = self.config.keep_alive;
        let prime = priming.then(|| Bytes::from(format!("id: {}-{after}\nretry: 1000\ndata: \n\n", key.stream)));
        let events = futures::stream::unfold(Some((store, key, after)), move |state| async move {
            let (store, key, after) = state?;
            match store.read(&key, after, wait).await {
                Ok(batch) => {
                    let last = batch.events.last().map_or(after, |(seq, _)| *seq);
                    let frames: Vec<Bytes> = batch
                        .events
                        .iter()
                        .map(|(seq, payload)| {
                            Bytes::from(format!(
                                "id: {}\nevent: message\ndata: {payload}\n\n",
                                EventId { stream: key.stream, seq: *seq }
                            ))
                        })
                        .collect();
                    let next = if batch.closed && last == after { None } else { Some((store, key, last)) };
                    if frames.is_empty() && next.is_none() {
                        return None;
                    }
                    Some((futures::stream::iter(frames), next))
                }
                // The store is unreachable: keep the client's connection (keep-alive
                // comments go on) and read again once it answers; the events written
                // meanwhile are delivered then, in order.
                Err(e @ EventStoreError::Unavailable { .. }) => {
                    tracing::debug!(error = %e, "SSE stream waits for the event store");
                    tokio::time::sleep(STORE_RETRY_MAX / 4).await;
                    Some((futures::stream::iter(Vec::new()), Some((store, key, after))))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "SSE stream ended");
                    None
                }
            }
        })
        .flatten();
        futures::stream::iter(prime).chain(events).boxed()
    }

    async fn get(&self, req: &Request) -> Response {
        let headers = req.headers();
        let Some(raw_session) = headers::text(headers, headers::SESSION_ID).map(str::to_owned) else {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header("allow", "POST")
                .body("GET needs an Mcp-Session-Id (stateful sessions only)");
        };
        if !headers::accepts(headers, "text/event-stream") {
            return plain(StatusCode::NOT_ACCEPTABLE, "Accept must list text/event-stream");
        }
        let ctx = request_context(req, &self.config.origin);
        let principal = match self.engine.pipeline().authenticate(&ctx).await {
            Ok(p) => p,
            Err(e) => return pipeline_error(e, None),
        };
        let session = match self.resume(&ctx, &principal, &raw_session).await {
            Ok(s) => s,
            Err(response) => return response,
        };
        let slot = match self.stream_slot(&principal) {
            Ok(slot) => slot,
            Err(refusal) => return stream_refused(refusal, None),
        };
        if let Some(last) = headers::text(headers, headers::LAST_EVENT_ID).and_then(EventId::parse)
            && last.stream != 0
        {
            let key = StreamKey { session: session.id().as_str().to_owned(), stream: last.stream };
            if self.store.read(&key, last.seq, Duration::ZERO).await.is_ok() {
                return self.sse_holding(self.tail(key, last.seq, false), Some(slot));
            }
        }
        // The standalone stream carries change notifications: list changes, and updates of
        // the resources this session subscribed to (as of opening the stream).
        let subscribed = session.resource_subscriptions().clone();
        let changes = match self.events.subscribe(&Topic::new(CHANGES_TOPIC)).await {
            Ok(s) => s,
            Err(e) => return bus_unavailable(None, &e),
        };
        // A DELETE of this session (on any node) ends the stream: nothing can arrive on it
        // any more.
        let mine = session.id().as_str().to_owned();
        let notifications = changes.take_while(move |m| {
            let ended = m.payload["kind"] == "session_closed" && m.payload["session"] == mine.as_str();
            futures::future::ready(!ended)
        });
        let notifications = notifications.filter_map(move |m| {
            let subscribed = subscribed.clone();
            async move {
                let n = change_notification(&m.payload, |kind, uri| match kind {
                    "resource" => uri.is_some_and(|u| subscribed.contains(u)),
                    _ => true,
                })?;
                Some(ServerJsonRpcMessage::notification(n))
            }
        });
        self.sse_holding(messages_to_frames(notifications.boxed()), Some(slot))
    }

    async fn delete(&self, req: &Request) -> Response {
        let headers = req.headers();
        let Some(raw_session) = headers::text(headers, headers::SESSION_ID) else {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header("allow", "POST")
                .body("DELETE needs an Mcp-Session-Id (stateful sessions only)");
        };
        let ctx = request_context(req, &self.config.origin);
        let principal = match self.engine.pipeline().authenticate(&ctx).await {
            Ok(p) => p,
            Err(e) => return pipeline_error(e, None),
        };
        let Ok(id) = SessionId::parse(raw_session) else {
            return session_not_found();
        };
        match self.engine.sessions().close(&ctx, &id, principal.id()).await {
            Ok(()) => {
                if let Err(e) = self.store.forget_session(id.as_str()).await {
                    tracing::warn!(error = %e, "Cannot drop the streams of a closed session");
                }
                let ended = serde_json::json!({ "kind": "session_closed", "session": id.as_str() });
                if let Err(e) = self.events.publish(&Topic::new(CHANGES_TOPIC), ended).await {
                    tracing::warn!(error = %e, "Cannot announce the end of a session to its streams");
                }
                Response::builder().status(StatusCode::NO_CONTENT).finish()
            }
            Err(SessionError::NotFound) => session_not_found(),
            Err(e) => engine_error(EngineError::Session(e), None, false).1,
        }
    }
}

/// Completes (with `true`) once a handler asks for its connection to be closed; never
/// when there is no such signal or the handler finished without asking.
async fn closed(signal: Option<&mut tokio::sync::watch::Receiver<bool>>) -> bool {
    if let Some(rx) = signal
        && rx.wait_for(|close| *close).await.is_ok()
    {
        return true;
    }
    std::future::pending().await
}

/// Aborts a request's task when the response is dropped, if armed.
/// One open SSE stream in `qudag_mcp_sse_streams`, for as long as it lives.
struct StreamGauge(Arc<dyn qudag_application::ports::Metrics>);

impl StreamGauge {
    fn open(metrics: Arc<dyn qudag_application::ports::Metrics>) -> Self {
        metrics.sse_streams_add(1);
        Self(metrics)
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.sse_streams_add(-1);
    }
}

struct AbortGuard {
    handle: tokio::task::AbortHandle,
    armed: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if self.armed && !self.handle.is_finished() {
            self.handle.abort();
        }
    }
}

/// Forgets a stateful request in the engine's cancellation registry when done.
struct Untrack {
    engine: Arc<McpEngine>,
    session: Option<Arc<qudag_domain::session::Session>>,
    id: RequestId,
}

impl Drop for Untrack {
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            self.engine.untrack(session, &self.id);
        }
    }
}

/// The event-bus topic of catalog and resource changes (see
/// `qudag_application::mcp::context::CHANGES_TOPIC`).
const CHANGES_TOPIC: &str = qudag_application::mcp::context::CHANGES_TOPIC;

/// The notification for a change published on the bus, if `wanted(kind, uri)`.
fn change_notification(payload: &Value, wanted: impl Fn(&str, Option<&str>) -> bool) -> Option<ServerNotification> {
    let kind = payload.get("kind")?.as_str()?;
    let uri = payload.get("uri").and_then(Value::as_str);
    if !wanted(kind, uri) {
        return None;
    }
    Some(match kind {
        "tools" => ServerNotification::ToolListChangedNotification(ToolListChangedNotification::default()),
        "prompts" => ServerNotification::PromptListChangedNotification(PromptListChangedNotification::default()),
        "resources" => ServerNotification::ResourceListChangedNotification(ResourceListChangedNotification::default()),
        "resource" => ServerNotification::ResourceUpdatedNotification(ResourceUpdatedNotification::new(
            ResourceUpdatedNotificationParam::new(uri?),
        )),
        _ => return None,
    })
}

/// 404 for an unknown, expired or foreign session (basic/transports, "Session Management").
fn session_not_found() -> Response {
    rpc_error(StatusCode::NOT_FOUND, None, ErrorData::new(ErrorCode(-32001), "session not found", None))
}

/// 503 when the event bus cannot be subscribed.
/// The answer to a stream that cannot be opened: 429 when the caller holds its share, 503
/// when the node is full or (`None`) shutting down; each with `Retry-After`.
fn stream_refused(refusal: Option<streams::StreamRefusal>, id: Option<RequestId>) -> Response {
    let (status, code, message) = match refusal {
        None => return shutting_down(id),
        Some(streams::StreamRefusal::PrincipalFull(n)) => (
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("at most {n} open streams per caller; close one first"),
        ),
        Some(streams::StreamRefusal::NodeFull(n)) => {
            (StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, format!("this node serves at most {n} open streams"))
        }
    };
    let mut response = rpc_error(status, id, ErrorData::new(ErrorCode(code), message, None));
    response.headers_mut().insert("retry-after", HeaderValue::from_static("5"));
    response
}

/// 503 for what a draining server no longer starts (sessions, streams), with a hint to retry
/// (on another node behind a load balancer).
fn shutting_down(id: Option<RequestId>) -> Response {
    let mut response = rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        ErrorData::new(ErrorCode(codes::UNAVAILABLE), "the server is shutting down; retry", None),
    );
    response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    response
}

fn bus_unavailable(id: Option<RequestId>, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "Cannot subscribe to the event bus");
    rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        ErrorData::new(ErrorCode(codes::UNAVAILABLE), "event bus unavailable", None),
    )
}

/// The request-metadata header `name` (shown as `label`) must be present and equal what
/// the body says (`body`, shown as `what`): 2026-07-28 basic/transports, -32020 otherwise.
fn header_matches(
    headers: &poem::http::HeaderMap,
    name: &str,
    label: &str,
    body: &str,
    what: &str,
) -> Result<(), ErrorData> {
    match headers::text(headers, name) {
        Some(h) if h == body => Ok(()),
        Some(h) => Err(wire::header_mismatch(format!("{label} header {h} does not match {what} {body}"))),
        None => Err(wire::header_mismatch(format!("{label} header is required"))),
    }
}

/// `RateLimit-Policy` and `RateLimit` (IETF httpapi ratelimit-headers draft): the quota, its
/// window, what is left and when it is full again.
fn add_rate_headers(response: &mut Response, policy: Option<&QuotaPolicy>, decision: Option<&Decision>) {
    let (Some(policy), Some(decision)) = (policy, decision) else { return };
    let window = policy.tolerance_micros().div_ceil(1_000_000).max(1);
    let reset = decision.reset_after.as_secs_f64().ceil() as u64;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("\"default\";q={};w={window}", policy.burst())) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"default\";r={};t={reset}", decision.remaining)) {
        headers.insert("ratelimit", v);
    }
}

fn request_id_of(value: &Value) -> Option<RequestId> {
    value.get("id").and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok())
}

pub(crate) fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    is_loopback_host(rest)
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How a request's task ended.
type Joined = Result<Result<rmcp::model::ServerResult, EngineError>, tokio::task::JoinError>;

/// The final message for a request and the HTTP status it warrants when sent alone;
/// `None` when the request was cancelled, which gets no response (basic/utilities/
/// cancellation: the receiver SHOULD NOT send one).
fn final_message(id: RequestId, joined: Joined, stateless: bool) -> Option<(ServerJsonRpcMessage, StatusCode)> {
    if let Err(e) = &joined
        && e.is_cancelled()
    {
        return None;
    }
    Some(match joined.map_err(|e| e.to_string()) {
        Ok(Ok(result)) => (ServerJsonRpcMessage::response(wire::shape_result(result, stateless), id), StatusCode::OK),
        Ok(Err(e)) => {
            let (message, response_status) = engine_error_message(e, Some(id), stateless);
            (message, response_status)
        }
        Err(e) => {
            tracing::error!(error = %e, "Request handler failed");
            (ServerJsonRpcMessage::error(ErrorData::internal_error("internal error", None), Some(id)), StatusCode::OK)
        }
    })
}

fn engine_error_message(e: EngineError, id: Option<RequestId>, stateless: bool) -> (ServerJsonRpcMessage, StatusCode) {
    match e {
        EngineError::Rpc(error) => {
            let status = if stateless { stateless_status(&error) } else { StatusCode::OK };
            (ServerJsonRpcMessage::error(error, id), status)
        }
        EngineError::Pipeline(p) => {
            let (status, error) = pipeline_error_data(&p);
            (ServerJsonRpcMessage::error(error, id), status)
        }
        EngineError::Session(SessionError::NotFound) => (
            ServerJsonRpcMessage::error(ErrorData::new(ErrorCode(-32001), "session not found", None), id),
            StatusCode::NOT_FOUND,
        ),
        EngineError::Session(other) => {
            tracing::error!(error = %other, "Session store failed");
            (
                ServerJsonRpcMessage::error(
                    ErrorData::new(ErrorCode(codes::UNAVAILABLE), "session store unavailable", None),
                    id,
                ),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    }
}

fn engine_error(e: EngineError, id: Option<RequestId>, stateless: bool) -> (StatusCode, Response) {
    let (message, status) = engine_error_message(e, id, stateless);
    (status, json_response(status, &message))
}

/// HTTP status of a JSON-RPC error on the stateless wire (2026-07-28 streamable-http).
fn stateless_status(error: &ErrorData) -> StatusCode {
    match error.code {
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        ErrorCode::HEADER_MISMATCH
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

fn pipeline_error_data(e: &PipelineError) -> (StatusCode, ErrorData) {
    match e {
        PipelineError::Unauthenticated(t) => (
            crate::auth::unauthenticated_status(t),
            ErrorData::new(
                ErrorCode(codes::UNAUTHENTICATED),
                match t.description() {
                    Some(d) => format!("unauthenticated ({}): {d}", t.reason()),
                    None => format!("unauthenticated: {}", t.reason()),
                },
                crate::auth::oauth_error_data(e).map(|oauth| serde_json::json!({ "oauth": oauth })),
            ),
        ),
        PipelineError::RateLimited(d) => (
            StatusCode::TOO_MANY_REQUESTS,
            ErrorData::new(
                ErrorCode(codes::RATE_LIMITED),
                "rate limit exceeded",
                Some(serde_json::json!({ "retryAfterSeconds": d.retry_after.map(|r| r.as_secs_f64().ceil() as u64) })),
            ),
        ),
        PipelineError::Forbidden(d) => (
            StatusCode::FORBIDDEN,
            ErrorData::new(
                ErrorCode(codes::FORBIDDEN),
                format!("forbidden: {}", d.rule),
                Some(serde_json::json!({
                    "requiredPermission": d.permission,
                    "requiredScope": d.required_scope,
                    "deniedBy": d.denied_by,
                    "oauth": crate::auth::oauth_error_data(e),
                })),
            ),
        ),
        PipelineError::Unavailable { component, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorData::new(ErrorCode(codes::UNAVAILABLE), format!("{component} unavailable"), None),
        ),
        PipelineError::UnknownOperation(name) => {
            (StatusCode::OK, ErrorData::invalid_params(format!("unknown operation {name}"), None))
        }
        PipelineError::Operation(op) => (StatusCode::OK, ErrorData::internal_error(op.to_string(), None)),
        other => (StatusCode::INTERNAL_SERVER_ERROR, ErrorData::internal_error(other.to_string(), None)),
    }
}

fn pipeline_error(e: PipelineError, id: Option<RequestId>) -> Response {
    let (status, error) = pipeline_error_data(&e);
    let mut response = json_response(status, &ServerJsonRpcMessage::error(error, id));
    if let PipelineError::RateLimited(d) = &e {
        let headers = response.headers_mut();
        if let Some(retry) = d.retry_after
            && let Ok(v) = HeaderValue::from_str(&(retry.as_secs_f64().ceil() as u64).max(1).to_string())
        {
            headers.insert("retry-after", v);
        }
    }
    response
}

fn json_response(status: StatusCode, message: &ServerJsonRpcMessage) -> Response {
    let mut response = Response::builder().status(status).content_type("application/json").body(wire::encode(message));
    if matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        && let JsonRpcMessage::Error(e) = message
        && let Some(oauth) = e.error.data.as_ref().and_then(|d| d.get("oauth")).filter(|o| o.is_object())
    {
        response.extensions_mut().insert(OAuthChallenge(oauth.clone()));
    }
    response
}

fn rpc_error(status: StatusCode, id: Option<RequestId>, error: ErrorData) -> Response {
    json_response(status, &ServerJsonRpcMessage::error(error, id))
}

fn plain(status: StatusCode, message: &str) -> Response {
    Response::builder().status(status).content_type("text/plain; charset=utf-8").body(message.to_owned())
}

fn accepted() -> Response {
    Response::builder().status(StatusCode::ACCEPTED).finish()
}

/// SSE frames of messages without event ids: one `data:` line of compact JSON each.
fn messages_to_frames(
    messages: futures::stream::BoxStream<'static, ServerJsonRpcMessage>,
) -> futures::stream::BoxStream<'static, Bytes> {
    messages.map(|m| Bytes::from(format!("event: message\ndata: {}\n\n", wire::encode(&m)))).boxed()
}

/// The longest pause between two attempts to reach an unreachable event store.
const STORE_RETRY_MAX: Duration = Duration::from_secs(2);
/// How long a stream's writer keeps retrying before it gives an event up as lost.
const STORE_RETRY_FOR: Duration = Duration::from_secs(300);

/// Run `op` until it succeeds, backing off from 50 ms to [`STORE_RETRY_MAX`] while the
/// store is unavailable; after [`STORE_RETRY_FOR`] of that, or at any other error (the
/// stream is gone: its session ended), log `what` as lost and give up.
async fn retry_store<T, F, Fut>(what: &str, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, EventStoreError>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut warned = false;
    loop {
        match op().await {
            Ok(_) => {
                if warned {
                    tracing::info!(waited_ms = started.elapsed().as_millis() as u64, "The event store answers again");
                }
                return;
            }
            Err(e @ EventStoreError::UnknownStream) => {
                tracing::debug!(error = %e, "Cannot {what}: the stream is gone");
                return;
            }
            Err(e) if started.elapsed() >= STORE_RETRY_FOR => {
                tracing::error!(error = %e, "Cannot {what}: the event store did not answer for 5 minutes; given up");
                return;
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "Cannot {what} yet: retrying until the event store answers");
                    warned = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(STORE_RETRY_MAX);
            }
        }
    }
}

/// An SSE response of ready frames, with keep-alive comments while idle.
fn sse_body(frames: futures::stream::BoxStream<'static, Bytes>, keep_alive: Duration) -> Response {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    let mut frames = frames.map(Ok::<Bytes, std::io::Error>).boxed();
    let with_keep_alive = futures::stream::poll_fn(move |cx| {
        use futures::StreamExt as _;
        if let std::task::Poll::Ready(next) = frames.poll_next_unpin(cx) {
            return std::task::Poll::Ready(next);
        }
        ticks.poll_tick(cx).map(|_| Some(Ok(Bytes::from_static(b": keep-alive\n\n"))))
    });
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/event-stream")
        .header("cache-control", "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_bytes_stream(with_keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_and_origins_are_recognised() {
        for ok in ["localhost", "localhost:3000", "127.0.0.1:8080", "[::1]:9", "[::1]", "127.0.0.1"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example.com", "evil.example.com:3000", "10.0.0.1:80", "localhost.evil.com"] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
        assert!(is_loopback_origin("http://localhost:3000"));
        assert!(!is_loopback_origin("http://evil.example.com"));
        assert!(!is_loopback_origin("null"));
    }
}
