//! ML-DSA (FIPS 204): key pairs from a seed, signing with a context string, verification.
//!
//! - A key pair is generated from the 32-byte seed `ξ` (`ML-DSA.KeyGen_internal(ξ)`), which is
//!   also the compact form the server stores.
//! - [`DsaSigningKey::sign`] is FIPS 204 Algorithm 2, `ML-DSA.Sign(sk, M, ctx)` (the "pure",
//!   external interface): `Sign_internal(sk, 0x00 ‖ |ctx| ‖ ctx ‖ M, rnd)` with the caller's
//!   32-byte `rnd`. Fresh random `rnd` gives the default *hedged* variant; all-zero `rnd` the
//!   *deterministic* one. Contexts longer than 255 bytes are refused.
//! - [`verify`] is Algorithm 3, `ML-DSA.Verify(pk, M, σ, ctx)`. Inputs of the wrong length are
//!   [`PqcError::BadKeyLength`] / [`PqcError::BadLength`]; a signature of the right length that
//!   does not verify (including one whose encoding is malformed: too many hints, `z` out of
//!   range) is [`PqcError::BadSignature`].
//! - Private keys may be imported ([`DsaSigningKey::from_bytes`]) either as the 32-byte seed or
//!   as the expanded FIPS 204 `skEncode` form. FIPS 204 defines no check for the expanded form,
//!   so an import runs three: the coefficients of `s1` and `s2` must lie in `[-η, η]`, the key
//!   must decode, and a pairwise-consistency test must pass (a deterministic signature made
//!   with the key verifies under the verifying key derived from it, which catches a `tr`, `ρ`
//!   or `t0` that does not belong to `s1`, `s2`). The seed form is preferred: it cannot be
//!   malformed.
//! - [`internal`] exposes `Sign_internal` / `Verify_internal` for known-answer tests only.
//!
//! Signing loops until FIPS 204's rejection sampling accepts; the library bounds the loop by
//! its nonce space (over 9,000 attempts where about 4–5 are expected) and panics past it, an
//! event of probability far below 2⁻¹⁰⁰⁰ for keys that pass the checks above.

use std::fmt;

use ml_dsa::{
    B32, EncodedSignature, EncodedVerifyingKey, ExpandedSigningKey, ExpandedSigningKeyBytes, MlDsa44, MlDsa65, MlDsa87,
    Signature, SigningKey, VerifyingKey,
};
use zeroize::{Zeroize, Zeroizing};

use super::PqcError;

/// Length of an ML-DSA key-generation seed `ξ`, for every parameter set.
pub const DSA_SEED_LEN: usize = 32;

/// Length of the signing randomness `rnd`.
pub const DSA_RND_LEN: usize = 32;

/// The longest context string FIPS 204 allows.
pub const MAX_CONTEXT_LEN: usize = 255;

/// An ML-DSA parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DsaAlgorithm {
    /// ML-DSA-44: security category 2.
    MlDsa44,
    /// ML-DSA-65: security category 3.
    MlDsa65,
    /// ML-DSA-87: security category 5.
    MlDsa87,
}

impl DsaAlgorithm {
    /// Every parameter set.
    pub const ALL: [Self; 3] = [Self::MlDsa44, Self::MlDsa65, Self::MlDsa87];

