//! Offline verification of audit files: `qudag-mcp audit verify PATH…`.

use std::fmt;
use std::path::{Path, PathBuf};

use qudag_domain::audit::{ChainHead, ChainVerifier, CheckpointSummary, ExpectedHead, HeadCheck, LinkError};

use crate::error::FileAuditError;
use crate::files::{EXTENSION, LineReader, seq_from_name};

/// Why the chain breaks where it does.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakReason {
    /// The event's content no longer matches its hash.
    Edited,
    /// The event's `prev_hash` is not the hash of the event before it (an event was
    /// replaced, inserted or renumbered, or the first event of the chain does not start
    /// from the genesis hash).
    BrokenLink,
    /// The seq jumps forward and the missing events appear nowhere later: they were
    /// deleted (a line, or a whole file).
    Gap {
        /// The seq that should be here.
        expected: u64,
    },
    /// The seq is out of order: it goes backwards, or the missing events appear later.
    Reordered {
        /// The seq that should be here.
        expected: u64,
    },
    /// The file ends mid-line: a torn write or a cut.
    Truncated,
    /// The line is not an audit event.
    Unparseable(String),
    /// A signed checkpoint does not hold: its signature does not verify with the given key,
    /// or it covers an anchor that is not in the chain as signed (history was rewritten).
    BadCheckpoint(String),
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited => f.write_str("edited: the record no longer matches its hash"),
            Self::BrokenLink => f.write_str("broken link: its prev_hash is not the hash of the event before it"),
            Self::Gap { expected } => write!(f, "gap: expected seq {expected}, so events from {expected} were deleted"),
            Self::Reordered { expected } => {
                write!(f, "reordered: expected seq {expected} here, events are out of order")
            }
            Self::Truncated => f.write_str("truncated: the file ends mid-line"),
            Self::Unparseable(why) => write!(f, "unparseable: {why}"),
            Self::BadCheckpoint(why) => write!(f, "bad checkpoint: {why}"),
        }
    }
}

/// The first broken link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    /// The file holding it.
    pub file: PathBuf,
    /// The line, from 1.
    pub line: u64,
    /// The seq the line carries, when it can be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: BreakReason,
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The files read, in chain order.
    pub files: Vec<PathBuf>,
    /// How many events verified before the end or the first break.
    pub verified: u64,
    /// The seq of the first event read (`Some(0)` for a chain from its genesis).
    pub first_seq: Option<u64>,
    /// Where the verified part of the chain stands (`None` when no event verified).
    pub head: Option<ChainHead>,
    /// The first broken link; `None` when the chain is intact.
    pub broken: Option<BrokenLink>,
    /// Signed checkpoints that held (their signatures checked when a key was given).
    pub checkpoints: u64,
    /// The highest seq a checkpoint that held covers.
    pub signed_through: Option<u64>,
    /// Whether checkpoint signatures were checked (a verification key was given).
    pub signatures_checked: bool,
    /// The head the trail was expected to reach, and what was found of it.
    pub expected: Option<(ExpectedHead, HeadCheck)>,
}

pub use qudag_domain::audit::CheckpointKey;

impl VerifyReport {
    /// Whether every event verified, and the expected head (if any) is in the chain.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none() && self.expected.is_none_or(|(_, check)| check == HeadCheck::Found)
    }

    /// Events after the last signed checkpoint that held: what no signature vouches for yet.
    pub fn unattested(&self) -> u64 {
        let Some(head) = self.head.filter(|_| self.verified > 0) else { return 0 };
        let last = head.next_seq.saturating_sub(1);
        match self.signed_through {
            Some(through) => last.saturating_sub(through),
            None => self.verified,
        }
    }
}

