//! Health reporting: liveness, readiness and the per-component report behind `/health`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::ports::{HealthIndicator, HealthStatus};

/// A component whose health counts.
#[derive(Clone)]
pub struct Component {
    /// Its name in the report (`session_store`, `rate_limiter`, ...).
    pub name: String,
    /// Whether the server is unready while this component is down.
    pub required: bool,
    /// Who to ask.
    pub indicator: Arc<dyn HealthIndicator>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component").field("name", &self.name).field("required", &self.required).finish()
    }
}

/// One component in a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentReport {
    /// Its state.
    pub status: HealthStatus,
    /// Whether the server's readiness depends on it.
    pub required: bool,
    /// A short reason or fact.
    pub detail: Option<String>,
}

/// The whole server's health.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthReport {
    /// `up` when every component is up and the server is not draining, `down` when a
    /// required component is down or the server is draining, `degraded` otherwise.
    pub status: HealthStatus,
    /// Whether the server is shutting down and refusing new work.
    pub draining: bool,
    /// The server's version.
    pub version: String,
    /// Each component by name.
    pub components: BTreeMap<String, ComponentReport>,
}

impl HealthReport {
    /// Whether the server should receive traffic.
    pub fn is_ready(&self) -> bool {
        self.status != HealthStatus::Down
    }
}

/// Aggregates the components' health and the draining flag.
#[derive(Debug)]
pub struct HealthService {
    components: Vec<Component>,
    draining: AtomicBool,
    version: String,
}

impl HealthService {
    /// A service reporting on `components` for server `version`.
    pub fn new(version: impl Into<String>, components: Vec<Component>) -> Self {
        Self { components, draining: AtomicBool::new(false), version: version.into() }
    }

    /// Mark the server as draining: readiness fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the server is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Ask every component, concurrently, and combine the answers.
    pub async fn report(&self) -> HealthReport {
        let answers = futures::future::join_all(self.components.iter().map(|c| c.indicator.health())).await;
        let mut status = HealthStatus::Up;
        let mut components = BTreeMap::new();
        for (component, health) in self.components.iter().zip(answers) {
            let effect = match (health.status, component.required) {
                (HealthStatus::Down, true) => HealthStatus::Down,
                (HealthStatus::Up, _) => HealthStatus::Up,
                _ => HealthStatus::Degraded,
            };
            status = status.max(effect);
            components.insert(
                component.name.clone(),
                ComponentReport { status: health.status, required: component.required, detail: health.detail },
            );
        }
        let draining = self.is_draining();
        if draining {
            status = HealthStatus::Down;
        }
        HealthReport { status, draining, version: self.version.clone(), components }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{ComponentHealth, MockHealthIndicator};

    fn component(name: &str, required: bool, health: ComponentHealth) -> Component {
        let mut mock = MockHealthIndicator::new();
        mock.expect_health().returning(move || health.clone());
        Component { name: name.into(), required, indicator: Arc::new(mock) }
    }

    #[tokio::test]
    async fn all_up_is_up_and_ready() {
        let svc = HealthService::new("1.0", vec![component("a", true, ComponentHealth::up(None))]);
        let r = svc.report().await;
        assert_eq!(r.status, HealthStatus::Up);
        assert!(r.is_ready());
        assert_eq!(r.components["a"].status, HealthStatus::Up);
    }

    #[tokio::test]
    async fn optional_component_down_degrades_but_stays_ready() {
        let svc = HealthService::new(
            "1.0",
            vec![component("a", true, ComponentHealth::up(None)), component("b", false, ComponentHealth::down("gone"))],
        );
        let r = svc.report().await;
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(r.is_ready());
        assert_eq!(r.components["b"].detail.as_deref(), Some("gone"));
    }

    #[tokio::test]
    async fn required_component_down_is_unready() {
        let svc = HealthService::new(
            "1.0",
            vec![
                component("a", true, ComponentHealth::down("redis unreachable")),
                component("b", false, ComponentHealth::degraded("slow")),
            ],
        );
        let r = svc.report().await;
        assert_eq!(r.status, HealthStatus::Down);
        assert!(!r.is_ready());
    }

    #[tokio::test]
    async fn draining_is_unready_even_when_everything_is_up() {
        let svc = HealthService::new("1.0", vec![component("a", true, ComponentHealth::up(None))]);
        svc.start_draining();
        let r = svc.report().await;
        assert!(r.draining);
        assert!(!r.is_ready());
    }
}
