//! NIST ACVP known-answer tests for `qudag_domain::pqc`: ML-KEM (FIPS 203) key generation,
//! encapsulation and decapsulation (implicit rejection included), ML-DSA (FIPS 204) key
//! generation, signature generation (deterministic and hedged) and verification (passing and
//! failing). The vectors are a subset of the ACVP-Server sample files; `tests/data/acvp/README.md`
//! names the source and the cases kept. Every case is asserted exactly and reported by `tcId`,
//! and each test checks that enough cases ran for every parameter set, so an emptied or
//! mis-parsed file fails instead of passing vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use qudag_domain::pqc::dsa::{self, DsaAlgorithm, DsaKeyPair, DsaSigningKey};
use qudag_domain::pqc::kem::{self, KemAlgorithm, KemKeyPair};
use qudag_domain::pqc::{PqcError, fingerprint};
use serde::Deserialize;

fn load<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = format!("{}/tests/data/acvp/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hex(field: &str, tc_id: u32, value: &str) -> Vec<u8> {
    hex::decode(value).unwrap_or_else(|e| panic!("tcId {tc_id}: {field} is not hex: {e}"))
}

fn kem_alg(name: &str) -> KemAlgorithm {
    KemAlgorithm::parse(&name.to_lowercase()).unwrap_or_else(|| panic!("unknown parameter set {name}"))
}

fn dsa_alg(name: &str) -> DsaAlgorithm {
    DsaAlgorithm::parse(&name.to_lowercase()).unwrap_or_else(|| panic!("unknown parameter set {name}"))
}

