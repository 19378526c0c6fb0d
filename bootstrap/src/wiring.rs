//! The one place that chooses adapters: configuration → `Arc<dyn Port>`.
//!
//! Each backend is behind a cargo feature; asking for one that was not compiled in is a
//! start-up error naming the feature.

use std::sync::Arc;
use std::time::Duration;

use qudag_application::ports::{
    AuditQuery, AuditSink, Clock, EventBus, EventStore, HealthIndicator, Membership, NameRegistry, RateLimiter,
    SessionStore, SystemClock, VaultStore,
};
use qudag_application::tools::{KeyOrigin, KeySeeds, ServerKeys};
use qudag_application::usecases::Component;

use crate::settings::{DataStore, Settings, StateStore};

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
    /// Where vault entries live.
    pub vault: Arc<dyn VaultStore>,
    /// Where `.dark` records live.
    pub names: Arc<dyn NameRegistry>,
    /// The live nodes.
    pub membership: Arc<dyn Membership>,
    /// The server's key material.
    pub keys: Arc<ServerKeys>,
    /// This node's id (`QUDAG_NODE_ID`, or random per process).
    pub node: String,
    /// Removing old audit events, when a retention period is set.
    pub audit_retention: Option<AuditRetention>,
    /// The metrics every part counts into (and `/metrics` renders).
    pub metrics: Arc<qudag_adapter_http::prometheus::PrometheusMetrics>,
}

/// What removing old audit events returns: how many went, or why none could.
pub type PruneFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send>>;

/// Audit retention: events older than `keep` are removed by `prune` (given the cut-off),
/// only as far as a signed checkpoint covers them.
pub struct AuditRetention {
    /// How long events are kept.
    pub keep: Duration,
    /// Remove what was recorded before the cut-off; the number of events removed.
    pub prune: Box<dyn Fn(qudag_domain::Timestamp) -> PruneFuture + Send + Sync>,
}

impl std::fmt::Debug for AuditRetention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditRetention").field("keep", &self.keep).finish_non_exhaustive()
    }
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
    /// The key file cannot be read, parsed or created.
    #[error("QUDAG_KEY_FILE {path}: {reason}")]
    Keys {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// PostgreSQL cannot be set up.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The audit sink cannot be set up.
    #[error("audit: {0}")]
    Audit(String),
}

