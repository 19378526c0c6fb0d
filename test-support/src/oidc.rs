//! A real OpenID Connect issuer for tests: the project's test issuer in `tests/oidc`
//! (node-oidc-provider with a client per role and per signing algorithm, see its README), run
//! as a child process on a free loopback port and stopped when the [`Issuer`] is dropped.
//!
//! Its pinned packages are installed by `tests/run.sh`; a start without them installs them
//! first (`npm ci`, which needs npm and takes a while).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use qudag_test_support::oidc::Issuer;
//!
//! let issuer = Issuer::start(&[("OIDC_EXTRA_ALGS", "ES512")]).await?;
//! let token = issuer.token("qudag-developer", Some("mcp:read"), None).await?;
//! let expired = issuer.sign(serde_json::json!({ "payload": { "exp": 0 } })).await?;
//! issuer.rotate(false).await?;
//! let jwks = issuer.jwks().await?;
//! # let _ = (token, expired, jwks);
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// How long [`Issuer::start`] waits for the ready line (the first start may run `npm ci`).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Issuer`]'s drop waits for the process to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How many output lines are kept (for error messages and [`Issuer::output`]).
const OUTPUT_LINES: usize = 500;
/// How often a start is retried when the chosen port was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

/// A running test issuer, killed (SIGTERM, then wait) on drop.
#[derive(Debug)]
pub struct Issuer {
    child: Child,
    port: u16,
    url: String,
    client: reqwest::Client,
    output: Output,
}

/// The issuer's recent stdout and stderr lines, shared with the threads draining the pipes.
type Output = Arc<Mutex<VecDeque<String>>>;

/// Why one start attempt failed.
enum StartError {
    /// The port was taken between choosing it and the issuer binding it: try another.
    PortTaken(anyhow::Error),
    /// Anything else.
    Fatal(anyhow::Error),
}

impl Issuer {
    /// Start the issuer on a free loopback port with `tests/oidc/start.sh PORT` and the extra
    /// environment variables `env` (e.g. `("OIDC_EXTRA_ALGS", "ES512")`). `OIDC_*` variables of
    /// the test's own environment are not passed on.
    ///
    /// Waits at most 60 s (the first start may run `npm ci`) for the stdout line
    /// `ready <issuer>`; afterwards background threads keep draining stdout and stderr so the
    /// pipes never fill. Fails with the issuer's last line first (e.g. the one naming a missing
    /// npm), then its whole output, if it exits before it is ready.
    pub async fn start(env: &[(&str, &str)]) -> anyhow::Result<Issuer> {
        let dir = fixture_dir()?;
        let script = dir.join("start.sh");
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match start_once(&script, env).await {
                Ok(issuer) => return Ok(issuer),
                Err(StartError::PortTaken(err)) => last = Some(err),
                Err(StartError::Fatal(err)) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("the test issuer did not start")))
    }

    /// The issuer identifier printed on the ready line, e.g. `http://127.0.0.1:PORT`; every
    /// endpoint is under it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The issuer's recent output (stdout and stderr, one line each, at most the last 500).
    pub fn output(&self) -> String {
        output_text(&self.output)
    }

    /// A `client_credentials` access token for `client_id` (secret `<client_id>-secret`, HTTP
    /// Basic), with an optional `scope` (space-separated) and `resource` (RFC 8707, sets `aud`).
    /// Fails with the response body unless the status is 200.
    pub async fn token(&self, client_id: &str, scope: Option<&str>, resource: Option<&str>) -> anyhow::Result<String> {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(scope.map(|scope| ("scope", scope)));
        form.extend(resource.map(|resource| ("resource", resource)));
        let answer = self.token_response(client_id, &form, None).await?;
        string_field(&answer, "access_token")
    }

    /// The whole JSON answer of the token endpoint for `client_id` (secret `<client_id>-secret`,
    /// HTTP Basic) with the form fields `form` (`grant_type=client_credentials` is added when
    /// `form` names no `grant_type`) and, if given, a `DPoP` proof header. Fails with the
    /// response body unless the status is 200.
    pub async fn token_response(
        &self,
        client_id: &str,
        form: &[(&str, &str)],
        dpop_proof: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut fields = form.to_vec();
        if !fields.iter().any(|(name, _)| *name == "grant_type") {
            fields.insert(0, ("grant_type", "client_credentials"));
        }
        let mut request = self
            .client
            .post(self.endpoint("/token"))
            .basic_auth(client_id, Some(format!("{client_id}-secret")))
            .form(&fields);
        if let Some(proof) = dpop_proof {
            request = request.header("DPoP", proof);
        }
        json_ok(request, "POST /token").await
    }

    /// `POST /test/sign` with `body` (`alg`, `payload`, `header`, `key`, `secret`; see
    /// `tests/oidc/README.md`): a token signed by the issuer's keys with the claims chosen.
    pub async fn sign(&self, body: Value) -> anyhow::Result<String> {
        let answer = json_ok(self.client.post(self.endpoint("/test/sign")).json(&body), "POST /test/sign").await?;
        string_field(&answer, "token")
    }

    /// `POST /test/rotate` (`retire` adds `?retire=1`: only the new generation stays
    /// published); returns the answer (`generation`, `signing_kids`, `published_kids`).
    pub async fn rotate(&self, retire: bool) -> anyhow::Result<Value> {
        let path = if retire { "/test/rotate?retire=1" } else { "/test/rotate" };
        json_ok(self.client.post(self.endpoint(path)), &format!("POST {path}")).await
    }

    /// `GET /test/stats` (`reset` adds `?reset=1`): request counters (`discovery`, `jwks`,
    /// `token`, `introspection`).
    pub async fn stats(&self, reset: bool) -> anyhow::Result<Value> {
        let path = if reset { "/test/stats?reset=1" } else { "/test/stats" };
        json_ok(self.client.get(self.endpoint(path)), &format!("GET {path}")).await
    }

    /// `GET /jwks`: the published keys.
    pub async fn jwks(&self) -> anyhow::Result<Value> {
        json_ok(self.client.get(self.endpoint("/jwks")), "GET /jwks").await
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        stop(&mut self.child, STOP_GRACE);
    }
}