/// Counts cases run per (parameter set, kind) and checks minimums at the end.
#[derive(Default)]
struct Tally(BTreeMap<(String, &'static str), usize>);

impl Tally {
    fn add(&mut self, parameter_set: impl ToString, kind: &'static str) {
        *self.0.entry((parameter_set.to_string(), kind)).or_default() += 1;
    }

    fn require(&self, parameter_sets: &[String], kind: &'static str, at_least: usize) {
        for set in parameter_sets {
            let ran = self.0.get(&(set.clone(), kind)).copied().unwrap_or(0);
            assert!(ran >= at_least, "{set}: only {ran} {kind} cases ran, expected at least {at_least}");
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VectorFile<G> {
    algorithm: String,
    mode: String,
    revision: String,
    test_groups: Vec<G>,
}

// ---- ML-KEM ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KemKeyGenGroup {
    parameter_set: String,
    tests: Vec<KemKeyGenCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KemKeyGenCase {
    tc_id: u32,
    d: String,
    z: String,
    ek: String,
    dk: String,
}

#[test]
fn ml_kem_key_generation() {
    let file: VectorFile<KemKeyGenGroup> = load("ML-KEM-keyGen.json");
    assert_eq!((file.algorithm.as_str(), file.mode.as_str(), file.revision.as_str()), ("ML-KEM", "keyGen", "FIPS203"));
    let mut tally = Tally::default();
    for group in &file.test_groups {
        let alg = kem_alg(&group.parameter_set);
        for case in &group.tests {
            let id = case.tc_id;
            let mut seed = [0u8; 64];
            seed[..32].copy_from_slice(&hex("d", id, &case.d));
            seed[32..].copy_from_slice(&hex("z", id, &case.z));
            let kp = KemKeyPair::from_seed(alg, &seed);
            assert_eq!(hex::encode_upper(kp.encapsulation_key()), case.ek, "tcId {id}: ek");
            assert_eq!(hex::encode_upper(kp.decapsulation_key().as_slice()), case.dk, "tcId {id}: dk");
            // The generated pair works end to end.
            let (ct, sent) = kem::encapsulate(alg, kp.encapsulation_key(), &[id as u8; 32]).unwrap();
            assert_eq!(*kp.decapsulate(&ct).unwrap(), *sent, "tcId {id}: round trip");
            tally.add(alg, "keyGen");
        }
    }
    let sets: Vec<String> = KemAlgorithm::ALL.iter().map(|a| a.to_string()).collect();
    tally.require(&sets, "keyGen", 2);
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KemEncapDecapGroup {
    tg_id: u32,
    parameter_set: String,
    function: String,
    /// Decapsulation groups give the key pair once for the group.
    ek: Option<String>,
    dk: Option<String>,
    tests: Vec<KemEncapDecapCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KemEncapDecapCase {
    tc_id: u32,
    ek: Option<String>,
    m: Option<String>,
    c: String,
    k: String,
    reason: String,
}

#[test]
fn ml_kem_encapsulation_and_decapsulation() {
    let file: VectorFile<KemEncapDecapGroup> = load("ML-KEM-encapDecap.json");
    assert_eq!((file.algorithm.as_str(), file.mode.as_str()), ("ML-KEM", "encapDecap"));
    let mut tally = Tally::default();
    for group in &file.test_groups {
        let alg = kem_alg(&group.parameter_set);
        match group.function.as_str() {
            "encapsulation" => {
                for case in &group.tests {
                    let id = case.tc_id;
                    let ek = hex("ek", id, case.ek.as_deref().expect("encapsulation cases carry ek"));
                    let m: [u8; 32] = hex("m", id, case.m.as_deref().expect("encapsulation cases carry m"))
                        .try_into()
                        .unwrap_or_else(|_| panic!("tcId {id}: m is not 32 bytes"));
                    let (ct, k) = kem::encapsulate(alg, &ek, &m).unwrap_or_else(|e| panic!("tcId {id}: {e}"));
                    assert_eq!(hex::encode_upper(&ct), case.c, "tcId {id}: c");
                    assert_eq!(hex::encode_upper(k.as_slice()), case.k, "tcId {id}: k");
                    tally.add(alg, "encapsulation");
                }
            }
            "decapsulation" => {
                let tg = group.tg_id;
                let dk = hex("dk", tg, group.dk.as_deref().expect("decapsulation groups carry dk"));
                let ek = hex("ek", tg, group.ek.as_deref().expect("decapsulation groups carry ek"));
                // The group's dk embeds its ek (dk = dk_pke ‖ ek ‖ H(ek) ‖ z).
                let ek_at = alg.encapsulation_key_len() - 32; // = 384k, the length of dk_pke
                assert_eq!(&dk[ek_at..ek_at + ek.len()], ek.as_slice(), "tgId {tg}: ek inside dk");
                for case in &group.tests {
                    let id = case.tc_id;
                    let c = hex("c", id, &case.c);
                    let k = kem::decapsulate_with_key(alg, &dk, &c).unwrap_or_else(|e| panic!("tcId {id}: {e}"));
                    assert_eq!(hex::encode_upper(k.as_slice()), case.k, "tcId {id} ({}): k", case.reason);
                    match case.reason.as_str() {
                        "no modification" => tally.add(alg, "decapsulation (valid)"),
                        "modify ciphertext" => tally.add(alg, "decapsulation (implicit rejection)"),
                        other => panic!("tcId {id}: unknown reason {other}"),
                    }
                }
            }
            other => panic!("tgId {}: unknown function {other}", group.tg_id),
        }
    }
    let sets: Vec<String> = KemAlgorithm::ALL.iter().map(|a| a.to_string()).collect();
    tally.require(&sets, "encapsulation", 2);
    tally.require(&sets, "decapsulation (valid)", 1);
    tally.require(&sets, "decapsulation (implicit rejection)", 2);
}

// ---- ML-DSA ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaKeyGenGroup {
    parameter_set: String,
    tests: Vec<DsaKeyGenCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaKeyGenCase {
    tc_id: u32,
    seed: String,
    pk: String,
    sk: String,
}

#[test]
fn ml_dsa_key_generation() {
    let file: VectorFile<DsaKeyGenGroup> = load("ML-DSA-keyGen.json");
    assert_eq!((file.algorithm.as_str(), file.mode.as_str(), file.revision.as_str()), ("ML-DSA", "keyGen", "FIPS204"));
    let mut tally = Tally::default();
    for group in &file.test_groups {
        let alg = dsa_alg(&group.parameter_set);
        for case in &group.tests {
            let id = case.tc_id;
            let seed: [u8; 32] =
                hex("seed", id, &case.seed).try_into().unwrap_or_else(|_| panic!("tcId {id}: seed is not 32 bytes"));
            let kp = DsaKeyPair::from_seed(alg, &seed);
            assert_eq!(hex::encode_upper(kp.verifying_key()), case.pk, "tcId {id}: pk");
            assert_eq!(hex::encode_upper(kp.signing_key_encoded().as_slice()), case.sk, "tcId {id}: sk");
            assert_eq!(fingerprint(kp.verifying_key()), fingerprint(&hex("pk", id, &case.pk)));
            tally.add(alg, "keyGen");
        }
    }
    let sets: Vec<String> = DsaAlgorithm::ALL.iter().map(|a| a.to_string()).collect();
    tally.require(&sets, "keyGen", 1);
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaSigGenGroup {
    parameter_set: String,
    deterministic: bool,
    tests: Vec<DsaSigGenCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaSigGenCase {
    tc_id: u32,
    sk: String,
    message: String,
    rnd: Option<String>,
    signature: String,
}

/// These vectors (ACVP-Server at the commit in the README) exercise `ML-DSA.Sign_internal` on
/// the message as given, with the expanded private key; they are run through the expanded-key
/// import (with its checks) and [`dsa::internal::sign`]. The external interface is checked
/// against the internal one in the unit tests (`the_external_interface_prefixes_the_context`)
/// and below, by verifying each signature with [`dsa::internal::verify`].
#[test]
fn ml_dsa_signature_generation() {
    let file: VectorFile<DsaSigGenGroup> = load("ML-DSA-sigGen.json");
    assert_eq!((file.algorithm.as_str(), file.mode.as_str()), ("ML-DSA", "sigGen"));
    let mut tally = Tally::default();
    for group in &file.test_groups {
        let alg = dsa_alg(&group.parameter_set);
        for case in &group.tests {
            let id = case.tc_id;
            let sk = hex("sk", id, &case.sk);
            let key = DsaSigningKey::from_bytes(alg, &sk).unwrap_or_else(|e| panic!("tcId {id}: {e}"));
            assert_eq!(*key.signing_key_encoded(), sk, "tcId {id}: sk re-encodes");
            let rnd: [u8; 32] = match (&case.rnd, group.deterministic) {
                (None, true) => [0; 32],
                (Some(rnd), false) => {
                    hex("rnd", id, rnd).try_into().unwrap_or_else(|_| panic!("tcId {id}: rnd is not 32 bytes"))
                }
                _ => panic!("tcId {id}: rnd present iff the group is hedged"),
            };
            let message = hex("message", id, &case.message);
            let signature = dsa::internal::sign(&key, &message, &rnd);
            assert_eq!(hex::encode_upper(&signature), case.signature, "tcId {id}: signature");
            dsa::internal::verify(alg, key.verifying_key(), &message, &signature)
                .unwrap_or_else(|e| panic!("tcId {id}: own signature: {e}"));
            tally.add(alg, if group.deterministic { "sigGen (deterministic)" } else { "sigGen (hedged)" });
        }
    }
    let sets: Vec<String> = DsaAlgorithm::ALL.iter().map(|a| a.to_string()).collect();
    tally.require(&sets, "sigGen (deterministic)", 1);
    tally.require(&sets, "sigGen (hedged)", 1);
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaSigVerGroup {
    parameter_set: String,
    pk: String,
    tests: Vec<DsaSigVerCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsaSigVerCase {
    tc_id: u32,
    test_passed: bool,
    message: String,
    signature: String,
    reason: String,
}

#[test]
fn ml_dsa_signature_verification() {
    let file: VectorFile<DsaSigVerGroup> = load("ML-DSA-sigVer.json");
    assert_eq!((file.algorithm.as_str(), file.mode.as_str()), ("ML-DSA", "sigVer"));
    let mut tally = Tally::default();
    for group in &file.test_groups {
        let alg = dsa_alg(&group.parameter_set);
        let pk = hex("pk", 0, &group.pk);
        for case in &group.tests {
            let id = case.tc_id;
            let result = dsa::internal::verify(
                alg,
                &pk,
                &hex("message", id, &case.message),
                &hex("signature", id, &case.signature),
            );
            if case.test_passed {
                assert_eq!(result, Ok(()), "tcId {id} ({}) must verify", case.reason);
                tally.add(alg, "sigVer (passing)");
            } else {
                // Every failing vector has valid lengths: it must be a bad signature, not a length error.
                assert_eq!(result, Err(PqcError::BadSignature), "tcId {id} ({}) must be refused", case.reason);
                tally.add(alg, "sigVer (failing)");
            }
        }
    }
    let sets: Vec<String> = DsaAlgorithm::ALL.iter().map(|a| a.to_string()).collect();
    tally.require(&sets, "sigVer (passing)", 1);
    tally.require(&sets, "sigVer (failing)", 2);
}
