//! Circuit JSON as clients send it, through validation into a small simulation, sampling,
//! analysis and the optimizer (at most 8 qubits, so a run is fast).
//!
//! Input: a circuit (`{"qubits": …, "gates": […], "measurements": […]}`), or
//! `{"circuit": …, "shots": n, "level": 0-3, "seed": s}`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qudag_domain::quantum::{
    CircuitSpec, GateKind, Limits, OptimizationLevel, analyze, equivalent, execute, optimize, simulate,
};
use serde_json::Value;

fn limits() -> Limits {
    Limits { max_qubits: 8, max_gates: 256, max_shots: 4_096, max_state_bytes: Limits::state_bytes(8).unwrap_or(4096) }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let (spec, shots, level, seed) = match value.get("circuit") {
        Some(circuit) => (
            circuit.clone(),
            value.get("shots").and_then(Value::as_u64).unwrap_or(64),
            value.get("level").and_then(Value::as_u64).unwrap_or(3),
            value.get("seed").and_then(Value::as_u64).unwrap_or(0),
        ),
        None => (value, 64, 3, 0),
    };
    let Ok(spec) = serde_json::from_value::<CircuitSpec>(spec) else { return };
    let limits = limits();
    let Ok(circuit) = spec.validate(&limits) else { return };

    // The canonical form is a valid circuit that is the same circuit.
    let canonical: CircuitSpec = serde_json::from_str(&circuit.canonical_json()).expect("canonical JSON parses");
    let again = canonical.validate(&limits).expect("the canonical form validates");
    assert_eq!(again.digest(), circuit.digest());

    let state = simulate(&circuit);
    assert!((state.norm_sqr() - 1.0).abs() < 1e-6, "the state stays normalised: {}", state.norm_sqr());
    if limits.check_shots(shots).is_ok() {
        let run = execute(&circuit, shots, seed);
        assert_eq!(run.counts.values().sum::<u64>(), shots, "every shot is counted once");
    }
    let _ = analyze(&circuit);

    let level = OptimizationLevel::new(u8::try_from(level % 4).unwrap_or(3)).unwrap_or(OptimizationLevel::COMMUTE);
    let optimized = optimize(&circuit, level);
    assert!(optimized.circuit.gates().len() <= circuit.gates().len(), "the optimizer never adds gates");
    // Equivalence is checked where angles are moderate: merging rotations of angles near
    // 1e16 rad loses their sum to rounding, a limit of f64 and not of the optimizer.
    let moderate = circuit.gates().iter().all(|g| match g.kind() {
        GateKind::Rx(a) | GateKind::Ry(a) | GateKind::Rz(a) => a.abs() <= 1e6,
        _ => true,
    });
    if moderate {
        assert!(equivalent(&circuit, &optimized.circuit, 2, seed), "the optimizer changed what the circuit does");
    }
});
