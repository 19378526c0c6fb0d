//! The vault: per-principal secrets sealed at rest, over the [`VaultStore`] port.
//!
//! Each secret is sealed on its own with the hybrid envelope of `qudag_domain::pqc::envelope`:
//! a fresh ML-KEM encapsulation to the server's vault key, HKDF-SHA256 from the shared
//! secret to a ChaCha20-Poly1305 key, and the entry's id, owner and label as associated
//! data — so an envelope moved to another row, another owner or another label fails to
//! open, as does any edited byte. The store sees only envelopes and metadata; plaintexts
//! never reach the store, the logs or the audit trail.
//!
//! Entries belong to the principal that stored them. Another principal asking for an entry
//! by id gets the same answer as for an entry that does not exist, and the attempt is
//! audited as `vault.access_denied`.
//!
//! Failures are a [`VaultError`]: the caller's refusals (not found, label taken, store
//! full…) are answers, while [`VaultError::Unavailable`] means the store could not be
//! reached and the request may be retried — the tools turn it into HTTP 503, not a tool
//! error, so an outage is counted and retried rather than reported as the caller's fault.

use std::sync::Arc;

use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};
use qudag_domain::pqc::KemAlgorithm;
use qudag_domain::pqc::envelope::{self, Envelope, SealRandomness};
use qudag_domain::principal::Principal;
use serde_json::json;
use zeroize::Zeroizing;

use crate::admission::{RequestContext, submit_audit};
use crate::ports::{AuditSink, Clock, VaultCounts, VaultEntry, VaultListQuery, VaultPage, VaultStore, VaultStoreError};
use crate::usecases::Unavailable;
use crate::usecases::keys::{NoEntropy, ServerKeys, random};

/// The category prefix of entries that hold the server-held private keys minted by the
/// crypto tools (`key/ml-kem-768`, `key/ml-dsa-65`, ...); such entries are never returned.
pub const KEY_CATEGORY_PREFIX: &str = "key/";

/// The largest secret accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// The longest label accepted.
pub const MAX_LABEL_LEN: usize = 128;

/// The component named in [`VaultError::Unavailable`] (and in `qudag_backend_errors_total`).
pub const VAULT_STORE: &str = "vault_store";

/// The most live entries one principal may hold unless configured otherwise
/// (`QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL`); keys the crypto tools mint count too.
pub const DEFAULT_MAX_ENTRIES_PER_PRINCIPAL: usize = 1000;

/// Which entry a call means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// By id.
    Id(String),
    /// By the owner's label.
    Label(String),
}

/// A secret to store.
pub struct NewSecret {
    /// Its label (unique per owner).
    pub label: String,
    /// Its category.
    pub category: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// The plaintext (wiped when dropped).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The KEM to seal with.
    pub algorithm: KemAlgorithm,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret").field("label", &self.label).field("len", &self.plaintext.len()).finish()
    }
}

/// Why a vault operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// No live entry of the caller's matches (also for another owner's entry).
    #[error("no such vault entry")]
    NotFound,
    /// The entry was found but was gone by the time it was to be deleted (another request
    /// deleted it first).
    #[error("no such vault entry")]
    Vanished,
    /// The caller already has a live entry with this label.
    #[error("an entry labelled \"{label}\" already exists; delete it first or choose another label")]
    LabelTaken {
        /// The label.
        label: String,
    },
    /// The server holds no vault key for the requested algorithm.
    #[error("the vault seals with ml-kem-768 or ml-kem-1024")]
    UnsupportedAlgorithm,
    /// The stored entry does not open: edited, moved, or sealed with other keys.
    #[error("vault entry {id} failed its integrity check and cannot be opened")]
    Integrity {
        /// The entry's id.
        id: String,
    },
    /// The store is full.
    #[error("vault store is at capacity ({capacity} entries)")]
    CapacityExceeded {
        /// The store's maximum.
        capacity: usize,
    },
    /// The caller already holds the most entries one principal may.
    #[error(
        "you already hold {limit} vault entries, the most one principal may (QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL); delete one first"
    )]
    QuotaExceeded {
        /// The per-principal maximum.
        limit: usize,
    },
    /// The minted id is already used (ids are random: a bug or a replay).
    #[error("entry id already exists")]
    IdTaken,
    /// Sealing the secret failed.
    #[error("sealing failed: {0}")]
    Sealing(String),
    /// No randomness for the id or the envelope.
    #[error(transparent)]
    NoEntropy(#[from] NoEntropy),
    /// The store ([`VAULT_STORE`]) cannot be reached: retry later (HTTP 503).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl From<VaultStoreError> for VaultError {
    fn from(e: VaultStoreError) -> Self {
        match e {
            VaultStoreError::LabelTaken { label } => Self::LabelTaken { label },
            VaultStoreError::IdTaken => Self::IdTaken,
            VaultStoreError::CapacityExceeded { capacity } => Self::CapacityExceeded { capacity },
            VaultStoreError::OwnerQuotaExceeded { limit } => Self::QuotaExceeded { limit },
            VaultStoreError::Unavailable { source } => {
                tracing::error!(error = %source, "Vault store unavailable");
                Self::Unavailable(Unavailable { component: VAULT_STORE, source })
            }
        }
    }
}

