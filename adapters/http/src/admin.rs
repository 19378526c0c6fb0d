//! `/admin/*`: administrative endpoints, each behind the permission the application's
//! `ADMIN_ENDPOINTS` table names, authenticated like `/mcp`.
//!
//! - `POST /admin/authz/explain`: the authorization decision, and the rule that made it,
//!   for given roles and scopes (or a token's claims) and a tool, prompt or endpoint.

use std::sync::Arc;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use qudag_application::usecases::{AuthzExplainer, Pipeline, PipelineError, TargetKind, authz};
use qudag_domain::principal::{Claims, RolesClaim};
use qudag_domain::quota::Cost;
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

/// The decision.
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
    /// Authorization decisions.
    pub explainer: AuthzExplainer,
    /// Where tokens carry roles (for `claims`).
    pub roles_claim: RolesClaim,
    /// The external origin, for challenges.
    pub origin: PublicOrigin,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<(std::net::IpAddr, u8)>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").field("roles_claim", &self.roles_claim).finish_non_exhaustive()
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

    /// Authenticate, rate-limit and authorize `req` for `endpoint`.
    async fn admit(&self, state: &AdminState, req: &Request, endpoint: &str) -> Result<(), ExplainResponse> {
        let config = crate::mcp::McpHttpConfig {
            trusted_proxies: state.trusted_proxies.clone(),
            public_url: state.origin.configured.clone(),
            ..Default::default()
        };
        let ctx = crate::mcp::request_context(req, &config);
        let refuse = |e: PipelineError| refusal(e, &state.origin.metadata_url(req));
        let pipeline = &state.pipeline;
        let principal = pipeline.authenticate(&ctx).await.map_err(refuse)?;
        pipeline.admit(&ctx, &principal, Cost::ONE).await.map_err(refuse)?;
        let permission = authz::endpoint_permission(endpoint).unwrap_or(qudag_domain::rbac::Permission::Admin);
        pipeline.authorize(&ctx, &principal, endpoint, permission).await.map_err(refuse)?;
        Ok(())
    }
}

fn refusal(e: PipelineError, metadata_url: &str) -> ExplainResponse {
    let challenge = || {
        auth::oauth_error_data(&e)
            .and_then(|o| auth::challenge(&o, metadata_url))
            .and_then(|v| v.to_str().ok().map(str::to_owned))
    };
    match &e {
        PipelineError::Unauthenticated(t) => {
            let body = Json(AdminError {
                error: t.description().unwrap_or("an access token is required").to_owned(),
                reason: t.reason().to_owned(),
            });
            if auth::unauthenticated_status(t) == poem::http::StatusCode::BAD_REQUEST {
                ExplainResponse::BadRequest(body, challenge())
            } else {
                ExplainResponse::Unauthorized(body, challenge())
            }
        }
        PipelineError::Forbidden(d) => ExplainResponse::Forbidden(
            Json(AdminError { error: d.rule.clone(), reason: "forbidden".into() }),
            challenge(),
        ),
        PipelineError::RateLimited(d) => ExplainResponse::TooManyRequests(
            Json(AdminError { error: "rate limit exceeded".into(), reason: "rate_limited".into() }),
            d.retry_after.map(|r| (r.as_secs_f64().ceil() as u64).max(1).to_string()),
        ),
        other => {
            ExplainResponse::Unavailable(Json(AdminError { error: other.to_string(), reason: "unavailable".into() }))
        }
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
            return ExplainResponse::Unavailable(Json(AdminError {
                error: "administration is not enabled".into(),
                reason: "unavailable".into(),
            }));
        };
        if let Err(refused) = self.admit(state, req, "POST /admin/authz/explain").await {
            return refused;
        }
        let ExplainRequest { target, mut roles, mut scopes, claims } = body.0;
        if let Some(claims) = claims {
            let Some(map) = claims.as_object() else {
                return ExplainResponse::BadRequest(
                    Json(AdminError { error: "claims must be a JSON object".into(), reason: "bad_claims".into() }),
                    None,
                );
            };
            let parsed = Claims::from_json(map, &state.roles_claim);
            roles.extend(parsed.roles);
            scopes.extend(parsed.scopes);
        }
        let Some(x) = state.explainer.explain(&roles, &scopes, &target) else {
            return ExplainResponse::BadRequest(
                Json(AdminError {
                    error: format!("no tool, prompt or admin endpoint is called {target:?}"),
                    reason: "unknown_target".into(),
                }),
                None,
            );
        };
        let d = x.decision;
        ExplainResponse::Ok(Json(Explanation {
            target,
            kind: match x.kind {
                TargetKind::Tool => "tool",
                TargetKind::Prompt => "prompt",
                TargetKind::Endpoint => "endpoint",
            }
            .into(),
            allowed: d.allowed,
            permission: d.permission.as_str().into(),
            required_scope: d.required_scope.as_str().into(),
            granted_by: d.granted_by.map(|r| r.as_str().to_owned()),
            denied_by: d.denied_by.map(|r| match r {
                qudag_domain::rbac::Denial::Role => "role".to_owned(),
                qudag_domain::rbac::Denial::Scope => "scope".to_owned(),
            }),
            step_up_scopes: d.step_up_scopes,
            rule: d.rule,
            unknown_roles: x.unknown_roles,
        }))
    }
}
