//! Post-quantum cryptography: ML-KEM (FIPS 203), ML-DSA (FIPS 204) and the vault envelope.
//!
//! The rules of this module:
//!
//! - **No randomness of its own.** Every random input is handed in by the caller as bytes: the
//!   64-byte ML-KEM key-generation seed `d ‖ z`, the 32-byte encapsulation message `m`, the
//!   32-byte ML-DSA seed `ξ`, the 32-byte signing randomness `rnd`, the envelope's `m` and
//!   nonce. This is how FIPS 203/204 define the algorithms (`KeyGen_internal`,
//!   `Encaps_internal`, `Sign` with `rnd`), so the NIST ACVP vectors run unchanged against the
//!   same functions the server uses (`tests/acvp.rs`). The caller must draw every seed from a
//!   cryptographically secure generator and never reuse one; for ML-DSA an all-zero `rnd`
//!   selects FIPS 204's deterministic variant.
//! - **Keys are stored as seeds.** A KEM key pair is its 64-byte seed, a DSA key pair its
//!   32-byte seed; the expanded FIPS encodings are derived on demand (for explicit export) and
//!   accepted on import, where they are checked (see [`kem::decapsulate_with_key`] and
//!   [`dsa::DsaSigningKey::from_bytes`]).
//! - **Secrets are wiped.** Seeds, expanded private keys, shared secrets and opened plaintexts
//!   are returned in [`Zeroizing`] containers, the libraries' key objects zeroize on drop, and no
//!   `Debug` output contains secret material.
//! - **Bad input is an error, never a panic.** Wrong lengths are [`PqcError::BadKeyLength`] or
//!   [`PqcError::BadLength`] naming the input; a signature that does not verify is
//!   [`PqcError::BadSignature`]; an envelope that does not open is [`PqcError::Decryption`].
//!
//! - [`kem`]: ML-KEM-512/768/1024 key pairs, encapsulation and decapsulation.
//! - [`dsa`]: ML-DSA-44/65/87 key pairs, signing with a context string, verification.
//! - [`envelope`]: the vault's hybrid (KEM-DEM) envelope, ML-KEM + HKDF-SHA256 +
//!   ChaCha20-Poly1305, and its binary format.
//!
//! **Implementation status.** The lattice algorithms come from the RustCrypto crates `ml-kem`
//! (0.3) and `ml-dsa` (0.1). Both are pre-1.0 and have **not been independently audited**; they
//! pass the NIST ACVP known-answer tests shipped in `tests/data/acvp/`, but make no claim of
//! side-channel resistance beyond what their authors state. Treat keys protected by this module
//! accordingly until audited implementations are available.

pub mod dsa;
pub mod envelope;
pub mod kem;

pub use dsa::{DSA_SEED_LEN, DsaAlgorithm, DsaKeyPair, DsaSigningKey};
pub use envelope::{Envelope, SealRandomness};
pub use kem::{KEM_SEED_LEN, KemAlgorithm, KemKeyPair, SHARED_SECRET_LEN};
pub use zeroize::Zeroizing;

/// Why a post-quantum operation refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PqcError {
    /// A key (or seed) has the wrong length for its algorithm.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadKeyLength {
        /// Which key, e.g. "ML-KEM-768 encapsulation key".
        what: &'static str,
        /// The length the algorithm requires.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// A ciphertext or signature has the wrong length for its algorithm.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength {
        /// Which input, e.g. "ML-DSA-65 signature".
        what: &'static str,
        /// The length the algorithm requires.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// A key has the right length but fails the standard's input check.
    #[error("invalid {what}: {reason}")]
    InvalidKey {
        /// Which key.
        what: &'static str,
        /// Which check failed.
        reason: &'static str,
    },
    /// The signature does not verify under this key, message and context.
    #[error("the signature does not verify")]
    BadSignature,
    /// An ML-DSA context string is longer than FIPS 204's 255 bytes.
    #[error("the context string is {got} bytes; FIPS 204 allows at most 255")]
    ContextTooLong {
        /// The length that was given.
        got: usize,
    },
    /// The envelope does not open with this key and associated data: wrong key, wrong
    /// associated data, or any part of it altered. Deliberately says no more than that.
    #[error("the envelope does not open with this key and associated data")]
    Decryption,
    /// The bytes are not a well-formed envelope.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(String),
    /// The plaintext is longer than an envelope can hold.
    #[error("the plaintext is {got} bytes; an envelope holds at most {max}")]
    PlaintextTooLong {
        /// The most an envelope holds.
        max: usize,
        /// The length that was given.
        got: usize,
    },
    /// The algorithm may not be used here (the vault envelope takes ML-KEM-768 or -1024 only).
    #[error("{algorithm} cannot be used for {purpose}")]
    UnsupportedAlgorithm {
        /// The algorithm's name.
        algorithm: &'static str,
        /// What it was asked to do.
        purpose: &'static str,
    },
}

/// A key id: the lowercase hex BLAKE3 digest of a public key's encoding (64 characters).
///
/// Use it on public keys only (encapsulation or verifying keys); it is a stable name for a key,
/// not a secret.
pub fn fingerprint(public_key: &[u8]) -> String {
    hex::encode(blake3::hash(public_key).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_blake3_hex() {
        let id = fingerprint(b"abc");
        assert_eq!(id.len(), 64);
        assert_eq!(id, "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        assert_ne!(fingerprint(b"abd"), id);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = PqcError::BadKeyLength { what: "ML-KEM-768 encapsulation key", expected: 1184, got: 3 };
        assert_eq!(e.to_string(), "ML-KEM-768 encapsulation key must be 1184 bytes, got 3");
        assert_eq!(
            PqcError::ContextTooLong { got: 256 }.to_string(),
            "the context string is 256 bytes; FIPS 204 allows at most 255"
        );
    }
}
