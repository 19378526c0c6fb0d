//! The one place that chooses adapters: configuration → `Arc<dyn Port>`.
//!
//! Each backend is behind a cargo feature; asking for one that was not compiled in is a
//! start-up error naming the feature.

use std::sync::Arc;
use std::time::Duration;

use qudag_application::ports::{
    AuditQuery, AuditSink, Clock, EventBus, EventStore, RateLimiter, SessionStore, SystemClock,
};
use qudag_application::usecases::Component;

use crate::settings::{Settings, StateStore};

/// The adapters chosen for this process, as ports.
pub struct Adapters {
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Where sessions live.
    pub sessions: Arc<dyn SessionStore>,
    /// Rate-limit decisions.
    pub limiter: Arc<dyn RateLimiter>,
    /// Where audit records go.
    pub audit: Arc<dyn AuditSink>,
    /// Reading the audit trail back.
    pub audit_query: Arc<dyn AuditQuery>,
    /// Notifications.
    pub events: Arc<dyn EventBus>,
    /// Resumable SSE streams.
    pub event_store: Arc<dyn EventStore>,
    /// What `/health` reports on.
    pub components: Vec<Component>,
    /// Periodic upkeep (evicting expired sessions and drained limiter keys).
    pub maintenance: Vec<Maintenance>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters").field("components", &self.components).finish_non_exhaustive()
    }
}

/// A job run every `every` for the life of the server.
pub struct Maintenance {
    /// Its name, for logs.
    pub name: &'static str,
    /// The interval.
    pub every: Duration,
    /// The job.
    pub run: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance").field("name", &self.name).field("every", &self.every).finish()
    }
}

/// A configuration that this build cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// The adapter needs a cargo feature this binary was built without.
    #[error("{what} needs the `{feature}` cargo feature, which this build of qudag-mcp does not include")]
    MissingFeature {
        /// What was asked for.
        what: &'static str,
        /// The feature to build with.
        feature: &'static str,
    },
    /// The configuration is incomplete.
    #[error("{0}")]
    Config(&'static str),
    /// Redis cannot be set up.
    #[error("Redis: {0}")]
    Redis(String),
}

/// The tools, resources and prompts to serve: the product, or a test fixture.
///
/// # Errors
/// [`WiringError::MissingFeature`] for a fixture this build does not include.
pub fn catalog(fixtures: Option<crate::cli::Fixtures>) -> Result<qudag_application::mcp::Catalog, WiringError> {
    let info = rmcp::model::Implementation::new("qudag-mcp", crate::VERSION);
    match fixtures {
        None => Ok(qudag_application::mcp::Catalog::builder(info)
            .instructions("QuDAG MCP server: post-quantum cryptography, quantum circuits, vault, .dark names.")
            .build()),
        #[cfg(feature = "conformance")]
        Some(crate::cli::Fixtures::Conformance) => Ok(qudag_application::mcp::fixtures::conformance::catalog(info)),
        #[cfg(not(feature = "conformance"))]
        Some(crate::cli::Fixtures::Conformance) => {
            Err(WiringError::MissingFeature { what: "--fixtures conformance", feature: "conformance" })
        }
    }
}

/// Refuses every token: the verifier used while authentication is required but no
/// token verifier is configured, so `/mcp` fails closed with 401.
#[derive(Debug)]
pub struct UnconfiguredVerifier;

#[async_trait::async_trait]
impl qudag_application::ports::TokenVerifier for UnconfiguredVerifier {
    async fn verify(
        &self,
        _token: &str,
    ) -> Result<qudag_domain::principal::Principal, qudag_application::ports::TokenError> {
        Err(qudag_application::ports::TokenError::Invalid {
            reason: "no_verifier",
            description: "this server has no token verifier configured".into(),
        })
    }
}

/// Build the adapters `settings` ask for.
///
/// # Errors
/// [`WiringError::MissingFeature`] when they name an adapter not compiled in.
pub fn build(settings: &Settings) -> Result<Adapters, WiringError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut adapters = memory(settings, clock)?;
    if settings.rate_limit.store == StateStore::Redis {
        redis_rate_limiter(settings, &mut adapters)?;
    }
    Ok(adapters)
}