    /// The name used in the API and in storage: "ml-dsa-44", "ml-dsa-65", "ml-dsa-87".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MlDsa44 => "ml-dsa-44",
            Self::MlDsa65 => "ml-dsa-65",
            Self::MlDsa87 => "ml-dsa-87",
        }
    }

    /// A parameter set from its name (exact, lowercase); unknown names give `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Length of the verifying (public) key encoding.
    pub fn verifying_key_len(self) -> usize {
        match self {
            Self::MlDsa44 => 1312,
            Self::MlDsa65 => 1952,
            Self::MlDsa87 => 2592,
        }
    }

    /// Length of the expanded signing (private) key encoding.
    pub fn signing_key_len(self) -> usize {
        match self {
            Self::MlDsa44 => 2560,
            Self::MlDsa65 => 4032,
            Self::MlDsa87 => 4896,
        }
    }

    /// Length of a signature.
    pub fn signature_len(self) -> usize {
        match self {
            Self::MlDsa44 => 2420,
            Self::MlDsa65 => 3309,
            Self::MlDsa87 => 4627,
        }
    }

    /// (k, l, η): rows and columns of A, and the private coefficients' bound.
    fn shape(self) -> (usize, usize, u32) {
        match self {
            Self::MlDsa44 => (4, 4, 2),
            Self::MlDsa65 => (6, 5, 4),
            Self::MlDsa87 => (8, 7, 2),
        }
    }

    fn vk_name(self) -> &'static str {
        match self {
            Self::MlDsa44 => "ML-DSA-44 verifying key",
            Self::MlDsa65 => "ML-DSA-65 verifying key",
            Self::MlDsa87 => "ML-DSA-87 verifying key",
        }
    }

    fn sk_name(self) -> &'static str {
        match self {
            Self::MlDsa44 => "ML-DSA-44 signing key (32-byte seed or expanded encoding)",
            Self::MlDsa65 => "ML-DSA-65 signing key (32-byte seed or expanded encoding)",
            Self::MlDsa87 => "ML-DSA-87 signing key (32-byte seed or expanded encoding)",
        }
    }

    fn sig_name(self) -> &'static str {
        match self {
            Self::MlDsa44 => "ML-DSA-44 signature",
            Self::MlDsa65 => "ML-DSA-65 signature",
            Self::MlDsa87 => "ML-DSA-87 signature",
        }
    }
}

impl fmt::Display for DsaAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The library's expanded signing key for one parameter set (boxed: it holds the matrix A,
/// up to 56 KiB; zeroized on drop by the library).
#[derive(Clone)]
enum Sk {
    D44(Box<ExpandedSigningKey<MlDsa44>>),
    D65(Box<ExpandedSigningKey<MlDsa65>>),
    D87(Box<ExpandedSigningKey<MlDsa87>>),
}

/// Runs `$body` with `$P` bound to the library's parameter-set type for `$alg`.
macro_rules! with_params {
    ($alg:expr, $P:ident => $body:expr) => {
        match $alg {
            DsaAlgorithm::MlDsa44 => {
                type $P = MlDsa44;
                $body
            }
            DsaAlgorithm::MlDsa65 => {
                type $P = MlDsa65;
                $body
            }
            DsaAlgorithm::MlDsa87 => {
                type $P = MlDsa87;
                $body
            }
        }
    };
}

/// Runs `$body` with `$sk` bound to the key inside an [`Sk`].
macro_rules! with_sk {
    ($sk_enum:expr, $sk:ident => $body:expr) => {
        match $sk_enum {
            Sk::D44($sk) => $body,
            Sk::D65($sk) => $body,
            Sk::D87($sk) => $body,
        }
    };
}

/// Puts a library key into the [`Sk`] variant of its parameter set.
trait WrapSk {
    fn wrap(self) -> Sk;
}

impl WrapSk for ExpandedSigningKey<MlDsa44> {
    fn wrap(self) -> Sk {
        Sk::D44(Box::new(self))
    }
}

impl WrapSk for ExpandedSigningKey<MlDsa65> {
    fn wrap(self) -> Sk {
        Sk::D65(Box::new(self))
    }
}

impl WrapSk for ExpandedSigningKey<MlDsa87> {
    fn wrap(self) -> Sk {
        Sk::D87(Box::new(self))
    }
}

/// An ML-DSA signing key: from a seed, or imported in its expanded encoding.
#[derive(Clone)]
pub struct DsaSigningKey {
    algorithm: DsaAlgorithm,
    seed: Option<Zeroizing<[u8; DSA_SEED_LEN]>>,
    verifying_key: Vec<u8>,
    sk: Sk,
}

impl DsaSigningKey {
    fn from_seed(algorithm: DsaAlgorithm, seed: &[u8; DSA_SEED_LEN]) -> Self {
        let mut xi = B32::from(*seed);
        let (sk, verifying_key) = with_params!(algorithm, P => {
            let key = SigningKey::<P>::from_seed(&xi);
            let vk = key.verifying_key_bytes();
            (key.expanded_key().clone().wrap(), vk)
        });
        xi.zeroize();
        Self { algorithm, seed: Some(Zeroizing::new(*seed)), verifying_key, sk }
    }

