//! `HealthIndicator`: how a component reports whether it can do its job.
//!
//! Adapters that talk to a backend implement it (a Redis pool pings, a database checks a
//! connection); in-process adapters report themselves up with a few facts. The health use
//! case aggregates indicators into `/health` and `/health/ready`.

use async_trait::async_trait;
use serde::Serialize;

/// A component's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working.
    Up,
    /// Working with reduced guarantees (e.g. a limiter failing open).
    Degraded,
    /// Not working.
    Down,
}

/// One component's report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentHealth {
    /// The state.
    pub status: HealthStatus,
    /// A short human-readable reason or fact, if any.
    pub detail: Option<String>,
}

impl ComponentHealth {
    /// Up, with an optional fact.
    pub fn up(detail: impl Into<Option<String>>) -> Self {
        Self { status: HealthStatus::Up, detail: detail.into() }
    }

    /// Degraded, with the reason.
    pub fn degraded(reason: impl Into<String>) -> Self {
        Self { status: HealthStatus::Degraded, detail: Some(reason.into()) }
    }

    /// Down, with the reason.
    pub fn down(reason: impl Into<String>) -> Self {
        Self { status: HealthStatus::Down, detail: Some(reason.into()) }
    }
}

/// Something whose health can be asked.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait HealthIndicator: Send + Sync + 'static {
    /// The component's current state. Must answer promptly (bounded by the adapter's own
    /// timeout): a health probe that hangs is worse than one that says down.
    async fn health(&self) -> ComponentHealth;
}
