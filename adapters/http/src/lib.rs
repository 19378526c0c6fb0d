//! The QuDAG MCP server's inbound HTTP adapter, on poem and poem-openapi.
//!
//! - [`mcp`]: `/mcp`, MCP Streamable HTTP in both wire eras;
//! - [`admin`]: `/admin/*`; [`auth`]: credentials, challenges, RFC 9728 metadata;
//! - [`errors`]: every application error mapped to its status, JSON-RPC error and headers;
//! - [`health`]: `/health`, `/health/live`, `/health/ready` (an OpenAPI area);
//! - [`metrics`]: `/metrics`; [`security`]: security headers, CORS, DNS-rebinding checks;
//! - [`body`]: request bodies bounded in size and time on every route, while they are read;
//! - [`request_id`]: `X-Request-Id` on every request and response, and one tracing span
//!   per request;
//! - [`openapi`]: what the document says beyond the derives (empty parameters, enums from
//!   the domain, the bearer scheme) and `Allow` on every 405;
//! - [`server`]: the connection layer (accept loop, limits, TLS with rustls, HSTS) that
//!   serves the router;
//! - [`router`]: everything mounted together, with the OpenAPI document at
//!   `/openapi.json` and browsable docs at `/docs`.
//!
//! The adapter holds no business logic: handlers translate HTTP to use-case calls and
//! use-case results back to HTTP.
#![deny(missing_docs)]

pub mod admin;
pub mod auth;
pub mod body;
pub mod errors;
pub mod health;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod prometheus;
pub mod request_id;
pub mod security;
pub mod server;

use std::sync::Arc;

use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, Response, Route, get};
use poem_openapi::{OpenApi, OpenApiService};
use qudag_application::usecases::HealthService;

pub use request_id::{RequestId, RequestIdMiddleware};

/// The title of the OpenAPI document.
pub const API_TITLE: &str = "QuDAG MCP server";

/// What the HTTP handlers need from the application.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// Health and readiness.
    pub health: Arc<HealthService>,
    /// The server's version, shown in the OpenAPI document.
    pub version: String,
    /// The MCP endpoint, mounted at `/mcp`.
    pub mcp: Option<mcp::McpEndpoint>,
    /// The metrics every part counts into, rendered at `/metrics`.
    pub metrics: Arc<prometheus::PrometheusMetrics>,
    /// The RFC 9728 metadata (served when an issuer is set).
    pub oauth: auth::OAuthApi,
    /// The admin endpoints (documented always, served when set).
    pub admin: Option<admin::AdminState>,
    /// Which browser origins may call (CORS).
    pub cors: security::CorsPolicy,
    /// The most time until a response starts.
    pub request_timeout: std::time::Duration,
    /// How large and how slow request bodies may be, per route.
    pub body: body::BodyLimits,
}

impl HttpState {
    /// A state with health and version only (no MCP, no authentication, no admin).
    pub fn minimal(version: &str) -> Self {
        Self {
            health: Arc::new(HealthService::new(version, Vec::new())),
            version: version.to_owned(),
            mcp: None,
            metrics: Arc::default(),
            oauth: auth::OAuthApi { issuer: None, origin: auth::PublicOrigin::default() },
            admin: None,
            cors: security::CorsPolicy { allowed: Vec::new(), loopback: true },
            request_timeout: std::time::Duration::from_secs(120),
            body: body::BodyLimits::default(),
        }
    }
}

/// The OpenAPI areas, combined.
pub type Apis = (health::HealthApi, metrics::MetricsApi, auth::OAuthApi, admin::AdminApi);

/// The OpenAPI service over every documented area.
pub fn openapi_service(state: &HttpState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi::new(state.health.clone()),
            metrics::MetricsApi::new(state.metrics.clone(), state.mcp.as_ref().map(|m| m.engine().sessions().clone())),
            state.oauth.clone(),
            admin::AdminApi::new(state.admin.clone()),
        ),
        API_TITLE,
        &state.version,
    )
    .description(
        "Model Context Protocol server over Streamable HTTP giving AI agents the QuDAG \
             capabilities. This document covers the operational HTTP endpoints; the MCP \
             endpoint `/mcp` itself speaks JSON-RPC as the MCP specification defines. The admin \
             endpoints need an OAuth 2.0 access token (`bearerAuth`; \"Authorize\" on the docs \
             page). Every 405 names the allowed methods in `Allow`.",
    )
    .license("MIT OR Apache-2.0")
}

/// The OpenAPI document as pretty JSON, without binding a socket.
pub fn openapi_json(version: &str) -> String {
    openapi::document(&openapi_service(&HttpState::minimal(version)).spec())
}

/// The routes outside the document and the methods they serve (`/mcp` names its own).
const UNDOCUMENTED_ROUTES: [(&str, &str); 3] =
    [("/openapi.json", "GET, HEAD"), ("/docs", "GET, HEAD"), ("/docs/", "GET, HEAD")];

