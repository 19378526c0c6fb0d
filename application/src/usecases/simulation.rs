//! Quantum circuit simulation: executing, optimizing, analyzing and benchmarking circuits
//! on the domain's state-vector simulator, within the server's limits.
//!
//! Simulation is CPU work: it runs on the blocking pool, at most `parallelism` at a time,
//! and a circuit is refused up front — with the numbers — when its state vector would not
//! fit the memory limit or its work exceeds the work limit ([`Simulator::check_work`]:
//! every run, of at least one pass over the state vector, plus its shots), so one caller
//! cannot hold the node's cores with a circuit it could not finish.
//!
//! A simulation ends with its request: when the request's future is dropped (the client
//! went away, sent `notifications/cancelled`, or the request timed out) a cancellation flag
//! is set, which the simulator reads between gates. The concurrency permit belongs to the
//! blocking work itself and is released only when that work has ended, so abandoned
//! simulations still count against `parallelism` until they have stopped.
//!
//! Failures are a [`SimulationError`]: refused inputs say which input and why;
//! [`SimulationError::Unavailable`] means the simulator is shutting down and the call may
//! be retried (on another node).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qudag_domain::quantum::{
    self, Analysis, Cancelled, Circuit, CircuitSpec, Execution, Limits, MAX_OUTCOMES, OptimizationLevel, Optimized,
    Sampling,
};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::usecases::Unavailable;
use crate::usecases::keys::{NoEntropy, random};

/// The component named in [`SimulationError::Unavailable`].
pub const SIMULATOR: &str = "simulator";

/// How much quantum work the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantumLimits {
    /// Circuit size limits (qubits, gates, shots, state-vector memory).
    pub circuit: Limits,
    /// Most amplitude updates one call may take, over all its runs (see
    /// [`Simulator::check_work`]).
    pub max_amplitude_updates: u64,
    /// Most timed runs of one benchmark.
    pub max_benchmark_iterations: u32,
    /// Simulations running at once (others wait).
    pub parallelism: usize,
}

impl Default for QuantumLimits {
    fn default() -> Self {
        Self {
            circuit: Limits::default(),
            max_amplitude_updates: 1 << 33,
            max_benchmark_iterations: 1000,
            parallelism: std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        }
    }
}