    /// A signing key from either of its private encodings: the 32-byte seed `ξ` (preferred),
    /// or the expanded FIPS 204 encoding of [`DsaAlgorithm::signing_key_len`] bytes, which is
    /// checked as the [module documentation](self) describes. Any other length is
    /// [`PqcError::BadKeyLength`]; an expanded key failing a check is [`PqcError::InvalidKey`].
    pub fn from_bytes(algorithm: DsaAlgorithm, bytes: &[u8]) -> Result<Self, PqcError> {
        if let Ok(seed) = <&[u8; DSA_SEED_LEN]>::try_from(bytes) {
            return Ok(Self::from_seed(algorithm, seed));
        }
        if bytes.len() != algorithm.signing_key_len() {
            return Err(PqcError::BadKeyLength {
                what: algorithm.sk_name(),
                expected: algorithm.signing_key_len(),
                got: bytes.len(),
            });
        }
        let what = algorithm.sk_name();
        if !private_coefficients_in_range(algorithm, bytes) {
            return Err(PqcError::InvalidKey {
                what,
                reason: "a coefficient of s1 or s2 lies outside [-η, η] (FIPS 204 skDecode)",
            });
        }
        let (sk, verifying_key) = with_params!(algorithm, P => {
            let mut encoded = ExpandedSigningKeyBytes::<P>::try_from(bytes).map_err(|_| PqcError::BadKeyLength {
                what,
                expected: algorithm.signing_key_len(),
                got: bytes.len(),
            })?;
            #[allow(deprecated)] // The expanded form is what FIPS 204 specifies and agents export.
            let key = ExpandedSigningKey::<P>::from_expanded(&encoded);
            encoded.zeroize();
            let vk = key.verifying_key().encode().to_vec();
            (key.wrap(), vk)
        });
        let key = Self { algorithm, seed: None, verifying_key, sk };
        key.pairwise_consistency_test()?;
        Ok(key)
    }

    /// Signs a fixed message deterministically and verifies it under the derived verifying key.
    fn pairwise_consistency_test(&self) -> Result<(), PqcError> {
        const MESSAGE: &[u8] = b"qudag pqc: ML-DSA imported key pairwise consistency test";
        let signature = self.sign(MESSAGE, b"", &[0; DSA_RND_LEN])?;
        verify(self.algorithm, &self.verifying_key, MESSAGE, b"", &signature).map_err(|_| PqcError::InvalidKey {
            what: self.algorithm.sk_name(),
            reason: "pairwise consistency test failed: the key's tr, rho or t0 do not belong to its s1 and s2",
        })
    }

    /// The parameter set.
    pub fn algorithm(&self) -> DsaAlgorithm {
        self.algorithm
    }

    /// The verifying (public) key, FIPS 204 `pkEncode`.
    pub fn verifying_key(&self) -> &[u8] {
        &self.verifying_key
    }

    /// The seed `ξ`, when the key was made from one (not when imported in expanded form).
    pub fn seed(&self) -> Option<&Zeroizing<[u8; DSA_SEED_LEN]>> {
        self.seed.as_ref()
    }

    /// The expanded signing (private) key, FIPS 204 `skEncode`, for explicit export only.
    pub fn signing_key_encoded(&self) -> Zeroizing<Vec<u8>> {
        with_sk!(&self.sk, sk => {
            #[allow(deprecated)]
            let mut expanded = sk.to_expanded();
            let out = Zeroizing::new(expanded.to_vec());
            expanded.zeroize();
            out
        })
    }

    /// `ML-DSA.Sign(sk, message, context)` with the given `rnd` (FIPS 204 Algorithm 2): random
    /// `rnd` for the hedged variant, all-zero for the deterministic one. Returns the encoded
    /// signature; a context over 255 bytes is [`PqcError::ContextTooLong`].
    pub fn sign(&self, message: &[u8], context: &[u8], rnd: &[u8; DSA_RND_LEN]) -> Result<Vec<u8>, PqcError> {
        let context_len = u8::try_from(context.len()).map_err(|_| PqcError::ContextTooLong { got: context.len() })?;
        Ok(self.sign_parts(&[&[0], &[context_len], context, message], rnd))
    }

    /// `Sign_internal(sk, M', rnd)` with `M'` given as the concatenation of `parts`.
    fn sign_parts(&self, parts: &[&[u8]], rnd: &[u8; DSA_RND_LEN]) -> Vec<u8> {
        let mut rnd = B32::from(*rnd);
        let signature = with_sk!(&self.sk, sk => sk.sign_internal(parts, &rnd).encode().to_vec());
        rnd.zeroize();
        signature
    }
}

