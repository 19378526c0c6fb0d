//! ML-KEM (FIPS 203): key pairs from a seed, encapsulation from a given message, decapsulation.
//!
//! - A key pair is generated from the 64-byte seed `d ‖ z` (`ML-KEM.KeyGen_internal(d, z)`),
//!   which is also the compact form the server stores.
//! - [`encapsulate`] runs `ML-KEM.Encaps_internal(ek, m)` with the caller's 32-byte `m`, after
//!   FIPS 203 §7.2's encapsulation-key check (length, then modulus check: every coefficient of
//!   `ek` must be reduced mod q).
//! - [`KemKeyPair::decapsulate`] and [`decapsulate_with_key`] check the ciphertext length and
//!   otherwise always return a shared secret: FIPS 203 decapsulation uses **implicit
//!   rejection**, so a modified or forged ciphertext yields a different, pseudo-random secret
//!   (`J(z ‖ c)`) rather than an error. A mismatch therefore shows up one layer up, e.g. as a
//!   failing AEAD tag in the vault [`envelope`](super::envelope).

use std::fmt;

#[allow(deprecated)] // The expanded encoding is what FIPS 203 specifies and ACVP tests; seeds are preferred.
use ml_kem::ExpandedKeyEncoding;
use ml_kem::array::Array;
use ml_kem::{Decapsulate, DecapsulationKey, EncapsulationKey, KeyExport, MlKem512, MlKem768, MlKem1024};
use zeroize::{Zeroize, Zeroizing};

use super::PqcError;

/// Length of an ML-KEM shared secret, for every parameter set.
pub const SHARED_SECRET_LEN: usize = 32;

/// Length of an ML-KEM key-generation seed `d ‖ z`, for every parameter set.
pub const KEM_SEED_LEN: usize = 64;

/// Length of the encapsulation randomness `m`.
pub const KEM_MESSAGE_LEN: usize = 32;

/// An ML-KEM parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KemAlgorithm {
    /// ML-KEM-512: security category 1.
    MlKem512,
    /// ML-KEM-768: security category 3.
    MlKem768,
    /// ML-KEM-1024: security category 5.
    MlKem1024,
}

impl KemAlgorithm {
    /// Every parameter set.
    pub const ALL: [Self; 3] = [Self::MlKem512, Self::MlKem768, Self::MlKem1024];

    /// The name used in the API and in storage: "ml-kem-512", "ml-kem-768", "ml-kem-1024".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MlKem512 => "ml-kem-512",
            Self::MlKem768 => "ml-kem-768",
            Self::MlKem1024 => "ml-kem-1024",
        }
    }

    /// A parameter set from its name (exact, lowercase); unknown names give `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Length of the encapsulation (public) key encoding: 384k + 32 bytes.
    pub fn encapsulation_key_len(self) -> usize {
        match self {
            Self::MlKem512 => 800,
            Self::MlKem768 => 1184,
            Self::MlKem1024 => 1568,
        }
    }

    /// Length of the expanded decapsulation (private) key encoding: 768k + 96 bytes.
    pub fn decapsulation_key_len(self) -> usize {
        match self {
            Self::MlKem512 => 1632,
            Self::MlKem768 => 2400,
            Self::MlKem1024 => 3168,
        }
    }

    /// Length of a ciphertext.
    pub fn ciphertext_len(self) -> usize {
        match self {
            Self::MlKem512 => 768,
            Self::MlKem768 => 1088,
            Self::MlKem1024 => 1568,
        }
    }

    fn ek_name(self) -> &'static str {
        match self {
            Self::MlKem512 => "ML-KEM-512 encapsulation key",
            Self::MlKem768 => "ML-KEM-768 encapsulation key",
            Self::MlKem1024 => "ML-KEM-1024 encapsulation key",
        }
    }

    fn dk_name(self) -> &'static str {
        match self {
            Self::MlKem512 => "ML-KEM-512 decapsulation key",
            Self::MlKem768 => "ML-KEM-768 decapsulation key",
            Self::MlKem1024 => "ML-KEM-1024 decapsulation key",
        }
    }

    fn ct_name(self) -> &'static str {
        match self {
            Self::MlKem512 => "ML-KEM-512 ciphertext",
            Self::MlKem768 => "ML-KEM-768 ciphertext",
            Self::MlKem1024 => "ML-KEM-1024 ciphertext",
        }
    }
}

impl fmt::Display for KemAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The library's decapsulation key for one parameter set (zeroized on drop by the library).
#[derive(Clone)]
enum Dk {
    K512(DecapsulationKey<MlKem512>),
    K768(DecapsulationKey<MlKem768>),
    K1024(DecapsulationKey<MlKem1024>),
}