/// The tools, resources and prompts to serve: the product (built from `deps`), or a test
/// fixture.
///
/// # Errors
/// [`WiringError::MissingFeature`] for a fixture this build does not include.
pub fn catalog(
    fixtures: Option<crate::cli::Fixtures>,
    deps: impl FnOnce() -> qudag_application::tools::Dependencies,
) -> Result<qudag_application::mcp::Catalog, WiringError> {
    let info = rmcp::model::Implementation::new("qudag-mcp", crate::VERSION);
    match fixtures {
        None => Ok(qudag_application::tools::catalog(info, deps())),
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
    use secrecy::ExposeSecret as _;

    let a = &settings.auth;
    if a.dev_mode {
        let path = a.dev_key_file().map_err(|e| WiringError::Auth(format!("QUDAG_DEV_KEY_PATH: {e}")))?;
        let key = DevKey::load_or_create(&path).map_err(|e| WiringError::Auth(format!("QUDAG_DEV_KEY_PATH: {e}")))?;
        let mut config = OAuthConfig::new(DEV_ISSUER, a.dev_audience());
        config.cache_capacity = a.token_cache_size;
        config.token_types = token_types(a)?;
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
        (Some(url), Some(id), Some(secret)) => Some(IntrospectionConfig {
            url: url.clone(),
            client_id: id.clone(),
            client_secret: secret.expose_secret().to_owned(),
        }),
        _ => None,
    };
    config.hmac_secret = a.hmac_secret.as_ref().map(|s| s.expose_secret().as_bytes().to_vec());
    config.roles_claim = RolesClaim::new(a.roles_claim.clone());
    config.leeway = Duration::from_secs(a.leeway_secs);
    config.jwks_ttl = Duration::from_secs(a.jwks_cache_secs);
    config.jwks_min_refresh = Duration::from_secs(a.jwks_min_refresh_secs);
    config.max_token_bytes = a.max_token_bytes;
    config.cache_capacity = a.token_cache_size;
    config.dpop_max_age = Duration::from_secs(a.dpop_max_age_secs);
    config.dpop_replay_per_key = a.dpop_replay_per_key;
    config.introspection_cache = Duration::from_secs(a.introspection_cache_secs);
    config.token_types = token_types(a)?;
    if let Some(path) = &a.ca_path {
        config.ca_pem =
            Some(std::fs::read(path).map_err(|e| {
                WiringError::Auth(format!("QUDAG_OAUTH2_CA_PATH: cannot read {}: {e}", path.display()))
            })?);
    }
    let verifier = OAuthVerifier::new(config, clock).map_err(|e| WiringError::Auth(e.to_string()))?;
    Ok(Some(Arc::new(verifier)))
}

/// The accepted access-token types (`QUDAG_OAUTH2_TOKEN_TYPES`).
fn token_types(a: &crate::settings::AuthSettings) -> Result<qudag_adapter_oauth::TokenTypes, WiringError> {
    qudag_adapter_oauth::TokenTypes::parse(&a.token_types)
        .map_err(|e| WiringError::Auth(format!("QUDAG_OAUTH2_TOKEN_TYPES={}: {e}", a.token_types)))
}

/// The server's keys: from `QUDAG_KEY_FILE` (created with mode 0600 when missing), or
/// ephemeral when it is unset.
///
/// # Errors
/// [`WiringError::Keys`] naming the file and the problem.
pub fn server_keys(settings: &Settings) -> Result<ServerKeys, WiringError> {
    let Some(path) = &settings.tools.key_file else {
        tracing::warn!(
            "No QUDAG_KEY_FILE: using ephemeral keys; vault entries and .dark records will not survive a restart"
        );
        return ServerKeys::ephemeral()
            .map_err(|e| WiringError::Keys { path: "(ephemeral)".into(), reason: e.to_string() });
    };
    let fail = |reason: String| WiringError::Keys { path: path.display().to_string(), reason };
    let seeds = match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            KeySeeds::parse(&text).map_err(|e| fail(e.to_string()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seeds = KeySeeds::generate().map_err(|e| fail(e.to_string()))?;
            write_private(path, seeds.to_json().as_bytes()).map_err(|e| fail(format!("cannot create it: {e}")))?;
            tracing::info!(path = %path.display(), "Created a new server key file");
            seeds
        }
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
    };
    let keys = ServerKeys::from_seeds(&seeds, KeyOrigin::File).map_err(|e| fail(e.to_string()))?;
    tracing::info!(signing_key_id = %keys.signing_key_id(), "Server keys loaded");
    Ok(keys)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "The key file is readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &std::path::Path) {}

/// The audit sink the settings ask for, replacing the in-memory default.
///
/// # Errors
/// [`WiringError::Audit`] naming the file that cannot be used.
async fn audit_sink(settings: &Settings, adapters: &mut Adapters) -> Result<(), WiringError> {
    use qudag_application::usecases::{Acknowledge, QueueFullPolicy, QueuedAuditSink};

    use crate::settings::{AuditAck, AuditSinkKind, FsyncMode};
    let a = &settings.audit;
    if !a.enabled {
        tracing::warn!("QUDAG_AUDIT_ENABLED=false: security-relevant acts are not recorded");
        #[cfg(feature = "memory")]
        {
            let disabled = Arc::new(qudag_adapter_memory::NullAuditSink::default());
            adapters.audit = disabled.clone();
            adapters.audit_query = disabled;
            adapters.components.retain(|c| c.name != "audit");
            return Ok(());
        }
        #[cfg(not(feature = "memory"))]
        return Err(WiringError::MissingFeature { what: "QUDAG_AUDIT_ENABLED=false", feature: "memory" });
    }
    let keep = Duration::from_secs(a.retention_days.saturating_mul(86_400));
    let (sink, query, indicator): AuditParts = match a.sink {
        AuditSinkKind::Memory => return Ok(()),
        AuditSinkKind::File => {
            use qudag_adapter_file::{FileAuditConfig, FileAuditSink, FsyncPolicy};
            let path = a.file.clone().ok_or(WiringError::Config("QUDAG_AUDIT_SINK=file needs QUDAG_AUDIT_FILE"))?;
            let mut config = FileAuditConfig::new(path.clone());
            config.max_file_bytes = a.max_file_bytes;
            // Durable acknowledgement needs each batch synced before it is acknowledged.
            config.fsync = match (a.ack, a.fsync) {
                (AuditAck::Durable, _) | (_, FsyncMode::Always) => FsyncPolicy::Always,
                (AuditAck::Queued, FsyncMode::Interval) => {
                    FsyncPolicy::Interval(Duration::from_millis(a.fsync_interval_ms))
                }
            };
            let sink = Arc::new(
                FileAuditSink::open(config).map_err(|e| WiringError::Audit(format!("QUDAG_AUDIT_FILE: {e}")))?,
            );
            if a.retention_days > 0 {
                // Files are verified, checkpoints included, with this server's key before
                // any is deleted; a chain that does not verify is kept and counted.
                let key = qudag_domain::audit::CheckpointKey {
                    algorithm: adapters.keys.signing().algorithm(),
                    verifying_key: adapters.keys.signing().verifying_key().to_vec(),
                };
                let metrics = adapters.metrics.clone();
                adapters.audit_retention = Some(AuditRetention {
                    keep,
                    prune: Box::new(move |cutoff| {
                        let (path, key, metrics) = (path.clone(), key.clone(), metrics.clone());
                        Box::pin(async move {
                            match tokio::task::spawn_blocking(move || qudag_adapter_file::prune(&path, cutoff, &key))
                                .await
                            {
                                Ok(Ok(report)) => {
                                    if report.unverified.is_some() {
                                        qudag_application::ports::metrics::Metrics::backend_error(
                                            metrics.as_ref(),
                                            "audit_retention",
                                        );
                                    }
                                    Ok(report.events)
                                }
                                Ok(Err(e)) => Err(e.to_string()),
                                Err(e) => Err(format!("the retention task failed: {e}")),
                            }
                        })
                    }),
                });
            }
            (sink.clone(), sink.clone(), sink)
        }
        AuditSinkKind::Postgres => postgres_audit(settings, adapters, keep).await?,
    };
    // A durable sink writes through a bounded queue, off the requests' path.
    let policy = match a.queue_full {
        crate::settings::QueueFull::Block => QueueFullPolicy::Block(Duration::from_millis(a.queue_block_ms)),
        crate::settings::QueueFull::Refuse => QueueFullPolicy::Refuse,
    };
    let acknowledge = match a.ack {
        AuditAck::Durable => Acknowledge::Durable,
        AuditAck::Queued => Acknowledge::Queued,
    };
    let queue = Arc::new(QueuedAuditSink::start(sink, a.queue_capacity, policy).acknowledging(acknowledge));
    let depth = Arc::downgrade(&queue);
    adapters.metrics.register_gauge(
        "qudag_audit_queue_depth",
        "Audit records accepted and not yet written by the durable sink.",
        move || depth.upgrade().map_or(0.0, |q| q.depth() as f64),
    );
    adapters.audit = queue.clone();
    adapters.audit_query = query;
    adapters.components.retain(|c| c.name != "audit");
    adapters.components.push(Component { name: "audit".into(), required: true, indicator });
    adapters.components.push(Component { name: "audit_queue".into(), required: false, indicator: queue });
    Ok(())
}

/// The audit sink, its query side and its health, as the wiring hands them on.
type AuditParts = (Arc<dyn AuditSink>, Arc<dyn AuditQuery>, Arc<dyn HealthIndicator>);

/// The PostgreSQL audit sink: its own lazy pool (so a node can start while the database is
/// down and continue its chain from the spool), migrations run when the database answers.
#[cfg(feature = "postgres")]
async fn postgres_audit(
    settings: &Settings,
    adapters: &mut Adapters,
    keep: Duration,
) -> Result<AuditParts, WiringError> {
    use qudag_adapter_postgres::{PgAuditConfig, PgOptions, PostgresAuditSink};

    let url = settings
        .database
        .url
        .clone()
        .ok_or(WiringError::Config("QUDAG_AUDIT_SINK=postgres needs QUDAG_DATABASE_URL"))?;
    let spool =
        settings.audit.spool.clone().ok_or(WiringError::Config("QUDAG_AUDIT_SINK=postgres needs QUDAG_AUDIT_SPOOL"))?;
    let mut options = PgOptions::default().lazy(true);
    options.max_connections = settings.database.pool_size;
    let db = qudag_adapter_postgres::connect(&url, options).await.map_err(|e| WiringError::Postgres(e.to_string()))?;
    let migrated = qudag_adapter_postgres::migrate(&db).await;
    if settings.tools.node_id.is_none() {
        tracing::warn!(
            node = %adapters.node,
            "QUDAG_NODE_ID is unset: this process starts a new audit chain under a random node id; set it so a restarted node continues its chain"
        );
    }
    let sink = match PostgresAuditSink::open(db.clone(), PgAuditConfig::new(adapters.node.clone(), spool)).await {
        Ok(sink) => sink,
        // Unreachable and nothing spooled to continue from: the migration's error says why.
        Err(error) => {
            return Err(WiringError::Postgres(match migrated {
                Err(migration) => format!("migrations failed: {migration}"),
                Ok(()) => format!("the audit sink cannot start: {error}"),
            }));
        }
    };
    if let Err(error) = migrated {
        tracing::warn!(%error, "PostgreSQL is unreachable at start: audit events are spooled until it returns");
    }
    if keep > Duration::ZERO {
        // Rows are verified, checkpoints included, with this server's key before any is
        // deleted; a chain that does not verify is kept and counted.
        let key = qudag_domain::audit::CheckpointKey {
            algorithm: adapters.keys.signing().algorithm(),
            verifying_key: adapters.keys.signing().verifying_key().to_vec(),
        };
        let metrics = adapters.metrics.clone();
        adapters.audit_retention = Some(AuditRetention {
            keep,
            prune: Box::new(move |cutoff| {
                let (db, key, metrics) = (db.clone(), key.clone(), metrics.clone());
                Box::pin(async move {
                    let report =
                        qudag_adapter_postgres::prune_database(&db, cutoff, &key).await.map_err(|e| e.to_string())?;
                    if !report.unverified.is_empty() {
                        qudag_application::ports::metrics::Metrics::backend_error(metrics.as_ref(), "audit_retention");
                    }
                    Ok(report.rows)
                })
            }),
        });
    }
    let sink = Arc::new(sink);
    Ok((sink.clone(), sink.clone(), sink))
}

#[cfg(not(feature = "postgres"))]
async fn postgres_audit(_: &Settings, _: &mut Adapters, _: Duration) -> Result<AuditParts, WiringError> {
    Err(WiringError::MissingFeature { what: "QUDAG_AUDIT_SINK=postgres", feature: "postgres" })
}

/// This node's id: `QUDAG_NODE_ID`, or `node-` and 8 random hex digits.
///
/// # Errors
/// [`WiringError::Config`] when the OS has no entropy.
pub fn node_id(settings: &Settings) -> Result<String, WiringError> {
    if let Some(id) = &settings.tools.node_id {
        return Ok(id.clone());
    }
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|_| WiringError::Config("no entropy for a node id"))?;
    Ok(format!("node-{}", hex::encode(bytes)))
}

/// Build the adapters `settings` ask for.
///
/// # Errors
/// [`WiringError::MissingFeature`] when they name an adapter not compiled in, or an adapter
/// cannot be set up (the message names the setting).
pub async fn build(settings: &Settings) -> Result<Adapters, WiringError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let keys = Arc::new(server_keys(settings)?);
    let mut adapters = memory(settings, clock.clone(), keys)?;
    adapters.node = node_id(settings)?;
    if settings.rate_limit.store == StateStore::Redis {
        redis_rate_limiter(settings, &mut adapters)?;
    }
    if settings.sessions.store == StateStore::Redis {
        redis_sessions(settings, &mut adapters)?;
    }
    if settings.tools.store == DataStore::Postgres {
        postgres_stores(settings, &mut adapters).await?;
    }
    audit_sink(settings, &mut adapters).await?;
    adapters.verifier = token_verifier(settings, clock)?;
    if let Some(v) = &adapters.verifier {
        adapters.components.push(Component { name: "token_verifier".into(), required: true, indicator: v.clone() });
    }
    Ok(adapters)
}

