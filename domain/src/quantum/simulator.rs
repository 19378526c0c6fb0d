//! A state-vector simulator and seeded measurement sampling.
//!
//! The state of `n` qubits is `2ⁿ` complex amplitudes; bit `q` of a basis index is qubit `q`
//! (qubit 0 is the least significant bit), so `|x⟩` with `x = 6` on three qubits has qubits
//! 1 and 2 set. Gates are applied in place: a single-qubit gate walks the pairs of
//! amplitudes that differ only in its qubit, a two-qubit gate the quadruples that differ only
//! in its two qubits, touching each amplitude at most once; diagonal gates touch only the
//! amplitudes they change. Nothing is allocated per gate.
//!
//! [`execute`] samples measurement outcomes from the final state with a ChaCha20 generator
//! seeded by the caller, so the same circuit, shots and seed always give the same counts.
//! Result bitstrings have one character per measured qubit: character `i` is the outcome of
//! the `i`-th entry of `measurements` (of qubit `i` when every qubit is measured).
//!
//! A result lists at most [`Sampling::max_outcomes`] outcomes ([`MAX_OUTCOMES`] for
//! [`execute`]), chosen without building a map of all `2ᵐ` outcomes; [`execute_with`] also
//! stops between gates when the caller's cancellation flag is set.

use std::collections::{BTreeMap, BinaryHeap};
use std::f64::consts::{FRAC_1_SQRT_2, PI};
use std::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub};
use std::sync::atomic::{AtomicBool, Ordering};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use super::circuit::Circuit;
use super::error::CircuitError;
use super::gate::{Gate, GateKind};

/// Marginal probabilities below this are left out of [`Execution::probabilities`].
pub const PROBABILITY_CUTOFF: f64 = 1e-12;

/// A complex number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Complex {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl Complex {
    /// 0.
    pub const ZERO: Self = Self::new(0.0, 0.0);
    /// 1.
    pub const ONE: Self = Self::new(1.0, 0.0);
    /// The imaginary unit.
    pub const I: Self = Self::new(0.0, 1.0);

    /// `re + i·im`.
    pub const fn new(re: f64, im: f64) -> Self {
        Self { re, im }
    }

    /// `e^{iθ}`.
    pub fn cis(theta: f64) -> Self {
        let (s, c) = theta.sin_cos();
        Self::new(c, s)
    }

    /// The complex conjugate.
    pub fn conj(self) -> Self {
        Self::new(self.re, -self.im)
    }

    /// `|z|²`.
    pub fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }

    /// `|z|`.
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }

    /// `z · k` for a real `k`.
    pub fn scale(self, k: f64) -> Self {
        Self::new(self.re * k, self.im * k)
    }

    /// `z · i`.
    fn times_i(self) -> Self {
        Self::new(-self.im, self.re)
    }
}

impl Add for Complex {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self::new(self.re + o.re, self.im + o.im)
    }
}

impl AddAssign for Complex {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

impl Sub for Complex {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self::new(self.re - o.re, self.im - o.im)
    }
}

impl Mul for Complex {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        Self::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }
}

impl MulAssign for Complex {
    fn mul_assign(&mut self, o: Self) {
        *self = *self * o;
    }
}

impl Mul<f64> for Complex {
    type Output = Self;
    fn mul(self, k: f64) -> Self {
        self.scale(k)
    }
}

impl Neg for Complex {
    type Output = Self;
    fn neg(self) -> Self {
        Self::new(-self.re, -self.im)
    }
}

/// The state of a register of qubits: `2ⁿ` amplitudes, with a count of the gates applied.
#[derive(Clone, Debug)]
pub struct StateVector {
    qubits: usize,
    amplitudes: Vec<Complex>,
    gate_applications: u64,
}

impl StateVector {
    /// `|0…0⟩` on `qubits` qubits.
    ///
    /// # Panics
    /// When `2^qubits` amplitudes cannot be addressed (60 qubits and more); check the size
    /// with [`crate::quantum::Limits`] first, as [`Circuit`] validation does.
    pub fn zero(qubits: usize) -> Self {
        let len = super::Limits::state_bytes(qubits).map(|b| b / super::limits::AMPLITUDE_BYTES);
        let Some(len) = len else { panic!("a {qubits}-qubit state vector cannot be addressed") };
        let mut amplitudes = vec![Complex::ZERO; len];
        amplitudes[0] = Complex::ONE;
        Self { qubits, amplitudes, gate_applications: 0 }
    }

    /// The basis state `|index⟩` on `qubits` qubits; `None` when `index ≥ 2^qubits`.
    ///
    /// # Panics
    /// As [`StateVector::zero`].
    pub fn basis(qubits: usize, index: usize) -> Option<Self> {
        let mut state = Self::zero(qubits);
        if index >= state.amplitudes.len() {
            return None;
        }
        state.amplitudes[0] = Complex::ZERO;
        state.amplitudes[index] = Complex::ONE;
        Some(state)
    }

    /// A state with the given amplitudes, as they are (not normalized); `None` unless their
    /// number is a power of two, at least 2.
    pub fn from_amplitudes(amplitudes: Vec<Complex>) -> Option<Self> {
        let len = amplitudes.len();
        if len < 2 || !len.is_power_of_two() {
            return None;
        }
        Some(Self { qubits: len.trailing_zeros() as usize, amplitudes, gate_applications: 0 })
    }

    /// A random normalized state on `qubits` qubits (Gaussian amplitudes, so uniformly
    /// distributed on the sphere), a pure function of `seed`.
    ///
    /// # Panics
    /// As [`StateVector::zero`].
    pub fn random(qubits: usize, seed: u64) -> Self {
        Self::random_from(qubits, &mut ChaCha20Rng::seed_from_u64(seed))
    }

