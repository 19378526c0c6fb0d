//! The server's own key material: the ML-DSA-65 key that signs `.dark` name records (and,
//! later, audit checkpoints), and the ML-KEM keys the vault seals entries to.
//!
//! Keys are kept as their FIPS seeds (32 bytes for ML-DSA, 64 for ML-KEM) and expanded at
//! start. Every node of a deployment must load the same seeds — from the key file the
//! bootstrap reads (`QUDAG_KEY_FILE`) — or a vault entry sealed on one node cannot be
//! opened on another. Without a key file the server generates ephemeral keys: fine for a
//! single development process, useless for anything that must survive a restart.

use qudag_domain::pqc::{DsaAlgorithm, DsaKeyPair, KemAlgorithm, KemKeyPair, fingerprint};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The operating system had no randomness to give. Nothing weaker is ever used instead:
/// the operation that needed it fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct NoEntropy(pub String);

/// `N` fresh random bytes from the operating system, for keys, nonces, ids and seeds.
///
/// # Errors
/// [`NoEntropy`] when the OS has none to give.
pub fn random<const N: usize>() -> Result<[u8; N], NoEntropy> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| NoEntropy(e.to_string()))?;
    Ok(bytes)
}

/// Where the keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    /// Loaded from the configured key file.
    File,
    /// Generated at start and lost at exit.
    Ephemeral,
}

/// The seeds, as stored in the key file (JSON, hex-encoded seeds).
#[derive(Clone, Serialize, Deserialize)]
pub struct KeySeeds {
    /// The file format's version (1).
    pub version: u32,
    /// The ML-DSA-65 seed ξ (32 bytes, hex).
    pub ml_dsa_65: String,
    /// The ML-KEM-768 seed d ‖ z (64 bytes, hex).
    pub ml_kem_768: String,
    /// The ML-KEM-1024 seed d ‖ z (64 bytes, hex).
    pub ml_kem_1024: String,
}

impl std::fmt::Debug for KeySeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySeeds").field("version", &self.version).finish_non_exhaustive()
    }
}

impl Drop for KeySeeds {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.ml_dsa_65.zeroize();
        self.ml_kem_768.zeroize();
        self.ml_kem_1024.zeroize();
    }
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Not JSON of the expected shape.
    #[error("key file is not valid: {0}")]
    Malformed(String),
    /// A seed has the wrong length or is not hex.
    #[error("key file field `{field}` must be {bytes} bytes of hex")]
    BadSeed {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        bytes: usize,
    },
    /// An unknown format version.
    #[error("key file version {0} is not supported (expected 1)")]
    Version(u32),
    /// No entropy for new keys.
    #[error("no randomness available to generate keys: {0}")]
    Entropy(String),
}

impl KeySeeds {
    /// Fresh random seeds.
    ///
    /// # Errors
    /// `Entropy` when the OS has none to give.
    pub fn generate() -> Result<Self, KeyFileError> {
        let entropy = |e: NoEntropy| KeyFileError::Entropy(e.to_string());
        Ok(Self {
            version: 1,
            ml_dsa_65: hex::encode(*Zeroizing::new(random::<32>().map_err(entropy)?)),
            ml_kem_768: hex::encode(*Zeroizing::new(random::<64>().map_err(entropy)?)),
            ml_kem_1024: hex::encode(*Zeroizing::new(random::<64>().map_err(entropy)?)),
        })
    }

    /// Parse a key file's contents.
    ///
    /// # Errors
    /// A [`KeyFileError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let seeds: Self = serde_json::from_str(text).map_err(|e| KeyFileError::Malformed(e.to_string()))?;
        if seeds.version != 1 {
            return Err(KeyFileError::Version(seeds.version));
        }
        Ok(seeds)
    }

    /// The file's contents.
    pub fn to_json(&self) -> Zeroizing<String> {
        Zeroizing::new(serde_json::to_string_pretty(self).unwrap_or_default())
    }

    fn seed<const N: usize>(field: &'static str, text: &str) -> Result<Zeroizing<[u8; N]>, KeyFileError> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| KeyFileError::BadSeed { field, bytes: N })?);
        let mut out = Zeroizing::new([0u8; N]);
        if bytes.len() != N {
            return Err(KeyFileError::BadSeed { field, bytes: N });
        }
        out.copy_from_slice(&bytes);
        Ok(out)
    }
}

