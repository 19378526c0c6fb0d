//! The circuit model: the wire shape clients send, and the validated [`Circuit`] every other
//! part of [`crate::quantum`] works on.
//!
//! The wire shape is the one of the original `@qudag/mcp-sse` package, which agents already
//! send:
//!
//! ```json
//! { "qubits": 2,
//!   "gates": [ { "type": "H", "target": 0 },
//!              { "type": "CNOT", "control": 0, "target": 1 },
//!              { "type": "RZ", "target": 1, "params": [1.5708] } ],
//!   "measurements": [0, 1] }
//! ```
//!
//! Rules, all checked by [`CircuitSpec::validate`]:
//!
//! - Gate types are case-insensitive: `H X Y Z S SDG T TDG RX RY RZ CNOT CZ SWAP`, with the
//!   aliases `S†`/`SDAG`, `T†`/`TDAG` and `CX` (for CNOT). `SDG`, `TDG`, `CZ` and `SWAP`
//!   are additions to the original set.
//! - A single-qubit gate takes `target` as a qubit index or a one-element array, no
//!   `control`, and no `params` (an empty array is tolerated), except the rotations `RX RY RZ`,
//!   which take exactly one finite angle in radians: `params: [θ]`.
//! - `CNOT`/`CZ` take `control` and `target` (a number or a one-element array), or, with no
//!   `control`, `target: [control, target]`. The two qubits must differ.
//! - `SWAP` takes `target: [a, b]`, two different qubits.
//! - Qubit indices are non-negative integers below `qubits`; `measurements` lists each
//!   measured qubit once (empty or absent: every qubit is measured).
//! - `qubits` is at least 1 and at most [`Limits::max_qubits`], and its state vector
//!   (16·2ⁿ bytes) fits in [`Limits::max_state_bytes`]; at most [`Limits::max_gates`] gates.
//!
//! Every refusal is a [`CircuitError`] naming the argument as the client wrote it, e.g.
//! `circuit.gates[3].target: qubit 5 is out of range: the circuit has 4 qubits`. Validation
//! never panics, whatever the input.
//!
//! A [`Circuit`] serializes back to the wire shape in a canonical form (upper-case type
//! names, `control` + `target` for `CNOT`/`CZ`, a number `target` for single-qubit gates, an
//! array for `SWAP`), which is also what [`Circuit::digest`] hashes.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Number;

/// The canonical gate type names, in the order error messages list them.
pub const GATE_NAMES: [&str; 14] = ["H", "X", "Y", "Z", "S", "SDG", "T", "TDG", "RX", "RY", "RZ", "CNOT", "CZ", "SWAP"];

/// Bytes per amplitude of a state vector: one complex number of two `f64`.
pub const AMPLITUDE_BYTES: usize = 16;

/// Angles closer than this (radians) count as equal, e.g. an angle to a multiple of 2π.
pub(crate) const ANGLE_EPSILON: f64 = 1e-12;

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

/// A circuit as clients send it: numbers are kept as JSON numbers so that a negative or
/// fractional index is reported by [`CircuitSpec::validate`] with its path rather than
/// failing deserialization without one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircuitSpec {
    /// Number of qubits.
    pub qubits: Number,
    /// The gates, applied in order.
    #[serde(default)]
    pub gates: Vec<GateSpec>,
    /// The measured qubits, in the order of the bitstring characters; absent or empty
    /// measures every qubit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurements: Option<Vec<Number>>,
}

/// One gate as clients send it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateSpec {
    /// The gate type, e.g. `"H"` or `"cnot"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The qubit(s) acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    /// The control qubit of `CNOT`/`CZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Number>,
    /// The rotation angle of `RX`/`RY`/`RZ`, in radians: `[θ]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<f64>>,
}