impl VerifyReport {
    fn write_expected(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expected {
            Some((head, check)) => write!(f, " {}", check.describe(head)),
            None => Ok(()),
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = self.files.len();
        let plural = if files == 1 { "" } else { "s" };
        let range = match (self.first_seq, self.head) {
            (Some(first), Some(head)) if self.verified > 0 => format!(" (seq {first} to {})", head.next_seq - 1),
            _ => String::new(),
        };
        match &self.broken {
            None => {
                match self.head {
                    Some(head) if self.verified > 0 => write!(
                        f,
                        "audit chain intact: {} events verified{range} in {files} file{plural}; head hash {}.",
                        self.verified, head.head
                    )?,
                    _ => write!(f, "audit chain intact: no events in {files} file{plural}.")?,
                }
                write!(
                    f,
                    "{}",
                    CheckpointSummary {
                        checkpoints: self.checkpoints,
                        signed_through: self.signed_through,
                        signatures_checked: self.signatures_checked,
                    }
                )?;
                if let Some(first) = self.first_seq.filter(|s| *s > 0) {
                    write!(
                        f,
                        " The chain starts at seq {first}: earlier events were not given, so its first link is taken on trust."
                    )?;
                }
                if self.checkpoints > 0 || self.signatures_checked {
                    write!(f, " {} events after the last signed checkpoint (unattested tail).", self.unattested())?;
                }
                self.write_expected(f)
            }
            Some(b) => {
                let seq = b.seq.map_or_else(|| "seq unreadable".to_owned(), |s| format!("seq {s}"));
                write!(
                    f,
                    "audit chain BROKEN at {} line {} ({seq}): {}. The {} events before it verified{range}; nothing from this line on can be trusted.",
                    b.file.display(),
                    b.line,
                    b.reason,
                    self.verified
                )?;
                self.write_expected(f)
            }
        }
    }
}

/// Verify audit files: every line parses, seqs increase by exactly one across files, every
/// `prev_hash` is the previous event's hash and every hash recomputes.
///
/// A directory stands for its `*.jsonl` files. Files are taken in chain order, by the seq of
/// their first event (or, when that line cannot be read, the seq a rotated file's name
/// carries), whatever order they are given in. A chain from seq 0 must start from the
/// genesis hash; one that starts later (older files archived) takes its first link on trust
/// and says so.
///
/// # Errors
/// A file or directory cannot be read, or there are no files at all. A broken chain is not
/// an error: it is in the report.
pub fn verify(paths: &[PathBuf]) -> Result<VerifyReport, FileAuditError> {
    verify_with(paths, None)
}

/// As [`verify`], and also every signed checkpoint (`audit.checkpoint`): that it covers an
/// anchor present in the chain with the hash that was signed and, when `key` is given, that
/// its signature verifies with that key. A chain whose history was rewritten and re-hashed
/// breaks at the first checkpoint after the rewrite.
///
/// # Errors
/// As [`verify`].
pub fn verify_with(paths: &[PathBuf], key: Option<&CheckpointKey>) -> Result<VerifyReport, FileAuditError> {
    verify_expecting(paths, key, None)
}

/// As [`verify_with`], and also whether the chain contains `expected` (see
/// [`VerifyReport::expected`]): a trail whose last events were cut off verifies as a chain,
/// but not as one that reaches a head a witness kept.
///
/// # Errors
/// As [`verify`].
pub fn verify_expecting(
    paths: &[PathBuf],
    key: Option<&CheckpointKey>,
    expected: Option<ExpectedHead>,
) -> Result<VerifyReport, FileAuditError> {
    let mut report = verify_chain_files(paths, key, expected)?;
    if let Some(head) = expected
        && report.expected.is_none()
    {
        report.expected = Some((head, HeadCheck::EndsBefore));
    }
    Ok(report)
}

fn verify_chain_files(
    paths: &[PathBuf],
    key: Option<&CheckpointKey>,
    expected: Option<ExpectedHead>,
) -> Result<VerifyReport, FileAuditError> {
    let files = chain_order(expand(paths)?)?;
    let mut report = VerifyReport {
        files: files.clone(),
        verified: 0,
        first_seq: None,
        head: None,
        broken: None,
        checkpoints: 0,
        signed_through: None,
        signatures_checked: key.is_some(),
        expected: None,
    };
    let mut chain = ChainVerifier::new(key.cloned());
    for (index, path) in files.iter().enumerate() {
        let mut reader = LineReader::open(path)?;
        loop {
            let line = reader.next_line().map_err(FileAuditError::io(path, "read"))?;
            let Some(line) = line else { break };
            let number = line.number;
            let broken = |seq, reason| Some(BrokenLink { file: path.clone(), line: number, seq, reason });
            if !line.complete {
                report.broken = broken(line.seq(), BreakReason::Truncated);
                return Ok(report);
            }
            let event = match line.parse() {
                Ok(event) => event,
                Err(why) => {
                    report.broken = broken(line.seq(), BreakReason::Unparseable(why));
                    return Ok(report);
                }
            };
            report.first_seq.get_or_insert(event.seq);
            let pushed = chain.push(&event);
            report.verified = chain.verified();
            report.head = chain.head();
            report.checkpoints = chain.checkpoints();
            report.signed_through = chain.signed_through();
            let reason = match pushed {
                Ok(()) => {
                    if let Some(head) = expected.filter(|h| h.seq == event.seq) {
                        let check = if event.hash == head.hash {
                            HeadCheck::Found
                        } else {
                            HeadCheck::Differs { found: event.hash }
                        };
                        report.expected = Some((head, check));
                    }
                    continue;
                }
                Err(LinkError::OutOfSequence { expected }) => {
                    let later =
                        event.seq > expected && appears_later(&mut reader, path, &files[index + 1..], expected)?;
                    if event.seq < expected || later {
                        BreakReason::Reordered { expected }
                    } else {
                        BreakReason::Gap { expected }
                    }
                }
                Err(LinkError::BrokenLink) => BreakReason::BrokenLink,
                Err(LinkError::Edited) => BreakReason::Edited,
                Err(LinkError::BadCheckpoint(why)) => BreakReason::BadCheckpoint(why),
                Err(e @ LinkError::SeqExhausted) => BreakReason::Unparseable(e.to_string()),
            };
            report.broken = broken(Some(event.seq), reason);
            return Ok(report);
        }
    }
    Ok(report)
}

/// Whether an event with seq `wanted` appears in the rest of `reader` or in `rest`.
fn appears_later(
    reader: &mut LineReader<std::fs::File>,
    current: &Path,
    rest: &[PathBuf],
    wanted: u64,
) -> Result<bool, FileAuditError> {
    fn scan(reader: &mut LineReader<std::fs::File>, path: &Path, wanted: u64) -> Result<bool, FileAuditError> {
        while let Some(line) = reader.next_line().map_err(FileAuditError::io(path, "read"))? {
            if line.seq() == Some(wanted) {
                return Ok(true);
            }
        }
        Ok(false)
    }
    if scan(reader, current, wanted)? {
        return Ok(true);
    }
    for path in rest {
        if scan(&mut LineReader::open(path)?, path, wanted)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Files, with each directory replaced by its `*.jsonl` files.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FileAuditError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(FileAuditError::io(path, "read metadata of"))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(path).map_err(FileAuditError::io(path, "list directory"))?;
            for entry in entries {
                let entry = entry.map_err(FileAuditError::io(path, "list directory"))?;
                let p = entry.path();
                if p.extension().is_some_and(|e| e == EXTENSION) && p.is_file() {
                    out.push(p);
                }
            }
        } else {
            out.push(path.clone());
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        let shown = paths.first().cloned().unwrap_or_default();
        return Err(FileAuditError::InvalidConfig {
            path: shown,
            reason: format!("no audit files (*.{EXTENSION}) to verify"),
        });
    }
    Ok(out)
}

/// Sort files by the seq of their first event (else the seq in their name), then by name.
fn chain_order(files: Vec<PathBuf>) -> Result<Vec<PathBuf>, FileAuditError> {
    let mut keyed = Vec::with_capacity(files.len());
    for path in files {
        let mut reader = LineReader::open(&path)?;
        let first = reader.next_line().map_err(FileAuditError::io(&path, "read"))?.and_then(|l| l.seq());
        let key = first.or_else(|| seq_from_name(&path)).unwrap_or(u64::MAX);
        keyed.push((key, path));
    }
    keyed.sort();
    Ok(keyed.into_iter().map(|(_, p)| p).collect())
}
