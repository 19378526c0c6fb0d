//! `VaultStore`: where sealed vault entries live.
//!
//! The store only ever sees ciphertext: entries arrive sealed (the envelope of
//! `qudag_domain::pqc::envelope`) with their metadata, and leave the same way. Every read
//! and write is scoped to the owning principal except [`VaultStore::get`], which the vault
//! use case needs to tell "absent" from "someone else's" (the latter is refused and audited).
//!
//! Adapters: `MemoryVaultStore` (adapters/memory), `PostgresVaultStore` (adapters/postgres).

use async_trait::async_trait;
use qudag_domain::Timestamp;

use crate::BoxError;

/// One stored secret, sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultEntry {
    /// Server-minted, unguessable id (`vlt_` + 32 hex digits).
    pub id: String,
    /// The owner, as `issuer#subject`.
    pub owner: String,
    /// The owner's name for it; unique per owner.
    pub label: String,
    /// A free-form category (e.g. `credential`, or `key/ml-kem-768` for keys the server holds).
    pub category: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// The KEM the envelope was sealed with (`ml-kem-768` or `ml-kem-1024`).
    pub algorithm: String,
    /// The fingerprint of the vault key that sealed it.
    pub key_id: String,
    /// The sealed envelope.
    pub envelope: Vec<u8>,
    /// The plaintext's length in bytes (metadata only).
    pub size: u64,
    /// When it was stored.
    pub created_at: Timestamp,
    /// When it stops being returned, if ever.
    pub expires_at: Option<Timestamp>,
}

impl VaultEntry {
    /// Whether the entry has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// The entry without its envelope.
    pub fn summary(&self) -> VaultEntrySummary {
        VaultEntrySummary {
            id: self.id.clone(),
            label: self.label.clone(),
            category: self.category.clone(),
            tags: self.tags.clone(),
            algorithm: self.algorithm.clone(),
            size: self.size,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// What a listing shows of an entry: metadata, never the envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultEntrySummary {
    /// Its id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// Its category.
    pub category: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// The KEM it was sealed with.
    pub algorithm: String,
    /// The plaintext's length.
    pub size: u64,
    /// When it was stored.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Option<Timestamp>,
}

/// A page of one owner's entries, ordered by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VaultPage {
    /// The entries.
    pub entries: Vec<VaultEntrySummary>,
    /// Pass as `after` to get the next page; `None` on the last one.
    pub next: Option<String>,
}

/// Which of an owner's entries to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultListQuery {
    /// Only entries in this category.
    pub category: Option<String>,
    /// Only entries with ids after this one (the previous page's `next`).
    pub after: Option<String>,
    /// At most this many (clamped to 1–1000).
    pub limit: usize,
}

impl VaultListQuery {
    /// The first `limit` entries of every category.
    pub fn first(limit: usize) -> Self {
        Self { category: None, after: None, limit }
    }
}

/// Counts for status reports (never contents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VaultCounts {
    /// Live entries.
    pub entries: u64,
    /// Distinct owners with at least one live entry.
    pub owners: u64,
}

/// Errors a vault store may return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultStoreError {
    /// The owner already has a live entry with this label.
    #[error("an entry labelled \"{label}\" already exists")]
    LabelTaken {
        /// The label.
        label: String,
    },
    /// The id is already used (ids are random; this means a bug or a replay).
    #[error("entry id already exists")]
    IdTaken,
    /// The store is full.
    #[error("vault store is at capacity ({capacity} entries)")]
    CapacityExceeded {
        /// The configured maximum.
        capacity: usize,
    },
    /// The owner already holds the most live entries one owner may.
    #[error("the owner already holds {limit} vault entries, the most one owner may")]
    OwnerQuotaExceeded {
        /// The per-owner maximum.
        limit: usize,
    },
    /// The backend cannot be reached.
    #[error("vault store unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

/// Storage of sealed vault entries.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait VaultStore: Send + Sync + 'static {
    /// Store a new entry, unless its owner already holds `max_per_owner` live entries. An
    /// expired entry with the same owner and label is replaced. The quota holds under
    /// concurrent puts of one owner, on any number of nodes sharing the store.
    ///
    /// # Errors
    /// `LabelTaken` when the owner has a live entry with this label, `IdTaken`,
    /// `OwnerQuotaExceeded`, `CapacityExceeded`, `Unavailable`.
    async fn put(&self, entry: &VaultEntry, now: Timestamp, max_per_owner: usize) -> Result<(), VaultStoreError>;

    /// The live entry with this id, whoever owns it (the caller checks the owner).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn get(&self, id: &str, now: Timestamp) -> Result<Option<VaultEntry>, VaultStoreError>;

    /// The owner's live entry with this label.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn find_by_label(
        &self,
        owner: &str,
        label: &str,
        now: Timestamp,
    ) -> Result<Option<VaultEntry>, VaultStoreError>;

    /// A page of the owner's live entries, ordered by id.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn list(&self, owner: &str, query: &VaultListQuery, now: Timestamp) -> Result<VaultPage, VaultStoreError>;

    /// Delete the owner's entry with this id; whether it existed (and was the owner's).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn delete(&self, owner: &str, id: &str) -> Result<bool, VaultStoreError>;

    /// How many live entries and owners there are.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn counts(&self, now: Timestamp) -> Result<VaultCounts, VaultStoreError>;
}
