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
    /// The token verifier, when authentication is on.
    pub verifier: Option<Arc<qudag_adapter_oauth::OAuthVerifier>>,
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
    /// The token verifier cannot be set up.
    #[error("authentication: {0}")]
    Auth(String),
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
        #[cfg(feature = "conformance")]
        Some(crate::cli::Fixtures::Authz) => Ok(qudag_application::mcp::fixtures::authz::catalog(info)),
        #[cfg(not(feature = "conformance"))]
        Some(crate::cli::Fixtures::Authz) => {
            Err(WiringError::MissingFeature { what: "--fixtures authz", feature: "conformance" })
        }
        #[cfg(not(feature = "conformance"))]
        Some(crate::cli::Fixtures::Conformance) => {
            Err(WiringError::MissingFeature { what: "--fixtures conformance", feature: "conformance" })
        }
    }
}

/// The token verifier the settings ask for: the developer key's (`--dev`), the OAuth
/// resource server's, or none when authentication is off.
///
/// # Errors
/// [`WiringError::Auth`] naming the setting that cannot work.
pub fn token_verifier(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<Option<Arc<qudag_adapter_oauth::OAuthVerifier>>, WiringError> {
    use qudag_adapter_oauth::dev::{DEV_ISSUER, DevKey};
    use qudag_adapter_oauth::{IntrospectionConfig, OAuthConfig, OAuthVerifier};
    use qudag_domain::principal::RolesClaim;

    let a = &settings.auth;
    if a.dev_mode {
        let path = a.dev_key_file();
        let key = DevKey::load_or_create(&path).map_err(|e| WiringError::Auth(format!("QUDAG_DEV_KEY_PATH: {e}")))?;
        let mut config = OAuthConfig::new(DEV_ISSUER, a.dev_audience());
        config.cache_capacity = a.token_cache_size;
        let verify_key = key.verify_key().map_err(WiringError::Auth)?;
        let verifier =
            OAuthVerifier::with_keys(config, vec![verify_key], clock).map_err(|e| WiringError::Auth(e.to_string()))?;
        tracing::warn!(
            key = %path.display(),
            audience = %a.dev_audience(),
            "Developer mode: trusting tokens signed by the local developer key (mint them with `qudag-mcp dev-token`)"
        );
        return Ok(Some(Arc::new(verifier)));
    }
    if !a.require_auth {
        return Ok(None);
    }
    let (Some(issuer), Some(audience)) = (&a.issuer_url, &a.audience) else {
        return Err(WiringError::Config("authentication needs QUDAG_OAUTH2_ISSUER_URL and QUDAG_OAUTH2_AUDIENCE"));
    };
    let mut config = OAuthConfig::new(issuer.clone(), audience.clone());
    config.jwks_url = a.jwks_url.clone();
    config.introspection = match (&a.introspection_url, &a.client_id, &a.client_secret) {
        (Some(url), Some(id), Some(secret)) => {
            Some(IntrospectionConfig { url: url.clone(), client_id: id.clone(), client_secret: secret.clone() })
        }
        _ => None,
    };
    config.hmac_secret = a.hmac_secret.as_ref().map(|s| s.as_bytes().to_vec());
    config.roles_claim = RolesClaim::new(a.roles_claim.clone());
    config.leeway = Duration::from_secs(a.leeway_secs);
    config.jwks_ttl = Duration::from_secs(a.jwks_cache_secs);
    config.jwks_min_refresh = Duration::from_secs(a.jwks_min_refresh_secs);
    config.max_token_bytes = a.max_token_bytes;
    config.cache_capacity = a.token_cache_size;
    config.dpop_max_age = Duration::from_secs(a.dpop_max_age_secs);
    if let Some(path) = &a.ca_path {
        config.ca_pem =
            Some(std::fs::read(path).map_err(|e| {
                WiringError::Auth(format!("QUDAG_OAUTH2_CA_PATH: cannot read {}: {e}", path.display()))
            })?);
    }
    let verifier = OAuthVerifier::new(config, clock).map_err(|e| WiringError::Auth(e.to_string()))?;
    Ok(Some(Arc::new(verifier)))
}

/// Build the adapters `settings` ask for.
///
/// # Errors
/// [`WiringError::MissingFeature`] when they name an adapter not compiled in.
pub fn build(settings: &Settings) -> Result<Adapters, WiringError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut adapters = memory(settings, clock.clone())?;
    if settings.rate_limit.store == StateStore::Redis {
        redis_rate_limiter(settings, &mut adapters)?;
    }
    adapters.verifier = token_verifier(settings, clock)?;
    if let Some(v) = &adapters.verifier {
        adapters.components.push(Component { name: "token_verifier".into(), required: true, indicator: v.clone() });
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
        verifier: None,
    })
}

#[cfg(not(feature = "memory"))]
fn memory(_settings: &Settings, _clock: Arc<dyn Clock>) -> Result<Adapters, WiringError> {
    Err(WiringError::MissingFeature {
        what: "the in-memory session store, rate limiter and audit sink",
        feature: "memory",
    })
}
