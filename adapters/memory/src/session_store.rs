//! `MemorySessionStore`: stateful-era MCP sessions in this process, at most a configured
//! number of live ones in all and per holder, so a flood of `initialize` cannot exhaust
//! memory, nor one caller take every place.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use qudag_application::ports::{Clock, ComponentHealth, HealthIndicator, SessionStore, SessionStoreError};
use qudag_domain::Timestamp;
use qudag_domain::session::{Session, SessionId};

use crate::shard::Sharded;

/// Sessions in this process's memory, at most `capacity` of them.
///
/// Expired sessions are dropped when met, by [`MemorySessionStore::sweep`] (which the
/// server runs periodically), and before a create would be refused for capacity or for its
/// holder's limit — at most once per [`REFUSAL_SWEEP_EVERY`] for each holder (and for the
/// capacity), so a caller at its limit that keeps asking cannot make every request walk all
/// sessions. Sessions are kept shared
/// ([`Arc`]): a request loading its session copies nothing.
pub struct MemorySessionStore {
    sessions: Sharded<SessionId, Arc<Session>>,
    len: AtomicUsize,
    capacity: usize,
    /// Sessions held per holder, and when (microseconds) a refusal at its limit last swept;
    /// a holder with no session has no entry.
    holders: Mutex<HashMap<String, Held>>,
    clock: Arc<dyn Clock>,
    /// When (microseconds) a refusal last swept.
    last_refusal_sweep: AtomicU64,
}

/// One holder's sessions.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    sessions: usize,
    swept_at: Option<u64>,
}

