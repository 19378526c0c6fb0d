//! Verified tokens, cached by digest until they expire, so a busy client does not pay a
//! signature check (or an introspection round trip) on every request.
//!
//! Keys are BLAKE3 digests of the token, never the token. The cache is sharded and
//! bounded: a full shard drops its expired entries first, then its oldest insertion.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use qudag_domain::principal::Principal;

const SHARDS: usize = 16;

/// What a verification established, kept for the token's lifetime.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Who the token names.
    pub principal: Principal,
    /// The DPoP key thumbprint the token is bound to, if any.
    pub jkt: Option<String>,
    /// The `kid` of the JWKS key that verified it: once the issuer stops publishing that
    /// key, the entry is no longer trusted.
    pub kid: Option<String>,
    /// Until when (seconds since the epoch, exclusive) the entry may be used.
    pub valid_until: u64,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<[u8; 32], Verified>,
    order: VecDeque<[u8; 32]>,
}

/// The cache.
#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache of about `capacity` tokens; 0 turns caching off.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), per_shard }
    }

    /// The cache key of `token`.
    pub fn key(token: &str) -> [u8; 32] {
        *blake3::hash(token.as_bytes()).as_bytes()
    }

    fn shard(&self, key: &[u8; 32]) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[usize::from(key[0]) % SHARDS].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry for `key` if it is still valid at `now` (seconds).
    pub fn get(&self, key: &[u8; 32], now: u64) -> Option<Verified> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(key);
        match shard.entries.get(key) {
            Some(v) if now < v.valid_until => Some(v.clone()),
            Some(_) => {
                shard.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remember `verified` under `key`.
    pub fn insert(&self, key: [u8; 32], verified: Verified, now: u64) {
        if self.per_shard == 0 || verified.valid_until <= now {
            return;
        }
        let mut shard = self.shard(&key);
        if shard.entries.len() >= self.per_shard && !shard.entries.contains_key(&key) {
            shard.entries.retain(|_, v| now < v.valid_until);
            let Shard { entries, order } = &mut *shard;
            order.retain(|k| entries.contains_key(k));
            while entries.len() >= self.per_shard {
                let Some(oldest) = order.pop_front() else { break };
                entries.remove(&oldest);
            }
        }
        if shard.entries.insert(key, verified).is_none() {
            shard.order.push_back(key);
        }
    }

    /// How many entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entries.len()).sum()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Opaque tokens the introspection endpoint called inactive, by digest, for a short while:
/// a client retrying a revoked or made-up token does not cost an introspection call each
/// time. Bounded like [`TokenCache`]: when full, expired entries go first, then the oldest.
#[derive(Debug)]
pub struct InactiveCache {
    inner: Mutex<Inactive>,
    capacity: usize,
}

/// Inactive tokens by digest with the time their answer lapses, and their insertion order.
#[derive(Debug, Default)]
struct Inactive {
    until: HashMap<[u8; 32], u64>,
    order: VecDeque<[u8; 32]>,
}

impl InactiveCache {
    /// A cache of at most `capacity` tokens; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        Self { inner: Mutex::default(), capacity }
    }

    /// Whether `key` was found inactive and that answer still holds at `now` (seconds).
    pub fn contains(&self, key: &[u8; 32], now: u64) -> bool {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.until.get(key).is_some_and(|until| now < *until)
    }

    /// Remember that `key` is inactive until `until` (seconds, exclusive).
    pub fn insert(&self, key: [u8; 32], until: u64, now: u64) {
        if self.capacity == 0 || until <= now {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Inactive { until: entries, order } = &mut *guard;
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, u| now < *u);
            order.retain(|k| entries.contains_key(k));
            while entries.len() >= self.capacity {
                let Some(oldest) = order.pop_front() else { break };
                entries.remove(&oldest);
            }
        }
        if entries.insert(key, until).is_none() {
            order.push_back(key);
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).until.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use qudag_domain::principal::PrincipalId;

    use super::*;

    fn verified(until: u64) -> Verified {
        Verified {
            principal: Principal::new(PrincipalId::new("https://i", "s"), [], [], None),
            jkt: None,
            kid: None,
            valid_until: until,
        }
    }

    #[test]
    fn entries_live_until_their_expiry() {
        let cache = TokenCache::new(100);
        let k = TokenCache::key("t");
        cache.insert(k, verified(20), 10);
        assert!(cache.get(&k, 19).is_some());
        assert!(cache.get(&k, 20).is_none());
        assert!(cache.is_empty(), "an expired entry is dropped when seen");
        cache.insert(k, verified(20), 20);
        assert!(cache.is_empty(), "an already expired verification is not cached");
        assert_ne!(TokenCache::key("t"), TokenCache::key("u"));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::new(64);
        for i in 0..10_000 {
            cache.insert(TokenCache::key(&i.to_string()), verified(1_000), 1);
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        let last = TokenCache::key("9999");
        assert!(cache.get(&last, 2).is_some(), "the newest entry survives eviction");
    }

    #[test]
    fn capacity_zero_disables_caching() {
        let cache = TokenCache::new(0);
        let k = TokenCache::key("t");
        cache.insert(k, verified(20), 10);
        assert!(cache.get(&k, 11).is_none());
    }

    #[test]
    fn inactive_tokens_are_remembered_briefly_and_boundedly() {
        let cache = InactiveCache::new(4);
        let k = TokenCache::key("t");
        cache.insert(k, 20, 10);
        assert!(cache.contains(&k, 19));
        assert!(!cache.contains(&k, 20), "only until the entry expires");
        for i in 0..100 {
            cache.insert(TokenCache::key(&i.to_string()), 1_000, 30);
        }
        assert!(cache.len() <= 4, "{}", cache.len());
        assert!(cache.contains(&TokenCache::key("99"), 31), "the newest entry survives eviction");
        let off = InactiveCache::new(0);
        off.insert(k, 20, 10);
        assert!(!off.contains(&k, 11));
    }
}
