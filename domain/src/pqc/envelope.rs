//! The vault's hybrid envelope (KEM-DEM): ML-KEM for the key, ChaCha20-Poly1305 for the data.
//!
//! **Construction** (version 1). To seal `plaintext` with associated data `aad` for a
//! recipient's ML-KEM encapsulation key `ek`, with the caller's 32-byte `m` and 12-byte
//! `nonce`:
//!
//! 1. `(c, ss) = ML-KEM.Encaps_internal(ek, m)` after the FIPS 203 key check
//!    ([`kem::encapsulate`]); only ML-KEM-768 and ML-KEM-1024 are accepted.
//! 2. `key = HKDF-SHA256(salt = SHA-256(c), ikm = ss, info, L = 32)` (RFC 5869) with
//!    `info = "qudag-vault/v1" ‖ 0x00 ‖ alg ‖ 0x00 ‖ SHA-256(ek)`, where `alg` is the ASCII name
//!    (`ml-kem-768` or `ml-kem-1024`). The key is thereby bound to the format version, the
//!    parameter set, the KEM ciphertext and the recipient's public key.
//! 3. `ciphertext = ChaCha20-Poly1305(key, nonce, aad).encrypt(plaintext)` (RFC 8439), the
//!    16-byte tag appended.
//!
//! Opening recomputes `ss` with the recipient's key pair, re-derives the key and checks the tag.
//! ML-KEM's implicit rejection turns a modified `c` into an unrelated `ss`, and every other
//! field feeds the key or the tag, so any change to any field, a wrong key or a different `aad`
//! all end the same way: [`PqcError::Decryption`], with nothing to tell them apart.
//!
//! `m` decides the AEAD key, so it must be fresh from a cryptographically secure generator for
//! every envelope; reusing a [`SealRandomness`] for the same recipient reuses key and nonce.
//!
//! **Binary format** ([`Envelope::to_bytes`]), version 1, integers big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `QDVE` |
//! | 1 | format version, `0x01` |
//! | 1 | algorithm: `0x02` ML-KEM-768, `0x03` ML-KEM-1024 |
//! | 1088 or 1568 | the ML-KEM ciphertext `c` (length fixed by the algorithm) |
//! | 12 | the ChaCha20-Poly1305 nonce |
//! | 4 | `n`, the AEAD ciphertext's length including its tag (at least 16) |
//! | n | the AEAD ciphertext and tag; nothing may follow |
//!
//! [`Envelope::from_bytes`] checks every one of these and returns
//! [`PqcError::MalformedEnvelope`] naming the first that fails; it never panics.

use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::PqcError;
use super::kem::{self, KEM_MESSAGE_LEN, KemAlgorithm, KemKeyPair, SHARED_SECRET_LEN};

/// The first four bytes of every serialized envelope.
pub const MAGIC: [u8; 4] = *b"QDVE";

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Length of the ChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 12;

/// Length of the ChaCha20-Poly1305 tag at the end of the ciphertext.
pub const TAG_LEN: usize = 16;

/// The HKDF `info` label; the version in it is the format version.
pub const KDF_LABEL: &[u8] = b"qudag-vault/v1";

/// The longest plaintext an envelope can hold (its length field is 32 bits, tag included).
pub const MAX_PLAINTEXT_LEN: usize = u32::MAX as usize - TAG_LEN;

/// Bytes before the KEM ciphertext: magic, version, algorithm.
const HEADER_LEN: usize = MAGIC.len() + 2;

/// The random inputs of [`seal`]: both must be fresh for every envelope. `m` is secret (it
/// determines the key) and is wiped on drop.
pub struct SealRandomness {
    /// The ML-KEM encapsulation randomness.
    pub m: [u8; KEM_MESSAGE_LEN],
    /// The ChaCha20-Poly1305 nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Drop for SealRandomness {
    fn drop(&mut self) {
        self.m.zeroize();
    }
}

