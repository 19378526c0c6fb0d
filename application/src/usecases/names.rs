//! `.dark` names: registering and resolving signed name records over the [`NameRegistry`]
//! port.
//!
//! The server signs every record with its ML-DSA-65 key over the canonical bytes of
//! `qudag_domain::dark::NameRecordBody`, and checks that signature again on every resolve:
//! a record edited in storage resolves as an integrity failure, never as data.
//!
//! A name belongs to its owner, and so do the names under it: `x.alice.dark` may be
//! registered only by whoever holds `alice.dark` (while that is live). Each principal holds
//! at most a configured number of live names.
//!
//! Failures are a [`NamesError`]: invalid registrations and names held by others are
//! answers, while [`NamesError::Unavailable`] means the registry could not be reached and
//! the request may be retried (HTTP 503, not a tool error).

use std::sync::Arc;
use std::time::Duration;

use qudag_domain::dark::{DarkName, NameRecordBody, check_address};
use qudag_domain::pqc::{DsaAlgorithm, KemAlgorithm, dsa};
use qudag_domain::principal::Principal;

use crate::ports::{Clock, NameRegistry, NameRegistryError, SignedNameRecord};
use crate::usecases::Unavailable;
use crate::usecases::keys::{NoEntropy, ServerKeys, random};
use crate::usecases::vault::owner_of;

/// The default lifetime of a registration.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The shortest lifetime of a registration.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// The longest lifetime of a registration.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The component named in [`NamesError::Unavailable`] (and in `qudag_backend_errors_total`).
pub const NAME_REGISTRY: &str = "name_registry";

/// The most live names one principal may hold unless configured otherwise
/// (`QUDAG_MAX_NAMES_PER_PRINCIPAL`).
pub const DEFAULT_MAX_NAMES_PER_PRINCIPAL: usize = 100;

/// What a caller asks to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The name.
    pub name: DarkName,
    /// Where it points.
    pub address: String,
    /// The owner's public key.
    pub public_key: Vec<u8>,
    /// The key's algorithm (`ml-dsa-*` or `ml-kem-*`).
    pub key_algorithm: String,
    /// How long the record lives.
    pub ttl: Duration,
}

/// What resolving a name found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A live record whose signature verified.
    Verified(Box<SignedNameRecord>),
    /// No live record.
    Unknown,
}

/// Why a names operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NamesError {
    /// The address is not one a record may point at.
    #[error("{0}")]
    InvalidAddress(String),
    /// The key algorithm is not one of ML-DSA or ML-KEM.
    #[error("unknown algorithm \"{algorithm}\"; expected ml-dsa-44/65/87 or ml-kem-512/768/1024")]
    UnknownKeyAlgorithm {
        /// What the caller gave.
        algorithm: String,
    },
    /// The public key's length does not fit its algorithm.
    #[error("is {len} bytes; a {algorithm} key is {expected} bytes")]
    KeyLength {
        /// Its length.
        len: usize,
        /// Its algorithm.
        algorithm: String,
        /// The length that algorithm's keys have.
        expected: usize,
    },
    /// The lifetime is out of bounds.
    #[error("must be between 60 and {}", MAX_TTL.as_secs())]
    Ttl,
    /// Another owner holds a live record for the name.
    #[error("{name} is registered to someone else")]
    Taken {
        /// The name.
        name: DarkName,
    },
    /// The name is under a live name another owner holds.
    #[error(
        "{name} is under {parent}, which is registered to someone else; only its owner may register names under it"
    )]
    UnderAnothersName {
        /// The name asked for.
        name: DarkName,
        /// The name it is under.
        parent: DarkName,
    },
    /// The caller already holds the most names one principal may.
    #[error(
        "you already hold {limit} names, the most one principal may (QUDAG_MAX_NAMES_PER_PRINCIPAL); let one expire or remove it first"
    )]
    QuotaExceeded {
        /// The per-principal maximum.
        limit: usize,
    },
    /// The registry is full.
    #[error("name registry is at capacity ({capacity} names)")]
    CapacityExceeded {
        /// The registry's maximum.
        capacity: usize,
    },
    /// The stored record failed verification and was not returned.
    #[error("the record for {name} failed signature verification and was not returned")]
    Tampered {
        /// The name.
        name: DarkName,
    },
    /// Signing the record failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// No randomness for the signature.
    #[error(transparent)]
    NoEntropy(#[from] NoEntropy),
    /// The registry ([`NAME_REGISTRY`]) cannot be reached: retry later (HTTP 503).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl From<NameRegistryError> for NamesError {
    fn from(e: NameRegistryError) -> Self {
        match e {
            NameRegistryError::Taken { name } => Self::Taken { name },
            NameRegistryError::CapacityExceeded { capacity } => Self::CapacityExceeded { capacity },
            NameRegistryError::OwnerQuotaExceeded { limit } => Self::QuotaExceeded { limit },
            NameRegistryError::Unavailable { source } => {
                tracing::error!(error = %source, "Name registry unavailable");
                Self::Unavailable(Unavailable { component: NAME_REGISTRY, source })
            }
        }
    }
}

