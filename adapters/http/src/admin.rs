//! `/admin/*`: administrative endpoints. Each request is authenticated once and handed to
//! the application's admin use case, which admits, authorizes (by the permission the
//! `ADMIN_ENDPOINTS` table names), runs and audits it like a tool call; failures are
//! answered through [`crate::errors`].
//!
//! - `POST /admin/authz/explain`: the authorization decision, and the rule that made it,
//!   for given roles and scopes (or a token's claims) and a tool, prompt or endpoint.
//! - `GET /admin/audit`: the audit trail, filtered and paged (roles auditor and admin).

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use qudag_application::admission::Caller;
use qudag_application::usecases::{AdminError as Failure, AdminService, AuditRequest, ExplainInput};
use serde_json::Value;

use crate::auth::{self, PublicOrigin};
use crate::errors::{AdminRefusal, admin_refusal};
use crate::openapi::{AuditActionName, BearerToken, DateTime, EmptyIsAbsent, PermissionName, RoleName, ScopeName};

#[derive(Tags)]
enum ApiTags {
    /// Administration (role admin).
    Admin,
}

/// What to explain: a caller's roles and scopes — given directly, or as a token's
/// claims — and a target.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct ExplainRequest {
    /// A tool or prompt name, or an admin endpoint as `METHOD path`
    /// (e.g. `POST /admin/authz/explain`). One that names nothing is answered 404.
    #[oai(validator(min_length = 1))]
    pub target: String,
    /// Role names, as a token carries them (unknown names grant nothing and are listed in
    /// `unknown_roles`).
    #[oai(default)]
    pub roles: Vec<String>,
    /// Scopes the token holds.
    #[oai(default)]
    pub scopes: Vec<String>,
    /// A token's claims (its JSON payload): roles are read from the configured roles
    /// claim and scopes from `scope`/`scp`, added to `roles` and `scopes`.
    #[oai(nullable)]
    pub claims: Option<BTreeMap<String, Value>>,
}

/// What an explained target is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum TargetKind {
    /// An MCP tool.
    Tool,
    /// An MCP prompt.
    Prompt,
    /// An admin endpoint (`METHOD path`).
    Endpoint,
}

/// Which check refused a permission.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum Denial {
    /// None of the caller's roles grants it: a wider token would not help.
    Role,
    /// A role grants it but the token lacks the scope: a step-up helps.
    Scope,
}

/// The decision (the application's `Explanation`, as documented here).
#[derive(Object, Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The target asked about.
    pub target: String,
    /// What the target is.
    pub kind: TargetKind,
    /// Whether a caller with these roles and scopes may use it.
    pub allowed: bool,
    /// The permission the target needs.
    pub permission: PermissionName,
    /// The OAuth scope a token needs for it.
    pub required_scope: ScopeName,
    /// The role that grants the permission; null when none of the caller's roles does.
    #[oai(nullable)]
    pub granted_by: Option<RoleName>,
    /// Which check refused it; null when allowed.
    #[oai(nullable)]
    pub denied_by: Option<Denial>,
    /// For a scope refusal, the scopes a step-up would request; else empty.
    pub step_up_scopes: Vec<String>,
    /// The rule, in words.
    pub rule: String,
    /// Role names that are not roles of this server (and grant nothing).
    pub unknown_roles: Vec<String>,
}

/// An error body.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct AdminError {
    /// What went wrong.
    pub error: String,
    /// A stable reason code: `bad_<parameter>` (400), `unsupported_media_type` (415),
    /// `payload_too_large` (413), `body_timeout` (408), `unknown_target` or `unknown_cursor`
    /// (404), the authentication failure's reason (400, 401), `forbidden`, `forbidden_origin`
    /// (403: a disallowed `Origin`, or a `Host` that is not served), `rate_limited`,
    /// `unavailable`.
    pub reason: String,
}

