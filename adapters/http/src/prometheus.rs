//! `PrometheusMetrics`: the [`Metrics`] port kept by the `prometheus-client` crate and
//! rendered at `/metrics` in the Prometheus text exposition format, version 0.0.4.
//!
//! It lives in the http adapter, next to the endpoint that serves it, rather than in a
//! crate of its own: a pull-model registry is only ever read by a scrape of `/metrics`, and
//! its exposition format and content type are that endpoint's answer. The core records
//! through the port and never sees the registry; the bootstrap builds this adapter, hands
//! it to the core as `Arc<dyn Metrics>` and registers the gauges and counters that other
//! parts keep themselves (the audit queue's depth, the TLS acceptor's counts), read at
//! every scrape.
//!
//! Every label value comes from a bounded set: HTTP methods outside the standard nine are
//! `_OTHER` (as the HTTP semantic conventions say), MCP methods outside
//! [`wire::METHODS`] are `other`, routes and tool names are fixed by their callers, and no
//! label ever carries a session id, user id or other unbounded value. Histogram names,
//! labels and buckets follow the OpenTelemetry semantic conventions
//! (`http.server.request.duration`, `mcp.server.operation.duration`) with the dots turned
//! into underscores, as the OpenTelemetry Prometheus exporter does.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use qudag_application::mcp::wire;
use qudag_application::ports::metrics::{Metrics, Quota, ToolOutcome};

/// Bucket bounds (seconds) the HTTP semantic conventions advise for
/// `http.server.request.duration`.
pub const HTTP_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Bucket bounds (seconds) the MCP semantic conventions advise for
/// `mcp.server.operation.duration`.
pub const MCP_BUCKETS: [f64; 14] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// HTTP methods counted under their own name; anything else is `_OTHER`.
const HTTP_METHODS: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"];

/// The `http_request_method` label for `method`.
pub fn http_method_label(method: &str) -> &'static str {
    HTTP_METHODS.iter().find(|m| **m == method).copied().unwrap_or("_OTHER")
}

/// The `mcp_method_name` label for `method`: the method itself when the server knows it,
/// else `other`.
pub fn mcp_method_label(method: &str) -> &'static str {
    wire::method_name(method).unwrap_or("other")
}

/// One fixed label, such as `quota="rate"`.
type OneLabel = [(&'static str, &'static str); 1];

/// Labels of `http_server_request_duration_seconds`, in the order they are written.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct HttpLabels {
    method: &'static str,
    status: u16,
    route: &'static str,
}

impl EncodeLabelSet for HttpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        ("http_request_method", self.method).encode(encoder.encode_label())?;
        ("http_response_status_code", self.status).encode(encoder.encode_label())?;
        ("http_route", self.route).encode(encoder.encode_label())
    }
}

/// Labels of `mcp_server_operation_duration_seconds`: the tool only for `tools/call`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct McpLabels {
    method: &'static str,
    tool: Option<String>,
}

impl EncodeLabelSet for McpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        if let Some(tool) = &self.tool {
            ("gen_ai_tool_name", tool.as_str()).encode(encoder.encode_label())?;
        }
        ("mcp_method_name", self.method).encode(encoder.encode_label())
    }
}

/// Labels of `qudag_mcp_tool_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ToolLabels {
    tool: String,
    outcome: ToolOutcome,
}

impl EncodeLabelSet for ToolLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        ("gen_ai_tool_name", self.tool.as_str()).encode(encoder.encode_label())?;
        ("outcome", self.outcome.as_str()).encode(encoder.encode_label())
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

fn mcp_histogram() -> Histogram {
    Histogram::new(MCP_BUCKETS)
}

