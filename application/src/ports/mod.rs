//! The ports: what the core needs from the outside world, in its own words.
//!
//! Every port is a `Send + Sync + 'static` trait the bootstrap can hand the core as an
//! `Arc<dyn Port>`, so adapters are chosen at run time; all but [`Clock`] are
//! `async_trait`s. Methods take and return domain types only. A port that adapters
//! implement against a backend has a contract suite in `testkit` that every one of them
//! must pass unchanged (`adapters/<tech>/tests/contract.rs`).
//!
//! | port | what the core needs it for | adapters (crate) |
//! |---|---|---|
//! | [`SessionStore`] | stateful-era MCP sessions between requests | `MemorySessionStore` (memory), `RedisSessionStore` (redis) |
//! | [`RateLimiter`] | GCRA decisions per caller, before and after authentication | `MemoryRateLimiter` (memory), `RedisRateLimiter` (redis) |
//! | [`AuditSink`] | recording security-relevant acts into a hash chain | `MemoryAuditSink`, `NullAuditSink` (memory), `FileAuditSink` (file), `PostgresAuditSink` (postgres); `QueuedAuditSink` (application, in front of a durable one) |
//! | [`AuditQuery`] | reading the audit trail back (`GET /admin/audit`) | `MemoryAuditSink`, `NullAuditSink` (memory), `FileAuditSink` (file), `PostgresAuditSink` (postgres) |
//! | [`TokenVerifier`] | from an access token to a principal | `OAuthVerifier` (oauth: JWT/JWKS, RFC 7662 introspection, DPoP, developer key) |
//! | [`EventBus`] | notifications and clients' answers between streams and nodes | `MemoryEventBus` (memory), `RedisEventBus` (redis) |
//! | [`EventStore`] | SSE events kept for resumption with `Last-Event-ID` | `MemoryEventStore` (memory), `RedisEventStore` (redis) |
//! | [`Membership`] | the live nodes (`peer_discovery`) | `MemoryMembership` (memory), `RedisMembership` (redis) |
//! | [`VaultStore`] | sealed vault entries | `MemoryVaultStore` (memory), `PostgresVaultStore` (postgres) |
//! | [`NameRegistry`] | signed `.dark` name records | `MemoryNameRegistry` (memory), `PostgresNameRegistry` (postgres) |
//! | [`HealthIndicator`] | whether a component can do its job (`/health`, readiness) | `MemorySessionStore`, `MemoryRateLimiter`, `MemoryAuditSink` (memory), `RedisPool` (redis), `FileAuditSink` (file), `PostgresHealth`, `PostgresAuditSink` (postgres), `OAuthVerifier` (oauth); `QueuedAuditSink` (application) |
//! | [`Metrics`] | counting requests, calls, refusals and backend errors | `PrometheusMetrics` (http, rendered by `prometheus-client` at `/metrics`); [`NoopMetrics`] (here) |
//! | [`Clock`] | the current time | [`SystemClock`] (here), `ManualClock` (testkit) |
//!
//! Contract suites exist for the session store, rate limiter, audit sink and query, event
//! bus, event store, membership, vault store and name registry. The token verifier is
//! tested against a real OpenID Connect issuer (`tests/auth`); every port also has a
//! mockall mock (`MockSessionStore`, …) with the feature `testkit`.

pub mod audit;
pub mod clock;
pub mod event_bus;
pub mod event_store;
pub mod health;
pub mod membership;
pub mod metrics;
pub mod name_registry;
pub mod rate_limiter;
pub mod session_store;
pub mod token_verifier;
pub mod vault_store;

pub use audit::{AuditFilter, AuditPage, AuditQuery, AuditSink, AuditSinkError, BatchOutcome};
pub use clock::{Clock, SystemClock};
pub use event_bus::{BusMessage, EventBus, EventBusError, Topic};
pub use event_store::{EventBatch, EventId, EventStore, EventStoreError, StreamKey};
pub use health::{ComponentHealth, HealthIndicator, HealthStatus};
pub use membership::{Membership, MembershipError, NodeInfo};
pub use metrics::{Metrics, NoopMetrics, Quota, ToolOutcome};
pub use name_registry::{NameRegistry, NameRegistryError, SignedNameRecord};
pub use rate_limiter::{RateLimitKey, RateLimiter, RateLimiterError};
pub use session_store::{SessionStore, SessionStoreError};
pub use token_verifier::{AuthScheme, Credential, DpopProof, TokenError, TokenVerifier};
pub use vault_store::{
    VaultCounts, VaultEntry, VaultEntrySummary, VaultListQuery, VaultPage, VaultStore, VaultStoreError,
};

#[cfg(any(test, feature = "testkit"))]
pub use self::{
    audit::{MockAuditQuery, MockAuditSink},
    clock::MockClock,
    event_bus::MockEventBus,
    event_store::MockEventStore,
    health::MockHealthIndicator,
    membership::MockMembership,
    metrics::MockMetrics,
    name_registry::MockNameRegistry,
    rate_limiter::MockRateLimiter,
    session_store::MockSessionStore,
    token_verifier::MockTokenVerifier,
    vault_store::MockVaultStore,
};
