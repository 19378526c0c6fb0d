//! The server's configuration: one [`Settings`] tree, layered
//! defaults → TOML file (`--config`) → `QUDAG_*` environment → command-line flags,
//! and validated as a whole before anything starts.
//!
//! Every environment variable is declared once in [`ENV_VARS`] with its TOML key, default
//! and meaning; `docs/configuration.md` documents exactly that list (a test keeps them in
//! step). An invalid value is a [`ConfigError`] naming where it came from (the variable,
//! the file and key, or the flag) and the value itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the server can be told.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// Listening socket and shutdown.
    pub server: ServerSettings,
    /// Log level and format.
    pub logging: LoggingSettings,
    /// MCP sessions (stateful protocol era).
    pub sessions: SessionSettings,
    /// Rate limits on `/mcp`.
    pub rate_limit: RateLimitSettings,
    /// Authentication of `/mcp` callers.
    pub auth: AuthSettings,
    /// The MCP endpoint.
    pub mcp: McpSettings,
    /// Redis, for state shared by every node.
    pub redis: RedisSettings,
    /// The QuDAG tools: key material, where vault entries and names live, simulation limits.
    pub tools: ToolSettings,
    /// PostgreSQL, for data every node shares.
    pub database: DatabaseSettings,
    /// The audit trail.
    pub audit: AuditSettings,
}

/// Where audit events go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditSinkKind {
    /// In this process: the latest events, for `/admin/audit`; not durable.
    #[default]
    Memory,
    /// JSON lines with a hash chain in `QUDAG_AUDIT_FILE`, rotated beside it.
    File,
    /// Rows with a hash chain per node in PostgreSQL (`QUDAG_DATABASE_URL`), spooled to
    /// `QUDAG_AUDIT_SPOOL` while the database is unreachable.
    Postgres,
}

/// When the file sink makes writes durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// Before each event is acknowledged.
    Always,
    /// At most every `fsync_interval_ms`.
    #[default]
    Interval,
}

/// The audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Whether security-relevant acts are recorded at all.
    pub enabled: bool,
    /// Where they go.
    pub sink: AuditSinkKind,
    /// The file sink's active file.
    pub file: Option<PathBuf>,
    /// The PostgreSQL sink's local spool, where events wait while the database is unreachable.
    pub spool: Option<PathBuf>,
    /// The file sink's fsync policy.
    pub fsync: FsyncMode,
    /// With `fsync = interval`, the most milliseconds between syncs.
    pub fsync_interval_ms: u64,
    /// A file is rotated before it would pass this size.
    pub max_file_bytes: u64,
    /// Seconds between signed checkpoints of the chain (0: none).
    pub checkpoint_secs: u64,
    /// Records the queue in front of a durable sink holds.
    pub queue_capacity: usize,
    /// What happens when that queue is full.
    pub queue_full: QueueFull,
    /// With `queue_full = block`, the most milliseconds a request waits for a place.
    pub queue_block_ms: u64,
    /// Days audit events are kept (rotated files, or rows, removed once a signed checkpoint
    /// covers them); 0 keeps everything.
    pub retention_days: u64,
}

/// What happens when the audit queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueFull {
    /// Wait up to `queue_block_ms`, then answer 503.
    #[default]
    Block,
    /// Answer 503 at once, and refuse new requests until the queue drains.
    Refuse,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            sink: AuditSinkKind::Memory,
            file: None,
            spool: None,
            fsync: FsyncMode::Interval,
            fsync_interval_ms: 1000,
            max_file_bytes: 64 << 20,
            checkpoint_secs: 300,
            queue_capacity: 10_000,
            queue_full: QueueFull::Block,
            queue_block_ms: 100,
            retention_days: 0,
        }
    }
}

/// Where the tools keep vault entries and `.dark` records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataStore {
    /// In this process (lost at exit).
    #[default]
    Memory,
    /// In PostgreSQL (`QUDAG_DATABASE_URL`), shared by every node.
    Postgres,
}

/// The QuDAG tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolSettings {
    /// The server's key file (ML-DSA-65 and ML-KEM seeds, JSON, mode 0600); created on first
    /// start when missing. Ephemeral keys when unset.
    pub key_file: Option<PathBuf>,
    /// Where vault entries and `.dark` records live.
    pub store: DataStore,
    /// Most qubits in one circuit.
    pub max_qubits: usize,
    /// Most amplitude updates (gates × 2ⁿ) one simulation may take.
    pub max_amplitude_updates: u64,
    /// This node's id in peer discovery; random when unset.
    pub node_id: Option<String>,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self { key_file: None, store: DataStore::Memory, max_qubits: 24, max_amplitude_updates: 1 << 33, node_id: None }
    }
}

/// PostgreSQL.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/database`.
    pub url: Option<String>,
    /// Connections per node.
    pub pool_size: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: None, pool_size: 10 }
    }
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Authentication of `/mcp` and admin callers: the OAuth 2.0 resource server.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Require a bearer token on every `/mcp` request.
    pub require_auth: bool,
    /// Allow `require_auth = false` on a non-loopback address (never in production).
    pub allow_unauthenticated_network: bool,
    /// The authorization server's issuer identifier; its metadata is discovered from it.
    pub issuer_url: Option<String>,
    /// Our audience (RFC 8707 resource): tokens must name it in `aud`.
    pub audience: Option<String>,
    /// The JWKS URL, when it should not be discovered.
    pub jwks_url: Option<String>,
    /// RFC 7662 introspection endpoint, for opaque tokens.
    pub introspection_url: Option<String>,
    /// Our client id at the authorization server (introspection).
    pub client_id: Option<String>,
    /// Our client secret (introspection).
    pub client_secret: Option<String>,
    /// Shared secret for HS256/384/512 tokens; HMAC tokens are refused without one.
    pub hmac_secret: Option<String>,
    /// Where tokens carry roles (`roles`, `realm_access.roles`, a namespaced claim).
    pub roles_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`, seconds (at most 60).
    pub leeway_secs: u64,
    /// How long a fetched JWKS is used, seconds.
    pub jwks_cache_secs: u64,
    /// Least seconds between JWKS refetches caused by unknown key ids.
    pub jwks_min_refresh_secs: u64,
    /// Longest token accepted, bytes.
    pub max_token_bytes: usize,
    /// Verified tokens remembered until they expire.
    pub token_cache_size: usize,
    /// Oldest DPoP proof accepted, seconds.
    pub dpop_max_age_secs: u64,
    /// Extra CA certificates (PEM file) trusted for the authorization server.
    pub ca_path: Option<PathBuf>,
    /// Developer mode: trust tokens signed by the local developer key (`serve --dev`).
    pub dev_mode: bool,
    /// The developer key file, shared by `serve --dev` and `dev-token`.
    pub dev_key_path: Option<PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            require_auth: true,
            allow_unauthenticated_network: false,
            issuer_url: None,
            audience: None,
            jwks_url: None,
            introspection_url: None,
            client_id: None,
            client_secret: None,
            hmac_secret: None,
            roles_claim: "roles".into(),
            leeway_secs: 30,
            jwks_cache_secs: 300,
            jwks_min_refresh_secs: 10,
            max_token_bytes: 8 * 1024,
            token_cache_size: 10_000,
            dpop_max_age_secs: 300,
            ca_path: None,
            dev_mode: false,
            dev_key_path: None,
        }
    }
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("require_auth", &self.require_auth)
            .field("issuer_url", &self.issuer_url)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .field("introspection_url", &self.introspection_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "<redacted>"))
            .field("roles_claim", &self.roles_claim)
            .field("dev_mode", &self.dev_mode)
            .finish_non_exhaustive()
    }
}

impl AuthSettings {
    /// The audience developer-mode tokens are made for.
    pub fn dev_audience(&self) -> String {
        self.audience.clone().unwrap_or_else(|| "qudag-mcp-dev".into())
    }

    /// The developer key file.
    pub fn dev_key_file(&self) -> PathBuf {
        self.dev_key_path.clone().unwrap_or_else(|| std::env::temp_dir().join("qudag-mcp-dev.key"))
    }
}

/// The MCP endpoint.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpSettings {
    /// Browser origins allowed to call `/mcp` besides loopback ones (loopback origins are
    /// allowed when the server is bound to loopback).
    pub cors_origins: Vec<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Hex key (at least 32 bytes) sealing input-required request state; random per
    /// process when unset, so several nodes must share one.
    pub request_state_key: Option<String>,
    /// Proxies (IP addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// The server's external base URL (e.g. `https://mcp.example.com`), for the
    /// protected-resource metadata and DPoP; derived from each request when unset.
    pub public_url: Option<String>,
    /// Seconds until a response must start (503 after).
    pub request_timeout_secs: u64,
    /// Long-lived SSE streams (GET streams, `subscriptions/listen`) one principal may hold.
    pub max_streams_per_principal: usize,
    /// Long-lived SSE streams this node holds at most.
    pub max_streams: usize,
    /// Seconds between SSE keep-alive comments.
    pub sse_keepalive_secs: u64,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            request_state_key: None,
            trusted_proxies: Vec::new(),
            public_url: None,
            request_timeout_secs: 120,
            max_streams_per_principal: 16,
            max_streams: 10_000,
            sse_keepalive_secs: 15,
        }
    }
}

