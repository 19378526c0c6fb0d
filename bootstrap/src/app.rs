//! The server's life: bind, serve, drain, stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use qudag_adapter_http::mcp::{McpEndpoint, McpHttpConfig};
use qudag_adapter_http::server::{ConnectionStats, ServerConfig, TlsConfig, TlsState, TlsStats};
use qudag_adapter_http::{HttpState, router};
use qudag_application::admission::{Admission, AuthMode, LimiterFailurePolicy, RateLimitSettings};
use qudag_application::limits::CallerLimits;
use qudag_application::mcp::McpEngine;
use qudag_application::ports::{AuditSink, Clock, Membership, NodeInfo};
use qudag_application::tools::{Dependencies, QuantumLimits, ThisNode};
use qudag_application::usecases::{AdminService, AuditReader, AuthzExplainer, HealthService, SessionService};
use qudag_domain::audit::{AuditAction, AuditRecord, Outcome, digest_json};
use qudag_domain::backoff::Backoff;
use qudag_domain::principal::Principal;
use qudag_domain::quota::QuotaPolicy;
use qudag_domain::rbac::Role;
use qudag_domain::session::SessionTimeouts;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::settings::{FailurePolicy, Protocol, ServerSettings, Settings, TlsVersion};
use crate::wiring::{self, Adapters};

/// The use cases, wired to the chosen adapters.
#[derive(Debug, Clone)]
pub struct Services {
    /// Health and readiness.
    pub health: Arc<HealthService>,
    /// The one admission path: limit → authenticate → limit → authorize → run → audit.
    pub admission: Arc<Admission>,
    /// Stateful-era sessions.
    pub sessions: Arc<SessionService>,
    /// The MCP engine.
    pub engine: Arc<McpEngine>,
    /// The admin operations.
    pub admin: Arc<AdminService>,
}