/// The server's metrics in a `prometheus-client` registry.
#[derive(Debug)]
pub struct PrometheusMetrics {
    rate_limited: Family<OneLabel, Counter>,
    limiter_errors: Counter,
    auth_failures: Family<OneLabel, Counter>,
    backend_errors: Family<OneLabel, Counter>,
    http: HistogramFamily<HttpLabels>,
    mcp: HistogramFamily<McpLabels>,
    tool_calls: Family<ToolLabels, Counter>,
    active_sessions: Gauge,
    sse_streams: Arc<AtomicI64>,
    /// Behind a lock only so gauges and counters kept elsewhere can join after start-up;
    /// recording never takes it, a scrape does.
    registry: Mutex<Registry>,
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Register `metric` under `name` and `help` as the exposition writes them: the library
/// adds a counter's `_total` and the help's closing full stop itself.
fn register(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    let name = name.strip_suffix("_total").unwrap_or(name);
    let help = help.strip_suffix('.').unwrap_or(help);
    registry.register(name, help, metric);
}

impl PrometheusMetrics {
    /// Every series the server keeps, at zero.
    pub fn new() -> Self {
        let metrics = Self {
            rate_limited: Family::default(),
            limiter_errors: Counter::default(),
            auth_failures: Family::default(),
            backend_errors: Family::default(),
            http: Family::new_with_constructor(http_histogram),
            mcp: Family::new_with_constructor(mcp_histogram),
            tool_calls: Family::default(),
            active_sessions: Gauge::default(),
            sse_streams: Arc::default(),
            registry: Mutex::new(Registry::default()),
        };
        // Every quota is always present, so a node that refused nothing reads 0.
        for quota in [Quota::Rate, Quota::Daily, Quota::AuthFailures] {
            drop(metrics.rate_limited.get_or_create(&[("quota", quota.as_str())]));
        }
        {
            let mut r = metrics.lock_registry();
            let help = "Requests refused by a rate limit or quota.";
            register(&mut r, "qudag_rate_limit_rejections_total", help, metrics.rate_limited.clone());
            let help = "Rate-limit decisions the limiter's backend could not make.";
            register(&mut r, "qudag_rate_limiter_errors_total", help, metrics.limiter_errors.clone());
            let help = "Requests whose credential was refused, by reason.";
            register(&mut r, "qudag_auth_failures_total", help, metrics.auth_failures.clone());
            let help = "Calls to a backend (token issuer, Redis, PostgreSQL, audit sink) that failed, by component.";
            register(&mut r, "qudag_backend_errors_total", help, metrics.backend_errors.clone());
            let help = "Duration of HTTP server requests.";
            register(&mut r, "http_server_request_duration_seconds", help, metrics.http.clone());
            let help = "Duration of MCP requests as seen by the server.";
            register(&mut r, "mcp_server_operation_duration_seconds", help, metrics.mcp.clone());
            let help = "MCP tool calls by tool and outcome.";
            register(&mut r, "qudag_mcp_tool_calls_total", help, metrics.tool_calls.clone());
            let help = "Live stateful MCP sessions in the session store.";
            register(&mut r, "qudag_mcp_active_sessions", help, metrics.active_sessions.clone());
            let streams = metrics.sse_streams.clone();
            r.register_collector(Box::new(ScrapeGauge {
                name: "qudag_mcp_sse_streams",
                help: "SSE streams this node holds open.",
                // Never below zero, even if a close were ever counted before its open.
                read: Box::new(move || streams.load(Ordering::Relaxed).max(0) as f64),
            }));
        }
        metrics
    }

    fn lock_registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A gauge read by `read` at every scrape (for example a queue's depth). `name` must be
    /// a valid metric name not used by another series; `help` is written as given.
    pub fn register_gauge(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        self.lock_registry().register_collector(Box::new(ScrapeGauge { name, help, read: Box::new(read) }));
    }

    /// A counter family kept elsewhere (for example by the TLS acceptor), read by `read` at
    /// every scrape: one series per `(value, count)` it returns, labelled `label="value"`
    /// (unlabelled when `label` is empty). `name` must be a valid metric name ending in
    /// `_total` (the suffix every counter's series carries), not used by another series;
    /// `help` is written as given.
    pub fn register_counters(
        &self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        read: impl Fn() -> Vec<(&'static str, u64)> + Send + Sync + 'static,
    ) {
        let name = name.strip_suffix("_total").unwrap_or(name);
        self.lock_registry().register_collector(Box::new(ScrapeCounters { name, help, label, read: Box::new(read) }));
    }

    /// Refusals so far by `quota`.
    pub fn rate_limited_total(&self, quota: Quota) -> u64 {
        self.rate_limited.get_or_create(&[("quota", quota.as_str())]).get()
    }

    /// The Prometheus text exposition (version 0.0.4) of every series.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail; a collector that did would only cut the
        // answer short.
        if let Err(e) = prometheus_text::encode(&mut out, &self.lock_registry()) {
            tracing::warn!(error = %e, "Cannot render every metric");
        }
        out
    }
}

impl Metrics for PrometheusMetrics {
    fn rate_limited(&self, quota: Quota) {
        self.rate_limited.get_or_create(&[("quota", quota.as_str())]).inc();
    }

    fn limiter_error(&self) {
        self.limiter_errors.inc();
        self.backend_error("rate_limiter");
    }

    fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&[("reason", reason)]).inc();
    }

    fn backend_error(&self, component: &'static str) {
        self.backend_errors.get_or_create(&[("component", component)]).inc();
    }

    fn http_request(&self, method: &str, route: &'static str, status: u16, elapsed: Duration) {
        let labels = HttpLabels { method: http_method_label(method), status, route };
        self.http.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    fn mcp_operation(&self, method: &str, tool: Option<&str>, elapsed: Duration) {
        let labels =
            McpLabels { method: mcp_method_label(method), tool: tool.filter(|t| !t.is_empty()).map(str::to_owned) };
        self.mcp.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    fn tool_call(&self, tool: &str, outcome: ToolOutcome) {
        self.tool_calls.get_or_create(&ToolLabels { tool: tool.to_owned(), outcome }).inc();
    }

    fn sse_streams_add(&self, delta: i64) {
        self.sse_streams.fetch_add(delta, Ordering::Relaxed);
    }

    fn set_active_sessions(&self, sessions: usize) {
        self.active_sessions.set(i64::try_from(sessions).unwrap_or(i64::MAX));
    }
}

/// A gauge read when `/metrics` is scraped.
struct ScrapeGauge {
    name: &'static str,
    help: &'static str,
    read: Box<dyn Fn() -> f64 + Send + Sync>,
}

impl std::fmt::Debug for ScrapeGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeGauge").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Collector for ScrapeGauge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let value = (self.read)();
        let metric = encoder.encode_descriptor(self.name, self.help, None, MetricType::Gauge)?;
        // Whole values (depths, counts) are written as integers, as they always were.
        if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
            ConstGauge::new(value as i64).encode(metric)
        } else {
            ConstGauge::new(value).encode(metric)
        }
    }
}

