//! `/admin/*`: administrative endpoints. Each is an application operation run through the
//! request pipeline — authenticated, rate-limited, authorized by the permission the
//! application's `ADMIN_ENDPOINTS` table names, and audited — like a tool call.
//!
//! - `POST /admin/authz/explain`: the authorization decision, and the rule that made it,
//!   for given roles and scopes (or a token's claims) and a tool, prompt or endpoint.
//! - `GET /admin/audit`: the audit trail, filtered and paged (roles auditor and admin).

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use qudag_application::usecases::{
    AUDIT_ENDPOINT, AuditReader, AuthzExplainer, EXPLAIN_ENDPOINT, OperationError, Pipeline, PipelineError,
};
use serde_json::Value;

use crate::auth::{self, PublicOrigin};

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
    Unavailable(Json<AdminError>),
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
    Unavailable(Json<AdminError>),
}

/// A refusal by the pipeline, before it takes an endpoint's response type.
enum Refused {
    BadRequest(Json<AdminError>, Option<String>),
    Unauthorized(Json<AdminError>, Option<String>),
    Forbidden(Json<AdminError>, Option<String>),
    TooManyRequests(Json<AdminError>, Option<String>),
    Unavailable(Json<AdminError>),
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
                    Refused::Unavailable(b) => Self::Unavailable(b),
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
    /// Authentication, rate limits, authorization, audit.
    pub pipeline: Arc<Pipeline>,
    /// Authorization decisions (the explain operation).
    pub explainer: AuthzExplainer,
    /// The audit trail (the audit operation).
    pub audit: AuditReader,
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

fn refusal(e: PipelineError, metadata_url: &str) -> Refused {
    let challenge = || {
        auth::oauth_error_data(&e)
            .and_then(|o| auth::challenge(&o, metadata_url))
            .and_then(|v| v.to_str().ok().map(str::to_owned))
    };
    match &e {
        PipelineError::Unauthenticated(t) => {
            let body = error(t.description().unwrap_or("an access token is required"), t.reason());
            if auth::unauthenticated_status(t) == poem::http::StatusCode::BAD_REQUEST {
                Refused::BadRequest(body, challenge())
            } else {
                Refused::Unauthorized(body, challenge())
            }
        }
        PipelineError::Forbidden(d) => Refused::Forbidden(error(d.rule.clone(), "forbidden"), challenge()),
        PipelineError::RateLimited(d) => Refused::TooManyRequests(
            error("rate limit exceeded", "rate_limited"),
            d.retry_after.map(|r| (r.as_secs_f64().ceil() as u64).max(1).to_string()),
        ),
        PipelineError::Operation(OperationError::InvalidArgument { argument, message }) => {
            Refused::BadRequest(error(message.clone(), &format!("bad_{argument}")), None)
        }
        other => Refused::Unavailable(error(other.to_string(), "unavailable")),
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
            return ExplainResponse::Unavailable(error("administration is not enabled", "unavailable"));
        };
        let ctx = auth::request_context(req, &state.origin);
        let input = body.0.to_json().unwrap_or(Value::Null);
        match state.pipeline.handle(&ctx, &state.explainer, EXPLAIN_ENDPOINT, input).await {
            Ok(answer) => match Explanation::parse_from_json(Some(answer)) {
                Ok(x) => ExplainResponse::Ok(Json(x)),
                Err(e) => ExplainResponse::Unavailable(error(e.into_message(), "internal")),
            },
            Err(e) => refusal(e, &state.origin.metadata_url(req)).into(),
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
            return AuditResponse::Unavailable(error("administration is not enabled", "unavailable"));
        };
        let ctx = auth::request_context(req, &state.origin);
        let input = serde_json::json!({
            "from": from.0, "to": to.0, "actor": actor.0, "action": action.0,
            "outcome": outcome.0, "cursor": cursor.0, "limit": limit.0,
        });
        match state.pipeline.handle(&ctx, &state.audit, AUDIT_ENDPOINT, input).await {
            Ok(answer) => match AuditPage::parse_from_json(Some(answer)) {
                Ok(page) => AuditResponse::Ok(Json(page)),
                Err(e) => AuditResponse::Unavailable(error(e.into_message(), "internal")),
            },
            Err(e) => refusal(e, &state.origin.metadata_url(req)).into(),
        }
    }
}