/// Counters of the simulator's work since start, for `system_health_check` and the DAG
/// status resource.
#[derive(Debug, Default)]
pub struct Stats {
    /// Circuits executed (`execute_quantum_dag`, and each benchmark run).
    pub executions: AtomicU64,
    /// Shots sampled.
    pub shots: AtomicU64,
    /// Gates applied to state vectors.
    pub gate_applications: AtomicU64,
    /// Circuits optimized.
    pub optimizations: AtomicU64,
    /// Circuits analyzed.
    pub analyses: AtomicU64,
    /// Benchmarks run.
    pub benchmarks: AtomicU64,
    /// Circuits refused (invalid or over a limit).
    pub rejected: AtomicU64,
    /// Simulations on the blocking pool now (cancelled ones included until they have
    /// stopped).
    pub running: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// See [`Stats::executions`].
    pub executions: u64,
    /// See [`Stats::shots`].
    pub shots: u64,
    /// See [`Stats::gate_applications`].
    pub gate_applications: u64,
    /// See [`Stats::optimizations`].
    pub optimizations: u64,
    /// See [`Stats::analyses`].
    pub analyses: u64,
    /// See [`Stats::benchmarks`].
    pub benchmarks: u64,
    /// See [`Stats::rejected`].
    pub rejected: u64,
    /// See [`Stats::running`].
    pub running: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            executions: get(&self.executions),
            shots: get(&self.shots),
            gate_applications: get(&self.gate_applications),
            optimizations: get(&self.optimizations),
            analyses: get(&self.analyses),
            benchmarks: get(&self.benchmarks),
            rejected: get(&self.rejected),
            running: get(&self.running),
        }
    }

    /// Add `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Why a simulation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulationError {
    /// The circuit is invalid or over a size limit; `path` names the part at fault
    /// (`circuit.gates[2].target`).
    #[error("{reason}")]
    InvalidCircuit {
        /// Where in the circuit.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Too many shots.
    #[error("{0}")]
    Shots(String),
    /// The requested runs exceed the work limit.
    #[error(
        "this needs {total} amplitude updates ({runs} run(s) × (2^{qubits} amplitudes × {passes} pass(es) for {gates} gate(s) + {shots} shot(s) × {measured} measured qubit(s))), more than the work limit QUDAG_MAX_AMPLITUDE_UPDATES = {limit}"
    )]
    TooMuchWork {
        /// Amplitude updates asked for.
        total: u128,
        /// The circuit's gates.
        gates: usize,
        /// Passes over the state vector per run: the gates, at least one.
        passes: usize,
        /// The circuit's qubits.
        qubits: usize,
        /// Shots sampled per run.
        shots: u64,
        /// Qubits measured per shot.
        measured: usize,
        /// How many runs.
        runs: u64,
        /// The limit.
        limit: u64,
        /// Whether a single run is already over the limit (the circuit is to blame, not
        /// the repetitions).
        one_run_over: bool,
    },
    /// Benchmark iterations out of bounds.
    #[error("must be between 1 and {max}")]
    Iterations {
        /// The most allowed.
        max: u32,
    },
    /// Warm-up iterations out of bounds.
    #[error("must be at most {max}")]
    Warmup {
        /// The most allowed.
        max: u32,
    },
    /// The optimizer produced a circuit that is not equivalent (a bug; nothing is returned).
    #[error("the optimized circuit failed its equivalence check and was discarded; please report this circuit")]
    NotEquivalent,
    /// The simulation task panicked.
    #[error("the simulation failed unexpectedly")]
    Failed,
    /// The simulation was stopped because its request ended first.
    #[error("the simulation was cancelled")]
    Cancelled,
    /// No randomness for a seed or an id.
    #[error(transparent)]
    NoEntropy(#[from] NoEntropy),
    /// The simulator ([`SIMULATOR`]) is shutting down: retry (on another node).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// What an execution is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecuteOptions {
    /// Shots to sample.
    pub shots: u64,
    /// Optimization level to apply first (0: none).
    pub level: u8,
    /// Seed of the sampling RNG; random when `None`.
    pub seed: Option<u64>,
}

/// What an execution produced.
#[derive(Debug, Clone)]
pub struct Executed {
    /// A fresh id for the execution.
    pub id: String,
    /// The seed used.
    pub seed: u64,
    /// The circuit run (after optimization).
    pub circuit: Circuit,
    /// Gates of the circuit as given.
    pub original_gates: usize,
    /// Counts and probabilities.
    pub execution: Execution,
    /// How long the simulation took.
    pub elapsed: Duration,
}

/// What an optimization produced.
#[derive(Debug, Clone)]
pub struct OptimizedCircuit {
    /// The circuit as given.
    pub original: Circuit,
    /// The rewrite and its report.
    pub optimized: Optimized,
    /// Whether the two were checked equivalent (`None`: too large to check).
    pub equivalent: Option<bool>,
}

/// What an analysis found.
#[derive(Debug)]
pub struct Analyzed {
    /// The validated circuit.
    pub circuit: Circuit,
    /// Its metrics.
    pub analysis: Analysis,
    /// Whether it may be executed here, and if not why.
    pub simulable: Result<(), SimulationError>,
}

/// What a benchmark is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchmarkOptions {
    /// Timed runs.
    pub iterations: u32,
    /// Untimed runs first.
    pub warmup: u32,
    /// Shots sampled per run.
    pub shots: u64,
}