/// Runs `$body` with `$P` bound to the library's parameter-set type for `$alg`.
macro_rules! with_params {
    ($alg:expr, $P:ident => $body:expr) => {
        match $alg {
            KemAlgorithm::MlKem512 => {
                type $P = MlKem512;
                $body
            }
            KemAlgorithm::MlKem768 => {
                type $P = MlKem768;
                $body
            }
            KemAlgorithm::MlKem1024 => {
                type $P = MlKem1024;
                $body
            }
        }
    };
}

/// Runs `$body` with `$dk` bound to the decapsulation key inside a [`Dk`].
macro_rules! with_dk {
    ($dk_enum:expr, $dk:ident => $body:expr) => {
        match $dk_enum {
            Dk::K512($dk) => $body,
            Dk::K768($dk) => $body,
            Dk::K1024($dk) => $body,
        }
    };
}

/// Copies a shared key out of the library's array into a zeroizing one, wiping the original.
fn take_secret(mut k: Array<u8, ml_kem::array::sizes::U32>) -> Zeroizing<[u8; SHARED_SECRET_LEN]> {
    let mut out = Zeroizing::new([0u8; SHARED_SECRET_LEN]);
    out.copy_from_slice(k.as_slice());
    k.zeroize();
    out
}

/// An ML-KEM key pair, kept as its 64-byte seed plus the expanded key for fast decapsulation.
#[derive(Clone)]
pub struct KemKeyPair {
    algorithm: KemAlgorithm,
    seed: Zeroizing<[u8; KEM_SEED_LEN]>,
    encapsulation_key: Vec<u8>,
    dk: Dk,
}

impl KemKeyPair {
    /// `ML-KEM.KeyGen_internal(d, z)` for `seed = d ‖ z` (FIPS 203 Algorithm 16). The seed must
    /// come from a cryptographically secure generator; the same seed always gives the same keys.
    pub fn from_seed(algorithm: KemAlgorithm, seed: &[u8; KEM_SEED_LEN]) -> Self {
        let mut lib_seed = ml_kem::Seed::from(*seed);
        let (dk, encapsulation_key) = with_params!(algorithm, P => {
            let dk = DecapsulationKey::<P>::from_seed(lib_seed);
            let ek = dk.encapsulation_key().to_bytes().to_vec();
            (dk.wrap(), ek)
        });
        lib_seed.zeroize();
        Self { algorithm, seed: Zeroizing::new(*seed), encapsulation_key, dk }
    }

    /// The parameter set.
    pub fn algorithm(&self) -> KemAlgorithm {
        self.algorithm
    }

    /// The encapsulation (public) key, FIPS 203 encoding.
    pub fn encapsulation_key(&self) -> &[u8] {
        &self.encapsulation_key
    }

    /// The expanded decapsulation (private) key, FIPS 203 encoding
    /// (`dk_PKE ‖ ek ‖ H(ek) ‖ z`), for explicit export only; store [`seed`](Self::seed) instead.
    pub fn decapsulation_key(&self) -> Zeroizing<Vec<u8>> {
        with_dk!(&self.dk, dk => {
            #[allow(deprecated)]
            let mut expanded = dk.to_expanded_bytes();
            let out = Zeroizing::new(expanded.to_vec());
            expanded.zeroize();
            out
        })
    }

    /// The 64-byte seed `d ‖ z`: the compact private key the server stores.
    pub fn seed(&self) -> &Zeroizing<[u8; KEM_SEED_LEN]> {
        &self.seed
    }

    /// `ML-KEM.Decaps` of `ciphertext`. A ciphertext of the wrong length is an error; any other
    /// ciphertext gives a secret, a wrong or modified one a pseudo-random secret unrelated to
    /// the sender's (FIPS 203 implicit rejection).
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Zeroizing<[u8; SHARED_SECRET_LEN]>, PqcError> {
        let alg = self.algorithm;
        with_dk!(&self.dk, dk => {
            let ct = Array::try_from(ciphertext).map_err(|_| PqcError::BadLength {
                what: alg.ct_name(),
                expected: alg.ciphertext_len(),
                got: ciphertext.len(),
            })?;
            Ok(take_secret(dk.decapsulate(&ct)))
        })
    }
}

/// Puts a library key into the [`Dk`] variant of its parameter set.
trait WrapDk {
    fn wrap(self) -> Dk;
}

impl WrapDk for DecapsulationKey<MlKem512> {
    fn wrap(self) -> Dk {
        Dk::K512(self)
    }
}

impl WrapDk for DecapsulationKey<MlKem768> {
    fn wrap(self) -> Dk {
        Dk::K768(self)
    }
}

impl WrapDk for DecapsulationKey<MlKem1024> {
    fn wrap(self) -> Dk {
        Dk::K1024(self)
    }
}

