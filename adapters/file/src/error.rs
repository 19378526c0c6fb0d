//! What can go wrong opening or reading audit files.

use std::path::PathBuf;

/// Errors of [`FileAuditSink::open`](crate::FileAuditSink::open) and [`verify`](crate::verify).
///
/// Every variant names the file, and where it applies the line, so an operator can go
/// straight to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileAuditError {
    /// The file system refused an operation.
    #[error("audit file {}: cannot {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("open", "read", "truncate", ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line before the end of the chain cannot be trusted; the sink will not extend a
    /// broken chain.
    #[error(
        "audit file {} line {line}: {reason}; refusing to extend a broken chain (run `qudag-mcp audit verify`)",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration cannot work.
    #[error("audit file {}: {reason}", path.display())]
    InvalidConfig {
        /// The configured path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl FileAuditError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, op, source }
    }
}