impl std::fmt::Debug for SealRandomness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealRandomness").field("nonce", &hex::encode(self.nonce)).finish_non_exhaustive()
    }
}

/// A sealed vault entry. Every field is public data: it is what gets stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The recipient key's parameter set: ML-KEM-768 or ML-KEM-1024.
    pub algorithm: KemAlgorithm,
    /// The ML-KEM ciphertext.
    pub kem_ciphertext: Vec<u8>,
    /// The ChaCha20-Poly1305 nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The ChaCha20-Poly1305 ciphertext with its tag appended.
    pub ciphertext: Vec<u8>,
}

/// The one-byte algorithm code of the binary format; `None` for algorithms the envelope refuses.
fn algorithm_code(algorithm: KemAlgorithm) -> Option<u8> {
    match algorithm {
        KemAlgorithm::MlKem512 => None,
        KemAlgorithm::MlKem768 => Some(0x02),
        KemAlgorithm::MlKem1024 => Some(0x03),
    }
}

fn algorithm_from_code(code: u8) -> Option<KemAlgorithm> {
    KemAlgorithm::ALL.into_iter().find(|&a| algorithm_code(a) == Some(code))
}

fn check_algorithm(algorithm: KemAlgorithm) -> Result<u8, PqcError> {
    algorithm_code(algorithm)
        .ok_or(PqcError::UnsupportedAlgorithm { algorithm: algorithm.as_str(), purpose: "the vault envelope" })
}

impl Envelope {
    /// The binary encoding described in the [module documentation](self). Fails only for an
    /// envelope that could never have been sealed (an algorithm other than ML-KEM-768/1024, a
    /// KEM ciphertext of the wrong length, or a ciphertext too long for its length field).
    pub fn to_bytes(&self) -> Result<Vec<u8>, PqcError> {
        let code = check_algorithm(self.algorithm)?;
        if self.kem_ciphertext.len() != self.algorithm.ciphertext_len() {
            return Err(PqcError::MalformedEnvelope(format!(
                "the KEM ciphertext is {} bytes, {} takes {}",
                self.kem_ciphertext.len(),
                self.algorithm,
                self.algorithm.ciphertext_len()
            )));
        }
        let len = u32::try_from(self.ciphertext.len())
            .map_err(|_| PqcError::MalformedEnvelope("the ciphertext is longer than 2^32 - 1 bytes".into()))?;
        let mut out =
            Vec::with_capacity(HEADER_LEN + self.kem_ciphertext.len() + NONCE_LEN + 4 + self.ciphertext.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(code);
        out.extend_from_slice(&self.kem_ciphertext);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        Ok(out)
    }

    /// Parses the binary encoding, checking magic, version, algorithm, every length and that
    /// nothing follows. Never panics, whatever the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PqcError> {
        let malformed = |reason: String| PqcError::MalformedEnvelope(reason);
        let mut rest = bytes;
        let mut take = |n: usize, field: &str| -> Result<&[u8], PqcError> {
            let (head, tail) = rest
                .split_at_checked(n)
                .ok_or_else(|| malformed(format!("truncated: {field} needs {n} bytes, {} remain", rest.len())))?;
            rest = tail;
            Ok(head)
        };
        if take(MAGIC.len(), "the magic")? != MAGIC {
            return Err(malformed("not a vault envelope (bad magic)".into()));
        }
        let version = take(1, "the version")?[0];
        if version != FORMAT_VERSION {
            return Err(malformed(format!("unknown format version {version}")));
        }
        let code = take(1, "the algorithm")?[0];
        let algorithm = algorithm_from_code(code).ok_or_else(|| malformed(format!("unknown algorithm code {code}")))?;
        let kem_ciphertext = take(algorithm.ciphertext_len(), "the KEM ciphertext")?.to_vec();
        let nonce: [u8; NONCE_LEN] =
            take(NONCE_LEN, "the nonce")?.try_into().map_err(|_| malformed("truncated: the nonce".into()))?;
        let len_bytes: [u8; 4] =
            take(4, "the ciphertext length")?.try_into().map_err(|_| malformed("truncated: the length".into()))?;
        let len = usize::try_from(u32::from_be_bytes(len_bytes))
            .map_err(|_| malformed("the ciphertext length does not fit this platform".into()))?;
        if len < TAG_LEN {
            return Err(malformed(format!("the ciphertext is {len} bytes, shorter than its {TAG_LEN}-byte tag")));
        }
        let ciphertext = take(len, "the ciphertext")?.to_vec();
        if !rest.is_empty() {
            return Err(malformed(format!("{} unexpected bytes after the ciphertext", rest.len())));
        }
        Ok(Self { algorithm, kem_ciphertext, nonce, ciphertext })
    }
}

