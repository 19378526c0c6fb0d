//! The server's metrics, rendered in the Prometheus text exposition format (version 0.0.4)
//! by the http adapter at `/metrics`.
//!
//! A small hand-written registry rather than a metrics crate: the set of series is fixed
//! and small, and every label value comes from a bounded set (HTTP methods and routes the
//! server serves, MCP methods it knows, tool names from its catalog, reason codes), so
//! there is nothing for a general registry to add. Unknown methods, routes and tool names
//! collapse to `other`; no label ever carries a session id, user id or other unbounded
//! value. Histogram names, labels and buckets follow the OpenTelemetry semantic
//! conventions (`http.server.request.duration`, `mcp.server.operation.duration`) with the
//! dots turned into underscores, as the OpenTelemetry Prometheus exporter does.
//!
//! Plain counters are atomics; labelled series sit in a map behind a mutex held for one
//! map update.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Bucket bounds (seconds) the HTTP semantic conventions advise for
/// `http.server.request.duration`.
pub const HTTP_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Bucket bounds (seconds) the MCP semantic conventions advise for
/// `mcp.server.operation.duration`.
pub const MCP_BUCKETS: [f64; 14] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// MCP methods counted under their own name; anything else is `other`.
const MCP_METHODS: [&str; 22] = [
    "initialize",
    "ping",
    "server/discover",
    "completion/complete",
    "logging/setLevel",
    "prompts/get",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
    "tools/call",
    "tools/list",
    "tasks/get",
    "tasks/list",
    "tasks/cancel",
    "tasks/result",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/roots/list_changed",
];

/// HTTP methods counted under their own name; anything else is `_OTHER` (as the HTTP
/// semantic conventions say).
const HTTP_METHODS: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"];

/// The `mcp_method_name` label for `method`: the method itself when known, else `other`.
pub fn mcp_method_label(method: &str) -> &'static str {
    MCP_METHODS.iter().find(|m| **m == method).copied().unwrap_or("other")
}

/// The `http_request_method` label for `method`.
pub fn http_method_label(method: &str) -> &'static str {
    HTTP_METHODS.iter().find(|m| **m == method).copied().unwrap_or("_OTHER")
}

/// How a tool call ended, for `qudag_mcp_tool_calls_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// The short-term rate limit.
    Rate,
    /// The daily quota.
    Daily,
}

