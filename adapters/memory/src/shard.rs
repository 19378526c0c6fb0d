//! Lock striping: a map split over independently locked shards, so concurrent requests on
//! different keys rarely contend.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard};

pub(crate) const SHARDS: usize = 32;

pub(crate) struct Sharded<K, V> {
    shards: Vec<Mutex<HashMap<K, V>>>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    pub(crate) fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), hasher: RandomState::new() }
    }

    pub(crate) fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, HashMap<K, V>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        lock(&self.shards[index])
    }

    pub(crate) fn each_shard(&self) -> impl Iterator<Item = MutexGuard<'_, HashMap<K, V>>> {
        self.shards.iter().map(lock)
    }
}

/// A poisoned shard only means another thread panicked while holding it; the map itself
/// is still consistent (every update is a single insert or remove), so keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
