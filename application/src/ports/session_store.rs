//! `SessionStore`: where stateful-era MCP sessions live between requests.
//!
//! Adapters: `MemorySessionStore` (adapters/memory, one process) and `RedisSessionStore`
//! (adapters/redis), shared by several nodes so that any node can serve any session.

use std::sync::Arc;

use async_trait::async_trait;
use qudag_domain::Timestamp;
use qudag_domain::session::{Session, SessionId};

use crate::BoxError;

/// Errors a session store may return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionStoreError {
    /// A session with this id already exists.
    #[error("session already exists")]
    Conflict,
    /// The session does not exist (or has expired).
    #[error("session not found")]
    NotFound,
    /// The session's holder has as many live sessions as it may; no new one for it until
    /// one of them ends or expires.
    #[error("at most {limit} live sessions per caller")]
    HolderLimit {
        /// The configured maximum per holder.
        limit: usize,
    },
    /// The store is full; no new session can be taken until some expire.
    #[error("session store is at capacity ({capacity} sessions)")]
    CapacityExceeded {
        /// The configured maximum.
        capacity: usize,
    },
    /// The backend cannot be reached; the caller may retry (HTTP 503).
    #[error("session store unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A stored session could not be read back.
    #[error("stored session is corrupt: {reason}")]
    Corrupt {
        /// What is wrong with it.
        reason: String,
    },
}

/// Storage of MCP sessions.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Store a new session, unless its [holder](Session::holder) already has
    /// `max_per_holder` live sessions. Once this returns, every node sharing the store sees
    /// it.
    ///
    /// # Errors
    /// `Conflict` if the id is taken, `HolderLimit` when the holder is at its limit,
    /// `CapacityExceeded` when full, `Unavailable` when the backend cannot be reached.
    async fn create(&self, session: &Session, max_per_holder: usize) -> Result<(), SessionStoreError>;

    /// The live session with this id at `now`; `None` when unknown or expired. Expired
    /// sessions are never returned, whatever the backend's eviction timing. Shared, so a
    /// store that keeps sessions in memory hands them out without copying.
    ///
    /// # Errors
    /// `Unavailable`, or `Corrupt` when the stored form cannot be read.
    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Arc<Session>>, SessionStoreError>;

    /// Replace a stored session (after `touch`, or a state change).
    ///
    /// # Errors
    /// `NotFound` when the session was deleted or expired meanwhile — a save never
    /// resurrects it; `Unavailable`.
    async fn save(&self, session: &Session) -> Result<(), SessionStoreError>;

    /// Delete a session; returns whether it existed. Once this returns, no node can load it.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn delete(&self, id: &SessionId) -> Result<bool, SessionStoreError>;

    /// How many live sessions the store holds (for health and metrics; may be approximate
    /// for a shared store).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn count(&self, now: Timestamp) -> Result<usize, SessionStoreError>;
}
