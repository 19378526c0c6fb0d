//! `MemoryVaultStore`: sealed vault entries in this process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use qudag_application::ports::{VaultCounts, VaultEntry, VaultListQuery, VaultPage, VaultStore, VaultStoreError};
use qudag_domain::Timestamp;

/// Vault entries in memory, at most `capacity` in all and the quota a put names per owner
/// (expired entries are purged before refusing).
#[derive(Debug)]
pub struct MemoryVaultStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: BTreeMap<String, VaultEntry>,
    by_label: HashMap<(String, String), String>,
    /// Entries held per owner, expired ones included until purged.
    per_owner: HashMap<String, usize>,
}

impl Inner {
    fn insert(&mut self, entry: &VaultEntry) {
        self.by_label.insert((entry.owner.clone(), entry.label.clone()), entry.id.clone());
        self.by_id.insert(entry.id.clone(), entry.clone());
        *self.per_owner.entry(entry.owner.clone()).or_insert(0) += 1;
    }

    fn remove(&mut self, id: &str) -> Option<VaultEntry> {
        let entry = self.by_id.remove(id)?;
        self.by_label.remove(&(entry.owner.clone(), entry.label.clone()));
        if let Some(n) = self.per_owner.get_mut(&entry.owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&entry.owner);
            }
        }
        Some(entry)
    }

    fn held_by(&self, owner: &str) -> usize {
        self.per_owner.get(owner).copied().unwrap_or(0)
    }

    fn purge_expired(&mut self, now: Timestamp) {
        let expired: Vec<String> = self.by_id.values().filter(|e| e.is_expired(now)).map(|e| e.id.clone()).collect();
        for id in expired {
            self.remove(&id);
        }
    }
}

impl MemoryVaultStore {
    /// A store holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl VaultStore for MemoryVaultStore {
    async fn put(&self, entry: &VaultEntry, now: Timestamp, max_per_owner: usize) -> Result<(), VaultStoreError> {
        let mut inner = self.lock();
        if inner.by_id.contains_key(&entry.id) {
            return Err(VaultStoreError::IdTaken);
        }
        let key = (entry.owner.clone(), entry.label.clone());
        if let Some(existing) = inner.by_label.get(&key).cloned() {
            if inner.by_id.get(&existing).is_some_and(|e| !e.is_expired(now)) {
                return Err(VaultStoreError::LabelTaken { label: entry.label.clone() });
            }
            inner.remove(&existing);
        }
        if inner.held_by(&entry.owner) >= max_per_owner {
            inner.purge_expired(now);
            if inner.held_by(&entry.owner) >= max_per_owner {
                return Err(VaultStoreError::OwnerQuotaExceeded { limit: max_per_owner });
            }
        }
        if inner.by_id.len() >= self.capacity {
            inner.purge_expired(now);
            if inner.by_id.len() >= self.capacity {
                return Err(VaultStoreError::CapacityExceeded { capacity: self.capacity });
            }
        }
        inner.insert(entry);
        Ok(())
    }

    async fn get(&self, id: &str, now: Timestamp) -> Result<Option<VaultEntry>, VaultStoreError> {
        Ok(self.lock().by_id.get(id).filter(|e| !e.is_expired(now)).cloned())
    }

    async fn find_by_label(
        &self,
        owner: &str,
        label: &str,
        now: Timestamp,
    ) -> Result<Option<VaultEntry>, VaultStoreError> {
        let inner = self.lock();
        let id = inner.by_label.get(&(owner.to_owned(), label.to_owned()));
        Ok(id.and_then(|id| inner.by_id.get(id)).filter(|e| !e.is_expired(now)).cloned())
    }

    async fn list(&self, owner: &str, query: &VaultListQuery, now: Timestamp) -> Result<VaultPage, VaultStoreError> {
        let limit = query.limit.clamp(1, 1000);
        let category = query.category.as_deref();
        let inner = self.lock();
        let start = query.after.clone().map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let mut entries: Vec<_> = inner
            .by_id
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, e)| e)
            .filter(|e| e.owner == owner && !e.is_expired(now))
            .filter(|e| category.is_none_or(|c| e.category.as_deref() == Some(c)))
            .take(limit + 1)
            .map(VaultEntry::summary)
            .collect();
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(VaultPage { entries, next })
    }

    async fn delete(&self, owner: &str, id: &str) -> Result<bool, VaultStoreError> {
        let mut inner = self.lock();
        if inner.by_id.get(id).is_none_or(|e| e.owner != owner) {
            return Ok(false);
        }
        Ok(inner.remove(id).is_some())
    }

    async fn counts(&self, now: Timestamp) -> Result<VaultCounts, VaultStoreError> {
        let inner = self.lock();
        let live: Vec<_> = inner.by_id.values().filter(|e| !e.is_expired(now)).collect();
        let owners: std::collections::HashSet<_> = live.iter().map(|e| e.owner.as_str()).collect();
        Ok(VaultCounts { entries: live.len() as u64, owners: owners.len() as u64 })
    }
}