/// The owner key of `principal`'s entries: `issuer#subject`.
pub fn owner_of(principal: &Principal) -> String {
    principal.id().to_string()
}

/// The vault use case.
pub struct Vault {
    store: Arc<dyn VaultStore>,
    keys: Arc<ServerKeys>,
    clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
    max_entries_per_principal: usize,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

fn aad(id: &str, owner: &str, label: &str) -> Vec<u8> {
    let mut out = b"qudag-vault-entry/v1".to_vec();
    for part in [id, owner, label] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

impl Vault {
    /// A vault over `store`, sealing to `keys`, auditing refused access to `audit`.
    pub fn new(
        store: Arc<dyn VaultStore>,
        keys: Arc<ServerKeys>,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        Self { store, keys, clock, audit, max_entries_per_principal: DEFAULT_MAX_ENTRIES_PER_PRINCIPAL }
    }

    /// The same vault holding each principal to at most `limit` live entries.
    pub fn with_max_entries_per_principal(mut self, limit: usize) -> Self {
        self.max_entries_per_principal = limit;
        self
    }

    /// The current time on the vault's clock (expiry arguments are checked against it).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Seal and store a secret for `caller`, unless `caller` already holds the most entries
    /// one principal may.
    ///
    /// # Errors
    /// `UnsupportedAlgorithm`, `LabelTaken`, `QuotaExceeded`, `CapacityExceeded`, `IdTaken`,
    /// `Sealing`, `NoEntropy`, or `Unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn put(&self, caller: &Principal, secret: NewSecret) -> Result<VaultEntry, VaultError> {
        let owner = owner_of(caller);
        let key = self.keys.vault_key(secret.algorithm).ok_or(VaultError::UnsupportedAlgorithm)?;
        let id = format!("vlt_{}", hex::encode(random::<16>()?));
        let randomness = SealRandomness { m: random::<32>()?, nonce: random::<12>()? };
        let sealed = envelope::seal(
            secret.algorithm,
            key.encapsulation_key(),
            &secret.plaintext,
            &aad(&id, &owner, &secret.label),
            &randomness,
        )
        .map_err(|e| VaultError::Sealing(e.to_string()))?;
        let entry = VaultEntry {
            id,
            owner,
            label: secret.label,
            category: secret.category,
            tags: secret.tags,
            algorithm: secret.algorithm.as_str().to_owned(),
            key_id: qudag_domain::pqc::fingerprint(key.encapsulation_key()),
            envelope: sealed.to_bytes().map_err(|e| VaultError::Sealing(e.to_string()))?,
            size: secret.plaintext.len() as u64,
            created_at: self.clock.now(),
            expires_at: secret.expires_at,
        };
        self.store.put(&entry, entry.created_at, self.max_entries_per_principal).await?;
        Ok(entry)
    }

    async fn find(
        &self,
        request: &RequestContext,
        caller: &Principal,
        selector: &Selector,
    ) -> Result<VaultEntry, VaultError> {
        let owner = owner_of(caller);
        let now = self.clock.now();
        let found = match selector {
            Selector::Id(id) => self.store.get(id, now).await?,
            Selector::Label(label) => self.store.find_by_label(&owner, label, now).await?,
        };
        match found {
            Some(entry) if entry.owner == owner => Ok(entry),
            Some(entry) => {
                let record = AuditRecord::new(self.clock.now(), AuditAction::VaultAccessDenied, Outcome::Denied)
                    .actor(owner)
                    .target(entry.id.clone())
                    .details(json!({ "reason": "not_owner" }));
                submit_audit(self.audit.as_ref(), request, record).await.map_err(unrecorded)?;
                Err(VaultError::NotFound)
            }
            None => Err(VaultError::NotFound),
        }
    }

    /// Open `caller`'s entry.
    ///
    /// # Errors
    /// `NotFound` (also for another owner's entry, which is audited), `Integrity`, or
    /// `Unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn open(
        &self,
        request: &RequestContext,
        caller: &Principal,
        selector: &Selector,
    ) -> Result<(VaultEntry, Zeroizing<Vec<u8>>), VaultError> {
        let entry = self.find(request, caller, selector).await?;
        let integrity = |why: String| {
            tracing::error!(entry = %entry.id, %why, "Vault entry failed its integrity check");
            VaultError::Integrity { id: entry.id.clone() }
        };
        let sealed = Envelope::from_bytes(&entry.envelope).map_err(|e| integrity(e.to_string()))?;
        let key = self.keys.vault_key(sealed.algorithm).ok_or_else(|| integrity("no key for its algorithm".into()))?;
        let plaintext = envelope::open(key, &sealed, &aad(&entry.id, &entry.owner, &entry.label))
            .map_err(|e| integrity(e.to_string()))?;
        Ok((entry, plaintext))
    }

