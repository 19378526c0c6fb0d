//! Counters the use cases keep, rendered in the Prometheus text format by the http adapter
//! at `/metrics`.
//!
//! Plain atomics: incrementing one costs a single uncontended add on the request path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    rate_limited: AtomicU64,
    daily_quota_exhausted: AtomicU64,
    limiter_errors: AtomicU64,
    auth_failures: AtomicU64,
}

/// Which quota refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// The short-term rate limit.
    Rate,
    /// The daily quota.
    Daily,
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
    }

    /// A credential was refused.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals so far by `quota`.
    pub fn rate_limited_total(&self, quota: Quota) -> u64 {
        match quota {
            Quota::Rate => self.rate_limited.load(Ordering::Relaxed),
            Quota::Daily => self.daily_quota_exhausted.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        counter(
            "qudag_rate_limit_rejections_total",
            "Requests refused by a rate limit or quota.",
            &[
                ("{quota=\"rate\"}", self.rate_limited.load(Ordering::Relaxed)),
                ("{quota=\"daily\"}", self.daily_quota_exhausted.load(Ordering::Relaxed)),
            ],
        );
        counter(
            "qudag_rate_limiter_errors_total",
            "Rate-limit decisions the limiter's backend could not make.",
            &[("", self.limiter_errors.load(Ordering::Relaxed))],
        );
        counter(
            "qudag_auth_failures_total",
            "Requests whose credential was refused.",
            &[("", self.auth_failures.load(Ordering::Relaxed))],
        );
        out
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
        let text = m.render();
        assert!(text.contains("# TYPE qudag_rate_limit_rejections_total counter\n"));
        assert!(text.contains("qudag_rate_limit_rejections_total{quota=\"rate\"} 2\n"));
        assert!(text.contains("qudag_rate_limit_rejections_total{quota=\"daily\"} 1\n"));
        assert!(text.contains("qudag_rate_limiter_errors_total 1\n"));
        assert!(text.contains("qudag_auth_failures_total 0\n"));
        assert_eq!(m.rate_limited_total(Quota::Rate), 2);
    }
}