/// Every route, wrapped in the request-id (outermost), request-timing, security-header, CORS,
/// timeout, DNS-rebinding and body-limit middleware.
pub fn router(state: HttpState) -> impl Endpoint {
    let (cors, timeout, bodies) = (state.cors.clone(), state.request_timeout, state.body);
    let origin = state.oauth.origin.clone();
    let api = openapi_service(&state);
    let timing = metrics::HttpMetricsMiddleware(state.metrics.clone());
    let raw = api.spec();
    let document = openapi::document(&raw);
    // The docs page embeds the document: the same one `/openapi.json` serves.
    let page = api.swagger_ui_html().replacen(&raw, &document, 1);
    let spec = make_sync(move |_| Response::builder().content_type("application/json").body(document.clone()));
    let docs = make_sync(move |_| Html(page.clone()));
    let allow = openapi::allowed_methods(&Apis::meta(), &UNDOCUMENTED_ROUTES);
    let mut route = Route::new().at("/openapi.json", get(spec)).nest("/docs", Route::new().at("/", get(docs)));
    if let Some(mcp) = state.mcp {
        route = route.at("/mcp", mcp);
    }
    route
        .nest("/", api)
        .with(openapi::AllowOn405(Arc::new(allow)))
        .with(body::BodyLimit(bodies, origin))
        .with(security::RebindingGuard(cors.clone()))
        .with(security::RequestTimeout(timeout))
        .with(security::Cors(cors))
        .with(security::SecurityHeaders)
        .with(timing)
        .with(RequestIdMiddleware)
}

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;
    use poem::test::TestClient;

    use super::*;

    #[tokio::test]
    async fn openapi_document_lists_the_health_endpoints() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json("1.2.3")).unwrap();
        assert_eq!(doc["info"]["title"], API_TITLE);
        assert_eq!(doc["info"]["version"], "1.2.3");
        for path in [
            "/health",
            "/health/live",
            "/health/ready",
            "/metrics",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
        }
        assert!(doc["paths"]["/admin/authz/explain"]["post"].is_object());
    }

    #[tokio::test]
    async fn spec_and_docs_are_served() {
        let state = HttpState::minimal("1.2.3");
        let cli = TestClient::new(router(state));
        let resp = cli.get("/openapi.json").send().await;
        resp.assert_status_is_ok();
        let served: serde_json::Value = serde_json::from_str(&resp.0.into_body().into_string().await.unwrap()).unwrap();
        let generated: serde_json::Value = serde_json::from_str(&openapi_json("1.2.3")).unwrap();
        assert_eq!(served, generated);

        let resp = cli.get("/docs").send().await;
        resp.assert_status_is_ok();
        let html = resp.0.into_body().into_string().await.unwrap();
        assert!(html.contains("swagger-ui"), "docs page should render Swagger UI");

        let resp = cli.get("/no-such-path").send().await;
        resp.assert_status(StatusCode::NOT_FOUND);
    }

    async fn json(resp: poem::test::TestResponse) -> serde_json::Value {
        serde_json::from_str(&resp.0.into_body().into_string().await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn admin_routes_refuse_rebinding_hosts_and_origins_like_mcp() {
        let cli = TestClient::new(router(HttpState::minimal("1.2.3")));
        for (name, value) in
            [("host", "evil.example"), ("host", "evil.example:3000"), ("origin", "http://evil.example")]
        {
            let resp = cli.get("/admin/audit").header(name, value).send().await;
            resp.assert_status(StatusCode::FORBIDDEN);
            let body = json(resp).await;
            assert_eq!(body["reason"], "forbidden_origin", "{name}: {body}");
            let resp = cli.post("/admin/authz/explain").header(name, value).body("{}").send().await;
            resp.assert_status(StatusCode::FORBIDDEN);
        }
        // Loopback hosts and origins pass the guard (administration is off in this state).
        let resp = cli.get("/admin/audit").header("host", "127.0.0.1:3000").header("origin", "http://localhost:3000");
        resp.send().await.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        // Other routes are not guarded.
        cli.get("/health/live").header("host", "evil.example").send().await.assert_status_is_ok();
        // An HTTP/2 request names its host in the URI, without a Host header.
        let endpoint = router(HttpState::minimal("1.2.3"));
        let h2 = |uri: &str| poem::Request::builder().version(poem::http::Version::HTTP_2).uri_str(uri).finish();
        let resp = endpoint.get_response(h2("http://evil.example/admin/audit")).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let resp = endpoint.get_response(h2("http://127.0.0.1:3000/admin/audit")).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn admin_bodies_over_their_limit_get_413_in_the_admin_error_shape() {
        let cli = TestClient::new(router(HttpState::minimal("1.2.3")));
        let resp = cli
            .post("/admin/authz/explain")
            .content_type("application/json")
            .body(format!("{{\"target\": \"{}\"}}", "x".repeat(70_000)))
            .send()
            .await;
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        let body = json(resp).await;
        assert_eq!(body["reason"], "payload_too_large", "{body}");
        // Under the limit, the endpoint answers as before.
        let resp = cli.post("/admin/authz/explain").content_type("application/json").body("{}").send().await;
        assert_eq!(json(resp).await["reason"], "bad_body");
    }
}
