//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};

/// A record of some size, at second `i` of day `day`.
pub fn record(i: u64) -> AuditRecord {
    AuditRecord::new(Timestamp::from_secs(1_000 + i), AuditAction::ToolCalled, Outcome::Success)
        .actor("iss#alice")
        .target(format!("tool-{i}"))
        .request_id(format!("req-{i}"))
        .details(serde_json::json!({ "i": i, "args": "0123456789abcdef" }))
}

/// The audit files of `dir`, in name order (= chain order).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    out.sort();
    out
}