impl fmt::Debug for KemKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KemKeyPair")
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &super::fingerprint(&self.encapsulation_key))
            .finish_non_exhaustive()
    }
}

/// `ML-KEM.Encaps_internal(ek, m)` (FIPS 203 Algorithm 17) after the encapsulation-key check:
/// returns the ciphertext and the shared secret. `m` must be 32 fresh random bytes: reusing it
/// with the same key reproduces the same secret.
pub fn encapsulate(
    algorithm: KemAlgorithm,
    encapsulation_key: &[u8],
    m: &[u8; KEM_MESSAGE_LEN],
) -> Result<(Vec<u8>, Zeroizing<[u8; SHARED_SECRET_LEN]>), PqcError> {
    let what = algorithm.ek_name();
    let bad_length =
        || PqcError::BadKeyLength { what, expected: algorithm.encapsulation_key_len(), got: encapsulation_key.len() };
    let mut m = ml_kem::B32::from(*m);
    let result = with_params!(algorithm, P => {
        let encoded = Array::try_from(encapsulation_key).map_err(|_| bad_length())?;
        let ek = EncapsulationKey::<P>::new(&encoded).map_err(|_| PqcError::InvalidKey {
            what,
            reason: "modulus check failed: a coefficient is not reduced mod q (FIPS 203 §7.2)",
        })?;
        let (ct, k) = ek.encapsulate_deterministic(&m);
        (ct.to_vec(), take_secret(k))
    });
    m.zeroize();
    Ok(result)
}

