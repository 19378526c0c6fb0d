//! `/admin/*`: administrative endpoints. Each request is authenticated once and handed to
//! the application's admin use case, which admits, authorizes (by the permission the
//! `ADMIN_ENDPOINTS` table names), runs and audits it like a tool call; failures are
//! answered through [`crate::errors`].
//!
//! - `POST /admin/authz/explain`: the authorization decision, and the rule that made it,
//!   for given roles and scopes (or a token's claims) and a tool, prompt or endpoint.
//! - `GET /admin/audit`: the audit trail, filtered and paged (roles auditor and admin).

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use qudag_application::admission::Caller;
use qudag_application::usecases::{AdminError as Failure, AdminService, AuditRequest, ExplainInput};
use serde_json::Value;

use crate::auth::{self, PublicOrigin};
use crate::errors::{AdminRefusal, admin_refusal};

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
    /// (e.g. `POST /admin/authz/explain`).
    pub target: String,
    /// Role names, as a token carries them.
    #[oai(default)]
    pub roles: Vec<String>,
    /// Scopes the token holds.
    #[oai(default)]
    pub scopes: Vec<String>,
    /// A token's claims (its JSON payload): roles are read from the configured roles
    /// claim and scopes from `scope`/`scp`, added to `roles` and `scopes`.
    pub claims: Option<Value>,
}

/// The decision (the application's `Explanation`, as documented here).
#[derive(Object, Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The target asked about.
    pub target: String,
    /// `tool`, `prompt` or `endpoint`.
    pub kind: String,
    /// Whether a caller with these roles and scopes may use it.
    pub allowed: bool,
    /// The permission the target needs (`area:verb`).
    pub permission: String,
    /// The OAuth scope a token needs for it.
    pub required_scope: String,
    /// The role that grants the permission, if one does.
    pub granted_by: Option<String>,
    /// `role` or `scope`: which check refused it.
    pub denied_by: Option<String>,
    /// For a scope refusal, the scopes a step-up would request.
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
    /// A stable reason code.
    pub reason: String,
}

/// The answer of an admin endpoint.
#[derive(ApiResponse, Debug)]
pub enum ExplainResponse {
    /// The decision.
    #[oai(status = 200)]
    Ok(Json<Explanation>),
    /// The request names no known target, or its credential was sent wrongly.
    #[oai(status = 400)]
    BadRequest(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// The caller is not an admin, or the token lacks `mcp:admin`.
    #[oai(status = 403)]
    Forbidden(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// Over the rate limit.
    #[oai(status = 429)]
    TooManyRequests(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
    /// A backend needed to decide is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
}

/// One audit event, as chained.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Position in the chain, from 0, without gaps.
    pub seq: u64,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// What happened (`tool.called`, `auth.failed`, ...).
    pub action: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Who (`issuer#subject`).
    pub actor: Option<String>,
    /// On what (tool, session, endpoint).
    pub target: Option<String>,
    /// The request id it belongs to.
    pub request_id: Option<String>,
    /// The client's address.
    pub client_addr: Option<String>,
    /// The node that recorded it.
    pub node: Option<String>,
    /// Action-specific facts (never secrets).
    pub details: Value,
    /// The previous event's hash (hex).
    pub prev_hash: String,
    /// This event's hash: BLAKE3 over the previous hash and the canonical record (hex).
    pub hash: String,
}

/// A page of the audit trail, oldest first.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// The answer of `GET /admin/audit`.
#[derive(ApiResponse, Debug)]
pub enum AuditResponse {
    /// A page of events.
    #[oai(status = 200)]
    Ok(Json<AuditPage>),
    /// A parameter is malformed (the reason names it), or the credential was sent wrongly.
    #[oai(status = 400)]
    BadRequest(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// The caller is neither auditor nor admin, or the token lacks `mcp:audit`.
    #[oai(status = 403)]
    Forbidden(Json<AdminError>, #[oai(header = "WWW-Authenticate")] Option<String>),
    /// Over the rate limit.
    #[oai(status = 429)]
    TooManyRequests(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
    /// The audit trail cannot be read now.
    #[oai(status = 503)]
    Unavailable(Json<AdminError>, #[oai(header = "Retry-After")] Option<String>),
}

/// A refusal, before it takes an endpoint's response type.
enum Refused {
    BadRequest(Json<AdminError>, Option<String>),
    Unauthorized(Json<AdminError>, Option<String>),
    Forbidden(Json<AdminError>, Option<String>),
    TooManyRequests(Json<AdminError>, Option<String>),
    Unavailable(Json<AdminError>, Option<String>),
}

macro_rules! from_refused {
    ($response:ident) => {
        impl From<Refused> for $response {
            fn from(r: Refused) -> Self {
                match r {
                    Refused::BadRequest(b, h) => Self::BadRequest(b, h),
                    Refused::Unauthorized(b, h) => Self::Unauthorized(b, h),
                    Refused::Forbidden(b, h) => Self::Forbidden(b, h),
                    Refused::TooManyRequests(b, h) => Self::TooManyRequests(b, h),
                    Refused::Unavailable(b, h) => Self::Unavailable(b, h),
                }
            }
        }
    };
}
from_refused!(ExplainResponse);
from_refused!(AuditResponse);

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
    async fn explain(&self, req: &Request, body: Json<ExplainRequest>) -> ExplainResponse {
        let Some(state) = &self.state else {
            return ExplainResponse::Unavailable(error("administration is not enabled", "unavailable"), None);
        };
        let caller = match state.caller(req).await {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        let ExplainRequest { target, roles, scopes, claims } = body.0;
        let claims = match claims {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                let e = Failure::invalid("claims", "claims must be a JSON object");
                return refused(e, &state.origin.metadata_url(req)).into();
            }
        };
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
    /// Events oldest first, filtered by time range (`from` inclusive, `to` exclusive, RFC
    /// 3339), actor, action and outcome, in pages of `limit` (1-1000, default 100); pass
    /// `next_cursor` back as `cursor` for the next page. Each event carries its place in
    /// the hash chain. Needs role `auditor` or `admin` and scope `mcp:audit`; reading is
    /// itself audited.
    #[oai(path = "/admin/audit", method = "get", operation_id = "readAuditTrail")]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        req: &Request,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        actor: Query<Option<String>>,
        action: Query<Option<String>>,
        outcome: Query<Option<String>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> AuditResponse {
        let Some(state) = &self.state else {
            return AuditResponse::Unavailable(error("administration is not enabled", "unavailable"), None);
        };
        let caller = match state.caller(req).await {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        let request = AuditRequest {
            from: from.0,
            to: to.0,
            actor: actor.0,
            action: action.0,
            outcome: outcome.0,
            cursor: cursor.0,
            limit: limit.0.map(|l| l as usize),
        };
        match state.service.read_audit(&caller, request).await {
            Ok(answer) => match AuditPage::parse_from_json(Some(answer)) {
                Ok(page) => AuditResponse::Ok(Json(page)),
                Err(e) => AuditResponse::Unavailable(error(e.into_message(), "internal"), None),
            },
            Err(e) => refused(e, &state.origin.metadata_url(req)).into(),
        }
    }
}