/// The names use case.
pub struct Names {
    registry: Arc<dyn NameRegistry>,
    keys: Arc<ServerKeys>,
    clock: Arc<dyn Clock>,
    max_names_per_principal: usize,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names").finish_non_exhaustive()
    }
}

impl Names {
    /// The use case over `registry`, signing with `keys`.
    pub fn new(registry: Arc<dyn NameRegistry>, keys: Arc<ServerKeys>, clock: Arc<dyn Clock>) -> Self {
        Self { registry, keys, clock, max_names_per_principal: DEFAULT_MAX_NAMES_PER_PRINCIPAL }
    }

    /// The same use case holding each principal to at most `limit` live names.
    pub fn with_max_names_per_principal(mut self, limit: usize) -> Self {
        self.max_names_per_principal = limit;
        self
    }

    /// Check `registration`, then sign and store it as `caller`'s record, from now for its
    /// lifetime. A name under a live name of another owner is refused, as is a new name
    /// when `caller` already holds the most names one principal may.
    ///
    /// # Errors
    /// `InvalidAddress`, `UnknownKeyAlgorithm`, `KeyLength`, `Ttl` (checked in that order),
    /// then `UnderAnothersName`, `Taken`, `QuotaExceeded`, `CapacityExceeded`, `Signing`,
    /// `NoEntropy` or `Unavailable`.
    #[tracing::instrument(skip_all, fields(name = %registration.name))]
    pub async fn register(
        &self,
        caller: &Principal,
        registration: Registration,
    ) -> Result<SignedNameRecord, NamesError> {
        let Registration { name, address, public_key, key_algorithm, ttl } = registration;
        check_address(&address).map_err(|e| NamesError::InvalidAddress(e.to_string()))?;
        let expected = match (DsaAlgorithm::parse(&key_algorithm), KemAlgorithm::parse(&key_algorithm)) {
            (Some(a), _) => a.verifying_key_len(),
            (None, Some(a)) => a.encapsulation_key_len(),
            (None, None) => return Err(NamesError::UnknownKeyAlgorithm { algorithm: key_algorithm }),
        };
        if public_key.len() != expected {
            return Err(NamesError::KeyLength { len: public_key.len(), algorithm: key_algorithm, expected });
        }
        if ttl < MIN_TTL || ttl > MAX_TTL {
            return Err(NamesError::Ttl);
        }
        let now = self.clock.now();
        let owner = owner_of(caller);
        for parent in name.ancestors() {
            if let Some(held) = self.registry.resolve(&parent, now).await?
                && held.body.owner != owner
            {
                return Err(NamesError::UnderAnothersName { name, parent });
            }
        }
        let body = NameRecordBody {
            name,
            address,
            public_key,
            key_algorithm,
            owner,
            registered_at: now,
            expires_at: now.saturating_add(ttl),
        };
        self.sign_and_store(body).await
    }

    async fn sign_and_store(&self, body: NameRecordBody) -> Result<SignedNameRecord, NamesError> {
        let signature = self
            .keys
            .signing()
            .sign(&body.signing_bytes(), b"", &random::<32>()?)
            .map_err(|e| NamesError::Signing(e.to_string()))?;
        let record = SignedNameRecord {
            body,
            signature_algorithm: DsaAlgorithm::MlDsa65.as_str().to_owned(),
            signer_key_id: self.keys.signing_key_id(),
            signature,
        };
        self.registry.register(&record, self.clock.now(), self.max_names_per_principal).await?;
        Ok(record)
    }

