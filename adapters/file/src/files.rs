//! File naming and line-by-line reading, shared by the sink and the verifier.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use qudag_domain::audit::ChainedEvent;
use serde::Deserialize;

use crate::error::FileAuditError;

/// The extension of rotated files (and of the files a directory verify picks up).
pub const EXTENSION: &str = "jsonl";

/// Where a sink's files live: the active file and the rotated files beside it.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) dir: PathBuf,
    pub(crate) stem: String,
    pub(crate) active: PathBuf,
}

impl Layout {
    pub(crate) fn new(path: &Path) -> Result<Self, FileAuditError> {
        let invalid = |reason: &str| FileAuditError::InvalidConfig { path: path.to_owned(), reason: reason.to_owned() };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("the path must name a file with a UTF-8 name"))?
            .to_owned();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(Self { dir, stem, active: path.to_owned() })
    }

    /// `<dir>/<stem>-<first seq, 20 digits>.jsonl`.
    pub(crate) fn rotated_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(format!("{}-{first_seq:020}.{EXTENSION}", self.stem))
    }

    /// The first seq encoded in a rotated file's name, if `name` is one of ours.
    fn rotated_seq(&self, name: &str) -> Option<u64> {
        let digits = name.strip_prefix(self.stem.as_str())?.strip_prefix('-')?.strip_suffix(EXTENSION)?;
        let digits = digits.strip_suffix('.')?;
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
    }

    /// The rotated files, oldest first, with the first seq their names carry.
    pub(crate) fn rotated(&self) -> Result<Vec<(u64, PathBuf)>, FileAuditError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(FileAuditError::io(&self.dir, "list directory"))?;
        for entry in entries {
            let entry = entry.map_err(FileAuditError::io(&self.dir, "list directory"))?;
            let name = entry.file_name();
            if let Some(seq) = name.to_str().and_then(|n| self.rotated_seq(n)) {
                out.push((seq, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The first seq a rotated-file name carries (`…-<20 digits>.jsonl`), whatever its stem.
pub(crate) fn seq_from_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    let (_, digits) = rest.rsplit_once('-')?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// One line as read.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    /// From 1.
    pub(crate) number: u64,
    /// Byte offset of its first byte.
    pub(crate) offset: u64,
    /// Without the newline.
    pub(crate) text: &'a [u8],
    /// Whether it ended with a newline (a line without one was torn by a crash or a cut).
    pub(crate) complete: bool,
}

impl Line<'_> {
    pub(crate) fn parse(&self) -> Result<ChainedEvent, String> {
        serde_json::from_slice(self.text).map_err(|e| format!("not an audit event: {e}"))
    }

    /// Only the seq, for looking ahead without the cost of a full parse.
    pub(crate) fn seq(&self) -> Option<u64> {
        #[derive(Deserialize)]
        struct SeqOnly {
            seq: u64,
        }
        serde_json::from_slice::<SeqOnly>(self.text).ok().map(|s| s.seq)
    }
}

/// Reads a file one line at a time, reusing one buffer.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    number: u64,
    offset: u64,
}

impl LineReader<File> {
    pub(crate) fn open(path: &Path) -> Result<Self, FileAuditError> {
        Ok(Self::new(File::open(path).map_err(FileAuditError::io(path, "open"))?))
    }
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { reader: BufReader::with_capacity(64 * 1024, inner), buf: Vec::new(), number: 0, offset: 0 }
    }

    /// The next line, or `None` at the end.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        let offset = self.offset;
        self.offset += n as u64;
        let complete = self.buf.last() == Some(&b'\n');
        let text = if complete { &self.buf[..n - 1] } else { &self.buf[..] };
        Ok(Some(Line { number: self.number, offset, text, complete }))
    }
}

/// The UTC day (days since the epoch) of an instant.
pub(crate) fn utc_day(at: qudag_domain::Timestamp) -> u64 {
    at.as_secs() / 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_sort_in_chain_order_and_parse_back() {
        let layout = Layout::new(Path::new("/var/log/qudag/audit.jsonl")).unwrap();
        let a = layout.rotated_path(9);
        let b = layout.rotated_path(10);
        assert_eq!(a, Path::new("/var/log/qudag/audit-00000000000000000009.jsonl"));
        assert!(a < b);
        assert_eq!(layout.rotated_seq("audit-00000000000000000010.jsonl"), Some(10));
        assert_eq!(layout.rotated_seq("audit-10.jsonl"), None);
        assert_eq!(layout.rotated_seq("other-00000000000000000010.jsonl"), None);
        assert_eq!(layout.rotated_seq("audit.jsonl"), None);
        assert_eq!(seq_from_name(&b), Some(10));
        assert_eq!(seq_from_name(Path::new("audit.jsonl")), None);
    }

    #[test]
    fn lines_report_offsets_and_torn_tails() {
        let mut r = LineReader::new(&b"ab\ncde\nfg"[..]);
        let l = r.next_line().unwrap().unwrap();
        assert_eq!((l.number, l.offset, l.text, l.complete), (1, 0, &b"ab"[..], true));
        let l = r.next_line().unwrap().unwrap();
        assert_eq!((l.number, l.offset, l.text, l.complete), (2, 3, &b"cde"[..], true));
        let l = r.next_line().unwrap().unwrap();
        assert_eq!((l.number, l.offset, l.text, l.complete), (3, 7, &b"fg"[..], false));
        assert!(r.next_line().unwrap().is_none());
    }
}
