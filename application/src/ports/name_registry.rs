//! `NameRegistry`: `.dark` name records.
//!
//! Records are stored as signed by the server ([`SignedNameRecord`]); the registry keeps
//! them and hands them back unchanged. Verification happens on resolve, in the use case, so
//! a record altered in storage is detected whatever the backend.
//!
//! Adapters: `MemoryNameRegistry` (adapters/memory), `PostgresNameRegistry` (adapters/postgres).

use async_trait::async_trait;
use qudag_domain::Timestamp;
use qudag_domain::dark::{DarkName, NameRecordBody};

use crate::BoxError;

/// A name record with the registry's signature over [`NameRecordBody::signing_bytes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNameRecord {
    /// What the record says.
    pub body: NameRecordBody,
    /// The signature algorithm (`ml-dsa-65`).
    pub signature_algorithm: String,
    /// The fingerprint of the key that signed.
    pub signer_key_id: String,
    /// The signature.
    pub signature: Vec<u8>,
}

/// Errors a name registry may return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NameRegistryError {
    /// Another owner holds a live record for this name.
    #[error("{name} is registered to another owner")]
    Taken {
        /// The name.
        name: DarkName,
    },
    /// The registry is full.
    #[error("name registry is at capacity ({capacity} names)")]
    CapacityExceeded {
        /// The configured maximum.
        capacity: usize,
    },
    /// The owner already holds the most live names one owner may.
    #[error("the owner already holds {limit} names, the most one owner may")]
    OwnerQuotaExceeded {
        /// The per-owner maximum.
        limit: usize,
    },
    /// The backend cannot be reached.
    #[error("name registry unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

/// Storage of `.dark` name records.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait NameRegistry: Send + Sync + 'static {
    /// Store a record. The same owner may replace their own record; a live record of
    /// another owner makes this `Taken`; an expired one is replaced. A name new to its
    /// owner is refused when the owner already holds `max_per_owner` live names; the quota
    /// holds under concurrent registrations of one owner, on any number of nodes.
    ///
    /// # Errors
    /// `Taken`, `OwnerQuotaExceeded`, `CapacityExceeded`, `Unavailable`.
    async fn register(
        &self,
        record: &SignedNameRecord,
        now: Timestamp,
        max_per_owner: usize,
    ) -> Result<(), NameRegistryError>;

    /// The live record for `name`, exactly as stored.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn resolve(&self, name: &DarkName, now: Timestamp) -> Result<Option<SignedNameRecord>, NameRegistryError>;

    /// Remove the owner's record; whether there was one.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn remove(&self, name: &DarkName, owner: &str) -> Result<bool, NameRegistryError>;

    /// How many live records there are.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn count(&self, now: Timestamp) -> Result<u64, NameRegistryError>;
}
