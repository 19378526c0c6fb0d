//! The validated [`Circuit`] every other part of [`crate::quantum`] works on: how a
//! [`CircuitSpec`] becomes one (the whole-circuit rules: qubit count, [`Limits`], gate count,
//! measurements; each gate is read by [`super::wire`]), and its canonical form and digest.
//!
//! A [`Circuit`] serializes back to the wire shape in a canonical form (upper-case type
//! names, `control` + `target` for `CNOT`/`CZ`, a number `target` for single-qubit gates, an
//! array for `SWAP`), which is also what [`Circuit::digest`] hashes.
//!
//! The gate set, the limits, the error and the wire types are re-exported here, so paths
//! under `quantum::circuit` keep naming them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Number;

pub use super::error::CircuitError;
pub use super::gate::{GATE_NAMES, Gate, GateKind};
pub use super::limits::{AMPLITUDE_BYTES, Limits};
pub use super::wire::{CircuitSpec, GateSpec, TargetSpec};
use super::wire::{index, qubit};

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
    /// Check every rule of the wire shape (listed in [`super::wire`]) and build the
    /// [`Circuit`].
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