/// A counter family read when `/metrics` is scraped.
struct ScrapeCounters {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    read: Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>,
}

impl std::fmt::Debug for ScrapeCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeCounters").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Collector for ScrapeCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, MetricType::Counter)?;
        for (value, count) in (self.read)() {
            let labels: &[(&str, &str)] = if self.label.is_empty() { &[] } else { &[(self.label, value)] };
            ConstCounter::new(count).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn counters_render_in_the_prometheus_text_format() {
        let m = PrometheusMetrics::new();
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
    fn help_and_type_lines_are_written_as_before() {
        let m = PrometheusMetrics::new();
        m.rate_limited(Quota::Rate);
        m.tool_call("qudag_status", ToolOutcome::Success);
        m.http_request("GET", "/health", 200, Duration::ZERO);
        let text = m.render();
        assert!(text.contains(
            "# HELP qudag_rate_limit_rejections_total Requests refused by a rate limit or quota.\n\
             # TYPE qudag_rate_limit_rejections_total counter\n"
        ));
        assert!(text.contains(
            "# HELP qudag_mcp_tool_calls_total MCP tool calls by tool and outcome.\n\
             # TYPE qudag_mcp_tool_calls_total counter\n"
        ));
        assert!(text.contains(
            "# HELP http_server_request_duration_seconds Duration of HTTP server requests.\n\
             # TYPE http_server_request_duration_seconds histogram\n"
        ));
        assert!(text.contains("# TYPE qudag_mcp_active_sessions gauge\nqudag_mcp_active_sessions 0\n"));
        assert!(!text.contains("_total_total") && !text.contains("..\n") && !text.contains("# EOF"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let m = PrometheusMetrics::new();
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
        let m = PrometheusMetrics::new();
        m.http_request("BREW", "other", 405, Duration::ZERO);
        m.mcp_operation("x/unknown", None, Duration::ZERO);
        m.mcp_operation("tools/call", Some("qudag_status"), Duration::ZERO);
        m.mcp_operation("tasks/get", Some(""), Duration::ZERO);
        m.tool_call("qudag_status", ToolOutcome::Denied);
        let text = m.render();
        assert!(text.contains("http_request_method=\"_OTHER\""));
        assert!(text.contains("mcp_server_operation_duration_seconds_count{mcp_method_name=\"other\"} 1\n"));
        assert!(text.contains("mcp_server_operation_duration_seconds_count{mcp_method_name=\"tasks/get\"} 1\n"));
        assert!(text.contains(
            "mcp_server_operation_duration_seconds_count{gen_ai_tool_name=\"qudag_status\",mcp_method_name=\"tools/call\"} 1\n"
        ));
        assert!(text.contains("qudag_mcp_tool_calls_total{gen_ai_tool_name=\"qudag_status\",outcome=\"denied\"} 1\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let m = PrometheusMetrics::new();
        m.tool_call("x\"y\\z\nw", ToolOutcome::Error);
        m.register_gauge("qudag_test_gauge", "a\\b\nc", || 0.25);
        let text = m.render();
        assert!(text.contains("{gen_ai_tool_name=\"x\\\"y\\\\z\\nw\",outcome=\"error\"} 1\n"), "{text}");
        assert!(text.contains("# HELP qudag_test_gauge a\\\\b\\nc\n"), "{text}");
        assert!(text.contains("qudag_test_gauge 0.25\n"), "{text}");
    }

    #[test]
    fn gauges_are_read_at_scrape_time() {
        let m = PrometheusMetrics::new();
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
        m.sse_streams_add(-2);
        assert!(m.render().contains("qudag_mcp_sse_streams 0\n"));
    }

    #[test]
    fn counters_kept_elsewhere_are_read_at_scrape_time() {
        let m = PrometheusMetrics::new();
        let n = Arc::new(AtomicU64::new(0));
        let read = n.clone();
        m.register_counters("qudag_tls_handshakes_total", "TLS handshakes completed.", "group", move || {
            vec![("X25519", read.load(Ordering::Relaxed)), ("other", 0)]
        });
        m.register_counters("qudag_tls_handshake_failures_total", "TLS handshakes that failed.", "", || vec![("", 2)]);
        n.store(5, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("# TYPE qudag_tls_handshakes_total counter\n"), "{text}");
        assert!(text.contains("qudag_tls_handshakes_total{group=\"X25519\"} 5\n"), "{text}");
        assert!(text.contains("qudag_tls_handshakes_total{group=\"other\"} 0\n"), "{text}");
        assert!(text.contains("qudag_tls_handshake_failures_total 2\n"), "{text}");
    }
}