    pub(crate) fn random_from(qubits: usize, rng: &mut ChaCha20Rng) -> Self {
        let mut state = Self::zero(qubits);
        for a in &mut state.amplitudes {
            // Box–Muller: two uniforms to two independent standard normals.
            let u1 = 1.0 - uniform(rng); // (0, 1], so the logarithm is finite
            let u2 = uniform(rng);
            let r = (-2.0 * u1.ln()).sqrt();
            *a = Complex::cis(2.0 * PI * u2).scale(r);
        }
        state.normalize();
        state
    }

    /// Number of qubits.
    pub fn qubits(&self) -> usize {
        self.qubits
    }

    /// The amplitudes, indexed by basis state (bit `q` of the index is qubit `q`).
    pub fn amplitudes(&self) -> &[Complex] {
        &self.amplitudes
    }

    /// The probability of each basis state, `|amplitude|²`.
    pub fn probabilities(&self) -> Vec<f64> {
        self.amplitudes.iter().map(|a| a.norm_sqr()).collect()
    }

    /// `⟨ψ|ψ⟩`: 1 for a normalized state.
    pub fn norm_sqr(&self) -> f64 {
        self.amplitudes.iter().map(|a| a.norm_sqr()).sum()
    }

    /// Scale to norm 1 (a zero vector is left as it is).
    pub fn normalize(&mut self) {
        let norm = self.norm_sqr().sqrt();
        if norm > 0.0 {
            let k = 1.0 / norm;
            for a in &mut self.amplitudes {
                *a = a.scale(k);
            }
        }
    }

    /// `⟨self|other⟩`; `None` when the registers differ in size.
    pub fn inner(&self, other: &Self) -> Option<Complex> {
        if self.amplitudes.len() != other.amplitudes.len() {
            return None;
        }
        let mut sum = Complex::ZERO;
        for (a, b) in self.amplitudes.iter().zip(&other.amplitudes) {
            sum += a.conj() * *b;
        }
        Some(sum)
    }

    /// `|⟨self|other⟩|²`: 1 for states equal up to global phase, 0 for orthogonal states or
    /// registers of different sizes.
    pub fn fidelity(&self, other: &Self) -> f64 {
        self.inner(other).map_or(0.0, Complex::norm_sqr)
    }

    /// Gates applied to this state so far.
    pub fn gate_applications(&self) -> u64 {
        self.gate_applications
    }

    /// Apply one gate.
    ///
    /// # Errors
    /// A [`CircuitError`] at `gate` when a qubit is out of range or a two-qubit gate names
    /// the same qubit twice; the state is then unchanged.
    pub fn apply(&mut self, gate: &Gate) -> Result<(), CircuitError> {
        let qs = gate.qubits();
        if let Some(&q) = qs.iter().find(|&&q| q >= self.qubits) {
            return Err(CircuitError::new(
                "gate",
                format!("qubit {q} is out of range: the state has {} qubits", self.qubits),
            ));
        }
        if qs.len() == 2 && qs[0] == qs[1] {
            return Err(CircuitError::new("gate", format!("{} needs two different qubits", gate.kind().name())));
        }
        self.apply_valid(gate);
        Ok(())
    }

    /// Apply every gate of `circuit`.
    ///
    /// # Errors
    /// A [`CircuitError`] at `circuit.qubits` when the circuit is for another number of
    /// qubits; the state is then unchanged.
    pub fn run(&mut self, circuit: &Circuit) -> Result<(), CircuitError> {
        if circuit.qubits() != self.qubits {
            return Err(CircuitError::new(
                "circuit.qubits",
                format!("the circuit has {} qubits, the state {}", circuit.qubits(), self.qubits),
            ));
        }
        self.run_valid(circuit);
        Ok(())
    }

    /// Apply a circuit already known to fit this state.
    pub(crate) fn run_valid(&mut self, circuit: &Circuit) {
        for gate in circuit.gates() {
            self.apply_valid(gate);
        }
    }

    /// Apply a gate whose qubits are in range and distinct.
    fn apply_valid(&mut self, gate: &Gate) {
        let amps = &mut self.amplitudes[..];
        let q = gate.qubits()[0];
        match gate.kind() {
            GateKind::H => pairs(amps, q, |a, b| {
                let (x, y) = (*a, *b);
                *a = (x + y).scale(FRAC_1_SQRT_2);
                *b = (x - y).scale(FRAC_1_SQRT_2);
            }),
            GateKind::X => pairs(amps, q, std::mem::swap),
            GateKind::Y => pairs(amps, q, |a, b| {
                // Y = [[0, −i], [i, 0]]
                let (x, y) = (*a, *b);
                *a = -y.times_i();
                *b = x.times_i();
            }),
            GateKind::Z => upper(amps, q, |b| *b = -*b),
            GateKind::S => upper(amps, q, |b| *b = b.times_i()),
            GateKind::Sdg => upper(amps, q, |b| *b = -b.times_i()),
            GateKind::T => {
                let phase = Complex::new(FRAC_1_SQRT_2, FRAC_1_SQRT_2);
                upper(amps, q, |b| *b *= phase);
            }
            GateKind::Tdg => {
                let phase = Complex::new(FRAC_1_SQRT_2, -FRAC_1_SQRT_2);
                upper(amps, q, |b| *b *= phase);
            }
            GateKind::Rz(theta) => {
                let (lo, hi) = (Complex::cis(-theta / 2.0), Complex::cis(theta / 2.0));
                pairs(amps, q, |a, b| {
                    *a *= lo;
                    *b *= hi;
                });
            }
            GateKind::Rx(theta) => {
                // [[c, −is], [−is, c]]
                let (s, c) = (theta / 2.0).sin_cos();
                pairs(amps, q, |a, b| {
                    let (x, y) = (*a, *b);
                    *a = x.scale(c) - y.times_i().scale(s);
                    *b = y.scale(c) - x.times_i().scale(s);
                });
            }
            GateKind::Ry(theta) => {
                // [[c, −s], [s, c]]
                let (s, c) = (theta / 2.0).sin_cos();
                pairs(amps, q, |a, b| {
                    let (x, y) = (*a, *b);
                    *a = x.scale(c) - y.scale(s);
                    *b = x.scale(s) + y.scale(c);
                });
            }
            GateKind::Cnot => {
                let (c, t) = (1usize << q, 1usize << gate.qubits()[1]);
                quads(amps.len(), q, gate.qubits()[1], |i| amps.swap(i | c, i | c | t));
            }
            GateKind::Cz => {
                let both = (1usize << q) | (1usize << gate.qubits()[1]);
                quads(amps.len(), q, gate.qubits()[1], |i| amps[i | both] = -amps[i | both]);
            }
            GateKind::Swap => {
                let (a, b) = (1usize << q, 1usize << gate.qubits()[1]);
                quads(amps.len(), q, gate.qubits()[1], |i| amps.swap(i | a, i | b));
            }
        }
        self.gate_applications += 1;
    }

