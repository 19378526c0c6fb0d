//! `Membership`: which server nodes are alive.
//!
//! Each node announces itself periodically with a time to live; a node that stops
//! announcing drops out once its announcement expires. Adapters: `MemoryMembership`
//! (adapters/memory: this process only) and `RedisMembership` (adapters/redis: every node).

use std::time::Duration;

use async_trait::async_trait;
use qudag_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::BoxError;

/// A server node, as it announces itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable for the process's life (random at start unless configured).
    pub id: String,
    /// Where clients or peers reach it (its public URL, or bind address).
    pub address: String,
    /// The server version it runs.
    pub version: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it last announced itself.
    pub last_seen: Timestamp,
}

/// Errors a membership backend may return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The backend cannot be reached.
    #[error("membership backend unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

/// The set of live nodes.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait Membership: Send + Sync + 'static {
    /// Announce `node` (its `last_seen` is the announcement time) as alive for `ttl`.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn announce(&self, node: &NodeInfo, ttl: Duration) -> Result<(), MembershipError>;

    /// The nodes whose announcement is live at `now`, ordered by id.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn live(&self, now: Timestamp) -> Result<Vec<NodeInfo>, MembershipError>;

    /// Withdraw a node at once (graceful shutdown).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn leave(&self, id: &str) -> Result<(), MembershipError>;
}
