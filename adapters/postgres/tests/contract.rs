//! The shared port contracts, run against the PostgreSQL adapters on a real PostgreSQL.
//!
//! PostgreSQL comes from `QUDAG_TEST_DATABASE_URL` (or a testcontainers container when it
//! is unset); every test gets a fresh schema, dropped when the adapter is.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use qudag_adapter_postgres::{PostgresNameRegistry, PostgresVaultStore};
use qudag_application::ports::{
    NameRegistry, NameRegistryError, SignedNameRecord, VaultCounts, VaultEntry, VaultListQuery, VaultPage, VaultStore,
    VaultStoreError,
};
use qudag_domain::Timestamp;
use qudag_domain::dark::DarkName;
use support::TestDb;

/// An adapter that owns its test schema, so the schema is dropped with the adapter.
struct Scoped<T> {
    inner: T,
    _db: TestDb,
}

#[async_trait]
impl VaultStore for Scoped<PostgresVaultStore> {
    async fn put(&self, entry: &VaultEntry, now: Timestamp, max_per_owner: usize) -> Result<(), VaultStoreError> {
        self.inner.put(entry, now, max_per_owner).await
    }

    async fn get(&self, id: &str, now: Timestamp) -> Result<Option<VaultEntry>, VaultStoreError> {
        self.inner.get(id, now).await
    }

    async fn find_by_label(
        &self,
        owner: &str,
        label: &str,
        now: Timestamp,
    ) -> Result<Option<VaultEntry>, VaultStoreError> {
        self.inner.find_by_label(owner, label, now).await
    }

    async fn list(&self, owner: &str, query: &VaultListQuery, now: Timestamp) -> Result<VaultPage, VaultStoreError> {
        self.inner.list(owner, query, now).await
    }

    async fn delete(&self, owner: &str, id: &str) -> Result<bool, VaultStoreError> {
        self.inner.delete(owner, id).await
    }

    async fn counts(&self, now: Timestamp) -> Result<VaultCounts, VaultStoreError> {
        self.inner.counts(now).await
    }
}

#[async_trait]
impl NameRegistry for Scoped<PostgresNameRegistry> {
    async fn register(
        &self,
        record: &SignedNameRecord,
        now: Timestamp,
        max_per_owner: usize,
    ) -> Result<(), NameRegistryError> {
        self.inner.register(record, now, max_per_owner).await
    }

    async fn resolve(&self, name: &DarkName, now: Timestamp) -> Result<Option<SignedNameRecord>, NameRegistryError> {
        self.inner.resolve(name, now).await
    }

    async fn remove(&self, name: &DarkName, owner: &str) -> Result<bool, NameRegistryError> {
        self.inner.remove(name, owner).await
    }

    async fn count(&self, now: Timestamp) -> Result<u64, NameRegistryError> {
        self.inner.count(now).await
    }
}

async fn vault_store() -> Arc<dyn VaultStore> {
    let db = TestDb::new().await;
    Arc::new(Scoped { inner: PostgresVaultStore::new(db.db.clone()), _db: db })
}

async fn name_registry() -> Arc<dyn NameRegistry> {
    let db = TestDb::new().await;
    Arc::new(Scoped { inner: PostgresNameRegistry::new(db.db.clone()), _db: db })
}

mod vault_store {
    qudag_application::vault_store_contract!(super::vault_store);
}

mod name_registry {
    qudag_application::name_registry_contract!(super::name_registry);
}