/// The AEAD key: HKDF-SHA256(salt = SHA-256(c), ikm = ss, info = label ‖ 0 ‖ alg ‖ 0 ‖ SHA-256(ek)).
fn derive_key(
    algorithm: KemAlgorithm,
    kem_ciphertext: &[u8],
    encapsulation_key: &[u8],
    shared_secret: &[u8; SHARED_SECRET_LEN],
) -> Zeroizing<[u8; 32]> {
    let salt = Sha256::digest(kem_ciphertext);
    let ek_hash = Sha256::digest(encapsulation_key);
    let hkdf = Hkdf::<Sha256>::new(Some(salt.as_slice()), shared_secret);
    let mut key = Zeroizing::new([0u8; 32]);
    let info: [&[u8]; 5] = [KDF_LABEL, &[0], algorithm.as_str().as_bytes(), &[0], ek_hash.as_slice()];
    // 32 bytes is far below HKDF-SHA256's 255 × 32 limit, so expansion cannot fail.
    if hkdf.expand_multi_info(&info, key.as_mut_slice()).is_err() {
        unreachable!("HKDF-SHA256 can expand 32 bytes");
    }
    key
}

fn cipher(key: &Zeroizing<[u8; 32]>) -> ChaCha20Poly1305 {
    let mut k = Key::from(**key);
    let cipher = ChaCha20Poly1305::new(&k);
    k.zeroize();
    cipher
}

/// Seals `plaintext` for the holder of `recipient_encapsulation_key`, authenticating `aad`
/// with it, as the [module documentation](self) describes.
///
/// Errors: [`PqcError::UnsupportedAlgorithm`] for ML-KEM-512, the key errors of
/// [`kem::encapsulate`], [`PqcError::PlaintextTooLong`] past [`MAX_PLAINTEXT_LEN`].
pub fn seal(
    algorithm: KemAlgorithm,
    recipient_encapsulation_key: &[u8],
    plaintext: &[u8],
    aad: &[u8],
    randomness: &SealRandomness,
) -> Result<Envelope, PqcError> {
    check_algorithm(algorithm)?;
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(PqcError::PlaintextTooLong { max: MAX_PLAINTEXT_LEN, got: plaintext.len() });
    }
    let (kem_ciphertext, shared_secret) = kem::encapsulate(algorithm, recipient_encapsulation_key, &randomness.m)?;
    let key = derive_key(algorithm, &kem_ciphertext, recipient_encapsulation_key, &shared_secret);
    let ciphertext = cipher(&key)
        .encrypt(&Nonce::from(randomness.nonce), Payload { msg: plaintext, aad })
        .map_err(|_| PqcError::PlaintextTooLong { max: MAX_PLAINTEXT_LEN, got: plaintext.len() })?;
    Ok(Envelope { algorithm, kem_ciphertext, nonce: randomness.nonce, ciphertext })
}