/// The answer of `POST /admin/authz/explain`.
#[derive(ApiResponse, Debug)]
#[oai(bad_request_handler = "explain_bad_request")]
pub enum ExplainResponse {
    /// The decision.
    #[oai(status = 200)]
    Ok(Json<Explanation>),
    /// The body is not an `ExplainRequest` (the reason names the part), or the credential
    /// was sent wrongly (then with a challenge).
    #[oai(status = 400)]
    BadRequest(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// The caller is not an admin, or the token lacks `mcp:admin`;
    /// or the request's `Origin` is not allowed, or its `Host` is not served here
    /// (DNS-rebinding protection, reason `forbidden_origin`).
    #[oai(status = 403)]
    Forbidden(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// The target names no tool, prompt or admin endpoint of this server.
    #[oai(status = 404)]
    NotFound(Json<AdminError>),
    /// The body did not arrive within `QUDAG_BODY_TIMEOUT_SECS` of the request's head.
    #[oai(status = 408)]
    RequestTimeout(Json<AdminError>),
    /// The body is larger than `QUDAG_ADMIN_MAX_BODY_BYTES`: refused as soon as its declared
    /// length, or the bytes read, pass the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<AdminError>),
    /// The body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<AdminError>),
    /// Over the rate limit.
    #[oai(status = 429)]
    TooManyRequests(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
    /// A backend needed to decide is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
}

/// How an audit event ended.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// It worked.
    Success,
    /// It was attempted and failed.
    Failure,
    /// It was refused by policy (authentication, authorization, quota).
    Denied,
}

impl AuditOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// One audit event, as chained.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Position in the chain, from 0, without gaps.
    pub seq: u64,
    /// When it happened (UTC).
    pub at: DateTime,
    /// What happened.
    pub action: AuditActionName,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Who (`issuer#subject`); null when nobody was authenticated.
    #[oai(nullable)]
    pub actor: Option<String>,
    /// On what (tool, session, endpoint); null when nothing in particular.
    #[oai(nullable)]
    pub target: Option<String>,
    /// The request id it belongs to; null for events of no request.
    #[oai(nullable)]
    pub request_id: Option<String>,
    /// The client's address; null for events of no request.
    #[oai(nullable)]
    pub client_addr: Option<String>,
    /// The node that recorded it; null on a single node.
    #[oai(nullable)]
    pub node: Option<String>,
    /// Action-specific facts (never secrets).
    pub details: Value,
    /// The previous event's hash (hex).
    #[oai(validator(pattern = "^[0-9a-f]{64}$"))]
    pub prev_hash: String,
    /// This event's hash: BLAKE3 over the previous hash and the canonical record (hex).
    #[oai(validator(pattern = "^[0-9a-f]{64}$"))]
    pub hash: String,
}

/// A page of the audit trail, oldest first.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// The answer of `GET /admin/audit`.
#[derive(ApiResponse, Debug)]
#[oai(bad_request_handler = "audit_bad_request")]
pub enum AuditResponse {
    /// A page of events.
    #[oai(status = 200)]
    Ok(Json<AuditPage>),
    /// A parameter is malformed (the reason names it), or the credential was sent wrongly
    /// (then with a challenge).
    #[oai(status = 400)]
    BadRequest(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// The caller is neither auditor nor admin, or the token lacks `mcp:audit`;
    /// or the request's `Origin` is not allowed, or its `Host` is not served here
    /// (DNS-rebinding protection, reason `forbidden_origin`).
    #[oai(status = 403)]
    Forbidden(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// The cursor is not one this server handed out: there is no such page.
    #[oai(status = 404)]
    NotFound(Json<AdminError>),
    /// Over the rate limit.
    #[oai(status = 429)]
    TooManyRequests(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
    /// The audit trail cannot be read now.
    #[oai(status = 503)]
    Unavailable(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
}

/// A node's latest signed checkpoint of the audit chain.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct AuditHead {
    /// The node whose chain it is (`QUDAG_NODE_ID`; null for a file trail without one).
    #[oai(nullable)]
    pub node: Option<String>,
    /// The seq of the checkpoint's signature event.
    pub seq: u64,
    /// That event's hash (hex).
    pub hash: String,
    /// When it was signed (RFC 3339).
    pub at: String,
    /// The seq of the anchor event the signature covers.
    pub covers_seq: u64,
    /// The anchor's hash (hex).
    pub covers_hash: String,
    /// The signature algorithm (`ml-dsa-65`).
    pub algorithm: String,
    /// The signing key's fingerprint.
    pub key_id: String,
    /// The signature (hex).
    pub signature: String,
    /// `SEQ:HASH`, as `qudag-mcp audit verify --expect-head` takes it.
    pub expect_head: String,
}

/// Each node's latest signed checkpoint.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct AuditHeads {
    /// One per node with a signed checkpoint, in node order; empty before the first.
    pub checkpoints: Vec<AuditHead>,
}

/// The answer of `GET /admin/audit/head`.
#[derive(ApiResponse, Debug)]
#[oai(bad_request_handler = "audit_head_bad_request")]
pub enum AuditHeadResponse {
    /// The latest signed checkpoints.
    #[oai(status = 200)]
    Ok(Json<AuditHeads>),
    /// The credential was sent wrongly (then with a challenge).
    #[oai(status = 400)]
    BadRequest(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// The caller is neither auditor nor admin, or the token lacks `mcp:audit`;
    /// or the request's `Origin` is not allowed, or its `Host` is not served here
    /// (DNS-rebinding protection, reason `forbidden_origin`).
    #[oai(status = 403)]
    Forbidden(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// Over the rate limit.
    #[oai(status = 429)]
    TooManyRequests(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
    /// The audit trail cannot be read now.
    #[oai(status = 503)]
    Unavailable(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
}

impl From<Refused> for AuditHeadResponse {
    fn from(r: Refused) -> Self {
        match r {
            Refused::BadRequest(b, h) => Self::BadRequest(b, h),
            Refused::Unauthorized(b, h) => Self::Unauthorized(b, h),
            Refused::Forbidden(b, h) => Self::Forbidden(b, h),
            // No parameter names a thing that could be missing, and GET takes no body.
            Refused::NotFound(b) | Refused::UnsupportedMediaType(b) => Self::BadRequest(b, None),
            Refused::TooManyRequests(b, h) => Self::TooManyRequests(b, h),
            Refused::Unavailable(b, h) => Self::Unavailable(b, h),
        }
    }
}

fn audit_head_bad_request(err: poem::Error) -> AuditHeadResponse {
    unreadable(&err).into()
}

/// A refusal, before it takes an endpoint's response type.
enum Refused {
    BadRequest(Json<AdminError>, Option<String>),
    Unauthorized(Json<AdminError>, Option<String>),
    Forbidden(Json<AdminError>, Option<String>),
    NotFound(Json<AdminError>),
    UnsupportedMediaType(Json<AdminError>),
    TooManyRequests(Json<AdminError>, Option<String>),
    Unavailable(Json<AdminError>, Option<String>),
}

impl From<Refused> for ExplainResponse {
    fn from(r: Refused) -> Self {
        match r {
            Refused::BadRequest(b, h) => Self::BadRequest(b, h),
            Refused::Unauthorized(b, h) => Self::Unauthorized(b, h),
            Refused::Forbidden(b, h) => Self::Forbidden(b, h),
            Refused::NotFound(b) => Self::NotFound(b),
            Refused::UnsupportedMediaType(b) => Self::UnsupportedMediaType(b),
            Refused::TooManyRequests(b, h) => Self::TooManyRequests(b, h),
            Refused::Unavailable(b, h) => Self::Unavailable(b, h),
        }
    }
}

impl From<Refused> for AuditResponse {
    fn from(r: Refused) -> Self {
        match r {
            Refused::BadRequest(b, h) => Self::BadRequest(b, h),
            Refused::Unauthorized(b, h) => Self::Unauthorized(b, h),
            Refused::Forbidden(b, h) => Self::Forbidden(b, h),
            Refused::NotFound(b) => Self::NotFound(b),
            // GET takes no body, so it has no media type to refuse.
            Refused::UnsupportedMediaType(b) => Self::BadRequest(b, None),
            Refused::TooManyRequests(b, h) => Self::TooManyRequests(b, h),
            Refused::Unavailable(b, h) => Self::Unavailable(b, h),
        }
    }
}

/// A request poem-openapi could not read (a parameter, the body, its media type), in the
/// endpoints' error shape.
fn unreadable(err: &poem::Error) -> Refused {
    use poem_openapi::error::{ContentTypeError, ParseParamError, ParseRequestPayloadError};
    if err.is::<ContentTypeError>() || err.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return Refused::UnsupportedMediaType(error(
            format!("{err}; send the body as application/json"),
            "unsupported_media_type",
        ));
    }
    let reason = if let Some(p) = err.downcast_ref::<ParseParamError>() {
        format!("bad_{}", p.name)
    } else if err.is::<ParseRequestPayloadError>() {
        "bad_body".to_owned()
    } else {
        "bad_request".to_owned()
    };
    Refused::BadRequest(error(err.to_string(), &reason), None)
}

fn explain_bad_request(err: poem::Error) -> ExplainResponse {
    unreadable(&err).into()
}

fn audit_bad_request(err: poem::Error) -> AuditResponse {
    unreadable(&err).into()
}

/// The admin endpoints.
#[derive(Clone)]
pub struct AdminApi {
    state: Option<AdminState>,
}

/// What the admin endpoints work with.
#[derive(Clone)]
pub struct AdminState {
    /// The admin use cases (and admission, which authenticates their callers).
    pub service: Arc<AdminService>,
    /// The external origin and trusted proxies.
    pub origin: PublicOrigin,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi").field("enabled", &self.state.is_some()).finish()
    }
}

impl AdminApi {
    /// The endpoints over `state`; `None` documents them without serving (OpenAPI export).
    pub fn new(state: Option<AdminState>) -> Self {
        Self { state }
    }
}

fn error(error: impl Into<String>, reason: &str) -> Json<AdminError> {
    Json(AdminError { error: error.into(), reason: reason.to_owned() })
}

/// The refusal of an admin request, in the endpoints' response shape.
fn refused(e: Failure, metadata_url: &str) -> Refused {
    let AdminRefusal { status, error: text, reason, oauth, retry_after } = admin_refusal(e);
    let challenge = || {
        oauth.as_ref().and_then(|o| auth::challenge(o, metadata_url)).and_then(|v| v.to_str().ok().map(str::to_owned))
    };
    let body = error(text, &reason);
    match status.as_u16() {
        400 => Refused::BadRequest(body, challenge()),
        401 => Refused::Unauthorized(body, challenge()),
        403 => Refused::Forbidden(body, challenge()),
        404 => Refused::NotFound(body),
        429 => Refused::TooManyRequests(body, retry_after.map(|s| s.to_string())),
        _ => Refused::Unavailable(body, retry_after.map(|s| s.to_string())),
    }
}

impl AdminState {
    /// The caller of `req`, or its refusal.
    async fn caller(&self, req: &Request) -> Result<Caller, Refused> {
        let ctx = auth::request_context(req, &self.origin);
        self.service
            .admission()
            .authenticate(ctx)
            .await
            .map_err(|e| refused(Failure::Refused(e), &self.origin.metadata_url(req)))
    }
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// Explain an authorization decision
    ///
    /// For a caller's roles and scopes (or a token's claims) and a tool, prompt or admin
    /// endpoint: whether it is allowed, and the rule that decided — the same decision a
    /// real call gets, without making the call. Needs role `admin` and scope `mcp:admin`.
    #[oai(path = "/admin/authz/explain", method = "post", operation_id = "explainAuthorization")]
    async fn explain(&self, req: &Request, _token: BearerToken, body: Json<ExplainRequest>) -> ExplainResponse {
        let Some(state) = &self.state else {
            return ExplainResponse::Unavailable(error("administration is not enabled", "unavailable"), None);
        };
        let caller = match state.caller(req).await {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        let ExplainRequest { target, roles, scopes, claims } = body.0;
        let claims = claims.map(|c| c.into_iter().collect());
        let input = ExplainInput { target, roles, scopes, claims };
        match state.service.explain(&caller, input).await {
            Ok(answer) => match serde_json::to_value(answer).map(|v| Explanation::parse_from_json(Some(v))) {
                Ok(Ok(x)) => ExplainResponse::Ok(Json(x)),
                Ok(Err(e)) => ExplainResponse::Unavailable(error(e.into_message(), "internal"), None),
                Err(e) => ExplainResponse::Unavailable(error(e.to_string(), "internal"), None),
            },
            Err(e) => refused(e, &state.origin.metadata_url(req)).into(),
        }
    }

    /// Read the audit trail
    ///
    /// Events oldest first, filtered by time range, actor, action and outcome, in pages of
    /// `limit`; pass `next_cursor` back as `cursor` for the next page. Each event carries its
    /// place in the hash chain. A parameter given empty (`action=`) is the same as one left
    /// out. Needs role `auditor` or `admin` and scope `mcp:audit`; reading is itself audited.
    #[oai(path = "/admin/audit", method = "get", operation_id = "readAuditTrail")]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        req: &Request,
        _token: BearerToken,
        /// Events at or after this instant (RFC 3339); one before 1970 means from the first
        /// event.
        from: Query<EmptyIsAbsent<DateTime>>,
        /// Events before this instant (RFC 3339); a range that ends where it starts, or
        /// before, holds no events.
        to: Query<EmptyIsAbsent<DateTime>>,
        /// Only the events of this actor (`issuer#subject`), exactly.
        actor: Query<EmptyIsAbsent<String>>,
        /// Only the events of this action.
        action: Query<EmptyIsAbsent<AuditActionName>>,
        /// Only the events with this outcome.
        outcome: Query<EmptyIsAbsent<AuditOutcome>>,
        /// The `next_cursor` of the previous page; one this server did not hand out is
        /// answered 404.
        cursor: Query<EmptyIsAbsent<String>>,
        /// Events per page (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<EmptyIsAbsent<u32>>,
    ) -> AuditResponse {
        let Some(state) = &self.state else {
            return AuditResponse::Unavailable(error("administration is not enabled", "unavailable"), None);
        };
        let caller = match state.caller(req).await {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        let request = AuditRequest {
            from: from.0.into_inner().map(|t| t.0),
            to: to.0.into_inner().map(|t| t.0),
            actor: actor.0.into_inner(),
            action: action.0.into_inner().map(|a| a.0),
            outcome: outcome.0.into_inner().map(|o| o.as_str().to_owned()),
            cursor: cursor.0.into_inner(),
            limit: limit.0.into_inner().map(|l| l as usize),
        };
        match state.service.read_audit(&caller, request).await {
            Ok(answer) => match AuditPage::parse_from_json(Some(answer)) {
                Ok(page) => AuditResponse::Ok(Json(page)),
                Err(e) => AuditResponse::Unavailable(error(e.into_message(), "internal"), None),
            },
            Err(e) => refused(e, &state.origin.metadata_url(req)).into(),
        }
    }

    /// Read the audit trail's latest signed checkpoints
    ///
    /// Each node's latest signed checkpoint of its audit chain: seq and hash, the anchor it
    /// covers, the ML-DSA signature and `expect_head` (`SEQ:HASH`). Kept by a witness, it lets
    /// `qudag-mcp audit verify --expect-head` notice records cut off the trail's end later.
    /// Needs role `auditor` or `admin` and scope `mcp:audit`; reading is itself audited.
    #[oai(path = "/admin/audit/head", method = "get", operation_id = "readAuditHead")]
    async fn audit_head(&self, req: &Request, _token: BearerToken) -> AuditHeadResponse {
        let Some(state) = &self.state else {
            return AuditHeadResponse::Unavailable(error("administration is not enabled", "unavailable"), None);
        };
        let caller = match state.caller(req).await {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        match state.service.audit_heads(&caller).await {
            Ok(answer) => match AuditHeads::parse_from_json(Some(answer)) {
                Ok(heads) => AuditHeadResponse::Ok(Json(heads)),
                Err(e) => AuditHeadResponse::Unavailable(error(e.into_message(), "internal"), None),
            },
            Err(e) => refused(e, &state.origin.metadata_url(req)).into(),
        }
    }
}
