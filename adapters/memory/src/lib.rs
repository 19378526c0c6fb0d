//! In-process adapters of the QuDAG MCP server's ports: the embedded default.
//!
//! | adapter | port |
//! |---|---|
//! | [`MemorySessionStore`] | `SessionStore`, `HealthIndicator` |
//! | [`MemoryRateLimiter`] | `RateLimiter`, `HealthIndicator` |
//! | [`MemoryAuditSink`] | `AuditSink`, `AuditQuery`, `HealthIndicator` |
//! | [`NullAuditSink`] | `AuditSink`, `AuditQuery` (audit turned off: keeps nothing) |
//! | [`MemoryEventBus`] | `EventBus` |
//! | [`MemoryEventStore`] | `EventStore` |
//! | [`MemoryVaultStore`] | `VaultStore` |
//! | [`MemoryNameRegistry`] | `NameRegistry` |
//! | [`MemoryMembership`] | `Membership` |
//!
//! Everything is bounded: expired sessions and idle limiter keys are evicted, and a flood
//! of distinct keys cannot grow memory without limit. State lives in this process only;
//! several nodes need the shared adapters (Redis, PostgreSQL).
#![deny(missing_docs)]

mod audit;
mod event_bus;
mod event_store;
mod membership;
mod name_registry;
mod rate_limiter;
mod session_store;
mod shard;
mod vault_store;

pub use audit::{MemoryAuditSink, NullAuditSink};
pub use event_bus::MemoryEventBus;
pub use event_store::MemoryEventStore;
pub use membership::MemoryMembership;
pub use name_registry::MemoryNameRegistry;
pub use rate_limiter::MemoryRateLimiter;
pub use session_store::MemorySessionStore;
pub use vault_store::MemoryVaultStore;