/// Opens `envelope` with the recipient's key pair and the same `aad` it was sealed with.
///
/// Errors: [`PqcError::UnsupportedAlgorithm`] or [`PqcError::MalformedEnvelope`] for an
/// envelope that could never have been sealed; otherwise [`PqcError::Decryption`] for a wrong
/// key (including one of another parameter set), a different `aad`, or any altered field.
pub fn open(recipient: &KemKeyPair, envelope: &Envelope, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, PqcError> {
    let algorithm = envelope.algorithm;
    check_algorithm(algorithm)?;
    if envelope.kem_ciphertext.len() != algorithm.ciphertext_len() {
        return Err(PqcError::MalformedEnvelope(format!(
            "the KEM ciphertext is {} bytes, {} takes {}",
            envelope.kem_ciphertext.len(),
            algorithm,
            algorithm.ciphertext_len()
        )));
    }
    if recipient.algorithm() != algorithm {
        return Err(PqcError::Decryption);
    }
    let shared_secret = recipient.decapsulate(&envelope.kem_ciphertext)?;
    let key = derive_key(algorithm, &envelope.kem_ciphertext, recipient.encapsulation_key(), &shared_secret);
    let mut buffer = Zeroizing::new(envelope.ciphertext.clone());
    cipher(&key).decrypt_in_place(&Nonce::from(envelope.nonce), aad, &mut *buffer).map_err(|_| PqcError::Decryption)?;
    Ok(buffer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn recipient(alg: KemAlgorithm, byte: u8) -> KemKeyPair {
        KemKeyPair::from_seed(alg, &[byte; 64])
    }

    fn randomness(byte: u8) -> SealRandomness {
        SealRandomness { m: [byte; 32], nonce: [byte.wrapping_add(1); 12] }
    }

    fn sealed(alg: KemAlgorithm, plaintext: &[u8]) -> (KemKeyPair, Envelope) {
        let kp = recipient(alg, 1);
        let env = seal(alg, kp.encapsulation_key(), plaintext, b"entry-42", &randomness(7)).unwrap();
        (kp, env)
    }

    #[test]
    fn round_trips() {
        for alg in [KemAlgorithm::MlKem768, KemAlgorithm::MlKem1024] {
            for plaintext in [&b""[..], b"x", &[0xA5; 1024][..]] {
                let (kp, env) = sealed(alg, plaintext);
                assert_eq!(env.algorithm, alg);
                assert_eq!(env.kem_ciphertext.len(), alg.ciphertext_len());
                assert_eq!(env.ciphertext.len(), plaintext.len() + TAG_LEN);
                assert_eq!(*open(&kp, &env, b"entry-42").unwrap(), plaintext);
                let bytes = env.to_bytes().unwrap();
                assert_eq!(bytes.len(), HEADER_LEN + alg.ciphertext_len() + NONCE_LEN + 4 + plaintext.len() + TAG_LEN);
                assert_eq!(&bytes[..6], &[b'Q', b'D', b'V', b'E', 1, algorithm_code(alg).unwrap()]);
                let parsed = Envelope::from_bytes(&bytes).unwrap();
                assert_eq!(parsed, env);
                assert_eq!(*open(&kp, &parsed, b"entry-42").unwrap(), plaintext);
            }
        }
    }

    /// Recomputes the documented construction step by step from its primitives.
    #[test]
    fn the_construction_is_as_documented() {
        let kp = recipient(KemAlgorithm::MlKem1024, 3);
        let r = randomness(9);
        let env = seal(KemAlgorithm::MlKem1024, kp.encapsulation_key(), b"secret", b"aad", &r).unwrap();

        let (c, ss) = kem::encapsulate(KemAlgorithm::MlKem1024, kp.encapsulation_key(), &r.m).unwrap();
        assert_eq!(env.kem_ciphertext, c);
        let mut info = b"qudag-vault/v1\0ml-kem-1024\0".to_vec();
        info.extend_from_slice(&Sha256::digest(kp.encapsulation_key()));
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&Sha256::digest(&c)), ss.as_slice()).expand(&info, &mut key).unwrap();
        let expected = ChaCha20Poly1305::new(&Key::from(key))
            .encrypt(&Nonce::from(r.nonce), Payload { msg: b"secret", aad: b"aad" })
            .unwrap();
        assert_eq!(env.ciphertext, expected);
        assert_eq!(env.nonce, r.nonce);
    }

    #[test]
    fn sealing_is_deterministic_in_its_randomness() {
        let kp = recipient(KemAlgorithm::MlKem768, 2);
        let a = seal(KemAlgorithm::MlKem768, kp.encapsulation_key(), b"p", b"", &randomness(1)).unwrap();
        let b = seal(KemAlgorithm::MlKem768, kp.encapsulation_key(), b"p", b"", &randomness(1)).unwrap();
        let c = seal(KemAlgorithm::MlKem768, kp.encapsulation_key(), b"p", b"", &randomness(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.kem_ciphertext, c.kem_ciphertext);
        assert_ne!(a.ciphertext, c.ciphertext);
    }

    #[test]
    fn a_flipped_bit_in_any_field_fails_to_open() {
        let (kp, env) = sealed(KemAlgorithm::MlKem768, b"the vault entry");
        let positions = |len: usize| [0, 1, len / 2, len - 1];
        for i in positions(env.kem_ciphertext.len()) {
            let mut bad = env.clone();
            bad.kem_ciphertext[i] ^= 0x40;
            assert_eq!(open(&kp, &bad, b"entry-42").unwrap_err(), PqcError::Decryption, "kem byte {i}");
        }
        for i in 0..NONCE_LEN {
            let mut bad = env.clone();
            bad.nonce[i] ^= 0x01;
            assert_eq!(open(&kp, &bad, b"entry-42").unwrap_err(), PqcError::Decryption, "nonce byte {i}");
        }
        for i in 0..env.ciphertext.len() {
            let mut bad = env.clone();
            bad.ciphertext[i] ^= 0x80;
            assert_eq!(open(&kp, &bad, b"entry-42").unwrap_err(), PqcError::Decryption, "ciphertext byte {i}");
        }
        let mut bad = env.clone();
        bad.algorithm = KemAlgorithm::MlKem1024;
        assert!(open(&kp, &bad, b"entry-42").is_err());
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_bytes_is_an_error() {
        let (kp, env) = sealed(KemAlgorithm::MlKem768, b"0123456789abcdef");
        let bytes = env.to_bytes().unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << (i % 8);
            match Envelope::from_bytes(&bad) {
                Err(PqcError::MalformedEnvelope(_)) => {}
                Err(other) => panic!("byte {i}: unexpected {other:?}"),
                Ok(parsed) => assert!(open(&kp, &parsed, b"entry-42").is_err(), "byte {i} opened"),
            }
        }
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let (kp, env) = sealed(KemAlgorithm::MlKem1024, b"data");
        assert_eq!(open(&kp, &env, b"entry-43").unwrap_err(), PqcError::Decryption);
        assert_eq!(open(&kp, &env, b"").unwrap_err(), PqcError::Decryption);
        let other = recipient(KemAlgorithm::MlKem1024, 2);
        assert_eq!(open(&other, &env, b"entry-42").unwrap_err(), PqcError::Decryption);
        let other_set = recipient(KemAlgorithm::MlKem768, 1);
        assert_eq!(open(&other_set, &env, b"entry-42").unwrap_err(), PqcError::Decryption);
    }

    #[test]
    fn truncated_or_extended_bytes_are_malformed() {
        let (_, env) = sealed(KemAlgorithm::MlKem768, b"abc");
        let bytes = env.to_bytes().unwrap();
        for len in 0..bytes.len() {
            assert!(
                matches!(Envelope::from_bytes(&bytes[..len]), Err(PqcError::MalformedEnvelope(_))),
                "truncated to {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let err = Envelope::from_bytes(&longer).unwrap_err();
        assert_eq!(err, PqcError::MalformedEnvelope("1 unexpected bytes after the ciphertext".into()));
    }

    #[test]
    fn malformed_headers_are_named() {
        let (_, env) = sealed(KemAlgorithm::MlKem768, b"abc");
        let bytes = env.to_bytes().unwrap();
        let with = |i: usize, v: u8| {
            let mut b = bytes.clone();
            b[i] = v;
            Envelope::from_bytes(&b).unwrap_err().to_string()
        };
        assert!(with(0, b'X').contains("bad magic"));
        assert!(with(4, 2).contains("unknown format version 2"));
        assert!(with(5, 0x01).contains("unknown algorithm code 1"));
        // A 1024 code makes the fields longer than the bytes.
        assert!(with(5, 0x03).contains("truncated"));
        // Lengths below the tag are refused.
        let len_at = HEADER_LEN + KemAlgorithm::MlKem768.ciphertext_len() + NONCE_LEN;
        let mut short = bytes[..len_at].to_vec();
        short.extend_from_slice(&15u32.to_be_bytes());
        short.extend_from_slice(&[0; 15]);
        assert!(Envelope::from_bytes(&short).unwrap_err().to_string().contains("shorter than its 16-byte tag"));
    }

    #[test]
    fn refuses_what_could_never_have_been_sealed() {
        let kp512 = recipient(KemAlgorithm::MlKem512, 1);
        let err = seal(KemAlgorithm::MlKem512, kp512.encapsulation_key(), b"", b"", &randomness(1)).unwrap_err();
        assert_eq!(err, PqcError::UnsupportedAlgorithm { algorithm: "ml-kem-512", purpose: "the vault envelope" });
        let kp = recipient(KemAlgorithm::MlKem768, 1);
        assert!(matches!(
            seal(KemAlgorithm::MlKem768, &kp.encapsulation_key()[1..], b"", b"", &randomness(1)),
            Err(PqcError::BadKeyLength { expected: 1184, got: 1183, .. })
        ));
        let (_, env) = sealed(KemAlgorithm::MlKem768, b"abc");
        let mut short = env.clone();
        short.kem_ciphertext.pop();
        assert!(matches!(short.to_bytes(), Err(PqcError::MalformedEnvelope(_))));
        assert!(matches!(open(&kp, &short, b"entry-42"), Err(PqcError::MalformedEnvelope(_))));
        let mut as512 = env;
        as512.algorithm = KemAlgorithm::MlKem512;
        assert!(matches!(as512.to_bytes(), Err(PqcError::UnsupportedAlgorithm { .. })));
        assert!(matches!(open(&kp512, &as512, b""), Err(PqcError::UnsupportedAlgorithm { .. })));
    }

    #[test]
    fn debug_of_randomness_hides_m() {
        let shown = format!("{:?}", randomness(0xEE));
        assert!(!shown.contains("238") && !shown.to_lowercase().contains("eeee"), "{shown}");
    }

    proptest! {
        #[test]
        fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Envelope::from_bytes(&bytes);
        }

        #[test]
        fn from_bytes_never_panics_near_valid_headers(
            code in 0u8..5,
            len in any::<u32>(),
            body in proptest::collection::vec(any::<u8>(), 0..1700),
        ) {
            let mut bytes = b"QDVE\x01".to_vec();
            bytes.push(code);
            bytes.extend_from_slice(&body);
            let _ = Envelope::from_bytes(&bytes);
            let at = HEADER_LEN + 1088 + NONCE_LEN;
            if bytes.len() >= at + 4 {
                bytes[at..at + 4].copy_from_slice(&len.to_be_bytes());
                if let Ok(env) = Envelope::from_bytes(&bytes) {
                    prop_assert_eq!(env.to_bytes().unwrap(), bytes);
                }
            }
        }
    }
}
