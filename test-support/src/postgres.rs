//! The test PostgreSQL: the server `QUDAG_TEST_DATABASE_URL` names, and a database of its
//! own for each test that needs whole databases (the server's migrations, several nodes
//! sharing one audit table), dropped when the test ends.
//!
//! Databases are made and dropped with `psql`, so this crate needs no database driver of
//! its own (and the PostgreSQL adapter's tests can use it without a second SeaORM).

use std::process::Command;

/// The variable naming the test PostgreSQL.
pub const URL_VAR: &str = "QUDAG_TEST_DATABASE_URL";

/// The test PostgreSQL's URL when `QUDAG_TEST_DATABASE_URL` is set.
pub fn configured_url() -> Option<String> {
    std::env::var(URL_VAR).ok()
}

/// The test PostgreSQL's URL; panics, saying how to set it, when `QUDAG_TEST_DATABASE_URL`
/// is not set.
pub fn url() -> String {
    configured_url()
        .unwrap_or_else(|| panic!("{URL_VAR} names the test PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/test); tests/run.sh starts PostgreSQL and sets it"))
}

/// Run `sql` with `psql` against `url`; its output, unaligned and trimmed. Panics with
/// `psql`'s error when the statement fails.
pub fn psql(url: &str, sql: &str) -> String {
    let out = run_psql(url, sql)
        .unwrap_or_else(|e| panic!("running psql (Debian package postgresql-client; tests/run.sh installs it): {e}"));
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn run_psql(url: &str, sql: &str) -> std::io::Result<std::process::Output> {
    Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).output()
}

/// A database of its own on the test PostgreSQL, dropped (connections still open are
/// closed) when this value is.
#[derive(Debug)]
pub struct FreshDatabase {
    server: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    /// Create `qudag_<purpose>_<random>` on the server `QUDAG_TEST_DATABASE_URL` names.
    pub fn create(purpose: &str) -> Self {
        let server = url();
        let name = format!("qudag_{purpose}_{}", uuid::Uuid::new_v4().simple());
        psql(&server, &format!("CREATE DATABASE {name}"));
        let (prefix, _) = server.rsplit_once('/').unwrap_or_else(|| panic!("{URL_VAR} has no database: {server}"));
        let url = format!("{prefix}/{name}");
        Self { server, name, url }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        // No panic here: this may run while a failing test unwinds.
        match run_psql(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("dropping the test database {}: {}", self.name, String::from_utf8_lossy(&out.stderr)),
            Err(e) => eprintln!("dropping the test database {}: running psql: {e}", self.name),
        }
    }
}
