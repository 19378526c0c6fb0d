//! `[audit]`: the audit trail: whether it is kept, where (memory, a hash-chained file,
//! PostgreSQL with a local spool), how durably, for how long, and what a request does when
//! the queue in front of the sink is full (`QUDAG_AUDIT_*`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::database::DatabaseSettings;
use super::error::ConfigError;
use super::parse::{non_empty, parse_bool, parse_num, unknown};

/// Where audit events go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditSinkKind {
    /// In this process: the latest events, for `/admin/audit`; not durable.
    #[default]
    Memory,
    /// JSON lines with a hash chain in `QUDAG_AUDIT_FILE`, rotated beside it.
    File,
    /// Rows with a hash chain per node in PostgreSQL (`QUDAG_DATABASE_URL`), spooled to
    /// `QUDAG_AUDIT_SPOOL` while the database is unreachable.
    Postgres,
}

/// When the file sink makes writes durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// Before each event is acknowledged.
    Always,
    /// At most every `fsync_interval_ms`.
    #[default]
    Interval,
}

/// When a request whose act is recorded may be answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAck {
    /// Once its record is durable (the file synced, the row committed); requests are
    /// refused before they run while the trail cannot take records.
    #[default]
    Durable,
    /// Once its record is queued: faster, but what is queued when the process dies is lost.
    Queued,
}

/// What happens when the audit queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueFull {
    /// Wait up to `queue_block_ms`, then answer 503.
    #[default]
    Block,
    /// Answer 503 at once, and refuse new requests until the queue drains.
    Refuse,
}

/// The audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Whether security-relevant acts are recorded at all.
    pub enabled: bool,
    /// Where they go.
    pub sink: AuditSinkKind,
    /// The file sink's active file.
    pub file: Option<PathBuf>,
    /// The PostgreSQL sink's local spool, where events wait while the database is unreachable.
    pub spool: Option<PathBuf>,
    /// When a request whose act is recorded by a durable sink may be answered.
    pub ack: AuditAck,
    /// The file sink's fsync policy.
    pub fsync: FsyncMode,
    /// With `fsync = interval`, the most milliseconds between syncs.
    pub fsync_interval_ms: u64,
    /// A file is rotated before it would pass this size.
    pub max_file_bytes: u64,
    /// Seconds between signed checkpoints of the chain (0: none).
    pub checkpoint_secs: u64,
    /// Records the queue in front of a durable sink holds.
    pub queue_capacity: usize,
    /// What happens when that queue is full.
    pub queue_full: QueueFull,
    /// With `queue_full = block`, the most milliseconds a request waits for a place.
    pub queue_block_ms: u64,
    /// Days audit events are kept (rotated files, or rows, removed once a signed checkpoint
    /// covers them); 0 keeps everything.
    pub retention_days: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            sink: AuditSinkKind::Memory,
            file: None,
            spool: None,
            ack: AuditAck::Durable,
            fsync: FsyncMode::Interval,
            fsync_interval_ms: 1000,
            max_file_bytes: 64 << 20,
            checkpoint_secs: 300,
            queue_capacity: 10_000,
            queue_full: QueueFull::Block,
            queue_block_ms: 100,
            retention_days: 0,
        }
    }
}

impl AuditSettings {
    /// Set `field` from a variable's text.
    pub(super) fn set(&mut self, field: &str, v: &str) -> Result<(), String> {
        match field {
            "enabled" => self.enabled = parse_bool(v)?,
            "sink" => {
                self.sink = match v.trim() {
                    "memory" => AuditSinkKind::Memory,
                    "file" => AuditSinkKind::File,
                    "postgres" => AuditSinkKind::Postgres,
                    _ => return Err("expected `memory`, `file` or `postgres`".into()),
                };
            }
            "file" => self.file = non_empty(v).map(PathBuf::from),
            "spool" => self.spool = non_empty(v).map(PathBuf::from),
            "ack" => {
                self.ack = match v.trim() {
                    "durable" => AuditAck::Durable,
                    "queued" => AuditAck::Queued,
                    _ => return Err("expected `durable` or `queued`".into()),
                };
            }
            "fsync" => {
                self.fsync = match v.trim() {
                    "always" => FsyncMode::Always,
                    "interval" => FsyncMode::Interval,
                    _ => return Err("expected `always` or `interval`".into()),
                };
            }
            "fsync_interval_ms" => self.fsync_interval_ms = parse_num(v)?,
            "max_file_bytes" => self.max_file_bytes = parse_num(v)?,
            "checkpoint_secs" => self.checkpoint_secs = parse_num(v)?,
            "queue_capacity" => self.queue_capacity = parse_num(v)?,
            "queue_full" => {
                self.queue_full = match v.trim() {
                    "block" => QueueFull::Block,
                    "refuse" => QueueFull::Refuse,
                    _ => return Err("expected `block` or `refuse`".into()),
                };
            }
            "queue_block_ms" => self.queue_block_ms = parse_num(v)?,
            "retention_days" => self.retention_days = parse_num(v)?,
            _ => return Err(unknown(field)),
        }
        Ok(())
    }

    /// Check the section; the PostgreSQL sink needs the `database` section's URL.
    pub(super) fn validate(&self, database: &DatabaseSettings) -> Result<(), ConfigError> {
        if self.enabled && self.sink == AuditSinkKind::File && self.file.is_none() {
            return Err(ConfigError::invalid("QUDAG_AUDIT_SINK", "file", "needs QUDAG_AUDIT_FILE"));
        }
        if self.enabled && self.sink == AuditSinkKind::Postgres {
            if database.url.is_none() {
                return Err(ConfigError::invalid("QUDAG_AUDIT_SINK", "postgres", "needs QUDAG_DATABASE_URL"));
            }
            if self.spool.is_none() {
                return Err(ConfigError::invalid(
                    "QUDAG_AUDIT_SINK",
                    "postgres",
                    "needs QUDAG_AUDIT_SPOOL (a local file where events wait while PostgreSQL is unreachable)",
                ));
            }
        }
        if self.retention_days > 0 && self.checkpoint_secs == 0 {
            return Err(ConfigError::invalid(
                "QUDAG_AUDIT_RETENTION_DAYS",
                self.retention_days,
                "needs signed checkpoints (QUDAG_AUDIT_CHECKPOINT_SECS > 0): only checkpointed files are removed",
            ));
        }
        if self.queue_capacity == 0 {
            return Err(ConfigError::invalid("QUDAG_AUDIT_QUEUE_CAPACITY", 0, "must be at least 1"));
        }
        if self.fsync_interval_ms == 0 {
            return Err(ConfigError::invalid("QUDAG_AUDIT_FSYNC_INTERVAL_MS", 0, "must be at least 1"));
        }
        if self.max_file_bytes < 4096 {
            return Err(ConfigError::invalid(
                "QUDAG_AUDIT_MAX_FILE_BYTES",
                self.max_file_bytes,
                "must be at least 4096",
            ));
        }
        Ok(())
    }
}
