//! How large a circuit the server accepts: qubits, gates, shots and state-vector memory.
//!
//! A state vector doubles with every qubit, so the qubit bound alone does not protect the
//! server's memory: [`Limits::check_qubits`] also checks the 16·2ⁿ bytes the simulator would
//! allocate, before anything is allocated.

use serde::{Deserialize, Serialize};

use super::error::CircuitError;

/// Bytes per amplitude of a state vector: one complex number of two `f64`.
pub const AMPLITUDE_BYTES: usize = 16;

/// How large a circuit the server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most qubits in one circuit.
    pub max_qubits: usize,
    /// Most gates in one circuit.
    pub max_gates: usize,
    /// Most measurement shots in one execution.
    pub max_shots: u64,
    /// Most bytes one state vector may take (16·2ⁿ for `n` qubits).
    pub max_state_bytes: usize,
}

impl Default for Limits {
    /// 24 qubits, 10 000 gates, a million shots, 512 MiB of state vector.
    fn default() -> Self {
        Self { max_qubits: 24, max_gates: 10_000, max_shots: 1_000_000, max_state_bytes: 512 << 20 }
    }
}

impl Limits {
    /// Bytes a state vector of `qubits` qubits needs, 16·2ⁿ; `None` when that does not fit
    /// in a `usize`.
    pub fn state_bytes(qubits: usize) -> Option<usize> {
        let shift = u32::try_from(qubits).ok()?;
        1usize.checked_shl(shift)?.checked_mul(AMPLITUDE_BYTES)
    }

    /// Whether a circuit of `qubits` qubits is allowed, and if not why (the reason of a
    /// `circuit.qubits` error).
    ///
    /// # Errors
    /// The reason, when `qubits` is 0, above [`Limits::max_qubits`], or its state vector
    /// needs more than [`Limits::max_state_bytes`].
    pub fn check_qubits(&self, qubits: usize) -> Result<(), String> {
        if qubits == 0 || qubits > self.max_qubits {
            return Err(format!("must be between 1 and {}, got {qubits}", self.max_qubits));
        }
        match Self::state_bytes(qubits) {
            Some(bytes) if bytes <= self.max_state_bytes => Ok(()),
            Some(bytes) => Err(format!(
                "a {qubits}-qubit state vector needs {bytes} bytes, more than the limit of {} bytes",
                self.max_state_bytes
            )),
            None => Err(format!(
                "a {qubits}-qubit state vector needs more than {} bytes, more than the limit of {} bytes",
                usize::MAX,
                self.max_state_bytes
            )),
        }
    }

    /// Whether `shots` measurement shots are allowed.
    ///
    /// # Errors
    /// A [`CircuitError`] at `shots` above [`Limits::max_shots`].
    pub fn check_shots(&self, shots: u64) -> Result<(), CircuitError> {
        if shots > self.max_shots {
            return Err(CircuitError::new("shots", format!("must be at most {}, got {shots}", self.max_shots)));
        }
        Ok(())
    }
}