    /// Probability of each outcome of the `measured` qubits, indexed like the bitstrings:
    /// bit `i` of the index is the outcome of `measured[i]`.
    fn marginal(&self, measured: &[usize]) -> Vec<f64> {
        if measured.iter().copied().eq(0..self.qubits) {
            return self.probabilities();
        }
        // One table per byte of the basis index: the measured bits that byte contributes.
        let tables: Vec<[usize; 256]> = (0..self.qubits.div_ceil(8))
            .map(|byte| {
                let mut table = [0usize; 256];
                for (v, entry) in table.iter_mut().enumerate() {
                    for (i, &q) in measured.iter().enumerate() {
                        if q / 8 == byte && (v >> (q % 8)) & 1 == 1 {
                            *entry |= 1 << i;
                        }
                    }
                }
                table
            })
            .collect();
        let mut out = vec![0.0; 1usize << measured.len()];
        for (index, a) in self.amplitudes.iter().enumerate() {
            let mut k = 0;
            for (byte, table) in tables.iter().enumerate() {
                k |= table[(index >> (8 * byte)) & 0xff];
            }
            out[k] += a.norm_sqr();
        }
        out
    }
}

/// For each pair of indices differing only in bit `q` (`a` with the bit clear, `b` set).
fn pairs(amps: &mut [Complex], q: usize, mut f: impl FnMut(&mut Complex, &mut Complex)) {
    let stride = 1usize << q;
    for chunk in amps.chunks_exact_mut(2 * stride) {
        let (lo, hi) = chunk.split_at_mut(stride);
        for (a, b) in lo.iter_mut().zip(hi) {
            f(a, b);
        }
    }
}

/// For each amplitude with bit `q` set (a diagonal gate that leaves `|0⟩` alone).
fn upper(amps: &mut [Complex], q: usize, mut f: impl FnMut(&mut Complex)) {
    let stride = 1usize << q;
    for chunk in amps.chunks_exact_mut(2 * stride) {
        chunk[stride..].iter_mut().for_each(&mut f);
    }
}

/// For each index `i < len` with bits `a` and `b` both clear: the four amplitudes
/// `i`, `i|2^a`, `i|2^b`, `i|2^a|2^b` form one quadruple of a two-qubit gate.
fn quads(len: usize, a: usize, b: usize, mut f: impl FnMut(usize)) {
    let (lo, hi) = (1usize << a.min(b), 1usize << a.max(b));
    for h in (0..len).step_by(2 * hi) {
        for l in (h..h + hi).step_by(2 * lo) {
            for i in l..l + lo {
                f(i);
            }
        }
    }
}

/// A uniform double in `[0, 1)` from the top 53 bits of a random word.
pub(crate) fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The final state of `circuit` applied to `|0…0⟩`.
pub fn simulate(circuit: &Circuit) -> StateVector {
    let mut state = StateVector::zero(circuit.qubits());
    state.run_valid(circuit);
    state
}

/// Most outcomes one [`Execution`] lists in [`Execution::probabilities`] and in
/// [`Execution::counts`] (the most likely, and the most often sampled, first).
pub const MAX_OUTCOMES: usize = 4096;

/// How an execution samples, and how much of the result it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// Shots to sample (checked by the caller against [`crate::quantum::Limits::check_shots`]).
    pub shots: u64,
    /// Seed of the ChaCha20 generator the shots are drawn with.
    pub seed: u64,
    /// Most outcomes listed in each of [`Execution::probabilities`] and [`Execution::counts`].
    pub max_outcomes: usize,
}

/// A run stopped because its cancellation flag was set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the simulation was cancelled")]
pub struct Cancelled;

/// The result of running a circuit and measuring it.
///
/// At most [`Sampling::max_outcomes`] outcomes are listed in each map: when more outcomes
/// have a probability of at least [`PROBABILITY_CUTOFF`], `probabilities` holds the most
/// likely ones (ties: the smaller bitstring first) and `probabilities_truncated` is set;
/// when more distinct outcomes were sampled, `counts` holds the most often sampled ones
/// (same tie rule) and `unlisted_shots` says how many shots fell on the others. Below the
/// bound both maps are complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// How often each outcome was sampled; outcomes never sampled are absent.
    pub counts: BTreeMap<String, u64>,
    /// The exact probability of each outcome of the measured qubits (below
    /// [`PROBABILITY_CUTOFF`] left out).
    pub probabilities: BTreeMap<String, f64>,
    /// Whether outcomes of probability at least [`PROBABILITY_CUTOFF`] were left out of
    /// `probabilities` for the bound.
    #[serde(default)]
    pub probabilities_truncated: bool,
    /// Shots whose outcomes were left out of `counts` for the bound (0: `counts` sums to
    /// `shots`).
    #[serde(default)]
    pub unlisted_shots: u64,
    /// The qubits behind the bitstring characters, in order.
    pub measured_qubits: Vec<usize>,
    /// Gates applied to the state.
    pub gate_applications: u64,
    /// Shots sampled.
    pub shots: u64,
}

