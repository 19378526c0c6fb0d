//! `PostgresHealth`: whether the database answers.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use qudag_application::ports::{ComponentHealth, HealthIndicator};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::error::PgError;

/// Reports PostgreSQL up when `SELECT 1` answers within a timeout (default 2 s), with how
/// long it took; down, with the reason, otherwise.
#[derive(Clone, Debug)]
pub struct PostgresHealth {
    db: DatabaseConnection,
    timeout: Duration,
}

impl PostgresHealth {
    /// A probe of `db` with the default 2 s timeout.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db, timeout: Duration::from_secs(2) }
    }

    /// With another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Run the probe; how long the answer took.
    ///
    /// # Errors
    /// [`PgError::Timeout`] when no answer came in time, [`PgError::Query`] when it failed.
    pub async fn ping(&self) -> Result<Duration, PgError> {
        let started = Instant::now();
        match tokio::time::timeout(self.timeout, self.db.execute_unprepared("SELECT 1")).await {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(source)) => Err(PgError::Query { operation: "health probe (SELECT 1)", source }),
            Err(_) => Err(PgError::Timeout(self.timeout)),
        }
    }
}

#[async_trait]
impl HealthIndicator for PostgresHealth {
    async fn health(&self) -> ComponentHealth {
        match self.ping().await {
            Ok(took) => ComponentHealth::up(format!("postgres: answered in {} ms", took.as_millis())),
            Err(e) => ComponentHealth::down(format!("postgres: {e}")),
        }
    }
}
