//! [`RedisPool`]: the one bb8 pool per process that every Redis adapter shares, with every
//! command bounded by a timeout (so an unreachable Redis is `Unavailable` quickly, never a
//! hang) and connections that failed underneath a command discarded; its `PING` is the
//! Redis component's health.

use std::time::Duration;

use bb8_redis::RedisConnectionManager;
use qudag_application::ports::{ComponentHealth, HealthIndicator};

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every key this server writes (`QUDAG_REDIS_KEY_PREFIX`, default `qudag:`).
    pub key_prefix: String,
    /// Connections kept in the pool.
    pub pool_size: u32,
    /// How long one command (including waiting for a connection) may take before the
    /// backend counts as unavailable.
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// A configuration for `url` with the defaults: prefix `qudag:`, 16 connections, 1 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), key_prefix: "qudag:".into(), pool_size: 16, command_timeout: Duration::from_secs(1) }
    }

    /// With another key prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}

// The URL may carry a password: never print it.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &qudag_domain::redact::redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// Failures of the Redis adapters (they cross the ports as `Unavailable`).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL cannot be used.
    #[error("invalid Redis URL: {0}")]
    Url(#[source] redis::RedisError),
    /// No connection could be had in time.
    #[error("no Redis connection: {0}")]
    Pool(String),
    /// A command failed.
    #[error("Redis command failed: {0}")]
    Command(#[source] redis::RedisError),
    /// A command took longer than the configured timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered something we cannot read.
    #[error("unexpected Redis reply: {0}")]
    Reply(String),
}

/// bb8-redis's manager, plus a broken flag set when a command fails at the connection
/// level: bb8-redis never reports a multiplexed connection as broken, so without the flag
/// the pool would have to `PING` on every checkout (a second round trip per command) to
/// notice a dead connection.
#[derive(Debug)]
struct Manager(RedisConnectionManager);

struct Connection {
    conn: redis::aio::MultiplexedConnection,
    broken: bool,
}

impl bb8::ManageConnection for Manager {
    type Connection = Connection;
    type Error = redis::RedisError;

    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        Ok(Connection { conn: self.0.connect().await?, broken: false })
    }

    async fn is_valid(&self, conn: &mut Connection) -> Result<(), redis::RedisError> {
        self.0.is_valid(&mut conn.conn).await
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.broken
    }
}

/// A pool of Redis connections shared by the Redis adapters of one process.
#[derive(Clone)]
pub struct RedisPool {
    pool: bb8::Pool<Manager>,
    config: RedisConfig,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RedisPool {
    /// A pool for `config`. Connections are made lazily, so a server can start while
    /// Redis is down and recover when it returns.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(config: RedisConfig) -> Result<Self, RedisError> {
        let manager = Manager(RedisConnectionManager::new(config.url.as_str()).map_err(RedisError::Url)?);
        let pool = bb8::Pool::builder()
            .max_size(config.pool_size.max(1))
            .min_idle(None)
            .test_on_check_out(false)
            .connection_timeout(config.command_timeout)
            .build_unchecked(manager);
        Ok(Self { pool, config })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// `key` under the configured prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.config.key_prefix)
    }

    /// Run `command` on a pooled connection, bounded by the command timeout.
    ///
    /// # Errors
    /// [`RedisError`] when no connection can be had, the command fails, or time runs out.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisError>
    where
        F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let timeout = self.config.command_timeout;
        let started = tokio::time::Instant::now();
        let mut pooled = tokio::time::timeout(timeout, self.pool.get())
            .await
            .map_err(|_| RedisError::Timeout(timeout))?
            .map_err(|e| RedisError::Pool(e.to_string()))?;
        // A multiplexed connection is a cheap handle; the pooled guard is held until the
        // command is done, and the connection is discarded if it failed underneath us.
        match tokio::time::timeout(timeout.saturating_sub(started.elapsed()), command(pooled.conn.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    pooled.broken = true;
                }
                Err(RedisError::Command(e))
            }
            Err(_) => {
                pooled.broken = true;
                Err(RedisError::Timeout(timeout))
            }
        }
    }

    /// Whether Redis answers `PING`.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.run(|mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await }).await.map(|_| ())
    }
}

#[async_trait::async_trait]
impl HealthIndicator for RedisPool {
    async fn health(&self) -> ComponentHealth {
        match self.ping().await {
            Ok(()) => ComponentHealth::up(format!("redis: {} connections", self.pool.state().connections)),
            Err(e) => ComponentHealth::down(format!("redis: {e}")),
        }
    }
}