#[cfg(feature = "redis")]
fn redis_rate_limiter(settings: &Settings, adapters: &mut Adapters) -> Result<(), WiringError> {
    use qudag_adapter_redis::{RedisConfig, RedisPool, RedisRateLimiter};

    let url =
        settings.redis.url.clone().ok_or(WiringError::Config("QUDAG_RATE_LIMIT_STORE=redis needs QUDAG_REDIS_URL"))?;
    let mut config = RedisConfig::new(url).key_prefix(settings.redis.key_prefix.clone());
    config.pool_size = settings.redis.pool_size;
    config.command_timeout = Duration::from_millis(settings.redis.command_timeout_ms);
    let pool = RedisPool::new(config).map_err(|e| WiringError::Redis(e.to_string()))?;
    adapters.limiter = Arc::new(RedisRateLimiter::new(pool.clone()));
    // With fail-closed, an unreachable Redis refuses requests, so readiness follows it;
    // with fail-open the server keeps serving and reports itself degraded.
    let required = settings.rate_limit.on_failure == crate::settings::FailurePolicy::FailClosed;
    adapters.components.retain(|c| c.name != "rate_limiter");
    adapters.components.push(Component { name: "rate_limiter".into(), required, indicator: Arc::new(pool) });
    adapters.maintenance.retain(|m| m.name != "rate-limit sweep");
    Ok(())
}

#[cfg(not(feature = "redis"))]
fn redis_rate_limiter(_settings: &Settings, _adapters: &mut Adapters) -> Result<(), WiringError> {
    Err(WiringError::MissingFeature { what: "QUDAG_RATE_LIMIT_STORE=redis", feature: "redis" })
}

#[cfg(feature = "memory")]
fn memory(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Adapters, WiringError> {
    use qudag_adapter_memory::{
        MemoryAuditSink, MemoryEventBus, MemoryEventStore, MemoryRateLimiter, MemorySessionStore,
    };

    /// Events the in-memory audit sink keeps for queries (about 1.5 KB each).
    const AUDIT_RETAIN: usize = 10_000;

    let sessions = Arc::new(MemorySessionStore::new(settings.sessions.max_sessions, clock.clone()));
    let limiter = Arc::new(MemoryRateLimiter::new(settings.rate_limit.max_keys, clock.clone()));
    let audit = Arc::new(MemoryAuditSink::new(AUDIT_RETAIN));
    let events = Arc::new(MemoryEventBus::default());
    let event_store = Arc::new(MemoryEventStore::default());
    let components = vec![
        Component { name: "session_store".into(), required: true, indicator: sessions.clone() },
        Component { name: "rate_limiter".into(), required: false, indicator: limiter.clone() },
        Component { name: "audit".into(), required: true, indicator: audit.clone() },
    ];
    let sweep_sessions = {
        let (sessions, clock) = (sessions.clone(), clock.clone());
        Maintenance {
            name: "session sweep",
            every: Duration::from_secs(30),
            run: Box::new(move || {
                let dropped = sessions.sweep(clock.now());
                tracing::debug!(dropped, "Expired sessions swept");
            }),
        }
    };
    let sweep_limiter = {
        let limiter = limiter.clone();
        Maintenance {
            name: "rate-limit sweep",
            every: Duration::from_secs(60),
            run: Box::new(move || {
                let dropped = limiter.sweep();
                tracing::debug!(dropped, "Drained rate-limit keys swept");
            }),
        }
    };
    let sweep_streams = {
        let (store, idle) = (event_store.clone(), Duration::from_secs(settings.sessions.idle_timeout_secs));
        Maintenance {
            name: "stream sweep",
            every: Duration::from_secs(60),
            run: Box::new(move || {
                let dropped = store.sweep(idle);
                tracing::debug!(dropped, "Streams of idle sessions swept");
            }),
        }
    };
    Ok(Adapters {
        clock,
        sessions,
        limiter,
        audit: audit.clone(),
        audit_query: audit,
        events,
        event_store,
        components,
        maintenance: vec![sweep_sessions, sweep_limiter, sweep_streams],
    })
}

#[cfg(not(feature = "memory"))]
fn memory(_settings: &Settings, _clock: Arc<dyn Clock>) -> Result<Adapters, WiringError> {
    Err(WiringError::MissingFeature {
        what: "the in-memory session store, rate limiter and audit sink",
        feature: "memory",
    })
}
