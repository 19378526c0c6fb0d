//! Quantum circuits: the model, a state-vector simulator, an optimizer and analysis.