impl fmt::Debug for DsaSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DsaSigningKey")
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &super::fingerprint(&self.verifying_key))
            .field("from_seed", &self.seed.is_some())
            .finish_non_exhaustive()
    }
}

/// An ML-DSA key pair made from its 32-byte seed.
#[derive(Clone)]
pub struct DsaKeyPair {
    key: DsaSigningKey,
    seed: Zeroizing<[u8; DSA_SEED_LEN]>,
}

impl DsaKeyPair {
    /// `ML-DSA.KeyGen_internal(ξ)` (FIPS 204 Algorithm 6). The seed must come from a
    /// cryptographically secure generator; the same seed always gives the same keys.
    pub fn from_seed(algorithm: DsaAlgorithm, seed: &[u8; DSA_SEED_LEN]) -> Self {
        Self { key: DsaSigningKey::from_seed(algorithm, seed), seed: Zeroizing::new(*seed) }
    }

    /// The parameter set.
    pub fn algorithm(&self) -> DsaAlgorithm {
        self.key.algorithm
    }

    /// The verifying (public) key, FIPS 204 `pkEncode`.
    pub fn verifying_key(&self) -> &[u8] {
        &self.key.verifying_key
    }

    /// The 32-byte seed `ξ`: the compact private key the server stores.
    pub fn seed(&self) -> &Zeroizing<[u8; DSA_SEED_LEN]> {
        &self.seed
    }

    /// The expanded signing (private) key, FIPS 204 `skEncode`, for explicit export only.
    pub fn signing_key_encoded(&self) -> Zeroizing<Vec<u8>> {
        self.key.signing_key_encoded()
    }

    /// The signing key.
    pub fn signing_key(&self) -> &DsaSigningKey {
        &self.key
    }

    /// `ML-DSA.Sign(sk, message, context)` with the given `rnd`; see [`DsaSigningKey::sign`].
    pub fn sign(&self, message: &[u8], context: &[u8], rnd: &[u8; DSA_RND_LEN]) -> Result<Vec<u8>, PqcError> {
        self.key.sign(message, context, rnd)
    }
}

impl fmt::Debug for DsaKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DsaKeyPair")
            .field("algorithm", &self.key.algorithm)
            .field("fingerprint", &super::fingerprint(&self.key.verifying_key))
            .finish_non_exhaustive()
    }
}

/// The verifying key bytes of a library signing key.
trait VerifyingKeyBytes {
    fn verifying_key_bytes(&self) -> Vec<u8>;
}

impl<P: ml_dsa::MlDsaParams> VerifyingKeyBytes for SigningKey<P> {
    fn verifying_key_bytes(&self) -> Vec<u8> {
        ml_dsa::Keypair::verifying_key(self).encode().to_vec()
    }
}

/// `ML-DSA.Verify(pk, message, signature, context)` (FIPS 204 Algorithm 3).
///
/// Wrong key or signature lengths are [`PqcError::BadKeyLength`] / [`PqcError::BadLength`], a
/// context over 255 bytes [`PqcError::ContextTooLong`]; a signature that does not verify for
/// this key, message and context is [`PqcError::BadSignature`].
pub fn verify(
    algorithm: DsaAlgorithm,
    verifying_key: &[u8],
    message: &[u8],
    context: &[u8],
    signature: &[u8],
) -> Result<(), PqcError> {
    check_lengths(algorithm, verifying_key, signature)?;
    if context.len() > MAX_CONTEXT_LEN {
        return Err(PqcError::ContextTooLong { got: context.len() });
    }
    let ok = with_params!(algorithm, P => {
        decode::<P>(verifying_key, signature).is_some_and(|(vk, sig)| vk.verify_with_context(message, context, &sig))
    });
    if ok { Ok(()) } else { Err(PqcError::BadSignature) }
}

/// The length checks shared by [`verify`] and [`internal::verify`].
fn check_lengths(algorithm: DsaAlgorithm, verifying_key: &[u8], signature: &[u8]) -> Result<(), PqcError> {
    if verifying_key.len() != algorithm.verifying_key_len() {
        return Err(PqcError::BadKeyLength {
            what: algorithm.vk_name(),
            expected: algorithm.verifying_key_len(),
            got: verifying_key.len(),
        });
    }
    if signature.len() != algorithm.signature_len() {
        return Err(PqcError::BadLength {
            what: algorithm.sig_name(),
            expected: algorithm.signature_len(),
            got: signature.len(),
        });
    }
    Ok(())
}

