//! Quantum circuits: the model, a state-vector simulator, an optimizer and analysis.
//!
//! Pure code like the rest of the domain: randomness (measurement sampling, the random
//! states of an equivalence check) comes from ChaCha20 seeded by the caller.
//!
//! Conventions, everywhere in this module:
//!
//! - **Qubit order.** Bit `q` of a basis-state index is qubit `q`: qubit 0 is the least
//!   significant bit, so on three qubits `|6⟩ = |110⟩` has qubits 1 and 2 set (written with
//!   qubit 0 rightmost, as integers are).
//! - **Bitstrings.** Measurement results are keyed differently, left to right in
//!   measurement order: character `i` of a key is the outcome of `measurements[i]`, or of
//!   qubit `i` when the circuit measures every qubit. So `|110⟩` measured fully reads
//!   `"011"`.
//! - **Global phase.** Circuits are compared and optimized up to global phase: `U` and
//!   `e^{iφ}U` give the same measurement statistics, and the wire format cannot observe the
//!   difference. The optimizer may change the global phase (it drops `RZ(2π) = −I`).
//!
//! Parts:
//!
//! - [`gate`]: the gate set, [`GateKind`] and [`Gate`], and the names they are spelled with.
//! - [`wire`]: the wire shape ([`CircuitSpec`]), and how one gate of it is read and written.
//! - [`limits`]: the [`Limits`] a circuit is validated against.
//! - [`error`]: [`CircuitError`], the refusal every check returns.
//! - [`circuit`]: the validated [`Circuit`], the whole-circuit rules that build it, and its
//!   canonical form and digest.
//! - [`simulator`]: [`StateVector`], [`simulate`] and [`execute`] (seeded shots, bounded
//!   results), [`execute_with`] (cancellable).
//! - [`optimizer`]: [`optimize`] at an [`OptimizationLevel`], and [`equivalent`].
//! - [`analysis`]: [`analyze`] and [`depth`].

pub mod analysis;
pub mod circuit;
pub mod error;
pub mod gate;
pub mod limits;
pub mod optimizer;
pub mod simulator;
pub mod wire;

pub use analysis::{Analysis, Connectivity, Estimates, analyze, depth};
pub use circuit::Circuit;
pub use error::CircuitError;
pub use gate::{GATE_NAMES, Gate, GateKind};
pub use limits::Limits;
pub use optimizer::{
    InvalidLevel, MAX_ITERATIONS, OptimizationLevel, OptimizationReport, Optimized, VERIFY_MAX_QUBITS, equivalent,
    optimize,
};
pub use simulator::{
    Cancelled, Complex, Execution, MAX_OUTCOMES, PROBABILITY_CUTOFF, Sampling, StateVector, execute, execute_with,
    simulate,
};
pub use wire::{CircuitSpec, GateSpec, TargetSpec};

/// Strategies shared by the module's property tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod testing {
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4};

    use proptest::prelude::*;

    use super::{Gate, GateKind};

    /// Any gate on a circuit of `qubits` (≥ 2) qubits, with angles that are arbitrary or
    /// multiples of π/2 and π/4 (where rewrites apply).
    pub(crate) fn any_gate(qubits: usize) -> impl Strategy<Value = Gate> {
        let angle = prop_oneof![
            -7.0f64..7.0,
            (-9i32..9).prop_map(|k| f64::from(k) * FRAC_PI_2),
            (-9i32..9).prop_map(|k| f64::from(k) * FRAC_PI_4)
        ];
        let kinds = (0usize..14, angle).prop_map(|(k, a)| match k {
            0 => GateKind::H,
            1 => GateKind::X,
            2 => GateKind::Y,
            3 => GateKind::Z,
            4 => GateKind::S,
            5 => GateKind::Sdg,
            6 => GateKind::T,
            7 => GateKind::Tdg,
            8 => GateKind::Rx(a),
            9 => GateKind::Ry(a),
            10 => GateKind::Rz(a),
            11 => GateKind::Cnot,
            12 => GateKind::Cz,
            _ => GateKind::Swap,
        });
        (kinds, 0..qubits, 1..qubits).prop_map(move |(kind, a, d)| {
            let b = (a + d) % qubits;
            if kind.arity() == 1 { Gate::new(kind, &[a]) } else { Gate::new(kind, &[a, b]) }.unwrap()
        })
    }
}