    /// Delete `caller`'s entry.
    ///
    /// # Errors
    /// `NotFound` (audited as for [`Vault::open`]), `Vanished`, or `Unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn delete(
        &self,
        request: &RequestContext,
        caller: &Principal,
        selector: &Selector,
    ) -> Result<VaultEntry, VaultError> {
        let entry = self.find(request, caller, selector).await?;
        if self.store.delete(&entry.owner, &entry.id).await? { Ok(entry) } else { Err(VaultError::Vanished) }
    }

    /// A page of `caller`'s entries.
    ///
    /// # Errors
    /// `Unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn list(&self, caller: &Principal, query: &VaultListQuery) -> Result<VaultPage, VaultError> {
        Ok(self.store.list(&owner_of(caller), query, self.clock.now()).await?)
    }

    /// How many live entries and owners the vault holds (counts only, never contents).
    ///
    /// # Errors
    /// `Unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn counts(&self) -> Result<VaultCounts, VaultError> {
        Ok(self.store.counts(self.clock.now()).await?)
    }

    /// Audit that `caller` is handed the private key `key_id` (an admin's export). Called
    /// before the key is put in the answer: an export is irreversible, so it is recorded
    /// (durably, with durable acknowledgement) before it happens.
    ///
    /// # Errors
    /// `Unavailable` (component `audit`) when the trail does not take the record: the key
    /// must not be handed out.
    pub async fn record_key_export(
        &self,
        request: &RequestContext,
        caller: &Principal,
        key_id: &str,
    ) -> Result<(), VaultError> {
        let record = AuditRecord::new(self.clock.now(), AuditAction::AdminAction, Outcome::Success)
            .actor(owner_of(caller))
            .target(key_id.to_owned())
            .details(json!({ "action": "private_key.exported" }));
        submit_audit(self.audit.as_ref(), request, record).await.map_err(unrecorded)
    }
}

