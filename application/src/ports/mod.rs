//! The ports: what the core needs from the outside world, in its own words.
//!
//! Every port is an object-safe `async_trait` with `Send + Sync + 'static`, so the bootstrap
//! can choose adapters at run time and hand the core an `Arc<dyn Port>`. Methods take and
//! return domain types only. Each port has a contract suite in `testkit` that every adapter
//! must pass unchanged.

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
