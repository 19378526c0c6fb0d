//! What the binary's tests share: the binary with a clean environment, and a served process
//! that is killed when dropped.

#![allow(clippy::unwrap_used, dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary, with no `QUDAG_*` from the developer's shell.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qudag-mcp"));
    // Start from a clean slate: no QUDAG_* from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("QUDAG_") {
            cmd.env_remove(key);
        }
    }
    // Authentication is on by default and needs an issuer; nothing listens on this one.
    cmd.env("QUDAG_OAUTH2_ISSUER_URL", "http://127.0.0.1:9").env("QUDAG_OAUTH2_AUDIENCE", "qudag-mcp-api");
    cmd
}

/// A running `qudag-mcp serve`, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Send SIGTERM and wait up to `within` for the process to exit; its status.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop within {within:?} of SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Start `serve` on a free port and return it with the port it logged.
pub fn start_server() -> (Server, u16, BufReader<ChildStdout>) {
    start_server_with(bin().arg("serve"))
}

pub fn start_server_with(cmd: &mut Command) -> (Server, u16, BufReader<ChildStdout>) {
    let mut child = cmd
        .env("QUDAG_PORT", "0")
        .env("QUDAG_LOG_FORMAT", "json")
        .env("QUDAG_SHUTDOWN_GRACE_SECS", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("server exited before listening");
        }
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["message"] == "Listening" {
            let addr: std::net::SocketAddr = entry["address"].as_str().unwrap().parse().unwrap();
            return (server, addr.port(), stdout);
        }
    }
    panic!("server did not log its address in time");
}

/// Run `sql` with psql against `url`; its output, unaligned and trimmed.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).output().unwrap();
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fresh database on the test PostgreSQL (`QUDAG_TEST_DATABASE_URL`): its URL.
pub fn fresh_database(purpose: &str) -> String {
    let base = std::env::var("QUDAG_TEST_DATABASE_URL")
        .expect("QUDAG_TEST_DATABASE_URL names the test PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/test)");
    let name = format!("qudag_{purpose}_{}", uuid::Uuid::new_v4().simple());
    psql(&base, &format!("CREATE DATABASE {name}"));
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

/// Drop a database [`fresh_database`] made (connections still open are closed).
pub fn drop_database(url: &str) {
    let base = std::env::var("QUDAG_TEST_DATABASE_URL").unwrap();
    let (_, name) = url.rsplit_once('/').unwrap();
    psql(&base, &format!("DROP DATABASE {name} WITH (FORCE)"));
}