impl fmt::Debug for McpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpSettings")
            .field("cors_origins", &self.cors_origins)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_state_key", &self.request_state_key.as_ref().map(|_| "<redacted>"))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// The transport protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Plain HTTP (behind a TLS-terminating proxy, or on loopback).
    #[default]
    Http,
    /// HTTPS with rustls.
    Https,
}

/// Listening socket and shutdown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// `http` or `https`.
    pub protocol: Protocol,
    /// The address to bind (an IP address; `localhost` means 127.0.0.1).
    pub host: String,
    /// The TCP port (0 picks a free one).
    pub port: u16,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { protocol: Protocol::Http, host: "127.0.0.1".into(), port: 3000, shutdown_grace_secs: 30 }
    }
}

impl ServerSettings {
    /// The socket address to bind.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        let ip = parse_host(&self.host).map_err(|reason| ConfigError::invalid("QUDAG_HOST", &self.host, reason))?;
        Ok(SocketAddr::new(ip, self.port))
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Log level and format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// A level (`error`, `warn`, `info`, `debug`, `trace`) or a filter directive such as
    /// `info,qudag_adapter_http=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// MCP sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Seconds a session may stay unused.
    pub idle_timeout_secs: u64,
    /// Seconds a session may live at most.
    pub absolute_timeout_secs: u64,
    /// Live sessions held at most (memory store).
    pub max_sessions: usize,
    /// Where sessions (and the list of live nodes) live.
    pub store: StateStore,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 1_800,
            absolute_timeout_secs: 86_400,
            max_sessions: 10_000,
            store: StateStore::Memory,
        }
    }
}

/// What to do when the rate limiter's backend is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Let requests through.
    #[default]
    FailOpen,
    /// Refuse requests with 503.
    FailClosed,
}

/// Rate limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests per minute per caller; 0 turns rate limiting off.
    pub requests_per_minute: u32,
    /// Requests a caller may make at once from a full allowance.
    pub burst: u32,
    /// Count authenticated callers per principal rather than per address.
    pub per_user: bool,
    /// Keys remembered at most (memory limiter).
    pub max_keys: usize,
    /// `fail-open` or `fail-closed`.
    pub on_failure: FailurePolicy,
    /// Where limiter state lives: `memory` (this process) or `redis` (shared by all nodes).
    pub store: StateStore,
    /// Requests per authenticated principal per rolling day; 0 for none.
    pub daily_quota: u32,
}

/// Where shared state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateStore {
    /// In this process.
    #[default]
    Memory,
    /// In Redis (`QUDAG_REDIS_URL`), shared by every node.
    Redis,
}

/// Redis.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: Option<String>,
    /// Prefix of every key the server writes.
    pub key_prefix: String,
    /// Connections per node.
    pub pool_size: u32,
    /// Milliseconds a command may take before Redis counts as unavailable.
    pub command_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self { url: None, key_prefix: "qudag:".into(), pool_size: 16, command_timeout_ms: 1_000 }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .finish()
    }
}

/// A URL with any `user:password@` part replaced.
pub fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://<credentials>@{host}"),
        _ => url.to_owned(),
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            burst: 100,
            per_user: true,
            max_keys: 100_000,
            on_failure: FailurePolicy::FailOpen,
            store: StateStore::Memory,
            daily_quota: 0,
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value is malformed or out of range.
    #[error("invalid {source_name}={value:?}: {reason}")]
    Invalid {
        /// Where it came from: a variable, `file:key`, or `--flag`.
        source_name: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration file cannot be read or parsed.
    #[error("configuration file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(source: impl Into<String>, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        Self::Invalid { source_name: source.into(), value: value.to_string(), reason: reason.into() }
    }
}

/// One `QUDAG_*` variable.
#[derive(Debug)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// The TOML key it overrides (`section.key`).
    pub key: &'static str,
    /// The default, as written in the docs.
    pub default: &'static str,
    /// What it means.
    pub help: &'static str,
    apply: fn(&mut Settings, &str) -> Result<(), String>,
}

