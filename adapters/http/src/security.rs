//! Browser-facing protections on every route: security headers, and CORS for the origins
//! `QUDAG_CORS_ORIGINS` allows.
//!
//! - [`SecurityHeaders`]: `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: no-referrer`, and a Content-Security-Policy that allows nothing for API
//!   responses and what the Swagger UI page needs under `/docs`.
//! - [`Cors`]: answers preflights (`OPTIONS` with `Access-Control-Request-Method`) — 204 with
//!   the allowed methods and headers for an allowed origin, 403 for any other — and marks
//!   responses to allowed origins with `Access-Control-Allow-Origin` and the headers a
//!   browser client may read. A disallowed origin gets no CORS headers, so browsers withhold
//!   the response.
//! - [`RebindingGuard`]: DNS-rebinding protection on `/mcp` and `/admin/*`: a disallowed
//!   `Origin`, or a non-loopback `Host` on a loopback-bound server, gets 403.

use poem::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// The policy for API responses: nothing may load, nothing may frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The policy for the Swagger UI page under `/docs`: its inline script and style (the page
/// is one self-contained document), images from data URLs, and calls back to this origin
/// for "Try it out". Nothing else loads and nothing may frame it.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// Adds the security headers to every response (without overriding one a handler set).
#[derive(Clone, Copy, Debug, Default)]
pub struct SecurityHeaders;

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        SecurityHeadersEndpoint { inner }
    }
}

/// [`SecurityHeaders`] around an endpoint.
#[derive(Debug)]
pub struct SecurityHeadersEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let docs = req.uri().path() == "/docs" || req.uri().path().starts_with("/docs/");
        let mut response = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let headers = response.headers_mut();
        let csp = if docs { DOCS_CSP } else { API_CSP };
        for (name, value) in [
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("content-security-policy", csp),
        ] {
            if !headers.contains_key(name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
        Ok(response)
    }
}

/// Which browser origins may call the server.
#[derive(Clone, Debug, Default)]
pub struct CorsPolicy {
    /// Exact origins (`https://app.example.com`), or `*` for any.
    pub allowed: Vec<String>,
    /// Whether loopback origins are allowed too (the server is bound to loopback).
    pub loopback: bool,
}

impl CorsPolicy {
    /// Whether `origin` may call.
    pub fn allows(&self, origin: &str) -> bool {
        origin_allowed(&self.allowed, self.loopback, origin)
    }
}

/// Whether `origin` is in `allowed` (or `allowed` has `*`), or is a loopback origin while
/// `loopback` is set.
pub fn origin_allowed(allowed: &[String], loopback: bool, origin: &str) -> bool {
    allowed.iter().any(|o| o == origin || o == "*") || (loopback && is_loopback_origin(origin))
}

/// Whether `origin` is an `http(s)` origin on a loopback host.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    is_loopback_host(rest)
}

/// Whether a `Host` value (name, optional port) names loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a request to `/mcp` or `/admin/*` is refused as a possible DNS-rebinding attack
/// (2025-11-25 basic/transports, "Security Warning"), if it is: an `Origin` that is present
/// and not allowed, or, on a loopback-bound server, a `Host` (an HTTP/2 request's
/// `:authority` when it has no `Host`) that does not name loopback.
pub fn rebinding_refusal(policy: &CorsPolicy, headers: &HeaderMap, authority: Option<&str>) -> Option<String> {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::trim);
    if let Some(origin) = text(header::ORIGIN)
        && !policy.allows(origin)
    {
        return Some(format!("origin {origin} is not allowed"));
    }
    if policy.loopback
        && let Some(host) = text(header::HOST).or(authority)
        && !is_loopback_host(host)
    {
        return Some(format!("host {host} is not served here"));
    }
    None
}

/// DNS-rebinding protection on `/mcp` and `/admin/*`: a request [`rebinding_refusal`]
/// refuses gets 403 before anything else is done with it — on `/mcp` as a JSON-RPC error,
/// on `/admin/*` in the admin endpoints' error shape (reason `forbidden_origin`). Other
/// routes (health, metrics, metadata, docs) are readable by any page, as before.
#[derive(Clone, Debug)]
pub struct RebindingGuard(pub CorsPolicy);

impl<E: Endpoint> Middleware<E> for RebindingGuard {
    type Output = RebindingGuardEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RebindingGuardEndpoint { inner, policy: self.0.clone() }
    }
}

/// [`RebindingGuard`] around an endpoint.
#[derive(Debug)]
pub struct RebindingGuardEndpoint<E> {
    inner: E,
    policy: CorsPolicy,
}