/// Simulate `circuit`, then sample `shots` outcomes of its measured qubits from the final
/// distribution with ChaCha20 seeded by `seed` (same inputs, same counts), listing at most
/// [`MAX_OUTCOMES`] outcomes. `shots = 0` gives no counts but still the probabilities. The
/// caller checks `shots` against [`crate::quantum::Limits::check_shots`].
pub fn execute(circuit: &Circuit, shots: u64, seed: u64) -> Execution {
    let sampling = Sampling { shots, seed, max_outcomes: MAX_OUTCOMES };
    match execute_checked(circuit, &sampling, || Ok::<(), std::convert::Infallible>(())) {
        Ok(run) => run,
        Err(never) => match never {},
    }
}

/// [`execute`] with `sampling`, stopping with [`Cancelled`] as soon as `cancel` is seen set:
/// it is read before each gate and between the steps of measuring, so a run stops within
/// one gate's work of the flag being set.
///
/// Memory beyond the state vector is bounded: the distribution of a full measurement is
/// read from the amplitudes, that of a partial one takes 8·2ᵐ bytes for `m` measured
/// qubits (at most a quarter of the state vector), the shots take 8 bytes each while they
/// are sorted, and each result map at most `sampling.max_outcomes` entries — never one
/// entry per possible outcome.
///
/// # Errors
/// [`Cancelled`] when `cancel` was set.
pub fn execute_with(circuit: &Circuit, sampling: &Sampling, cancel: &AtomicBool) -> Result<Execution, Cancelled> {
    execute_checked(circuit, sampling, || if cancel.load(Ordering::Relaxed) { Err(Cancelled) } else { Ok(()) })
}

fn execute_checked<E>(
    circuit: &Circuit,
    sampling: &Sampling,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<Execution, E> {
    check()?;
    let mut state = StateVector::zero(circuit.qubits());
    for gate in circuit.gates() {
        check()?;
        state.apply_valid(gate);
    }
    check()?;
    let measured = circuit.measured_qubits();
    let width = measured.len();
    let weights = if measured.iter().copied().eq(0..state.qubits) {
        Weights::Amplitudes(&state.amplitudes)
    } else {
        Weights::Marginal(state.marginal(&measured))
    };
    check()?;
    let mut likely = Top::new(sampling.max_outcomes);
    for k in 0..weights.len() {
        let p = weights.get(k);
        if p >= PROBABILITY_CUTOFF {
            likely.offer(p, order_key(k, width), k);
        }
    }
    let probabilities_truncated = likely.left_out;
    let probabilities = likely.into_sorted().into_iter().map(|(p, k)| (bitstring(k, width), p)).collect();
    check()?;
    let (sampled, unlisted_shots) = sample(&weights, sampling, width);
    let counts = sampled.into_iter().map(|(n, k)| (bitstring(k, width), n)).collect();
    Ok(Execution {
        counts,
        probabilities,
        probabilities_truncated,
        unlisted_shots,
        measured_qubits: measured,
        gate_applications: state.gate_applications(),
        shots: sampling.shots,
    })
}

/// The weight of each outcome: the amplitudes' `|a|²` for a full measurement, else the
/// marginal distribution.
enum Weights<'a> {
    Amplitudes(&'a [Complex]),
    Marginal(Vec<f64>),
}

impl Weights<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Amplitudes(a) => a.len(),
            Self::Marginal(m) => m.len(),
        }
    }

    fn get(&self, k: usize) -> f64 {
        match self {
            Self::Amplitudes(a) => a[k].norm_sqr(),
            Self::Marginal(m) => m[k],
        }
    }
}

/// The order of outcome `k`'s bitstring among the bitstrings of `width` characters
/// (character `i` is bit `i`, so the order of the bit-reversed index).
fn order_key(k: usize, width: usize) -> usize {
    if width == 0 { 0 } else { k.reverse_bits() >> (usize::BITS as usize - width) }
}

/// One outcome offered to a [`Top`]: greater is worse (a smaller value, then a later
/// bitstring), so the heap's top is the one to drop first.
#[derive(Clone, Copy, Debug)]
struct Candidate<V> {
    value: V,
    key: usize,
    outcome: usize,
}

impl<V: PartialOrd> Candidate<V> {
    fn worse(&self, other: &Self) -> std::cmp::Ordering {
        other.value.partial_cmp(&self.value).unwrap_or(std::cmp::Ordering::Equal).then(self.key.cmp(&other.key))
    }
}

impl<V: PartialOrd> PartialEq for Candidate<V> {
    fn eq(&self, other: &Self) -> bool {
        self.worse(other).is_eq()
    }
}

impl<V: PartialOrd> Eq for Candidate<V> {}

impl<V: PartialOrd> PartialOrd for Candidate<V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<V: PartialOrd> Ord for Candidate<V> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.worse(other)
    }
}

/// The `bound` best outcomes offered (largest value, then smallest bitstring), in a heap of
/// at most `bound` entries.
struct Top<V> {
    bound: usize,
    heap: BinaryHeap<Candidate<V>>,
    left_out: bool,
}

impl<V: PartialOrd + Copy> Top<V> {
    fn new(bound: usize) -> Self {
        Self { bound, heap: BinaryHeap::with_capacity(bound.min(1024)), left_out: false }
    }

    fn offer(&mut self, value: V, key: usize, outcome: usize) {
        let candidate = Candidate { value, key, outcome };
        if self.heap.len() < self.bound {
            self.heap.push(candidate);
            return;
        }
        self.left_out = true;
        if let Some(mut worst) = self.heap.peek_mut()
            && candidate < *worst
        {
            *worst = candidate;
        }
    }

    fn into_sorted(self) -> Vec<(V, usize)> {
        self.heap.into_sorted_vec().into_iter().map(|c| (c.value, c.outcome)).collect()
    }
}

