//! A peephole optimizer: rewrites that shorten a circuit without changing what it does, and
//! a state-vector check that two circuits do the same.
//!
//! **Equivalence is up to global phase**, at every level: `e^{iφ}·U` and `U` give the same
//! measurement statistics and the same states as rays, and the wire format has no construct
//! (such as a controlled sub-circuit) that could expose the phase. So `RZ(2π) = −I` is
//! dropped like `RZ(0)`, `Z` and `RZ(π)` are interchangeable, and merged angles are reduced
//! to `(−π, π]`.
//!
//! Two gates are *adjacent* when every gate between them that shares a qubit with the first
//! can be moved past it: at levels 1–2 no gate in between may share a qubit; at level 3 it
//! may if it commutes. A rewrite replaces the pair by their product at the position of the
//! second.
//!
//! The levels, each including the ones below:
//!
//! - **0**: no change.
//! - **1**: drop rotations by a multiple of 2π; cancel adjacent inverse pairs: H H, X X,
//!   Y Y, Z Z, S S†, T T†, CNOT CNOT (same control and target), CZ CZ and SWAP SWAP (either
//!   order).
//! - **2**: merge adjacent gates about the same axis on one qubit: RX(a) RX(b) → RX(a+b),
//!   likewise RY and RZ, where X counts as RX(π), Y as RY(π), and Z, S, S†, T, T† as RZ(π),
//!   RZ(±π/2), RZ(±π/4). Two named gates fold only into a named gate (S S → Z, T T → S,
//!   Z S → S†; S T stays, rather than become a non-Clifford+T RZ(3π/4)); a merged rotation
//!   that equals a named gate up to global phase is written as that gate (RZ(π/4) T → S).
//! - **3**: look past commuting gates. Two gates commute when on every qubit they share both
//!   are functions of the same Pauli operator: Z-type (Z, S, S†, T, T†, RZ, CZ, and a CNOT's
//!   control), X-type (X, RX, a CNOT's target) or Y-type (Y, RY). H and SWAP commute with
//!   nothing they share a qubit with.
//!
//! Level `k` runs in stages: the rules of level 1 to a fixed point, then those of level 2
//! from there, and so on up to `k`; since a rewrite only ever removes gates, a higher level
//! never leaves more gates than a lower one. Every rewrite removes at least one gate, so
//! each stage reaches its fixed point; a stage is bounded by [`MAX_ITERATIONS`] sweeps all
//! the same.

use std::collections::BTreeMap;
use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI, TAU};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use super::analysis::depth;
use super::circuit::Circuit;
use super::gate::{ANGLE_EPSILON, Gate, GateKind};
use super::simulator::StateVector;

/// Up to this many qubits a server should check an optimized circuit against the original
/// with [`equivalent`] (each trial simulates both on 2ⁿ amplitudes).
pub const VERIFY_MAX_QUBITS: usize = 12;

/// Most optimization sweeps over a circuit in one stage (level).
pub const MAX_ITERATIONS: usize = 16;

/// Most gates one gate looks past for a partner at level 3.
const MAX_WALK: usize = 1024;

/// Fidelity above which [`equivalent`] counts two output states equal.
const FIDELITY_TOLERANCE: f64 = 1e-9;

/// How hard to optimize, 0 to 3 (see the [module](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct OptimizationLevel(u8);

impl OptimizationLevel {
    /// Level 0: no change.
    pub const NONE: Self = Self(0);
    /// Level 1: identities and inverse pairs.
    pub const CANCEL: Self = Self(1);
    /// Level 2: + merges of rotations and phases.
    pub const MERGE: Self = Self(2);
    /// Level 3: + looking past commuting gates.
    pub const COMMUTE: Self = Self(3);
    /// Every level, lowest first.
    pub const ALL: [Self; 4] = [Self::NONE, Self::CANCEL, Self::MERGE, Self::COMMUTE];

    /// The level `level`; `None` above 3.
    pub fn new(level: u8) -> Option<Self> {
        (level <= 3).then_some(Self(level))
    }

    /// The level as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for OptimizationLevel {
    type Error = InvalidLevel;

    fn try_from(level: u8) -> Result<Self, Self::Error> {
        Self::new(level).ok_or(InvalidLevel(level))
    }
}

impl From<OptimizationLevel> for u8 {
    fn from(level: OptimizationLevel) -> Self {
        level.0
    }
}

/// An optimization level above 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("optimization level must be 0, 1, 2 or 3, got {0}")]
pub struct InvalidLevel(pub u8);

