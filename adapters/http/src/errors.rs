//! Every error the application can return, mapped once to its HTTP status, its JSON-RPC
//! error (code, message, `data`), and the headers that go with it (`Retry-After`,
//! `RateLimit`, the OAuth challenge). `/mcp` and `/admin/*` both answer through here.
//!
//! 5xx answers say which component is away and nothing more; the cause is logged.

use poem::Response;
use poem::http::{HeaderValue, StatusCode};
use qudag_application::admission::Refusal;
use qudag_application::limits::Limit;
use qudag_application::mcp::EngineError;
use qudag_application::mcp::wire;
use qudag_application::ports::TokenError;
use qudag_application::ports::metrics::Quota;
use qudag_application::usecases::SessionError;
use qudag_domain::quota::{Decision, QuotaPolicy};
use qudag_domain::rbac::Denial;
use rmcp::model::{ErrorCode, ErrorData, JsonRpcMessage, RequestId, ServerJsonRpcMessage};
use serde_json::{Value, json};

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
    /// The session is unknown, expired or someone else's (HTTP 404; the MCP reference
    /// servers' code).
    pub const SESSION_NOT_FOUND: i32 = -32001;
}

/// Seconds a client is told to wait after a 503 from a backend outage.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// The OAuth error members of a refusal, kept on the response until the challenge header
/// is written (where the request's external URL is known).
#[derive(Clone, Debug)]
pub struct OAuthChallenge(pub Value);