/// Draw `sampling.shots` outcomes from `weights`: each shot is a uniform draw scaled to the
/// total weight, landing on the first outcome whose running sum passes it. The draws are
/// sorted and the running sums walked once, so no table of running sums is kept; the
/// counts are those of a binary search per shot. Returns the (count, outcome) pairs kept
/// (at most `sampling.max_outcomes`, the most frequent) and the shots on the others.
fn sample(weights: &Weights<'_>, sampling: &Sampling, width: usize) -> (Vec<(u64, usize)>, u64) {
    let mut total = 0.0;
    let mut last = None;
    for k in 0..weights.len() {
        let w = weights.get(k);
        total += w;
        if w > 0.0 {
            last = Some(k);
        }
    }
    let Some(last) = last else { return (Vec::new(), 0) };
    let mut rng = ChaCha20Rng::seed_from_u64(sampling.seed);
    let mut draws: Vec<f64> = (0..sampling.shots).map(|_| uniform(&mut rng) * total).collect();
    draws.sort_unstable_by(f64::total_cmp);
    let mut top = Top::new(sampling.max_outcomes);
    let (mut k, mut running, mut run) = (0, weights.get(0), 0u64);
    for u in draws {
        // The first outcome whose running sum passes `u`; outcomes of zero weight never are.
        while k < last && running <= u {
            if run > 0 {
                top.offer(run, order_key(k, width), k);
                run = 0;
            }
            k += 1;
            running += weights.get(k);
        }
        run += 1;
    }
    if run > 0 {
        top.offer(run, order_key(k, width), k);
    }
    let kept = top.into_sorted();
    let listed: u64 = kept.iter().map(|(n, _)| n).sum();
    (kept, sampling.shots - listed)
}

