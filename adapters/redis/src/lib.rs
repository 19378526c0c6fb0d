//! Redis adapters of the QuDAG MCP server's ports: state every node behind a load balancer
//! shares.
//!
//! | adapter | port |
//! |---|---|
//! | [`RedisRateLimiter`] | `RateLimiter`, `HealthIndicator` |
//!
//! Connections come from one bb8 pool per process ([`RedisPool`]); every key lives under
//! a configurable prefix, so several deployments (or test runs) can share one Redis.
#![deny(missing_docs)]

mod pool;
mod rate_limiter;

pub use pool::{RedisConfig, RedisError, RedisPool};
pub use rate_limiter::RedisRateLimiter;
