//! `/health`, `/health/live` and `/health/ready`.
//!
//! - liveness answers 200 whenever the process can answer at all: a restart would not help
//!   a server that is merely waiting for a backend;
//! - readiness answers 503 while a required component is down or the server drains, so a
//!   load balancer stops sending new work;
//! - `/health` is the full report, 503 when not ready.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use qudag_application::ports::HealthStatus;
use qudag_application::usecases::{HealthReport, HealthService};

#[derive(Tags)]
enum ApiTags {
    /// Liveness, readiness and per-component health.
    Health,
}

/// A component's or the server's state.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum Status {
    /// Working.
    Up,
    /// Working with reduced guarantees.
    Degraded,
    /// Not working.
    Down,
}

impl From<HealthStatus> for Status {
    fn from(s: HealthStatus) -> Self {
        match s {
            HealthStatus::Up => Self::Up,
            HealthStatus::Degraded => Self::Degraded,
            HealthStatus::Down => Self::Down,
        }
    }
}

/// One component's health.
#[derive(Object, Clone, Debug)]
pub struct ComponentBody {
    /// Its state.
    pub status: Status,
    /// Whether the server's readiness depends on it.
    pub required: bool,
    /// A short reason or fact.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

/// The server's health.
#[derive(Object, Clone, Debug)]
pub struct HealthBody {
    /// `up`, `degraded` (an optional component is not up) or `down` (a required component
    /// is down, or the server is draining).
    pub status: Status,
    /// Whether the server is shutting down.
    pub draining: bool,
    /// The server's version.
    pub version: String,
    /// Each component by name.
    pub components: BTreeMap<String, ComponentBody>,
}

impl From<HealthReport> for HealthBody {
    fn from(r: HealthReport) -> Self {
        Self {
            status: r.status.into(),
            draining: r.draining,
            version: r.version,
            components: r
                .components
                .into_iter()
                .map(|(name, c)| {
                    (name, ComponentBody { status: c.status.into(), required: c.required, detail: c.detail })
                })
                .collect(),
        }
    }
}

/// Liveness answer.
#[derive(Object, Clone, Debug)]
pub struct LiveBody {
    /// Always `up`.
    pub status: Status,
}

/// A health or readiness answer.
#[derive(ApiResponse, Debug)]
pub enum HealthResponse {
    /// Ready to serve: every required component is up.
    #[oai(status = 200)]
    Ready(Json<HealthBody>),
    /// Not ready: a required component is down or the server is draining.
    #[oai(status = 503)]
    NotReady(Json<HealthBody>),
}

/// A liveness answer.
#[derive(ApiResponse, Debug)]
pub enum LiveResponse {
    /// The process is running and answering.
    #[oai(status = 200)]
    Alive(Json<LiveBody>),
}

/// The health endpoints.
#[derive(Debug)]
pub struct HealthApi {
    health: Arc<HealthService>,
}

impl HealthApi {
    /// Endpoints reporting on `health`.
    pub fn new(health: Arc<HealthService>) -> Self {
        Self { health }
    }

    async fn answer(&self) -> HealthResponse {
        let report = self.health.report().await;
        if report.is_ready() {
            HealthResponse::Ready(Json(report.into()))
        } else {
            HealthResponse::NotReady(Json(report.into()))
        }
    }
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Full health report
    ///
    /// Every component's state; 503 when a required component is down or the server is
    /// draining.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> HealthResponse {
        self.answer().await
    }

    /// Liveness probe
    ///
    /// 200 whenever the process answers; restart the process only when this fails.
    #[oai(path = "/health/live", method = "get", operation_id = "liveness")]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Alive(Json(LiveBody { status: Status::Up }))
    }

    /// Readiness probe
    ///
    /// 200 when the server should receive traffic; 503 while a required component is down
    /// or the server is draining.
    #[oai(path = "/health/ready", method = "get", operation_id = "readiness")]
    async fn ready(&self) -> HealthResponse {
        self.answer().await
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use poem::http::StatusCode;
    use poem::test::TestClient;
    use qudag_application::ports::{ComponentHealth, HealthIndicator};
    use qudag_application::usecases::Component;
    use serde_json::json;

    use super::*;
    use crate::{HttpState, router};

    struct Fixed(ComponentHealth);

    #[async_trait]
    impl HealthIndicator for Fixed {
        async fn health(&self) -> ComponentHealth {
            self.0.clone()
        }
    }

    fn service(required_down: bool) -> Arc<HealthService> {
        let session = if required_down {
            ComponentHealth::down("unreachable")
        } else {
            ComponentHealth::up("3 sessions".to_owned())
        };
        Arc::new(HealthService::new(
            "9.9.9",
            vec![
                Component { name: "session_store".into(), required: true, indicator: Arc::new(Fixed(session)) },
                Component {
                    name: "audit".into(),
                    required: false,
                    indicator: Arc::new(Fixed(ComponentHealth::up(None))),
                },
            ],
        ))
    }

    async fn body(resp: poem::test::TestResponse) -> serde_json::Value {
        serde_json::from_str(&resp.0.into_body().into_string().await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn healthy_server_reports_each_component() {
        let health = service(false);
        let cli = TestClient::new(router(HttpState { health, ..HttpState::minimal("9.9.9") }));
        let resp = cli.get("/health").send().await;
        resp.assert_status_is_ok();
        assert_eq!(
            body(resp).await,
            json!({
                "status": "up",
                "draining": false,
                "version": "9.9.9",
                "components": {
                    "audit": { "status": "up", "required": false },
                    "session_store": { "status": "up", "required": true, "detail": "3 sessions" },
                }
            })
        );
        cli.get("/health/ready").send().await.assert_status_is_ok();
        cli.get("/health/live").send().await.assert_status_is_ok();
    }

    #[tokio::test]
    async fn a_required_component_down_fails_readiness_but_not_liveness() {
        let cli = TestClient::new(router(HttpState { health: service(true), ..HttpState::minimal("9.9.9") }));
        let resp = cli.get("/health/ready").send().await;
        resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        let b = body(resp).await;
        assert_eq!(b["status"], "down");
        assert_eq!(b["components"]["session_store"]["detail"], "unreachable");
        cli.get("/health").send().await.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        let resp = cli.get("/health/live").send().await;
        resp.assert_status_is_ok();
        assert_eq!(body(resp).await, json!({ "status": "up" }));
    }

    #[tokio::test]
    async fn draining_fails_readiness() {
        let health = service(false);
        let cli = TestClient::new(router(HttpState { health: health.clone(), ..HttpState::minimal("9.9.9") }));
        cli.get("/health/ready").send().await.assert_status_is_ok();
        health.start_draining();
        let resp = cli.get("/health/ready").send().await;
        resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(resp).await["draining"], true);
    }
}