/// What a benchmark measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkReport {
    /// The circuit's digest.
    pub digest: String,
    /// Each timed run, in milliseconds, fastest first.
    pub sorted_ms: Vec<f64>,
    /// All timed runs together, in milliseconds.
    pub total_ms: f64,
    /// Gates applied over the timed runs.
    pub gate_applications: u64,
}

impl BenchmarkReport {
    /// The nearest-rank percentile `p` of the timed runs, in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        percentile(&self.sorted_ms, p)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sets its flag when dropped: the request's side of a simulation's cancellation.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Counts a simulation in [`Stats::running`] while it lives.
struct Running(Arc<Stats>);

impl Running {
    fn enter(stats: &Arc<Stats>) -> Self {
        stats.running.fetch_add(1, Ordering::Relaxed);
        Self(stats.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The simulator: limits, a concurrency gate and counters.
pub struct Simulator {
    limits: QuantumLimits,
    permits: Arc<Semaphore>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Simulator {
    /// A simulator with `limits`, counting into `stats`.
    pub fn new(limits: QuantumLimits, stats: Arc<Stats>) -> Self {
        let permits = Arc::new(Semaphore::new(limits.parallelism.max(1)));
        Self { limits, permits, stats }
    }

    /// The limits.
    pub fn limits(&self) -> &QuantumLimits {
        &self.limits
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Validate a circuit.
    ///
    /// # Errors
    /// `InvalidCircuit` naming the offending part (counted as rejected).
    pub fn circuit(&self, spec: &CircuitSpec) -> Result<Circuit, SimulationError> {
        spec.validate(&self.limits.circuit).map_err(|e| {
            Stats::add(&self.stats.rejected, 1);
            let path = if e.path.starts_with("circuit") { e.path.clone() } else { format!("circuit.{}", e.path) };
            SimulationError::InvalidCircuit { path, reason: e.reason }
        })
    }

    /// Refuse `shots` over the limit.
    ///
    /// # Errors
    /// `Shots`.
    pub fn check_shots(&self, shots: u64) -> Result<(), SimulationError> {
        self.limits.circuit.check_shots(shots).map_err(|e| SimulationError::Shots(e.reason))
    }

    /// Refuse `runs` simulations of `circuit` with `shots` each when they exceed the work
    /// limit. Every run counts: each is at least one pass over the state vector (it is
    /// allocated and measured even without gates) and one per gate, 2ⁿ amplitude updates a
    /// pass, plus one update per measured qubit for each shot sampled.
    ///
    /// # Errors
    /// `TooMuchWork` (counted as rejected).
    pub fn check_work(&self, circuit: &Circuit, runs: u64, shots: u64) -> Result<(), SimulationError> {
        let gates = circuit.gates().len();
        let passes = gates.max(1);
        let measured = circuit.measured_qubits().len();
        let states = 1u128.checked_shl(u32::try_from(circuit.qubits()).unwrap_or(u32::MAX)).unwrap_or(u128::MAX);
        let one = states
            .saturating_mul(passes as u128)
            .saturating_add(u128::from(shots).saturating_mul(measured.max(1) as u128));
        let total = one.saturating_mul(u128::from(runs.max(1)));
        let limit = u128::from(self.limits.max_amplitude_updates);
        if total > limit {
            Stats::add(&self.stats.rejected, 1);
            return Err(SimulationError::TooMuchWork {
                total,
                gates,
                passes,
                qubits: circuit.qubits(),
                shots,
                measured,
                runs,
                limit: self.limits.max_amplitude_updates,
                one_run_over: one > limit,
            });
        }
        Ok(())
    }

    /// Run `work` on the blocking pool once a permit is free. `work` gets the cancellation
    /// flag, set when this future is dropped, and stops with [`Cancelled`] when it sees it;
    /// the permit is moved into the blocking work and released only when that has ended.
    ///
    /// # Errors
    /// `Unavailable` when the simulator is shutting down, `Cancelled` when `work` stopped
    /// on the flag, `Failed` when the task panicked (reported, never propagated as a
    /// panic).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&AtomicBool) -> Result<T, Cancelled> + Send + 'static,
    ) -> Result<T, SimulationError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|e| Unavailable::new(SIMULATOR, e))?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let stats = self.stats.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Dropped in reverse order when the work ends, however it ends: first no longer
            // running, then the permit.
            let _permit = permit;
            let _running = Running::enter(&stats);
            work(&cancel)
        });
        match task.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Cancelled)) => Err(SimulationError::Cancelled),
            Err(e) => {
                tracing::error!(error = %e, "A simulation task failed");
                Err(SimulationError::Failed)
            }
        }
    }

    /// Optimize to `options.level` when above 0, then execute with `options.shots`.
    ///
    /// # Errors
    /// `Shots`, `InvalidCircuit`, `TooMuchWork` (checked in that order), `NoEntropy`,
    /// `Failed` or `Unavailable`.
    #[tracing::instrument(skip_all, fields(shots = options.shots, level = options.level))]
    pub async fn execute(&self, spec: &CircuitSpec, options: ExecuteOptions) -> Result<Executed, SimulationError> {
        self.check_shots(options.shots)?;
        let circuit = self.circuit(spec)?;
        self.check_work(&circuit, 1, options.shots)?;
        let seed = match options.seed {
            Some(s) => s,
            None => u64::from_le_bytes(random::<8>()?),
        };
        let id = format!("exec_{:016x}", u64::from_le_bytes(random::<8>()?));
        let original_gates = circuit.gates().len();
        let ExecuteOptions { shots, level, .. } = options;
        let (circuit, execution, elapsed) = self
            .run(move |cancel| {
                let executed = if level > 0 {
                    quantum::optimize(&circuit, OptimizationLevel::new(level).unwrap_or(OptimizationLevel::MERGE))
                        .circuit
                } else {
                    circuit
                };
                let started = Instant::now();
                let sampling = Sampling { shots, seed, max_outcomes: MAX_OUTCOMES };
                let execution = quantum::execute_with(&executed, &sampling, cancel)?;
                Ok((executed, execution, started.elapsed()))
            })
            .await?;
        Stats::add(&self.stats.executions, 1);
        Stats::add(&self.stats.shots, shots);
        Stats::add(&self.stats.gate_applications, execution.gate_applications);
        Ok(Executed { id, seed, circuit, original_gates, execution, elapsed })
    }

    /// Rewrite a circuit at `level`, checking equivalence when `verify` and it is small
    /// enough.
    ///
    /// # Errors
    /// `InvalidCircuit`, `TooMuchWork` (of the check), `NotEquivalent`, `NoEntropy`, `Failed`
    /// or `Unavailable`.
    #[tracing::instrument(skip_all, fields(level))]
    pub async fn optimize(
        &self,
        spec: &CircuitSpec,
        level: u8,
        verify: bool,
    ) -> Result<OptimizedCircuit, SimulationError> {
        let circuit = self.circuit(spec)?;
        let verify = verify && circuit.qubits() <= quantum::VERIFY_MAX_QUBITS;
        if verify {
            self.check_work(&circuit, 8, 0)?;
        }
        let seed = u64::from_le_bytes(random::<8>()?);
        let (original, optimized, equivalent) = self
            .run(move |_| {
                let optimized =
                    quantum::optimize(&circuit, OptimizationLevel::new(level).unwrap_or(OptimizationLevel::MERGE));
                let equivalent = verify.then(|| quantum::equivalent(&circuit, &optimized.circuit, 4, seed));
                Ok((circuit, optimized, equivalent))
            })
            .await?;
        Stats::add(&self.stats.optimizations, 1);
        if equivalent == Some(false) {
            tracing::error!(digest = %original.digest(), level, "Optimizer produced a circuit that is not equivalent");
            return Err(SimulationError::NotEquivalent);
        }
        Ok(OptimizedCircuit { original, optimized, equivalent })
    }

    /// Analyze a circuit, and say whether it could be executed here.
    ///
    /// # Errors
    /// `InvalidCircuit`.
    pub fn analyze(&self, spec: &CircuitSpec) -> Result<Analyzed, SimulationError> {
        let circuit = self.circuit(spec)?;
        let analysis = quantum::analyze(&circuit);
        Stats::add(&self.stats.analyses, 1);
        let simulable = self.check_work(&circuit, 1, 0);
        Ok(Analyzed { circuit, analysis, simulable })
    }

    /// Run a circuit `warmup` times untimed, then `iterations` times timed.
    ///
    /// # Errors
    /// `Iterations`, `Warmup`, `Shots`, `InvalidCircuit`, `TooMuchWork` (of all runs
    /// together; checked in that order), `NoEntropy`, `Failed` or `Unavailable`.
    #[tracing::instrument(skip_all, fields(iterations = options.iterations, warmup = options.warmup))]
    pub async fn benchmark(
        &self,
        spec: &CircuitSpec,
        options: BenchmarkOptions,
    ) -> Result<BenchmarkReport, SimulationError> {
        let max = self.limits.max_benchmark_iterations;
        let BenchmarkOptions { iterations, warmup, shots } = options;
        if !(1..=max).contains(&iterations) {
            return Err(SimulationError::Iterations { max });
        }
        if warmup > max {
            return Err(SimulationError::Warmup { max });
        }
        self.check_shots(shots)?;
        let circuit = self.circuit(spec)?;
        self.check_work(&circuit, u64::from(iterations) + u64::from(warmup), shots)?;
        let digest = circuit.digest();
        let seed = u64::from_le_bytes(random::<8>()?);
        let (timings, applications) = self
            .run(move |cancel| {
                let sampling =
                    |i: u32| Sampling { shots, seed: seed.wrapping_add(u64::from(i)), max_outcomes: MAX_OUTCOMES };
                for i in 0..warmup {
                    quantum::execute_with(&circuit, &sampling(i), cancel)?;
                }
                let mut timings = Vec::with_capacity(iterations as usize);
                let mut applications = 0u64;
                for i in 0..iterations {
                    let started = Instant::now();
                    let run = quantum::execute_with(&circuit, &sampling(i), cancel)?;
                    timings.push(millis(started.elapsed()));
                    applications += run.gate_applications;
                }
                Ok((timings, applications))
            })
            .await?;
        Stats::add(&self.stats.benchmarks, 1);
        Stats::add(&self.stats.executions, u64::from(iterations + warmup));
        Stats::add(&self.stats.gate_applications, applications);
        let total_ms = timings.iter().sum();
        let mut sorted_ms = timings;
        sorted_ms.sort_by(f64::total_cmp);
        Ok(BenchmarkReport { digest, sorted_ms, total_ms, gate_applications: applications })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    fn bell() -> CircuitSpec {
        serde_json::from_value(serde_json::json!({
            "qubits": 2,
            "gates": [{"type": "H", "target": 0}, {"type": "CNOT", "control": 0, "target": 1}]
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn work_over_the_limit_is_refused_before_anything_runs() {
        let limits = QuantumLimits { max_amplitude_updates: 16, ..QuantumLimits::default() };
        let sim = Simulator::new(limits, Arc::default());
        // One run of the Bell circuit is 2 gates × 4 amplitudes = 8 updates; three are 24.
        sim.execute(&bell(), ExecuteOptions { shots: 0, level: 0, seed: Some(1) }).await.unwrap();
        let e = sim.benchmark(&bell(), BenchmarkOptions { iterations: 2, warmup: 1, shots: 0 }).await.unwrap_err();
        assert!(matches!(e, SimulationError::TooMuchWork { runs: 3, one_run_over: false, .. }), "{e:?}");
        assert_eq!(sim.stats().snapshot().rejected, 1);
        assert_eq!(sim.stats().snapshot().executions, 1);
    }

    fn circuit(qubits: usize, gates: usize) -> CircuitSpec {
        let gates: Vec<_> = (0..gates).map(|i| serde_json::json!({"type": "H", "target": i % qubits})).collect();
        serde_json::from_value(serde_json::json!({"qubits": qubits, "gates": gates})).unwrap()
    }

    #[tokio::test]
    async fn every_run_counts_as_work_even_without_gates_and_with_its_shots() {
        let limits = QuantumLimits { max_amplitude_updates: 10_000, ..QuantumLimits::default() };
        let sim = Simulator::new(limits, Arc::default());
        // No gates: still a pass over 2^10 amplitudes per run, ten runs are 10 240.
        let e = sim.benchmark(&circuit(10, 0), BenchmarkOptions { iterations: 5, warmup: 5, shots: 0 }).await;
        let e = e.unwrap_err();
        assert!(matches!(e, SimulationError::TooMuchWork { total: 10_240, runs: 10, passes: 1, .. }), "{e:?}");
        assert!(e.to_string().contains("QUDAG_MAX_AMPLITUDE_UPDATES = 10000"), "{e}");
        // Shots: one qubit, 1 000 shots per run, 20 runs.
        let e = sim.benchmark(&circuit(1, 1), BenchmarkOptions { iterations: 10, warmup: 10, shots: 1_000 }).await;
        assert!(matches!(e, Err(SimulationError::TooMuchWork { total: 20_040, shots: 1_000, .. })), "{e:?}");
        assert_eq!(sim.stats().snapshot().executions, 0, "nothing ran");
        sim.benchmark(&circuit(10, 0), BenchmarkOptions { iterations: 4, warmup: 5, shots: 0 }).await.unwrap();
    }

    /// The permit is held while the blocking work runs: whenever a simulation is running, a
    /// permit is taken for it.
    fn permit_held_for_each_running(sim: &Simulator) -> bool {
        let running = sim.stats().running.load(Ordering::Relaxed) as usize;
        sim.permits.available_permits() + running <= sim.limits().parallelism
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_call_stops_its_simulation_and_keeps_the_permit_until_it_has() {
        let limits = QuantumLimits { max_amplitude_updates: u64::MAX, parallelism: 1, ..QuantumLimits::default() };
        let sim = Arc::new(Simulator::new(limits, Arc::default()));
        // 18 qubits and 10 000 gates: minutes of work, were it not stopped.
        let long = circuit(18, 10_000);
        let call = tokio::spawn({
            let sim = sim.clone();
            async move { sim.execute(&long, ExecuteOptions { shots: 0, level: 0, seed: Some(1) }).await }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while sim.stats().running.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the simulation never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The client goes away: the request's task is aborted, its future dropped.
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        let aborted = Instant::now();
        // A new call waits for the permit meanwhile.
        let next = tokio::spawn({
            let sim = sim.clone();
            async move { sim.execute(&bell(), ExecuteOptions { shots: 10, level: 0, seed: Some(1) }).await }
        });
        while sim.stats().running.load(Ordering::Relaxed) > 0 && !next.is_finished() {
            assert!(permit_held_for_each_running(&sim), "a running simulation holds no permit");
            assert!(aborted.elapsed() < Duration::from_secs(1), "the simulation still runs 1 s after its call ended");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let stopped = aborted.elapsed();
        assert!(stopped < Duration::from_secs(1), "stopped after {stopped:?}");
        let next = tokio::time::timeout(Duration::from_secs(10), next).await.unwrap().unwrap().unwrap();
        assert_eq!(next.execution.counts.values().sum::<u64>(), 10);
        assert_eq!(sim.stats().snapshot().running, 0);
        assert_eq!(sim.stats().snapshot().executions, 1, "only the second call completed");
    }
}
