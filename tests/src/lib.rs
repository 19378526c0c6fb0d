//! The end-to-end harness: the real server, built from [`Settings`] exactly as the binary
//! builds it, on a random loopback port, driven over HTTP.
//!
//! Logs are silent unless `TEST_LOG` is set (then they go to stdout, shown for failing
//! tests). What the tests need besides the server (databases, Redis, temporary
//! directories, the OpenID Connect issuer) is in `qudag-test-support`.

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use qudag_mcp::{App, Settings};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The stateless protocol revision.
pub const STATELESS: &str = "2026-07-28";

/// `_meta` of a stateless request declaring `capabilities`.
pub fn stateless_meta(capabilities: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    })
}

/// A running server and a client for it.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// The server's audit trail.
    pub audit: std::sync::Arc<dyn qudag_application::ports::AuditQuery>,
    /// The server's token verifier, when authentication is on.
    pub verifier: Option<std::sync::Arc<qudag_mcp::oauth::OAuthVerifier>>,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

/// Start a server on the defaults (loopback, random port), authentication off.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Start a server with settings adjusted by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(configure, None).await
}

/// Start a server serving the MCP conformance fixture, authentication off, with settings
/// adjusted by `configure`.
#[cfg(feature = "conformance")]
pub async fn spawn_fixture_app(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(
        |s| {
            s.auth.require_auth = false;
            configure(s);
        },
        Some(qudag_mcp::cli::Fixtures::Conformance),
    )
    .await
}

/// Start a server serving `fixtures` with settings adjusted by `configure` (authentication
/// off unless `configure` turns it on).
pub async fn spawn_with_fixtures(
    fixtures: Option<qudag_mcp::cli::Fixtures>,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn(configure, fixtures).await
}

async fn spawn(configure: impl FnOnce(&mut Settings), fixtures: Option<qudag_mcp::cli::Fixtures>) -> TestApp {
    qudag_mcp::install_crypto_provider();
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let mut logging = Settings::default().logging;
            logging.level = "debug".into();
            qudag_mcp::telemetry::init(&logging, tracing_subscriber_test_writer());
        }
    });
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.server.shutdown_grace_secs = 5;
    // Authentication is configured by the tests that exercise it (with a real issuer).
    settings.auth.require_auth = false;
    configure(&mut settings);
    let app = App::build_with(settings, fixtures).await.expect("the app builds");
    let addr = app.local_addr();
    let (audit, verifier) = (app.audit_query(), app.token_verifier());
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    let handle = tokio::spawn(async move { app.run(async move { signal.cancelled().await }).await });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    TestApp { addr, client, audit, verifier, shutdown, handle }
}

fn tracing_subscriber_test_writer() -> impl for<'a> qudag_mcp::telemetry::MakeWriter<'a> + Send + Sync + 'static {
    qudag_mcp::telemetry::stdout()
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl TestApp {
    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A stateless (2026-07-28) `tools/call` of `tool` with `arguments`, headers and
    /// `_meta` as the revision requires; add credentials before sending.
    pub fn tool_call(&self, id: u64, tool: &str, arguments: serde_json::Value) -> reqwest::RequestBuilder {
        self.stateless(id, "tools/call", serde_json::json!({"name": tool, "arguments": arguments}))
    }

    /// A stateless (2026-07-28) request of `method` with `params`, declaring no client
    /// capabilities; add credentials before sending.
    pub fn stateless(&self, id: u64, method: &str, params: serde_json::Value) -> reqwest::RequestBuilder {
        self.stateless_with(id, method, params, serde_json::json!({}))
    }

    /// A stateless (2026-07-28) request of `method` with `params`: its `_meta` (declaring
    /// `capabilities`) and the request-metadata headers added as the revision requires.
    pub fn stateless_with(
        &self,
        id: u64,
        method: &str,
        mut params: serde_json::Value,
        capabilities: serde_json::Value,
    ) -> reqwest::RequestBuilder {
        params["_meta"] = stateless_meta(capabilities);
        let name = params.get("name").or_else(|| params.get("uri")).and_then(|v| v.as_str()).map(str::to_owned);
        let mut request = self
            .client
            .post(self.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", STATELESS)
            .header("mcp-method", method);
        if let Some(name) = name {
            request = request.header("mcp-name", name);
        }
        request.json(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    /// Signal shutdown and wait for the server to finish draining.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle).await??
    }
}