/// A server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: Settings,
    adapters: Adapters,
    services: Services,
    node: String,
    tls: Option<Arc<TlsState>>,
    connections: Arc<ConnectionStats>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl App {
    /// Wire the adapters and bind the listening socket, serving the QuDAG tools.
    ///
    /// # Errors
    /// When the configuration names an adapter this build lacks, or the socket cannot be
    /// bound (the message names the address and the variables that set it).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, None).await
    }

    /// As [`App::build`], serving `fixtures` instead of the product when given.
    ///
    /// # Errors
    /// As [`App::build`], and when the fixture is not compiled in.
    pub async fn build_with(settings: Settings, fixtures: Option<crate::cli::Fixtures>) -> anyhow::Result<Self> {
        if fixtures.is_some() {
            // Test fixtures are served on loopback only.
            let addr = settings.server.bind_addr()?;
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "--fixtures serves test fixtures on a loopback address only, not {addr} (QUDAG_HOST)"
            );
        }
        // Bad TLS material is a start-up error before anything else is opened.
        let tls = match tls_config(&settings.server) {
            Some(files) => Some(Arc::new(TlsState::load(files).context("loading the TLS certificate")?)),
            None => {
                if settings.server.tls_cert_path.is_some() || settings.server.tls_ca_path.is_some() {
                    tracing::warn!("QUDAG_TLS_* paths are set but QUDAG_PROTOCOL=http: they are not used");
                }
                None
            }
        };
        let adapters = wiring::build(&settings).await?;
        if let Some(tls) = &tls {
            qudag_adapter_http::server::tls_stats::register_metrics(&adapters.metrics, tls.stats());
        }
        if let Some(verifier) = &adapters.verifier {
            match verifier.warm_up().await {
                Ok(keys) => tracing::info!(issuer = verifier.issuer(), keys, "Token verifier ready"),
                Err(error) => tracing::warn!(
                    issuer = verifier.issuer(),
                    %error,
                    "The issuer's signing keys cannot be loaded yet; readiness fails until they can"
                ),
            }
        }
        let node = adapters.node.clone();
        let services = services(&settings, &adapters, fixtures, &node)?;
        let addr = settings.server.bind_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (set by QUDAG_HOST and QUDAG_PORT)"))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let connections = Arc::new(ConnectionStats::default());
        connections.register_metrics(&adapters.metrics);
        Ok(Self { listener, local_addr, settings, adapters, services, node, tls, connections })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The live TLS configuration (reload, counters), when serving https.
    pub fn tls(&self) -> Option<Arc<TlsState>> {
        self.tls.clone()
    }

    /// TLS handshakes per negotiated key-exchange group, when serving https.
    pub fn tls_stats(&self) -> Option<Arc<TlsStats>> {
        self.tls.as_ref().map(|t| t.stats())
    }

    /// Open and accepted connections.
    pub fn connection_stats(&self) -> Arc<ConnectionStats> {
        self.connections.clone()
    }

    /// The wired use cases.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The audit trail, for reading back.
    pub fn audit_query(&self) -> Arc<dyn qudag_application::ports::AuditQuery> {
        self.adapters.audit_query.clone()
    }

    /// The token verifier, when authentication is on.
    pub fn token_verifier(&self) -> Option<Arc<qudag_adapter_oauth::OAuthVerifier>> {
        self.adapters.verifier.clone()
    }

    /// Serve until `shutdown` completes, then drain: readiness fails at once, in-flight
    /// requests get the grace period, audit is flushed.
    ///
    /// # Errors
    /// When the server cannot run (the listener fails).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, local_addr, settings, adapters, services, node, tls, connections } = self;
        let clock = adapters.clock.clone();
        let audit = adapters.audit.clone();
        let config_digest = digest_json(&serde_json::Value::String(settings.to_toml()));
        // Nothing is served that the trail cannot record: a trail that does not take the
        // start record stops the server here.
        audit
            .record(
                AuditRecord::new(clock.now(), AuditAction::ServerStarted, Outcome::Success)
                    .details(serde_json::json!({ "version": crate::VERSION, "config_digest": config_digest, "address": local_addr.to_string() })),
            )
            .await
            .context("the audit trail did not take the server.started record; not serving unaudited")?;

        let trusted_proxies = trusted_proxies(&settings)?;
        let (draining, drain_signal) = tokio::sync::watch::channel(false);
        let mut state = http_state(&settings, &adapters, &services, local_addr.ip().is_loopback())?;
        state.mcp = state.mcp.map(|mcp| mcp.with_shutdown(drain_signal));

        let upkeep = CancellationToken::new();
        for job in adapters.maintenance {
            let stop = upkeep.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(job.every);
                tick.tick().await;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => (job.run)(),
                    }
                }
                tracing::debug!(job = job.name, "Maintenance stopped");
            });
        }

        if settings.audit.enabled && settings.audit.checkpoint_secs > 0 {
            let (audit, keys, clock, stop) = (audit.clone(), adapters.keys.clone(), clock.clone(), upkeep.clone());
            let node = node.clone();
            let every = std::time::Duration::from_secs(settings.audit.checkpoint_secs);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => take_checkpoint(audit.as_ref(), &keys, &node, clock.now()).await,
                    }
                }
            });
        }
        {
            // Repeated refusals are summarised per window; their summaries are written here.
            let (admission, stop) = (services.engine.admission().clone(), upkeep.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                tick.tick().await;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => admission.flush_summaries(false).await,
                    }
                }
            });
        }
        if let Some(retention) = adapters.audit_retention {
            let (clock, stop) = (clock.clone(), upkeep.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(3_600));
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => match (retention.prune)(clock.now().saturating_sub(retention.keep)).await {
                            Ok(0) => {}
                            Ok(events) => tracing::info!(events, "Audit retention applied"),
                            Err(error) => tracing::error!(%error, "Audit retention failed"),
                        },
                    }
                }
            });
        }
        {
            // Answers posted to another node reach the requests waiting here.
            let (engine, stop) = (services.engine.clone(), upkeep.clone());
            tokio::spawn(async move {
                let mut backoff =
                    Backoff::exponential(std::time::Duration::from_millis(200), std::time::Duration::from_secs(5));
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        routed = engine.route_answers() => {
                            if let Err(error) = routed {
                                tracing::warn!(%error, "Cannot receive answers forwarded by other nodes; retrying");
                            }
                        }
                    }
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            });
        }
        tokio::spawn(heartbeat(
            adapters.membership.clone(),
            clock.clone(),
            NodeInfo {
                id: node.clone(),
                address: settings
                    .mcp
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("{}://{local_addr}", if tls.is_some() { "https" } else { "http" })),
                version: crate::VERSION.to_owned(),
                started_at: clock.now(),
                last_seen: clock.now(),
            },
            upkeep.clone(),
        ));

        let health = services.health.clone();
        let grace = settings.server.shutdown_grace();
        let signal = async move {
            shutdown.await;
            health.start_draining();
            let _ = draining.send(true);
            tracing::info!(grace_secs = grace.as_secs(), "Shutting down: readiness off, draining in-flight requests");
        };
        if let Some(tls) = &tls {
            tls.clone().watch(upkeep.clone());
        }
        tracing::info!(address = %local_addr, version = crate::VERSION, tls = tls.is_some(), "Listening");
        let config = server_config(&settings.server, &trusted_proxies);
        let served = qudag_adapter_http::server::serve(listener, config, tls, connections, router(state), signal).await;
        upkeep.cancel();
        if let Err(error) = adapters.membership.leave(&node).await {
            tracing::warn!(%error, "Could not withdraw this node from the membership");
        }

        services.engine.admission().flush_summaries(true).await;
        // A stop the trail did not take makes the exit status non-zero (below), so it is
        // seen by whatever runs the server, not only logged.
        let stopped = audit.record(AuditRecord::new(clock.now(), AuditAction::ServerStopped, Outcome::Success)).await;
        if settings.audit.enabled && settings.audit.checkpoint_secs > 0 {
            take_checkpoint(audit.as_ref(), &adapters.keys, &node, clock.now()).await;
        }
        if let Err(error) = audit.flush().await {
            tracing::error!(%error, "Audit flush at shutdown failed");
        }
        served.context("serving HTTP")?;
        stopped.context("the audit trail did not take the server.stopped record")?;
        tracing::info!("Stopped");
        Ok(())
    }
}

