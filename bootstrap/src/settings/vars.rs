//! The variable table: every `QUDAG_*` environment variable the server reads, with the
//! TOML key it overrides, its default and its meaning, in documentation order.
//!
//! This list is a public interface: `docs/configuration.md` documents exactly these
//! variables (a test keeps them in step), operators' deployments set them, and
//! [`unknown_variables`](super::unknown_variables) warns about any other `QUDAG_*` name.
//! It holds no parsing: the TOML key names the section that reads the value
//! (`server.port` is read by [`ServerSettings`](super::ServerSettings)), so the rules for a
//! value live beside the field it sets.

/// One `QUDAG_*` variable.
#[derive(Debug)]
#[non_exhaustive]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// The TOML key it overrides (`section.key`).
    pub key: &'static str,
    /// The default, as written in the docs.
    pub default: &'static str,
    /// What it means.
    pub help: &'static str,
}

/// Every environment variable the server reads, in documentation order.
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "QUDAG_PROTOCOL",
        key: "server.protocol",
        default: "http",
        help: "`http`, or `https` (TLS with rustls: needs QUDAG_TLS_CERT_PATH and QUDAG_TLS_KEY_PATH; see docs/tls.md)",
    },
    EnvVar {
        name: "QUDAG_HOST",
        key: "server.host",
        default: "127.0.0.1",
        help: "IP address to bind; `0.0.0.0` or `::` for every interface, `localhost` for 127.0.0.1",
    },
    EnvVar {
        name: "QUDAG_PORT",
        key: "server.port",
        default: "3000",
        help: "TCP port to listen on, 0 to 65535 (0 picks a free port and logs it)",
    },
    EnvVar {
        name: "QUDAG_SHUTDOWN_GRACE_SECS",
        key: "server.shutdown_grace_secs",
        default: "30",
        help: "seconds in-flight requests get to finish after SIGTERM or SIGINT",
    },
    EnvVar {
        name: "QUDAG_TLS_CERT_PATH",
        key: "server.tls_cert_path",
        default: "",
        help: "PEM certificate chain, leaf first; required with `https`; reloaded on SIGHUP and when the file changes",
    },
    EnvVar {
        name: "QUDAG_TLS_KEY_PATH",
        key: "server.tls_key_path",
        default: "",
        help: "PEM private key of the certificate (RSA or ECDSA; PKCS#8, PKCS#1 or SEC1); required with `https`; reloaded with the certificate",
    },
    EnvVar {
        name: "QUDAG_TLS_CA_PATH",
        key: "server.tls_ca_path",
        default: "",
        help: "PEM CA certificates; when set, every client must present a certificate issued by one of them (mTLS); unset, no client certificate is asked for",
    },
    EnvVar {
        name: "QUDAG_TLS_MIN_VERSION",
        key: "server.tls_min_version",
        default: "1.3",
        help: "`1.3` (TLS 1.3 only) or `1.2` (TLS 1.2 accepted too)",
    },
    EnvVar {
        name: "QUDAG_TLS_HANDSHAKE_TIMEOUT_SECS",
        key: "server.tls_handshake_timeout_secs",
        default: "10",
        help: "seconds a client gets to complete the TLS handshake before the connection is closed (1 to 300)",
    },
    EnvVar {
        name: "QUDAG_MAX_HEADER_BYTES",
        key: "server.max_header_bytes",
        default: "65536",
        help: "largest HTTP/1.1 request head (request line and headers) in bytes, 8192 to 16777216; a larger one gets `431` and the connection is closed; also the HTTP/2 header list limit",
    },
    EnvVar {
        name: "QUDAG_HEADER_TIMEOUT_SECS",
        key: "server.header_timeout_secs",
        default: "10",
        help: "seconds an HTTP/1.1 client gets to send a complete request head (1 to 300); a slower one is disconnected without a response; the timer also runs while a kept-alive connection waits for its next request",
    },
    EnvVar {
        name: "QUDAG_KEEPALIVE_TIMEOUT_SECS",
        key: "server.keepalive_timeout_secs",
        default: "75",
        help: "seconds a connection may stay silent (no bytes either way and no request in flight) before it is closed (1 to 3600)",
    },
    EnvVar {
        name: "QUDAG_MAX_CONNECTIONS",
        key: "server.max_connections",
        default: "10000",
        help: "connections served at once (at least 1); while that many are open, new ones wait in the kernel's accept backlog until one closes",
    },
    EnvVar {
        name: "QUDAG_MAX_CONNECTIONS_PER_ADDRESS",
        key: "server.max_connections_per_address",
        default: "256",
        help: "connections one client address may hold open at once (an IPv4-mapped IPv6 peer counts as its IPv4 address); one more is closed as soon as it is accepted, so a few addresses cannot take every place of QUDAG_MAX_CONNECTIONS; QUDAG_TRUSTED_PROXIES are exempt; 0 for no such limit",
    },
    EnvVar {
        name: "QUDAG_LOG_LEVEL",
        key: "logging.level",
        default: "info",
        help: "`error`, `warn`, `info`, `debug`, `trace`, or a filter directive such as `info,qudag_adapter_http=debug`",
    },
    EnvVar {
        name: "QUDAG_LOG_FORMAT",
        key: "logging.format",
        default: "text",
        help: "`text` (human-readable) or `json` (one object per line)",
    },
    EnvVar {
        name: "QUDAG_SESSION_IDLE_TIMEOUT_SECS",
        key: "sessions.idle_timeout_secs",
        default: "1800",
        help: "seconds an MCP session may stay unused before it expires",
    },
    EnvVar {
        name: "QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS",
        key: "sessions.absolute_timeout_secs",
        default: "86400",
        help: "seconds an MCP session may live at most, however busy",
    },
    EnvVar {
        name: "QUDAG_MAX_SESSIONS",
        key: "sessions.max_sessions",
        default: "10000",
        help: "live sessions held at most by the in-memory store; new sessions are refused beyond it",
    },
    EnvVar {
        name: "QUDAG_MAX_SESSIONS_PER_PRINCIPAL",
        key: "sessions.max_sessions_per_principal",
        default: "100",
        help: "live sessions one caller (principal; without authentication, client address) may hold, in every session store; one more `initialize` gets 429 with `Retry-After` until one ends or expires",
    },
    EnvVar {
        name: "QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION",
        key: "sessions.max_subscriptions_per_session",
        default: "32",
        help: "resources one session may subscribe to (`resources/subscribe`); one more gets 429 with `Retry-After`",
    },
    EnvVar {
        name: "QUDAG_MAX_SUBSCRIPTION_URI_BYTES",
        key: "sessions.max_subscription_uri_bytes",
        default: "1024",
        help: "longest resource URI a subscription may name, in bytes (64-65536); a longer one gets -32602",
    },
    EnvVar {
        name: "QUDAG_SESSION_STORE",
        key: "sessions.store",
        default: "memory",
        help: "where stateful-era MCP sessions, their resumable streams, notifications, answers to server-to-client requests and the list of live nodes (`peer_discovery`) live: `memory` (this process) or `redis` (shared by every node, so any node serves any session and resumes any stream; needs QUDAG_REDIS_URL and the `redis` cargo feature)",
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT",
        key: "rate_limit.requests_per_minute",
        default: "600",
        help: "requests per minute per caller on `/mcp`; 0 turns rate limiting off",
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_BURST",
        key: "rate_limit.burst",
        default: "min(100, QUDAG_RATE_LIMIT)",
        help: "requests a caller may make at once from a full allowance (at least 1); unset, one minute's worth of QUDAG_RATE_LIMIT, at most 100; a value given is used as it is, also above QUDAG_RATE_LIMIT",
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_PER_USER",
        key: "rate_limit.per_user",
        default: "true",
        help: "count authenticated callers per principal (`true`) or per client address (`false`); unauthenticated traffic is always counted per address",
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_AUTH_FAILURES",
        key: "rate_limit.auth_failures",
        default: "QUDAG_RATE_LIMIT",
        help: "failed authentications per minute per client address (IPv6: per /64); unset, the rate and burst of QUDAG_RATE_LIMIT, set, a burst of a minute's worth up to 100; once spent, that address's requests are refused with 429 before their token is looked at, until it refills. Only refused credentials count, so honest callers sharing an address (NAT) do not use it up; 0 turns it off",
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_MAX_KEYS",
        key: "rate_limit.max_keys",
        default: "100000",
        help: "callers the in-memory limiter remembers at most; idle ones are forgotten first",
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_FAILURE",
        key: "rate_limit.on_failure",
        default: "fail-open",
        help: "when the limiter's backend is unreachable: `fail-open` (serve) or `fail-closed` (refuse with 503)",
    },
    EnvVar {
        name: "QUDAG_DAILY_QUOTA",
        key: "rate_limit.daily_quota",
        default: "0",
        help: "requests each authenticated principal may make per rolling day, on top of QUDAG_RATE_LIMIT; 0 for no daily quota",
    },
    EnvVar {
        name: "QUDAG_TRUSTED_PROXIES",
        key: "mcp.trusted_proxies",
        default: "",
        help: "comma-separated IP addresses or CIDR blocks of proxies whose `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are believed (e.g. `10.0.0.0/8`); from anyone else they are ignored. The `X-Forwarded-For` chain (all its lines) is read from the right, skipping trusted proxies; IPv4-mapped IPv6 peers match IPv4 blocks",
    },
    EnvVar {
        name: "QUDAG_RATE_LIMIT_STORE",
        key: "rate_limit.store",
        default: "memory",
        help: "where rate-limit state lives: `memory` (this process) or `redis` (shared by every node; needs QUDAG_REDIS_URL and the `redis` cargo feature)",
    },
    EnvVar {
        name: "QUDAG_REDIS_URL",
        key: "redis.url",
        default: "",
        help: "`redis://[user:password@]host:port[/db]`; credentials are never logged",
    },
    EnvVar {
        name: "QUDAG_REDIS_KEY_PREFIX",
        key: "redis.key_prefix",
        default: "qudag:",
        help: "prefix of every Redis key the server writes, so several deployments or test runs can share one Redis",
    },
    EnvVar { name: "QUDAG_REDIS_POOL_SIZE", key: "redis.pool_size", default: "16", help: "Redis connections per node" },
    EnvVar {
        name: "QUDAG_REDIS_TIMEOUT_MS",
        key: "redis.command_timeout_ms",
        default: "1000",
        help: "milliseconds a Redis command may take before Redis counts as unavailable",
    },
    EnvVar {
        name: "QUDAG_REQUIRE_AUTH",
        key: "auth.require_auth",
        default: "true",
        help: "require a bearer token on `/mcp`; `false` only for local use (refused on a non-loopback address unless QUDAG_ALLOW_UNAUTHENTICATED_NETWORK is set)",
    },
    EnvVar {
        name: "QUDAG_ALLOW_UNAUTHENTICATED_NETWORK",
        key: "auth.allow_unauthenticated_network",
        default: "false",
        help: "allow QUDAG_REQUIRE_AUTH=false on a non-loopback address; anyone who can reach the port can then use every tool",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_ISSUER_URL",
        key: "auth.issuer_url",
        default: "",
        help: "the authorization server's issuer identifier (exact `iss`); its JWKS is found by OpenID Connect / RFC 8414 discovery; `https` required except on loopback; required when authentication is on",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_AUDIENCE",
        key: "auth.audience",
        default: "",
        help: "our audience (RFC 8707 resource): a token's `aud` must contain it, e.g. the public MCP URL `https://mcp.example.com/mcp` or an API identifier; required when authentication is on",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_JWKS_URL",
        key: "auth.jwks_url",
        default: "",
        help: "the issuer's JWKS URL, when it should not be discovered from QUDAG_OAUTH2_ISSUER_URL",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_INTROSPECTION_URL",
        key: "auth.introspection_url",
        default: "",
        help: "RFC 7662 introspection endpoint for opaque (non-JWT) tokens; needs QUDAG_OAUTH2_CLIENT_ID and QUDAG_OAUTH2_CLIENT_SECRET",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_CLIENT_ID",
        key: "auth.client_id",
        default: "",
        help: "this server's client id at the authorization server, for introspection",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_CLIENT_SECRET",
        key: "auth.client_secret",
        default: "",
        help: "this server's client secret, for introspection (never logged)",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_HMAC_SECRET",
        key: "auth.hmac_secret",
        default: "",
        help: "shared secret (at least 32 bytes) for HS256/384/512 tokens; without it HMAC-signed tokens are refused (never logged)",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_ROLES_CLAIM",
        key: "auth.roles_claim",
        default: "roles",
        help: "the claim holding role names: a top-level claim (`roles`, or a namespaced one such as `https://qudag.example/roles`), else a dotted path (`realm_access.roles` for Keycloak)",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_LEEWAY_SECS",
        key: "auth.leeway_secs",
        default: "30",
        help: "clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (0-60)",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_JWKS_CACHE_SECS",
        key: "auth.jwks_cache_secs",
        default: "300",
        help: "seconds a fetched JWKS is used before it is fetched again (a token with an unknown `kid` refetches sooner)",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_JWKS_MIN_REFRESH_SECS",
        key: "auth.jwks_min_refresh_secs",
        default: "10",
        help: "least seconds between two JWKS refetches caused by unknown `kid`s, so made-up key ids cannot flood the issuer",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_MAX_TOKEN_BYTES",
        key: "auth.max_token_bytes",
        default: "8192",
        help: "longest access token accepted, in bytes; longer ones are refused before parsing",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_TOKEN_CACHE_SIZE",
        key: "auth.token_cache_size",
        default: "10000",
        help: "verified tokens remembered (by digest) until they expire, so a busy client is not re-verified per request; 0 turns the cache off",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_DPOP_MAX_AGE_SECS",
        key: "auth.dpop_max_age_secs",
        default: "300",
        help: "oldest DPoP proof (`iat`) accepted for a DPoP-bound token, in seconds",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_DPOP_REPLAY_PER_KEY",
        key: "auth.dpop_replay_per_key",
        default: "10000",
        help: "DPoP proof ids (`jti`) remembered per DPoP key against replay (within QUDAG_OAUTH2_DPOP_MAX_AGE_SECS); a key sending more live proofs has them refused (`dpop_replay_limit`), other clients' proofs are not affected",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_INTROSPECTION_CACHE_SECS",
        key: "auth.introspection_cache_secs",
        default: "60",
        help: "seconds an active introspection answer is believed (never past the token's `exp`), so a token revoked at the issuer stops working within it; an inactive answer is remembered for at most 10 s; 0 asks on every request",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_TOKEN_TYPES",
        key: "auth.token_types",
        default: "at+jwt,none",
        help: "JWT `typ` header values accepted on access tokens, comma-separated (case-insensitive, `application/` optional); `none` admits tokens without `typ`; add `jwt` for issuers that type access tokens `JWT`. Tokens carrying ID-token claims (`nonce`, `at_hash`, `c_hash`, `s_hash`) are refused unless typed `at+jwt`",
    },
    EnvVar {
        name: "QUDAG_OAUTH2_CA_PATH",
        key: "auth.ca_path",
        default: "",
        help: "PEM file of extra CA certificates trusted for the authorization server (besides the system roots)",
    },
    EnvVar {
        name: "QUDAG_DEV_KEY_PATH",
        key: "auth.dev_key_path",
        default: "~/.local/state/qudag-mcp/dev.key",
        help: "the developer-mode signing key shared by `serve --dev` and `dev-token` (created on first use, mode 0600, in a directory made with mode 0700; default under $XDG_STATE_HOME when set); a key file another user owns or may read, or a directory another user owns or may write, is refused",
    },
    EnvVar {
        name: "QUDAG_PUBLIC_URL",
        key: "mcp.public_url",
        default: "",
        help: "the server's external base URL (e.g. `https://mcp.example.com`), used in the protected-resource metadata, challenges and for DPoP `htu`; required while authentication is on and QUDAG_HOST is not a loopback address; on loopback, derived from each request's Host (and a trusted proxy's X-Forwarded-Proto/-Host) when unset",
    },
    EnvVar {
        name: "QUDAG_CORS_ORIGINS",
        key: "mcp.cors_origins",
        default: "",
        help: "comma-separated browser origins allowed to call the server (e.g. `https://app.example.com`), `*` for any: they get CORS headers and answered preflights; any other `Origin` gets no CORS headers, 403 on preflights and on `/mcp`; loopback origins are allowed while bound to loopback",
    },
    EnvVar {
        name: "QUDAG_MAX_BODY_BYTES",
        key: "mcp.max_body_bytes",
        default: "4194304",
        help: "largest request body accepted on `/mcp` and every route outside `/admin/`, in bytes (at least 1024); a declared `Content-Length` over it gets 413 before the body is read, a body without one gets 413 as soon as it passes the limit",
    },
    EnvVar {
        name: "QUDAG_ADMIN_MAX_BODY_BYTES",
        key: "mcp.admin_max_body_bytes",
        default: "65536",
        help: "largest request body accepted on `/admin/*`, in bytes (at least 1024), refused with 413 like QUDAG_MAX_BODY_BYTES; smaller, as these bodies are read before their caller is authenticated",
    },
    EnvVar {
        name: "QUDAG_MAX_BODY_BYTES_PER_ADDRESS",
        key: "mcp.max_body_bytes_per_address",
        default: "16777216",
        help: "request-body bytes one client address may have held at once, across all its requests in flight (0 for no bound; else at least the larger of QUDAG_MAX_BODY_BYTES and QUDAG_ADMIN_MAX_BODY_BYTES); a body that would pass it gets 429 with `Retry-After` while it is read",
    },
    EnvVar {
        name: "QUDAG_REQUEST_TIMEOUT_SECS",
        key: "mcp.request_timeout_secs",
        default: "120",
        help: "seconds a request may take until its response starts (a body still arriving, a tool still running without streaming); then 503 and its work is dropped. Streams, once started, are not cut",
    },
    EnvVar {
        name: "QUDAG_BODY_TIMEOUT_SECS",
        key: "mcp.body_timeout_secs",
        default: "30",
        help: "seconds a request body may take to arrive, counted from the request's head (1 to 3600); a body still arriving then gets 408 and the connection is closed, so a slow sender holds its connection no longer, whatever QUDAG_REQUEST_TIMEOUT_SECS allows",
    },
    EnvVar {
        name: "QUDAG_MAX_STREAMS_PER_PRINCIPAL",
        key: "mcp.max_streams_per_principal",
        default: "16",
        help: "long-lived SSE streams (GET streams, `subscriptions/listen`) one caller may hold open at once; one more gets 429",
    },
    EnvVar {
        name: "QUDAG_MAX_STREAMS",
        key: "mcp.max_streams",
        default: "10000",
        help: "long-lived SSE streams this node holds open at once, all callers together; one more gets 503",
    },
    EnvVar {
        name: "QUDAG_MAX_TOOL_CALLS_PER_PRINCIPAL",
        key: "mcp.max_tool_calls_per_principal",
        default: "8",
        help: "tool calls one caller may have running at once; one more gets 429 with `Retry-After`",
    },
    EnvVar {
        name: "QUDAG_MAX_PENDING_REQUESTS_PER_PRINCIPAL",
        key: "mcp.max_pending_requests_per_principal",
        default: "16",
        help: "requests to the client (sampling, elicitation, roots) one caller's tool calls may have waiting for answers at once; one more fails the tool call with -31002 naming this limit",
    },
    EnvVar {
        name: "QUDAG_SSE_KEEPALIVE_SECS",
        key: "mcp.sse_keepalive_secs",
        default: "15",
        help: "seconds between keep-alive comments on open SSE streams: keeps proxies from closing quiet streams, and is how a stream whose client went away is noticed and its place freed",
    },
    EnvVar {
        name: "QUDAG_KEY_FILE",
        key: "tools.key_file",
        default: "",
        help: "the server's key file (ML-DSA-65 signing seed and ML-KEM vault seeds, JSON), created with mode 0600 when missing; every node must load the same file; ephemeral keys when unset (vault entries and name records are then unreadable after a restart)",
    },
    EnvVar {
        name: "QUDAG_STORE",
        key: "tools.store",
        default: "memory",
        help: "where vault entries and .dark name records live: `memory` (this process) or `postgres` (shared; needs QUDAG_DATABASE_URL, QUDAG_KEY_FILE and the `postgres` cargo feature)",
    },
    EnvVar {
        name: "QUDAG_DATABASE_URL",
        key: "database.url",
        default: "",
        help: "PostgreSQL URL (`postgres://user:password@host:5432/db`) for QUDAG_STORE=postgres and QUDAG_AUDIT_SINK=postgres; migrations run at start (or `qudag-mcp migrate`)",
    },
    EnvVar {
        name: "QUDAG_DATABASE_POOL_SIZE",
        key: "database.pool_size",
        default: "10",
        help: "PostgreSQL connections per node",
    },
    EnvVar {
        name: "QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL",
        key: "tools.max_vault_entries_per_principal",
        default: "1000",
        help: "most live vault entries one principal may hold (1-100000; keys the crypto tools mint included); one more is refused with a tool error naming this limit",
    },
    EnvVar {
        name: "QUDAG_MAX_NAMES_PER_PRINCIPAL",
        key: "tools.max_names_per_principal",
        default: "100",
        help: "most live `.dark` names one principal may hold (1-100000); renewing a held name is always allowed",
    },
    EnvVar {
        name: "QUDAG_MAX_QUBITS",
        key: "tools.max_qubits",
        default: "24",
        help: "most qubits in one circuit (1-30); a state vector takes 16·2ⁿ bytes (24 qubits: 256 MiB)",
    },
    EnvVar {
        name: "QUDAG_MAX_AMPLITUDE_UPDATES",
        key: "tools.max_amplitude_updates",
        default: "8589934592",
        help: "most work one call may take, in amplitude updates (per run 2ⁿ per gate, at least one pass, plus one per measured qubit per shot; benchmarks count every run); bounds CPU time per call (about 1-3 ns per update)",
    },
    EnvVar {
        name: "QUDAG_NODE_ID",
        key: "tools.node_id",
        default: "(random)",
        help: "this node's id in peer discovery (letters, digits, `-`, `_`, `.`; at most 64)",
    },
    EnvVar {
        name: "QUDAG_AUDIT_ENABLED",
        key: "audit.enabled",
        default: "true",
        help: "record security-relevant acts (authentication, tool calls, denials, sessions, admin actions); `false` records nothing (a warning at start)",
    },
    EnvVar {
        name: "QUDAG_AUDIT_SINK",
        key: "audit.sink",
        default: "memory",
        help: "where audit events go: `memory` (the latest 10 000, for `/admin/audit`; not durable), `file` (JSON lines with a BLAKE3 hash chain at QUDAG_AUDIT_FILE, rotated by size and day; check with `qudag-mcp audit verify PATH`) or `postgres` (rows with a hash chain per node at QUDAG_DATABASE_URL, spooled to QUDAG_AUDIT_SPOOL while the database is unreachable; check with `qudag-mcp audit verify --database URL`; needs the `postgres` cargo feature)",
    },
    EnvVar {
        name: "QUDAG_AUDIT_FILE",
        key: "audit.file",
        default: "",
        help: "the file audit sink's active file (e.g. `/var/lib/qudag-mcp/audit/audit.jsonl`); rotated files are kept beside it",
    },
    EnvVar {
        name: "QUDAG_AUDIT_SPOOL",
        key: "audit.spool",
        default: "",
        help: "the PostgreSQL audit sink's spool file (e.g. `/var/lib/qudag-mcp/audit/spool.jsonl`, on a persistent local volume): events wait there, synced, while PostgreSQL is unreachable and are replayed in order when it returns, also after a restart; required with QUDAG_AUDIT_SINK=postgres",
    },
    EnvVar {
        name: "QUDAG_AUDIT_ACK",
        key: "audit.ack",
        default: "durable",
        help: "with the file or PostgreSQL sink, when a request whose act is recorded (a tool call, an admin action, a session change) is answered: `durable` (only after its record is synced to disk or committed; records of concurrent requests share one sync or transaction; while the queue is full or the sink fails, new requests get 503 with Retry-After before they run) or `queued` (as soon as the record is queued: faster, but what is queued when the process dies is lost)",
    },
    EnvVar {
        name: "QUDAG_AUDIT_FSYNC",
        key: "audit.fsync",
        default: "interval",
        help: "with QUDAG_AUDIT_ACK=queued, when the file sink syncs to disk: `always` (after each write) or `interval` (at most every QUDAG_AUDIT_FSYNC_INTERVAL_MS); with QUDAG_AUDIT_ACK=durable the file is synced before every acknowledgement",
    },
    EnvVar {
        name: "QUDAG_AUDIT_FSYNC_INTERVAL_MS",
        key: "audit.fsync_interval_ms",
        default: "1000",
        help: "with QUDAG_AUDIT_FSYNC=interval, the most milliseconds between syncs (what a power loss may cost)",
    },
    EnvVar {
        name: "QUDAG_AUDIT_MAX_FILE_BYTES",
        key: "audit.max_file_bytes",
        default: "67108864",
        help: "the file sink rotates a file before it would pass this size (it also rotates at each UTC day)",
    },
    EnvVar {
        name: "QUDAG_AUDIT_CHECKPOINT_SECS",
        key: "audit.checkpoint_secs",
        default: "300",
        help: "seconds between signed checkpoints of the audit chain (ML-DSA-65 with the server key, also one at shutdown); `qudag-mcp audit verify --public-key` checks them; 0 for none",
    },
    EnvVar {
        name: "QUDAG_AUDIT_QUEUE_CAPACITY",
        key: "audit.queue_capacity",
        default: "10000",
        help: "audit records a durable sink's queue holds; requests hand their records to it and go on, a writer task writes them in order and retries (never drops) while the sink fails",
    },
    EnvVar {
        name: "QUDAG_AUDIT_QUEUE_FULL",
        key: "audit.queue_full",
        default: "block",
        help: "when the audit queue is full: `block` (a request waits up to QUDAG_AUDIT_QUEUE_BLOCK_MS for a place, then gets 503) or `refuse` (new requests get 503 until it drains); records are never dropped",
    },
    EnvVar {
        name: "QUDAG_AUDIT_QUEUE_BLOCK_MS",
        key: "audit.queue_block_ms",
        default: "100",
        help: "with QUDAG_AUDIT_QUEUE_FULL=block, the most milliseconds a request waits for a place in the audit queue",
    },
    EnvVar {
        name: "QUDAG_AUDIT_RETENTION_DAYS",
        key: "audit.retention_days",
        default: "0",
        help: "days audit events are kept (rotated files of the file sink, rows of the PostgreSQL sink); older ones are removed (hourly check) only once a signed checkpoint covers them, so what remains still verifies; 0 keeps everything",
    },
    EnvVar {
        name: "QUDAG_REQUEST_STATE_KEY",
        key: "mcp.request_state_key",
        default: "",
        help: "hex key of at least 32 bytes sealing input-required request state; random per process when unset, so nodes behind one load balancer must share one",
    },
];
