//! Static analysis of a circuit: gate statistics, depth and layers, qubit connectivity, and
//! what simulating it would cost.
//!
//! Depth is ASAP layering: each gate goes in the layer after the latest gate on any of its
//! qubits, so the depth is the length of the longest chain of gates that share qubits (the
//! critical path). Measurements are not counted as gates or layers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::circuit::Circuit;
use super::gate::{Gate, GateKind};

/// Everything [`analyze`] finds about a circuit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Number of qubits.
    pub qubits: usize,
    /// Number of gates.
    pub gate_count: usize,
    /// Number of ASAP layers.
    pub depth: usize,
    /// Gates per canonical type name (`"H"`, `"CNOT"`, `"SDG"`, …); absent types are left out.
    pub gate_counts: BTreeMap<String, usize>,
    /// Gates on one qubit.
    pub single_qubit_gates: usize,
    /// Gates on two qubits.
    pub two_qubit_gates: usize,
    /// T and T† gates.
    pub t_count: usize,
    /// RX, RY and RZ gates.
    pub rotation_count: usize,
    /// Whether every gate is a Clifford gate (no T, T†, or rotation by an angle that is not a
    /// multiple of π/2): such circuits are efficiently classically simulable.
    pub clifford: bool,
    /// Which qubits interact.
    pub connectivity: Connectivity,
    /// Gates in each ASAP layer, first layer first; its length is `depth`.
    pub layer_widths: Vec<usize>,
    /// Indices (into the gate list) of a longest chain of dependent gates, in order; its
    /// length is `depth`.
    pub critical_path: Vec<usize>,
    /// Average gates per layer, `gate_count / depth` (0 for an empty circuit).
    pub parallelism: f64,
    /// What simulating the circuit costs.
    pub estimates: Estimates,
}

/// The interaction graph: qubits are nodes, two-qubit gates edges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connectivity {
    /// The pairs of qubits some two-qubit gate acts on, `(low, high)`, sorted, each once.
    pub edges: Vec<(usize, usize)>,
    /// Most distinct partners of one qubit.
    pub max_degree: usize,
    /// Groups of qubits connected through two-qubit gates, each sorted, ordered by their
    /// lowest qubit; a qubit with no partner is a group of its own.
    pub components: Vec<Vec<usize>>,
    /// Qubits no gate acts on.
    pub idle_qubits: Vec<usize>,
}

/// Cost of simulating the circuit on a state vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimates {
    /// Bytes of the state vector, 16·2ⁿ (`None` past `u64`).
    pub state_vector_bytes: Option<u64>,
    /// `gate_count · 2ⁿ`: an upper bound on amplitude updates (diagonal and two-qubit gates
    /// touch fewer), saturating.
    pub amplitude_updates: u128,
}

/// ASAP layering of a gate list.
struct Layering {
    /// The 1-based layer of each gate.
    layer: Vec<usize>,
    /// The gate each gate waited for (the latest gate on one of its qubits), if any.
    waited_for: Vec<Option<usize>>,
    depth: usize,
}

fn layering(qubits: usize, gates: &[Gate]) -> Layering {
    // Per qubit: the layer and index of the last gate on it.
    let mut front: Vec<(usize, Option<usize>)> = vec![(0, None); qubits];
    let mut layer = Vec::with_capacity(gates.len());
    let mut waited_for = Vec::with_capacity(gates.len());
    let mut depth = 0;
    for (i, gate) in gates.iter().enumerate() {
        let (before, pred) = gate.qubits().iter().map(|&q| front[q]).max_by_key(|(l, _)| *l).unwrap_or((0, None));
        let l = before + 1;
        for &q in gate.qubits() {
            front[q] = (l, Some(i));
        }
        layer.push(l);
        waited_for.push(pred);
        depth = depth.max(l);
    }
    Layering { layer, waited_for, depth }
}

/// The circuit's depth: its number of ASAP layers (0 without gates).
pub fn depth(circuit: &Circuit) -> usize {
    layering(circuit.qubits(), circuit.gates()).depth
}

