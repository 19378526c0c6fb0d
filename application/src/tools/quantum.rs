//! Quantum circuit tools: `execute_quantum_dag`, `optimize_circuit`, `analyze_complexity`
//! and `benchmark_performance`, thin adapters from arguments to the [`Simulator`] use case
//! (limits, the concurrency gate and the counters are its own).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use qudag_domain::quantum::{self, CircuitSpec};
use qudag_domain::rbac::Permission;
use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mcp::catalog::ToolResponse;
use crate::mcp::context::CallContext;
use crate::tools::support::{QudagTool, ToolFailure, ToolSpec, parse, success};
use crate::usecases::simulation::{BenchmarkOptions, ExecuteOptions, SimulationError};
pub use crate::usecases::simulation::{QuantumLimits, Simulator};

/// The tool failure for `e`. Refused inputs name their argument: the circuit's own part,
/// `shots` at `shots_at`, and work over the limit at the circuit when one run is already
/// too much, else at `runs_at` (the repetitions are to blame).
fn simulation_failure(e: SimulationError, shots_at: &str, runs_at: &str) -> ToolFailure {
    match e {
        SimulationError::InvalidCircuit { path, reason } => ToolFailure::argument(path, reason),
        SimulationError::Shots(reason) => ToolFailure::argument(shots_at, reason),
        SimulationError::TooMuchWork { one_run_over, .. } => {
            ToolFailure::argument(if one_run_over { "circuit" } else { runs_at }, e.to_string())
        }
        SimulationError::Iterations { .. } => ToolFailure::argument("benchmark.iterations", e.to_string()),
        SimulationError::Warmup { .. } => ToolFailure::argument("benchmark.warmup_iterations", e.to_string()),
        SimulationError::NotEquivalent
        | SimulationError::Failed
        | SimulationError::Cancelled
        | SimulationError::NoEntropy(_) => ToolFailure::operation(e.to_string()),
        SimulationError::Unavailable(outage) => outage.into(),
    }
}

/// Most outcomes one result lists, in its probabilities and in its counts (the most likely,
/// and the most often sampled, first).
pub const MAX_LISTED_OUTCOMES: usize = quantum::MAX_OUTCOMES;

/// An optimization level argument: 0–3, as a number or a string (`"2"`), or a name
/// (`none`, `basic`, `standard`, `aggressive`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum LevelArg {
    Number(i64),
    Text(String),
}

impl LevelArg {
    fn level(&self, path: &str) -> Result<u8, ToolFailure> {
        let level = match self {
            Self::Number(n) => u8::try_from(*n).ok(),
            Self::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "0" | "none" => Some(0),
                "1" | "basic" | "light" => Some(1),
                "2" | "standard" | "medium" => Some(2),
                "3" | "aggressive" | "heavy" => Some(3),
                _ => None,
            },
        };
        level
            .filter(|l| *l <= 3)
            .ok_or_else(|| ToolFailure::argument(path, "must be 0-3 (or none, basic, standard, aggressive)"))
    }
}

fn circuit_schema() -> Value {
    json!({
        "type": "object",
        "required": ["qubits", "gates"],
        "description": "A quantum circuit. Qubit 0 is the least significant bit of a basis-state index.",
        "properties": {
            "qubits": { "type": "integer", "minimum": 1, "description": "Number of qubits." },
            "gates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "target"],
                    "properties": {
                        "type": {
                            "type": "string",
                            "description": "H, X, Y, Z, S, SDG, T, TDG, RX, RY, RZ, CNOT (CX), CZ, SWAP (case-insensitive).",
                            "enum": ["H", "X", "Y", "Z", "S", "SDG", "T", "TDG", "RX", "RY", "RZ", "CNOT", "CX", "CZ", "SWAP",
                                     "h", "x", "y", "z", "s", "sdg", "t", "tdg", "rx", "ry", "rz", "cnot", "cx", "cz", "swap"]
                        },
                        "target": {
                            "oneOf": [
                                { "type": "integer", "minimum": 0 },
                                { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1, "maxItems": 2 }
                            ],
                            "description": "The qubit; for SWAP [a, b]; for CNOT/CZ the target (with control) or [control, target]."
                        },
                        "control": { "type": "integer", "minimum": 0, "description": "Control qubit of CNOT/CZ." },
                        "params": { "type": "array", "items": { "type": "number" }, "maxItems": 1, "description": "[angle] in radians for RX/RY/RZ." }
                    }
                }
            },
            "measurements": {
                "type": "array",
                "items": { "type": "integer", "minimum": 0 },
                "description": "Qubits to measure; character i of each outcome is measurements[i]. Default: all qubits, character i is qubit i."
            }
        }
    })
}

