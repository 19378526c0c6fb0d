//! Temporary directories that are removed when the test ends, even when it fails: a
//! [`TempDir`] deletes its tree when dropped, and a panicking test still drops it while
//! unwinding.

pub use tempfile::TempDir;

/// A fresh, empty directory under the system's temporary directory, named
/// `qudag-<label>-<random>` so a leftover (from a killed test run) says where it came from.
pub fn temp_dir(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("qudag-{label}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory for {label}: {e}"))
}