/// Every environment variable the server reads, in documentation order.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "QUDAG_PROTOCOL",
        key: "server.protocol",
        default: "http",
        help: "`http`, or `https` (TLS with rustls; not yet available in this version: refused at start-up)",
        apply: |s, v| {
            s.server.protocol = parse_choice(v, &[("http", Protocol::Http), ("https", Protocol::Https)])?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_HOST",
        key: "server.host",
        default: "127.0.0.1",
        help: "IP address to bind; `0.0.0.0` or `::` for every interface, `localhost` for 127.0.0.1",
        apply: |s, v| {
            parse_host(v)?;
            s.server.host = v.to_owned();
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_PORT",
        key: "server.port",
        default: "3000",
        help: "TCP port to listen on, 0 to 65535 (0 picks a free port and logs it)",
        apply: |s, v| {
            s.server.port = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_SHUTDOWN_GRACE_SECS",
        key: "server.shutdown_grace_secs",
        default: "30",
        help: "seconds in-flight requests get to finish after SIGTERM or SIGINT",
        apply: |s, v| {
            s.server.shutdown_grace_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_LOG_LEVEL",
        key: "logging.level",
        default: "info",
        help: "`error`, `warn`, `info`, `debug`, `trace`, or a filter directive such as `info,qudag_adapter_http=debug`",
        apply: |s, v| {
            validate_log_level(v)?;
            s.logging.level = v.to_owned();
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_LOG_FORMAT",
        key: "logging.format",
        default: "text",
        help: "`text` (human-readable) or `json` (one object per line)",
        apply: |s, v| {
            s.logging.format = parse_choice(v, &[("text", LogFormat::Text), ("json", LogFormat::Json)])?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_SESSION_IDLE_TIMEOUT_SECS",
        key: "sessions.idle_timeout_secs",
        default: "1800",
        help: "seconds an MCP session may stay unused before it expires",
        apply: |s, v| {
            s.sessions.idle_timeout_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS",
        key: "sessions.absolute_timeout_secs",
        default: "86400",
        help: "seconds an MCP session may live at most, however busy",
        apply: |s, v| {
            s.sessions.absolute_timeout_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_MAX_SESSIONS",
        key: "sessions.max_sessions",
        default: "10000",
        help: "live sessions held at most by the in-memory store; new sessions are refused beyond it",
        apply: |s, v| {
            s.sessions.max_sessions = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_SESSION_STORE",
        key: "sessions.store",
        default: "memory",
        help: "where stateful-era MCP sessions, their resumable streams, notifications, answers to server-to-client requests and the list of live nodes (`peer_discovery`) live: `memory` (this process) or `redis` (shared by every node, so any node serves any session and resumes any stream; needs QUDAG_REDIS_URL and the `redis` cargo feature)",
        apply: |s, v| {
            s.sessions.store = parse_choice(v, &[("memory", StateStore::Memory), ("redis", StateStore::Redis)])?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT",
        key: "rate_limit.requests_per_minute",
        default: "600",
        help: "requests per minute per caller on `/mcp`; 0 turns rate limiting off",
        apply: |s, v| {
            s.rate_limit.requests_per_minute = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_BURST",
        key: "rate_limit.burst",
        default: "100",
        help: "requests a caller may make at once from a full allowance (at least 1)",
        apply: |s, v| {
            s.rate_limit.burst = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_PER_USER",
        key: "rate_limit.per_user",
        default: "true",
        help: "count authenticated callers per principal (`true`) or per client address (`false`); unauthenticated traffic is always counted per address",
        apply: |s, v| {
            s.rate_limit.per_user = parse_bool(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_MAX_KEYS",
        key: "rate_limit.max_keys",
        default: "100000",
        help: "callers the in-memory limiter remembers at most; idle ones are forgotten first",
        apply: |s, v| {
            s.rate_limit.max_keys = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_FAILURE",
        key: "rate_limit.on_failure",
        default: "fail-open",
        help: "when the limiter's backend is unreachable: `fail-open` (serve) or `fail-closed` (refuse with 503)",
        apply: |s, v| {
            s.rate_limit.on_failure =
                parse_choice(v, &[("fail-open", FailurePolicy::FailOpen), ("fail-closed", FailurePolicy::FailClosed)])?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_DAILY_QUOTA",
        key: "rate_limit.daily_quota",
        default: "0",
        help: "requests each authenticated principal may make per rolling day, on top of QUDAG_RATE_LIMIT; 0 for no daily quota",
        apply: |s, v| {
            s.rate_limit.daily_quota = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_TRUSTED_PROXIES",
        key: "mcp.trusted_proxies",
        default: "",
        help: "comma-separated IP addresses or CIDR blocks of proxies whose `X-Forwarded-For` is believed (e.g. `10.0.0.0/8`); from anyone else the header is ignored",
        apply: |s, v| {
            let list: Vec<String> = v.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
            for item in &list {
                parse_cidr(item)?;
            }
            s.mcp.trusted_proxies = list;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_STORE",
        key: "rate_limit.store",
        default: "memory",
        help: "where rate-limit state lives: `memory` (this process) or `redis` (shared by every node; needs QUDAG_REDIS_URL and the `redis` cargo feature)",
        apply: |s, v| {
            s.rate_limit.store = parse_choice(v, &[("memory", StateStore::Memory), ("redis", StateStore::Redis)])?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_REDIS_URL",
        key: "redis.url",
        default: "",
        help: "`redis://[user:password@]host:port[/db]`; credentials are never logged",
        apply: |s, v| {
            if !(v.starts_with("redis://") || v.starts_with("rediss://")) {
                return Err("expected a redis:// URL".into());
            }
            s.redis.url = Some(v.to_owned());
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_REDIS_KEY_PREFIX",
        key: "redis.key_prefix",
        default: "qudag:",
        help: "prefix of every Redis key the server writes, so several deployments or test runs can share one Redis",
        apply: |s, v| {
            s.redis.key_prefix = v.to_owned();
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_REDIS_POOL_SIZE",
        key: "redis.pool_size",
        default: "16",
        help: "Redis connections per node",
        apply: |s, v| {
            s.redis.pool_size = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_REDIS_TIMEOUT_MS",
        key: "redis.command_timeout_ms",
        default: "1000",
        help: "milliseconds a Redis command may take before Redis counts as unavailable",
        apply: |s, v| {
            s.redis.command_timeout_ms = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_REQUIRE_AUTH",
        key: "auth.require_auth",
        default: "true",
        help: "require a bearer token on `/mcp`; `false` only for local use (refused on a non-loopback address unless QUDAG_ALLOW_UNAUTHENTICATED_NETWORK is set)",
        apply: |s, v| {
            s.auth.require_auth = parse_bool(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_ALLOW_UNAUTHENTICATED_NETWORK",
        key: "auth.allow_unauthenticated_network",
        default: "false",
        help: "allow QUDAG_REQUIRE_AUTH=false on a non-loopback address; anyone who can reach the port can then use every tool",
        apply: |s, v| {
            s.auth.allow_unauthenticated_network = parse_bool(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_ISSUER_URL",
        key: "auth.issuer_url",
        default: "",
        help: "the authorization server's issuer identifier (exact `iss`); its JWKS is found by OpenID Connect / RFC 8414 discovery; `https` required except on loopback; required when authentication is on",
        apply: |s, v| {
            s.auth.issuer_url = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_AUDIENCE",
        key: "auth.audience",
        default: "",
        help: "our audience (RFC 8707 resource): a token's `aud` must contain it, e.g. the public MCP URL `https://mcp.example.com/mcp` or an API identifier; required when authentication is on",
        apply: |s, v| {
            s.auth.audience = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_JWKS_URL",
        key: "auth.jwks_url",
        default: "",
        help: "the issuer's JWKS URL, when it should not be discovered from QUDAG_OAUTH2_ISSUER_URL",
        apply: |s, v| {
            s.auth.jwks_url = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_INTROSPECTION_URL",
        key: "auth.introspection_url",
        default: "",
        help: "RFC 7662 introspection endpoint for opaque (non-JWT) tokens; needs QUDAG_OAUTH2_CLIENT_ID and QUDAG_OAUTH2_CLIENT_SECRET",
        apply: |s, v| {
            s.auth.introspection_url = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_CLIENT_ID",
        key: "auth.client_id",
        default: "",
        help: "this server's client id at the authorization server, for introspection",
        apply: |s, v| {
            s.auth.client_id = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_CLIENT_SECRET",
        key: "auth.client_secret",
        default: "",
        help: "this server's client secret, for introspection (never logged)",
        apply: |s, v| {
            s.auth.client_secret = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_HMAC_SECRET",
        key: "auth.hmac_secret",
        default: "",
        help: "shared secret (at least 32 bytes) for HS256/384/512 tokens; without it HMAC-signed tokens are refused (never logged)",
        apply: |s, v| {
            s.auth.hmac_secret = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_ROLES_CLAIM",
        key: "auth.roles_claim",
        default: "roles",
        help: "the claim holding role names: a top-level claim (`roles`, or a namespaced one such as `https://qudag.example/roles`), else a dotted path (`realm_access.roles` for Keycloak)",
        apply: |s, v| {
            s.auth.roles_claim = v.trim().to_owned();
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_LEEWAY_SECS",
        key: "auth.leeway_secs",
        default: "30",
        help: "clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (0-60)",
        apply: |s, v| {
            s.auth.leeway_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_JWKS_CACHE_SECS",
        key: "auth.jwks_cache_secs",
        default: "300",
        help: "seconds a fetched JWKS is used before it is fetched again (a token with an unknown `kid` refetches sooner)",
        apply: |s, v| {
            s.auth.jwks_cache_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_JWKS_MIN_REFRESH_SECS",
        key: "auth.jwks_min_refresh_secs",
        default: "10",
        help: "least seconds between two JWKS refetches caused by unknown `kid`s, so made-up key ids cannot flood the issuer",
        apply: |s, v| {
            s.auth.jwks_min_refresh_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_MAX_TOKEN_BYTES",
        key: "auth.max_token_bytes",
        default: "8192",
        help: "longest access token accepted, in bytes; longer ones are refused before parsing",
        apply: |s, v| {
            s.auth.max_token_bytes = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_TOKEN_CACHE_SIZE",
        key: "auth.token_cache_size",
        default: "10000",
        help: "verified tokens remembered (by digest) until they expire, so a busy client is not re-verified per request; 0 turns the cache off",
        apply: |s, v| {
            s.auth.token_cache_size = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_DPOP_MAX_AGE_SECS",
        key: "auth.dpop_max_age_secs",
        default: "300",
        help: "oldest DPoP proof (`iat`) accepted for a DPoP-bound token, in seconds",
        apply: |s, v| {
            s.auth.dpop_max_age_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_OAUTH2_CA_PATH",
        key: "auth.ca_path",
        default: "",
        help: "PEM file of extra CA certificates trusted for the authorization server (besides the system roots)",
        apply: |s, v| {
            s.auth.ca_path = non_empty(v).map(PathBuf::from);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_DEV_KEY_PATH",
        key: "auth.dev_key_path",
        default: "(temp dir)/qudag-mcp-dev.key",
        help: "the developer-mode signing key shared by `serve --dev` and `dev-token` (created on first use, mode 0600)",
        apply: |s, v| {
            s.auth.dev_key_path = non_empty(v).map(PathBuf::from);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_PUBLIC_URL",
        key: "mcp.public_url",
        default: "",
        help: "the server's external base URL (e.g. `https://mcp.example.com`), used in the protected-resource metadata and for DPoP `htu`; derived from each request's Host (and a trusted proxy's X-Forwarded-Proto/-Host) when unset",
        apply: |s, v| {
            s.mcp.public_url = non_empty(v).map(|u| u.trim_end_matches('/').to_owned());
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_CORS_ORIGINS",
        key: "mcp.cors_origins",
        default: "",
        help: "comma-separated browser origins allowed to call the server (e.g. `https://app.example.com`), `*` for any: they get CORS headers and answered preflights; any other `Origin` gets no CORS headers, 403 on preflights and on `/mcp`; loopback origins are allowed while bound to loopback",
        apply: |s, v| {
            s.mcp.cors_origins = v.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect();
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_MAX_BODY_BYTES",
        key: "mcp.max_body_bytes",
        default: "4194304",
        help: "largest request body accepted on `/mcp`, in bytes; larger ones get 413",
        apply: |s, v| {
            s.mcp.max_body_bytes = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_REQUEST_TIMEOUT_SECS",
        key: "mcp.request_timeout_secs",
        default: "120",
        help: "seconds a request may take until its response starts (a body still arriving, a tool still running without streaming); then 503 and its work is dropped. Streams, once started, are not cut",
        apply: |s, v| {
            s.mcp.request_timeout_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_MAX_STREAMS_PER_PRINCIPAL",
        key: "mcp.max_streams_per_principal",
        default: "16",
        help: "long-lived SSE streams (GET streams, `subscriptions/listen`) one caller may hold open at once; one more gets 429",
        apply: |s, v| {
            s.mcp.max_streams_per_principal = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_MAX_STREAMS",
        key: "mcp.max_streams",
        default: "10000",
        help: "long-lived SSE streams this node holds open at once, all callers together; one more gets 503",
        apply: |s, v| {
            s.mcp.max_streams = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_SSE_KEEPALIVE_SECS",
        key: "mcp.sse_keepalive_secs",
        default: "15",
        help: "seconds between keep-alive comments on open SSE streams: keeps proxies from closing quiet streams, and is how a stream whose client went away is noticed and its place freed",
        apply: |s, v| {
            s.mcp.sse_keepalive_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_KEY_FILE",
        key: "tools.key_file",
        default: "",
        help: "the server's key file (ML-DSA-65 signing seed and ML-KEM vault seeds, JSON), created with mode 0600 when missing; every node must load the same file; ephemeral keys when unset (vault entries and name records are then unreadable after a restart)",
        apply: |s, v| {
            s.tools.key_file = non_empty(v).map(PathBuf::from);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_STORE",
        key: "tools.store",
        default: "memory",
        help: "where vault entries and .dark name records live: `memory` (this process) or `postgres` (shared; needs QUDAG_DATABASE_URL, QUDAG_KEY_FILE and the `postgres` cargo feature)",
        apply: |s, v| {
            s.tools.store = match v.trim() {
                "memory" => DataStore::Memory,
                "postgres" => DataStore::Postgres,
                _ => return Err("expected `memory` or `postgres`".into()),
            };
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_DATABASE_URL",
        key: "database.url",
        default: "",
        help: "PostgreSQL URL (`postgres://user:password@host:5432/db`) for QUDAG_STORE=postgres and QUDAG_AUDIT_SINK=postgres; migrations run at start (or `qudag-mcp migrate`)",
        apply: |s, v| {
            s.database.url = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_DATABASE_POOL_SIZE",
        key: "database.pool_size",
        default: "10",
        help: "PostgreSQL connections per node",
        apply: |s, v| {
            s.database.pool_size = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_MAX_QUBITS",
        key: "tools.max_qubits",
        default: "24",
        help: "most qubits in one circuit (1-30); a state vector takes 16·2ⁿ bytes (24 qubits: 256 MiB)",
        apply: |s, v| {
            s.tools.max_qubits = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_MAX_AMPLITUDE_UPDATES",
        key: "tools.max_amplitude_updates",
        default: "8589934592",
        help: "most work one simulation may take, in amplitude updates (gates × 2ⁿ); bounds CPU time per call (about 1-3 ns per update)",
        apply: |s, v| {
            s.tools.max_amplitude_updates = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_NODE_ID",
        key: "tools.node_id",
        default: "(random)",
        help: "this node's id in peer discovery (letters, digits, `-`, `_`, `.`; at most 64)",
        apply: |s, v| {
            s.tools.node_id = non_empty(v);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_ENABLED",
        key: "audit.enabled",
        default: "true",
        help: "record security-relevant acts (authentication, tool calls, denials, sessions, admin actions); `false` records nothing (a warning at start)",
        apply: |s, v| {
            s.audit.enabled = parse_bool(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_SINK",
        key: "audit.sink",
        default: "memory",
        help: "where audit events go: `memory` (the latest 10 000, for `/admin/audit`; not durable), `file` (JSON lines with a BLAKE3 hash chain at QUDAG_AUDIT_FILE, rotated by size and day; check with `qudag-mcp audit verify PATH`) or `postgres` (rows with a hash chain per node at QUDAG_DATABASE_URL, spooled to QUDAG_AUDIT_SPOOL while the database is unreachable; check with `qudag-mcp audit verify --database URL`; needs the `postgres` cargo feature)",
        apply: |s, v| {
            s.audit.sink = match v.trim() {
                "memory" => AuditSinkKind::Memory,
                "file" => AuditSinkKind::File,
                "postgres" => AuditSinkKind::Postgres,
                _ => return Err("expected `memory`, `file` or `postgres`".into()),
            };
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_FILE",
        key: "audit.file",
        default: "",
        help: "the file audit sink's active file (e.g. `/var/lib/qudag-mcp/audit/audit.jsonl`); rotated files are kept beside it",
        apply: |s, v| {
            s.audit.file = non_empty(v).map(PathBuf::from);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_SPOOL",
        key: "audit.spool",
        default: "",
        help: "the PostgreSQL audit sink's spool file (e.g. `/var/lib/qudag-mcp/audit/spool.jsonl`, on a persistent local volume): events wait there, synced, while PostgreSQL is unreachable and are replayed in order when it returns, also after a restart; required with QUDAG_AUDIT_SINK=postgres",
        apply: |s, v| {
            s.audit.spool = non_empty(v).map(PathBuf::from);
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_FSYNC",
        key: "audit.fsync",
        default: "interval",
        help: "when the file sink syncs to disk: `always` (before an event is acknowledged: nothing acknowledged is lost on a crash) or `interval` (at most every QUDAG_AUDIT_FSYNC_INTERVAL_MS)",
        apply: |s, v| {
            s.audit.fsync = match v.trim() {
                "always" => FsyncMode::Always,
                "interval" => FsyncMode::Interval,
                _ => return Err("expected `always` or `interval`".into()),
            };
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_FSYNC_INTERVAL_MS",
        key: "audit.fsync_interval_ms",
        default: "1000",
        help: "with QUDAG_AUDIT_FSYNC=interval, the most milliseconds between syncs (what a power loss may cost)",
        apply: |s, v| {
            s.audit.fsync_interval_ms = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_MAX_FILE_BYTES",
        key: "audit.max_file_bytes",
        default: "67108864",
        help: "the file sink rotates a file before it would pass this size (it also rotates at each UTC day)",
        apply: |s, v| {
            s.audit.max_file_bytes = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_CHECKPOINT_SECS",
        key: "audit.checkpoint_secs",
        default: "300",
        help: "seconds between signed checkpoints of the audit chain (ML-DSA-65 with the server key, also one at shutdown); `qudag-mcp audit verify --public-key` checks them; 0 for none",
        apply: |s, v| {
            s.audit.checkpoint_secs = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_QUEUE_CAPACITY",
        key: "audit.queue_capacity",
        default: "10000",
        help: "audit records a durable sink's queue holds; requests hand their records to it and go on, a writer task writes them in order and retries (never drops) while the sink fails",
        apply: |s, v| {
            s.audit.queue_capacity = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_QUEUE_FULL",
        key: "audit.queue_full",
        default: "block",
        help: "when the audit queue is full: `block` (a request waits up to QUDAG_AUDIT_QUEUE_BLOCK_MS for a place, then gets 503) or `refuse` (new requests get 503 until it drains); records are never dropped",
        apply: |s, v| {
            s.audit.queue_full = match v.trim() {
                "block" => QueueFull::Block,
                "refuse" => QueueFull::Refuse,
                _ => return Err("expected `block` or `refuse`".into()),
            };
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_QUEUE_BLOCK_MS",
        key: "audit.queue_block_ms",
        default: "100",
        help: "with QUDAG_AUDIT_QUEUE_FULL=block, the most milliseconds a request waits for a place in the audit queue",
        apply: |s, v| {
            s.audit.queue_block_ms = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_AUDIT_RETENTION_DAYS",
        key: "audit.retention_days",
        default: "0",
        help: "days audit events are kept (rotated files of the file sink, rows of the PostgreSQL sink); older ones are removed (hourly check) only once a signed checkpoint covers them, so what remains still verifies; 0 keeps everything",
        apply: |s, v| {
            s.audit.retention_days = parse_num(v)?;
            Ok(())
        },
    },
    EnvVar {
        name: "QUDAG_REQUEST_STATE_KEY",
        key: "mcp.request_state_key",
        default: "",
        help: "hex key of at least 32 bytes sealing input-required request state; random per process when unset, so nodes behind one load balancer must share one",
        apply: |s, v| {
            s.mcp.request_state_key = Some(v.to_owned());
            Ok(())
        },
    },
];

/// Values given as command-line flags (the highest layer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagOverrides {
    /// `--host`
    pub host: Option<String>,
    /// `--port`
    pub port: Option<String>,
    /// `--log-level`
    pub log_level: Option<String>,
    /// `--log-format`
    pub log_format: Option<String>,
    /// `serve --dev` / `dev-token`: developer mode (local signing key).
    pub dev_mode: bool,
    /// `serve --fixtures`: test fixtures, served without authentication.
    pub fixtures: bool,
}

impl Settings {
    /// Load the layers in order: defaults, the TOML file at `file` (if any), the `QUDAG_*`
    /// variables from `env`, then `flags`; then validate the whole.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &FlagOverrides,
    ) -> Result<Self, ConfigError> {
        let mut settings = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("QUDAG_")).collect();
        for var in ENV_VARS {
            if let Some((_, value)) = env.iter().find(|(k, _)| k == var.name) {
                (var.apply)(&mut settings, value.trim())
                    .map_err(|reason| ConfigError::invalid(var.name, value, reason))?;
            }
        }
        let flag_layers: [(&str, &Option<String>, &str); 4] = [
            ("--host", &flags.host, "QUDAG_HOST"),
            ("--port", &flags.port, "QUDAG_PORT"),
            ("--log-level", &flags.log_level, "QUDAG_LOG_LEVEL"),
            ("--log-format", &flags.log_format, "QUDAG_LOG_FORMAT"),
        ];
        for (flag, value, var_name) in flag_layers {
            if let Some(value) = value {
                let var = ENV_VARS.iter().find(|v| v.name == var_name).expect("every flag mirrors a declared variable");
                (var.apply)(&mut settings, value).map_err(|reason| ConfigError::invalid(flag, value, reason))?;
            }
        }
        if flags.fixtures {
            settings.auth.require_auth = false;
        }
        if flags.dev_mode {
            settings.auth.dev_mode = true;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Read a TOML file over the defaults; keys it leaves out keep their defaults.
    ///
    /// # Errors
    /// [`ConfigError::File`] when it cannot be read, is not valid TOML, or has an unknown
    /// key.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.display().to_string(), reason: e.to_string() })?;
        toml::from_str(&text).map_err(|e| ConfigError::File { path: path.display().to_string(), reason: e.to_string() })
    }

    /// Check the values together, naming the variable of the first bad one.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.protocol == Protocol::Https {
            return Err(ConfigError::invalid(
                "QUDAG_PROTOCOL",
                "https",
                "TLS is not available in this version; serve plain HTTP behind a TLS-terminating proxy",
            ));
        }
        self.server.bind_addr()?;
        validate_log_level(&self.logging.level)
            .map_err(|reason| ConfigError::invalid("QUDAG_LOG_LEVEL", &self.logging.level, reason))?;
        let s = &self.sessions;
        if s.idle_timeout_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_SESSION_IDLE_TIMEOUT_SECS", 0, "must be at least 1"));
        }
        if s.absolute_timeout_secs < s.idle_timeout_secs {
            return Err(ConfigError::invalid(
                "QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS",
                s.absolute_timeout_secs,
                format!("must be at least the idle timeout ({} s)", s.idle_timeout_secs),
            ));
        }
        if !self.auth.require_auth
            && !self.auth.allow_unauthenticated_network
            && !self.server.bind_addr()?.ip().is_loopback()
        {
            return Err(ConfigError::invalid(
                "QUDAG_REQUIRE_AUTH",
                "false",
                format!(
                    "authentication may be off only on a loopback address, not {}; set QUDAG_ALLOW_UNAUTHENTICATED_NETWORK=true to force it",
                    self.server.host
                ),
            ));
        }
        self.validate_auth()?;
        if self.mcp.max_body_bytes < 1024 {
            return Err(ConfigError::invalid("QUDAG_MAX_BODY_BYTES", self.mcp.max_body_bytes, "must be at least 1024"));
        }
        if self.mcp.request_timeout_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_REQUEST_TIMEOUT_SECS", 0, "must be at least 1"));
        }
        if self.mcp.sse_keepalive_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_SSE_KEEPALIVE_SECS", 0, "must be at least 1"));
        }
        if self.mcp.max_streams_per_principal == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_STREAMS_PER_PRINCIPAL", 0, "must be at least 1"));
        }
        if self.mcp.max_streams < self.mcp.max_streams_per_principal {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_STREAMS",
                self.mcp.max_streams,
                format!("must be at least QUDAG_MAX_STREAMS_PER_PRINCIPAL ({})", self.mcp.max_streams_per_principal),
            ));
        }
        self.request_state_key_bytes()
            .map_err(|reason| ConfigError::invalid("QUDAG_REQUEST_STATE_KEY", "<redacted>", reason))?;
        if self.rate_limit.store == StateStore::Redis && self.redis.url.is_none() {
            return Err(ConfigError::invalid("QUDAG_RATE_LIMIT_STORE", "redis", "needs QUDAG_REDIS_URL"));
        }
        if self.sessions.store == StateStore::Redis && self.redis.url.is_none() {
            return Err(ConfigError::invalid("QUDAG_SESSION_STORE", "redis", "needs QUDAG_REDIS_URL"));
        }
        if self.redis.pool_size == 0 {
            return Err(ConfigError::invalid("QUDAG_REDIS_POOL_SIZE", 0, "must be at least 1"));
        }
        if self.redis.command_timeout_ms == 0 {
            return Err(ConfigError::invalid("QUDAG_REDIS_TIMEOUT_MS", 0, "must be at least 1"));
        }
        if s.max_sessions == 0 {
            return Err(ConfigError::invalid("QUDAG_MAX_SESSIONS", 0, "must be at least 1"));
        }
        self.validate_tools()?;
        let a = &self.audit;
        if a.enabled && a.sink == AuditSinkKind::File && a.file.is_none() {
            return Err(ConfigError::invalid("QUDAG_AUDIT_SINK", "file", "needs QUDAG_AUDIT_FILE"));
        }
        if a.enabled && a.sink == AuditSinkKind::Postgres {
            if self.database.url.is_none() {
                return Err(ConfigError::invalid("QUDAG_AUDIT_SINK", "postgres", "needs QUDAG_DATABASE_URL"));
            }
            if a.spool.is_none() {
                return Err(ConfigError::invalid(
                    "QUDAG_AUDIT_SINK",
                    "postgres",
                    "needs QUDAG_AUDIT_SPOOL (a local file where events wait while PostgreSQL is unreachable)",
                ));
            }
        }
        if a.retention_days > 0 && a.checkpoint_secs == 0 {
            return Err(ConfigError::invalid(
                "QUDAG_AUDIT_RETENTION_DAYS",
                a.retention_days,
                "needs signed checkpoints (QUDAG_AUDIT_CHECKPOINT_SECS > 0): only checkpointed files are removed",
            ));
        }
        if a.queue_capacity == 0 {
            return Err(ConfigError::invalid("QUDAG_AUDIT_QUEUE_CAPACITY", 0, "must be at least 1"));
        }
        if a.fsync_interval_ms == 0 {
            return Err(ConfigError::invalid("QUDAG_AUDIT_FSYNC_INTERVAL_MS", 0, "must be at least 1"));
        }
        if a.max_file_bytes < 4096 {
            return Err(ConfigError::invalid("QUDAG_AUDIT_MAX_FILE_BYTES", a.max_file_bytes, "must be at least 4096"));
        }
        let r = &self.rate_limit;
        if r.requests_per_minute > 0 {
            if r.burst == 0 {
                return Err(ConfigError::invalid("QUDAG_RATE_LIMIT_BURST", 0, "must be at least 1"));
            }
            if r.max_keys == 0 {
                return Err(ConfigError::invalid("QUDAG_RATE_LIMIT_MAX_KEYS", 0, "must be at least 1"));
            }
        }
        Ok(())
    }

    fn validate_tools(&self) -> Result<(), ConfigError> {
        let t = &self.tools;
        if !(1..=30).contains(&t.max_qubits) {
            return Err(ConfigError::invalid("QUDAG_MAX_QUBITS", t.max_qubits, "must be between 1 and 30"));
        }
        if t.max_amplitude_updates < 1024 {
            return Err(ConfigError::invalid(
                "QUDAG_MAX_AMPLITUDE_UPDATES",
                t.max_amplitude_updates,
                "must be at least 1024",
            ));
        }
        if let Some(id) = &t.node_id
            && (id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ConfigError::invalid(
                "QUDAG_NODE_ID",
                id,
                "must be at most 64 letters, digits, `-`, `_` or `.`",
            ));
        }
        if t.store == DataStore::Postgres {
            if self.database.url.is_none() {
                return Err(ConfigError::invalid("QUDAG_STORE", "postgres", "needs QUDAG_DATABASE_URL"));
            }
            if t.key_file.is_none() {
                return Err(ConfigError::invalid(
                    "QUDAG_STORE",
                    "postgres",
                    "needs QUDAG_KEY_FILE: with ephemeral keys, stored vault entries could not be opened after a restart",
                ));
            }
        }
        if self.database.pool_size == 0 {
            return Err(ConfigError::invalid("QUDAG_DATABASE_POOL_SIZE", 0, "must be at least 1"));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        if a.leeway_secs > 60 {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_LEEWAY_SECS", a.leeway_secs, "must be at most 60"));
        }
        if a.jwks_cache_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_JWKS_CACHE_SECS", 0, "must be at least 1"));
        }
        if a.max_token_bytes < 256 {
            return Err(ConfigError::invalid(
                "QUDAG_OAUTH2_MAX_TOKEN_BYTES",
                a.max_token_bytes,
                "must be at least 256",
            ));
        }
        if a.dpop_max_age_secs == 0 {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_DPOP_MAX_AGE_SECS", 0, "must be at least 1"));
        }
        if a.roles_claim.is_empty() {
            return Err(ConfigError::invalid("QUDAG_OAUTH2_ROLES_CLAIM", "", "must name a claim"));
        }
        if let Some(secret) = &a.hmac_secret
            && secret.len() < 32
        {
            return Err(ConfigError::invalid(
                "QUDAG_OAUTH2_HMAC_SECRET",
                "<redacted>",
                format!("must be at least 32 bytes, got {}", secret.len()),
            ));
        }
        if let Some(url) = &self.mcp.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::invalid("QUDAG_PUBLIC_URL", url, "must be an absolute http(s) URL"));
        }
        if a.dev_mode {
            let addr = self.server.bind_addr()?;
            if !addr.ip().is_loopback() {
                return Err(ConfigError::invalid(
                    "QUDAG_HOST",
                    &self.server.host,
                    "--dev serves on a loopback address only (its signing key sits in a local file)",
                ));
            }
            return Ok(());
        }
        if !a.require_auth {
            return Ok(());
        }
        let Some(issuer) = &a.issuer_url else {
            return Err(ConfigError::invalid(
                "QUDAG_OAUTH2_ISSUER_URL",
                "",
                "is required while authentication is on (QUDAG_REQUIRE_AUTH=true); for local development use `qudag-mcp serve --dev`",
            ));
        };
        qudag_adapter_oauth::secure_url("issuer", issuer)
            .map_err(|e| ConfigError::invalid("QUDAG_OAUTH2_ISSUER_URL", issuer, e.reason))?;
        if a.audience.is_none() {
            return Err(ConfigError::invalid(
                "QUDAG_OAUTH2_AUDIENCE",
                "",
                "is required while authentication is on: the audience (RFC 8707 resource) tokens must be issued for",
            ));
        }
        for (name, url) in
            [("QUDAG_OAUTH2_JWKS_URL", &a.jwks_url), ("QUDAG_OAUTH2_INTROSPECTION_URL", &a.introspection_url)]
        {
            if let Some(u) = url {
                qudag_adapter_oauth::secure_url("URL", u).map_err(|e| ConfigError::invalid(name, u, e.reason))?;
            }
        }
        if a.introspection_url.is_some() {
            if a.client_id.is_none() {
                return Err(ConfigError::invalid("QUDAG_OAUTH2_CLIENT_ID", "", "is required for introspection"));
            }
            if a.client_secret.is_none() {
                return Err(ConfigError::invalid("QUDAG_OAUTH2_CLIENT_SECRET", "", "is required for introspection"));
            }
        }
        Ok(())
    }

    /// The request-state key's bytes, if one is configured.
    ///
    /// # Errors
    /// When it is not hex or shorter than 32 bytes.
    pub fn request_state_key_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(hex) = &self.mcp.request_state_key else { return Ok(None) };
        if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("expected an even number of hex digits".into());
        }
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
        if bytes.len() < 32 {
            return Err(format!("expected at least 32 bytes (64 hex digits), got {}", bytes.len()));
        }
        Ok(Some(bytes))
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.mcp.request_state_key.is_some() {
            shown.mcp.request_state_key = Some("<redacted>".into());
        }
        shown.redis.url = shown.redis.url.as_deref().map(redact_url);
        shown.database.url = shown.database.url.as_deref().map(redact_url);
        for secret in [&mut shown.auth.client_secret, &mut shown.auth.hmac_secret] {
            if secret.is_some() {
                *secret = Some("<redacted>".into());
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// The configuration file named by `--config` or `QUDAG_CONFIG`.
pub fn config_path(flag: Option<PathBuf>, env: impl IntoIterator<Item = (String, String)>) -> Option<PathBuf> {
    flag.or_else(|| env.into_iter().find(|(k, _)| k == "QUDAG_CONFIG").map(|(_, v)| PathBuf::from(v)))
}

/// `QUDAG_*` variables the server does not know: likely typos, worth a warning.
pub fn unknown_variables(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    env.into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("QUDAG_") && k != "QUDAG_CONFIG" && !k.starts_with("QUDAG_TEST_"))
        .filter(|k| !ENV_VARS.iter().any(|v| v.name == k))
        .collect()
}

fn parse_host(v: &str) -> Result<IpAddr, String> {
    if v.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    v.parse::<IpAddr>().map_err(|_| "expected an IP address such as 127.0.0.1, 0.0.0.0 or ::, or `localhost`".into())
}

/// An IP address or CIDR block, as (network address, prefix length).
pub fn parse_cidr(v: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = match v.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("{v:?} is not an IP address or CIDR block"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) => b
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("{v:?}: prefix length must be 0 to {max}"))?,
    };
    Ok((ip, bits))
}

fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    v.parse::<T>().map_err(|e| format!("expected a whole number: {e}"))
}

fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_choice<T: Copy>(v: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|(_, t)| *t)
        .ok_or_else(|| format!("expected one of: {}", choices.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")))
}

fn validate_log_level(v: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let directives: Vec<&str> = v.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        return Err("must not be empty".into());
    }
    for directive in directives {
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("{level:?} is not a level (expected one of: {})", LEVELS.join(", ")));
        }
        if let Some(target) = target
            && (target.is_empty() || !target.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        {
            return Err(format!("{target:?} is not a module path"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const ISSUER: (&str, &str) = ("QUDAG_OAUTH2_ISSUER_URL", "https://issuer.example");
    const AUDIENCE: (&str, &str) = ("QUDAG_OAUTH2_AUDIENCE", "https://mcp.example/mcp");

    /// Load `pairs` over an issuer and audience (authentication is on by default).
    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut all: Vec<(&str, &str)> =
            [ISSUER, AUDIENCE].into_iter().filter(|(k, _)| !pairs.iter().any(|(p, _)| p == k)).collect();
        all.extend_from_slice(pairs);
        Settings::load(None, env(&all), &FlagOverrides::default())
    }

    fn with_issuer() -> Settings {
        let mut s = Settings::default();
        s.auth.issuer_url = Some(ISSUER.1.into());
        s.auth.audience = Some(AUDIENCE.1.into());
        s
    }

    #[test]
    fn authentication_on_needs_an_issuer_and_audience_and_safe_urls() {
        let err = Settings::load(None, env(&[]), &FlagOverrides::default()).unwrap_err();
        assert_eq!(names(err.clone()), "QUDAG_OAUTH2_ISSUER_URL");
        assert!(err.to_string().contains("serve --dev"), "{err}");
        let err = Settings::load(None, env(&[ISSUER]), &FlagOverrides::default()).unwrap_err();
        assert_eq!(names(err), "QUDAG_OAUTH2_AUDIENCE");
        let err = load(&[("QUDAG_OAUTH2_ISSUER_URL", "http://issuer.example")]).unwrap_err();
        assert_eq!(names(err.clone()), "QUDAG_OAUTH2_ISSUER_URL");
        assert!(err.to_string().contains("https"), "{err}");
        assert!(load(&[("QUDAG_OAUTH2_ISSUER_URL", "http://127.0.0.1:9400")]).is_ok(), "http on loopback");
        let err = load(&[("QUDAG_OAUTH2_JWKS_URL", "http://keys.example/jwks")]).unwrap_err();
        assert_eq!(names(err), "QUDAG_OAUTH2_JWKS_URL");
        let err = load(&[("QUDAG_OAUTH2_INTROSPECTION_URL", "https://issuer.example/introspect")]).unwrap_err();
        assert_eq!(names(err), "QUDAG_OAUTH2_CLIENT_ID");
        let err = load(&[("QUDAG_OAUTH2_LEEWAY_SECS", "61")]).unwrap_err();
        assert_eq!(names(err), "QUDAG_OAUTH2_LEEWAY_SECS");
        let err = load(&[("QUDAG_OAUTH2_HMAC_SECRET", "short")]).unwrap_err();
        assert_eq!(names(err.clone()), "QUDAG_OAUTH2_HMAC_SECRET");
        assert!(!err.to_string().contains("short"), "secrets are never echoed: {err}");
        // Off, or developer mode on loopback: no issuer needed.
        assert!(Settings::load(None, env(&[("QUDAG_REQUIRE_AUTH", "false")]), &FlagOverrides::default()).is_ok());
        let dev = FlagOverrides { dev_mode: true, ..FlagOverrides::default() };
        assert!(Settings::load(None, env(&[]), &dev).unwrap().auth.dev_mode);
        let err = Settings::load(None, env(&[("QUDAG_HOST", "0.0.0.0")]), &dev).unwrap_err();
        assert_eq!(names(err), "QUDAG_HOST");
    }

    #[test]
    fn oauth_variables_apply_and_secrets_are_redacted() {
        let s = load(&[
            ("QUDAG_OAUTH2_JWKS_URL", "https://issuer.example/jwks"),
            ("QUDAG_OAUTH2_INTROSPECTION_URL", "https://issuer.example/introspect"),
            ("QUDAG_OAUTH2_CLIENT_ID", "qudag-mcp-server"),
            ("QUDAG_OAUTH2_CLIENT_SECRET", "s3cret-client"),
            ("QUDAG_OAUTH2_HMAC_SECRET", "0123456789abcdef0123456789abcdef-hmac"),
            ("QUDAG_OAUTH2_ROLES_CLAIM", "realm_access.roles"),
            ("QUDAG_OAUTH2_LEEWAY_SECS", "5"),
            ("QUDAG_OAUTH2_TOKEN_CACHE_SIZE", "0"),
            ("QUDAG_PUBLIC_URL", "https://mcp.example/"),
        ])
        .unwrap();
        assert_eq!(s.auth.roles_claim, "realm_access.roles");
        assert_eq!((s.auth.leeway_secs, s.auth.token_cache_size), (5, 0));
        assert_eq!(s.mcp.public_url.as_deref(), Some("https://mcp.example"));
        let shown = s.to_toml() + &format!("{s:?}");
        for secret in ["s3cret-client", "0123456789abcdef0123456789abcdef-hmac"] {
            assert!(!shown.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn tool_and_audit_variables_apply_and_the_database_password_is_redacted() {
        let s = load(&[
            ("QUDAG_STORE", "postgres"),
            ("QUDAG_DATABASE_URL", "postgres://qudag:pg-pa55word@db:5432/qudag"),
            ("QUDAG_KEY_FILE", "/var/lib/qudag-mcp/keys.json"),
            ("QUDAG_MAX_QUBITS", "20"),
            ("QUDAG_AUDIT_SINK", "file"),
            ("QUDAG_AUDIT_FILE", "/var/lib/qudag-mcp/audit/audit.jsonl"),
            ("QUDAG_AUDIT_FSYNC", "always"),
            ("QUDAG_AUDIT_QUEUE_FULL", "refuse"),
        ])
        .unwrap();
        assert_eq!((s.tools.store, s.tools.max_qubits), (DataStore::Postgres, 20));
        assert_eq!(
            (s.audit.sink, s.audit.fsync, s.audit.queue_full),
            (AuditSinkKind::File, FsyncMode::Always, QueueFull::Refuse)
        );
        let shown = s.to_toml() + &format!("{s:?}");
        assert!(!shown.contains("pg-pa55word"), "the database password leaked: {shown}");
        let bad = |vars: &[(&str, &str)], name: &str| assert_eq!(names(load(vars).unwrap_err()), name);
        bad(&[("QUDAG_STORE", "postgres")], "QUDAG_STORE");
        bad(&[("QUDAG_STORE", "postgres"), ("QUDAG_DATABASE_URL", "postgres://db/q")], "QUDAG_STORE");
        bad(&[("QUDAG_AUDIT_SINK", "file")], "QUDAG_AUDIT_SINK");
        bad(&[("QUDAG_AUDIT_SINK", "postgres")], "QUDAG_AUDIT_SINK");
        bad(&[("QUDAG_AUDIT_SINK", "postgres"), ("QUDAG_DATABASE_URL", "postgres://db/q")], "QUDAG_AUDIT_SINK");
        bad(&[("QUDAG_AUDIT_SINK", "sqlite")], "QUDAG_AUDIT_SINK");
        let pg = load(&[
            ("QUDAG_AUDIT_SINK", "postgres"),
            ("QUDAG_DATABASE_URL", "postgres://db/q"),
            ("QUDAG_AUDIT_SPOOL", "/var/lib/qudag-mcp/audit/spool.jsonl"),
        ])
        .unwrap();
        assert_eq!(
            (pg.audit.sink, pg.audit.spool.as_deref()),
            (AuditSinkKind::Postgres, Some(std::path::Path::new("/var/lib/qudag-mcp/audit/spool.jsonl")))
        );
        bad(&[("QUDAG_MAX_QUBITS", "31")], "QUDAG_MAX_QUBITS");
        bad(&[("QUDAG_NODE_ID", "a b")], "QUDAG_NODE_ID");
        bad(&[("QUDAG_AUDIT_QUEUE_CAPACITY", "0")], "QUDAG_AUDIT_QUEUE_CAPACITY");
    }

    fn names(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { source_name, .. } => source_name,
            ConfigError::File { path, .. } => path,
        }
    }

    #[test]
    fn defaults_are_valid_and_loopback() {
        let s = load(&[]).unwrap();
        assert_eq!(s, with_issuer());
        assert_eq!(s.server.bind_addr().unwrap(), "127.0.0.1:3000".parse().unwrap());
    }

    #[test]
    fn every_variable_applies_its_value() {
        let s = load(&[
            ("QUDAG_HOST", "0.0.0.0"),
            ("QUDAG_PORT", "8080"),
            ("QUDAG_SHUTDOWN_GRACE_SECS", "5"),
            ("QUDAG_LOG_LEVEL", "info,qudag_adapter_http=debug"),
            ("QUDAG_LOG_FORMAT", "JSON"),
            ("QUDAG_SESSION_IDLE_TIMEOUT_SECS", "60"),
            ("QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS", "120"),
            ("QUDAG_MAX_SESSIONS", "5"),
            ("QUDAG_RATE_LIMIT", "30"),
            ("QUDAG_RATE_LIMIT_BURST", "3"),
            ("QUDAG_RATE_LIMIT_PER_USER", "false"),
            ("QUDAG_RATE_LIMIT_MAX_KEYS", "50"),
            ("QUDAG_RATE_LIMIT_FAILURE", "fail-closed"),
            ("QUDAG_PROTOCOL", "http"),
        ])
        .unwrap();
        assert_eq!(s.server.bind_addr().unwrap(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.server.shutdown_grace(), Duration::from_secs(5));
        assert_eq!(s.logging.level, "info,qudag_adapter_http=debug");
        assert_eq!(s.logging.format, LogFormat::Json);
        assert_eq!(
            (s.sessions.idle_timeout_secs, s.sessions.absolute_timeout_secs, s.sessions.max_sessions),
            (60, 120, 5)
        );
        assert_eq!(s.rate_limit.requests_per_minute, 30);
        assert_eq!(s.rate_limit.burst, 3);
        assert!(!s.rate_limit.per_user);
        assert_eq!(s.rate_limit.max_keys, 50);
        assert_eq!(s.rate_limit.on_failure, FailurePolicy::FailClosed);
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let cases: &[(&str, &str)] = &[
            ("QUDAG_PORT", "abc"),
            ("QUDAG_PORT", "65536"),
            ("QUDAG_PORT", "-1"),
            ("QUDAG_HOST", "not a host"),
            ("QUDAG_LOG_FORMAT", "xml"),
            ("QUDAG_LOG_LEVEL", "loud"),
            ("QUDAG_LOG_LEVEL", "info,foo=verbose"),
            ("QUDAG_PROTOCOL", "gopher"),
            ("QUDAG_RATE_LIMIT", "many"),
            ("QUDAG_RATE_LIMIT_PER_USER", "maybe"),
            ("QUDAG_RATE_LIMIT_FAILURE", "fail-sideways"),
            ("QUDAG_SESSION_IDLE_TIMEOUT_SECS", "1.5"),
        ];
        for (name, value) in cases {
            let err = load(&[(name, value)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name), "{text}");
            assert!(text.contains(value), "{text}");
            assert_eq!(names(err), *name);
        }
    }

    #[test]
    fn cross_field_rules_name_the_variable() {
        let err = load(&[("QUDAG_SESSION_IDLE_TIMEOUT_SECS", "600"), ("QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS", "60")])
            .unwrap_err();
        assert_eq!(names(err), "QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS");
        assert_eq!(names(load(&[("QUDAG_RATE_LIMIT_BURST", "0")]).unwrap_err()), "QUDAG_RATE_LIMIT_BURST");
        assert!(
            load(&[("QUDAG_RATE_LIMIT", "0"), ("QUDAG_RATE_LIMIT_BURST", "0")]).is_ok(),
            "burst is moot when limiting is off"
        );
        let err = load(&[("QUDAG_PROTOCOL", "https")]).unwrap_err();
        assert_eq!(names(err.clone()), "QUDAG_PROTOCOL");
        assert!(err.to_string().contains("TLS"), "{err}");
    }

    #[test]
    fn precedence_is_flags_over_env_over_file_over_defaults() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[server]\nport = 4000\nhost = \"0.0.0.0\"\n[logging]\nformat = \"json\"\nlevel = \"warn\"\n\
             [auth]\nissuer_url = \"https://issuer.example\"\naudience = \"api\""
        )
        .unwrap();
        let from_file = Settings::load(Some(file.path()), env(&[]), &FlagOverrides::default()).unwrap();
        assert_eq!(from_file.server.port, 4000);
        assert_eq!(from_file.server.host, "0.0.0.0");
        assert_eq!(from_file.server.shutdown_grace_secs, 30, "keys a file leaves out keep their defaults");

        let env_over_file =
            Settings::load(Some(file.path()), env(&[("QUDAG_PORT", "5000")]), &FlagOverrides::default()).unwrap();
        assert_eq!(env_over_file.server.port, 5000);
        assert_eq!(env_over_file.logging.level, "warn");

        let flags = FlagOverrides { port: Some("6000".into()), log_level: Some("debug".into()), ..Default::default() };
        let all =
            Settings::load(Some(file.path()), env(&[("QUDAG_PORT", "5000"), ("QUDAG_LOG_LEVEL", "error")]), &flags)
                .unwrap();
        assert_eq!(all.server.port, 6000);
        assert_eq!(all.logging.level, "debug");
        assert_eq!(all.logging.format, LogFormat::Json);
        assert_eq!(all.server.host, "0.0.0.0");
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let flags = FlagOverrides { port: Some("http".into()), ..Default::default() };
        let err = Settings::load(None, env(&[]), &flags).unwrap_err();
        assert_eq!(names(err), "--port");
    }

    #[test]
    fn file_errors_name_the_file_and_the_problem() {
        let mut unknown = tempfile::NamedTempFile::new().unwrap();
        writeln!(unknown, "[server]\nprot = 1").unwrap();
        let err = Settings::load(Some(unknown.path()), env(&[]), &FlagOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        assert!(err.to_string().contains(&unknown.path().display().to_string()));

        let mut wrong_type = tempfile::NamedTempFile::new().unwrap();
        writeln!(wrong_type, "[server]\nport = \"abc\"").unwrap();
        assert!(matches!(
            Settings::load(Some(wrong_type.path()), env(&[]), &FlagOverrides::default()),
            Err(ConfigError::File { .. })
        ));

        let missing = Path::new("/nonexistent/qudag.toml");
        let err = Settings::load(Some(missing), env(&[]), &FlagOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/qudag.toml"), "{err}");
    }

    #[test]
    fn a_bad_file_value_is_still_caught_by_validation() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "[logging]\nlevel = \"shouting\"").unwrap();
        let err = Settings::load(Some(file.path()), env(&[]), &FlagOverrides::default()).unwrap_err();
        assert_eq!(names(err), "QUDAG_LOG_LEVEL");
    }

    #[test]
    fn authentication_may_be_off_only_on_loopback() {
        assert!(load(&[("QUDAG_REQUIRE_AUTH", "false")]).is_ok());
        let err = load(&[("QUDAG_REQUIRE_AUTH", "false"), ("QUDAG_HOST", "0.0.0.0")]).unwrap_err();
        assert_eq!(names(err.clone()), "QUDAG_REQUIRE_AUTH");
        assert!(err.to_string().contains("QUDAG_ALLOW_UNAUTHENTICATED_NETWORK"), "{err}");
        assert!(
            load(&[
                ("QUDAG_REQUIRE_AUTH", "false"),
                ("QUDAG_HOST", "0.0.0.0"),
                ("QUDAG_ALLOW_UNAUTHENTICATED_NETWORK", "true")
            ])
            .is_ok()
        );
        assert!(load(&[("QUDAG_HOST", "0.0.0.0")]).is_ok(), "with authentication on, any address");
    }

    #[test]
    fn request_state_keys_are_validated_and_never_shown() {
        let key = "ab".repeat(32);
        let s = load(&[("QUDAG_REQUEST_STATE_KEY", &key)]).unwrap();
        assert_eq!(s.request_state_key_bytes().unwrap().unwrap().len(), 32);
        assert!(!s.to_toml().contains(&key));
        assert!(!format!("{s:?}").contains(&key));
        for bad in ["abc", "zz".repeat(32).as_str(), "ab".repeat(31).as_str()] {
            let err = load(&[("QUDAG_REQUEST_STATE_KEY", bad)]).unwrap_err();
            assert_eq!(names(err.clone()), "QUDAG_REQUEST_STATE_KEY");
            assert!(!err.to_string().contains(bad), "the key is not echoed: {err}");
        }
    }

    #[test]
    fn redis_settings_are_validated_and_credentials_hidden() {
        let err = load(&[("QUDAG_RATE_LIMIT_STORE", "redis")]).unwrap_err();
        assert_eq!(names(err), "QUDAG_RATE_LIMIT_STORE");
        let err = load(&[("QUDAG_SESSION_STORE", "redis")]).unwrap_err();
        assert_eq!(names(err), "QUDAG_SESSION_STORE");
        let err = load(&[("QUDAG_SESSION_STORE", "etcd")]).unwrap_err();
        assert_eq!(names(err), "QUDAG_SESSION_STORE");
        let err = load(&[("QUDAG_REDIS_URL", "http://x")]).unwrap_err();
        assert_eq!(names(err), "QUDAG_REDIS_URL");
        let s = load(&[
            ("QUDAG_RATE_LIMIT_STORE", "redis"),
            ("QUDAG_REDIS_URL", "redis://u:pw@127.0.0.1:6379/2"),
            ("QUDAG_REDIS_KEY_PREFIX", "blue:"),
            ("QUDAG_SESSION_STORE", "redis"),
        ])
        .unwrap();
        assert_eq!((s.rate_limit.store, s.sessions.store), (StateStore::Redis, StateStore::Redis));
        assert_eq!(s.redis.key_prefix, "blue:");
        assert!(!s.to_toml().contains("pw@") && !format!("{s:?}").contains("pw@"));
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://<credentials>@h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let s = load(&[("QUDAG_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1 ,::1/128")]).unwrap();
        assert_eq!(s.mcp.trusted_proxies, vec!["10.0.0.0/8", "127.0.0.1", "::1/128"]);
        for bad in ["10.0.0.0/33", "nope", "::1/129"] {
            assert_eq!(names(load(&[("QUDAG_TRUSTED_PROXIES", bad)]).unwrap_err()), "QUDAG_TRUSTED_PROXIES", "{bad}");
        }
        assert_eq!(load(&[("QUDAG_DAILY_QUOTA", "5000")]).unwrap().rate_limit.daily_quota, 5000);
    }

    #[test]
    fn cors_origins_are_a_list() {
        let s = load(&[("QUDAG_CORS_ORIGINS", "https://a.example, https://b.example ,")]).unwrap();
        assert_eq!(s.mcp.cors_origins, vec!["https://a.example", "https://b.example"]);
    }

    #[test]
    fn unknown_qudag_variables_are_reported() {
        let unknown = unknown_variables(env(&[
            ("QUDAG_PROT", "1"),
            ("QUDAG_PORT", "1"),
            ("HOME", "/"),
            ("QUDAG_TEST_REDIS_URL", "x"),
        ]));
        assert_eq!(unknown, vec!["QUDAG_PROT".to_owned()]);
    }

    #[test]
    fn effective_configuration_round_trips_through_toml() {
        let s = load(&[("QUDAG_PORT", "1234"), ("QUDAG_RATE_LIMIT_FAILURE", "fail-closed")]).unwrap();
        let back: Settings = toml::from_str(&s.to_toml()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn every_variable_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        for var in ENV_VARS {
            let row = doc.lines().find(|l| l.starts_with(&format!("| `{}` |", var.name)));
            let row = row.unwrap_or_else(|| panic!("{} is not in docs/configuration.md", var.name));
            assert!(row.contains(&format!("`{}`", var.key)), "{}: TOML key {} missing from its row", var.name, var.key);
            assert!(
                row.contains(&format!("`{}`", var.default)),
                "{}: default {} missing from its row",
                var.name,
                var.default
            );
        }
    }
}