/// The Redis pool `QUDAG_REDIS_*` describe (connections are made lazily).
#[cfg(feature = "redis")]
fn redis_pool(settings: &Settings, needed_by: &'static str) -> Result<qudag_adapter_redis::RedisPool, WiringError> {
    use qudag_adapter_redis::{RedisConfig, RedisPool};

    let url = settings.redis.url.clone().ok_or(WiringError::Config(needed_by))?;
    let mut config = RedisConfig::new(url).key_prefix(settings.redis.key_prefix.clone());
    config.pool_size = settings.redis.pool_size;
    config.command_timeout = Duration::from_millis(settings.redis.command_timeout_ms);
    RedisPool::new(config).map_err(|e| WiringError::Redis(e.to_string()))
}

/// Sessions, their resumable streams, notifications and membership in Redis: any node
/// serves any session and resumes any stream, a notification raised on one node reaches
/// streams held on every node, `peer_discovery` lists every node. While Redis is
/// unreachable, readiness fails and new sessions get 503.
#[cfg(feature = "redis")]
fn redis_sessions(settings: &Settings, adapters: &mut Adapters) -> Result<(), WiringError> {
    use qudag_adapter_redis::{RedisEventBus, RedisEventStore, RedisMembership, RedisSessionStore};

    /// Events kept per stream for resumption.
    const STREAM_EVENTS: usize = 1_000;
    let pool = redis_pool(settings, "QUDAG_SESSION_STORE=redis needs QUDAG_REDIS_URL")?;
    adapters.sessions = Arc::new(RedisSessionStore::new(pool.clone()));
    adapters.membership = Arc::new(RedisMembership::new(pool.clone()));
    adapters.events = Arc::new(RedisEventBus::new(pool.clone()));
    adapters.event_store = Arc::new(RedisEventStore::new(
        pool.clone(),
        STREAM_EVENTS,
        Duration::from_secs(settings.sessions.absolute_timeout_secs),
    ));
    adapters.maintenance.retain(|m| m.name != "stream sweep");
    adapters.components.retain(|c| c.name != "session_store");
    adapters.components.push(Component { name: "session_store".into(), required: true, indicator: Arc::new(pool) });
    // Redis expires sessions by itself.
    adapters.maintenance.retain(|m| m.name != "session sweep");
    Ok(())
}

