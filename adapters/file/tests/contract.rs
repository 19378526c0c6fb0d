//! The shared audit contract against a `FileAuditSink` in a fresh directory per test.

use std::sync::Arc;

use async_trait::async_trait;
use qudag_adapter_file::{FileAuditConfig, FileAuditSink, FsyncPolicy};
use qudag_application::ports::{AuditFilter, AuditPage, AuditQuery, AuditSink, AuditSinkError, BatchOutcome};
use qudag_domain::audit::{AuditRecord, ChainedEvent};
use qudag_test_support::temp::{TempDir, temp_dir};

/// A sink and the directory it writes to, removed when the test drops the sink (fields drop
/// in order: the sink first).
struct InDir {
    sink: FileAuditSink,
    _dir: TempDir,
}

impl InDir {
    fn open(label: &str, configure: impl FnOnce(&mut FileAuditConfig)) -> Arc<Self> {
        let dir = temp_dir(label);
        let mut config = FileAuditConfig::new(dir.path().join("audit.jsonl"));
        configure(&mut config);
        Arc::new(Self { sink: FileAuditSink::open(config).expect("open"), _dir: dir })
    }
}

#[async_trait]
impl AuditSink for InDir {
    async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
        self.sink.record(record).await
    }

    async fn record_batch(&self, records: Vec<AuditRecord>) -> BatchOutcome {
        self.sink.record_batch(records).await
    }

    async fn submit(&self, record: AuditRecord) -> Result<(), AuditSinkError> {
        self.sink.submit(record).await
    }

    fn accepting(&self) -> bool {
        self.sink.accepting()
    }

    async fn flush(&self) -> Result<(), AuditSinkError> {
        self.sink.flush().await
    }
}

#[async_trait]
impl AuditQuery for InDir {
    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AuditPage, AuditSinkError> {
        self.sink.query(filter, cursor, limit).await
    }
}

async fn file_sink() -> Arc<InDir> {
    InDir::open("file-audit-contract", |config| {
        // Small files so the contract also runs across rotations.
        config.max_file_bytes = 2_048;
        config.fsync = FsyncPolicy::Always;
    })
}

async fn interval_sink() -> Arc<InDir> {
    InDir::open("file-audit-contract-interval", |_| {})
}

mod always_small_files {
    qudag_application::audit_contract!(super::file_sink);
}

mod interval_defaults {
    qudag_application::audit_contract!(super::interval_sink);
}
