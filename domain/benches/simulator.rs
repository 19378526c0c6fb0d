//! State-vector simulator throughput: gate applications and amplitude updates per second at
//! 16 and 20 qubits, for random circuits of single-qubit gates, rotations, two-qubit gates,
//! and a mix of all three; plus measurement sampling.
//!
//! `cargo bench -p qudag-domain --bench simulator`
//!
//! Prints one row per register size and gate class: the gates applied, the time taken,
//! gate applications per second, and amplitude updates per second (gates × 2ⁿ, every gate
//! counted as touching the whole state). Then the time to sample a million shots from a
//! 20-qubit state. `SIM_BENCH_GATES` sets the gates per 20-qubit circuit (default 1000;
//! 16-qubit circuits get 16 times as many, the same amplitude work).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use qudag_domain::quantum::{Circuit, Gate, Limits, execute, simulate};

mod common;
use common::Rng;

#[derive(Clone, Copy)]
enum Class {
    Single,
    Rotation,
    TwoQubit,
    Mixed,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Self::Single => "H/X/Y/Z/S/T",
            Self::Rotation => "RX/RY/RZ",
            Self::TwoQubit => "CNOT/CZ/SWAP",
            Self::Mixed => "mixed",
        }
    }

    fn gate(self, rng: &mut Rng, n: usize) -> Gate {
        let q = rng.below(n);
        let other = (q + 1 + rng.below(n - 1)) % n;
        let class = match self {
            Self::Mixed => [Self::Single, Self::Rotation, Self::TwoQubit][rng.below(3)],
            c => c,
        };
        match class {
            Self::Single => [Gate::h, Gate::x, Gate::y, Gate::z, Gate::s, Gate::t][rng.below(6)](q),
            Self::Rotation => [Gate::rx, Gate::ry, Gate::rz][rng.below(3)](q, rng.angle()),
            _ => [Gate::cnot, Gate::cz, Gate::swap][rng.below(3)](q, other),
        }
    }
}

fn circuit(n: usize, gates: usize, class: Class, seed: u64) -> Circuit {
    let mut rng = Rng(seed);
    let gates = (0..gates).map(|_| class.gate(&mut rng, n)).collect();
    Circuit::new(n, gates, vec![], &Limits { max_gates: usize::MAX, ..Limits::default() }).unwrap()
}

fn main() {
    let gates_20: usize = std::env::var("SIM_BENCH_GATES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    println!("{:<7} {:<13} {:>7} {:>9} {:>14} {:>16}", "qubits", "gates", "count", "ms", "gates/s", "amplitudes/s");
    for n in [16usize, 20] {
        let count = gates_20 << (20 - n);
        for class in [Class::Single, Class::Rotation, Class::TwoQubit, Class::Mixed] {
            let c = circuit(n, count, class, n as u64);
            let started = Instant::now();
            let state = simulate(&c);
            let elapsed = started.elapsed();
            assert_eq!(state.gate_applications(), count as u64);
            let rate = count as f64 / elapsed.as_secs_f64();
            println!(
                "{:<7} {:<13} {:>7} {:>9.1} {:>14.0} {:>16.3e}",
                n,
                class.name(),
                count,
                ms(elapsed),
                rate,
                rate * (1u64 << n) as f64
            );
        }
    }
    let c = circuit(20, 40, Class::Mixed, 7);
    let simulated = Instant::now();
    let _ = simulate(&c);
    let simulated = simulated.elapsed();
    let started = Instant::now();
    let run = execute(&c, 1_000_000, 1);
    let total = started.elapsed();
    println!(
        "\nexecute: 20 qubits, {} gates, {} shots: {:.1} ms ({:.1} ms simulating, {} outcomes seen)",
        c.gates().len(),
        run.shots,
        ms(total),
        ms(simulated),
        run.counts.len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
