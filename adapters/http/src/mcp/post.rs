//! POST `/mcp`: one JSON-RPC message (or a 2025-03-26 batch), read within the body limit,
//! classified by era and handed to the engine with the caller.

use poem::Request;
use poem::http::{HeaderMap, HeaderValue, StatusCode};
use qudag_application::admission::Caller;
use qudag_application::mcp::{Accepted, EngineError, Route, wire};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorData, InitializeRequestParams, JsonRpcMessage, RequestId,
    ServerJsonRpcMessage, ServerResult, SubscriptionFilter,
};
use serde_json::Value;

use super::{McpEndpoint, classify, headers};
use crate::errors::{self, accepted, json_response, plain, rpc_error};

impl McpEndpoint {
    pub(super) async fn post(&self, req: &mut Request) -> poem::Response {
        let body = req.take_body();
        let headers = req.headers();
        if !headers::is_json(headers) {
            if headers::text(headers, "content-type")
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
                && let Ok(form) = body.into_bytes_limit(self.config.max_body_bytes).await
                && crate::auth::form_has_token(&form)
            {
                // RFC 6750 §2.2 form-encoded tokens are refused, and audited as such.
                let mut ctx = crate::auth::request_context(req, &self.config.origin);
                ctx.credential_problem =
                    Some(("token_in_body", "access tokens are accepted only in the Authorization header".into()));
                if let Err(e) = self.admission().authenticate(ctx).await {
                    return errors::refusal(e, None);
                }
            }
            return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
        }
        if !(headers::accepts(headers, "application/json") && headers::accepts(headers, "text/event-stream")) {
            return plain(StatusCode::NOT_ACCEPTABLE, "Accept must list application/json and text/event-stream");
        }
        let ctx = crate::auth::request_context(req, &self.config.origin);
        let caller = match self.admission().authenticate(ctx).await {
            Ok(c) => c,
            Err(refusal) => {
                // A caller over its limit before authentication still learns which request
                // was refused (JSON-RPC ids the error); the body is read only for that.
                let id = match refusal.rate_decision() {
                    Some(_) => body.into_bytes_limit(self.config.max_body_bytes).await.ok().and_then(|b| {
                        serde_json::from_slice::<Value>(&b).ok().as_ref().and_then(classify::request_id_of)
                    }),
                    None => None,
                };
                return errors::refusal(refusal, id);
            }
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
        // Boxed one at a time, so this future holds only the one that runs.
        if value.is_array() {
            return Box::pin(self.batch(caller, headers, value)).await;
        }
        let id = classify::request_id_of(&value);
        if classify::is_stateless(headers, &value) {
            Box::pin(self.stateless(caller, headers, value, id)).await
        } else {
            Box::pin(self.stateful(caller, headers, value, id)).await
        }
    }

    async fn stateful(
        &self,
        caller: Caller,
        headers: &HeaderMap,
        value: Value,
        id: Option<RequestId>,
    ) -> poem::Response {
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
        // An `initialize` whose params do not decode is read by rmcp as some other request;
        // its params are kept (once per session) to say what is wrong with them.
        let initialize_params = (value.get("method").and_then(Value::as_str) == Some("initialize"))
            .then(|| value.get("params").cloned().unwrap_or(Value::Null));
        let message = match classify::client_message(value) {
            Ok(m) => m,
            Err(e) => return rpc_error(StatusCode::BAD_REQUEST, id, ErrorData::invalid_request(quoted(&e), None)),
        };
        let session = headers::text(headers, headers::SESSION_ID);
        let initialize = match &message {
            JsonRpcMessage::Request(r) => matches!(r.request, ClientRequest::InitializeRequest(_)),
            _ => false,
        };
        if let Some(params) = initialize_params
            && !initialize
        {
            let reason = match serde_json::from_value::<InitializeRequestParams>(params) {
                Err(e) => quoted(&e),
                Ok(_) => "not an initialize request".to_owned(),
            };
            return rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                ErrorData::invalid_params(format!("invalid initialize params: {reason}"), None),
            );
        }
        let Some(session) = session else {
            if let JsonRpcMessage::Request(r) = message
                && let ClientRequest::InitializeRequest(init) = r.request
            {
                return self.initialize(caller, r.id, init.params).await;
            }
            return rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                ErrorData::invalid_request("Mcp-Session-Id header required: initialize first", None),
            );
        };
        if initialize {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                ErrorData::invalid_request("this session is already initialized", None),
            );
        }
        self.accept(&caller, Route::Session(session), message, id, false).await
    }

    /// Hand `message` to the engine; answer a request, or 202 for anything else.
    async fn accept(
        &self,
        caller: &Caller,
        route: Route<'_>,
        message: ClientJsonRpcMessage,
        id: Option<RequestId>,
        stateless: bool,
    ) -> poem::Response {
        let policy = self.admission().rate_policy();
        let request = matches!(message, JsonRpcMessage::Request(_));
        match self.engine.accept(caller, route, message).await {
            // A response or notification not taken (an answer nothing waits for): 400 with
            // the error and no id (basic/transports: "If the server cannot accept the input,
            // it MUST return an HTTP error status code").
            Err(EngineError::Rpc(e)) if !request => rpc_error(StatusCode::BAD_REQUEST, None, e),
            Ok(Accepted::Call(call)) => {
                let decision = call.decision().copied();
                let Some(id) = id else { return accepted() };
                let mut response = self.respond(*call, id).await;
                errors::add_rate_headers(&mut response, policy, decision.as_ref());
                response
            }
            Ok(Accepted::Absorbed) => accepted(),
            Err(e) => errors::engine_error(e, id, stateless),
        }
    }

    async fn initialize(&self, caller: Caller, id: RequestId, params: InitializeRequestParams) -> poem::Response {
        if self.draining() {
            return errors::shutting_down(Some(id));
        }
        let policy = self.admission().rate_policy();
        match self.engine.initialize(&caller, &params).await {
            Ok((session, result, decision)) => {
                let message = ServerJsonRpcMessage::response(ServerResult::InitializeResult(result), id);
                let mut response = json_response(StatusCode::OK, &message);
                if let Ok(value) = HeaderValue::from_str(session.id().as_str()) {
                    response.headers_mut().insert(headers::SESSION_ID, value);
                }
                errors::add_rate_headers(&mut response, policy, decision.as_ref());
                response
            }
            Err(e) => errors::engine_error(e, Some(id), false),
        }
    }

    async fn stateless(
        &self,
        caller: Caller,
        headers: &HeaderMap,
        value: Value,
        id: Option<RequestId>,
    ) -> poem::Response {
        let bad = |e: ErrorData| rpc_error(StatusCode::BAD_REQUEST, id.clone(), e);
        let checked = match classify::check_stateless(headers, &value, self.engine.catalog()) {
            Ok(c) => c,
            Err(e) => return bad(e),
        };
        let Some(request_id) = id.clone() else {
            // No client-to-server notification is defined over HTTP in 2026-07-28; accept and
            // ignore what arrives (basic/transports: 202 for an accepted notification).
            return match self.engine.admit_unrouted(&caller).await {
                Ok(()) => accepted(),
                Err(e) => errors::engine_error(e, None, true),
            };
        };
        if checked.method == "subscriptions/listen" {
            let filter = value.pointer("/params/notifications").cloned().unwrap_or(Value::Null);
            return match serde_json::from_value::<SubscriptionFilter>(filter) {
                Ok(filter) => self.listen(caller, request_id, filter).await,
                Err(e) => bad(ErrorData::invalid_params(format!("params.notifications: {}", quoted(&e)), None)),
            };
        }
        if !wire::is_known_method(&checked.method) || wire::REMOVED_IN_STATELESS.contains(&checked.method.as_str()) {
            if let Err(e) = self.engine.admit_unrouted(&caller).await {
                return errors::engine_error(e, id, true);
            }
            return rpc_error(StatusCode::NOT_FOUND, id, wire::method_not_found(&checked.method));
        }
        let message = match classify::client_message(value) {
            Ok(m @ JsonRpcMessage::Request(_)) => m,
            Ok(_) => return bad(ErrorData::invalid_request("expected a request", None)),
            Err(e) => return bad(ErrorData::invalid_params(quoted(&e), None)),
        };
        let version = wire::version(&checked.version);
        self.accept(&caller, Route::Stateless(&version), message, Some(request_id), true).await
    }

    /// 2025-03-26 batches (basic, "Batching"): only in sessions that negotiated it; each
    /// item is admitted on its own.
    async fn batch(&self, caller: Caller, headers: &HeaderMap, value: Value) -> poem::Response {
        let Some(session) = headers::text(headers, headers::SESSION_ID) else {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                ErrorData::invalid_request(
                    "Mcp-Session-Id header required: batches are accepted only in 2025-03-26 sessions",
                    None,
                ),
            );
        };
        let items = match value {
            Value::Array(items) if !items.is_empty() => items,
            _ => return rpc_error(StatusCode::BAD_REQUEST, None, ErrorData::invalid_request("empty batch", None)),
        };
        let mut replies = Vec::new();
        for item in items {
            let id = classify::request_id_of(&item);
            let message = match classify::client_message(item) {
                Ok(m) => m,
                Err(e) => {
                    replies.push(ServerJsonRpcMessage::error(ErrorData::invalid_request(quoted(&e), None), id));
                    continue;
                }
            };
            if let JsonRpcMessage::Request(r) = &message
                && matches!(r.request, ClientRequest::InitializeRequest(_))
            {
                replies.push(ServerJsonRpcMessage::error(
                    ErrorData::invalid_request("initialize must not be part of a batch", None),
                    Some(r.id.clone()),
                ));
                continue;
            }
            match self.engine.accept(&caller, Route::Batch(session), message).await {
                Ok(Accepted::Call(call)) => {
                    let Some(id) = id else { continue };
                    let outcome = self.engine.run(*call, &id, None).await;
                    replies.extend(super::respond::final_message(id, Ok(outcome), false).map(|(m, _)| m));
                }
                Ok(Accepted::Absorbed) => {}
                Err(EngineError::Rpc(e)) => return rpc_error(StatusCode::BAD_REQUEST, None, e),
                Err(e) => return errors::engine_error(e, id, false),
            }
        }
        if replies.is_empty() {
            return accepted();
        }
        let body = format!("[{}]", replies.iter().map(wire::encode).collect::<Vec<_>>().join(","));
        poem::Response::builder().status(StatusCode::OK).content_type("application/json").body(body)
    }
}

/// A decoding error for the caller: serde repeats the bad value, so only a short prefix of
/// each quoted value is kept.
fn quoted(e: &serde_json::Error) -> String {
    qudag_domain::clip::clip_quoted_owned(e.to_string())
}
