//! The wire shape clients send ([`CircuitSpec`], [`GateSpec`], [`TargetSpec`]), how one gate
//! of it is read into a [`Gate`], and how a [`Gate`] is written back.
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
//! The whole-circuit rules (qubit count, limits, measurements) are checked where the
//! [`crate::quantum::Circuit`] is built, in [`super::circuit`]; this module knows gates and
//! indices only, so it does not depend on the circuit type.
//!
//! [`Limits::max_qubits`]: super::Limits::max_qubits
//! [`Limits::max_state_bytes`]: super::Limits::max_state_bytes
//! [`Limits::max_gates`]: super::Limits::max_gates

use serde::{Deserialize, Serialize};
use serde_json::Number;

use super::error::CircuitError;
use super::gate::{GATE_NAMES, Gate, GateKind, GateType};

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

impl Gate {
    /// The wire form of this gate, canonical.
    pub fn to_spec(&self) -> GateSpec {
        let n = |q: usize| Number::from(q);
        let kind = self.kind();
        // `qubits()` has as many entries as the kind's arity: two for CNOT, CZ and SWAP.
        let q = self.qubits();
        let (target, control) = match kind {
            GateKind::Cnot | GateKind::Cz => (TargetSpec::One(n(q[1])), Some(n(q[0]))),
            GateKind::Swap => (TargetSpec::Many(vec![n(q[0]), n(q[1])]), None),
            _ => (TargetSpec::One(n(q[0])), None),
        };
        // `+ 0.0` turns −0.0 into 0.0, so equal circuits serialize (and hash) equally.
        let params = kind.angle().map(|a| vec![a + 0.0]);
        GateSpec { kind: kind.name().to_owned(), target: Some(target), control, params }
    }
}

impl GateSpec {
    /// This gate, the one at `base` (e.g. `circuit.gates[3]`), on a circuit of `qubits`
    /// qubits, checked against the rules of the [module](self).
    ///
    /// # Errors
    /// A [`CircuitError`] under `base` for the first problem found.
    pub(crate) fn validate(&self, base: &str, qubits: usize) -> Result<Gate, CircuitError> {
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
                Ok(Gate::two(kind, control, target))
            }
        }
    }
}

/// A qubit index at `path`, in range for a circuit of `qubits` qubits.
pub(crate) fn qubit(n: &Number, path: &str, qubits: usize) -> Result<usize, CircuitError> {
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
pub(crate) fn index(n: &Number) -> Result<usize, String> {
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
