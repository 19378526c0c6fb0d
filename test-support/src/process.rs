//! `qudag-mcp` as a child process, the way an operator runs it: a command with a clean
//! environment ([`command`], or [`qudag_mcp_command!`](crate::qudag_mcp_command) in the
//! binary's own tests), and a served process ([`Server`]) that is found by the address it
//! logs and killed when dropped, so a failing test leaves no server behind.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long [`Server::start`] waits for the `Listening` line.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// [`command`] for the `qudag-mcp` binary built for the calling crate's tests (cargo names it
/// in `CARGO_BIN_EXE_qudag-mcp` only there, hence a macro).
#[macro_export]
macro_rules! qudag_mcp_command {
    () => {
        $crate::process::command(env!("CARGO_BIN_EXE_qudag-mcp"))
    };
}

/// `binary` with no `QUDAG_*` variable from the developer's shell, and an issuer that nothing
/// listens on (authentication is on by default and needs one; tests that authenticate set
/// their own).
pub fn command(binary: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("QUDAG_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("QUDAG_OAUTH2_ISSUER_URL", "http://127.0.0.1:9").env("QUDAG_OAUTH2_AUDIENCE", "qudag-mcp-api");
    cmd
}

/// A running `qudag-mcp serve`, killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    port: u16,
    log: Option<BufReader<ChildStdout>>,
}

impl Server {
    /// Spawn `cmd` (a `serve` command) on a free loopback port with JSON logs and a 5 s
    /// shutdown grace, and wait up to 20 s for it to log the address it listens on. Its
    /// further log lines stay readable through [`Server::log`] (or are discarded after
    /// [`Server::drain_log`]).
    pub fn start(cmd: &mut Command) -> Self {
        let mut child = cmd
            .env("QUDAG_PORT", "0")
            .env("QUDAG_LOG_FORMAT", "json")
            .env("QUDAG_SHUTDOWN_GRACE_SECS", "5")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {:?}: {e}", cmd.get_program()));
        let mut log = BufReader::new(child.stdout.take().expect("the server's stdout is piped"));
        // Owned before waiting, so a server that never listens is killed when this panics.
        let mut server = Self { child, port: 0, log: None };
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            let read = log.read_line(&mut line).unwrap_or_else(|e| panic!("reading the server's log: {e}"));
            assert_ne!(read, 0, "the server exited before listening");
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if entry["message"] == "Listening" {
                let address = entry["address"].as_str().unwrap_or_default();
                let address: std::net::SocketAddr =
                    address.parse().unwrap_or_else(|e| panic!("the logged address {address:?}: {e}"));
                server.port = address.port();
                server.log = Some(log);
                return server;
            }
        }
        panic!("the server did not log its address within {LISTEN_TIMEOUT:?}");
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log (stdout) after the `Listening` line. Panics after [`Server::drain_log`].
    pub fn log(&mut self) -> &mut BufReader<ChildStdout> {
        self.log.as_mut().expect("the server's log was handed to a draining thread")
    }

    /// Read and discard its log on a thread of its own, so a server that logs a lot never
    /// blocks on a full pipe.
    pub fn drain_log(mut self) -> Self {
        if let Some(log) = self.log.take() {
            std::thread::spawn(move || for _ in log.lines() {});
        }
        self
    }

    /// Send it `signal` (a name `kill` knows: `TERM`, `HUP`, …).
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid} failed");
    }

    /// Kill it (SIGKILL, no chance to clean up) and reap it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap_or_else(|e| panic!("killing the server: {e}"));
        self.wait();
    }

    /// Wait for it to exit; its status.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap_or_else(|e| panic!("waiting for the server: {e}"))
    }

    /// Its status if it has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap_or_else(|e| panic!("polling the server: {e}"))
    }

    /// Send SIGTERM and wait up to `within` for the process to exit; its status.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop within {within:?} of SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
