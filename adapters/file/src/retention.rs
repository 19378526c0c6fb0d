//! Retention: removing old audit files without breaking what remains.
//!
//! Only whole rotated files go (never the active one), oldest first, and only while each
//! is older than the cut-off (its last event), **verifies**, and is covered by a checkpoint
//! **signed with this server's key** (its last seq is at or before that checkpoint's
//! anchor). Before anything is deleted the chain is read from its oldest file: every line
//! must parse, every seq follow the one before, every `prev_hash` and hash recompute, every
//! checkpoint name an anchor present as signed, and every checkpoint that names this
//! server's key must carry a signature that verifies with it. Checkpoints of another key
//! (an earlier key of this node) neither vouch for files nor break the chain.
//!
//! Where the chain does not verify, that file and everything after it are kept, and the
//! place is reported ([`PruneReport::unverified`], logged as an error; the server also counts
//! it as a backend error of `audit_retention`). Pruning stops at the first file that does not
//! qualify, so what remains is one contiguous chain from a later seq, whose checkpoints still
//! verify with the server's key (`verify_with`): an anchor that was pruned is not checked
//! for presence, its signature is.

use std::path::{Path, PathBuf};

use qudag_domain::Timestamp;
use qudag_domain::audit::{
    AuditAction, ChainHash, ChainVerifier, ChainedEvent, CheckpointKey, LinkError, checkpoint_message,
};
use qudag_domain::pqc::{dsa, fingerprint};

use crate::error::FileAuditError;
use crate::files::{Layout, LineReader};
use crate::verify::{BreakReason, BrokenLink};

/// What [`prune`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The files deleted, oldest first.
    pub removed: Vec<PathBuf>,
    /// How many events they held.
    pub events: u64,
    /// The highest seq a checkpoint signed with the server's key covers, among those that
    /// verified (`None`: no such checkpoint, so nothing may go).
    pub covered_through: Option<u64>,
    /// Where the chain stopped verifying: that file and every later one were kept.
    pub unverified: Option<BrokenLink>,
}

struct FileFacts {
    path: PathBuf,
    events: u64,
    last: Option<(u64, Timestamp)>,
    /// Whether every line of the file verified.
    verified: bool,
}

/// Reads the chain in order and remembers how far it holds.
struct Walk<'k> {
    chain: ChainVerifier,
    key: &'k CheckpointKey,
    key_id: String,
    covered: Option<u64>,
    broken: Option<BrokenLink>,
}

impl Walk<'_> {
    /// Read `path`; false once the chain is broken (there or earlier).
    fn file(&mut self, path: &Path, active: bool, facts: &mut FileFacts) -> Result<bool, FileAuditError> {
        if self.broken.is_some() {
            return Ok(false);
        }
        let mut reader = LineReader::open(path)?;
        while let Some(line) = reader.next_line().map_err(FileAuditError::io(path, "read"))? {
            let number = line.number;
            if !line.complete {
                // The active file's last line may be being written as we read it.
                if active {
                    return Ok(true);
                }
                return self.stop(path, number, line.seq(), BreakReason::Truncated);
            }
            let event = match line.parse() {
                Ok(event) => event,
                Err(why) => return self.stop(path, number, line.seq(), BreakReason::Unparseable(why)),
            };
            if let Err(e) = self.chain.push(&event) {
                let reason = match e {
                    LinkError::OutOfSequence { expected } if event.seq < expected => {
                        BreakReason::Reordered { expected }
                    }
                    LinkError::OutOfSequence { expected } => BreakReason::Gap { expected },
                    LinkError::BrokenLink => BreakReason::BrokenLink,
                    LinkError::Edited => BreakReason::Edited,
                    LinkError::BadCheckpoint(why) => BreakReason::BadCheckpoint(why),
                    e @ LinkError::SeqExhausted => BreakReason::Unparseable(e.to_string()),
                };
                return self.stop(path, number, Some(event.seq), reason);
            }
            if let Err(why) = self.signed_by_us(&event) {
                return self.stop(path, number, Some(event.seq), BreakReason::BadCheckpoint(why));
            }
            facts.events += 1;
            facts.last = Some((event.seq, event.record.at));
        }
        Ok(true)
    }

    fn stop(&mut self, path: &Path, line: u64, seq: Option<u64>, reason: BreakReason) -> Result<bool, FileAuditError> {
        self.broken = Some(BrokenLink { file: path.to_owned(), line, seq, reason });
        Ok(false)
    }

    /// A checkpoint signature naming this server's key must verify with it; one that does
    /// extends what may be pruned.
    fn signed_by_us(&mut self, event: &ChainedEvent) -> Result<(), String> {
        if let Some(covers) = signed_with(event, self.key, &self.key_id)? {
            self.covered = self.covered.max(Some(covers));
        }
        Ok(())
    }
}