/// A gate's `target`: one qubit index or an array of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetSpec {
    /// `target: 3`
    One(Number),
    /// `target: [0, 1]`
    Many(Vec<Number>),
}

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
enum GateType {
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
    fn parse(name: &str) -> Option<Self> {
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

    fn kind(self, angle: f64) -> GateKind {
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
/// The constructors do not check the qubits: [`Circuit::new`] and
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

    fn one(kind: GateKind, q: usize) -> Self {
        Self { kind, qubits: [q, q] }
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

    /// The wire form of this gate, canonical.
    pub fn to_spec(&self) -> GateSpec {
        let n = |q: usize| Number::from(q);
        let (target, control) = match self.kind {
            GateKind::Cnot | GateKind::Cz => (TargetSpec::One(n(self.qubits[1])), Some(n(self.qubits[0]))),
            GateKind::Swap => (TargetSpec::Many(vec![n(self.qubits[0]), n(self.qubits[1])]), None),
            _ => (TargetSpec::One(n(self.qubits[0])), None),
        };
        // `+ 0.0` turns −0.0 into 0.0, so equal circuits serialize (and hash) equally.
        let params = self.kind.angle().map(|a| vec![a + 0.0]);
        GateSpec { kind: self.kind.name().to_owned(), target: Some(target), control, params }
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

/// A validated circuit: every qubit index in range, two-qubit gates on two different qubits,
/// finite angles, each measured qubit listed once, and within the [`Limits`] it was
/// validated against.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "CircuitSpec", try_from = "CircuitSpec")]
pub struct Circuit {
    qubits: usize,
    gates: Vec<Gate>,
    measurements: Vec<usize>,
}

impl Circuit {
    /// A circuit from its parts, validated as [`CircuitSpec::validate`] does (with the same
    /// error paths).
    ///
    /// # Errors
    /// A [`CircuitError`] for the first problem found.
    pub fn new(
        qubits: usize,
        gates: Vec<Gate>,
        measurements: Vec<usize>,
        limits: &Limits,
    ) -> Result<Self, CircuitError> {
        let spec = CircuitSpec {
            qubits: Number::from(qubits),
            gates: gates.iter().map(Gate::to_spec).collect(),
            measurements: Some(measurements.into_iter().map(Number::from).collect()),
        };
        spec.validate(limits)
    }

    /// The same circuit with other gates on the same qubits; only for gates derived from
    /// this circuit's own (the optimizer's output), which keeps them valid.
    pub(crate) fn with_gates(&self, gates: Vec<Gate>) -> Self {
        Self { qubits: self.qubits, gates, measurements: self.measurements.clone() }
    }

    /// Number of qubits.
    pub fn qubits(&self) -> usize {
        self.qubits
    }

    /// The gates, in order.
    pub fn gates(&self) -> &[Gate] {
        &self.gates
    }

    /// The measured qubits as given (empty: all).
    pub fn measurements(&self) -> &[usize] {
        &self.measurements
    }

    /// The measured qubits in bitstring order: `measurements`, or every qubit `0..n` when it
    /// is empty. Character `i` of a result bitstring is the outcome of entry `i`.
    pub fn measured_qubits(&self) -> Vec<usize> {
        if self.measurements.is_empty() { (0..self.qubits).collect() } else { self.measurements.clone() }
    }

    /// The canonical wire form.
    pub fn to_spec(&self) -> CircuitSpec {
        CircuitSpec {
            qubits: Number::from(self.qubits),
            gates: self.gates.iter().map(Gate::to_spec).collect(),
            measurements: if self.measurements.is_empty() {
                None
            } else {
                Some(self.measurements.iter().map(|&q| Number::from(q)).collect())
            },
        }
    }

    /// The canonical JSON text of the circuit (the wire form, compact, fields in a fixed
    /// order, shortest round-trip floats).
    pub fn canonical_json(&self) -> String {
        // Serializing plain structs of integers, strings and finite floats cannot fail.
        serde_json::to_string(&self.to_spec()).unwrap_or_default()
    }

    /// The work of simulating it: gates × 2ⁿ amplitude updates (an upper bound: diagonal
    /// and two-qubit gates touch fewer), saturating.
    pub fn amplitude_updates(&self) -> u128 {
        let states = 1u128.checked_shl(u32::try_from(self.qubits).unwrap_or(u32::MAX)).unwrap_or(u128::MAX);
        states.saturating_mul(self.gates.len() as u128)
    }

    /// BLAKE3 of [`Circuit::canonical_json`], as 64 hex digits: equal circuits have equal
    /// digests, whatever aliases or target forms the client used.
    pub fn digest(&self) -> String {
        blake3::hash(self.canonical_json().as_bytes()).to_hex().to_string()
    }
}

impl From<Circuit> for CircuitSpec {
    fn from(circuit: Circuit) -> Self {
        circuit.to_spec()
    }
}

impl TryFrom<CircuitSpec> for Circuit {
    type Error = CircuitError;

    /// Validates against [`Limits::default`].
    fn try_from(spec: CircuitSpec) -> Result<Self, Self::Error> {
        spec.validate(&Limits::default())
    }
}

impl CircuitSpec {
    /// Check every rule of the [module](self) and build the [`Circuit`].
    ///
    /// # Errors
    /// A [`CircuitError`] for the first problem found, in order: `circuit.qubits`,
    /// `circuit.gates` (count), each gate, `circuit.measurements`.
    pub fn validate(&self, limits: &Limits) -> Result<Circuit, CircuitError> {
        let qubits = index(&self.qubits).map_err(|reason| CircuitError::new("circuit.qubits", reason))?;
        limits.check_qubits(qubits).map_err(|reason| CircuitError::new("circuit.qubits", reason))?;
        if self.gates.len() > limits.max_gates {
            return Err(CircuitError::new(
                "circuit.gates",
                format!("has {} gates, more than the limit of {}", self.gates.len(), limits.max_gates),
            ));
        }
        let gates = self
            .gates
            .iter()
            .enumerate()
            .map(|(i, g)| g.validate(&format!("circuit.gates[{i}]"), qubits))
            .collect::<Result<Vec<_>, _>>()?;
        let mut measurements = Vec::new();
        let mut seen = BTreeMap::new();
        for (k, n) in self.measurements.iter().flatten().enumerate() {
            let path = format!("circuit.measurements[{k}]");
            let q = qubit(n, &path, qubits)?;
            if let Some(first) = seen.insert(q, k) {
                return Err(CircuitError::new(
                    path,
                    format!("qubit {q} is already measured at circuit.measurements[{first}]"),
                ));
            }
            measurements.push(q);
        }
        Ok(Circuit { qubits, gates, measurements })
    }
}

impl GateSpec {
    fn validate(&self, base: &str, qubits: usize) -> Result<Gate, CircuitError> {
        let at = |field: &str, reason: String| CircuitError::new(format!("{base}.{field}"), reason);
        let ty = GateType::parse(&self.kind).ok_or_else(|| {
            at(
                "type",
                format!("unknown gate type {:?}; expected one of {}", shorten(&self.kind), GATE_NAMES.join(", ")),
            )
        })?;
        let name = ty.kind(0.0).name();
        let params = self.params.as_deref().unwrap_or_default();
        let angle = match ty {
            GateType::Rx | GateType::Ry | GateType::Rz => match params {
                [a] if a.is_finite() => *a,
                _ => {
                    return Err(at(
                        "params",
                        format!("{name} needs one finite angle in radians, e.g. params: [1.5708]"),
                    ));
                }
            },
            _ if params.is_empty() => 0.0,
            _ => return Err(at("params", format!("{name} takes no parameters"))),
        };
        let kind = ty.kind(angle);
        let target_path = |i: usize| format!("{base}.target[{i}]");
        match kind.arity() {
            1 => {
                if self.control.is_some() {
                    return Err(at(
                        "control",
                        format!("{name} acts on one qubit and takes no control; use CNOT or CZ for controlled gates"),
                    ));
                }
                let q = match &self.target {
                    None => return Err(at("target", format!("required: the qubit {name} acts on"))),
                    Some(TargetSpec::One(n)) => qubit(n, &format!("{base}.target"), qubits)?,
                    Some(TargetSpec::Many(v)) if v.len() == 1 => qubit(&v[0], &target_path(0), qubits)?,
                    Some(TargetSpec::Many(v)) => {
                        return Err(at(
                            "target",
                            format!(
                                "{name} acts on one qubit: give a qubit index or a one-element array, got {} entries",
                                v.len()
                            ),
                        ));
                    }
                };
                Ok(Gate::one(kind, q))
            }
            _ if ty == GateType::Swap => {
                if self.control.is_some() {
                    return Err(at("control", "SWAP takes no control; give target: [a, b]".to_owned()));
                }
                match &self.target {
                    Some(TargetSpec::Many(v)) if v.len() == 2 => {
                        let a = qubit(&v[0], &target_path(0), qubits)?;
                        let b = qubit(&v[1], &target_path(1), qubits)?;
                        if a == b {
                            return Err(at("target", format!("SWAP needs two different qubits, got {a} twice")));
                        }
                        Ok(Gate::swap(a, b))
                    }
                    _ => Err(at("target", "SWAP acts on two qubits: give target: [a, b]".to_owned())),
                }
            }
            _ => {
                let two_form = "give control and target, or target: [control, target]";
                let (control, target, distinct_path) = match (&self.control, &self.target) {
                    (_, None) => return Err(at("target", format!("required: {name} acts on two qubits; {two_form}"))),
                    (Some(c), Some(TargetSpec::One(t))) => (
                        qubit(c, &format!("{base}.control"), qubits)?,
                        qubit(t, &format!("{base}.target"), qubits)?,
                        "control",
                    ),
                    (Some(c), Some(TargetSpec::Many(v))) if v.len() == 1 => (
                        qubit(c, &format!("{base}.control"), qubits)?,
                        qubit(&v[0], &target_path(0), qubits)?,
                        "control",
                    ),
                    (Some(_), Some(TargetSpec::Many(v))) => {
                        return Err(at(
                            "target",
                            format!("with a control given, {name} needs one target qubit, got {} entries", v.len()),
                        ));
                    }
                    (None, Some(TargetSpec::Many(v))) if v.len() == 2 => {
                        (qubit(&v[0], &target_path(0), qubits)?, qubit(&v[1], &target_path(1), qubits)?, "target")
                    }
                    (None, Some(TargetSpec::One(_))) => {
                        return Err(at("control", format!("{name} needs a control qubit: {two_form}")));
                    }
                    (None, Some(TargetSpec::Many(_))) => {
                        return Err(at("target", format!("{name} acts on two qubits: {two_form}")));
                    }
                };
                if control == target {
                    return Err(at(distinct_path, format!("control and target must differ, got {control} for both")));
                }
                Ok(Gate { kind, qubits: [control, target] })
            }
        }
    }
}

/// A qubit index at `path`, in range for a circuit of `qubits` qubits.
fn qubit(n: &Number, path: &str, qubits: usize) -> Result<usize, CircuitError> {
    let q = index(n).map_err(|reason| CircuitError::new(path, reason))?;
    if q >= qubits {
        let plural = if qubits == 1 { "" } else { "s" };
        return Err(CircuitError::new(
            path,
            format!("qubit {q} is out of range: the circuit has {qubits} qubit{plural}"),
        ));
    }
    Ok(q)
}

/// A non-negative whole number (`2.0` is accepted as `2`: JavaScript has only doubles).
fn index(n: &Number) -> Result<usize, String> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    let reject = || format!("must be a non-negative integer, got {n}");
    if let Some(u) = n.as_u64() {
        return usize::try_from(u).map_err(|_| reject());
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..EXACT).contains(&f) => Ok(f as usize),
        _ => Err(reject()),
    }
}

/// At most 40 characters of a client's string, for echoing it in an error.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> CircuitSpec {
        serde_json::from_value(value).unwrap()
    }

    fn check(value: serde_json::Value) -> Result<Circuit, CircuitError> {
        spec(value).validate(&Limits::default())
    }

    fn error(value: serde_json::Value) -> (String, String) {
        let e = check(value).unwrap_err();
        (e.path, e.reason)
    }

    #[test]
    fn parses_the_original_wire_shape() {
        let c = check(json!({
            "qubits": 2,
            "gates": [
                {"type": "H", "target": 0},
                {"type": "CNOT", "control": 0, "target": 1},
                {"type": "RZ", "target": [1], "params": [0.5]},
                {"type": "T", "target": 1},
            ],
            "measurements": [1, 0],
        }))
        .unwrap();
        assert_eq!(c.qubits(), 2);
        assert_eq!(c.gates(), &[Gate::h(0), Gate::cnot(0, 1), Gate::rz(1, 0.5), Gate::t(1)]);
        assert_eq!(c.measurements(), &[1, 0]);
        assert_eq!(c.measured_qubits(), vec![1, 0]);
    }

    #[test]
    fn accepts_aliases_and_case() {
        let c = check(json!({
            "qubits": 3,
            "gates": [
                {"type": "cx", "target": [2, 0]},
                {"type": "s†", "target": 1},
                {"type": "SDAG", "target": 1},
                {"type": "Sdg", "target": 1},
                {"type": "T†", "target": 0},
                {"type": "tdag", "target": 0},
                {"type": "cz", "control": 1, "target": [2]},
                {"type": "swap", "target": [0, 2]},
                {"type": "rx", "target": 0, "params": [1.0]},
                {"type": " y ", "target": 2.0, "params": []},
            ],
        }))
        .unwrap();
        assert_eq!(
            c.gates(),
            &[
                Gate::cnot(2, 0),
                Gate::sdg(1),
                Gate::sdg(1),
                Gate::sdg(1),
                Gate::tdg(0),
                Gate::tdg(0),
                Gate::cz(1, 2),
                Gate::swap(0, 2),
                Gate::rx(0, 1.0),
                Gate::y(2),
            ]
        );
        assert!(c.measurements().is_empty());
        assert_eq!(c.measured_qubits(), vec![0, 1, 2]);
    }

    #[test]
    fn serializes_back_canonically() {
        let c = check(json!({
            "qubits": 3,
            "gates": [
                {"type": "cx", "target": [2, 0]},
                {"type": "s†", "target": [1]},
                {"type": "swap", "target": [0, 2]},
                {"type": "rz", "target": 0, "params": [-0.0]},
                {"type": "cz", "control": 1, "target": [2]},
            ],
            "measurements": [2],
        }))
        .unwrap();
        let wire = serde_json::to_value(&c).unwrap();
        // `cx` with target [2, 0] means control 2, target 0.
        let expected = json!({
            "qubits": 3,
            "gates": [
                {"type": "CNOT", "target": 0, "control": 2},
                {"type": "SDG", "target": 1},
                {"type": "SWAP", "target": [0, 2]},
                {"type": "RZ", "target": 0, "params": [0.0]},
                {"type": "CZ", "target": 2, "control": 1},
            ],
            "measurements": [2],
        });
        assert_eq!(wire, expected);
        let back: Circuit = serde_json::from_value(wire).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            c.canonical_json(),
            concat!(
                r#"{"qubits":3,"gates":[{"type":"CNOT","target":0,"control":2},{"type":"SDG","target":1},"#,
                r#"{"type":"SWAP","target":[0,2]},{"type":"RZ","target":0,"params":[0.0]},"#,
                r#"{"type":"CZ","target":2,"control":1}],"measurements":[2]}"#
            )
        );
    }

