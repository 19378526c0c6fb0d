//! Redis adapters of the QuDAG MCP server's ports: state every node behind a load balancer
//! shares.
//!
//! | adapter | port |
//! |---|---|
//! | [`RedisRateLimiter`] | `RateLimiter` |
//! | [`RedisSessionStore`] | `SessionStore` |
//! | [`RedisMembership`] | `Membership` |
//! | [`RedisEventBus`] | `EventBus` |
//! | [`RedisEventStore`] | `EventStore` |
//! | [`RedisPool`] | `HealthIndicator` (`PING`) |
//!
//! Connections come from one bb8 pool per process ([`RedisPool`]); every key lives under
//! a configurable prefix, so several deployments (or test runs) can share one Redis.
#![deny(missing_docs)]

mod event_bus;
mod event_store;
mod membership;
mod pool;
mod rate_limiter;
mod session_store;

pub use event_bus::RedisEventBus;
pub use event_store::RedisEventStore;
pub use membership::RedisMembership;
pub use pool::{RedisConfig, RedisError, RedisPool};
pub use rate_limiter::RedisRateLimiter;
pub use session_store::RedisSessionStore;