/// Outcome `k` of `width` measured qubits as a bitstring: character `i` is bit `i` of `k`.
fn bitstring(k: usize, width: usize) -> String {
    (0..width).map(|i| if (k >> i) & 1 == 1 { '1' } else { '0' }).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::quantum::Limits;
    use crate::quantum::testing::any_gate;
    use proptest::prelude::*;
    use std::f64::consts::FRAC_PI_4;

    const EPS: f64 = 1e-12;

    fn circuit(qubits: usize, gates: Vec<Gate>) -> Circuit {
        Circuit::new(qubits, gates, vec![], &Limits::default()).unwrap()
    }

    fn measured(qubits: usize, gates: Vec<Gate>, measurements: Vec<usize>) -> Circuit {
        Circuit::new(qubits, gates, measurements, &Limits::default()).unwrap()
    }

    fn close(a: Complex, b: Complex) -> bool {
        (a - b).abs() < 1e-12
    }

    fn c(re: f64, im: f64) -> Complex {
        Complex::new(re, im)
    }

    #[test]
    fn complex_arithmetic() {
        let a = c(1.0, 2.0);
        let b = c(3.0, -1.0);
        assert_eq!(a + b, c(4.0, 1.0));
        assert_eq!(a - b, c(-2.0, 3.0));
        assert_eq!(a * b, c(5.0, 5.0));
        assert_eq!(a.conj(), c(1.0, -2.0));
        assert_eq!(a.norm_sqr(), 5.0);
        assert_eq!(-a, c(-1.0, -2.0));
        assert_eq!(a * 2.0, c(2.0, 4.0));
        assert_eq!(a.times_i(), a * Complex::I);
        assert!(close(Complex::cis(PI / 2.0), Complex::I));
        assert!((c(3.0, 4.0).abs() - 5.0).abs() < EPS);
    }

    /// The 2×2 matrix of each single-qubit gate, written out independently of the kernels.
    fn matrix(kind: GateKind) -> [[Complex; 2]; 2] {
        let r = FRAC_1_SQRT_2;
        let (o, z, i) = (Complex::ONE, Complex::ZERO, Complex::I);
        match kind {
            GateKind::H => [[c(r, 0.0), c(r, 0.0)], [c(r, 0.0), c(-r, 0.0)]],
            GateKind::X => [[z, o], [o, z]],
            GateKind::Y => [[z, -i], [i, z]],
            GateKind::Z => [[o, z], [z, -o]],
            GateKind::S => [[o, z], [z, i]],
            GateKind::Sdg => [[o, z], [z, -i]],
            GateKind::T => [[o, z], [z, Complex::cis(FRAC_PI_4)]],
            GateKind::Tdg => [[o, z], [z, Complex::cis(-FRAC_PI_4)]],
            GateKind::Rx(t) => {
                let (s, co) = (t / 2.0).sin_cos();
                [[c(co, 0.0), c(0.0, -s)], [c(0.0, -s), c(co, 0.0)]]
            }
            GateKind::Ry(t) => {
                let (s, co) = (t / 2.0).sin_cos();
                [[c(co, 0.0), c(-s, 0.0)], [c(s, 0.0), c(co, 0.0)]]
            }
            GateKind::Rz(t) => [[Complex::cis(-t / 2.0), z], [z, Complex::cis(t / 2.0)]],
            GateKind::Cnot | GateKind::Cz | GateKind::Swap => unreachable!("two-qubit"),
        }
    }

    /// Every single-qubit gate on every qubit of a 3-qubit register, on every basis state:
    /// column `x_q` of its matrix lands on the indices with bit `q` set to each row.
    #[test]
    fn single_qubit_gates_match_their_matrices() {
        let kinds = [
            GateKind::H,
            GateKind::X,
            GateKind::Y,
            GateKind::Z,
            GateKind::S,
            GateKind::Sdg,
            GateKind::T,
            GateKind::Tdg,
            GateKind::Rx(0.7),
            GateKind::Ry(-1.3),
            GateKind::Rz(2.1),
        ];
        for kind in kinds {
            let m = matrix(kind);
            for q in 0..3 {
                for x in 0..8usize {
                    let mut state = StateVector::basis(3, x).unwrap();
                    state.apply(&Gate::new(kind, &[q]).unwrap()).unwrap();
                    let bit = (x >> q) & 1;
                    for y in 0..8usize {
                        let expected =
                            if y & !(1 << q) == x & !(1 << q) { m[(y >> q) & 1][bit] } else { Complex::ZERO };
                        assert!(
                            close(state.amplitudes()[y], expected),
                            "{kind} on qubit {q}, |{x}⟩ → amplitude of |{y}⟩: {:?} vs {expected:?}",
                            state.amplitudes()[y]
                        );
                    }
                }
            }
        }
    }

    /// Two-qubit gates on every ordered pair of a 3-qubit register, on every basis state.
    #[test]
    fn two_qubit_gates_match_their_definitions() {
        for a in 0..3 {
            for b in 0..3 {
                if a == b {
                    continue;
                }
                for x in 0..8usize {
                    let (xa, xb) = ((x >> a) & 1, (x >> b) & 1);
                    let cases = [
                        (Gate::cnot(a, b), if xa == 1 { x ^ (1 << b) } else { x }, 1.0),
                        (Gate::cz(a, b), x, if xa == 1 && xb == 1 { -1.0 } else { 1.0 }),
                        (Gate::swap(a, b), if xa != xb { x ^ (1 << a) ^ (1 << b) } else { x }, 1.0),
                    ];
                    for (gate, y, sign) in cases {
                        let mut state = StateVector::basis(3, x).unwrap();
                        state.apply(&gate).unwrap();
                        let mut expected = vec![Complex::ZERO; 8];
                        expected[y] = c(sign, 0.0);
                        for (got, want) in state.amplitudes().iter().zip(&expected) {
                            assert!(close(*got, *want), "{gate} on |{x}⟩");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gates_compose_as_their_algebra_says() {
        let input = StateVector::random(3, 7);
        let identities: Vec<Vec<Gate>> = vec![
            vec![Gate::x(1), Gate::x(1)],
            vec![Gate::y(0), Gate::y(0)],
            vec![Gate::z(2), Gate::z(2)],
            vec![Gate::h(1), Gate::h(1)],
            vec![Gate::s(0), Gate::sdg(0)],
            vec![Gate::t(0), Gate::tdg(0)],
            vec![Gate::s(0), Gate::s(0), Gate::z(0)],
            vec![Gate::t(2), Gate::t(2), Gate::sdg(2)],
            vec![Gate::h(0), Gate::x(0), Gate::h(0), Gate::z(0)],
            vec![Gate::cnot(0, 2), Gate::cnot(0, 2)],
            vec![Gate::cz(1, 2), Gate::cz(2, 1)],
            vec![Gate::swap(0, 1), Gate::swap(1, 0)],
            vec![Gate::cnot(0, 1), Gate::cnot(1, 0), Gate::cnot(0, 1), Gate::swap(0, 1)],
            vec![Gate::h(1), Gate::cnot(0, 1), Gate::h(1), Gate::cz(0, 1)],
            vec![Gate::rx(0, 0.4), Gate::rx(0, -0.4)],
            vec![Gate::ry(1, 1.1), Gate::ry(1, 2.0), Gate::ry(1, -3.1)],
            vec![Gate::rz(2, 4.0 * PI)],
        ];
        for gates in identities {
            let mut state = input.clone();
            state.run(&circuit(3, gates.clone())).unwrap();
            assert!(close(state.inner(&input).unwrap(), Complex::ONE), "{gates:?} is the identity");
        }
        // Up to global phase only: RZ(2π) = −I, Z = i·RZ(π).
        let up_to_phase: Vec<Vec<Gate>> =
            vec![vec![Gate::rz(0, 2.0 * PI)], vec![Gate::rx(1, 2.0 * PI)], vec![Gate::z(0), Gate::rz(0, -PI)]];
        for gates in up_to_phase {
            let mut state = input.clone();
            state.run(&circuit(3, gates.clone())).unwrap();
            assert!((state.fidelity(&input) - 1.0).abs() < EPS, "{gates:?}");
            assert!(!close(state.inner(&input).unwrap(), Complex::ONE), "{gates:?} has a global phase");
        }
    }

    #[test]
    fn bell_state() {
        let bell = circuit(2, vec![Gate::h(0), Gate::cnot(0, 1)]);
        let state = simulate(&bell);
        let r = FRAC_1_SQRT_2;
        for (got, want) in state.amplitudes().iter().zip([c(r, 0.0), Complex::ZERO, Complex::ZERO, c(r, 0.0)]) {
            assert!(close(*got, want));
        }
        assert_eq!(state.gate_applications(), 2);
        let run = execute(&bell, 10_000, 42);
        assert_eq!(run.shots, 10_000);
        assert_eq!(run.gate_applications, 2);
        assert_eq!(run.counts.keys().collect::<Vec<_>>(), ["00", "11"]);
        assert_eq!(run.counts.values().sum::<u64>(), 10_000);
        let zeros = run.counts["00"];
        assert!((4_800..=5_200).contains(&zeros), "{zeros} of 10000");
        assert_eq!(run.probabilities.len(), 2);
        assert!((run.probabilities["00"] - 0.5).abs() < EPS && (run.probabilities["11"] - 0.5).abs() < EPS);
    }

    #[test]
    fn ghz_states() {
        for n in [3, 5] {
            let mut gates = vec![Gate::h(0)];
            gates.extend((1..n).map(|q| Gate::cnot(q - 1, q)));
            let ghz = circuit(n, gates);
            let state = simulate(&ghz);
            let all = (1 << n) - 1;
            for (index, a) in state.amplitudes().iter().enumerate() {
                let want = if index == 0 || index == all { FRAC_1_SQRT_2 } else { 0.0 };
                assert!(close(*a, c(want, 0.0)), "GHZ_{n} amplitude {index}");
            }
            let run = execute(&ghz, 2_000, 1);
            let ones = "1".repeat(n);
            let zeros = "0".repeat(n);
            assert_eq!(run.counts.keys().collect::<Vec<_>>(), [&zeros, &ones]);
        }
    }

    /// Controlled phase diag(1, 1, 1, e^{iθ}) from RZ and CNOT, up to global phase.
    fn controlled_phase(control: usize, target: usize, theta: f64) -> Vec<Gate> {
        vec![
            Gate::rz(control, theta / 2.0),
            Gate::rz(target, theta / 2.0),
            Gate::cnot(control, target),
            Gate::rz(target, -theta / 2.0),
            Gate::cnot(control, target),
        ]
    }

    /// The quantum Fourier transform, qubit 0 the least significant bit of x and y.
    fn qft(n: usize) -> Vec<Gate> {
        let mut gates = Vec::new();
        for j in (0..n).rev() {
            gates.push(Gate::h(j));
            for k in (0..j).rev() {
                gates.extend(controlled_phase(k, j, PI / f64::from(1u32 << (j - k))));
            }
        }
        gates.extend((0..n / 2).map(|i| Gate::swap(i, n - 1 - i)));
        gates
    }

    #[test]
    fn quantum_fourier_transform_matches_the_closed_form() {
        for n in 3..=5 {
            let dim = 1usize << n;
            let prep_and_qft = |x: usize| {
                let mut gates: Vec<Gate> = (0..n).filter(|q| (x >> q) & 1 == 1).map(Gate::x).collect();
                gates.extend(qft(n));
                circuit(n, gates)
            };
            for x in [0, 1, 3, dim / 2, dim - 1, 5 % dim] {
                let got = simulate(&prep_and_qft(x));
                let norm = (dim as f64).sqrt().recip();
                let expected = (0..dim)
                    .map(|y| Complex::cis(2.0 * PI * ((x * y) % dim) as f64 / dim as f64).scale(norm))
                    .collect();
                let expected = StateVector::from_amplitudes(expected).unwrap();
                let f = got.fidelity(&expected);
                assert!(f > 1.0 - 1e-9, "QFT_{n}|{x}⟩ fidelity {f}");
            }
        }
    }

    #[test]
    fn sampling_is_seeded() {
        let c = circuit(4, vec![Gate::h(0), Gate::h(1), Gate::ry(2, 1.0), Gate::cnot(2, 3), Gate::h(3)]);
        let a = execute(&c, 5_000, 9);
        let b = execute(&c, 5_000, 9);
        assert_eq!(a, b);
        let differing = (10..20).filter(|&seed| execute(&c, 5_000, seed).counts != a.counts).count();
        assert!(differing >= 9, "only {differing} of 10 other seeds changed the counts");
        for (key, n) in &a.counts {
            assert!(a.probabilities.contains_key(key), "{key} sampled {n} times has a probability");
        }
    }

    #[test]
    fn zero_shots_still_give_probabilities() {
        let run = execute(&circuit(1, vec![Gate::ry(0, PI / 3.0)]), 0, 0);
        assert!(run.counts.is_empty());
        assert!((run.probabilities["0"] - 0.75).abs() < EPS);
        assert!((run.probabilities["1"] - 0.25).abs() < EPS);
    }

    #[test]
    fn bitstrings_follow_the_measurement_order() {
        // Qubit 0 is 1, qubit 1 is 0, qubit 2 is 1 with certainty.
        let gates = vec![Gate::x(0), Gate::x(2), Gate::h(3), Gate::h(3)];
        let all = execute(&circuit(4, gates.clone()), 10, 3);
        assert_eq!(all.counts, BTreeMap::from([("1010".to_owned(), 10)]));
        assert_eq!(all.measured_qubits, vec![0, 1, 2, 3]);
        let some = execute(&measured(4, gates.clone(), vec![2, 1]), 10, 3);
        assert_eq!(some.counts, BTreeMap::from([("10".to_owned(), 10)]));
        assert_eq!(some.measured_qubits, vec![2, 1]);
        let one = execute(&measured(4, gates, vec![1]), 10, 3);
        assert_eq!(one.probabilities.len(), 1);
        assert!((one.probabilities["0"] - 1.0).abs() < EPS);
    }

    #[test]
    fn marginals_sum_the_unmeasured_qubits() {
        // Qubit 0: P(1) = sin²(0.3); qubit 9 (second byte of the index): P(1) = sin²(0.6).
        let c = measured(10, vec![Gate::ry(0, 0.6), Gate::ry(9, 1.2), Gate::h(4)], vec![9, 0]);
        let run = execute(&c, 0, 0);
        let (p0, p9) = (0.3f64.sin().powi(2), 0.6f64.sin().powi(2));
        let want = [("00", (1.0 - p9) * (1.0 - p0)), ("01", (1.0 - p9) * p0), ("10", p9 * (1.0 - p0)), ("11", p9 * p0)];
        for (key, p) in want {
            assert!((run.probabilities[key] - p).abs() < EPS, "{key}");
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // P(1) = 0.1 for one qubit: 100 000 shots give 10 000 ± 5σ (σ ≈ 95).
        let c = circuit(1, vec![Gate::ry(0, 2.0 * 0.1f64.sqrt().asin())]);
        let run = execute(&c, 100_000, 5);
        let ones = run.counts["1"];
        assert!((9_525..=10_475).contains(&ones), "{ones}");
    }

    #[test]
    fn constructors_and_checks() {
        assert!(StateVector::from_amplitudes(vec![Complex::ONE]).is_none());
        assert!(StateVector::from_amplitudes(vec![Complex::ONE; 3]).is_none());
        assert_eq!(StateVector::from_amplitudes(vec![Complex::ONE; 8]).unwrap().qubits(), 3);
        assert!(StateVector::basis(2, 4).is_none());
        let mut s = StateVector::zero(2);
        assert_eq!(s.apply(&Gate::h(2)).unwrap_err().path, "gate");
        assert!(s.apply(&Gate::cnot(1, 1)).is_err());
        assert_eq!(s.gate_applications(), 0);
        assert!(s.run(&circuit(3, vec![])).is_err());
        assert_eq!(s.fidelity(&StateVector::zero(3)), 0.0);
        assert!(StateVector::zero(3).inner(&StateVector::zero(2)).is_none());
        let r = StateVector::random(6, 1);
        assert!((r.norm_sqr() - 1.0).abs() < EPS);
        assert_eq!(r.amplitudes(), StateVector::random(6, 1).amplitudes());
        assert!(r.fidelity(&StateVector::random(6, 2)) < 0.5);
        assert!((r.probabilities().iter().sum::<f64>() - 1.0).abs() < EPS);
        assert_eq!(bitstring(0b110, 4), "0110");
    }

    /// The sampling the bounded one replaced: a table of running sums and a binary search per
    /// shot, over every outcome.
    fn reference(c: &Circuit, shots: u64, seed: u64) -> (BTreeMap<String, u64>, BTreeMap<String, f64>) {
        let state = simulate(c);
        let measured = c.measured_qubits();
        let mut weights = state.marginal(&measured);
        let width = measured.len();
        let probabilities = weights
            .iter()
            .enumerate()
            .filter(|(_, p)| **p >= PROBABILITY_CUTOFF)
            .map(|(k, p)| (bitstring(k, width), *p))
            .collect();
        let mut counts = BTreeMap::new();
        let Some(last) = weights.iter().rposition(|&w| w > 0.0) else { return (counts, probabilities) };
        let mut total = 0.0;
        for w in &mut weights {
            total += *w;
            *w = total;
        }
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        for _ in 0..shots {
            let u = uniform(&mut rng) * total;
            let k = weights[..=last].partition_point(|&c| c <= u).min(last);
            *counts.entry(bitstring(k, width)).or_insert(0) += 1;
        }
        (counts, probabilities)
    }

    /// Six qubits rotated by different angles: 64 outcomes of distinct probabilities.
    fn spread() -> Circuit {
        circuit(6, (0..6).map(|q| Gate::ry(q, 0.3 + 0.4 * q as f64)).collect())
    }

    #[test]
    fn a_bound_keeps_the_most_likely_and_the_most_sampled_outcomes() {
        let c = spread();
        let never = AtomicBool::new(false);
        let all = execute_with(&c, &Sampling { shots: 20_000, seed: 4, max_outcomes: usize::MAX }, &never).unwrap();
        assert_eq!((all.probabilities.len(), all.probabilities_truncated, all.unlisted_shots), (64, false, 0));
        let few = execute_with(&c, &Sampling { shots: 20_000, seed: 4, max_outcomes: 5 }, &never).unwrap();
        let mut likely: Vec<_> = all.probabilities.iter().collect();
        likely.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        let want: BTreeMap<String, f64> = likely.into_iter().take(5).map(|(k, p)| (k.clone(), *p)).collect();
        assert_eq!(few.probabilities, want);
        assert!(few.probabilities_truncated);
        let mut frequent: Vec<_> = all.counts.iter().collect();
        frequent.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let want: BTreeMap<String, u64> = frequent.into_iter().take(5).map(|(k, n)| (k.clone(), *n)).collect();
        assert_eq!(few.counts, want);
        assert_eq!(few.unlisted_shots, 20_000 - want.values().sum::<u64>());
        assert!(few.unlisted_shots > 0);
    }

    #[test]
    fn a_set_flag_stops_the_run() {
        let c = spread();
        let sampling = Sampling { shots: 100, seed: 1, max_outcomes: MAX_OUTCOMES };
        assert_eq!(execute_with(&c, &sampling, &AtomicBool::new(true)), Err(Cancelled));
        assert_eq!(execute_with(&c, &sampling, &AtomicBool::new(false)).unwrap(), execute(&c, 100, 1));
    }

    #[test]
    fn a_flag_set_while_running_stops_between_gates() {
        // 16 qubits and 4 000 gates: far longer than the moment the flag is set.
        let c = Circuit::new(16, (0..4_000).map(|i| Gate::h(i % 16)).collect(), vec![], &Limits::default()).unwrap();
        let cancel = std::sync::Arc::new(AtomicBool::new(false));
        let setter = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                cancel.store(true, Ordering::Relaxed);
                std::time::Instant::now()
            })
        };
        let sampling = Sampling { shots: 0, seed: 0, max_outcomes: MAX_OUTCOMES };
        assert_eq!(execute_with(&c, &sampling, &cancel), Err(Cancelled));
        let stopped = std::time::Instant::now();
        let set = setter.join().unwrap();
        assert!(stopped.duration_since(set) < std::time::Duration::from_secs(1));
    }

    proptest! {
        /// Every gate is unitary: the norm of any state is preserved over random circuits.
        #[test]
        fn normalization_is_preserved(
            (qubits, gates) in (2usize..7).prop_flat_map(|n| (Just(n), proptest::collection::vec(any_gate(n), 0..60))),
            seed in any::<u64>(),
        ) {
            let mut state = StateVector::random(qubits, seed);
            let c = circuit(qubits, gates);
            state.run(&c).unwrap();
            prop_assert!((state.norm_sqr() - 1.0).abs() < 1e-10);
            prop_assert_eq!(state.gate_applications(), c.gates().len() as u64);
            let run = execute(&c, 100, seed);
            prop_assert_eq!(run.counts.values().sum::<u64>(), 100);
            let (counts, probabilities) = reference(&c, 100, seed);
            prop_assert_eq!(&run.counts, &counts);
            prop_assert_eq!(&run.probabilities, &probabilities);
            prop_assert!((run.probabilities.values().sum::<f64>() - 1.0).abs() < 1e-9);
        }

        /// A partial measurement samples and lists exactly what the unbounded sampling did.
        #[test]
        fn partial_measurements_match_the_unbounded_sampling(
            (qubits, gates) in (2usize..7).prop_flat_map(|n| (Just(n), proptest::collection::vec(any_gate(n), 0..40))),
            seed in any::<u64>(),
            shots in 0u64..500,
        ) {
            let c = measured(qubits, gates, (0..qubits - 1).rev().collect());
            let run = execute(&c, shots, seed);
            let (counts, probabilities) = reference(&c, shots, seed);
            prop_assert_eq!(run.counts, counts);
            prop_assert_eq!(run.probabilities, probabilities);
            prop_assert!(!run.probabilities_truncated);
            prop_assert_eq!(run.unlisted_shots, 0);
        }
    }
}