/// How often this node announces itself, and how long an announcement lives: a node that
/// stops (or is killed) drops out of peer discovery within [`HEARTBEAT_TTL`].
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// See [`HEARTBEAT_EVERY`].
pub const HEARTBEAT_TTL: std::time::Duration = std::time::Duration::from_secs(15);

async fn heartbeat(
    membership: Arc<dyn Membership>,
    clock: Arc<dyn Clock>,
    mut node: NodeInfo,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                node.last_seen = clock.now();
                if let Err(error) = membership.announce(&node, HEARTBEAT_TTL).await {
                    tracing::warn!(%error, node = %node.id, "Heartbeat failed");
                }
            }
        }
    }
}

/// The trusted proxies of `settings`, parsed.
fn trusted_proxies(settings: &Settings) -> anyhow::Result<Vec<ipnet::IpNet>> {
    settings.mcp.trusted_proxies.iter().map(|p| crate::settings::parse_cidr(p).map_err(anyhow::Error::msg)).collect()
}

/// What the HTTP routes serve for `settings`: `/mcp`, the admin endpoints, health and
/// metadata, with every limit the settings give. The server and the fuzz targets
/// ([`crate::fuzzing`]) both build their routes here, so the targets reach the same stack.
pub(crate) fn http_state(
    settings: &Settings,
    adapters: &Adapters,
    services: &Services,
    loopback: bool,
) -> anyhow::Result<HttpState> {
    let origin = qudag_adapter_http::auth::PublicOrigin {
        configured: settings.mcp.public_url.clone(),
        trusted_proxies: trusted_proxies(settings)?,
    };
    let mcp = McpEndpoint::new(
        services.engine.clone(),
        adapters.events.clone(),
        adapters.event_store.clone(),
        McpHttpConfig {
            max_body_bytes: settings.mcp.max_body_bytes,
            origin: origin.clone(),
            keep_alive: std::time::Duration::from_secs(settings.mcp.sse_keepalive_secs),
            streams: qudag_adapter_http::mcp::streams::StreamLimits {
                per_principal: settings.mcp.max_streams_per_principal,
                total: settings.mcp.max_streams,
            },
        },
    );
    Ok(HttpState {
        health: services.health.clone(),
        version: crate::VERSION.to_owned(),
        mcp: Some(mcp),
        metrics: adapters.metrics.clone(),
        oauth: qudag_adapter_http::auth::OAuthApi {
            issuer: adapters.verifier.as_ref().map(|v| v.issuer().to_owned()),
            origin: origin.clone(),
        },
        admin: Some(qudag_adapter_http::admin::AdminState { service: services.admin.clone(), origin }),
        cors: qudag_adapter_http::security::CorsPolicy { allowed: settings.mcp.cors_origins.clone(), loopback },
        request_timeout: std::time::Duration::from_secs(settings.mcp.request_timeout_secs),
        body: qudag_adapter_http::body::BodyLimits {
            max_bytes: settings.mcp.max_body_bytes,
            admin_max_bytes: settings.mcp.admin_max_body_bytes,
            per_address_bytes: settings.mcp.max_body_bytes_per_address,
            timeout: std::time::Duration::from_secs(settings.mcp.body_timeout_secs),
        },
    })
}

