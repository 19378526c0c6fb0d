//! `MemoryNameRegistry`: `.dark` name records in this process.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use qudag_application::ports::{NameRegistry, NameRegistryError, SignedNameRecord};
use qudag_domain::Timestamp;
use qudag_domain::dark::DarkName;

/// Name records in memory, at most `capacity` in all and the quota a registration names
/// per owner (expired records are purged before refusing).
#[derive(Debug)]
pub struct MemoryNameRegistry {
    capacity: usize,
    records: Mutex<HashMap<DarkName, SignedNameRecord>>,
}

impl MemoryNameRegistry {
    /// A registry holding at most `capacity` names.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, records: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DarkName, SignedNameRecord>> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn live(record: &SignedNameRecord, now: Timestamp) -> bool {
    record.body.expires_at > now
}

#[async_trait]
impl NameRegistry for MemoryNameRegistry {
    async fn register(
        &self,
        record: &SignedNameRecord,
        now: Timestamp,
        max_per_owner: usize,
    ) -> Result<(), NameRegistryError> {
        let mut records = self.lock();
        let name = &record.body.name;
        let owner = &record.body.owner;
        let held = records.get(name).filter(|r| live(r, now)).map(|r| r.body.owner == *owner);
        if held == Some(false) {
            return Err(NameRegistryError::Taken { name: name.clone() });
        }
        if held.is_none() {
            let names = records.values().filter(|r| r.body.owner == *owner && live(r, now)).count();
            if names >= max_per_owner {
                return Err(NameRegistryError::OwnerQuotaExceeded { limit: max_per_owner });
            }
        }
        match records.get(name) {
            Some(_) => {}
            None if records.len() >= self.capacity => {
                records.retain(|_, r| live(r, now));
                if records.len() >= self.capacity {
                    return Err(NameRegistryError::CapacityExceeded { capacity: self.capacity });
                }
            }
            None => {}
        }
        records.insert(name.clone(), record.clone());
        Ok(())
    }

    async fn resolve(&self, name: &DarkName, now: Timestamp) -> Result<Option<SignedNameRecord>, NameRegistryError> {
        Ok(self.lock().get(name).filter(|r| live(r, now)).cloned())
    }

    async fn remove(&self, name: &DarkName, owner: &str) -> Result<bool, NameRegistryError> {
        let mut records = self.lock();
        if records.get(name).is_some_and(|r| r.body.owner == owner) {
            records.remove(name);
            return Ok(true);
        }
        Ok(false)
    }

    async fn count(&self, now: Timestamp) -> Result<u64, NameRegistryError> {
        Ok(self.lock().values().filter(|r| live(r, now)).count() as u64)
    }
}
