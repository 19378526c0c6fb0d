//! An execution with far more possible outcomes than a result lists keeps its memory to the
//! state vector and a bounded map: alone in its test binary, so the process's peak resident
//! size is this run's.
#![allow(clippy::unwrap_used)]

use qudag_domain::quantum::{Circuit, Gate, Limits, MAX_OUTCOMES, execute};

/// The process's peak resident size in bytes (`VmHWM`).
#[cfg(target_os = "linux")]
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn twenty_two_qubits_in_superposition_list_a_bounded_number_of_outcomes() {
    // H on every qubit: 2²² ≈ 4.2 million equally likely outcomes. Listing each as a
    // bitstring key took some 400 MB besides the 64 MiB state vector.
    let qubits = 22;
    let c = Circuit::new(qubits, (0..qubits).map(Gate::h).collect(), vec![], &Limits::default()).unwrap();
    let state_bytes = Limits::state_bytes(qubits).unwrap() as u64;
    let before = peak_rss();
    let run = execute(&c, 100_000, 7);
    let grown = peak_rss().saturating_sub(before);

    assert_eq!(run.probabilities.len(), MAX_OUTCOMES);
    assert!(run.probabilities_truncated);
    let p = 1.0 / f64::from(1u32 << qubits);
    assert!(run.probabilities.values().all(|q| (q - p).abs() < 1e-15));
    // Ties go to the smaller bitstrings: those starting with ten zeros.
    assert!(run.probabilities.keys().all(|k| k.starts_with("0000000000")), "{:?}", run.probabilities.keys().next());
    assert!(run.counts.len() <= MAX_OUTCOMES);
    assert_eq!(run.counts.values().sum::<u64>() + run.unlisted_shots, 100_000);
    assert!(run.unlisted_shots > 0);
    assert!(
        grown < state_bytes + state_bytes / 2,
        "the run grew the peak resident size by {grown} bytes, for a state vector of {state_bytes}"
    );
}