/// An optimized circuit and what was done to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimized {
    /// The rewritten circuit (same qubits and measurements).
    pub circuit: Circuit,
    /// What changed.
    pub report: OptimizationReport,
}

/// What [`optimize`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptimizationReport {
    /// The level asked for.
    pub level: u8,
    /// Gates before.
    pub gates_before: usize,
    /// Gates after.
    pub gates_after: usize,
    /// Depth before.
    pub depth_before: usize,
    /// Depth after.
    pub depth_after: usize,
    /// The rewrite passes the level enables, in the order of the [module](self) table:
    /// `remove_identities`, `cancel_inverses`, `merge_rotations`, `commute`.
    pub passes: Vec<String>,
    /// How many times each kind of rewrite applied (kinds that never did are left out):
    /// `identities_removed`, `inverses_cancelled`, `rotations_merged`, `phases_folded`,
    /// and `through_commuting` for rewrites (of any kind) that looked past commuting gates.
    pub rewrites: BTreeMap<String, usize>,
    /// Sweeps over the circuit, over all stages; the last sweep of each stage found nothing
    /// more to do unless the stage hit [`MAX_ITERATIONS`].
    pub iterations: usize,
}

/// The kinds of rewrite, as counted in [`OptimizationReport::rewrites`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rewrite {
    IdentityRemoved,
    InverseCancelled,
    RotationMerged,
    PhaseFolded,
}

impl Rewrite {
    fn name(self) -> &'static str {
        match self {
            Self::IdentityRemoved => "identities_removed",
            Self::InverseCancelled => "inverses_cancelled",
            Self::RotationMerged => "rotations_merged",
            Self::PhaseFolded => "phases_folded",
        }
    }
}

/// Optimize `circuit` at `level`. The result is equivalent up to global phase (see
/// [`equivalent`]) and never has more gates.
pub fn optimize(circuit: &Circuit, level: OptimizationLevel) -> Optimized {
    let level = level.get();
    let passes = ["remove_identities", "cancel_inverses", "merge_rotations", "commute"];
    let enabled = match level {
        0 => 0,
        1 => 2,
        2 => 3,
        _ => 4,
    };
    let mut gates = circuit.gates().to_vec();
    let mut rewrites = BTreeMap::new();
    let mut iterations = 0;
    // Each stage starts from the previous stage's fixed point, so a higher level never ends
    // with more gates than a lower one (greedy rewrites in another order could).
    for stage in 1..=level {
        for _ in 0..MAX_ITERATIONS {
            iterations += 1;
            if !sweep(&mut gates, circuit.qubits(), stage, &mut rewrites) {
                break;
            }
        }
    }
    let optimized = circuit.with_gates(gates);
    let report = OptimizationReport {
        level,
        gates_before: circuit.gates().len(),
        gates_after: optimized.gates().len(),
        depth_before: depth(circuit),
        depth_after: depth(&optimized),
        passes: passes[..enabled].iter().map(|&p| p.to_owned()).collect(),
        rewrites,
        iterations,
    };
    Optimized { circuit: optimized, report }
}

/// One pass over the gates, each looking forward for a partner; whether anything changed.
fn sweep(gates: &mut Vec<Gate>, qubits: usize, level: u8, rewrites: &mut BTreeMap<String, usize>) -> bool {
    let mut count = |name: &str| *rewrites.entry(name.to_owned()).or_insert(0) += 1;
    // wires[q]: the indices of the gates on qubit q, in order; at[i][k]: where gate i is in
    // the wire of its k-th qubit.
    let mut wires: Vec<Vec<usize>> = vec![Vec::new(); qubits];
    let mut at = vec![[0usize; 2]; gates.len()];
    for (i, gate) in gates.iter().enumerate() {
        for (k, &q) in gate.qubits().iter().enumerate() {
            at[i][k] = wires[q].len();
            wires[q].push(i);
        }
    }
    let mut slots: Vec<Option<Gate>> = gates.iter().copied().map(Some).collect();
    let mut changed = false;
    for i in 0..slots.len() {
        let Some(gate) = slots[i] else { continue };
        if is_identity(gate.kind()) {
            slots[i] = None;
            count(Rewrite::IdentityRemoved.name());
            changed = true;
            continue;
        }
        if let Some(found) = partner(&slots, &wires, at[i], gate, level) {
            slots[i] = None;
            slots[found.index] = found.product;
            count(found.rewrite.name());
            if found.commuted {
                count("through_commuting");
            }
            changed = true;
        }
    }
    *gates = slots.into_iter().flatten().collect();
    changed
}

