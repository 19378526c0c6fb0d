//! The gate set: what each gate does ([`GateKind`]), a gate on its qubits ([`Gate`]), and
//! the names the wire shape spells them with.
//!
//! Everything that reasons about gates one at a time lives here, so the simulator, the
//! optimizer and the analysis share one notion of arity, inverse, diagonality and Clifford
//! membership rather than each keeping its own table.

use std::f64::consts::PI;
use std::fmt;

/// The canonical gate type names, in the order error messages list them.
pub const GATE_NAMES: [&str; 14] = ["H", "X", "Y", "Z", "S", "SDG", "T", "TDG", "RX", "RY", "RZ", "CNOT", "CZ", "SWAP"];

/// Angles closer than this (radians) count as equal, e.g. an angle to a multiple of 2π.
pub(crate) const ANGLE_EPSILON: f64 = 1e-12;

/// What a gate does, with its angle for rotations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GateKind {
    /// Hadamard.
    H,
    /// Pauli X (NOT).
    X,
    /// Pauli Y.
    Y,
    /// Pauli Z.
    Z,
    /// Phase, √Z: diag(1, i).
    S,
    /// S†: diag(1, −i).
    Sdg,
    /// π/8 gate, √S: diag(1, e^{iπ/4}).
    T,
    /// T†: diag(1, e^{−iπ/4}).
    Tdg,
    /// Rotation about X by the angle: e^{−iθX/2}.
    Rx(f64),
    /// Rotation about Y by the angle: e^{−iθY/2}.
    Ry(f64),
    /// Rotation about Z by the angle: e^{−iθZ/2} = diag(e^{−iθ/2}, e^{iθ/2}).
    Rz(f64),
    /// Controlled NOT; qubits `[control, target]`.
    Cnot,
    /// Controlled Z (symmetric); qubits `[control, target]`.
    Cz,
    /// Exchange of two qubits.
    Swap,
}

/// The gate types without their angles, for parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GateType {
    H,
    X,
    Y,
    Z,
    S,
    Sdg,
    T,
    Tdg,
    Rx,
    Ry,
    Rz,
    Cnot,
    Cz,
    Swap,
}

impl GateType {
    /// The type named `name`, case-insensitively and with the aliases of the wire shape.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name.trim().to_uppercase().as_str() {
            "H" => Self::H,
            "X" => Self::X,
            "Y" => Self::Y,
            "Z" => Self::Z,
            "S" => Self::S,
            "SDG" | "SDAG" | "S†" => Self::Sdg,
            "T" => Self::T,
            "TDG" | "TDAG" | "T†" => Self::Tdg,
            "RX" => Self::Rx,
            "RY" => Self::Ry,
            "RZ" => Self::Rz,
            "CNOT" | "CX" => Self::Cnot,
            "CZ" => Self::Cz,
            "SWAP" => Self::Swap,
            _ => return None,
        })
    }

    /// The gate of this type, with `angle` for the rotations (ignored by the others).
    pub(crate) fn kind(self, angle: f64) -> GateKind {
        match self {
            Self::H => GateKind::H,
            Self::X => GateKind::X,
            Self::Y => GateKind::Y,
            Self::Z => GateKind::Z,
            Self::S => GateKind::S,
            Self::Sdg => GateKind::Sdg,
            Self::T => GateKind::T,
            Self::Tdg => GateKind::Tdg,
            Self::Rx => GateKind::Rx(angle),
            Self::Ry => GateKind::Ry(angle),
            Self::Rz => GateKind::Rz(angle),
            Self::Cnot => GateKind::Cnot,
            Self::Cz => GateKind::Cz,
            Self::Swap => GateKind::Swap,
        }
    }
}