/// One histogram series: cumulative counts are computed at render time from per-bucket
/// counts.
#[derive(Debug, Clone)]
struct Histogram {
    /// Observations per bucket; the last slot is the `+Inf` overflow.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Self { buckets: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, bounds: &[f64], seconds: f64) {
        let slot = bounds.iter().position(|b| seconds <= *b).unwrap_or(bounds.len());
        self.buckets[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// A gauge read when `/metrics` is scraped.
type GaugeFn = Arc<dyn Fn() -> f64 + Send + Sync>;
type CountersFn = Arc<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    rate_limited: AtomicU64,
    daily_quota_exhausted: AtomicU64,
    limiter_errors: AtomicU64,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    backend_errors: Mutex<BTreeMap<&'static str, u64>>,
    http: Mutex<BTreeMap<(&'static str, &'static str, u16), Histogram>>,
    mcp: Mutex<BTreeMap<(&'static str, String), Histogram>>,
    tool_calls: Mutex<BTreeMap<(String, ToolOutcome), u64>>,
    sse_streams: AtomicI64,
    active_sessions: AtomicI64,
    gauges: Mutex<Vec<(&'static str, &'static str, GaugeFn)>>,
    counters: Mutex<Vec<(&'static str, &'static str, &'static str, CountersFn)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// A request was refused by `quota`.
    pub fn rate_limited(&self, quota: Quota) {
        match quota {
            Quota::Rate => &self.rate_limited,
            Quota::Daily => &self.daily_quota_exhausted,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// The limiter's backend failed a decision.
    pub fn limiter_error(&self) {
        self.limiter_errors.fetch_add(1, Ordering::Relaxed);
        self.backend_error("rate_limiter");
    }

    /// A credential was refused for `reason` (a stable reason code such as
    /// `missing_token` or `invalid_token`).
    pub fn auth_failure(&self, reason: &'static str) {
        *lock(&self.auth_failures).entry(reason).or_default() += 1;
    }

    /// A backend behind `component` (`token_verifier`, `rate_limiter`, `session_store`,
    /// `audit`, `event_bus`) failed.
    pub fn backend_error(&self, component: &'static str) {
        *lock(&self.backend_errors).entry(component).or_default() += 1;
    }

    /// An HTTP request finished: `method`, the route template it matched (a fixed string),
    /// the response status and how long it took.
    pub fn http_request(&self, method: &str, route: &'static str, status: u16, elapsed: Duration) {
        let key = (http_method_label(method), route, status);
        lock(&self.http)
            .entry(key)
            .or_insert_with(|| Histogram::new(&HTTP_BUCKETS))
            .observe(&HTTP_BUCKETS, elapsed.as_secs_f64());
    }

    /// An MCP request finished. `tool` is the tool's name for `tools/call` when the catalog
    /// knows it, `Some("other")` for an unknown tool, `None` for other methods.
    pub fn mcp_operation(&self, method: &str, tool: Option<&str>, elapsed: Duration) {
        let key = (mcp_method_label(method), tool.unwrap_or_default().to_owned());
        lock(&self.mcp)
            .entry(key)
            .or_insert_with(|| Histogram::new(&MCP_BUCKETS))
            .observe(&MCP_BUCKETS, elapsed.as_secs_f64());
    }

    /// A `tools/call` for `tool` (a catalog name, or `other`) ended with `outcome`.
    pub fn tool_call(&self, tool: &str, outcome: ToolOutcome) {
        *lock(&self.tool_calls).entry((tool.to_owned(), outcome)).or_default() += 1;
    }

    /// An SSE stream opened (`+1`) or closed (`-1`).
    pub fn sse_streams_add(&self, delta: i64) {
        self.sse_streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// The number of live sessions, as last counted.
    pub fn set_active_sessions(&self, sessions: usize) {
        self.active_sessions.store(i64::try_from(sessions).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// A gauge read by `read` at every scrape (for example a queue's depth). `name` must be
    /// a valid metric name not used by another series.
    pub fn register_gauge(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        lock(&self.gauges).push((name, help, Arc::new(read)));
    }

    /// A counter family kept elsewhere (for example by the TLS acceptor), read by `read` at
    /// every scrape: one series per `(value, count)` it returns, labelled `label="value"`
    /// (unlabelled when `label` is empty).
    /// `name` must be a valid metric name ending in `_total`, not used by another series.
    pub fn register_counters(
        &self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        read: impl Fn() -> Vec<(&'static str, u64)> + Send + Sync + 'static,
    ) {
        lock(&self.counters).push((name, help, label, Arc::new(read)));
    }

    /// Refusals so far by `quota`.
    pub fn rate_limited_total(&self, quota: Quota) -> u64 {
        match quota {
            Quota::Rate => self.rate_limited.load(Ordering::Relaxed),
            Quota::Daily => self.daily_quota_exhausted.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        header(&mut out, "qudag_rate_limit_rejections_total", "Requests refused by a rate limit or quota.", "counter");
        let _ = writeln!(
            out,
            "qudag_rate_limit_rejections_total{{quota=\"rate\"}} {}",
            self.rate_limited.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "qudag_rate_limit_rejections_total{{quota=\"daily\"}} {}",
            self.daily_quota_exhausted.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "qudag_rate_limiter_errors_total",
            "Rate-limit decisions the limiter's backend could not make.",
            "counter",
        );
        let _ = writeln!(out, "qudag_rate_limiter_errors_total {}", self.limiter_errors.load(Ordering::Relaxed));

        header(&mut out, "qudag_auth_failures_total", "Requests whose credential was refused, by reason.", "counter");
        for (reason, n) in lock(&self.auth_failures).iter() {
            let _ = writeln!(out, "qudag_auth_failures_total{} {n}", labels(&[("reason", reason)]));
        }
        header(
            &mut out,
            "qudag_backend_errors_total",
            "Calls to a backend (token issuer, Redis, PostgreSQL, audit sink) that failed, by component.",
            "counter",
        );
        for (component, n) in lock(&self.backend_errors).iter() {
            let _ = writeln!(out, "qudag_backend_errors_total{} {n}", labels(&[("component", component)]));
        }

        let name = "http_server_request_duration_seconds";
        header(&mut out, name, "Duration of HTTP server requests.", "histogram");
        for ((method, route, status), h) in lock(&self.http).iter() {
            let status = status.to_string();
            let l = [("http_request_method", *method), ("http_response_status_code", &status), ("http_route", route)];
            histogram(&mut out, name, &l, &HTTP_BUCKETS, h);
        }

        let name = "mcp_server_operation_duration_seconds";
        header(&mut out, name, "Duration of MCP requests as seen by the server.", "histogram");
        for ((method, tool), h) in lock(&self.mcp).iter() {
            if tool.is_empty() {
                histogram(&mut out, name, &[("mcp_method_name", method)], &MCP_BUCKETS, h);
            } else {
                histogram(&mut out, name, &[("gen_ai_tool_name", tool), ("mcp_method_name", method)], &MCP_BUCKETS, h);
            }
        }

        header(&mut out, "qudag_mcp_tool_calls_total", "MCP tool calls by tool and outcome.", "counter");
        for ((tool, outcome), n) in lock(&self.tool_calls).iter() {
            let l = labels(&[("gen_ai_tool_name", tool), ("outcome", outcome.as_str())]);
            let _ = writeln!(out, "qudag_mcp_tool_calls_total{l} {n}");
        }

        header(&mut out, "qudag_mcp_active_sessions", "Live stateful MCP sessions in the session store.", "gauge");
        let _ = writeln!(out, "qudag_mcp_active_sessions {}", self.active_sessions.load(Ordering::Relaxed));
        header(&mut out, "qudag_mcp_sse_streams", "SSE streams this node holds open.", "gauge");
        let _ = writeln!(out, "qudag_mcp_sse_streams {}", self.sse_streams.load(Ordering::Relaxed).max(0));
        for (name, help, read) in lock(&self.gauges).iter() {
            header(&mut out, name, help, "gauge");
            let _ = writeln!(out, "{name} {}", number(read()));
        }
        for (name, help, label, read) in lock(&self.counters).iter() {
            header(&mut out, name, help, "counter");
            for (value, n) in read() {
                let l = if label.is_empty() { String::new() } else { labels(&[(label, value)]) };
                let _ = writeln!(out, "{name}{l} {n}");
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", escape_help(help));
}

fn histogram(out: &mut String, name: &str, base: &[(&str, &str)], bounds: &[f64], h: &Histogram) {
    let mut cumulative = 0;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        let le = bounds.get(i).map_or_else(|| "+Inf".to_owned(), |b| number(*b));
        let mut l = base.to_vec();
        l.push(("le", &le));
        let _ = writeln!(out, "{name}_bucket{} {cumulative}", labels(&l));
    }
    let l = labels(base);
    let _ = writeln!(out, "{name}_sum{l} {}", number(h.sum));
    let _ = writeln!(out, "{name}_count{l} {}", h.count);
}

/// `{a="x",b="y"}`, values escaped as the text format requires; empty for no labels.
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
    format!("{{{}}}", inner.join(","))
}

/// Label values escape `\`, `"` and line feed.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// HELP text escapes `\` and line feed.
fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as the text format writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest form).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_prometheus_text_format() {
        let m = Metrics::default();
        m.rate_limited(Quota::Rate);
        m.rate_limited(Quota::Rate);
        m.rate_limited(Quota::Daily);
        m.limiter_error();
        m.auth_failure("missing_token");
        let text = m.render();
        assert!(text.contains("# TYPE qudag_rate_limit_rejections_total counter\n"));
        assert!(text.contains("qudag_rate_limit_rejections_total{quota=\"rate\"} 2\n"));
        assert!(text.contains("qudag_rate_limit_rejections_total{quota=\"daily\"} 1\n"));
        assert!(text.contains("qudag_rate_limiter_errors_total 1\n"));
        assert!(text.contains("qudag_auth_failures_total{reason=\"missing_token\"} 1\n"));
        assert!(text.contains("qudag_backend_errors_total{component=\"rate_limiter\"} 1\n"));
        assert_eq!(m.rate_limited_total(Quota::Rate), 2);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let m = Metrics::default();
        m.http_request("POST", "/mcp", 200, Duration::from_millis(3));
        m.http_request("POST", "/mcp", 200, Duration::from_millis(60));
        m.http_request("POST", "/mcp", 200, Duration::from_secs(20));
        let text = m.render();
        let l = "http_request_method=\"POST\",http_response_status_code=\"200\",http_route=\"/mcp\"";
        assert!(text.contains(&format!("http_server_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 1\n")));
        assert!(text.contains(&format!("http_server_request_duration_seconds_bucket{{{l},le=\"0.05\"}} 1\n")));
        assert!(text.contains(&format!("http_server_request_duration_seconds_bucket{{{l},le=\"0.075\"}} 2\n")));
        assert!(text.contains(&format!("http_server_request_duration_seconds_bucket{{{l},le=\"10\"}} 2\n")));
        assert!(text.contains(&format!("http_server_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3\n")));
        assert!(text.contains(&format!("http_server_request_duration_seconds_count{{{l}}} 3\n")));
        assert!(text.contains(&format!("http_server_request_duration_seconds_sum{{{l}}} 20.063")));
    }

    #[test]
    fn unknown_methods_collapse_and_tools_are_labelled() {
        let m = Metrics::default();
        m.http_request("BREW", "other", 405, Duration::ZERO);
        m.mcp_operation("x/unknown", None, Duration::ZERO);
        m.mcp_operation("tools/call", Some("qudag_status"), Duration::ZERO);
        m.tool_call("qudag_status", ToolOutcome::Denied);
        let text = m.render();
        assert!(text.contains("http_request_method=\"_OTHER\""));
        assert!(text.contains("mcp_server_operation_duration_seconds_count{mcp_method_name=\"other\"} 1\n"));
        assert!(text.contains(
            "mcp_server_operation_duration_seconds_count{gen_ai_tool_name=\"qudag_status\",mcp_method_name=\"tools/call\"} 1\n"
        ));
        assert!(text.contains("qudag_mcp_tool_calls_total{gen_ai_tool_name=\"qudag_status\",outcome=\"denied\"} 1\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), "{a=\"x\\\"y\\\\z\\nw\"}");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1.0), "1");
    }

    #[test]
    fn gauges_are_read_at_scrape_time() {
        let m = Metrics::default();
        let depth = Arc::new(AtomicU64::new(3));
        let d = depth.clone();
        m.register_gauge("qudag_audit_queue_depth", "Queued audit records.", move || d.load(Ordering::Relaxed) as f64);
        m.sse_streams_add(2);
        m.sse_streams_add(-1);
        m.set_active_sessions(4);
        assert!(m.render().contains("qudag_audit_queue_depth 3\n"));
        depth.store(7, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("# TYPE qudag_audit_queue_depth gauge\nqudag_audit_queue_depth 7\n"));
        assert!(text.contains("qudag_mcp_sse_streams 1\n"));
        assert!(text.contains("qudag_mcp_active_sessions 4\n"));
    }
}
