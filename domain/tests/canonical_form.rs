//! A circuit's canonical form (`Circuit::canonical_json`, whose digest names the circuit)
//! read back is the same circuit. Inputs found by the `circuit` fuzz target.
#![allow(clippy::unwrap_used)]

use qudag_domain::quantum::{Circuit, CircuitSpec, GateKind, Limits};

fn parse(text: &str) -> Circuit {
    serde_json::from_str::<CircuitSpec>(text).unwrap().validate(&Limits::default()).unwrap()
}

fn angle(circuit: &Circuit) -> f64 {
    match circuit.gates()[0].kind() {
        GateKind::Rx(a) => a,
        other => panic!("not a rotation: {other:?}"),
    }
}

#[test]
fn angles_are_read_exactly_and_the_canonical_form_reads_back_the_same() {
    // Decimals with more digits than a double holds: each must become the nearest double,
    // and the shortest form that prints back must read as that same double.
    for text in ["1.5999709999999299999999999999998", "0.30000000000000004441", "2.7182818284590452353602874713527"] {
        let circuit = parse(&format!(r#"{{"qubits":1,"gates":[{{"type":"RX","target":0,"params":[{text}]}}]}}"#));
        assert_eq!(angle(&circuit).to_bits(), text.parse::<f64>().unwrap().to_bits(), "{text} read inexactly");
        let again = parse(&circuit.canonical_json());
        assert_eq!(angle(&again).to_bits(), angle(&circuit).to_bits(), "{text}: the canonical form reads back changed");
        assert_eq!(again.digest(), circuit.digest(), "{text}");
    }
}
