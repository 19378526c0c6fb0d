//! The one error of circuit validation: which argument, as the client wrote it, and why.
//!
//! Kept apart from the rules that raise it because every step raises it (the wire shape, the
//! [`crate::quantum::Limits`], the simulator's own checks), and a client reads every refusal
//! the same way: `path: reason`.

use serde::Serialize;

/// A refused circuit: which argument, as the client wrote it, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct CircuitError {
    /// The argument path, e.g. `circuit.gates[3].target`.
    pub path: String,
    /// What is wrong with it, e.g. `qubit 5 is out of range: the circuit has 4 qubits`.
    pub reason: String,
}

impl CircuitError {
    /// An error at `path` for `reason`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { path: path.into(), reason: reason.into() }
    }

    /// The argument path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