/// `ML-KEM.Decaps` with an expanded decapsulation key given in its FIPS 203 encoding (as in the
/// ACVP decapsulation vectors or an imported key). Checks the key first: its length, the
/// modulus check of the embedded encapsulation key and the hash check `H(ek)` (FIPS 203 §7.3);
/// then behaves as [`KemKeyPair::decapsulate`], implicit rejection included.
pub fn decapsulate_with_key(
    algorithm: KemAlgorithm,
    expanded_decapsulation_key: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<[u8; SHARED_SECRET_LEN]>, PqcError> {
    let what = algorithm.dk_name();
    if expanded_decapsulation_key.len() != algorithm.decapsulation_key_len() {
        return Err(PqcError::BadKeyLength {
            what,
            expected: algorithm.decapsulation_key_len(),
            got: expanded_decapsulation_key.len(),
        });
    }
    if ciphertext.len() != algorithm.ciphertext_len() {
        return Err(PqcError::BadLength {
            what: algorithm.ct_name(),
            expected: algorithm.ciphertext_len(),
            got: ciphertext.len(),
        });
    }
    let invalid = || PqcError::InvalidKey {
        what,
        reason: "the embedded encapsulation key fails the modulus check or its hash H(ek) (FIPS 203 §7.3)",
    };
    with_params!(algorithm, P => {
        let mut encoded = Array::try_from(expanded_decapsulation_key).map_err(|_| invalid())?;
        #[allow(deprecated)]
        let dk = DecapsulationKey::<P>::from_expanded_bytes(&encoded);
        encoded.zeroize();
        let dk = dk.map_err(|_| invalid())?;
        let ct = Array::try_from(ciphertext).map_err(|_| PqcError::BadLength {
            what: algorithm.ct_name(),
            expected: algorithm.ciphertext_len(),
            got: ciphertext.len(),
        })?;
        Ok(take_secret(dk.decapsulate(&ct)))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn seed(byte: u8) -> [u8; KEM_SEED_LEN] {
        let mut s = [0u8; KEM_SEED_LEN];
        for (i, b) in s.iter_mut().enumerate() {
            *b = byte.wrapping_add(i as u8);
        }
        s
    }

    #[test]
    fn names_round_trip() {
        for alg in KemAlgorithm::ALL {
            assert_eq!(KemAlgorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert_eq!(KemAlgorithm::parse("ML-KEM-768"), None);
        assert_eq!(KemAlgorithm::parse("kyber768"), None);
    }

    #[test]
    fn round_trip_every_parameter_set() {
        for alg in KemAlgorithm::ALL {
            let kp = KemKeyPair::from_seed(alg, &seed(7));
            assert_eq!(kp.algorithm(), alg);
            assert_eq!(kp.encapsulation_key().len(), alg.encapsulation_key_len());
            assert_eq!(kp.decapsulation_key().len(), alg.decapsulation_key_len());
            assert_eq!(**kp.seed(), seed(7));

            let (ct, sent) = encapsulate(alg, kp.encapsulation_key(), &[9; 32]).unwrap();
            assert_eq!(ct.len(), alg.ciphertext_len());
            assert_eq!(*kp.decapsulate(&ct).unwrap(), *sent);
            // The exported expanded key decapsulates the same way.
            assert_eq!(*decapsulate_with_key(alg, &kp.decapsulation_key(), &ct).unwrap(), *sent);
            // Deterministic in the seed and in m; different m, different secret.
            assert_eq!(KemKeyPair::from_seed(alg, &seed(7)).encapsulation_key(), kp.encapsulation_key());
            let (ct2, sent2) = encapsulate(alg, kp.encapsulation_key(), &[10; 32]).unwrap();
            assert_ne!(ct2, ct);
            assert_ne!(*sent2, *sent);
        }
    }

    #[test]
    fn a_flipped_ciphertext_bit_gives_a_different_secret() {
        for alg in KemAlgorithm::ALL {
            let kp = KemKeyPair::from_seed(alg, &seed(1));
            let (ct, sent) = encapsulate(alg, kp.encapsulation_key(), &[3; 32]).unwrap();
            for position in [0, ct.len() / 2, ct.len() - 1] {
                let mut bad = ct.clone();
                bad[position] ^= 0x01;
                let got = kp.decapsulate(&bad).unwrap();
                assert_ne!(*got, *sent, "{alg} byte {position}");
                // Implicit rejection is deterministic: the same forgery, the same secret.
                assert_eq!(*kp.decapsulate(&bad).unwrap(), *got);
            }
        }
    }

    #[test]
    fn another_key_gets_another_secret() {
        let alice = KemKeyPair::from_seed(KemAlgorithm::MlKem768, &seed(1));
        let bob = KemKeyPair::from_seed(KemAlgorithm::MlKem768, &seed(2));
        let (ct, sent) = encapsulate(KemAlgorithm::MlKem768, alice.encapsulation_key(), &[5; 32]).unwrap();
        assert_ne!(*bob.decapsulate(&ct).unwrap(), *sent);
    }

    #[test]
    fn wrong_lengths_are_named_errors() {
        let kp = KemKeyPair::from_seed(KemAlgorithm::MlKem512, &seed(0));
        let err = encapsulate(KemAlgorithm::MlKem768, kp.encapsulation_key(), &[0; 32]).unwrap_err();
        assert_eq!(err, PqcError::BadKeyLength { what: "ML-KEM-768 encapsulation key", expected: 1184, got: 800 });
        assert_eq!(
            kp.decapsulate(&[0; 767]).unwrap_err(),
            PqcError::BadLength { what: "ML-KEM-512 ciphertext", expected: 768, got: 767 }
        );
        assert!(matches!(
            decapsulate_with_key(KemAlgorithm::MlKem512, &[0; 10], &[0; 768]),
            Err(PqcError::BadKeyLength { what: "ML-KEM-512 decapsulation key", expected: 1632, got: 10 })
        ));
        let dk = kp.decapsulation_key();
        assert!(matches!(
            decapsulate_with_key(KemAlgorithm::MlKem512, &dk, &[0; 1]),
            Err(PqcError::BadLength { expected: 768, got: 1, .. })
        ));
    }

    #[test]
    fn the_modulus_check_rejects_unreduced_keys() {
        for alg in KemAlgorithm::ALL {
            let kp = KemKeyPair::from_seed(alg, &seed(4));
            let mut ek = kp.encapsulation_key().to_vec();
            // The first coefficient is the low 12 bits of bytes 0..2; 0xFFF = 4095 ≥ q = 3329.
            ek[0] = 0xFF;
            ek[1] |= 0x0F;
            let err = encapsulate(alg, &ek, &[0; 32]).unwrap_err();
            assert!(matches!(err, PqcError::InvalidKey { .. }), "{alg}: {err}");
            assert!(err.to_string().contains("modulus check"), "{err}");
        }
    }

    #[test]
    fn the_hash_check_rejects_tampered_expanded_keys() {
        for alg in KemAlgorithm::ALL {
            let kp = KemKeyPair::from_seed(alg, &seed(8));
            let (ct, _) = encapsulate(alg, kp.encapsulation_key(), &[1; 32]).unwrap();
            let mut dk = kp.decapsulation_key().to_vec();
            // dk = dk_pke ‖ ek ‖ H(ek) ‖ z, so H(ek) is the 32 bytes before the last 32.
            let h_start = alg.decapsulation_key_len() - 64;
            dk[h_start + 3] ^= 0x80;
            let err = decapsulate_with_key(alg, &dk, &ct).unwrap_err();
            assert!(matches!(err, PqcError::InvalidKey { .. }), "{alg}: {err}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let kp = KemKeyPair::from_seed(KemAlgorithm::MlKem1024, &[0xAB; 64]);
        let shown = format!("{kp:?}");
        assert!(shown.contains("ml-kem") || shown.contains("MlKem1024"), "{shown}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
        assert!(shown.contains(&crate::pqc::fingerprint(kp.encapsulation_key())));
    }
}