fn level_schema(description: &str) -> Value {
    json!({
        "oneOf": [
            { "type": "integer", "minimum": 0, "maximum": 3 },
            { "type": "string", "enum": ["0", "1", "2", "3", "none", "basic", "standard", "aggressive"] }
        ],
        "description": description
    })
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------
// execute_quantum_dag

#[derive(Debug, Deserialize)]
struct ExecuteArgs {
    circuit: CircuitSpec,
    #[serde(default)]
    execution: ExecutionArgs,
}

#[derive(Debug, Default, Deserialize)]
struct ExecutionArgs {
    backend: Option<String>,
    shots: Option<u64>,
    optimization_level: Option<LevelArg>,
    seed: Option<u64>,
}

/// `execute_quantum_dag`.
#[derive(Debug)]
pub struct ExecuteTool(pub Arc<Simulator>);

#[async_trait]
impl QudagTool for ExecuteTool {
    fn spec(&self) -> ToolSpec {
        let max_shots = self.0.limits().circuit.max_shots;
        ToolSpec {
            name: "execute_quantum_dag",
            title: "Execute a quantum circuit",
            description: "Simulate a quantum circuit exactly (state vector) and sample measurement outcomes. Returns counts per outcome, the exact outcome probabilities and the executed circuit's BLAKE3 digest. Pass execution.seed to reproduce the counts.",
            input: json!({
                "type": "object",
                "required": ["circuit"],
                "properties": {
                    "circuit": circuit_schema(),
                    "execution": {
                        "type": "object",
                        "properties": {
                            "backend": { "type": "string", "enum": ["simulator"], "default": "simulator" },
                            "shots": { "type": "integer", "minimum": 0, "maximum": max_shots, "default": 1024 },
                            "optimization_level": level_schema("Optimize before executing (default 0)."),
                            "seed": { "type": "integer", "minimum": 0, "description": "Seed of the sampling RNG; random when absent (and returned)." }
                        }
                    },
                    "metadata": { "type": "object", "description": "Free-form label/description/tags, echoed back." }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["execution_id", "status", "circuit_digest", "results", "metrics"],
                "properties": {
                    "execution_id": { "type": "string" },
                    "status": { "type": "string", "enum": ["completed"] },
                    "circuit_digest": { "type": "string", "description": "BLAKE3 of the executed circuit's canonical form." },
                    "seed": { "type": "integer" },
                    "shots": { "type": "integer" },
                    "results": {
                        "type": "object",
                        "required": ["measurements", "probabilities", "execution_time_ms"],
                        "properties": {
                            "measurements": { "type": "object", "additionalProperties": { "type": "integer" }, "description": "Counts per outcome bitstring (at most 4096 outcomes, the most often sampled)." },
                            "probabilities": { "type": "object", "additionalProperties": { "type": "number" }, "description": "Exact probabilities of the (at most 4096 most likely) outcomes." },
                            "probabilities_truncated": { "type": "boolean", "description": "More outcomes than listed have a probability of at least 1e-12." },
                            "unlisted_shots": { "type": "integer", "description": "Shots whose outcomes are not in measurements: at most 4096 outcomes are listed there, the most often sampled." },
                            "execution_time_ms": { "type": "number" }
                        }
                    },
                    "metrics": {
                        "type": "object",
                        "required": ["qubits", "gate_count", "depth", "gate_applications", "optimization_applied"],
                        "properties": {
                            "qubits": { "type": "integer" },
                            "gate_count": { "type": "integer" },
                            "depth": { "type": "integer" },
                            "gate_applications": { "type": "integer" },
                            "optimization_applied": { "type": "boolean" },
                            "optimization_level": { "type": "integer" },
                            "original_gate_count": { "type": "integer" }
                        }
                    }
                }
            }),
            permission: Permission::QuantumExecute,
            cost: 5,
            read_only: true,
            idempotent: false,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: ExecuteArgs = parse(arguments)?;
        let sim = &self.0;
        if let Some(backend) = args.execution.backend.as_deref().filter(|b| *b != "simulator") {
            return Err(ToolFailure::argument(
                "execution.backend",
                format!("\"{backend}\" is not available; the only backend is \"simulator\""),
            ));
        }
        let failure = |e| simulation_failure(e, "execution.shots", "circuit");
        let shots = args.execution.shots.unwrap_or(1024);
        sim.check_shots(shots).map_err(failure)?;
        let level =
            args.execution.optimization_level.as_ref().map_or(Ok(0), |l| l.level("execution.optimization_level"))?;
        let options = ExecuteOptions { shots, level, seed: args.execution.seed };
        let run = sim.execute(&args.circuit, options).await.map_err(failure)?;
        let (id, seed, executed, execution, elapsed) = (run.id, run.seed, run.circuit, run.execution, run.elapsed);
        let original_gates = run.original_gates;
        let depth = quantum::depth(&executed);
        let mut text = format!(
            "Executed {} ({} qubits, {} gates, depth {depth}) with {shots} shots in {:.2} ms.",
            id,
            executed.qubits(),
            executed.gates().len(),
            millis(elapsed)
        );
        let mut top: Vec<_> = execution.counts.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (outcome, count) in top.iter().take(8) {
            text.push_str(&format!("\n  {outcome}: {count}"));
        }
        let out = json!({
            "execution_id": id,
            "status": "completed",
            "circuit_digest": executed.digest(),
            "seed": seed,
            "shots": shots,
            "results": {
                "measurements": execution.counts,
                "probabilities": execution.probabilities,
                "probabilities_truncated": execution.probabilities_truncated,
                "unlisted_shots": execution.unlisted_shots,
                "execution_time_ms": millis(elapsed),
            },
            "metrics": {
                "qubits": executed.qubits(),
                "gate_count": executed.gates().len(),
                "depth": depth,
                "gate_applications": execution.gate_applications,
                "optimization_applied": level > 0,
                "optimization_level": level,
                "original_gate_count": original_gates,
            }
        });
        Ok(success(out, text))
    }
}

// ---------------------------------------------------------------------------------------
// optimize_circuit

#[derive(Debug, Deserialize)]
struct OptimizeArgs {
    circuit: CircuitSpec,
    optimization: Option<OptimizationArgs>,
}

#[derive(Debug, Deserialize)]
struct OptimizationArgs {
    level: Option<LevelArg>,
    #[serde(default = "yes")]
    preserve_semantics: bool,
}

fn yes() -> bool {
    true
}

/// `optimize_circuit`.
#[derive(Debug)]
pub struct OptimizeTool(pub Arc<Simulator>);

#[async_trait]
impl QudagTool for OptimizeTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "optimize_circuit",
            title: "Optimize a quantum circuit",
            description: "Rewrite a circuit into an equivalent one with fewer gates: level 1 drops identities and cancels adjacent inverse pairs, level 2 also merges rotations and phase gates, level 3 also looks through commuting gates. Equivalence (up to global phase) is checked by state-vector comparison for circuits of up to 12 qubits.",
            input: json!({
                "type": "object",
                "required": ["circuit"],
                "properties": {
                    "circuit": circuit_schema(),
                    "optimization": {
                        "type": "object",
                        "properties": {
                            "level": level_schema("0-3 (default 2)."),
                            "preserve_semantics": { "type": "boolean", "default": true, "description": "Verify equivalence when small enough (always true: rewrites never change semantics)." },
                            "target_metric": { "type": "string", "enum": ["depth", "gates", "fidelity", "dag-locality"], "description": "Accepted for compatibility." },
                            "max_iterations": { "type": "integer", "minimum": 1, "description": "Accepted for compatibility; passes run to a fixed point." }
                        }
                    }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["level", "original", "optimized", "verification"],
                "properties": {
                    "level": { "type": "integer" },
                    "original": { "type": "object", "required": ["gate_count", "depth", "digest"], "properties": { "gate_count": { "type": "integer" }, "depth": { "type": "integer" }, "digest": { "type": "string" } } },
                    "optimized": {
                        "type": "object",
                        "required": ["gate_count", "depth", "digest", "circuit"],
                        "properties": { "gate_count": { "type": "integer" }, "depth": { "type": "integer" }, "digest": { "type": "string" }, "circuit": { "type": "object" } }
                    },
                    "report": { "type": "object" },
                    "verification": {
                        "type": "object",
                        "required": ["method", "equivalent"],
                        "properties": { "method": { "type": "string" }, "equivalent": { "type": ["boolean", "null"] } }
                    }
                }
            }),
            permission: Permission::QuantumWrite,
            cost: 2,
            read_only: true,
            idempotent: true,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: OptimizeArgs = parse(arguments)?;
        let (level, verify) = match &args.optimization {
            Some(o) => (o.level.as_ref().map_or(Ok(2), |l| l.level("optimization.level"))?, o.preserve_semantics),
            None => (2, true),
        };
        let done = self
            .0
            .optimize(&args.circuit, level, verify)
            .await
            .map_err(|e| simulation_failure(e, "shots", "circuit"))?;
        let (original, optimized, equivalent) = (done.original, done.optimized, done.equivalent);
        let (before, after) = (original.gates().len(), optimized.circuit.gates().len());
        let out = json!({
            "level": level,
            "original": { "gate_count": before, "depth": quantum::depth(&original), "digest": original.digest() },
            "optimized": {
                "gate_count": after,
                "depth": quantum::depth(&optimized.circuit),
                "digest": optimized.circuit.digest(),
                "circuit": optimized.circuit.to_spec(),
            },
            "report": serde_json::to_value(&optimized.report).unwrap_or_default(),
            "verification": match equivalent {
                Some(e) => json!({ "method": "state-vector comparison on 4 random input states, up to global phase", "equivalent": e }),
                None => json!({ "method": format!("skipped: more than {} qubits", quantum::VERIFY_MAX_QUBITS), "equivalent": null }),
            },
        });
        let text = format!(
            "Level {level}: {before} → {after} gates, depth {} → {}{}.",
            quantum::depth(&original),
            quantum::depth(&optimized.circuit),
            if equivalent == Some(true) { ", equivalence verified" } else { "" }
        );
        Ok(success(out, text))
    }
}

// ---------------------------------------------------------------------------------------
// analyze_complexity

#[derive(Debug, Deserialize)]
struct AnalyzeArgs {
    circuit: CircuitSpec,
}

/// `analyze_complexity`.
#[derive(Debug)]
pub struct AnalyzeTool(pub Arc<Simulator>);

#[async_trait]
impl QudagTool for AnalyzeTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "analyze_complexity",
            title: "Analyze a circuit's complexity",
            description: "Depth, gate counts by kind, single- and two-qubit counts, T count, Clifford-ness, qubit connectivity, and memory and work estimates for simulating it.",
            input: json!({
                "type": "object",
                "required": ["circuit"],
                "properties": {
                    "circuit": circuit_schema(),
                    "analysis": { "type": "object", "description": "Accepted for compatibility; every metric is reported." }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["qubits", "gate_count", "depth", "gate_counts", "two_qubit_gates", "t_count", "estimates", "simulable"],
                "properties": {
                    "qubits": { "type": "integer" },
                    "gate_count": { "type": "integer" },
                    "depth": { "type": "integer" },
                    "gate_counts": { "type": "object", "additionalProperties": { "type": "integer" } },
                    "two_qubit_gates": { "type": "integer" },
                    "t_count": { "type": "integer" },
                    "estimates": { "type": "object" },
                    "simulable": { "type": "object", "required": ["allowed"], "properties": { "allowed": { "type": "boolean" }, "reason": { "type": "string" } } }
                }
            }),
            permission: Permission::QuantumRead,
            cost: 1,
            read_only: true,
            idempotent: true,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: AnalyzeArgs = parse(arguments)?;
        let analyzed = self.0.analyze(&args.circuit).map_err(|e| simulation_failure(e, "shots", "circuit"))?;
        let circuit = analyzed.circuit;
        let mut out = serde_json::to_value(&analyzed.analysis).unwrap_or_default();
        let simulable = match analyzed.simulable {
            Ok(()) => json!({ "allowed": true }),
            Err(e) => json!({ "allowed": false, "reason": e.to_string() }),
        };
        out["simulable"] = simulable;
        let text = format!(
            "{} qubits, {} gates, depth {}, {} two-qubit gates, T count {}.",
            circuit.qubits(),
            circuit.gates().len(),
            out["depth"],
            out["two_qubit_gates"],
            out["t_count"]
        );
        Ok(success(out, text))
    }
}

// ---------------------------------------------------------------------------------------
// benchmark_performance

#[derive(Debug, Deserialize)]
struct BenchmarkArgs {
    circuit: CircuitSpec,
    #[serde(default)]
    benchmark: BenchmarkArg,
}

#[derive(Debug, Default, Deserialize)]
struct BenchmarkArg {
    iterations: Option<u32>,
    warmup_iterations: Option<u32>,
    shots: Option<u64>,
}

/// `benchmark_performance`.
#[derive(Debug)]
pub struct BenchmarkTool(pub Arc<Simulator>);

#[async_trait]
impl QudagTool for BenchmarkTool {
    fn spec(&self) -> ToolSpec {
        let max = self.0.limits().max_benchmark_iterations;
        ToolSpec {
            name: "benchmark_performance",
            title: "Benchmark a circuit",
            description: "Run a circuit's simulation warmup_iterations times untimed, then iterations times timed, and report min/mean/max and p50/p95/p99 latency and throughput on this server.",
            input: json!({
                "type": "object",
                "required": ["circuit"],
                "properties": {
                    "circuit": circuit_schema(),
                    "benchmark": {
                        "type": "object",
                        "properties": {
                            "iterations": { "type": "integer", "minimum": 1, "maximum": max, "default": 10 },
                            "warmup_iterations": { "type": "integer", "minimum": 0, "maximum": max, "default": 2 },
                            "shots": { "type": "integer", "minimum": 0, "default": 0, "description": "Shots sampled per run." }
                        }
                    },
                    "metrics": { "type": "object", "description": "Accepted for compatibility; every metric is reported." }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["iterations", "warmup_iterations", "latency_ms", "throughput"],
                "properties": {
                    "iterations": { "type": "integer" },
                    "warmup_iterations": { "type": "integer" },
                    "circuit_digest": { "type": "string" },
                    "latency_ms": {
                        "type": "object",
                        "required": ["min", "mean", "max", "p50", "p95", "p99"],
                        "properties": {
                            "min": { "type": "number" }, "mean": { "type": "number" }, "max": { "type": "number" },
                            "p50": { "type": "number" }, "p95": { "type": "number" }, "p99": { "type": "number" }
                        }
                    },
                    "throughput": {
                        "type": "object",
                        "properties": {
                            "circuits_per_second": { "type": "number" },
                            "gate_applications_per_second": { "type": "number" }
                        }
                    }
                }
            }),
            permission: Permission::QuantumExecute,
            cost: 10,
            read_only: true,
            idempotent: false,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: BenchmarkArgs = parse(arguments)?;
        let iterations = args.benchmark.iterations.unwrap_or(10);
        let warmup = args.benchmark.warmup_iterations.unwrap_or(2);
        let shots = args.benchmark.shots.unwrap_or(0);
        let options = BenchmarkOptions { iterations, warmup, shots };
        let report = self
            .0
            .benchmark(&args.circuit, options)
            .await
            .map_err(|e| simulation_failure(e, "benchmark.shots", "benchmark.iterations"))?;
        let (digest, applications, total) = (report.digest.clone(), report.gate_applications, report.total_ms);
        let sorted = &report.sorted_ms;
        let percentile = |p| report.percentile(p);
        let mean = total / f64::from(iterations);
        let per_second = if total > 0.0 { 1000.0 / mean } else { 0.0 };
        let out = json!({
            "iterations": iterations,
            "warmup_iterations": warmup,
            "circuit_digest": digest,
            "latency_ms": {
                "min": sorted.first().copied().unwrap_or(0.0),
                "mean": mean,
                "max": sorted.last().copied().unwrap_or(0.0),
                "p50": percentile(50.0),
                "p95": percentile(95.0),
                "p99": percentile(99.0),
            },
            "throughput": {
                "circuits_per_second": per_second,
                "gate_applications_per_second": if total > 0.0 { applications as f64 / (total / 1000.0) } else { 0.0 },
            }
        });
        let text = format!(
            "{iterations} runs after {warmup} warm-up: mean {mean:.3} ms, p50 {:.3}, p95 {:.3}, p99 {:.3} ms ({per_second:.1} circuits/s).",
            percentile(50.0),
            percentile(95.0),
            percentile(99.0)
        );
        Ok(success(out, text))
    }
}