/// The status of a refusal by authentication: 400 for a credential sent wrongly, 401
/// otherwise.
pub fn unauthenticated_status(t: &TokenError) -> StatusCode {
    match t {
        TokenError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The OAuth error members of a refusal, carried in the JSON-RPC error's `data.oauth`
/// and turned into the `WWW-Authenticate` challenge (RFC 6750 §3; MCP authorization,
/// "Scope Challenge Handling").
pub fn oauth_error_data(e: &Refusal) -> Option<Value> {
    match e {
        Refusal::Unauthenticated(t) => {
            let (error, scheme) = match t {
                TokenError::Missing => (None, "Bearer"),
                TokenError::BadRequest { .. } => (Some("invalid_request"), "Bearer"),
                TokenError::InvalidDpopProof { .. } => (Some("invalid_dpop_proof"), "DPoP"),
                _ => (Some("invalid_token"), "Bearer"),
            };
            Some(json!({
                "scheme": scheme,
                "error": error,
                "error_description": t.description(),
                "reason": t.reason(),
            }))
        }
        Refusal::Forbidden(d) if d.denied_by == Some(Denial::Scope) => Some(json!({
            "scheme": "Bearer",
            "error": "insufficient_scope",
            "error_description": d.rule,
            "scope": d.step_up_scopes.join(" "),
        })),
        Refusal::Forbidden(d) => Some(json!({
            "scheme": "Bearer",
            "error": "insufficient_scope",
            "error_description": d.rule,
        })),
        _ => None,
    }
}

/// The status and JSON-RPC error of a refusal.
pub fn refusal_data(e: &Refusal) -> (StatusCode, ErrorData) {
    match e {
        Refusal::Unauthenticated(t) => (
            unauthenticated_status(t),
            ErrorData::new(
                ErrorCode(codes::UNAUTHENTICATED),
                match t.description() {
                    Some(d) => format!("unauthenticated ({}): {d}", t.reason()),
                    None => format!("unauthenticated: {}", t.reason()),
                },
                oauth_error_data(e).map(|oauth| json!({ "oauth": oauth })),
            ),
        ),
        Refusal::RateLimited(l) => (
            StatusCode::TOO_MANY_REQUESTS,
            ErrorData::new(
                ErrorCode(codes::RATE_LIMITED),
                "rate limit exceeded",
                Some(json!({ "retryAfterSeconds": l.decision.retry_after.map(|r| r.as_secs_f64().ceil() as u64) })),
            ),
        ),
        Refusal::Forbidden(d) => (
            StatusCode::FORBIDDEN,
            ErrorData::new(
                ErrorCode(codes::FORBIDDEN),
                format!("forbidden: {}", d.rule),
                Some(json!({
                    "requiredPermission": d.permission,
                    "requiredScope": d.required_scope,
                    "deniedBy": d.denied_by,
                    "oauth": oauth_error_data(e),
                })),
            ),
        ),
        Refusal::Unavailable { component, source } => {
            tracing::error!(error = %source, component, "A backend is unavailable");
            unavailable(&format!("{component} unavailable"))
        }
        other => (StatusCode::INTERNAL_SERVER_ERROR, ErrorData::internal_error(other.to_string(), None)),
    }
}

/// 503 with the unavailable code and `message`.
fn unavailable(message: &str) -> (StatusCode, ErrorData) {
    (StatusCode::SERVICE_UNAVAILABLE, ErrorData::new(ErrorCode(codes::UNAVAILABLE), message.to_owned(), None))
}

/// The final JSON-RPC message for a failed request and the status it warrants when sent
/// alone. A stateless JSON-RPC error may carry a 4xx status (2026-07-28 streamable-http);
/// in the stateful era protocol errors travel with 200.
pub fn engine_error_message(
    e: EngineError,
    id: Option<RequestId>,
    stateless: bool,
) -> (ServerJsonRpcMessage, StatusCode) {
    let (status, error) = match e {
        EngineError::Rpc(error) => (if stateless { stateless_status(&error) } else { StatusCode::OK }, error),
        EngineError::Refused(r) => refusal_data(&r),
        EngineError::Session(SessionError::NotFound) => session_not_found_data(),
        EngineError::Session(other) => {
            tracing::error!(error = %other, "Session store failed");
            unavailable("session store unavailable")
        }
        EngineError::Limit(limit) => limit_data(&limit),
    };
    (ServerJsonRpcMessage::error(error, id), status)
}

/// 429 and -31002 for a bound per caller, naming the bound and its setting.
fn limit_data(limit: &Limit) -> (StatusCode, ErrorData) {
    (
        StatusCode::TOO_MANY_REQUESTS,
        ErrorData::new(
            ErrorCode(codes::RATE_LIMITED),
            limit.to_string(),
            Some(json!({
                "limit": limit.max,
                "setting": limit.setting,
                "retryAfterSeconds": limit.retry_after_secs,
            })),
        ),
    )
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

fn session_not_found_data() -> (StatusCode, ErrorData) {
    (StatusCode::NOT_FOUND, ErrorData::new(ErrorCode(codes::SESSION_NOT_FOUND), "session not found", None))
}

/// The response for a failed MCP message answering `id`, with the headers its error
/// calls for (`Retry-After` on 429 and 503, `RateLimit` on 429, the OAuth challenge).
pub fn engine_error(e: EngineError, id: Option<RequestId>, stateless: bool) -> Response {
    let retry = retry_after(&e);
    let limited = match &e {
        EngineError::Refused(r) => r.limited().copied(),
        _ => None,
    };
    let (message, status) = engine_error_message(e, id, stateless);
    let mut response = json_response(status, &message);
    if let Some(secs) = retry {
        set_retry_after(&mut response, secs);
    }
    if let Some(limited) = limited {
        // The limit that refused: the rate (`default`, as on every answer) or another quota.
        let name = match limited.quota {
            Quota::Rate => DEFAULT_POLICY,
            other => other.as_str(),
        };
        set_rate_headers(&mut response, name, &limited.policy, &limited.decision);
    }
    response
}

/// The response for a refusal (see [`engine_error`]).
pub fn refusal(e: Refusal, id: Option<RequestId>) -> Response {
    engine_error(EngineError::Refused(e), id, false)
}

/// Seconds until a refused or failed request may be retried, if it may.
pub fn retry_after(e: &EngineError) -> Option<u64> {
    match e {
        EngineError::Refused(r) => refusal_retry_after(r),
        EngineError::Session(SessionError::Store(_)) => Some(UNAVAILABLE_RETRY_SECS),
        EngineError::Limit(limit) => Some(limit.retry_after_secs),
        _ => None,
    }
}

fn refusal_retry_after(r: &Refusal) -> Option<u64> {
    match r {
        Refusal::RateLimited(l) => Some(l.decision.retry_after.map_or(1, |t| (t.as_secs_f64().ceil() as u64).max(1))),
        Refusal::Unavailable { .. } => Some(UNAVAILABLE_RETRY_SECS),
        _ => None,
    }
}

/// Set `Retry-After` to `secs`.
pub(crate) fn set_retry_after(response: &mut Response, secs: u64) {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert("retry-after", v);
    }
}

/// `RateLimit-Policy` and `RateLimit` (IETF httpapi ratelimit-headers draft): the quota, its
/// window, what is left and when it is full again.
pub fn add_rate_headers(response: &mut Response, policy: Option<&QuotaPolicy>, decision: Option<&Decision>) {
    if let (Some(policy), Some(decision)) = (policy, decision) {
        set_rate_headers(response, DEFAULT_POLICY, policy, decision);
    }
}

/// The name of the short-term rate limit's policy in `RateLimit-Policy`.
const DEFAULT_POLICY: &str = "default";

fn set_rate_headers(response: &mut Response, name: &str, policy: &QuotaPolicy, decision: &Decision) {
    let window = policy.tolerance_micros().div_ceil(1_000_000).max(1);
    let reset = decision.reset_after.as_secs_f64().ceil() as u64;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";q={};w={window}", policy.burst())) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";r={};t={reset}", decision.remaining)) {
        headers.insert("ratelimit", v);
    }
}