/// Whether `event` is a checkpoint signature that names `key` (whose fingerprint is
/// `key_id`): then the seq it covers once its signature verifies with `key`. Any other
/// event, or a checkpoint of another key, is `Ok(None)`: it neither vouches nor breaks.
/// Retention (of files here, of database rows in the PostgreSQL adapter) trusts only these.
///
/// # Errors
/// A checkpoint naming `key` whose fields or signature do not hold: why.
pub fn signed_with(event: &ChainedEvent, key: &CheckpointKey, key_id: &str) -> Result<Option<u64>, String> {
    let d = &event.record.details;
    if event.record.action != AuditAction::Checkpoint
        || d["phase"] != "signature"
        || d["key_id"].as_str() != Some(key_id)
    {
        return Ok(None);
    }
    let covers = d["covers_seq"].as_u64().ok_or("no covers_seq")?;
    let hash: ChainHash = d["covers_hash"]
        .as_str()
        .ok_or("no covers_hash")?
        .to_owned()
        .try_into()
        .map_err(|_| "covers_hash is not a hash".to_owned())?;
    if d["algorithm"].as_str() != Some(key.algorithm.as_str()) {
        return Err(format!("signed with {}, not the server key's {}", d["algorithm"], key.algorithm));
    }
    let signature =
        hex::decode(d["signature"].as_str().unwrap_or_default()).map_err(|_| "the signature is not hex".to_owned())?;
    dsa::verify(key.algorithm, &key.verifying_key, &checkpoint_message(covers, &hash), b"", &signature)
        .map_err(|_| format!("the signature over seq {covers} does not verify with the server's key"))?;
    Ok(Some(covers))
}

/// Remove the rotated files of the chain at `active` whose events all precede `before`,
/// that verify, and that a checkpoint signed with `key` (the server's checkpoint key)
/// covers.
///
/// # Errors
/// A file cannot be listed, read or removed (files removed before the error stay removed;
/// the rest of the chain is untouched and still verifies). A chain that does not verify is
/// not an error: the files from the break on are kept and the break is in the report.
pub fn prune(active: &Path, before: Timestamp, key: &CheckpointKey) -> Result<PruneReport, FileAuditError> {
    let layout = Layout::new(active)?;
    let rotated = layout.rotated()?;
    let mut walk = Walk {
        chain: ChainVerifier::new(None),
        key,
        key_id: fingerprint(&key.verifying_key),
        covered: None,
        broken: None,
    };
    let mut facts = Vec::with_capacity(rotated.len());
    for (_, path) in &rotated {
        let mut f = FileFacts { path: path.clone(), events: 0, last: None, verified: false };
        f.verified = walk.file(path, false, &mut f)?;
        facts.push(f);
    }
    if layout.active.exists() {
        let mut f = FileFacts { path: layout.active.clone(), events: 0, last: None, verified: false };
        walk.file(&layout.active, true, &mut f)?;
    }
    let mut report = PruneReport { covered_through: walk.covered, unverified: walk.broken, ..PruneReport::default() };
    if let Some(b) = &report.unverified {
        tracing::error!(
            file = %b.file.display(),
            line = b.line,
            seq = ?b.seq,
            reason = %b.reason,
            "Audit retention: the chain does not verify here; this file and every later one are kept"
        );
    }
    let Some(covered) = report.covered_through else { return Ok(report) };
    for f in facts {
        let Some((last_seq, last_at)) = f.last else { break };
        if !f.verified || last_seq > covered || last_at >= before {
            break;
        }
        std::fs::remove_file(&f.path).map_err(FileAuditError::io(&f.path, "remove"))?;
        tracing::info!(file = %f.path.display(), events = f.events, through_seq = last_seq, "Old audit file removed (verified, covered by a signed checkpoint)");
        report.events += f.events;
        report.removed.push(f.path);
    }
    Ok(report)
}