pub(crate) fn services(
    settings: &Settings,
    adapters: &Adapters,
    fixtures: Option<crate::cli::Fixtures>,
    node: &str,
) -> anyhow::Result<Services> {
    let health = Arc::new(HealthService::new(crate::VERSION, adapters.components.clone()));
    let catalog = wiring::catalog(fixtures, || Dependencies {
        vault_store: adapters.vault.clone(),
        name_registry: adapters.names.clone(),
        membership: adapters.membership.clone(),
        keys: adapters.keys.clone(),
        clock: adapters.clock.clone(),
        audit: adapters.audit.clone(),
        health: health.clone(),
        quantum_limits: quantum_limits(settings),
        max_vault_entries_per_principal: settings.tools.max_vault_entries_per_principal,
        max_names_per_principal: settings.tools.max_names_per_principal,
        node: ThisNode { id: node.to_owned() },
    })?;
    let r = &settings.rate_limit;
    let limits = if r.requests_per_minute == 0 {
        None
    } else {
        Some(RateLimitSettings {
            policy: QuotaPolicy::per_minute(r.requests_per_minute, r.effective_burst())
                .context("QUDAG_RATE_LIMIT / QUDAG_RATE_LIMIT_BURST")?,
            per_user: r.per_user,
            on_failure: match r.on_failure {
                FailurePolicy::FailOpen => LimiterFailurePolicy::FailOpen,
                FailurePolicy::FailClosed => LimiterFailurePolicy::FailClosed,
            },
            daily: match r.daily_quota {
                0 => None,
                n => Some(QuotaPolicy::new(n, std::time::Duration::from_secs(86_400), n).context("QUDAG_DAILY_QUOTA")?),
            },
        })
    };
    let auth = if let Some(verifier) = &adapters.verifier {
        AuthMode::Required(verifier.clone())
    } else {
        tracing::warn!("Authentication is off (QUDAG_REQUIRE_AUTH=false): every caller of /mcp acts as admin");
        AuthMode::Disabled(Principal::anonymous([Role::Admin]))
    };
    let auth_failures = match r.effective_auth_failures() {
        0 => None,
        n => Some(QuotaPolicy::per_minute(n, r.auth_failure_burst()).context("QUDAG_RATE_LIMIT_AUTH_FAILURES")?),
    };
    let admission = Arc::new(
        Admission::new(auth, adapters.limiter.clone(), limits, adapters.audit.clone(), adapters.clock.clone())
            .with_metrics(adapters.metrics.clone())
            .with_auth_failure_limit(auth_failures),
    );
    let s = &settings.sessions;
    let timeouts = SessionTimeouts::new(
        std::time::Duration::from_secs(s.idle_timeout_secs),
        std::time::Duration::from_secs(s.absolute_timeout_secs),
    )
    .context("QUDAG_SESSION_IDLE_TIMEOUT_SECS / QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS")?;
    let sessions = Arc::new(
        SessionService::new(adapters.sessions.clone(), adapters.clock.clone(), admission.clone(), timeouts)
            .with_per_holder(s.max_sessions_per_principal),
    );
    let limits = CallerLimits {
        sessions: s.max_sessions_per_principal,
        subscriptions_per_session: s.max_subscriptions_per_session,
        subscription_uri_bytes: s.max_subscription_uri_bytes,
        tool_calls: settings.mcp.max_tool_calls_per_principal,
        pending_requests: settings.mcp.max_pending_requests_per_principal,
    };
    let state_key = match settings.request_state_key_bytes().map_err(anyhow::Error::msg)? {
        Some(key) => key,
        None => {
            if settings.sessions.store == crate::settings::StateStore::Redis {
                tracing::warn!(
                    "QUDAG_REQUEST_STATE_KEY is unset while sessions are shared in Redis: each node makes its own, \
                     so a client's answer to a sampling, elicitation or roots request, or an input-required \
                     request state, reaching another node than the one that asked is refused; give every node \
                     the same key"
                );
            }
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no entropy for the request-state key: {e}"))?;
            key
        }
    };
    let catalog = Arc::new(catalog);
    let roles_claim = qudag_domain::principal::RolesClaim::new(settings.auth.roles_claim.clone());
    let explainer = AuthzExplainer::new(catalog.clone(), roles_claim);
    let admin =
        Arc::new(AdminService::new(admission.clone(), explainer, AuditReader::new(adapters.audit_query.clone())));
    let engine = Arc::new(
        McpEngine::new(catalog, admission.clone(), sessions.clone(), adapters.events.clone(), state_key)
            .map_err(anyhow::Error::msg)?
            .with_limits(limits),
    );
    Ok(Services { health, admission, sessions, engine, admin })
}

