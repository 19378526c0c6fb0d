//! [`Spool`]: chained audit events waiting, durably, for a sink that is unreachable.
//!
//! A remote sink (PostgreSQL) that cannot write links its records into its chain as usual
//! and appends the chained events here; when the backend returns it replays them in order
//! and clears the spool. The format is the file sink's: one [`ChainedEvent`] per line, so
//! `qudag-mcp audit verify` reads a spool too. Appends are synced before they return.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use qudag_domain::audit::ChainedEvent;

use crate::error::FileAuditError;
use crate::files::LineReader;

/// A spool file. Not shared between processes: give each node its own path.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: File,
    len: u64,
    events: usize,
    last: Option<ChainedEvent>,
}

impl Spool {
    /// Open (or create) the spool at `path`. A torn last line (a crash mid-append: never
    /// acknowledged) is cut off; any other unreadable line makes this fail, naming it.
    ///
    /// # Errors
    /// The file cannot be created, read or repaired, or holds a line that is not an event.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, FileAuditError> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(FileAuditError::io(dir, "create the directory of"))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(FileAuditError::io(&path, "open"))?;
        let (events, len, last) = scan(&path)?;
        if file.metadata().map_err(FileAuditError::io(&path, "stat"))?.len() != len {
            tracing::warn!(file = %path.display(), "audit spool ends with a torn line (a crash mid-append; it was never acknowledged): truncating it away");
            file.set_len(len).map_err(FileAuditError::io(&path, "truncate the torn last line of"))?;
            file.sync_all().map_err(FileAuditError::io(&path, "sync"))?;
        }
        Ok(Self { path, file, len, events: events.len(), last })
    }

    /// Where the spool is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many events wait.
    pub fn len(&self) -> usize {
        self.events
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The newest event waiting.
    pub fn last(&self) -> Option<&ChainedEvent> {
        self.last.as_ref()
    }

    /// Append `events` and sync them: when this returns `Ok`, they survive a crash. On an
    /// error nothing of them stays in the spool.
    ///
    /// # Errors
    /// The write or the sync failed.
    pub fn append(&mut self, events: &[ChainedEvent]) -> Result<(), FileAuditError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for event in events {
            serde_json::to_writer(&mut buf, event).map_err(|e| FileAuditError::Io {
                path: self.path.clone(),
                op: "serialise an event for",
                source: e.into(),
            })?;
            buf.push(b'\n');
        }
        let written = self.file.write_all(&buf).and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Take back a partial append so the spool still ends on a whole event.
            let _ = self.file.set_len(self.len);
            return Err(FileAuditError::Io { path: self.path.clone(), op: "append to", source });
        }
        self.len += buf.len() as u64;
        self.events += events.len();
        self.last = events.last().cloned();
        Ok(())
    }

    /// Every event waiting, oldest first.
    ///
    /// # Errors
    /// The file cannot be read, or a line is not an event.
    pub fn events(&self) -> Result<Vec<ChainedEvent>, FileAuditError> {
        scan(&self.path).map(|(events, _, _)| events)
    }

    /// Empty the spool (after its events were replayed), synced.
    ///
    /// # Errors
    /// The truncation or the sync failed; the events are still there (a replay is
    /// idempotent, so replaying them again is safe).
    pub fn clear(&mut self) -> Result<(), FileAuditError> {
        self.file.set_len(0).map_err(FileAuditError::io(&self.path, "truncate"))?;
        self.file.sync_all().map_err(FileAuditError::io(&self.path, "sync"))?;
        self.len = 0;
        self.events = 0;
        self.last = None;
        Ok(())
    }
}

/// The whole events in `path`, the length they take, and the last one; a torn last line is
/// left out (the caller cuts it).
fn scan(path: &Path) -> Result<(Vec<ChainedEvent>, u64, Option<ChainedEvent>), FileAuditError> {
    let mut reader = LineReader::open(path)?;
    let mut events = Vec::new();
    let mut len = 0;
    let mut torn: Option<(u64, String)> = None;
    while let Some(line) = reader.next_line().map_err(FileAuditError::io(path, "read"))? {
        if let Some((number, reason)) = torn.take() {
            return Err(FileAuditError::Corrupt { path: path.to_owned(), line: number, reason });
        }
        match line.parse() {
            Ok(event) if line.complete => {
                len = line.offset + line.text.len() as u64 + 1;
                events.push(event);
            }
            Ok(_) => torn = Some((line.number, "the last line has no newline".into())),
            Err(reason) => torn = Some((line.number, reason)),
        }
    }
    let last = events.last().cloned();
    Ok((events, len, last))
}