/// 404 for an unknown, expired or foreign session (basic/transports, "Session Management").
pub fn session_not_found() -> Response {
    let (status, error) = session_not_found_data();
    rpc_error(status, None, error)
}

/// Why a long-lived stream was not opened.
#[derive(Clone, Copy, Debug)]
pub enum StreamRefusal {
    /// The caller holds as many streams as it may (429).
    CallerFull(usize),
    /// The node holds as many streams as it may (503).
    NodeFull(usize),
    /// The server is shutting down (503).
    ShuttingDown,
}

/// The answer to a stream that cannot be opened, with `Retry-After`.
pub fn stream_refused(refusal: StreamRefusal, id: Option<RequestId>) -> Response {
    let (status, code, message) = match refusal {
        StreamRefusal::ShuttingDown => return shutting_down(id),
        StreamRefusal::CallerFull(n) => (
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("at most {n} open streams per caller; close one first"),
        ),
        StreamRefusal::NodeFull(n) => {
            (StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, format!("this node serves at most {n} open streams"))
        }
    };
    let mut response = rpc_error(status, id, ErrorData::new(ErrorCode(code), message, None));
    set_retry_after(&mut response, 5);
    response
}

/// 503 for what a draining server no longer starts (sessions, streams), with a hint to retry
/// (on another node behind a load balancer).
pub fn shutting_down(id: Option<RequestId>) -> Response {
    let mut response = rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        ErrorData::new(ErrorCode(codes::UNAVAILABLE), "the server is shutting down; retry", None),
    );
    set_retry_after(&mut response, 1);
    response
}

/// 503 when the event bus cannot be subscribed.
pub fn bus_unavailable(id: Option<RequestId>, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "Cannot subscribe to the event bus");
    let (status, data) = unavailable("event bus unavailable");
    let mut response = rpc_error(status, id, data);
    set_retry_after(&mut response, UNAVAILABLE_RETRY_SECS);
    response
}

/// A JSON-RPC message as a JSON response; a 503 says when to retry, and an error with OAuth
/// members keeps them for the challenge header.
pub fn json_response(status: StatusCode, message: &ServerJsonRpcMessage) -> Response {
    let mut response = Response::builder().status(status).content_type("application/json").body(wire::encode(message));
    // Every 503 is retryable; say when (an answer with a hint of its own replaces this one).
    if status == StatusCode::SERVICE_UNAVAILABLE {
        set_retry_after(&mut response, UNAVAILABLE_RETRY_SECS);
    }
    if matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        && let JsonRpcMessage::Error(e) = message
        && let Some(oauth) = e.error.data.as_ref().and_then(|d| d.get("oauth")).filter(|o| o.is_object())
    {
        response.extensions_mut().insert(OAuthChallenge(oauth.clone()));
    }
    response
}

/// A JSON-RPC error answering `id`, with `status`.
pub fn rpc_error(status: StatusCode, id: Option<RequestId>, error: ErrorData) -> Response {
    json_response(status, &ServerJsonRpcMessage::error(error, id))
}

/// A plain-text refusal of the HTTP request itself (media types, sizes).
pub fn plain(status: StatusCode, message: &str) -> Response {
    Response::builder().status(status).content_type("text/plain; charset=utf-8").body(message.to_owned())
}

/// 405 naming the methods that are allowed (RFC 9110 §15.5.6 requires `Allow`).
pub fn method_not_allowed(allow: &'static str, message: &str) -> Response {
    Response::builder().status(StatusCode::METHOD_NOT_ALLOWED).header("allow", allow).body(message.to_owned())
}

