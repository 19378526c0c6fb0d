//! `Metrics`: what the server counts and times, said in the core's words.
//!
//! The core records through this port only; how the numbers are kept and exposed is an
//! adapter's business, so no exposition format, registry or metrics library appears here.
//! Implementations: `PrometheusMetrics` in the http adapter (kept by the
//! `prometheus-client` crate and rendered at `/metrics`), [`NoopMetrics`] here for a
//! pipeline built without one, and `MockMetrics` (testkit) for tests that check what is
//! recorded.
//!
//! Recording never fails and never blocks for long: it sits on every request's path, so
//! an implementation that cannot record drops the observation rather than delay or fail
//! the request. Every label an implementation derives from these calls must come from a
//! bounded set: an MCP method outside [`crate::mcp::wire::METHODS`] and an HTTP method
//! outside the standard nine must collapse to one value, so a caller cannot mint series.

use std::time::Duration;

/// How a tool call ended, for `qudag_mcp_tool_calls_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ToolOutcome {
    /// The tool ran and returned a result.
    Success,
    /// The tool ran and reported an error (`isError`), or its input was refused.
    ToolError,
    /// Authorization refused the call.
    Denied,
    /// A rate limit or quota refused the call.
    RateLimited,
    /// A backend needed for the call was unavailable.
    Unavailable,
    /// The call failed in some other way (unknown tool, protocol error).
    Error,
}

impl ToolOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ToolError => "tool_error",
            Self::Denied => "denied",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Error => "error",
        }
    }
}

/// Which quota refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quota {
    /// The short-term rate limit.
    Rate,
    /// The daily quota.
    Daily,
    /// An address's failed-authentication allowance.
    AuthFailures,
}

impl Quota {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Daily => "daily",
            Self::AuthFailures => "auth_failures",
        }
    }
}

/// The server's counters, histograms and gauges.
///
/// Every method records one observation and returns at once; none can fail (see the
/// module documentation). Counts are this node's: summing across nodes is the reader's job.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
pub trait Metrics: Send + Sync + 'static {
    /// A request was refused by `quota` (`qudag_rate_limit_rejections_total`).
    fn rate_limited(&self, quota: Quota);

    /// The limiter's backend failed a decision (`qudag_rate_limiter_errors_total`). This
    /// also counts one backend error for the component `rate_limiter`, so callers do not
    /// record that themselves.
    fn limiter_error(&self);

    /// A credential was refused for `reason`, a stable reason code such as `missing_token`
    /// or `invalid_token` (`qudag_auth_failures_total`).
    fn auth_failure(&self, reason: &'static str);

    /// A backend behind `component` (`token_verifier`, `rate_limiter`, `session_store`,
    /// `audit`, `audit_retention`, `event_bus`) failed (`qudag_backend_errors_total`).
    fn backend_error(&self, component: &'static str);

    /// An HTTP request finished (`http_server_request_duration_seconds`): its `method` as
    /// received (collapsed to `_OTHER` outside the standard nine), the route template it
    /// matched (a fixed string, never the raw path), the response status and how long it
    /// took.
    fn http_request(&self, method: &str, route: &'static str, status: u16, elapsed: Duration);

    /// An MCP request finished (`mcp_server_operation_duration_seconds`). `method` is as
    /// received (collapsed to `other` when the server does not know it); `tool` is the
    /// tool's name for `tools/call` when the catalog knows it, `Some("other")` for an
    /// unknown tool, `None` (or an empty name) for other methods.
    #[allow(clippy::needless_lifetimes, reason = "mockall cannot mock a reference elided inside `Option`")]
    fn mcp_operation<'a>(&self, method: &str, tool: Option<&'a str>, elapsed: Duration);

    /// A `tools/call` for `tool` (a catalog name, or `other`) ended with `outcome`
    /// (`qudag_mcp_tool_calls_total`).
    fn tool_call(&self, tool: &str, outcome: ToolOutcome);

    /// An SSE stream opened (`+1`) or closed (`-1`) (`qudag_mcp_sse_streams`). Every
    /// opening is matched by exactly one closing; the gauge never reads below zero.
    fn sse_streams_add(&self, delta: i64);

    /// The number of live sessions, as last counted (`qudag_mcp_active_sessions`).
    fn set_active_sessions(&self, sessions: usize);
}

/// Metrics that record nothing: what a pipeline counts into until it is given real ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopMetrics;

impl Metrics for NoopMetrics {
    fn rate_limited(&self, _: Quota) {}
    fn limiter_error(&self) {}
    fn auth_failure(&self, _: &'static str) {}
    fn backend_error(&self, _: &'static str) {}
    fn http_request(&self, _: &str, _: &'static str, _: u16, _: Duration) {}
    fn mcp_operation(&self, _: &str, _: Option<&str>, _: Duration) {}
    fn tool_call(&self, _: &str, _: ToolOutcome) {}
    fn sse_streams_add(&self, _: i64) {}
    fn set_active_sessions(&self, _: usize) {}
}