#[cfg(not(feature = "redis"))]
fn redis_sessions(_settings: &Settings, _adapters: &mut Adapters) -> Result<(), WiringError> {
    Err(WiringError::MissingFeature { what: "QUDAG_SESSION_STORE=redis", feature: "redis" })
}

#[cfg(feature = "redis")]
fn redis_rate_limiter(settings: &Settings, adapters: &mut Adapters) -> Result<(), WiringError> {
    use qudag_adapter_redis::RedisRateLimiter;

    let pool = redis_pool(settings, "QUDAG_RATE_LIMIT_STORE=redis needs QUDAG_REDIS_URL")?;
    adapters.limiter = Arc::new(RedisRateLimiter::new(pool.clone()));
    // With fail-closed, an unreachable Redis refuses requests, so readiness follows it;
    // with fail-open the server keeps serving and reports itself degraded.
    let required = settings.rate_limit.on_failure == crate::settings::FailurePolicy::FailClosed;
    adapters.components.retain(|c| c.name != "rate_limiter");
    adapters.components.push(Component { name: "rate_limiter".into(), required, indicator: Arc::new(pool) });
    adapters.maintenance.retain(|m| m.name != "rate-limit sweep");
    Ok(())
}

#[cfg(feature = "postgres")]
async fn postgres_stores(settings: &Settings, adapters: &mut Adapters) -> Result<(), WiringError> {
    use qudag_adapter_postgres::{PgOptions, PostgresHealth, PostgresNameRegistry, PostgresVaultStore};

    let url =
        settings.database.url.clone().ok_or(WiringError::Config("QUDAG_STORE=postgres needs QUDAG_DATABASE_URL"))?;
    let mut options = PgOptions::default();
    options.max_connections = settings.database.pool_size;
    let db = qudag_adapter_postgres::connect(&url, options).await.map_err(|e| WiringError::Postgres(e.to_string()))?;
    qudag_adapter_postgres::migrate(&db).await.map_err(|e| WiringError::Postgres(format!("migrations failed: {e}")))?;
    adapters.vault = Arc::new(PostgresVaultStore::new(db.clone()));
    adapters.names = Arc::new(PostgresNameRegistry::new(db.clone()));
    adapters.components.push(Component {
        name: "database".into(),
        required: true,
        indicator: Arc::new(PostgresHealth::new(db)),
    });
    Ok(())
}