impl<E: Endpoint> Endpoint for RebindingGuardEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let path = req.uri().path();
        let mcp = path == "/mcp" || path.starts_with("/mcp/");
        if (mcp || path.starts_with("/admin/"))
            && let Some(reason) =
                rebinding_refusal(&self.policy, req.headers(), req.uri().authority().map(|a| a.as_str()))
        {
            return Ok(if mcp {
                crate::errors::rpc_error(
                    StatusCode::FORBIDDEN,
                    None,
                    rmcp::model::ErrorData::invalid_request(reason, None),
                )
            } else {
                Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .content_type("application/json; charset=utf-8")
                    .body(serde_json::json!({"error": reason, "reason": "forbidden_origin"}).to_string())
            });
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Methods a browser may use.
const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// Request headers a browser may send (plus any `Mcp-Param-*`).
const ALLOW_HEADERS: [&str; 12] = [
    "accept",
    "authorization",
    "content-type",
    "dpop",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
    "traceparent",
    "tracestate",
    "x-request-id",
];
/// Response headers a browser client may read.
const EXPOSE_HEADERS: &str = "mcp-session-id, www-authenticate, x-request-id, retry-after, ratelimit, ratelimit-policy";
/// How long a browser may cache a preflight, in seconds.
const MAX_AGE: &str = "600";

/// The CORS middleware for `policy`.
#[derive(Clone, Debug)]
pub struct Cors(pub CorsPolicy);

impl<E: Endpoint> Middleware<E> for Cors {
    type Output = CorsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CorsEndpoint { inner, policy: self.0.clone() }
    }
}

/// [`Cors`] around an endpoint.
#[derive(Debug)]
pub struct CorsEndpoint<E> {
    inner: E,
    policy: CorsPolicy,
}

/// The requested headers, when every one is allowed; else the first that is not.
fn requested_headers(headers: &HeaderMap) -> std::result::Result<String, String> {
    let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok()) else {
        return Ok(String::new());
    };
    let mut granted = Vec::new();
    for name in asked.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()) {
        if !(ALLOW_HEADERS.contains(&name.as_str()) || name.starts_with("mcp-param-")) {
            return Err(name);
        }
        granted.push(name);
    }
    Ok(granted.join(", "))
}

fn refuse(reason: String) -> Response {
    Response::builder().status(StatusCode::FORBIDDEN).content_type("text/plain; charset=utf-8").body(reason)
}

impl<E: Endpoint> Endpoint for CorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let preflight =
            req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            let Some(origin) = origin.filter(|o| self.policy.allows(o)) else {
                return Ok(refuse("CORS preflight refused: the origin is not allowed (QUDAG_CORS_ORIGINS)".into()));
            };
            let method = req
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !matches!(method, "GET" | "POST" | "DELETE") {
                return Ok(refuse(format!("CORS preflight refused: method {method} is not allowed")));
            }
            let allow_headers = match requested_headers(req.headers()) {
                Ok(h) => h,
                Err(name) => return Ok(refuse(format!("CORS preflight refused: header {name} is not allowed"))),
            };
            let mut response = Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS)
                .header(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE)
                .header(header::VARY, "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
                .finish();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&origin) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
            if let Ok(value) = HeaderValue::from_str(&allow_headers)
                && !allow_headers.is_empty()
            {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
            }
            return Ok(response);
        }
        let mut response = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin.filter(|o| self.policy.allows(o))
            && let Ok(value) = HeaderValue::from_str(&origin)
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        }
        Ok(response)
    }
}

/// Bounds the time until a response starts: a request still unanswered after it (a body
/// that never finishes arriving, a handler that never returns) gets 503 and its work is
/// dropped. Streams are not cut: once an SSE response has started, it runs on.
#[derive(Clone, Copy, Debug)]
pub struct RequestTimeout(pub std::time::Duration);

impl<E: Endpoint> Middleware<E> for RequestTimeout {
    type Output = RequestTimeoutEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequestTimeoutEndpoint { inner, limit: self.0 }
    }
}

/// [`RequestTimeout`] around an endpoint.
#[derive(Debug)]
pub struct RequestTimeoutEndpoint<E> {
    inner: E,
    limit: std::time::Duration,
}

impl<E: Endpoint> Endpoint for RequestTimeoutEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let path = req.uri().path().to_owned();
        match tokio::time::timeout(self.limit, self.inner.call(req)).await {
            Ok(Ok(r)) => Ok(r.into_response()),
            Ok(Err(e)) => Ok(e.into_response()),
            Err(_) => {
                tracing::warn!(path, limit_secs = self.limit.as_secs_f64(), "Request timed out");
                Ok(Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .content_type("text/plain; charset=utf-8")
                    .body(format!(
                        "the request was not answered within {} s (QUDAG_REQUEST_TIMEOUT_SECS)",
                        self.limit.as_secs()
                    )))
            }
        }
    }
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