/// Sign the audit chain's head; a failure is logged loudly (the next one covers it).
async fn take_checkpoint(
    audit: &dyn AuditSink,
    keys: &qudag_application::tools::ServerKeys,
    node: &str,
    now: qudag_domain::Timestamp,
) {
    match qudag_application::usecases::checkpoint(audit, keys.signing(), now).await {
        // The log pipeline is a witness of the trail's head: with this line kept elsewhere,
        // `audit verify --expect-head SEQ:HASH` notices records cut off the trail's end.
        Ok(event) => tracing::info!(
            node,
            seq = event.seq,
            hash = %event.hash,
            covers_seq = %event.record.details["covers_seq"],
            covers_hash = event.record.details["covers_hash"].as_str().unwrap_or_default(),
            signature = event.record.details["signature"].as_str().unwrap_or_default(),
            expect_head = %format_args!("{}:{}", event.seq, event.hash),
            "Audit checkpoint signed"
        ),
        Err(error) => tracing::error!(%error, "Audit checkpoint failed"),
    }
}

/// The simulation limits the settings ask for.
fn quantum_limits(settings: &Settings) -> QuantumLimits {
    let t = &settings.tools;
    let mut limits = QuantumLimits::default();
    limits.circuit.max_qubits = t.max_qubits;
    limits.circuit.max_state_bytes = qudag_domain::quantum::Limits::state_bytes(t.max_qubits).unwrap_or(usize::MAX);
    limits.max_amplitude_updates = t.max_amplitude_updates;
    limits
}

/// Completes on SIGINT or SIGTERM.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // The handlers are installed here, when this is called (before the server says it is
    // listening), not when the future is first polled: a SIGTERM that arrives right after
    // the "Listening" line is a graceful shutdown, never the default action (death).
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        let wait = |installed: std::io::Result<Signal>, name: &'static str| async move {
            match installed {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(error) => {
                    tracing::error!(%error, "Cannot listen for {name}");
                    std::future::pending::<()>().await;
                }
            }
        };
        async move {
            tokio::select! {
                () = wait(interrupt, "SIGINT") => tracing::info!(signal = "SIGINT", "Signal received"),
                () = wait(terminate, "SIGTERM") => tracing::info!(signal = "SIGTERM", "Signal received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "Cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "SIGINT", "Signal received");
    }
}

/// The connection limits the settings ask for.
fn server_config(s: &ServerSettings, trusted_proxies: &[ipnet::IpNet]) -> ServerConfig {
    ServerConfig {
        max_header_bytes: s.max_header_bytes,
        header_timeout: std::time::Duration::from_secs(s.header_timeout_secs),
        keepalive_timeout: std::time::Duration::from_secs(s.keepalive_timeout_secs),
        max_connections: s.max_connections,
        max_connections_per_address: s.max_connections_per_address,
        unlimited_peers: trusted_proxies.to_vec(),
        handshake_timeout: std::time::Duration::from_secs(s.tls_handshake_timeout_secs),
        shutdown_grace: s.shutdown_grace(),
    }
}

/// The TLS part of the server settings, when https is on.
fn tls_config(s: &ServerSettings) -> Option<TlsConfig> {
    match (&s.tls_cert_path, &s.tls_key_path) {
        (Some(cert), Some(key)) if s.protocol == Protocol::Https => Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
            ca: s.tls_ca_path.clone(),
            min_version: match s.tls_min_version {
                TlsVersion::V1_3 => qudag_adapter_http::server::TlsVersion::V1_3,
                TlsVersion::V1_2 => qudag_adapter_http::server::TlsVersion::V1_2,
            },
        }),
        _ => None,
    }
}
