//! The quantum module as the application layer uses it: JSON tool arguments in, validated
//! circuits, executions, optimizations and analyses out as JSON.
#![allow(clippy::unwrap_used)]

use qudag_domain::quantum::{
    Analysis, CircuitSpec, Execution, Limits, OptimizationLevel, VERIFY_MAX_QUBITS, analyze, equivalent, execute,
    optimize,
};
use serde_json::{Value, json};

fn circuit(value: Value) -> qudag_domain::quantum::Circuit {
    serde_json::from_value::<CircuitSpec>(value).unwrap().validate(&Limits::default()).unwrap()
}

#[test]
fn execute_from_wire_to_json() {
    let c = circuit(json!({
        "qubits": 3,
        "gates": [
            {"type": "H", "target": 0},
            {"type": "CNOT", "control": 0, "target": 1},
            {"type": "X", "target": [2]},
        ],
        "measurements": [2, 0],
    }));
    Limits::default().check_shots(1_000).unwrap();
    let run = execute(&c, 1_000, 2024);
    assert_eq!(run, execute(&c, 1_000, 2024));
    let out = serde_json::to_value(&run).unwrap();
    assert_eq!(out["shots"], 1_000);
    assert_eq!(out["gate_applications"], 3);
    assert_eq!(out["measured_qubits"], json!([2, 0]));
    // Qubit 2 is always 1; qubit 0 is 0 or 1 with probability ½.
    let probabilities = out["probabilities"].as_object().unwrap();
    assert_eq!(probabilities.keys().collect::<Vec<_>>(), ["10", "11"]);
    assert!(probabilities.values().all(|p| (p.as_f64().unwrap() - 0.5).abs() < 1e-12));
    let counts = out["counts"].as_object().unwrap();
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["10", "11"]);
    assert_eq!(counts.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 1_000);
    let back: Execution = serde_json::from_value(out).unwrap();
    assert_eq!(back, run);
}

#[test]
fn optimize_returns_the_wire_shape_and_verifies() {
    let c = circuit(json!({
        "qubits": 2,
        "gates": [
            {"type": "h", "target": 0},
            {"type": "h", "target": 0},
            {"type": "t", "target": 1},
            {"type": "cx", "target": [1, 0]},
            {"type": "t", "target": 1},
            {"type": "rz", "target": 0, "params": [std::f64::consts::TAU]},
        ],
    }));
    let level: OptimizationLevel = serde_json::from_value(json!(3)).unwrap();
    let optimized = optimize(&c, level);
    assert!(c.qubits() <= VERIFY_MAX_QUBITS);
    assert!(equivalent(&c, &optimized.circuit, 4, 99));
    let out = serde_json::to_value(&optimized).unwrap();
    assert_eq!(
        out["circuit"],
        json!({"qubits": 2, "gates": [{"type": "CNOT", "control": 1, "target": 0}, {"type": "S", "target": 1}]})
    );
    assert_eq!(out["report"]["gates_before"], 6);
    assert_eq!(out["report"]["gates_after"], 2);
    assert_eq!(out["report"]["depth_before"], 4);
    assert_eq!(out["report"]["depth_after"], 2);
    assert_eq!(out["report"]["level"], 3);
    assert_eq!(
        out["report"]["rewrites"],
        json!({"identities_removed": 1, "inverses_cancelled": 1, "phases_folded": 1, "through_commuting": 1})
    );
    // The optimized circuit is a valid circuit for clients to send back.
    let again = circuit(out["circuit"].clone());
    assert_eq!(again, optimized.circuit);
    assert_eq!(again.digest(), optimized.circuit.digest());
    assert_ne!(again.digest(), c.digest());
}

#[test]
fn analysis_serializes() {
    let c = circuit(json!({
        "qubits": 3,
        "gates": [
            {"type": "H", "target": 0},
            {"type": "CNOT", "control": 0, "target": 1},
            {"type": "T", "target": 1},
            {"type": "RY", "target": 0, "params": [0.25]},
        ],
    }));
    let a = analyze(&c);
    let out = serde_json::to_value(&a).unwrap();
    assert_eq!(out["gate_counts"], json!({"CNOT": 1, "H": 1, "RY": 1, "T": 1}));
    assert_eq!(out["depth"], 3);
    assert_eq!(out["t_count"], 1);
    assert_eq!(out["clifford"], false);
    assert_eq!(out["connectivity"]["edges"], json!([[0, 1]]));
    assert_eq!(out["connectivity"]["idle_qubits"], json!([2]));
    assert_eq!(out["estimates"], json!({"state_vector_bytes": 128, "amplitude_updates": 32}));
    assert_eq!(serde_json::from_value::<Analysis>(out).unwrap(), a);
}

#[test]
fn errors_are_reported_with_paths() {
    let spec: CircuitSpec =
        serde_json::from_value(json!({"qubits": 2, "gates": [{"type": "CZ", "target": [0, 5]}]})).unwrap();
    let e = spec.validate(&Limits::default()).unwrap_err();
    assert_eq!(e.to_string(), "circuit.gates[0].target[1]: qubit 5 is out of range: the circuit has 2 qubits");
    assert_eq!(e.path(), "circuit.gates[0].target[1]");
    assert!(serde_json::from_value::<OptimizationLevel>(json!(4)).is_err());
    let e = Limits::default().check_shots(2_000_000).unwrap_err();
    assert_eq!(e.path(), "shots");
}
