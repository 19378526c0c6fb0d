//! The vault envelope: its binary format (parsed, re-encoded) and opening it.
//!
//! Input: bytes starting with the magic `QDVE` are an envelope as stored: it is parsed,
//! must re-encode to the same bytes, and is opened with the vault's key pair. Any other
//! input `[alg, pos_hi, pos_lo, mask, plaintext…]` is sealed, opened back, then altered at
//! one byte (`mask` XORed at `pos`), after which it must no longer open.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qudag_domain::pqc::envelope::{self, MAGIC};
use qudag_domain::pqc::{Envelope, KEM_SEED_LEN, KemAlgorithm, KemKeyPair, SealRandomness};

const AAD: &[u8] = b"vault-entry";

fn keys() -> &'static [KemKeyPair; 2] {
    static KEYS: OnceLock<[KemKeyPair; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            KemKeyPair::from_seed(KemAlgorithm::MlKem768, &[7; KEM_SEED_LEN]),
            KemKeyPair::from_seed(KemAlgorithm::MlKem1024, &[9; KEM_SEED_LEN]),
        ]
    })
}

fn key_for(algorithm: KemAlgorithm) -> &'static KemKeyPair {
    let [k768, k1024] = keys();
    if algorithm == KemAlgorithm::MlKem1024 { k1024 } else { k768 }
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(&MAGIC) {
        let Ok(parsed) = Envelope::from_bytes(data) else { return };
        assert_eq!(parsed.to_bytes().ok().as_deref(), Some(data), "an envelope re-encodes to its bytes");
        let _ = envelope::open(key_for(parsed.algorithm), &parsed, AAD);
        return;
    }
    let [alg, hi, lo, mask, plaintext @ ..] = data else { return };
    let algorithm = if alg % 2 == 0 { KemAlgorithm::MlKem768 } else { KemAlgorithm::MlKem1024 };
    let key = key_for(algorithm);
    let randomness = SealRandomness { m: [*alg; 32], nonce: [*mask; 12] };
    let sealed =
        envelope::seal(algorithm, key.encapsulation_key(), plaintext, AAD, &randomness).expect("sealing works");
    let mut bytes = sealed.to_bytes().expect("a sealed envelope encodes");
    let reparsed = Envelope::from_bytes(&bytes).expect("an encoded envelope parses");
    assert_eq!(reparsed, sealed);
    let opened = envelope::open(key, &reparsed, AAD).expect("a sealed envelope opens");
    assert_eq!(opened.as_slice(), plaintext);
    if *mask != 0 {
        let at = usize::from(u16::from_be_bytes([*hi, *lo])) % bytes.len();
        bytes[at] ^= mask;
        if let Ok(altered) = Envelope::from_bytes(&bytes) {
            assert!(envelope::open(key_for(altered.algorithm), &altered, AAD).is_err(), "an altered envelope opened");
        }
    }
});