/// A gate that combines with the one looking for it.
struct Partner {
    /// Its index.
    index: usize,
    /// The product of the two, which replaces it (none: they cancel).
    product: Option<Gate>,
    rewrite: Rewrite,
    /// Whether commuting gates sharing a qubit were passed on the way.
    commuted: bool,
}

/// Walk forward from `gate` along its wires (`at`: its positions there) to the first gate
/// sharing a qubit with it; if the two combine, that is the partner; at level 3 the walk
/// goes on past gates that commute with `gate`.
fn partner(slots: &[Option<Gate>], wires: &[Vec<usize>], at: [usize; 2], gate: Gate, level: u8) -> Option<Partner> {
    let qs = gate.qubits();
    let mut cursor = [at[0] + 1, at[1] + 1];
    let mut commuted = false;
    for _ in 0..MAX_WALK {
        // The next live gate on any of the gate's wires.
        let mut next: Option<usize> = None;
        for (k, &q) in qs.iter().enumerate() {
            while wires[q].get(cursor[k]).is_some_and(|&j| slots[j].is_none()) {
                cursor[k] += 1;
            }
            if let Some(&j) = wires[q].get(cursor[k]) {
                next = Some(next.map_or(j, |n| n.min(j)));
            }
        }
        let index = next?;
        for (k, &q) in qs.iter().enumerate() {
            if wires[q].get(cursor[k]) == Some(&index) {
                cursor[k] += 1;
            }
        }
        let other = slots[index]?;
        if let Some((product, rewrite)) = combine(gate, other, level) {
            return Some(Partner { index, product, rewrite, commuted });
        }
        if level < 3 || !commutes(&gate, &other) {
            return None;
        }
        commuted = true;
    }
    None
}

