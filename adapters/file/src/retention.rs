//! Retention: removing old audit files without breaking what remains.
//!
//! Only whole rotated files go (never the active one), oldest first, and only while each
//! is both older than the cut-off (its last event) and covered by a signed checkpoint (its
//! last seq is at or before the newest checkpoint's anchor). Pruning stops at the first file
//! that does not qualify, so what remains is one contiguous chain from a later seq, whose
//! checkpoints still verify with the server's key (`verify_with`): an anchor that was pruned
//! is not checked for presence, its signature is.

use std::path::PathBuf;

use qudag_domain::Timestamp;
use qudag_domain::audit::AuditAction;

use crate::error::FileAuditError;
use crate::files::{Layout, LineReader};

/// What [`prune`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The files deleted, oldest first.
    pub removed: Vec<PathBuf>,
    /// How many events they held.
    pub events: u64,
    /// The highest seq a checkpoint covers (`None`: no checkpoint, so nothing may go).
    pub covered_through: Option<u64>,
}

struct FileFacts {
    path: PathBuf,
    events: u64,
    last: Option<(u64, Timestamp)>,
}

/// Remove the rotated files of the chain at `active` whose events all precede `before` and
/// a signed checkpoint.
///
/// # Errors
/// A file cannot be listed, read or removed (files removed before the error stay removed;
/// the rest of the chain is untouched and still verifies).
pub fn prune(active: &std::path::Path, before: Timestamp) -> Result<PruneReport, FileAuditError> {
    let layout = Layout::new(active)?;
    let rotated = layout.rotated()?;
    let mut facts = Vec::with_capacity(rotated.len());
    let mut covered: Option<u64> = None;
    let mut scan = |path: &std::path::Path| -> Result<FileFacts, FileAuditError> {
        let mut reader = LineReader::open(path)?;
        let mut f = FileFacts { path: path.to_owned(), events: 0, last: None };
        while let Some(line) = reader.next_line().map_err(FileAuditError::io(path, "read"))? {
            let Ok(event) = line.parse() else { continue };
            f.events += 1;
            f.last = Some((event.seq, event.record.at));
            let d = &event.record.details;
            if event.record.action == AuditAction::Checkpoint && d["phase"] == "signature" {
                covered = covered.max(d["covers_seq"].as_u64());
            }
        }
        Ok(f)
    };
    for (_, path) in &rotated {
        facts.push(scan(path)?);
    }
    if layout.active.exists() {
        scan(&layout.active)?;
    }
    let mut report = PruneReport { covered_through: covered, ..PruneReport::default() };
    let Some(covered) = covered else { return Ok(report) };
    for f in facts {
        let Some((last_seq, last_at)) = f.last else { break };
        if last_seq > covered || last_at >= before {
            break;
        }
        std::fs::remove_file(&f.path).map_err(FileAuditError::io(&f.path, "remove"))?;
        tracing::info!(file = %f.path.display(), events = f.events, through_seq = last_seq, "Old audit file removed (covered by a signed checkpoint)");
        report.events += f.events;
        report.removed.push(f.path);
    }
    Ok(report)
}
