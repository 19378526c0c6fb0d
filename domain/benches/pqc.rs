//! Post-quantum throughput: ML-KEM key generation, encapsulation and decapsulation at
//! 512/768/1024; ML-DSA key generation, signing (hedged, 64-byte message, 8-byte context) and
//! verification at 44/65/87; and the vault envelope's seal and open of 1 KiB.
//!
//! `cargo bench -p qudag-domain --bench pqc`
//!
//! Prints one row per operation: the iterations run, the time taken, microseconds per operation
//! and operations per second, single-threaded. Inputs (seeds, `m`, `rnd`, nonces) vary per
//! iteration from a fixed generator, so every run measures the same work. `PQC_BENCH_ITERS`
//! sets the iterations per row (default 1000, a few seconds in all; signing, whose cost varies
//! with rejection sampling, averages over them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use qudag_domain::pqc::dsa::{self, DsaAlgorithm, DsaKeyPair};
use qudag_domain::pqc::envelope::{self, SealRandomness};
use qudag_domain::pqc::kem::{self, KemAlgorithm, KemKeyPair};

mod common;
use common::Rng;

fn row(name: &str, iterations: usize, elapsed: Duration) {
    let per = elapsed.as_secs_f64() / iterations as f64;
    println!(
        "{name:<32} {iterations:>7} {:>10.1} {:>12.1} {:>12.0}",
        elapsed.as_secs_f64() * 1e3,
        per * 1e6,
        1.0 / per
    );
}

/// Runs `op` `n` times with a fresh input from `input` each time (input generation untimed).
fn measure<I, O>(n: usize, mut input: impl FnMut() -> I, mut op: impl FnMut(I) -> O) -> Duration {
    let inputs: Vec<I> = (0..n).map(|_| input()).collect();
    let started = Instant::now();
    for i in inputs {
        black_box(op(i));
    }
    started.elapsed()
}

fn main() {
    let n: usize = std::env::var("PQC_BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000).max(1);
    let mut rng = Rng(0x5eed);
    println!("{:<32} {:>7} {:>10} {:>12} {:>12}", "operation", "iters", "total ms", "µs/op", "ops/s");

    for alg in KemAlgorithm::ALL {
        let elapsed = measure(n, || rng.bytes::<64>(), |seed| KemKeyPair::from_seed(alg, &seed));
        row(&format!("{alg} keygen"), n, elapsed);

        let kp = KemKeyPair::from_seed(alg, &rng.bytes::<64>());
        let ek = kp.encapsulation_key().to_vec();
        let elapsed = measure(n, || rng.bytes::<32>(), |m| kem::encapsulate(alg, &ek, &m).unwrap());
        row(&format!("{alg} encapsulate"), n, elapsed);

        let ciphertexts: Vec<Vec<u8>> =
            (0..n).map(|_| kem::encapsulate(alg, &ek, &rng.bytes::<32>()).unwrap().0).collect();
        let mut next = ciphertexts.iter();
        let elapsed = measure(n, || next.next().unwrap(), |ct| kp.decapsulate(ct).unwrap());
        row(&format!("{alg} decapsulate"), n, elapsed);
    }

    let message = [0x4D; 64];
    let context = b"qudag/v1";
    for alg in DsaAlgorithm::ALL {
        let elapsed = measure(n, || rng.bytes::<32>(), |seed| DsaKeyPair::from_seed(alg, &seed));
        row(&format!("{alg} keygen"), n, elapsed);

        let kp = DsaKeyPair::from_seed(alg, &rng.bytes::<32>());
        let elapsed = measure(n, || rng.bytes::<32>(), |rnd| kp.sign(&message, context, &rnd).unwrap());
        row(&format!("{alg} sign"), n, elapsed);

        let signatures: Vec<Vec<u8>> =
            (0..n).map(|_| kp.sign(&message, context, &rng.bytes::<32>()).unwrap()).collect();
        let mut next = signatures.iter();
        let elapsed = measure(
            n,
            || next.next().unwrap(),
            |sig| dsa::verify(alg, kp.verifying_key(), &message, context, sig).unwrap(),
        );
        row(&format!("{alg} verify"), n, elapsed);
    }

    let plaintext = [0x5A; 1024];
    for alg in [KemAlgorithm::MlKem768, KemAlgorithm::MlKem1024] {
        let kp = KemKeyPair::from_seed(alg, &rng.bytes::<64>());
        let ek = kp.encapsulation_key().to_vec();
        let elapsed = measure(
            n,
            || SealRandomness { m: rng.bytes(), nonce: rng.bytes() },
            |r| envelope::seal(alg, &ek, &plaintext, b"entry", &r).unwrap(),
        );
        row(&format!("envelope {alg} seal 1KiB"), n, elapsed);

        let sealed: Vec<_> = (0..n)
            .map(|_| {
                let r = SealRandomness { m: rng.bytes(), nonce: rng.bytes() };
                envelope::seal(alg, &ek, &plaintext, b"entry", &r).unwrap()
            })
            .collect();
        let mut next = sealed.iter();
        let elapsed = measure(n, || next.next().unwrap(), |env| envelope::open(&kp, env, b"entry").unwrap());
        row(&format!("envelope {alg} open 1KiB"), n, elapsed);
    }
}
