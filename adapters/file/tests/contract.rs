//! The shared audit contract against a `FileAuditSink` in a fresh directory per test.

use std::sync::Arc;

use qudag_adapter_file::{FileAuditConfig, FileAuditSink, FsyncPolicy};

mod common;

async fn file_sink() -> Arc<FileAuditSink> {
    let dir = common::TempDir::new("contract").keep();
    let mut config = FileAuditConfig::new(dir.join("audit.jsonl"));
    // Small files so the contract also runs across rotations.
    config.max_file_bytes = 2_048;
    config.fsync = FsyncPolicy::Always;
    Arc::new(FileAuditSink::open(config).expect("open"))
}

async fn interval_sink() -> Arc<FileAuditSink> {
    let dir = common::TempDir::new("contract-interval").keep();
    Arc::new(FileAuditSink::open(FileAuditConfig::new(dir.join("audit.jsonl"))).expect("open"))
}

mod always_small_files {
    qudag_application::audit_contract!(super::file_sink);
}

mod interval_defaults {
    qudag_application::audit_contract!(super::interval_sink);
}