    #[test]
    fn digest_is_canonical() {
        let a = check(json!({
            "qubits": 2,
            "gates": [{"type": "cx", "target": [0, 1]}, {"type": "rz", "target": [1], "params": [-0.0]}],
        }))
        .unwrap();
        let b = check(json!({
            "qubits": 2.0,
            "gates": [{"type": "CNOT", "control": 0, "target": 1}, {"type": "RZ", "target": 1, "params": [0]}],
            "measurements": [],
        }))
        .unwrap();
        let c = check(json!({
            "qubits": 2,
            "gates": [{"type": "CNOT", "control": 1, "target": 0}, {"type": "RZ", "target": 1, "params": [0]}],
        }))
        .unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest().len(), 64);
        assert_eq!(a.digest(), blake3::hash(a.canonical_json().as_bytes()).to_hex().to_string());
    }

    #[test]
    fn errors_name_the_argument_path() {
        let four = |gates: serde_json::Value| json!({"qubits": 4, "gates": gates});
        let cases = [
            (
                four(json!([
                    {"type": "H", "target": 0},
                    {"type": "H", "target": 1},
                    {"type": "H", "target": 2},
                    {"type": "X", "target": 5},
                ])),
                "circuit.gates[3].target",
                "qubit 5 is out of range: the circuit has 4 qubits",
            ),
            (
                four(json!([{"type": "FOO", "target": 0}])),
                "circuit.gates[0].type",
                "unknown gate type \"FOO\"; expected one of H, X, Y, Z, S, SDG, T, TDG, RX, RY, RZ, CNOT, CZ, SWAP",
            ),
            (
                four(json!([{"type": "H", "target": 0}, {"type": "H", "target": 0}, {"type": "RX", "target": 0}])),
                "circuit.gates[2].params",
                "RX needs one finite angle in radians, e.g. params: [1.5708]",
            ),
            (
                four(json!([{"type": "RY", "target": 0, "params": [1, 2]}])),
                "circuit.gates[0].params",
                "RY needs one finite angle in radians, e.g. params: [1.5708]",
            ),
            (
                four(json!([{"type": "H", "target": 0, "params": [1]}])),
                "circuit.gates[0].params",
                "H takes no parameters",
            ),
            (
                four(json!([{"type": "H", "target": 0}, {"type": "CNOT", "control": 2, "target": 2}])),
                "circuit.gates[1].control",
                "control and target must differ, got 2 for both",
            ),
            (
                four(json!([{"type": "CNOT", "target": [1, 1]}])),
                "circuit.gates[0].target",
                "control and target must differ, got 1 for both",
            ),
            (
                four(json!([{"type": "CNOT", "target": 1}])),
                "circuit.gates[0].control",
                "CNOT needs a control qubit: give control and target, or target: [control, target]",
            ),
            (
                four(json!([{"type": "CZ", "control": 0, "target": [1, 2]}])),
                "circuit.gates[0].target",
                "with a control given, CZ needs one target qubit, got 2 entries",
            ),
            (
                four(json!([{"type": "CZ", "target": [1, 2, 3]}])),
                "circuit.gates[0].target",
                "CZ acts on two qubits: give control and target, or target: [control, target]",
            ),
            (
                four(json!([{"type": "CNOT", "control": -1, "target": 0}])),
                "circuit.gates[0].control",
                "must be a non-negative integer, got -1",
            ),
            (
                four(json!([{"type": "CNOT", "target": [0, 1.5]}])),
                "circuit.gates[0].target[1]",
                "must be a non-negative integer, got 1.5",
            ),
            (
                four(json!([{"type": "X", "control": 0, "target": 1}])),
                "circuit.gates[0].control",
                "X acts on one qubit and takes no control; use CNOT or CZ for controlled gates",
            ),
            (
                four(json!([{"type": "X", "target": [0, 1]}])),
                "circuit.gates[0].target",
                "X acts on one qubit: give a qubit index or a one-element array, got 2 entries",
            ),
            (four(json!([{"type": "X"}])), "circuit.gates[0].target", "required: the qubit X acts on"),
            (
                four(json!([{"type": "X", "target": [7]}])),
                "circuit.gates[0].target[0]",
                "qubit 7 is out of range: the circuit has 4 qubits",
            ),
            (
                four(json!([{"type": "SWAP", "target": [3, 3]}])),
                "circuit.gates[0].target",
                "SWAP needs two different qubits, got 3 twice",
            ),
            (
                four(json!([{"type": "SWAP", "target": 3}])),
                "circuit.gates[0].target",
                "SWAP acts on two qubits: give target: [a, b]",
            ),
            (
                four(json!([{"type": "SWAP", "control": 0, "target": [1, 2]}])),
                "circuit.gates[0].control",
                "SWAP takes no control; give target: [a, b]",
            ),
            (json!({"qubits": 0, "gates": []}), "circuit.qubits", "must be between 1 and 24, got 0"),
            (json!({"qubits": 25, "gates": []}), "circuit.qubits", "must be between 1 and 24, got 25"),
            (json!({"qubits": -3, "gates": []}), "circuit.qubits", "must be a non-negative integer, got -3"),
            (
                json!({"qubits": 2, "gates": [], "measurements": [0, 2]}),
                "circuit.measurements[1]",
                "qubit 2 is out of range: the circuit has 2 qubits",
            ),
            (
                json!({"qubits": 2, "gates": [], "measurements": [1, 0, 1]}),
                "circuit.measurements[2]",
                "qubit 1 is already measured at circuit.measurements[0]",
            ),
            (
                json!({"qubits": 1, "gates": [{"type": "H", "target": 1}]}),
                "circuit.gates[0].target",
                "qubit 1 is out of range: the circuit has 1 qubit",
            ),
        ];
        for (input, path, reason) in cases {
            let (p, r) = error(input.clone());
            assert_eq!((p.as_str(), r.as_str()), (path, reason), "for {input}");
        }
        let e = check(four(json!([{"type": "X", "target": 9}]))).unwrap_err();
        assert_eq!(e.to_string(), "circuit.gates[0].target: qubit 9 is out of range: the circuit has 4 qubits");
    }

    #[test]
    fn long_unknown_types_are_shortened() {
        let long = "Q".repeat(1000);
        let (path, reason) = error(json!({"qubits": 1, "gates": [{"type": long, "target": 0}]}));
        assert_eq!(path, "circuit.gates[0].type");
        assert!(reason.starts_with(&format!("unknown gate type \"{}…\"", "Q".repeat(40))), "{reason}");
    }

    #[test]
    fn non_finite_angles_are_refused() {
        for angle in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let s = CircuitSpec {
                qubits: 1.into(),
                gates: vec![GateSpec {
                    kind: "RZ".into(),
                    target: Some(TargetSpec::One(0.into())),
                    control: None,
                    params: Some(vec![angle]),
                }],
                measurements: None,
            };
            assert_eq!(s.validate(&Limits::default()).unwrap_err().path, "circuit.gates[0].params");
            let e = Circuit::new(1, vec![Gate::rz(0, angle)], vec![], &Limits::default()).unwrap_err();
            assert_eq!(e.path, "circuit.gates[0].params");
        }
    }

    #[test]
    fn limits_bound_gates_and_memory() {
        let limits = Limits { max_gates: 2, ..Limits::default() };
        let h = json!({"type": "H", "target": 0});
        let e = spec(json!({"qubits": 1, "gates": [h, h, h]})).validate(&limits).unwrap_err();
        assert_eq!(e.to_string(), "circuit.gates: has 3 gates, more than the limit of 2");

        assert_eq!(Limits::state_bytes(0), Some(16));
        assert_eq!(Limits::state_bytes(24), Some(256 << 20));
        assert_eq!(Limits::state_bytes(59), Some(16 << 59));
        assert_eq!(Limits::state_bytes(60), None);
        assert_eq!(Limits::state_bytes(64), None);
        assert_eq!(Limits::state_bytes(usize::MAX), None);

        let roomy = Limits { max_qubits: 100, max_state_bytes: 1 << 30, ..Limits::default() };
        assert!(roomy.check_qubits(26).is_ok());
        let e = spec(json!({"qubits": 27, "gates": []})).validate(&roomy).unwrap_err();
        assert_eq!(e.path, "circuit.qubits");
        assert_eq!(e.reason, "a 27-qubit state vector needs 2147483648 bytes, more than the limit of 1073741824 bytes");
        let e = spec(json!({"qubits": 64, "gates": []})).validate(&roomy).unwrap_err();
        assert!(e.reason.starts_with("a 64-qubit state vector needs more than"), "{}", e.reason);

        assert!(Limits::default().check_shots(1_000_000).is_ok());
        let e = Limits::default().check_shots(1_000_001).unwrap_err();
        assert_eq!(e.to_string(), "shots: must be at most 1000000, got 1000001");
    }

    #[test]
    fn circuit_new_checks_gates_like_the_wire() {
        let limits = Limits::default();
        assert!(Circuit::new(2, vec![Gate::cnot(0, 1), Gate::swap(1, 0)], vec![1], &limits).is_ok());
        assert_eq!(
            Circuit::new(2, vec![Gate::cnot(1, 1)], vec![], &limits).unwrap_err().path,
            "circuit.gates[0].control"
        );
        assert_eq!(
            Circuit::new(2, vec![Gate::swap(0, 0)], vec![], &limits).unwrap_err().path,
            "circuit.gates[0].target"
        );
        assert_eq!(Circuit::new(2, vec![Gate::h(2)], vec![], &limits).unwrap_err().path, "circuit.gates[0].target");
        assert_eq!(Circuit::new(2, vec![], vec![0, 0], &limits).unwrap_err().path, "circuit.measurements[1]");
        assert_eq!(Gate::new(GateKind::Cnot, &[0]), None);
        assert_eq!(Gate::new(GateKind::H, &[0, 1]), None);
        assert_eq!(Gate::new(GateKind::Swap, &[0, 1]), Some(Gate::swap(0, 1)));
    }

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

    fn number() -> impl Strategy<Value = Number> {
        prop_oneof![
            (0u64..10).prop_map(Number::from),
            any::<u64>().prop_map(Number::from),
            any::<i64>().prop_map(Number::from),
            (-10.0f64..10.0).prop_filter_map("finite", Number::from_f64),
            any::<f64>().prop_filter_map("finite", Number::from_f64),
        ]
    }

    fn gate_spec() -> impl Strategy<Value = GateSpec> {
        let kind = prop_oneof![
            proptest::sample::select(vec![
                "H", "x", "Y", "z", "S", "sdg", "S†", "T", "TDAG", "t†", "RX", "ry", "Rz", "CNOT", "cx", "CZ", "swap",
            ])
            .prop_map(str::to_owned),
            ".{0,8}",
        ];
        let target = proptest::option::of(prop_oneof![
            number().prop_map(TargetSpec::One),
            proptest::collection::vec(number(), 0..4).prop_map(TargetSpec::Many),
        ]);
        let params = proptest::option::of(proptest::collection::vec(
            prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), -7.0f64..7.0],
            0..3,
        ));
        (kind, target, proptest::option::of(number()), params).prop_map(|(kind, target, control, params)| GateSpec {
            kind,
            target,
            control,
            params,
        })
    }

    proptest! {
        /// Validation never panics, and what it accepts round-trips through the wire shape.
        #[test]
        fn validation_never_panics(
            qubits in number(),
            gates in proptest::collection::vec(gate_spec(), 0..12),
            measurements in proptest::option::of(proptest::collection::vec(number(), 0..5)),
        ) {
            let limits = Limits { max_qubits: 8, max_gates: 10, ..Limits::default() };
            let s = CircuitSpec { qubits, gates, measurements };
            if let Ok(c) = s.validate(&limits) {
                prop_assert!(c.qubits() >= 1 && c.qubits() <= 8);
                let back = c.to_spec().validate(&limits).unwrap();
                prop_assert_eq!(&back, &c);
                prop_assert_eq!(back.digest(), c.digest());
                let _ = crate::quantum::simulate(&c);
            }
        }

        /// Small valid specs (in-range indices, known names) mostly validate.
        #[test]
        fn plausible_specs_validate_or_explain(
            qubits in 1u64..6,
            gates in proptest::collection::vec(gate_spec(), 0..8),
        ) {
            let s = CircuitSpec { qubits: qubits.into(), gates, measurements: None };
            match s.validate(&Limits::default()) {
                Ok(c) => prop_assert_eq!(c.gates().len(), s.gates.len()),
                Err(e) => {
                    prop_assert!(e.path.starts_with("circuit.gates["), "{}", e);
                    prop_assert!(!e.reason.is_empty());
                }
            }
        }
    }
}