/// An act the audit trail did not take: refused as the trail's outage (HTTP 503).
fn unrecorded(error: crate::ports::AuditSinkError) -> VaultError {
    VaultError::Unavailable(Unavailable::new("audit", error))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use qudag_domain::rbac::Role;

    use super::*;
    use crate::ports::{MockAuditSink, MockVaultStore};
    use crate::testkit::ManualClock;

    fn vault_over(store: MockVaultStore) -> Vault {
        let mut audit = MockAuditSink::new();
        audit.expect_record().never();
        Vault::new(
            Arc::new(store),
            Arc::new(ServerKeys::ephemeral().unwrap()),
            Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000))),
            Arc::new(audit),
        )
    }

    fn secret(label: &str, algorithm: KemAlgorithm) -> NewSecret {
        NewSecret {
            label: label.into(),
            category: None,
            tags: Vec::new(),
            plaintext: Zeroizing::new(b"top secret".to_vec()),
            algorithm,
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn a_stored_envelope_that_was_edited_or_moved_does_not_open() {
        let stored: Arc<Mutex<Vec<VaultEntry>>> = Arc::default();
        let mut store = MockVaultStore::new();
        let on_put = stored.clone();
        store.expect_put().returning(move |e, _, _| {
            on_put.lock().unwrap().push(e.clone());
            Ok(())
        });
        let on_get = stored.clone();
        store.expect_get().returning(move |id, _| Ok(on_get.lock().unwrap().iter().find(|e| e.id == id).cloned()));
        let vault = vault_over(store);
        let caller = Principal::anonymous([Role::Admin]);
        for (label, algorithm) in [("a", KemAlgorithm::MlKem768), ("b", KemAlgorithm::MlKem1024)] {
            vault.put(&caller, secret(label, algorithm)).await.unwrap();
        }
        let (a, b) = {
            let s = stored.lock().unwrap();
            (s[0].clone(), s[1].clone())
        };
        assert!(!a.envelope.windows(10).any(|w| w == b"top secret"), "the store sees only ciphertext");
        let request = RequestContext::default();
        let (_, plain) = vault.open(&request, &caller, &Selector::Id(a.id.clone())).await.unwrap();
        assert_eq!(plain.as_slice(), b"top secret");

        type Edit = Box<dyn Fn(&mut VaultEntry)>;
        let edits: Vec<Edit> = vec![
            Box::new(|e| {
                let n = e.envelope.len();
                e.envelope[n - 1] ^= 1;
            }),
            Box::new(|e| e.envelope[40] ^= 0x80),
            Box::new(|e| e.envelope.truncate(100)),
            Box::new(|e| e.label = "renamed".into()),
            Box::new(move |e| e.envelope = b.envelope.clone()),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut tampered = a.clone();
            edit(&mut tampered);
            *stored.lock().unwrap() = vec![tampered];
            let refused = vault.open(&request, &caller, &Selector::Id(a.id.clone())).await.unwrap_err();
            assert!(refused.to_string().contains("integrity check"), "edit {i}: {refused}");
            assert!(matches!(refused, VaultError::Integrity { .. }), "edit {i}: {refused:?}");
        }
    }

    /// A store that cannot be reached makes every operation `Unavailable` (retryable), never
    /// a refusal the caller would take as an answer.
    #[tokio::test]
    async fn an_unreachable_store_makes_every_operation_unavailable() {
        let down = || VaultStoreError::Unavailable { source: "connection refused".into() };
        let mut store = MockVaultStore::new();
        store.expect_put().returning(move |_, _, _| Err(down()));
        store.expect_get().returning(move |_, _| Err(down()));
        store.expect_find_by_label().returning(move |_, _, _| Err(down()));
        store.expect_list().returning(move |_, _, _| Err(down()));
        store.expect_delete().returning(move |_, _| Err(down()));
        store.expect_counts().returning(move |_| Err(down()));
        let vault = vault_over(store);
        let caller = Principal::anonymous([Role::Developer]);
        let request = RequestContext::default();
        let unavailable = |e: VaultError| {
            assert!(matches!(e, VaultError::Unavailable(Unavailable { component: VAULT_STORE, .. })), "{e:?}");
            assert_eq!(e.to_string(), "vault_store unavailable");
        };
        unavailable(vault.put(&caller, secret("a", KemAlgorithm::MlKem768)).await.unwrap_err());
        unavailable(vault.open(&request, &caller, &Selector::Id("vlt_1".into())).await.unwrap_err());
        unavailable(vault.open(&request, &caller, &Selector::Label("a".into())).await.unwrap_err());
        unavailable(vault.delete(&request, &caller, &Selector::Label("a".into())).await.unwrap_err());
        unavailable(vault.list(&caller, &VaultListQuery::first(10)).await.unwrap_err());
        unavailable(vault.counts().await.unwrap_err());
    }

    /// The store's own refusals stay refusals.
    #[tokio::test]
    async fn store_refusals_are_not_outages() {
        let mut store = MockVaultStore::new();
        store.expect_put().returning(|e, _, _| Err(VaultStoreError::LabelTaken { label: e.label.clone() }));
        let vault = vault_over(store);
        let e = vault.put(&Principal::anonymous([Role::Developer]), secret("a", KemAlgorithm::MlKem768)).await;
        assert!(matches!(e, Err(VaultError::LabelTaken { label }) if label == "a"));
    }

    /// The per-principal quota is passed to the store for each put, and its refusal names
    /// the setting.
    #[tokio::test]
    async fn each_principal_is_held_to_its_quota() {
        let mut store = MockVaultStore::new();
        store.expect_put().returning(|_, _, limit| {
            assert_eq!(limit, 2);
            Err(VaultStoreError::OwnerQuotaExceeded { limit })
        });
        let vault = vault_over(store).with_max_entries_per_principal(2);
        let e = vault.put(&Principal::anonymous([Role::Admin]), secret("a", KemAlgorithm::MlKem768)).await.unwrap_err();
        assert!(matches!(e, VaultError::QuotaExceeded { limit: 2 }), "{e:?}");
        assert!(e.to_string().contains("QUDAG_MAX_VAULT_ENTRIES_PER_PRINCIPAL"), "{e}");
    }
}