impl GateKind {
    /// The canonical type name, as in [`GATE_NAMES`].
    pub fn name(self) -> &'static str {
        match self {
            Self::H => "H",
            Self::X => "X",
            Self::Y => "Y",
            Self::Z => "Z",
            Self::S => "S",
            Self::Sdg => "SDG",
            Self::T => "T",
            Self::Tdg => "TDG",
            Self::Rx(_) => "RX",
            Self::Ry(_) => "RY",
            Self::Rz(_) => "RZ",
            Self::Cnot => "CNOT",
            Self::Cz => "CZ",
            Self::Swap => "SWAP",
        }
    }

    /// How many qubits the gate acts on: 1 or 2.
    pub fn arity(self) -> usize {
        match self {
            Self::Cnot | Self::Cz | Self::Swap => 2,
            _ => 1,
        }
    }

    /// The rotation angle of `RX`/`RY`/`RZ`.
    pub fn angle(self) -> Option<f64> {
        match self {
            Self::Rx(a) | Self::Ry(a) | Self::Rz(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this is one of the rotations `RX`/`RY`/`RZ`.
    pub fn is_rotation(self) -> bool {
        self.angle().is_some()
    }

    /// Whether the gate's matrix is diagonal in the computational basis (Z, S, S†, T, T†,
    /// RZ, CZ): such gates all commute with each other.
    pub fn is_diagonal(self) -> bool {
        matches!(self, Self::Z | Self::S | Self::Sdg | Self::T | Self::Tdg | Self::Rz(_) | Self::Cz)
    }

    /// Whether the gate is a Clifford gate: everything but T, T† and rotations by angles
    /// that are not multiples of π/2.
    pub fn is_clifford(self) -> bool {
        match self {
            Self::T | Self::Tdg => false,
            Self::Rx(a) | Self::Ry(a) | Self::Rz(a) => {
                let quarter = (a / (PI / 2.0)).round();
                (a - quarter * (PI / 2.0)).abs() < ANGLE_EPSILON
            }
            _ => true,
        }
    }

    /// The inverse gate (exact, not only up to global phase).
    pub fn inverse(self) -> Self {
        match self {
            Self::S => Self::Sdg,
            Self::Sdg => Self::S,
            Self::T => Self::Tdg,
            Self::Tdg => Self::T,
            Self::Rx(a) => Self::Rx(-a),
            Self::Ry(a) => Self::Ry(-a),
            Self::Rz(a) => Self::Rz(-a),
            other => other,
        }
    }
}

impl fmt::Display for GateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.angle() {
            Some(a) => write!(f, "{}({a})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// One gate on its qubits. For `CNOT` and `CZ` the qubits are `[control, target]`.
///
/// The constructors do not check the qubits: [`crate::quantum::Circuit::new`] and
/// [`crate::quantum::StateVector::apply`] do (in range, and different for two-qubit gates).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gate {
    kind: GateKind,
    /// For a single-qubit gate both entries are its qubit.
    qubits: [usize; 2],
}

impl Gate {
    /// `kind` on `qubits`; `None` when the number of qubits is not the kind's arity.
    pub fn new(kind: GateKind, qubits: &[usize]) -> Option<Self> {
        match (kind.arity(), qubits) {
            (1, &[q]) => Some(Self { kind, qubits: [q, q] }),
            (2, &[a, b]) => Some(Self { kind, qubits: [a, b] }),
            _ => None,
        }
    }

    /// `kind`, of arity 1, on `q`; for validation, which has checked the arity.
    pub(crate) fn one(kind: GateKind, q: usize) -> Self {
        Self { kind, qubits: [q, q] }
    }

    /// `kind`, of arity 2, on `a` and `b`; for validation, which has checked the arity.
    pub(crate) fn two(kind: GateKind, a: usize, b: usize) -> Self {
        Self { kind, qubits: [a, b] }
    }

    /// Hadamard on `q`.
    pub fn h(q: usize) -> Self {
        Self::one(GateKind::H, q)
    }

    /// Pauli X on `q`.
    pub fn x(q: usize) -> Self {
        Self::one(GateKind::X, q)
    }

    /// Pauli Y on `q`.
    pub fn y(q: usize) -> Self {
        Self::one(GateKind::Y, q)
    }

    /// Pauli Z on `q`.
    pub fn z(q: usize) -> Self {
        Self::one(GateKind::Z, q)
    }

    /// S on `q`.
    pub fn s(q: usize) -> Self {
        Self::one(GateKind::S, q)
    }

    /// S† on `q`.
    pub fn sdg(q: usize) -> Self {
        Self::one(GateKind::Sdg, q)
    }

    /// T on `q`.
    pub fn t(q: usize) -> Self {
        Self::one(GateKind::T, q)
    }

    /// T† on `q`.
    pub fn tdg(q: usize) -> Self {
        Self::one(GateKind::Tdg, q)
    }

    /// RX(`angle`) on `q`.
    pub fn rx(q: usize, angle: f64) -> Self {
        Self::one(GateKind::Rx(angle), q)
    }

    /// RY(`angle`) on `q`.
    pub fn ry(q: usize, angle: f64) -> Self {
        Self::one(GateKind::Ry(angle), q)
    }

    /// RZ(`angle`) on `q`.
    pub fn rz(q: usize, angle: f64) -> Self {
        Self::one(GateKind::Rz(angle), q)
    }

    /// CNOT with `control` and `target`.
    pub fn cnot(control: usize, target: usize) -> Self {
        Self { kind: GateKind::Cnot, qubits: [control, target] }
    }

    /// CZ on `a` and `b` (symmetric; `a` is written as the control).
    pub fn cz(a: usize, b: usize) -> Self {
        Self { kind: GateKind::Cz, qubits: [a, b] }
    }

    /// SWAP of `a` and `b`.
    pub fn swap(a: usize, b: usize) -> Self {
        Self { kind: GateKind::Swap, qubits: [a, b] }
    }

    /// What the gate does.
    pub fn kind(&self) -> GateKind {
        self.kind
    }

    /// The qubits acted on: one, or two (`[control, target]` for CNOT/CZ).
    pub fn qubits(&self) -> &[usize] {
        &self.qubits[..self.kind.arity()]
    }

    /// Whether the gate acts on qubit `q`.
    pub fn acts_on(&self, q: usize) -> bool {
        self.qubits().contains(&q)
    }

    /// The exact inverse gate.
    pub fn inverse(&self) -> Self {
        Self { kind: self.kind.inverse(), qubits: self.qubits }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        for (i, q) in self.qubits().iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "," })?;
            write!(f, "{q}")?;
        }
        Ok(())
    }
}
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gate_kind_properties() {
        assert_eq!(GATE_NAMES.len(), 14);
        for name in GATE_NAMES {
            let ty = GateType::parse(name).unwrap();
            assert_eq!(ty.kind(0.3).name(), name);
            assert_eq!(GateType::parse(&name.to_lowercase()), Some(ty));
        }
        assert!(GateKind::Rz(PI / 2.0).is_clifford());
        assert!(GateKind::Rx(-3.0 * PI / 2.0).is_clifford());
        assert!(!GateKind::Ry(0.1).is_clifford());
        assert!(!GateKind::T.is_clifford());
        assert!(GateKind::Cz.is_diagonal() && GateKind::Rz(0.4).is_diagonal() && !GateKind::Rx(0.0).is_diagonal());
        assert_eq!(Gate::s(1).inverse(), Gate::sdg(1));
        assert_eq!(Gate::rx(0, 0.5).inverse(), Gate::rx(0, -0.5));
        assert_eq!(Gate::cnot(0, 1).inverse(), Gate::cnot(0, 1));
        assert_eq!(Gate::cnot(3, 1).qubits(), &[3, 1]);
        assert_eq!(Gate::h(2).qubits(), &[2]);
        assert_eq!(Gate::rz(2, 0.5).to_string(), "RZ(0.5) 2");
        assert_eq!(Gate::cnot(0, 1).to_string(), "CNOT 0,1");
    }
}