    /// Resolve and verify.
    ///
    /// # Errors
    /// `Tampered` when the stored record fails verification, or `Unavailable`.
    #[tracing::instrument(skip_all, fields(%name))]
    pub async fn resolve(&self, name: &DarkName) -> Result<Resolution, NamesError> {
        let Some(record) = self.registry.resolve(name, self.clock.now()).await? else {
            return Ok(Resolution::Unknown);
        };
        let tampered = |why: &str| {
            tracing::error!(%name, why, "A stored name record failed verification");
            NamesError::Tampered { name: name.clone() }
        };
        if record.signature_algorithm != DsaAlgorithm::MlDsa65.as_str()
            || record.signer_key_id != self.keys.signing_key_id()
        {
            return Err(tampered("signed by another key"));
        }
        if &record.body.name != name {
            return Err(tampered("stored under another name"));
        }
        dsa::verify(
            DsaAlgorithm::MlDsa65,
            self.keys.signing().verifying_key(),
            &record.body.signing_bytes(),
            b"",
            &record.signature,
        )
        .map_err(|_| tampered("bad signature"))?;
        Ok(Resolution::Verified(Box::new(record)))
    }

    /// Remove `caller`'s record for `name`; whether there was one.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn remove(&self, caller: &Principal, name: &DarkName) -> Result<bool, NamesError> {
        Ok(self.registry.remove(name, &owner_of(caller)).await?)
    }

    /// The live record count.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn count(&self) -> Result<u64, NamesError> {
        Ok(self.registry.count(self.clock.now()).await?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use qudag_domain::Timestamp;
    use qudag_domain::rbac::Role;

    use super::*;
    use crate::ports::MockNameRegistry;
    use crate::testkit::ManualClock;

    fn names_with(registry: MockNameRegistry) -> Names {
        Names::new(
            Arc::new(registry),
            Arc::new(ServerKeys::ephemeral().unwrap()),
            Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000))),
        )
    }

    fn names_over(stored: Arc<Mutex<Option<SignedNameRecord>>>) -> Names {
        let mut registry = MockNameRegistry::new();
        let on_register = stored.clone();
        registry.expect_register().returning(move |r, _, _| {
            *on_register.lock().unwrap() = Some(r.clone());
            Ok(())
        });
        registry.expect_resolve().returning(move |_, _| Ok(stored.lock().unwrap().clone()));
        names_with(registry)
    }

    fn registration(name: &DarkName) -> Registration {
        Registration {
            name: name.clone(),
            address: "quic://203.0.113.7:4001".into(),
            public_key: vec![9; KemAlgorithm::MlKem512.encapsulation_key_len()],
            key_algorithm: "ml-kem-512".into(),
            ttl: Duration::from_secs(3600),
        }
    }

    fn alice() -> Principal {
        Principal::anonymous([Role::Developer])
    }

    #[tokio::test]
    async fn a_record_altered_in_storage_is_refused() {
        let stored = Arc::new(Mutex::new(None));
        let names = names_over(stored.clone());
        let name = DarkName::parse("alice.dark").unwrap();
        names.register(&alice(), registration(&name)).await.unwrap();
        assert!(matches!(names.resolve(&name).await.unwrap(), Resolution::Verified(_)));

        let original = stored.lock().unwrap().clone().unwrap();
        let tamper: [&dyn Fn(&mut SignedNameRecord); 5] = [
            &|r| r.body.address = "quic://198.51.100.1:4001".into(),
            &|r| r.body.owner = "iss#mallory".into(),
            &|r| r.body.expires_at = Timestamp::from_secs(1_900_000_000),
            &|r| r.signature[0] ^= 1,
            &|r| r.signer_key_id = "0".repeat(64),
        ];
        for (i, change) in tamper.iter().enumerate() {
            let mut record = original.clone();
            change(&mut record);
            *stored.lock().unwrap() = Some(record);
            let refused = names.resolve(&name).await.unwrap_err();
            assert!(refused.to_string().contains("failed signature verification"), "change {i}: {refused}");
        }
        // A record stored under another name (moved rows) is refused too.
        let mut moved = original;
        moved.body.name = DarkName::parse("bob.dark").unwrap();
        *stored.lock().unwrap() = Some(moved);
        assert!(names.resolve(&name).await.is_err());
    }

    #[tokio::test]
    async fn registrations_are_checked_before_anything_is_signed() {
        let mut registry = MockNameRegistry::new();
        registry.expect_register().never();
        let names = names_with(registry);
        let name = DarkName::parse("alice.dark").unwrap();
        let with = |change: &dyn Fn(&mut Registration)| {
            let mut r = registration(&name);
            change(&mut r);
            r
        };
        let e = names.register(&alice(), with(&|r| r.key_algorithm = "rsa".into())).await.unwrap_err();
        assert!(matches!(e, NamesError::UnknownKeyAlgorithm { .. }), "{e:?}");
        let e = names.register(&alice(), with(&|r| r.public_key.truncate(5))).await.unwrap_err();
        assert_eq!(e.to_string(), "is 5 bytes; a ml-kem-512 key is 800 bytes");
        let e = names.register(&alice(), with(&|r| r.ttl = Duration::from_secs(59))).await.unwrap_err();
        assert!(matches!(e, NamesError::Ttl), "{e:?}");
    }

    #[tokio::test]
    async fn an_unreachable_registry_makes_every_operation_unavailable() {
        let down = || NameRegistryError::Unavailable { source: "connection refused".into() };
        let mut registry = MockNameRegistry::new();
        registry.expect_register().returning(move |_, _, _| Err(down()));
        registry.expect_resolve().returning(move |_, _| Err(down()));
        registry.expect_remove().returning(move |_, _| Err(down()));
        registry.expect_count().returning(move |_| Err(down()));
        let names = names_with(registry);
        let name = DarkName::parse("alice.dark").unwrap();
        let unavailable = |e: NamesError| {
            assert!(matches!(e, NamesError::Unavailable(Unavailable { component: NAME_REGISTRY, .. })), "{e:?}");
        };
        unavailable(names.register(&alice(), registration(&name)).await.unwrap_err());
        unavailable(names.resolve(&name).await.unwrap_err());
        unavailable(names.remove(&alice(), &name).await.unwrap_err());
        unavailable(names.count().await.unwrap_err());
    }

    fn principal(subject: &str) -> Principal {
        use qudag_domain::principal::PrincipalId;
        Principal::new(PrincipalId::new("https://issuer.test", subject), [Role::Admin], Vec::new(), None)
    }

    /// Names under a live name belong to that name's owner.
    #[tokio::test]
    async fn only_the_owner_of_a_name_registers_names_under_it() {
        let alice = principal("alice");
        let parent = DarkName::parse("alice.dark").unwrap();
        let held = Arc::new(Mutex::new(Some(SignedNameRecord {
            body: NameRecordBody {
                name: parent.clone(),
                address: "quic://203.0.113.7:4001".into(),
                public_key: vec![1],
                key_algorithm: "ml-kem-512".into(),
                owner: owner_of(&alice),
                registered_at: Timestamp::from_secs(1_800_000_000),
                expires_at: Timestamp::from_secs(1_900_000_000),
            },
            signature_algorithm: "ml-dsa-65".into(),
            signer_key_id: String::new(),
            signature: Vec::new(),
        })));
        let registered = Arc::new(Mutex::new(Vec::new()));
        let mut registry = MockNameRegistry::new();
        let on_resolve = held.clone();
        registry
            .expect_resolve()
            .returning(move |name, _| Ok(on_resolve.lock().unwrap().clone().filter(|r| r.body.name == *name)));
        let on_register = registered.clone();
        registry.expect_register().returning(move |r, _, _| {
            on_register.lock().unwrap().push(r.body.name.clone());
            Ok(())
        });
        let names = names_with(registry);

        for name in ["x.alice.dark", "a.b.alice.dark"] {
            let name = DarkName::parse(name).unwrap();
            let e = names.register(&principal("mallory"), registration(&name)).await.unwrap_err();
            assert!(
                matches!(e, NamesError::UnderAnothersName { ref parent, .. } if parent.as_str() == "alice.dark"),
                "{e:?}"
            );
            assert!(e.to_string().contains("alice.dark"), "{e}");
        }
        assert!(registered.lock().unwrap().is_empty(), "nothing was signed or stored");
        let own = DarkName::parse("x.alice.dark").unwrap();
        names.register(&alice, registration(&own)).await.unwrap();
        names.register(&principal("mallory"), registration(&DarkName::parse("x.mallory.dark").unwrap())).await.unwrap();
        // Once the parent is gone, the names under it are free.
        *held.lock().unwrap() = None;
        names.register(&principal("mallory"), registration(&DarkName::parse("y.alice.dark").unwrap())).await.unwrap();
        assert_eq!(registered.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn each_principal_is_held_to_its_quota() {
        let mut registry = MockNameRegistry::new();
        registry.expect_register().returning(|_, _, limit| {
            assert_eq!(limit, 3);
            Err(NameRegistryError::OwnerQuotaExceeded { limit })
        });
        let names = names_with(registry).with_max_names_per_principal(3);
        let e = names.register(&alice(), registration(&DarkName::parse("a.dark").unwrap())).await.unwrap_err();
        assert!(matches!(e, NamesError::QuotaExceeded { limit: 3 }), "{e:?}");
        assert!(e.to_string().contains("QUDAG_MAX_NAMES_PER_PRINCIPAL"), "{e}");
    }
}