/// Decodes a verifying key and a signature whose lengths were checked; `None` for a signature
/// whose encoding is malformed (too many hints, hints out of order, `z` out of range).
fn decode<P: ml_dsa::MlDsaParams>(verifying_key: &[u8], signature: &[u8]) -> Option<(VerifyingKey<P>, Signature<P>)> {
    let vk = EncodedVerifyingKey::<P>::try_from(verifying_key).ok()?;
    let sig = EncodedSignature::<P>::try_from(signature).ok()?;
    Some((VerifyingKey::<P>::decode(&vk), Signature::<P>::decode(&sig)?))
}

/// Whether every coefficient of `s1` and `s2` in an expanded signing key lies in `[-η, η]`,
/// i.e. every packed value `η - c` is at most `2η` (FIPS 204 Algorithm 25 and `BitUnpack`).
fn private_coefficients_in_range(algorithm: DsaAlgorithm, sk: &[u8]) -> bool {
    let (k, l, eta) = algorithm.shape();
    let bits: u32 = if eta == 2 { 3 } else { 4 };
    let start = 32 + 32 + 64;
    let len = (k + l) * 32 * bits as usize;
    let Some(packed) = sk.get(start..start + len) else {
        return false;
    };
    let mask = (1u32 << bits) - 1;
    let (mut acc, mut held) = (0u32, 0u32);
    for &byte in packed {
        acc |= u32::from(byte) << held;
        held += 8;
        while held >= bits {
            if acc & mask > 2 * eta {
                return false;
            }
            acc >>= bits;
            held -= bits;
        }
    }
    true
}

/// FIPS 204's internal functions, **for known-answer tests only**.
///
/// `Sign_internal` and `Verify_internal` take the formatted message `M'` directly, without the
/// domain separator and context that [`DsaSigningKey::sign`] and [`verify`] add; FIPS 204
/// §3.6.3 says they should not be offered to applications. They exist so the NIST ACVP
/// `signatureInterface: internal` vectors can be run against the same keys.
pub mod internal {
    use super::{DSA_RND_LEN, DsaAlgorithm, DsaSigningKey, PqcError, check_lengths, decode};
    use ml_dsa::{MlDsa44, MlDsa65, MlDsa87};

    /// `ML-DSA.Sign_internal(sk, M', rnd)` (FIPS 204 Algorithm 7).
    pub fn sign(key: &DsaSigningKey, m_prime: &[u8], rnd: &[u8; DSA_RND_LEN]) -> Vec<u8> {
        key.sign_parts(&[m_prime], rnd)
    }