/// The server's keys, expanded.
pub struct ServerKeys {
    signing: DsaKeyPair,
    vault_768: KemKeyPair,
    vault_1024: KemKeyPair,
    origin: KeyOrigin,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKeys")
            .field("signing_key_id", &self.signing_key_id())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl ServerKeys {
    /// Expand `seeds`.
    ///
    /// # Errors
    /// `BadSeed` naming the field.
    pub fn from_seeds(seeds: &KeySeeds, origin: KeyOrigin) -> Result<Self, KeyFileError> {
        let dsa = KeySeeds::seed::<32>("ml_dsa_65", &seeds.ml_dsa_65)?;
        let kem768 = KeySeeds::seed::<64>("ml_kem_768", &seeds.ml_kem_768)?;
        let kem1024 = KeySeeds::seed::<64>("ml_kem_1024", &seeds.ml_kem_1024)?;
        Ok(Self {
            signing: DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &dsa),
            vault_768: KemKeyPair::from_seed(KemAlgorithm::MlKem768, &kem768),
            vault_1024: KemKeyPair::from_seed(KemAlgorithm::MlKem1024, &kem1024),
            origin,
        })
    }

    /// Fresh ephemeral keys.
    ///
    /// # Errors
    /// `Entropy`.
    pub fn ephemeral() -> Result<Self, KeyFileError> {
        Self::from_seeds(&KeySeeds::generate()?, KeyOrigin::Ephemeral)
    }

    /// The ML-DSA-65 key pair that signs name records.
    pub fn signing(&self) -> &DsaKeyPair {
        &self.signing
    }

    /// The signing key's id (BLAKE3 fingerprint of its verifying key).
    pub fn signing_key_id(&self) -> String {
        fingerprint(self.signing.verifying_key())
    }

    /// The vault key for `algorithm`; `None` for ML-KEM-512, which the vault does not use.
    pub fn vault_key(&self, algorithm: KemAlgorithm) -> Option<&KemKeyPair> {
        match algorithm {
            KemAlgorithm::MlKem768 => Some(&self.vault_768),
            KemAlgorithm::MlKem1024 => Some(&self.vault_1024),
            KemAlgorithm::MlKem512 => None,
        }
    }

    /// Where the keys came from.
    pub fn origin(&self) -> KeyOrigin {
        self.origin
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seeds_round_trip_through_the_key_file() {
        let seeds = KeySeeds::generate().unwrap();
        let parsed = KeySeeds::parse(&seeds.to_json()).unwrap();
        let (a, b) = (
            ServerKeys::from_seeds(&seeds, KeyOrigin::File).unwrap(),
            ServerKeys::from_seeds(&parsed, KeyOrigin::File).unwrap(),
        );
        assert_eq!(a.signing_key_id(), b.signing_key_id());
        assert_eq!(
            a.vault_key(KemAlgorithm::MlKem768).unwrap().encapsulation_key(),
            b.vault_key(KemAlgorithm::MlKem768).unwrap().encapsulation_key()
        );
        assert!(!format!("{seeds:?}").contains(&seeds.ml_dsa_65), "Debug must not print seeds");
    }

    #[test]
    fn bad_key_files_name_the_problem() {
        assert!(matches!(KeySeeds::parse("{"), Err(KeyFileError::Malformed(_))));
        let mut seeds = KeySeeds::generate().unwrap();
        seeds.ml_kem_768 = "abcd".into();
        let e = ServerKeys::from_seeds(&seeds, KeyOrigin::File).unwrap_err();
        assert!(e.to_string().contains("ml_kem_768"), "{e}");
        let mut seeds = KeySeeds::generate().unwrap();
        seeds.version = 2;
        assert!(matches!(KeySeeds::parse(&seeds.to_json()), Err(KeyFileError::Version(2))));
    }
}