/// Analyze a circuit.
pub fn analyze(circuit: &Circuit) -> Analysis {
    let n = circuit.qubits();
    let gates = circuit.gates();
    let layers = layering(n, gates);

    let mut gate_counts = BTreeMap::new();
    let mut used = vec![false; n];
    let mut edges = Vec::new();
    for gate in gates {
        *gate_counts.entry(gate.kind().name().to_owned()).or_insert(0) += 1;
        for &q in gate.qubits() {
            used[q] = true;
        }
        if let &[a, b] = gate.qubits() {
            edges.push((a.min(b), a.max(b)));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let two_qubit_gates = gates.iter().filter(|g| g.kind().arity() == 2).count();
    let count = |pred: fn(GateKind) -> bool| gates.iter().filter(|g| pred(g.kind())).count();

    let mut layer_widths = vec![0; layers.depth];
    for &l in &layers.layer {
        layer_widths[l - 1] += 1;
    }
    let mut critical_path = Vec::with_capacity(layers.depth);
    let mut at = layers.layer.iter().position(|&l| l == layers.depth);
    while let Some(i) = at {
        critical_path.push(i);
        at = layers.waited_for[i];
    }
    critical_path.reverse();

    let state_vector_bytes = super::Limits::state_bytes(n).and_then(|b| u64::try_from(b).ok());
    Analysis {
        qubits: n,
        gate_count: gates.len(),
        depth: layers.depth,
        gate_counts,
        single_qubit_gates: gates.len() - two_qubit_gates,
        two_qubit_gates,
        t_count: count(|k| matches!(k, GateKind::T | GateKind::Tdg)),
        rotation_count: count(GateKind::is_rotation),
        clifford: gates.iter().all(|g| g.kind().is_clifford()),
        connectivity: connectivity(n, &edges, &used),
        layer_widths,
        critical_path,
        parallelism: if layers.depth == 0 { 0.0 } else { gates.len() as f64 / layers.depth as f64 },
        estimates: Estimates { state_vector_bytes, amplitude_updates: circuit.amplitude_updates() },
    }
}

fn connectivity(n: usize, edges: &[(usize, usize)], used: &[bool]) -> Connectivity {
    let mut degree = vec![0usize; n];
    // Union–find over the qubits, the root of a set being its lowest qubit.
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut q: usize) -> usize {
        while parent[q] != q {
            parent[q] = parent[parent[q]];
            q = parent[q];
        }
        q
    }
    for &(a, b) in edges {
        degree[a] += 1;
        degree[b] += 1;
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        parent[ra.max(rb)] = ra.min(rb);
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for q in 0..n {
        let r = root(&mut parent, q);
        groups.entry(r).or_default().push(q);
    }
    Connectivity {
        edges: edges.to_vec(),
        max_degree: degree.iter().copied().max().unwrap_or(0),
        components: groups.into_values().collect(),
        idle_qubits: (0..n).filter(|&q| !used[q]).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::quantum::Limits;
    use std::f64::consts::PI;

    fn circuit(qubits: usize, gates: Vec<Gate>) -> Circuit {
        Circuit::new(qubits, gates, vec![], &Limits::default()).unwrap()
    }

    #[test]
    fn empty_circuit() {
        let a = analyze(&circuit(3, vec![]));
        assert_eq!(a.depth, 0);
        assert_eq!(a.gate_count, 0);
        assert!(a.layer_widths.is_empty() && a.critical_path.is_empty());
        assert_eq!(a.parallelism, 0.0);
        assert!(a.clifford);
        assert_eq!(a.connectivity.components, vec![vec![0], vec![1], vec![2]]);
        assert_eq!(a.connectivity.idle_qubits, vec![0, 1, 2]);
        assert_eq!(a.estimates, Estimates { state_vector_bytes: Some(128), amplitude_updates: 0 });
    }

    /// Six qubits, the last idle. Layers: H 0, X 1, RZ 2, S 3 | CNOT 0→1, SWAP 3,4 |
    /// T 0, CNOT 1→2 | CZ 2,0 | RX 0, T† 2.
    #[test]
    fn hand_computed_example() {
        let gates = vec![
            Gate::h(0),            // 0: layer 1
            Gate::x(1),            // 1: layer 1
            Gate::rz(2, 0.3),      // 2: layer 1
            Gate::s(3),            // 3: layer 1
            Gate::cnot(0, 1),      // 4: layer 2
            Gate::swap(3, 4),      // 5: layer 2
            Gate::t(0),            // 6: layer 3
            Gate::cnot(1, 2),      // 7: layer 3
            Gate::cz(2, 0),        // 8: layer 4
            Gate::rx(0, PI / 2.0), // 9: layer 5
            Gate::tdg(2),          // 10: layer 5
        ];
        let a = analyze(&circuit(6, gates));
        assert_eq!(a.qubits, 6);
        assert_eq!(a.gate_count, 11);
        assert_eq!(a.depth, 5);
        assert_eq!(a.layer_widths, vec![4, 2, 2, 1, 2]);
        assert_eq!(a.critical_path.len(), 5);
        // Several chains are longest; ties go to the gate on the qubit listed last.
        assert_eq!(a.critical_path, vec![1, 4, 6, 8, 9]);
        assert_eq!(
            a.gate_counts,
            [
                ("CNOT", 2),
                ("CZ", 1),
                ("H", 1),
                ("RX", 1),
                ("RZ", 1),
                ("S", 1),
                ("SWAP", 1),
                ("T", 1),
                ("TDG", 1),
                ("X", 1)
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
        );
        assert_eq!(a.single_qubit_gates, 7);
        assert_eq!(a.two_qubit_gates, 4);
        assert_eq!(a.t_count, 2);
        assert_eq!(a.rotation_count, 2);
        assert!(!a.clifford);
        assert_eq!(a.connectivity.edges, vec![(0, 1), (0, 2), (1, 2), (3, 4)]);
        assert_eq!(a.connectivity.max_degree, 2);
        assert_eq!(a.connectivity.components, vec![vec![0, 1, 2], vec![3, 4], vec![5]]);
        assert_eq!(a.connectivity.idle_qubits, vec![5]);
        assert!((a.parallelism - 11.0 / 5.0).abs() < 1e-12);
        assert_eq!(a.estimates.state_vector_bytes, Some(16 * 64));
        assert_eq!(a.estimates.amplitude_updates, 11 * 64);
    }

    #[test]
    fn critical_path_is_a_dependency_chain() {
        let gates = vec![Gate::h(0), Gate::h(1), Gate::cnot(1, 2), Gate::cnot(2, 3), Gate::x(0), Gate::cz(3, 0)];
        let c = circuit(4, gates.clone());
        let a = analyze(&c);
        assert_eq!(a.depth, 4);
        assert_eq!(a.critical_path, vec![1, 2, 3, 5]);
        for w in a.critical_path.windows(2) {
            assert!(gates[w[0]].qubits().iter().any(|&q| gates[w[1]].acts_on(q)));
        }
        assert_eq!(depth(&c), 4);
    }

    #[test]
    fn clifford_detection() {
        assert!(analyze(&circuit(2, vec![Gate::h(0), Gate::s(0), Gate::cnot(0, 1), Gate::rz(1, -PI / 2.0)])).clifford);
        assert!(analyze(&circuit(1, vec![Gate::rx(0, 3.0 * PI)])).clifford);
        assert!(!analyze(&circuit(1, vec![Gate::ry(0, 0.5)])).clifford);
        assert!(!analyze(&circuit(1, vec![Gate::tdg(0)])).clifford);
    }

    #[test]
    fn parallel_layers() {
        // Four independent H, then two CNOTs in parallel, then one CZ.
        let gates =
            vec![Gate::h(0), Gate::h(1), Gate::h(2), Gate::h(3), Gate::cnot(0, 1), Gate::cnot(2, 3), Gate::cz(1, 2)];
        let a = analyze(&circuit(4, gates));
        assert_eq!(a.layer_widths, vec![4, 2, 1]);
        assert_eq!(a.depth, 3);
        assert!((a.parallelism - 7.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.connectivity.components, vec![vec![0, 1, 2, 3]]);
        assert_eq!(a.connectivity.max_degree, 2);
        assert!(a.connectivity.idle_qubits.is_empty());
    }

    #[test]
    fn estimates_scale_with_qubits() {
        let limits = Limits { max_qubits: 64, max_state_bytes: usize::MAX, ..Limits::default() };
        let c = Circuit::new(24, vec![Gate::h(0); 10], vec![], &limits).unwrap();
        let a = analyze(&c);
        assert_eq!(a.estimates.state_vector_bytes, Some(256 << 20));
        assert_eq!(a.estimates.amplitude_updates, 10 << 24);
        let big = Circuit::new(59, vec![Gate::h(0)], vec![], &limits).unwrap();
        assert_eq!(analyze(&big).estimates.state_vector_bytes, Some(16 << 59));
        assert_eq!(analyze(&big).estimates.amplitude_updates, 1 << 59);
    }
}