    /// `ML-DSA.Verify_internal(pk, M', σ)` (FIPS 204 Algorithm 8), with the same errors as
    /// [`verify`](super::verify).
    pub fn verify(
        algorithm: DsaAlgorithm,
        verifying_key: &[u8],
        m_prime: &[u8],
        signature: &[u8],
    ) -> Result<(), PqcError> {
        check_lengths(algorithm, verifying_key, signature)?;
        let ok = with_params!(algorithm, P => {
            decode::<P>(verifying_key, signature).is_some_and(|(vk, sig)| vk.verify_internal(m_prime, &sig))
        });
        if ok { Ok(()) } else { Err(PqcError::BadSignature) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn seed(byte: u8) -> [u8; DSA_SEED_LEN] {
        let mut s = [0u8; DSA_SEED_LEN];
        for (i, b) in s.iter_mut().enumerate() {
            *b = byte.wrapping_mul(31).wrapping_add(i as u8);
        }
        s
    }

    #[test]
    fn names_round_trip() {
        for alg in DsaAlgorithm::ALL {
            assert_eq!(DsaAlgorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert_eq!(DsaAlgorithm::parse("ML-DSA-65"), None);
        assert_eq!(DsaAlgorithm::parse("dilithium3"), None);
    }

    #[test]
    fn round_trip_every_parameter_set() {
        for alg in DsaAlgorithm::ALL {
            let kp = DsaKeyPair::from_seed(alg, &seed(1));
            assert_eq!(kp.algorithm(), alg);
            assert_eq!(kp.verifying_key().len(), alg.verifying_key_len());
            assert_eq!(kp.signing_key_encoded().len(), alg.signing_key_len());
            assert_eq!(**kp.seed(), seed(1));
            assert_eq!(DsaKeyPair::from_seed(alg, &seed(1)).verifying_key(), kp.verifying_key());
            assert_ne!(DsaKeyPair::from_seed(alg, &seed(2)).verifying_key(), kp.verifying_key());

            let deterministic = kp.sign(b"message", b"ctx", &[0; 32]).unwrap();
            assert_eq!(deterministic.len(), alg.signature_len());
            assert_eq!(kp.sign(b"message", b"ctx", &[0; 32]).unwrap(), deterministic);
            let hedged = kp.sign(b"message", b"ctx", &[7; 32]).unwrap();
            assert_ne!(hedged, deterministic);
            for sig in [&deterministic, &hedged] {
                verify(alg, kp.verifying_key(), b"message", b"ctx", sig).unwrap();
            }
            let empty = kp.sign(b"", b"", &[1; 32]).unwrap();
            verify(alg, kp.verifying_key(), b"", b"", &empty).unwrap();
        }
    }

    #[test]
    fn any_flipped_bit_fails_verification() {
        for alg in DsaAlgorithm::ALL {
            let kp = DsaKeyPair::from_seed(alg, &seed(3));
            let (message, context) = (b"transfer 10 rUv to alice".to_vec(), b"qudag/dag-vote".to_vec());
            let sig = kp.sign(&message, &context, &[9; 32]).unwrap();
            let vk = kp.verifying_key().to_vec();
            for i in [0, sig.len() / 3, sig.len() / 2, sig.len() - 1] {
                let mut bad = sig.clone();
                bad[i] ^= 0x01;
                assert_eq!(verify(alg, &vk, &message, &context, &bad), Err(PqcError::BadSignature), "{alg} sig {i}");
            }
            for i in [0, message.len() - 1] {
                let mut bad = message.clone();
                bad[i] ^= 0x20;
                assert_eq!(verify(alg, &vk, &bad, &context, &sig), Err(PqcError::BadSignature), "{alg} msg {i}");
            }
            let mut bad = context.clone();
            bad[0] ^= 0x01;
            assert_eq!(verify(alg, &vk, &message, &bad, &sig), Err(PqcError::BadSignature), "{alg} ctx");
            assert_eq!(verify(alg, &vk, &message, b"", &sig), Err(PqcError::BadSignature), "{alg} no ctx");
            for i in [0, 40, vk.len() - 1] {
                let mut bad = vk.clone();
                bad[i] ^= 0x04;
                assert_eq!(verify(alg, &bad, &message, &context, &sig), Err(PqcError::BadSignature), "{alg} vk {i}");
            }
            let other = DsaKeyPair::from_seed(alg, &seed(4));
            assert_eq!(verify(alg, other.verifying_key(), &message, &context, &sig), Err(PqcError::BadSignature));
        }
    }

    #[test]
    fn wrong_lengths_are_not_bad_signatures() {
        let kp = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &seed(5));
        let sig = kp.sign(b"m", b"", &[0; 32]).unwrap();
        assert_eq!(
            verify(DsaAlgorithm::MlDsa65, &kp.verifying_key()[1..], b"m", b"", &sig),
            Err(PqcError::BadKeyLength { what: "ML-DSA-65 verifying key", expected: 1952, got: 1951 })
        );
        assert_eq!(
            verify(DsaAlgorithm::MlDsa65, kp.verifying_key(), b"m", b"", &sig[..100]),
            Err(PqcError::BadLength { what: "ML-DSA-65 signature", expected: 3309, got: 100 })
        );
        // The right key under the wrong parameter set is a length error too.
        assert!(matches!(
            verify(DsaAlgorithm::MlDsa87, kp.verifying_key(), b"m", b"", &sig),
            Err(PqcError::BadKeyLength { .. })
        ));
    }

    #[test]
    fn contexts_are_limited_to_255_bytes() {
        let kp = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa44, &seed(6));
        let longest = [0x5A; 255];
        let sig = kp.sign(b"m", &longest, &[0; 32]).unwrap();
        verify(DsaAlgorithm::MlDsa44, kp.verifying_key(), b"m", &longest, &sig).unwrap();
        assert_eq!(kp.sign(b"m", &[0; 256], &[0; 32]), Err(PqcError::ContextTooLong { got: 256 }));
        assert_eq!(
            verify(DsaAlgorithm::MlDsa44, kp.verifying_key(), b"m", &[0; 256], &sig),
            Err(PqcError::ContextTooLong { got: 256 })
        );
    }

    /// FIPS 204 Algorithm 2: Sign(sk, M, ctx) = Sign_internal(sk, 0 ‖ |ctx| ‖ ctx ‖ M, rnd).
    #[test]
    fn the_external_interface_prefixes_the_context() {
        for alg in DsaAlgorithm::ALL {
            let kp = DsaKeyPair::from_seed(alg, &seed(7));
            let rnd = [0x42; 32];
            let external = kp.sign(b"hello", b"app", &rnd).unwrap();
            let internal_sig = internal::sign(kp.signing_key(), b"\x00\x03apphello", &rnd);
            assert_eq!(external, internal_sig);
            internal::verify(alg, kp.verifying_key(), b"\x00\x03apphello", &external).unwrap();
            assert_eq!(internal::verify(alg, kp.verifying_key(), b"hello", &external), Err(PqcError::BadSignature));
        }
    }

    #[test]
    fn signing_keys_import_from_seed_or_expanded_form() {
        for alg in DsaAlgorithm::ALL {
            let kp = DsaKeyPair::from_seed(alg, &seed(8));
            let from_seed = DsaSigningKey::from_bytes(alg, kp.seed().as_slice()).unwrap();
            assert_eq!(from_seed.verifying_key(), kp.verifying_key());
            assert_eq!(from_seed.seed().map(|s| **s), Some(seed(8)));

            let expanded = kp.signing_key_encoded();
            let imported = DsaSigningKey::from_bytes(alg, &expanded).unwrap();
            assert_eq!(imported.algorithm(), alg);
            assert_eq!(imported.verifying_key(), kp.verifying_key());
            assert!(imported.seed().is_none());
            assert_eq!(*imported.signing_key_encoded(), *expanded);
            let rnd = [3; 32];
            assert_eq!(imported.sign(b"m", b"c", &rnd).unwrap(), kp.sign(b"m", b"c", &rnd).unwrap());
        }
    }

    #[test]
    fn malformed_expanded_keys_are_refused_without_panicking() {
        for alg in DsaAlgorithm::ALL {
            let kp = DsaKeyPair::from_seed(alg, &seed(9));
            let expanded = kp.signing_key_encoded().to_vec();

            // Every packed s1 value set to its maximum, 2^bits - 1 > 2η.
            let mut out_of_range = expanded.clone();
            out_of_range[128] = 0xFF;
            let err = DsaSigningKey::from_bytes(alg, &out_of_range).unwrap_err();
            assert!(matches!(err, PqcError::InvalidKey { .. }), "{alg}: {err}");
            assert!(err.to_string().contains("[-η, η]"), "{err}");

            // A tr (bytes 64..128) that is not H(pk) fails the consistency test.
            let mut wrong_tr = expanded.clone();
            wrong_tr[70] ^= 0x01;
            let err = DsaSigningKey::from_bytes(alg, &wrong_tr).unwrap_err();
            assert!(err.to_string().contains("pairwise consistency"), "{alg}: {err}");

            // So does a ρ (bytes 0..32) from another key.
            let other = DsaKeyPair::from_seed(alg, &seed(10)).signing_key_encoded().to_vec();
            let mut wrong_rho = expanded.clone();
            wrong_rho[..32].copy_from_slice(&other[..32]);
            assert!(DsaSigningKey::from_bytes(alg, &wrong_rho).is_err(), "{alg}");

            assert!(matches!(
                DsaSigningKey::from_bytes(alg, &expanded[1..]),
                Err(PqcError::BadKeyLength { got, .. }) if got == alg.signing_key_len() - 1
            ));
            assert!(matches!(DsaSigningKey::from_bytes(alg, &[0; 31]), Err(PqcError::BadKeyLength { got: 31, .. })));
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let kp = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa87, &[0xCD; 32]);
        for shown in [format!("{kp:?}"), format!("{:?}", kp.signing_key())] {
            assert!(!shown.to_lowercase().contains("cdcd"), "{shown}");
            assert!(shown.contains(&crate::pqc::fingerprint(kp.verifying_key())), "{shown}");
        }
    }
}
