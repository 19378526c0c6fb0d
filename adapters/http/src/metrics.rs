//! `/metrics`: the server's counters in the Prometheus text exposition format.

use std::sync::Arc;

use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi, Tags};
use qudag_application::metrics::Metrics;

#[derive(Tags)]
enum ApiTags {
    /// Prometheus metrics.
    Metrics,
}

/// A metrics answer.
#[derive(ApiResponse, Debug)]
pub enum MetricsResponse {
    /// The counters, in the Prometheus text format (version 0.0.4).
    #[oai(status = 200, content_type = "text/plain; version=0.0.4; charset=utf-8")]
    Ok(PlainText<String>),
}

/// The metrics endpoint.
#[derive(Debug)]
pub struct MetricsApi {
    metrics: Arc<Metrics>,
}

impl MetricsApi {
    /// An endpoint rendering `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

#[OpenApi(tag = "ApiTags::Metrics")]
impl MetricsApi {
    /// Prometheus metrics
    ///
    /// Counters of rate-limit rejections, limiter errors and authentication failures.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> MetricsResponse {
        MetricsResponse::Ok(PlainText(self.metrics.render()))
    }
}
