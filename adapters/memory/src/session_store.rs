//! `MemorySessionStore`: stateful-era MCP sessions in this process, at most a configured
//! number of live ones, so a flood of `initialize` cannot exhaust memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use qudag_application::ports::{Clock, ComponentHealth, HealthIndicator, SessionStore, SessionStoreError};
use qudag_domain::Timestamp;
use qudag_domain::session::{Session, SessionId};

use crate::shard::Sharded;

/// Sessions in this process's memory, at most `capacity` of them.
///
/// Expired sessions are dropped when met, by [`MemorySessionStore::sweep`] (which the
/// server runs periodically), and before a create would be refused for capacity — so a
/// full store is full of live sessions only.
pub struct MemorySessionStore {
    sessions: Sharded<SessionId, Session>,
    len: AtomicUsize,
    capacity: usize,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl MemorySessionStore {
    /// A store holding at most `capacity` live sessions.
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self { sessions: Sharded::new(), len: AtomicUsize::new(0), capacity, clock }
    }

    /// Drop every session expired at `now`; returns how many were dropped.
    pub fn sweep(&self, now: Timestamp) -> usize {
        let mut dropped = 0;
        for mut shard in self.sessions.each_shard() {
            let before = shard.len();
            shard.retain(|_, s| !s.is_expired(now));
            dropped += before - shard.len();
        }
        self.len.fetch_sub(dropped, Ordering::AcqRel);
        dropped
    }

    /// Sessions held, live or not yet swept.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn reserve_slot(&self) -> bool {
        self.len.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.capacity).then_some(n + 1)).is_ok()
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, session: &Session) -> Result<(), SessionStoreError> {
        if !self.reserve_slot() {
            self.sweep(self.clock.now());
            if !self.reserve_slot() {
                return Err(SessionStoreError::CapacityExceeded { capacity: self.capacity });
            }
        }
        let mut shard = self.sessions.shard(session.id());
        if shard.contains_key(session.id()) {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(SessionStoreError::Conflict);
        }
        shard.insert(session.id().clone(), session.clone());
        Ok(())
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, SessionStoreError> {
        let mut shard = self.sessions.shard(id);
        match shard.get(id) {
            Some(s) if s.is_expired(now) => {
                shard.remove(id);
                self.len.fetch_sub(1, Ordering::AcqRel);
                Ok(None)
            }
            Some(s) => Ok(Some(s.clone())),
            None => Ok(None),
        }
    }

    async fn save(&self, session: &Session) -> Result<(), SessionStoreError> {
        let mut shard = self.sessions.shard(session.id());
        match shard.get_mut(session.id()) {
            Some(stored) => {
                *stored = session.clone();
                Ok(())
            }
            None => Err(SessionStoreError::NotFound),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, SessionStoreError> {
        let removed = self.sessions.shard(id).remove(id).is_some();
        if removed {
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(removed)
    }

    async fn count(&self, now: Timestamp) -> Result<usize, SessionStoreError> {
        Ok(self.sessions.each_shard().map(|shard| shard.values().filter(|s| !s.is_expired(now)).count()).sum())
    }
}

#[async_trait]
impl HealthIndicator for MemorySessionStore {
    async fn health(&self) -> ComponentHealth {
        ComponentHealth::up(format!("memory: {} of {} sessions", self.len(), self.capacity))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use qudag_application::testkit::ManualClock;
    use qudag_application::testkit::session_store::sample_session;

    use super::*;

    #[tokio::test]
    async fn capacity_is_enforced_but_expired_sessions_make_room() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
        let store = MemorySessionStore::new(2, clock.clone());
        let t = clock.now();
        store.create(&sample_session("a", t)).await.unwrap();
        store.create(&sample_session("b", t)).await.unwrap();
        let err = store.create(&sample_session("c", t)).await.unwrap_err();
        assert!(matches!(err, SessionStoreError::CapacityExceeded { capacity: 2 }));

        // Past the idle timeout both are dead: a create sweeps them and succeeds.
        clock.advance(Duration::from_secs(61));
        store.create(&sample_session("c", clock.now())).await.unwrap();
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn sweep_drops_only_expired_sessions() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
        let store = MemorySessionStore::new(100, clock.clone());
        let old = sample_session("old", Timestamp::from_secs(0));
        let fresh = sample_session("fresh", Timestamp::from_secs(50));
        store.create(&old).await.unwrap();
        store.create(&fresh).await.unwrap();
        assert_eq!(store.sweep(Timestamp::from_secs(70)), 1);
        assert_eq!(store.len(), 1);
        assert!(store.load(fresh.id(), Timestamp::from_secs(70)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn conflicting_creates_do_not_leak_capacity() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
        let store = MemorySessionStore::new(2, clock.clone());
        let s = sample_session("a", clock.now());
        store.create(&s).await.unwrap();
        for _ in 0..10 {
            assert!(matches!(store.create(&s).await, Err(SessionStoreError::Conflict)));
        }
        assert_eq!(store.len(), 1);
        store.create(&sample_session("b", clock.now())).await.unwrap();
        assert!(matches!(
            store.create(&sample_session("c", clock.now())).await,
            Err(SessionStoreError::CapacityExceeded { .. })
        ));
    }
}