/// The product of `first` then `second` when it is shorter, with the rewrite that made it.
fn combine(first: Gate, second: Gate, level: u8) -> Option<(Option<Gate>, Rewrite)> {
    use GateKind::*;
    let (a, b) = (first.qubits(), second.qubits());
    match (first.kind(), second.kind()) {
        (Cnot, Cnot) if a == b => Some((None, Rewrite::InverseCancelled)),
        (Cz, Cz) | (Swap, Swap) if a == b || (a[0] == b[1] && a[1] == b[0]) => Some((None, Rewrite::InverseCancelled)),
        (f, s) if f.arity() == 1 && s.arity() == 1 && a == b => {
            let inverse =
                matches!((f, s), (H, H) | (X, X) | (Y, Y) | (Z, Z) | (S, Sdg) | (Sdg, S) | (T, Tdg) | (Tdg, T));
            if inverse {
                Some((None, Rewrite::InverseCancelled))
            } else if level >= 2 {
                merge(f, s).map(|(kind, rewrite)| (kind.and_then(|k| Gate::new(k, a)), rewrite))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A rotation axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    X,
    Y,
    Z,
}

/// The gate as a rotation about an axis, up to global phase, and whether it was written as
/// a rotation (rather than a named gate).
fn as_rotation(kind: GateKind) -> Option<(Axis, f64, bool)> {
    Some(match kind {
        GateKind::X => (Axis::X, PI, false),
        GateKind::Y => (Axis::Y, PI, false),
        GateKind::Z => (Axis::Z, PI, false),
        GateKind::S => (Axis::Z, FRAC_PI_2, false),
        GateKind::Sdg => (Axis::Z, -FRAC_PI_2, false),
        GateKind::T => (Axis::Z, FRAC_PI_4, false),
        GateKind::Tdg => (Axis::Z, -FRAC_PI_4, false),
        GateKind::Rx(a) => (Axis::X, a, true),
        GateKind::Ry(a) => (Axis::Y, a, true),
        GateKind::Rz(a) => (Axis::Z, a, true),
        _ => return None,
    })
}

/// The named gate equal to a rotation about `axis` by `angle` up to global phase:
/// `Some(None)` for the identity, `None` when no named gate is.
fn named(axis: Axis, angle: f64) -> Option<Option<GateKind>> {
    if same_angle(angle, 0.0) {
        return Some(None);
    }
    let candidates: &[(f64, GateKind)] = match axis {
        Axis::X => &[(PI, GateKind::X)],
        Axis::Y => &[(PI, GateKind::Y)],
        Axis::Z => &[
            (PI, GateKind::Z),
            (FRAC_PI_2, GateKind::S),
            (-FRAC_PI_2, GateKind::Sdg),
            (FRAC_PI_4, GateKind::T),
            (-FRAC_PI_4, GateKind::Tdg),
        ],
    };
    candidates.iter().find(|(a, _)| same_angle(angle, *a)).map(|&(_, k)| Some(k))
}

/// Merge two single-qubit gates about the same axis (level 2).
fn merge(first: GateKind, second: GateKind) -> Option<(Option<GateKind>, Rewrite)> {
    let (axis, a, rotation_a) = as_rotation(first)?;
    let (other_axis, b, rotation_b) = as_rotation(second)?;
    if axis != other_axis {
        return None;
    }
    let sum = wrap(a + b);
    let rotation = rotation_a || rotation_b;
    let rewrite = if rotation { Rewrite::RotationMerged } else { Rewrite::PhaseFolded };
    match named(axis, sum) {
        Some(kind) => Some((kind, rewrite)),
        // S T would become RZ(3π/4): no shorter, and no longer Clifford+T.
        None if !rotation => None,
        None => Some((
            Some(match axis {
                Axis::X => GateKind::Rx(sum),
                Axis::Y => GateKind::Ry(sum),
                Axis::Z => GateKind::Rz(sum),
            }),
            rewrite,
        )),
    }
}

/// A rotation by a multiple of 2π: the identity up to global phase.
fn is_identity(kind: GateKind) -> bool {
    kind.angle().is_some_and(|a| same_angle(a, 0.0))
}

/// Whether two angles are equal modulo 2π.
fn same_angle(a: f64, b: f64) -> bool {
    let d = (a - b).rem_euclid(TAU);
    d < ANGLE_EPSILON || TAU - d < ANGLE_EPSILON
}

/// An angle reduced to `(−π, π]` (a rotation by θ + 2π is minus the rotation by θ).
fn wrap(angle: f64) -> f64 {
    let r = angle.rem_euclid(TAU);
    if r > PI { r - TAU } else { r }
}

/// The Pauli basis a gate is a function of on qubit `q`, if any: two gates commute when on
/// every qubit they share they are functions of the same Pauli operator.
fn basis_on(gate: &Gate, q: usize) -> Option<Axis> {
    match gate.kind() {
        GateKind::Z | GateKind::S | GateKind::Sdg | GateKind::T | GateKind::Tdg | GateKind::Rz(_) | GateKind::Cz => {
            Some(Axis::Z)
        }
        GateKind::X | GateKind::Rx(_) => Some(Axis::X),
        GateKind::Y | GateKind::Ry(_) => Some(Axis::Y),
        GateKind::Cnot if gate.qubits()[0] == q => Some(Axis::Z),
        GateKind::Cnot => Some(Axis::X),
        GateKind::H | GateKind::Swap => None,
    }
}

/// Whether `a` and `b` commute by the rule of [`basis_on`] (sufficient, not necessary).
fn commutes(a: &Gate, b: &Gate) -> bool {
    a.qubits().iter().filter(|&&q| b.acts_on(q)).all(|&q| match (basis_on(a, q), basis_on(b, q)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    })
}

/// Whether `a` and `b` act the same, up to global phase: same qubits and measurements, and
/// on each of `trials` (at least one) random input states, seeded by `seed`, output states
/// with fidelity above 1 − 10⁻⁹. Random superpositions expose any difference in relative
/// phases, so unitaries that differ by more than a global phase fail with probability 1.
///
/// Costs `trials` simulations of each circuit: keep to [`VERIFY_MAX_QUBITS`] or so.
pub fn equivalent(a: &Circuit, b: &Circuit, trials: usize, seed: u64) -> bool {
    if a.qubits() != b.qubits() || a.measured_qubits() != b.measured_qubits() {
        return false;
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..trials.max(1)).all(|_| {
        let input = StateVector::random_from(a.qubits(), &mut rng);
        let mut x = input.clone();
        x.run_valid(a);
        let mut y = input;
        y.run_valid(b);
        x.fidelity(&y) > 1.0 - FIDELITY_TOLERANCE
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::quantum::Limits;
    use crate::quantum::testing::any_gate;
    use proptest::prelude::*;

    fn circuit(qubits: usize, gates: Vec<Gate>) -> Circuit {
        Circuit::new(qubits, gates, vec![], &Limits::default()).unwrap()
    }

    fn level(l: u8) -> OptimizationLevel {
        OptimizationLevel::new(l).unwrap()
    }

    /// Optimize at `l`, check the result is equivalent, and return its gates.
    fn opt(qubits: usize, gates: Vec<Gate>, l: u8) -> Vec<Gate> {
        let c = circuit(qubits, gates);
        let o = optimize(&c, level(l));
        assert!(equivalent(&c, &o.circuit, 3, 11), "level {l} broke {:?} into {:?}", c.gates(), o.circuit.gates());
        assert_eq!(o.report.gates_before, c.gates().len());
        assert_eq!(o.report.gates_after, o.circuit.gates().len());
        o.circuit.gates().to_vec()
    }

    fn rewrites(qubits: usize, gates: Vec<Gate>, l: u8) -> BTreeMap<String, usize> {
        optimize(&circuit(qubits, gates), level(l)).report.rewrites
    }

    #[test]
    fn levels() {
        assert_eq!(OptimizationLevel::new(4), None);
        assert_eq!(
            OptimizationLevel::try_from(9).unwrap_err().to_string(),
            "optimization level must be 0, 1, 2 or 3, got 9"
        );
        assert_eq!(serde_json::to_string(&OptimizationLevel::MERGE).unwrap(), "2");
        assert_eq!(serde_json::from_str::<OptimizationLevel>("3").unwrap(), OptimizationLevel::COMMUTE);
        assert!(serde_json::from_str::<OptimizationLevel>("4").is_err());
        assert!(OptimizationLevel::CANCEL < OptimizationLevel::COMMUTE);
    }

    #[test]
    fn level_zero_changes_nothing() {
        let gates = vec![Gate::h(0), Gate::h(0), Gate::rz(1, 0.0)];
        let o = optimize(&circuit(2, gates.clone()), OptimizationLevel::NONE);
        assert_eq!(o.circuit.gates(), &gates[..]);
        assert_eq!(o.report.iterations, 0);
        assert!(o.report.passes.is_empty() && o.report.rewrites.is_empty());
    }

    #[test]
    fn identities_are_removed() {
        let gates = vec![
            Gate::rz(0, 0.0),
            Gate::rx(0, TAU),
            Gate::ry(1, 2.0 * TAU),
            Gate::rz(1, -TAU),
            Gate::rx(1, 1e-14),
            Gate::h(0),
        ];
        assert_eq!(opt(2, gates.clone(), 1), vec![Gate::h(0)]);
        assert_eq!(rewrites(2, gates, 1), BTreeMap::from([("identities_removed".to_owned(), 5)]));
        assert_eq!(opt(1, vec![Gate::rz(0, 0.1)], 1), vec![Gate::rz(0, 0.1)]);
    }

    #[test]
    fn inverse_pairs_cancel() {
        let pairs = [
            (Gate::h(0), Gate::h(0)),
            (Gate::x(1), Gate::x(1)),
            (Gate::y(0), Gate::y(0)),
            (Gate::z(0), Gate::z(0)),
            (Gate::s(0), Gate::sdg(0)),
            (Gate::sdg(0), Gate::s(0)),
            (Gate::t(1), Gate::tdg(1)),
            (Gate::tdg(1), Gate::t(1)),
            (Gate::cnot(0, 1), Gate::cnot(0, 1)),
            (Gate::cz(0, 1), Gate::cz(1, 0)),
            (Gate::cz(1, 0), Gate::cz(1, 0)),
            (Gate::swap(0, 1), Gate::swap(1, 0)),
        ];
        for (a, b) in pairs {
            assert_eq!(opt(2, vec![a, b], 1), vec![], "{a} {b}");
            assert_eq!(rewrites(2, vec![a, b], 1), BTreeMap::from([("inverses_cancelled".to_owned(), 1)]));
        }
        // Not inverse pairs.
        for (a, b) in [(Gate::cnot(0, 1), Gate::cnot(1, 0)), (Gate::s(0), Gate::s(0)), (Gate::h(0), Gate::h(1))] {
            assert_eq!(opt(2, vec![a, b], 1), vec![a, b], "{a} {b}");
        }
        // Through gates on other qubits, and nested pairs over iterations.
        assert_eq!(
            opt(3, vec![Gate::h(0), Gate::x(1), Gate::cz(1, 2), Gate::h(0)], 1),
            vec![Gate::x(1), Gate::cz(1, 2)]
        );
        let nested = vec![Gate::h(0), Gate::x(0), Gate::cnot(0, 1), Gate::cnot(0, 1), Gate::x(0), Gate::h(0)];
        let o = optimize(&circuit(2, nested), level(1));
        assert!(o.circuit.gates().is_empty());
        assert!(o.report.iterations >= 2);
        // Blocked by a gate on a shared qubit.
        assert_eq!(opt(2, vec![Gate::h(0), Gate::cnot(0, 1), Gate::h(0)], 3).len(), 3);
        assert_eq!(opt(2, vec![Gate::cnot(0, 1), Gate::h(1), Gate::cnot(0, 1)], 3).len(), 3);
    }

    #[test]
    fn rotations_merge_at_level_two() {
        assert_eq!(opt(1, vec![Gate::rz(0, 0.3), Gate::rz(0, 0.4)], 1).len(), 2);
        let merged = opt(1, vec![Gate::rz(0, 0.3), Gate::rz(0, 0.4)], 2);
        assert_eq!(merged.len(), 1);
        assert!(matches!(merged[0].kind(), GateKind::Rz(a) if (a - 0.7).abs() < 1e-12));
        let merged = opt(2, vec![Gate::rx(1, 3.0), Gate::rx(1, 3.5)], 2);
        assert!(matches!(merged[0].kind(), GateKind::Rx(a) if (a - (6.5 - TAU)).abs() < 1e-12), "{merged:?}");
        assert_eq!(opt(1, vec![Gate::ry(0, 1.0), Gate::ry(0, -1.0)], 2), vec![]);
        assert_eq!(opt(1, vec![Gate::ry(0, 1.0), Gate::rx(0, -1.0)], 2).len(), 2);
        assert_eq!(opt(1, vec![Gate::rz(0, FRAC_PI_4), Gate::t(0)], 2), vec![Gate::s(0)]);
        assert_eq!(opt(1, vec![Gate::rx(0, 1.0), Gate::x(0), Gate::rx(0, -1.0)], 2), vec![Gate::x(0)]);
        assert_eq!(opt(1, vec![Gate::y(0), Gate::ry(0, -PI)], 2), vec![]);
        assert_eq!(
            rewrites(1, vec![Gate::rz(0, 0.3), Gate::rz(0, 0.4), Gate::rz(0, 0.5)], 2),
            BTreeMap::from([("rotations_merged".to_owned(), 2)])
        );
    }

    #[test]
    fn phases_fold_at_level_two() {
        assert_eq!(opt(1, vec![Gate::s(0), Gate::s(0)], 1).len(), 2);
        assert_eq!(opt(1, vec![Gate::s(0), Gate::s(0)], 2), vec![Gate::z(0)]);
        assert_eq!(opt(1, vec![Gate::t(0), Gate::t(0)], 2), vec![Gate::s(0)]);
        assert_eq!(opt(1, vec![Gate::tdg(0), Gate::tdg(0)], 2), vec![Gate::sdg(0)]);
        assert_eq!(opt(1, vec![Gate::z(0), Gate::s(0)], 2), vec![Gate::sdg(0)]);
        assert_eq!(opt(1, vec![Gate::t(0); 8], 2), vec![]);
        assert_eq!(opt(1, vec![Gate::t(0); 4], 2), vec![Gate::z(0)]);
        // S T is RZ(3π/4): no named gate, so it stays.
        assert_eq!(opt(1, vec![Gate::s(0), Gate::t(0)], 2), vec![Gate::s(0), Gate::t(0)]);
        assert_eq!(rewrites(1, vec![Gate::t(0), Gate::t(0)], 2), BTreeMap::from([("phases_folded".to_owned(), 1)]));
    }

    #[test]
    fn level_three_looks_through_commuting_gates() {
        // Diagonal gates on a CNOT's control.
        let g = vec![Gate::t(0), Gate::cnot(0, 1), Gate::tdg(0)];
        assert_eq!(opt(2, g.clone(), 2).len(), 3);
        assert_eq!(opt(2, g.clone(), 3), vec![Gate::cnot(0, 1)]);
        assert_eq!(
            rewrites(2, g, 3),
            BTreeMap::from([("inverses_cancelled".to_owned(), 1), ("through_commuting".to_owned(), 1)])
        );
        // X-type gates on a CNOT's target.
        assert_eq!(
            opt(2, vec![Gate::x(1), Gate::cnot(0, 1), Gate::rx(1, 0.5), Gate::x(1)], 3),
            vec![Gate::cnot(0, 1), Gate::rx(1, 0.5)]
        );
        // Diagonal gates past CZ and each other: RZ(0.2)·S·RZ(0.3) = RZ(0.5 + π/2).
        let merged = opt(3, vec![Gate::rz(0, 0.2), Gate::cz(0, 2), Gate::s(0), Gate::rz(0, 0.3)], 3);
        assert_eq!(merged.len(), 2);
        assert!(matches!(merged[1].kind(), GateKind::Rz(a) if (a - 0.5 - FRAC_PI_2).abs() < 1e-12), "{merged:?}");
        // CNOTs sharing a control, or a target.
        assert_eq!(opt(3, vec![Gate::cnot(0, 1), Gate::cnot(0, 2), Gate::cnot(0, 1)], 3), vec![Gate::cnot(0, 2)]);
        assert_eq!(opt(3, vec![Gate::cnot(0, 2), Gate::cnot(1, 2), Gate::cnot(0, 2)], 3), vec![Gate::cnot(1, 2)]);
        assert_eq!(opt(3, vec![Gate::cz(0, 1), Gate::cnot(0, 2), Gate::cz(1, 0)], 3), vec![Gate::cnot(0, 2)]);
        // Not commuting: Z on a CNOT's target, X on its control, CNOTs in opposite directions.
        assert_eq!(opt(2, vec![Gate::z(1), Gate::cnot(0, 1), Gate::z(1)], 3).len(), 3);
        assert_eq!(opt(2, vec![Gate::x(0), Gate::cnot(0, 1), Gate::x(0)], 3).len(), 3);
        assert_eq!(opt(2, vec![Gate::cnot(0, 1), Gate::cnot(1, 0), Gate::cnot(0, 1)], 3).len(), 3);
        assert_eq!(opt(2, vec![Gate::s(0), Gate::swap(0, 1), Gate::sdg(0)], 3).len(), 3);
        assert_eq!(opt(1, vec![Gate::t(0), Gate::h(0), Gate::tdg(0)], 3).len(), 3);
    }

    /// Three qubits where each level finds more: identities, then inverse pairs through
    /// CNOT controls and targets.
    fn examples_first() -> Vec<Gate> {
        vec![
            Gate::h(0),
            Gate::t(0),
            Gate::cnot(0, 1),
            Gate::t(0),
            Gate::rz(2, 0.0),
            Gate::s(0),
            Gate::cnot(0, 1),
            Gate::h(0),
            Gate::h(0),
            Gate::x(2),
            Gate::cnot(1, 2),
            Gate::x(2),
        ]
    }

    #[test]
    fn level_ordering_on_examples() {
        let examples: Vec<(usize, Vec<Gate>)> = vec![
            (3, examples_first()),
            (
                2,
                vec![
                    Gate::rz(0, 0.5),
                    Gate::cnot(0, 1),
                    Gate::rz(0, -0.5),
                    Gate::s(1),
                    Gate::s(1),
                    Gate::z(1),
                    Gate::cz(0, 1),
                ],
            ),
            (4, vec![Gate::cnot(0, 1), Gate::cnot(2, 3), Gate::cnot(0, 1), Gate::swap(2, 3), Gate::swap(3, 2)]),
        ];
        for (n, gates) in examples {
            let counts: Vec<usize> = (0..4).map(|l| opt(n, gates.clone(), l).len()).collect();
            assert_eq!(counts[0], gates.len());
            assert!(counts.windows(2).all(|w| w[1] <= w[0]), "{counts:?}");
        }
        let first = examples_first();
        let counts: Vec<usize> = (0..4).map(|l| opt(3, first.clone(), l).len()).collect();
        // 1: RZ(0) and H H go. 2: nothing more is adjacent (T and S around a CNOT control,
        // and T·S has no named gate). 3: T·T → S and S·S → Z through the CNOT controls, the
        // CNOT pair then cancels, and so does X X around the target of CNOT 1→2.
        assert_eq!(counts, vec![12, 9, 9, 3]);
        let o = optimize(&circuit(3, first), level(3));
        assert_eq!(o.circuit.gates(), &[Gate::h(0), Gate::z(0), Gate::cnot(1, 2)]);
        assert_eq!(o.report.depth_before, 8);
        assert_eq!(o.report.passes, vec!["remove_identities", "cancel_inverses", "merge_rotations", "commute"]);
    }

    #[test]
    fn equivalence_is_up_to_global_phase_and_detects_differences() {
        let one = |g: Gate| circuit(2, vec![g]);
        assert!(!equivalent(&one(Gate::h(0)), &one(Gate::x(0)), 1, 0));
        assert!(equivalent(&one(Gate::z(0)), &one(Gate::rz(0, PI)), 4, 0));
        assert!(equivalent(&one(Gate::rz(0, TAU)), &circuit(2, vec![]), 4, 0));
        assert!(!equivalent(&one(Gate::z(0)), &one(Gate::z(1)), 4, 0));
        assert!(!equivalent(&one(Gate::s(0)), &one(Gate::sdg(0)), 4, 0));
        // CNOT vs CZ differ only in relative phases on some inputs: random inputs see it.
        assert!(!equivalent(&one(Gate::cnot(0, 1)), &one(Gate::cz(0, 1)), 1, 5));
        assert!(!equivalent(&one(Gate::h(0)), &circuit(3, vec![Gate::h(0)]), 4, 0));
        let measured = Circuit::new(2, vec![Gate::h(0)], vec![0], &Limits::default()).unwrap();
        assert!(!equivalent(&one(Gate::h(0)), &measured, 4, 0));
        // An optimizer that dropped a CNOT, or one gate in twenty, would be caught.
        let gates: Vec<Gate> =
            (0..20).map(|i| if i % 2 == 0 { Gate::h(i % 3) } else { Gate::cnot(i % 3, (i + 1) % 3) }).collect();
        let c = circuit(3, gates.clone());
        for drop in 0..gates.len() {
            let mut broken = gates.clone();
            broken.remove(drop);
            assert!(!equivalent(&c, &circuit(3, broken), 2, drop as u64), "dropping gate {drop}");
        }
    }

    /// Circuits on few qubits and few gate kinds, so that rewrites actually fire.
    fn dense_gate(qubits: usize) -> impl Strategy<Value = Gate> {
        let kinds = proptest::sample::select(vec![
            GateKind::T,
            GateKind::Tdg,
            GateKind::S,
            GateKind::X,
            GateKind::H,
            GateKind::Rz(FRAC_PI_4),
            GateKind::Rx(PI),
            GateKind::Cnot,
            GateKind::Cz,
        ]);
        (kinds, 0..qubits, 1..qubits).prop_map(move |(kind, a, d)| {
            let b = (a + d) % qubits;
            if kind.arity() == 1 { Gate::new(kind, &[a]) } else { Gate::new(kind, &[a, b]) }.unwrap()
        })
    }

    proptest! {
        /// Every level keeps the circuit equivalent and never adds gates.
        #[test]
        fn optimization_preserves_semantics(
            (qubits, gates) in (2usize..7).prop_flat_map(|n| (Just(n), proptest::collection::vec(any_gate(n), 0..60))),
            seed in any::<u64>(),
        ) {
            let c = circuit(qubits, gates);
            for l in OptimizationLevel::ALL {
                let o = optimize(&c, l);
                prop_assert!(
                    equivalent(&c, &o.circuit, 2, seed),
                    "level {} broke it:\n{:?}\n→ {:?}", l.get(), c.gates(), o.circuit.gates()
                );
                prop_assert!(o.report.gates_after <= o.report.gates_before);
                prop_assert_eq!(o.circuit.measurements(), c.measurements());
                prop_assert!(o.report.iterations <= MAX_ITERATIONS * usize::from(l.get()));
                // Optimizing again at the same level finds nothing more (a fixed point).
                if l.get() > 0 && o.report.iterations < MAX_ITERATIONS {
                    let again = optimize(&o.circuit, l);
                    prop_assert_eq!(again.circuit.gates(), o.circuit.gates());
                }
            }
        }

        /// The same on circuits dense in cancellable gates.
        #[test]
        fn optimization_preserves_semantics_on_dense_circuits(
            (qubits, gates) in (2usize..4)
                .prop_flat_map(|n| (Just(n), proptest::collection::vec(dense_gate(n), 0..60))),
            seed in any::<u64>(),
        ) {
            let c = circuit(qubits, gates);
            let mut counts = Vec::new();
            for l in OptimizationLevel::ALL {
                let o = optimize(&c, l);
                prop_assert!(
                    equivalent(&c, &o.circuit, 2, seed),
                    "level {} broke it:\n{:?}\n→ {:?}", l.get(), c.gates(), o.circuit.gates()
                );
                counts.push(o.report.gates_after);
            }
            prop_assert!(counts.windows(2).all(|w| w[1] <= w[0]), "{:?} for {:?}", counts, c.gates());
        }
    }
}