/// The test issuer's folder, `<repo>/tests/oidc`.
fn fixture_dir() -> anyhow::Result<PathBuf> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/oidc");
    let dir = Path::new(dir).canonicalize().with_context(|| format!("the test issuer's folder {dir} is missing"))?;
    if !dir.join("start.sh").is_file() {
        bail!("{} has no start.sh", dir.display());
    }
    Ok(dir)
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

async fn start_once(script: &Path, env: &[(&str, &str)]) -> Result<Issuer, StartError> {
    let port = free_port().map_err(StartError::Fatal)?;
    let mut command = Command::new(script);
    command.arg(port.to_string());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OIDC_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child =
        command.spawn().with_context(|| format!("spawning {}", script.display())).map_err(StartError::Fatal)?;

    let output = Output::default();
    let (ready_tx, ready_rx) = oneshot::channel();
    let fatal = StartError::Fatal;
    let stdout = child.stdout.take().context("the child's stdout").map_err(fatal)?;
    let stderr = child.stderr.take().context("the child's stderr").map_err(fatal)?;
    let stdout = stdout.into_owned_fd().context("the child's stdout").map_err(fatal)?;
    let stderr = stderr.into_owned_fd().context("the child's stderr").map_err(fatal)?;
    drain(std::fs::File::from(stdout), output.clone(), Some(ready_tx)).map_err(fatal)?;
    let stderr_thread = drain(std::fs::File::from(stderr), output.clone(), None).map_err(fatal)?;

    let started = Instant::now();
    match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
        Ok(Ok(url)) => {
            crate::install_crypto_provider();
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .context("building the HTTP client")
                .map_err(fatal)?;
            Ok(Issuer { child, port, url, client, output })
        }
        Ok(Err(_)) => {
            // Stdout closed before the ready line: the issuer (or start.sh) exited.
            let status = wait_exit(&mut child, Duration::from_secs(10)).await;
            wait_thread(&stderr_thread, Duration::from_secs(2)).await;
            let text = output_text(&output);
            let last = text.lines().last().unwrap_or_default().trim().to_owned();
            let err = anyhow!(
                "the test issuer did not start: {last}\n({} {port} exited before it was ready ({}) after {:.1?}; its output:\n{text})",
                script.display(),
                status.map_or_else(|| "still running".to_owned(), |status| status.to_string()),
                started.elapsed(),
            );
            if text.contains("EADDRINUSE") { Err(StartError::PortTaken(err)) } else { Err(StartError::Fatal(err)) }
        }
        Err(_) => {
            stop(&mut child, Duration::from_secs(2));
            Err(StartError::Fatal(anyhow!(
                "the test issuer ({} {port}) was not ready within {READY_TIMEOUT:?}; its output:\n{}",
                script.display(),
                output_text(&output),
            )))
        }
    }
}

/// Read `pipe` line by line into `output` on a thread of its own (so it outlives the runtime
/// that started the issuer), sending the issuer URL of the first `ready <issuer>` line to
/// `ready`. Dropping `ready` unsent tells the starter that stdout closed first.
fn drain(
    pipe: std::fs::File,
    output: Output,
    mut ready: Option<oneshot::Sender<String>>,
) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("oidc-issuer-output".into())
        .spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("ready ")
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(url.trim().to_owned());
                }
                let mut lines = output.lock().unwrap_or_else(PoisonError::into_inner);
                if lines.len() == OUTPUT_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        })
        .context("spawning a thread to read the issuer's output")
}

fn output_text(output: &Output) -> String {
    let lines = output.lock().unwrap_or_else(PoisonError::into_inner);
    lines.iter().fold(String::new(), |mut text, line| {
        let _ = writeln!(text, "  {line}");
        text
    })
}

/// The exit status of `child`, if it exits within `limit`.
async fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    tokio::time::timeout(limit, child.wait()).await.ok().and_then(Result::ok)
}

/// Wait (at most `limit`) for a draining thread to reach the end of its pipe.
async fn wait_thread(thread: &JoinHandle<()>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stop `child`: SIGTERM and wait at most `grace` for it to exit, else SIGKILL. Blocking, so
/// it also works in `Drop` and without a runtime.
fn stop(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Some(pid) = child.id() {
        let terminated = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if terminated && wait_blocking(child, grace) {
            return;
        }
    }
    let _ = child.start_kill();
    wait_blocking(child, Duration::from_secs(2));
}

/// Poll `child` until it has exited (true) or `limit` has passed (false).
fn wait_blocking(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Send `request`; its JSON body if the status is 200, else an error with the status and body.
async fn json_ok(request: RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request.send().await.with_context(|| format!("{what} to the test issuer"))?;
    let status = response.status();
    let body = response.text().await.with_context(|| format!("reading the answer to {what}"))?;
    if status != StatusCode::OK {
        bail!("{what}: {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: the answer is not JSON: {body}"))
}

fn string_field(answer: &Value, field: &str) -> anyhow::Result<String> {
    answer
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("the answer has no string {field:?}: {answer}"))
}