#[cfg(not(feature = "postgres"))]
async fn postgres_stores(_settings: &Settings, _adapters: &mut Adapters) -> Result<(), WiringError> {
    Err(WiringError::MissingFeature { what: "QUDAG_STORE=postgres", feature: "postgres" })
}

#[cfg(not(feature = "redis"))]
fn redis_rate_limiter(_settings: &Settings, _adapters: &mut Adapters) -> Result<(), WiringError> {
    Err(WiringError::MissingFeature { what: "QUDAG_RATE_LIMIT_STORE=redis", feature: "redis" })
}

#[cfg(feature = "memory")]
fn memory(settings: &Settings, clock: Arc<dyn Clock>, keys: Arc<ServerKeys>) -> Result<Adapters, WiringError> {
    use qudag_adapter_memory::{
        MemoryAuditSink, MemoryEventBus, MemoryEventStore, MemoryMembership, MemoryNameRegistry, MemoryRateLimiter,
        MemorySessionStore, MemoryVaultStore,
    };

    /// Events the in-memory audit sink keeps for queries (about 1.5 KB each).
    const AUDIT_RETAIN: usize = 10_000;
    /// Vault entries and name records the in-memory stores hold (each a few KB).
    const STORE_CAPACITY: usize = 100_000;

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
        vault: Arc::new(MemoryVaultStore::new(STORE_CAPACITY)),
        names: Arc::new(MemoryNameRegistry::new(STORE_CAPACITY)),
        membership: Arc::new(MemoryMembership::default()),
        keys,
        node: String::new(),
        audit_retention: None,
        metrics: Arc::default(),
    })
}

#[cfg(not(feature = "memory"))]
fn memory(_settings: &Settings, _clock: Arc<dyn Clock>, _keys: Arc<ServerKeys>) -> Result<Adapters, WiringError> {
    Err(WiringError::MissingFeature {
        what: "the in-memory session store, rate limiter and audit sink",
        feature: "memory",
    })
}
