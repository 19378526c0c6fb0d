//! `/metrics`: the server's metrics in the Prometheus text exposition format (rendered by
//! [`PrometheusMetrics`]), and the middleware that times every HTTP request into
//! `http_server_request_duration_seconds` through the [`Metrics`] port.

use std::sync::Arc;
use std::time::Instant;

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi, Tags};
use qudag_application::ports::Metrics;
use qudag_application::usecases::SessionService;

use crate::prometheus::PrometheusMetrics;

#[derive(Tags)]
enum ApiTags {
    /// Prometheus metrics.
    Metrics,
}

/// A metrics answer.
#[derive(ApiResponse, Debug)]
pub enum MetricsResponse {
    /// The metrics, in the Prometheus text format (version 0.0.4).
    #[oai(status = 200, content_type = "text/plain; version=0.0.4; charset=utf-8")]
    Ok(PlainText<String>),
}

/// The metrics endpoint.
#[derive(Debug)]
pub struct MetricsApi {
    metrics: Arc<PrometheusMetrics>,
    sessions: Option<Arc<SessionService>>,
}

impl MetricsApi {
    /// An endpoint rendering `metrics`, counting live sessions in `sessions` at each scrape.
    pub fn new(metrics: Arc<PrometheusMetrics>, sessions: Option<Arc<SessionService>>) -> Self {
        Self { metrics, sessions }
    }
}

#[OpenApi(tag = "ApiTags::Metrics")]
impl MetricsApi {
    /// Prometheus metrics
    ///
    /// HTTP request durations by method, route and status; MCP operation durations by method
    /// and tool; tool calls by outcome; authentication failures by reason; rate-limit
    /// rejections; backend errors; active sessions, open SSE streams and the audit queue's
    /// depth. docs/observability.md lists every series.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> MetricsResponse {
        if let Some(sessions) = &self.sessions {
            match sessions.count().await {
                Ok(n) => self.metrics.set_active_sessions(n),
                Err(e) => {
                    self.metrics.backend_error("session_store");
                    tracing::warn!(error = %e, "Cannot count sessions for /metrics");
                }
            }
        }
        MetricsResponse::Ok(PlainText(self.metrics.render()))
    }
}

/// The `http.route` of a request path: the route template it matches, or `other` (so
/// scanners probing random paths cannot mint label values).
pub fn route_of(path: &str) -> &'static str {
    const ROUTES: [&str; 11] = [
        "/mcp",
        "/metrics",
        "/health",
        "/health/live",
        "/health/ready",
        "/openapi.json",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/admin/authz/explain",
        "/admin/audit",
        "/docs",
    ];
    if let Some(route) = ROUTES.iter().find(|r| **r == path) {
        return route;
    }
    if path.starts_with("/docs/") { "/docs" } else { "other" }
}

/// Middleware timing every request into `http_server_request_duration_seconds`.
#[derive(Clone)]
pub struct HttpMetricsMiddleware(pub Arc<dyn Metrics>);

impl std::fmt::Debug for HttpMetricsMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HttpMetricsMiddleware").finish_non_exhaustive()
    }
}

impl<E: Endpoint> Middleware<E> for HttpMetricsMiddleware {
    type Output = HttpMetricsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HttpMetricsEndpoint { inner: ep, metrics: self.0.clone() }
    }
}

/// The endpoint [`HttpMetricsMiddleware`] produces.
pub struct HttpMetricsEndpoint<E> {
    inner: E,
    metrics: Arc<dyn Metrics>,
}

impl<E: std::fmt::Debug> std::fmt::Debug for HttpMetricsEndpoint<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetricsEndpoint").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<E: Endpoint> Endpoint for HttpMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let method = req.method().clone();
        let route = route_of(req.uri().path());
        tracing::Span::current().record("http.route", route);
        let started = Instant::now();
        let resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        // For an SSE response this is the time to the response head, as the semantic
        // conventions measure a server request up to the response being sent.
        self.metrics.http_request(method.as_str(), route, resp.status().as_u16(), started.elapsed());
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_bounded_routes() {
        assert_eq!(route_of("/mcp"), "/mcp");
        assert_eq!(route_of("/docs/index.css"), "/docs");
        assert_eq!(route_of("/wp-admin/login.php"), "other");
        assert_eq!(route_of("/mcp/extra"), "other");
    }
}