/// 202 for a message that needs no answer.
pub fn accepted() -> Response {
    Response::builder().status(StatusCode::ACCEPTED).finish()
}

/// An admin endpoint's refusal: status, error text, a stable reason code, and the
/// header it calls for (`WWW-Authenticate` on 400/401/403, `Retry-After` on 429/503).
#[derive(Debug)]
pub struct AdminRefusal {
    /// The status.
    pub status: StatusCode,
    /// What went wrong.
    pub error: String,
    /// A stable reason code.
    pub reason: String,
    /// The OAuth error members for the challenge, if any.
    pub oauth: Option<Value>,
    /// Seconds to wait before retrying, if it may be retried.
    pub retry_after: Option<u64>,
}

/// How an admin operation's failure is answered.
pub fn admin_refusal(e: qudag_application::usecases::AdminError) -> AdminRefusal {
    use qudag_application::usecases::AdminError;
    let plain = |status, error: String, reason: &str| AdminRefusal {
        status,
        error,
        reason: reason.to_owned(),
        oauth: None,
        retry_after: None,
    };
    match e {
        AdminError::Refused(r) => {
            let oauth = oauth_error_data(&r);
            let retry_after = refusal_retry_after(&r);
            let (status, error, reason) = match &r {
                Refusal::Unauthenticated(t) => (
                    unauthenticated_status(t),
                    t.description().unwrap_or("an access token is required").to_owned(),
                    t.reason().to_owned(),
                ),
                Refusal::Forbidden(d) => (StatusCode::FORBIDDEN, d.rule.clone(), "forbidden".to_owned()),
                Refusal::RateLimited(_) => {
                    (StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded".to_owned(), "rate_limited".to_owned())
                }
                other => (StatusCode::SERVICE_UNAVAILABLE, other.to_string(), "unavailable".to_owned()),
            };
            AdminRefusal { status, error, reason, oauth, retry_after }
        }
        AdminError::InvalidArgument { argument, message } => {
            plain(StatusCode::BAD_REQUEST, message, &format!("bad_{argument}"))
        }
        AdminError::NotFound { argument, message } => {
            plain(StatusCode::NOT_FOUND, message, &format!("unknown_{argument}"))
        }
        other => plain(StatusCode::SERVICE_UNAVAILABLE, other.to_string(), "unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use qudag_domain::rbac::{Permission, Role, authorize};

    use super::*;

    #[test]
    fn challenges_follow_rfc6750_and_rfc9728() {
        let url = "https://mcp.example/.well-known/oauth-protected-resource/mcp";
        let missing = oauth_error_data(&Refusal::Unauthenticated(TokenError::Missing)).unwrap();
        assert_eq!(
            crate::auth::challenge(&missing, url).unwrap(),
            "Bearer resource_metadata=\"https://mcp.example/.well-known/oauth-protected-resource/mcp\""
        );
        let bad =
            oauth_error_data(&Refusal::Unauthenticated(TokenError::invalid("expired", "token \"x\" expired"))).unwrap();
        assert_eq!(
            crate::auth::challenge(&bad, url).unwrap(),
            format!(
                "Bearer resource_metadata=\"{url}\", error=\"invalid_token\", error_description=\"token \\\"x\\\" expired\""
            )
        );
        let dpop = oauth_error_data(&Refusal::Unauthenticated(TokenError::dpop("dpop_missing", "no proof"))).unwrap();
        let v = crate::auth::challenge(&dpop, url).unwrap();
        assert!(v.to_str().unwrap().starts_with("DPoP "), "{v:?}");
        assert!(v.to_str().unwrap().contains("error=\"invalid_dpop_proof\""), "{v:?}");

        let scopes = ["mcp:read".to_owned()].into_iter().collect();
        let d = authorize(&[Role::Developer].into_iter().collect(), &scopes, Permission::QuantumExecute);
        let forbidden = oauth_error_data(&Refusal::Forbidden(d)).unwrap();
        let v = crate::auth::challenge(&forbidden, url).unwrap();
        assert!(v.to_str().unwrap().contains("error=\"insufficient_scope\""), "{v:?}");
        assert!(v.to_str().unwrap().contains("scope=\"mcp:execute mcp:read\""), "{v:?}");
    }
}
