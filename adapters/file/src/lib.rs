//! The tamper-evident JSON-lines audit sink of the QuDAG MCP server.
//!
//! [`FileAuditSink`] implements the application's `AuditSink`, `AuditQuery` and
//! `HealthIndicator` ports over plain files: one [`ChainedEvent`](qudag_domain::audit::ChainedEvent)
//! per line (its `seq`, the record's fields, `prev_hash` and `hash`, where `hash` is the
//! domain's `chain_hash` — BLAKE3 over the previous hash, the seq and the canonical record).
//!
//! Files: the active file is the configured path; when it would pass `max_file_bytes`, or
//! a record's UTC day is later than the file's, it is renamed to
//! `<stem>-<seq of its first event, 20 digits>.jsonl` beside it, so name order is chain
//! order, and the chain continues in a new active file (its first `prev_hash` is the last
//! hash of the previous file).
//!
//! [`verify`] checks files offline (`qudag-mcp audit verify PATH…`) and reports the first
//! broken link by file, line and seq.
#![deny(missing_docs)]

mod error;
mod files;
mod retention;
mod sink;
mod spool;
mod verify;

pub use error::FileAuditError;
pub use files::EXTENSION;
pub use qudag_domain::audit::{ExpectedHead, HeadCheck};
pub use retention::{PruneReport, prune, signed_with};
pub use sink::{FileAuditConfig, FileAuditSink, FsyncPolicy};
pub use spool::Spool;
pub use verify::{BreakReason, BrokenLink, CheckpointKey, VerifyReport, verify, verify_expecting, verify_with};