/// How often a create that would be refused may sweep expired sessions first: per holder
/// for its own limit, for the whole store for its capacity.
pub const REFUSAL_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

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
        Self {
            sessions: Sharded::new(),
            len: AtomicUsize::new(0),
            capacity,
            holders: Mutex::default(),
            clock,
            last_refusal_sweep: AtomicU64::new(0),
        }
    }

    /// Drop every session expired at `now`; returns how many were dropped.
    pub fn sweep(&self, now: Timestamp) -> usize {
        let mut dropped = Vec::new();
        for mut shard in self.sessions.each_shard() {
            shard.retain(|_, s| {
                let live = !s.is_expired(now);
                if !live {
                    dropped.push(s.holder().into_owned());
                }
                live
            });
        }
        self.len.fetch_sub(dropped.len(), Ordering::AcqRel);
        for holder in &dropped {
            self.release(holder);
        }
        dropped.len()
    }

    /// Sessions held, live or not yet swept.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holders with at least one session (each has an entry in the count).
    pub fn holders(&self) -> usize {
        self.holders_lock().len()
    }

    fn reserve_slot(&self) -> bool {
        self.len.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.capacity).then_some(n + 1)).is_ok()
    }

    fn holders_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.holders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Count one more session of `holder`, unless it has `max` already.
    fn reserve_holder(&self, holder: &str, max: usize) -> bool {
        let mut holders = self.holders_lock();
        match holders.get_mut(holder) {
            Some(held) if held.sessions >= max => false,
            Some(held) => {
                held.sessions += 1;
                true
            }
            None if max == 0 => false,
            None => {
                holders.insert(holder.to_owned(), Held { sessions: 1, swept_at: None });
                true
            }
        }
    }

    /// One session of `holder` fewer; a holder left with none is forgotten.
    fn release(&self, holder: &str) {
        let mut holders = self.holders_lock();
        if let Some(held) = holders.get_mut(holder) {
            held.sessions = held.sessions.saturating_sub(1);
            if held.sessions == 0 {
                holders.remove(holder);
            }
        }
    }

    /// Whether `holder`, refused at its limit, may have the store swept first: once per
    /// [`REFUSAL_SWEEP_EVERY`] per holder.
    fn holder_may_sweep(&self, holder: &str) -> bool {
        let now = self.clock.now().as_micros();
        let every = REFUSAL_SWEEP_EVERY.as_micros() as u64;
        let mut holders = self.holders_lock();
        let Some(held) = holders.get_mut(holder) else { return true };
        if held.swept_at.is_some_and(|at| now.saturating_sub(at) < every) {
            return false;
        }
        held.swept_at = Some(now);
        true
    }

    /// Sweep before refusing a create for capacity, unless such a refusal swept less than
    /// [`REFUSAL_SWEEP_EVERY`] ago; whether it swept.
    fn sweep_for_refusal(&self) -> bool {
        let now = self.clock.now();
        let every = REFUSAL_SWEEP_EVERY.as_micros() as u64;
        let last = self.last_refusal_sweep.load(Ordering::Acquire);
        if now.as_micros().saturating_sub(last) < every && last != 0 {
            return false;
        }
        if self.last_refusal_sweep.compare_exchange(last, now.as_micros(), Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            return false;
        }
        self.sweep(now);
        true
    }

    /// Make room for one session of `holder` under `max_per_holder`: its own expired
    /// sessions do not count against it.
    fn admit(&self, holder: &str, max_per_holder: usize) -> Result<(), SessionStoreError> {
        // Each check may sweep once (see `sweep_for_refusal`) and then asks again.
        if !self.reserve_holder(holder, max_per_holder)
            && (!self.holder_may_sweep(holder) || {
                self.sweep(self.clock.now());
                !self.reserve_holder(holder, max_per_holder)
            })
        {
            return Err(SessionStoreError::HolderLimit { limit: max_per_holder });
        }
        if !self.reserve_slot() && (!self.sweep_for_refusal() || !self.reserve_slot()) {
            self.release(holder);
            return Err(SessionStoreError::CapacityExceeded { capacity: self.capacity });
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, session: &Session, max_per_holder: usize) -> Result<(), SessionStoreError> {
        let holder = session.holder();
        self.admit(&holder, max_per_holder)?;
        let mut shard = self.sessions.shard(session.id());
        if shard.contains_key(session.id()) {
            drop(shard);
            self.len.fetch_sub(1, Ordering::AcqRel);
            self.release(&holder);
            return Err(SessionStoreError::Conflict);
        }
        shard.insert(session.id().clone(), Arc::new(session.clone()));
        Ok(())
    }

    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Arc<Session>>, SessionStoreError> {
        let mut shard = self.sessions.shard(id);
        match shard.get(id) {
            Some(s) if s.is_expired(now) => {
                let holder = s.holder().into_owned();
                shard.remove(id);
                drop(shard);
                self.len.fetch_sub(1, Ordering::AcqRel);
                self.release(&holder);
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
                *stored = Arc::new(session.clone());
                Ok(())
            }
            None => Err(SessionStoreError::NotFound),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, SessionStoreError> {
        let removed = self.sessions.shard(id).remove(id);
        match removed {
            Some(session) => {
                self.len.fetch_sub(1, Ordering::AcqRel);
                self.release(&session.holder());
                Ok(true)
            }
            None => Ok(false),
        }
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
        store.create(&sample_session("a", t), 100).await.unwrap();
        store.create(&sample_session("b", t), 100).await.unwrap();
        let err = store.create(&sample_session("c", t), 100).await.unwrap_err();
        assert!(matches!(err, SessionStoreError::CapacityExceeded { capacity: 2 }));

        // Past the idle timeout both are dead: a create sweeps them and succeeds.
        clock.advance(Duration::from_secs(61));
        store.create(&sample_session("c", clock.now()), 100).await.unwrap();
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn a_caller_at_its_limit_cannot_make_every_refusal_walk_all_sessions() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
        let store = MemorySessionStore::new(100, clock.clone());
        let t0 = clock.now();
        // The caller's one session stays live; another caller's expires unswept.
        store.create(&sample_session("at-limit", t0.saturating_add(Duration::from_secs(100))), 1).await.unwrap();
        store.create(&sample_session("other", t0), 1).await.unwrap();
        clock.advance(Duration::from_secs(61));
        async fn refused(store: &MemorySessionStore, clock: &ManualClock) -> SessionStoreError {
            store.create(&sample_session("at-limit", clock.now()), 1).await.unwrap_err()
        }
        // The first refusal sweeps (its expired sessions might have been the caller's) ...
        assert!(matches!(refused(&store, &clock).await, SessionStoreError::HolderLimit { limit: 1 }));
        assert_eq!(store.len(), 1, "the first refusal swept");
        // ... the next ones within REFUSAL_SWEEP_EVERY do not.
        store.create(&sample_session("expired-again", t0), 1).await.unwrap();
        for _ in 0..10 {
            assert!(matches!(refused(&store, &clock).await, SessionStoreError::HolderLimit { limit: 1 }));
        }
        assert_eq!(store.len(), 2, "no sweep within a second of the last");
        clock.advance(REFUSAL_SWEEP_EVERY + Duration::from_millis(1));
        assert!(matches!(refused(&store, &clock).await, SessionStoreError::HolderLimit { limit: 1 }));
        assert_eq!(store.len(), 1, "a refusal a second later sweeps again");
    }

    #[tokio::test]
    async fn sweep_drops_only_expired_sessions() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
        let store = MemorySessionStore::new(100, clock.clone());
        let old = sample_session("old", Timestamp::from_secs(0));
        let fresh = sample_session("fresh", Timestamp::from_secs(50));
        store.create(&old, 100).await.unwrap();
        store.create(&fresh, 100).await.unwrap();
        assert_eq!(store.sweep(Timestamp::from_secs(70)), 1);
        assert_eq!(store.len(), 1);
        assert!(store.load(fresh.id(), Timestamp::from_secs(70)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn holders_with_no_session_left_are_forgotten() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
        let store = MemorySessionStore::new(100, clock.clone());
        let ended = sample_session("ended", clock.now());
        let expired = sample_session("expired", clock.now());
        let swept = sample_session("swept", clock.now());
        for s in [&ended, &expired, &swept] {
            store.create(s, 1).await.unwrap();
        }
        assert_eq!(store.holders(), 3);
        store.delete(ended.id()).await.unwrap();
        clock.advance(Duration::from_secs(61));
        assert!(store.load(expired.id(), clock.now()).await.unwrap().is_none());
        assert_eq!(store.holders(), 1);
        store.sweep(clock.now());
        assert_eq!((store.holders(), store.len()), (0, 0));
        // A holder refused at its limit leaves no entry behind either.
        let again = sample_session("ended", clock.now());
        store.create(&again, 1).await.unwrap();
        let refused = store.create(&sample_session("ended", clock.now()), 1).await.unwrap_err();
        assert!(matches!(refused, SessionStoreError::HolderLimit { limit: 1 }));
        store.delete(again.id()).await.unwrap();
        assert_eq!(store.holders(), 0);
    }

    #[tokio::test]
    async fn conflicting_creates_do_not_leak_capacity() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(0)));
        let store = MemorySessionStore::new(2, clock.clone());
        let s = sample_session("a", clock.now());
        store.create(&s, 100).await.unwrap();
        for _ in 0..10 {
            assert!(matches!(store.create(&s, 100).await, Err(SessionStoreError::Conflict)));
        }
        assert_eq!(store.len(), 1);
        store.create(&sample_session("b", clock.now()), 100).await.unwrap();
        assert!(matches!(
            store.create(&sample_session("c", clock.now()), 100).await,
            Err(SessionStoreError::CapacityExceeded { .. })
        ));
    }
}
