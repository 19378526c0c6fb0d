//! The `qudag-mcp` binary as operators use it: exit codes, messages, signals.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use base64::Engine as _;

use std::time::{Duration, Instant};

#[cfg(feature = "postgres")]
use qudag_test_support::postgres::{FreshDatabase, psql};
use qudag_test_support::process::Server;
use qudag_test_support::qudag_mcp_command;
use qudag_test_support::temp::temp_dir;

#[test]
fn version_prints_the_crate_version() {
    let out = qudag_mcp_command!().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("qudag-mcp {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_config_accepts_the_defaults() {
    let out = qudag_mcp_command!().arg("check-config").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("port = 3000"), "{stdout}");
}

#[test]
fn authentication_on_without_an_issuer_is_refused_naming_the_variable() {
    let out = qudag_mcp_command!().arg("check-config").env_remove("QUDAG_OAUTH2_ISSUER_URL").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("QUDAG_OAUTH2_ISSUER_URL") && stderr.contains("--dev"), "{stderr}");
}

#[test]
fn check_config_exits_2_naming_the_bad_variable() {
    for (var, value) in
        [("QUDAG_PORT", "abc"), ("QUDAG_LOG_FORMAT", "yaml"), ("QUDAG_HOST", "nowhere"), ("QUDAG_LOG_LEVEL", "chatty")]
    {
        let out = qudag_mcp_command!().arg("check-config").env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var) && stderr.contains(value), "{var}={value}: {stderr}");
    }
}

#[test]
fn serve_refuses_bad_configuration_before_binding() {
    let out = qudag_mcp_command!().arg("serve").env("QUDAG_PORT", "99999").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QUDAG_PORT"));
}

#[test]
fn opentelemetry_variables_the_server_cannot_honour_are_refused_by_name() {
    let out = qudag_mcp_command!()
        .arg("check-config")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\""));
    let out = qudag_mcp_command!().arg("serve").env("OTEL_TRACES_EXPORTER", "jaeger").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "serve refuses before binding");
    assert!(String::from_utf8_lossy(&out.stderr).contains("OTEL_TRACES_EXPORTER=\"jaeger\""));
}

#[test]
fn flags_override_the_environment_and_are_named_in_errors() {
    let out = qudag_mcp_command!().args(["check-config", "--port", "4321"]).env("QUDAG_PORT", "1234").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("port = 4321"));
    let out = qudag_mcp_command!().args(["check-config", "--port", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));
}

#[test]
fn a_config_file_is_read_and_its_errors_are_named() {
    let dir = temp_dir("cli");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[server]\nport = 4444\n").unwrap();
    let out = qudag_mcp_command!().args(["check-config", "--config"]).arg(&good).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("port = 4444"));

    let out =
        qudag_mcp_command!().arg("check-config").env("QUDAG_CONFIG", &good).env("QUDAG_PORT", "5555").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("port = 5555"), "env overrides the file");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nport = 4444\ncolour = \"blue\"\n").unwrap();
    let out = qudag_mcp_command!().args(["check-config", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml") && stderr.contains("colour"), "{stderr}");
}

#[test]
fn the_committed_openapi_document_matches_the_binary() {
    let out = qudag_mcp_command!().arg("openapi").output().unwrap();
    assert!(out.status.success());
    let committed = include_str!("../../docs/openapi.json");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "docs/openapi.json is stale: regenerate it with `cargo run -p qudag-mcp -- openapi --output docs/openapi.json`"
    );
}

#[tokio::test]
async fn serve_answers_health_and_exits_0_on_sigterm() {
    let mut server = Server::start(qudag_mcp_command!().arg("serve"));
    let port = server.port();
    qudag_mcp::install_crypto_provider();
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/health/live")).await.unwrap();
    assert_eq!(resp.status(), 200);

    let status = server.terminate(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    std::io::Read::read_to_string(server.log(), &mut rest).unwrap();
    assert!(rest.contains("SIGTERM"), "the signal is logged: {rest}");
    assert!(rest.contains("\"Stopped\""), "the stop is logged: {rest}");
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = qudag_mcp_command!().arg("serve").env("QUDAG_PORT", &port).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("QUDAG_PORT"), "{stderr}");
}

#[test]
fn fixtures_are_refused_off_loopback() {
    let out = qudag_mcp_command!()
        .args(["serve", "--fixtures", "conformance"])
        .env("QUDAG_HOST", "0.0.0.0")
        .env("QUDAG_PORT", "0")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback") || stderr.contains("conformance"), "{stderr}");
}

#[cfg(feature = "conformance")]
#[tokio::test]
async fn dev_mode_serves_with_tokens_from_dev_token() {
    qudag_mcp::install_crypto_provider();
    let dir = temp_dir("cli");
    let key = dir.path().join("dev.key");
    let server = Server::start(
        qudag_mcp_command!()
            .args(["serve", "--dev", "--fixtures", "authz"])
            .env("QUDAG_DEV_KEY_PATH", &key)
            .env_remove("QUDAG_OAUTH2_ISSUER_URL"),
    );
    let port = server.port();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the key is private");
    }
    let mint = |role: &str| {
        let out =
            qudag_mcp_command!().args(["dev-token", "--role", role]).env("QUDAG_DEV_KEY_PATH", &key).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let call = |token: Option<String>, tool: &str| {
        let mut req = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": tool, "arguments": {}, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                    "io.modelcontextprotocol/clientCapabilities": {}
                }}
            }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let resp = call(None, "probe_quantum_execute").await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    let resp = call(Some(mint("developer")), "probe_quantum_execute").await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let resp = call(Some(mint("readonly")), "probe_quantum_execute").await.unwrap();
    assert_eq!(resp.status(), 403);

    let out =
        qudag_mcp_command!().args(["dev-token", "--role", "wizard"]).env("QUDAG_DEV_KEY_PATH", &key).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wizard"));
}

/// A developer key planted where `dev-token` and `serve --dev` look for it — readable by
/// others, or in a directory others may write — is refused with an error naming it, never
/// used to mint or trust a token.
#[cfg(unix)]
#[test]
fn a_planted_developer_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = temp_dir("cli-planted-key");
    let state = tmp.path().join("state");
    let dir = state.join("qudag-mcp");
    let key = dir.join("dev.key");
    let mint = || {
        qudag_mcp_command!()
            .args(["dev-token", "--role", "admin"])
            .env_remove("QUDAG_DEV_KEY_PATH")
            .env("XDG_STATE_HOME", &state)
            .output()
            .unwrap()
    };
    // The first use makes the key, private, in a private directory.
    assert!(mint().status.success());
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    // A key others may read.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = mint();
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "no token is printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&key.display().to_string()) && stderr.contains("644"), "{stderr}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A directory anyone may write to, where the key could have been planted or replaced.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = mint();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&dir.display().to_string()) && stderr.contains("1777"), "{stderr}");
    let mut serve = qudag_mcp_command!()
        .args(["serve", "--dev"])
        .env_remove("QUDAG_DEV_KEY_PATH")
        .env_remove("QUDAG_OAUTH2_ISSUER_URL")
        .env("XDG_STATE_HOME", &state)
        .env("QUDAG_PORT", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            serve.kill().unwrap();
            panic!("serve --dev started on a key in a directory anyone may write to");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = serve.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "serve --dev does not start on such a key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("QUDAG_DEV_KEY_PATH") && stderr.contains(&dir.display().to_string()), "{stderr}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A key another user owns (only root can give a file away).
    if running_as_root() {
        std::os::unix::fs::chown(&key, Some(65534), None).unwrap();
        let out = mint();
        assert_ne!(out.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&key.display().to_string()) && stderr.contains("owned by user 65534"), "{stderr}");
    }
}

/// Whether this process runs as root: the owner of a file it has just made.
#[cfg(unix)]
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let tmp = temp_dir("cli-whoami");
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    std::fs::metadata(&probe).unwrap().uid() == 0
}

/// The file audit sink end to end: a served tool call and the start and stop land in the
/// file with an intact chain (`audit verify` exits 0); an edited copy exits 1 naming the
/// line; a path that does not exist exits 2.
#[tokio::test]
async fn the_file_audit_trail_verifies_and_an_edit_is_caught() {
    let tmp = temp_dir("cli-audit");
    let dir = tmp.path();
    let file = dir.join("audit.jsonl");
    let mut server = Server::start(
        qudag_mcp_command!()
            .arg("serve")
            .env("QUDAG_REQUIRE_AUTH", "false")
            .env("QUDAG_AUDIT_SINK", "file")
            .env("QUDAG_AUDIT_FILE", &file)
            .env("QUDAG_AUDIT_FSYNC", "always")
            .env("QUDAG_KEY_FILE", dir.join("keys.json")),
    );
    let port = server.port();
    qudag_mcp::install_crypto_provider();
    assert_eq!(call_tool(&reqwest::Client::new(), port, 1).await, 200);
    let health: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/health")).await.unwrap().json().await.unwrap();
    assert_eq!(health["components"]["audit_queue"]["status"], "up", "{health}");
    assert_eq!(health["components"]["audit"]["status"], "up", "{health}");
    // The published verification key, as an auditor would fetch it.
    let read = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {
        "uri": "qudag://keys/signing",
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "resources/read")
        .header("mcp-name", "qudag://keys/signing")
        .json(&read)
        .send()
        .await
        .unwrap();
    let (status, body) = (resp.status(), resp.text().await.unwrap());
    assert_eq!(status, 200, "{body}");
    let key: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let key: serde_json::Value = serde_json::from_str(key["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    let public_key = key["public_key"].as_str().unwrap().to_owned();
    server.terminate(Duration::from_secs(10)).await;

    let text = std::fs::read_to_string(&file).unwrap();
    let actions: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions.first().map(String::as_str), Some("server.started"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "tool.called"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "server.stopped"), "{actions:?}");
    assert_eq!(
        actions.last().map(String::as_str),
        Some("audit.checkpoint"),
        "a checkpoint closes the run: {actions:?}"
    );
    let ok = qudag_mcp_command!().args(["audit", "verify", "--public-key", &public_key]).arg(dir).output().unwrap();
    let report = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{report}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(report.contains("1 signed checkpoint(s) verified"), "{report}");
    let other_key = base64::engine::general_purpose::STANDARD.encode([7u8; 1952]);
    let forged = qudag_mcp_command!().args(["audit", "verify", "--public-key", &other_key]).arg(dir).output().unwrap();
    assert_eq!(forged.status.code(), Some(1), "{}", String::from_utf8_lossy(&forged.stdout));

    let tampered_dir = dir.join("tampered");
    std::fs::create_dir_all(&tampered_dir).unwrap();
    let tampered = text.replacen("analyze_complexity", "optimize_circuit_", 1);
    assert_ne!(tampered, text);
    std::fs::write(tampered_dir.join("audit.jsonl"), tampered).unwrap();
    let bad = qudag_mcp_command!().args(["audit", "verify"]).arg(tampered_dir.join("audit.jsonl")).output().unwrap();
    let report = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{report}");
    assert!(report.contains("line"), "the report names the line: {report}");

    let missing = qudag_mcp_command!().args(["audit", "verify"]).arg(dir.join("nope.jsonl")).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

/// A stateless `tools/call` of a cheap tool (`analyze_complexity` of one gate) with JSON-RPC
/// id `id`, ready to send to the server on `port`.
fn tool_call(client: &reqwest::Client, port: u16, id: u64) -> reqwest::RequestBuilder {
    let call = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "analyze_complexity", "arguments": {"circuit": {"qubits": 1, "gates": [{"type": "H", "target": 0}]}},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
    client
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "analyze_complexity")
        .json(&call)
}

/// [`tool_call`] sent; its HTTP status.
async fn call_tool(client: &reqwest::Client, port: u16, id: u64) -> u16 {
    tool_call(client, port, id).send().await.unwrap().status().as_u16()
}

/// Wait until `done()` holds, or fail naming `what`.
#[cfg(feature = "postgres")]
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The PostgreSQL audit sink end to end, with PostgreSQL cut off mid-run through a TCP
/// proxy: requests keep being served while events are spooled; the process is killed
/// (SIGKILL) with events still spooled, restarted while the database is still unreachable,
/// and when it returns every event of both runs is in the table — counted, none lost — with
/// an intact chain (`audit verify --database` exits 0); an edited row makes it exit 1.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_audit_trail_survives_an_outage_and_a_kill() {
    use qudag_application::testkit::proxy::TcpProxy;

    let database = FreshDatabase::create("cli_audit");
    let direct = database.url();
    let upstream = reqwest::Url::parse(direct).unwrap();
    let proxy = TcpProxy::start(&format!("{}:{}", upstream.host_str().unwrap(), upstream.port().unwrap_or(5432))).await;
    let proxied = format!("postgres://{}@{}{}", upstream.username(), proxy.addr(), upstream.path());
    let tmp = temp_dir("cli-pg-audit");
    let dir = tmp.path();
    let spool = dir.join("spool.jsonl");
    let serve = || {
        let mut cmd = qudag_mcp_command!();
        cmd.arg("serve")
            .env("QUDAG_REQUIRE_AUTH", "false")
            .env("QUDAG_AUDIT_SINK", "postgres")
            .env("QUDAG_DATABASE_URL", &proxied)
            .env("QUDAG_AUDIT_SPOOL", &spool)
            .env("QUDAG_NODE_ID", "e2e-node")
            .env("QUDAG_KEY_FILE", dir.join("keys.json"));
        cmd
    };
    let spooled = || std::fs::read_to_string(&spool).map(|t| t.lines().count()).unwrap_or(0);
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Run 1: 10 calls with the database there, 20 with it cut off; killed with them spooled.
    let mut first = Server::start(&mut serve());
    let port = first.port();
    for id in 0..10 {
        assert_eq!(call_tool(&client, port, id).await, 200);
    }
    proxy.cut();
    for id in 10..30 {
        assert_eq!(call_tool(&client, port, id).await, 200, "served while PostgreSQL is unreachable");
    }
    // Every event of the 30 answered calls is durable (in the table, or in the synced spool)
    // the moment the answers are in: durable acknowledgement. Counted by chain position, as
    // a batch whose commit was cut off may be both in the table and spooled (the replay
    // skips what the table already holds).
    let durable_calls = || {
        let mut seqs: std::collections::BTreeSet<u64> =
            psql(direct, "SELECT seq FROM audit_events WHERE action = 'tool.called'")
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
        let spooled = std::fs::read_to_string(&spool).unwrap_or_default();
        // A line being written may be incomplete: it is counted on the next look.
        for event in spooled.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
            if event["action"] == "tool.called" {
                seqs.insert(event["seq"].as_u64().unwrap());
            }
        }
        seqs.len()
    };
    assert_eq!(durable_calls(), 30, "answered means durable: committed or in the synced spool");
    assert!(spooled() >= 20, "the calls made during the cut are spooled");
    let health: serde_json::Value =
        client.get(format!("http://127.0.0.1:{port}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["components"]["audit"]["status"], "degraded", "{health}");
    first.kill();

    // Run 2 starts while the database is still unreachable, continuing the chain from the spool.
    let mut second = Server::start(&mut serve());
    let port = second.port();
    for id in 30..35 {
        assert_eq!(call_tool(&client, port, id).await, 200);
    }
    proxy.restore();
    wait_until("the spool is replayed", || spooled() == 0).await;
    for id in 35..40 {
        assert_eq!(call_tool(&client, port, id).await, 200);
    }
    let status = second.terminate(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0));

    let count = |action: &str| psql(direct, &format!("SELECT count(*) FROM audit_events WHERE action = '{action}'"));
    assert_eq!(count("tool.called"), "40", "every call of both runs is recorded");
    assert_eq!(count("server.started"), "2");
    assert_eq!(count("server.stopped"), "1", "the killed run recorded no stop");
    let seqs = psql(direct, "SELECT count(*), min(seq), max(seq), count(DISTINCT node) FROM audit_events");
    let fields: Vec<u64> = seqs.split('|').map(|f| f.parse().unwrap()).collect();
    assert_eq!((fields[1], fields[2] + 1, fields[3]), (0, fields[0], 1), "one gapless chain: {seqs}");

    let verify = |url: &str| {
        let out = qudag_mcp_command!().args(["audit", "verify", "--database", url]).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, report) = verify(direct);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("e2e-node"), "{report}");
    psql(direct, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 12");
    let (code, report) = verify(direct);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("seq 12"), "the report names the row: {report}");
    let (code, _) = verify(&format!("postgres://{}@127.0.0.1:9/none", upstream.username()));
    assert_eq!(code, Some(2), "an unreachable database is exit 2");
}

/// `serve` with authentication and the rate limit off, audit records in the file `file` and
/// the server's keys in `keys`.
fn serve_with_file_audit(file: &std::path::Path, keys: &std::path::Path) -> std::process::Command {
    let mut cmd = qudag_mcp_command!();
    cmd.arg("serve")
        .env("QUDAG_REQUIRE_AUTH", "false")
        .env("QUDAG_RATE_LIMIT", "0")
        .env("QUDAG_AUDIT_SINK", "file")
        .env("QUDAG_AUDIT_FILE", file)
        .env("QUDAG_KEY_FILE", keys);
    cmd
}

/// `serve` with authentication and the rate limit off, audit records in PostgreSQL at `url`
/// (spooled to `spool`) as node `node`, the server's keys in `keys`.
#[cfg(feature = "postgres")]
fn serve_with_postgres_audit(
    url: &str,
    spool: &std::path::Path,
    node: &str,
    keys: &std::path::Path,
) -> std::process::Command {
    let mut cmd = qudag_mcp_command!();
    cmd.arg("serve")
        .env("QUDAG_REQUIRE_AUTH", "false")
        .env("QUDAG_RATE_LIMIT", "0")
        .env("QUDAG_AUDIT_SINK", "postgres")
        .env("QUDAG_DATABASE_URL", url)
        .env("QUDAG_AUDIT_SPOOL", spool)
        .env("QUDAG_NODE_ID", node)
        .env("QUDAG_KEY_FILE", keys);
    cmd
}

/// 20 clients calling a tool as fast as they can on the server `serve` starts, until it is
/// killed (SIGKILL, no chance to flush) after 10 s: the request ids of the calls a client saw
/// answered 200 with a result.
async fn answered_until_killed(mut serve: std::process::Command) -> Vec<String> {
    let mut server = Server::start(&mut serve).drain_log();
    let port = server.port();
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..20)
        .map(|caller| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("kill-{caller}-{n}");
                    let sent = tool_call(&client, port, n).header("x-request-id", &id).send().await;
                    let Ok(resp) = sent else { break };
                    let ok = resp.status() == 200;
                    match resp.text().await {
                        Ok(body) if ok && body.contains("\"result\"") => answered.push(id),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = Vec::new();
    for caller in callers {
        answered.extend(caller.await.unwrap());
    }
    assert!(answered.len() >= 100, "the load reached the server: {} calls answered", answered.len());
    answered
}

/// Every id of `answered` is in `recorded`; prints the counts.
fn none_lost(answered: &[String], recorded: &std::collections::HashSet<String>) {
    let lost: Vec<&String> = answered.iter().filter(|id| !recorded.contains(*id)).collect();
    eprintln!("answered {}, recorded {}, lost {}", answered.len(), recorded.len(), lost.len());
    assert!(
        lost.is_empty(),
        "{} of {} answered calls have no record ({} recorded): {:?}",
        lost.len(),
        answered.len(),
        recorded.len(),
        &lost[..lost.len().min(5)]
    );
}

/// The request ids of the `tool.called` events in audit JSON lines (a torn last line is
/// skipped: it was never acknowledged).
fn called_request_ids(jsonl: &str) -> std::collections::HashSet<String> {
    jsonl
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["action"] == "tool.called")
        .filter_map(|event| event["request_id"].as_str().map(str::to_owned))
        .collect()
}

/// Durable acknowledgement under a kill, file sink: every call a client saw answered 200
/// has its `tool.called` record in the file (matched by request id), and after a restart
/// repairs the torn end the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_call_is_in_the_file_trail_after_a_kill() {
    let tmp = temp_dir("cli-kill-audit");
    let dir = tmp.path().to_path_buf();
    let file = dir.join("audit.jsonl");
    let serve = || serve_with_file_audit(&file, &dir.join("keys.json"));
    let answered = answered_until_killed(serve()).await;
    none_lost(&answered, &called_request_ids(&std::fs::read_to_string(&file).unwrap()));

    // A restart repairs a torn end and continues the chain; it verifies.
    let mut restarted = Server::start(&mut serve()).drain_log();
    let status = restarted.terminate(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0));
    let verify = qudag_mcp_command!().args(["audit", "verify"]).arg(&dir).output().unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// The same with the PostgreSQL sink: every answered call's record is committed (or in
/// the synced spool) when the node is killed, and the node's chain verifies.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_call_is_in_the_postgres_trail_after_a_kill() {
    let database = FreshDatabase::create("cli_kill");
    let url = database.url();
    let tmp = temp_dir("cli-kill-pg");
    let dir = tmp.path();
    let spool = dir.join("spool.jsonl");
    let serve = serve_with_postgres_audit(url, &spool, "killed-node", &dir.join("keys.json"));
    let answered = answered_until_killed(serve).await;
    let mut recorded: std::collections::HashSet<String> =
        psql(url, "SELECT record::jsonb->>'request_id' FROM audit_events WHERE action = 'tool.called'")
            .lines()
            .map(str::to_owned)
            .collect();
    recorded.extend(called_request_ids(&std::fs::read_to_string(&spool).unwrap_or_default()));
    none_lost(&answered, &recorded);
    let verify = qudag_mcp_command!().args(["audit", "verify", "--database", url]).output().unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && report.contains("killed-node: audit chain intact"), "{report}");
}

/// Records cut off the end of a file trail: the shortened chain still verifies on its own,
/// but not against the head a witness kept — the checkpoint the server logged at shutdown
/// (`expect_head` of "Audit checkpoint signed"): `verify --expect-head` exits 1 saying the
/// trail ends before it; a head with another hash is reported as differing; a malformed one
/// is a usage error (exit 2).
#[tokio::test]
async fn records_cut_off_the_end_are_reported_against_the_logged_head() {
    use std::io::BufRead as _;

    let tmp = temp_dir("cli-expect-head");
    let dir = tmp.path();
    let file = dir.join("audit.jsonl");
    let mut server =
        Server::start(serve_with_file_audit(&file, &dir.join("keys.json")).env("QUDAG_AUDIT_CHECKPOINT_SECS", "1"));
    let port = server.port();
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();
    for id in 0..5 {
        assert_eq!(call_tool(&client, port, id).await, 200);
    }
    // The head is also published to auditors: GET /admin/audit/head, once a checkpoint is signed.
    let heads = |client: reqwest::Client| async move {
        let resp = client.get(format!("http://127.0.0.1:{port}/admin/audit/head")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<serde_json::Value>().await.unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let published = loop {
        let body = heads(client.clone()).await;
        if let Some(head) = body["checkpoints"][0]["expect_head"].as_str() {
            assert_eq!(body["checkpoints"].as_array().unwrap().len(), 1, "one node: {body}");
            assert!(body["checkpoints"][0]["signature"].as_str().is_some_and(|s| s.len() > 1000), "{body}");
            break head.to_owned();
        }
        assert!(Instant::now() < deadline, "no checkpoint published: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(server.terminate(Duration::from_secs(15)).await.code(), Some(0));
    let mut head = None;
    for line in server.log().lines().map_while(Result::ok) {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if entry["message"] == "Audit checkpoint signed" {
            head = entry["expect_head"].as_str().map(str::to_owned);
        }
    }
    let head = head.expect("the shutdown checkpoint is logged with its head");
    let verify = |extra: &[&str]| {
        let out = qudag_mcp_command!().args(["audit", "verify"]).args(extra).arg(dir).output().unwrap();
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (code, report) = verify(&["--expect-head", &head]);
    assert_eq!(code, Some(0), "the whole trail reaches its logged head: {report}");
    assert!(report.contains("Expected head seq"), "{report}");
    let (code, report) = verify(&["--expect-head", &published]);
    assert_eq!(code, Some(0), "and the head it published while running: {report}");

    // Cut the last three records off the end.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&file, lines[..lines.len() - 3].join("\n") + "\n").unwrap();
    let (code, report) = verify(&[]);
    assert_eq!(code, Some(0), "on its own a shortened chain cannot be told from one that ended there: {report}");
    let (code, report) = verify(&["--expect-head", &head]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("EXPECTED HEAD MISSING"), "{report}");

    let (seq, _) = head.split_once(':').unwrap();
    let other = format!("{}:{}", seq.parse::<u64>().unwrap() - 5, "ab".repeat(32));
    let (code, report) = verify(&["--expect-head", &other]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("EXPECTED HEAD DIFFERS"), "{report}");
    let (code, report) = verify(&["--expect-head", "seven:beef"]);
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains("seven"), "the bad value is named: {report}");
}

/// The same for the PostgreSQL trail: rows deleted off the end of a node's chain leave a
/// chain that verifies, but not against the head that node logged; `--expect-head` with
/// `--database` names the node, and without `--node` it is a usage error.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_cut_off_a_node_chain_are_reported_against_the_logged_head() {
    use std::io::BufRead as _;

    let database = FreshDatabase::create("cli_expect_head");
    let url = database.url();
    let tmp = temp_dir("cli-pg-expect-head");
    let dir = tmp.path();
    let mut server = Server::start(&mut serve_with_postgres_audit(
        url,
        &dir.join("spool.jsonl"),
        "head-node",
        &dir.join("keys.json"),
    ));
    let port = server.port();
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();
    for id in 0..5 {
        assert_eq!(call_tool(&client, port, id).await, 200);
    }
    assert_eq!(server.terminate(Duration::from_secs(15)).await.code(), Some(0));
    let mut logged = None;
    for line in server.log().lines().map_while(Result::ok) {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if entry["message"] == "Audit checkpoint signed" {
            logged =
                Some((entry["node"].as_str().map(str::to_owned), entry["expect_head"].as_str().map(str::to_owned)));
        }
    }
    let (node, head) = logged.expect("the shutdown checkpoint is logged");
    assert_eq!(node.as_deref(), Some("head-node"));
    let head = head.unwrap();
    let verify = |extra: &[&str]| {
        let out = qudag_mcp_command!().args(["audit", "verify", "--database", url]).args(extra).output().unwrap();
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (code, report) = verify(&["--expect-head", &head, "--node", "head-node"]);
    assert_eq!(code, Some(0), "{report}");
    psql(url, "DELETE FROM audit_events WHERE seq > (SELECT max(seq) - 3 FROM audit_events)");
    let (code, report) = verify(&[]);
    assert_eq!(code, Some(0), "a shortened chain verifies on its own: {report}");
    let (code, report) = verify(&["--expect-head", &head, "--node", "head-node"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("node head-node") && report.contains("EXPECTED HEAD MISSING"), "{report}");
    let (code, report) = verify(&["--expect-head", &head]);
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains("--node"), "{report}");
}

/// A filesystem mounted for one test, unmounted when dropped.
#[cfg(target_os = "linux")]
struct Mounted(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk under the file sink (a 256 KiB tmpfs, filled up by the calls themselves):
/// from the first record that does not fit, calls are refused with 503 and `Retry-After`
/// before they run and readiness reports the audit trail down; once space is freed the
/// queued record is written, calls are served again, and every call answered 200 has its
/// record. Mounting needs root: elsewhere the test says it did not run.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_calls_before_they_run_and_recovers() {
    if !running_as_root() {
        eprintln!("not run: mounting a small filesystem needs root");
        return;
    }
    let tmp = temp_dir("cli-disk-full");
    let volume = tmp.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&volume)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount -t tmpfs failed");
    let _mounted = Mounted(volume.clone());
    // Most of the volume is taken; the audit file gets the rest.
    let filler = volume.join("filler");
    std::fs::write(&filler, vec![0_u8; 160 * 1024]).unwrap();
    let file = volume.join("audit.jsonl");
    let mut server = Server::start(
        serve_with_file_audit(&file, &tmp.path().join("keys.json")).env("QUDAG_AUDIT_CHECKPOINT_SECS", "0"),
    )
    .drain_log();
    let port = server.port();
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let call = |n: u64| {
        let client = client.clone();
        async move {
            let id = format!("full-{n}");
            let resp = tool_call(&client, port, n).header("x-request-id", &id).send().await;
            match resp {
                Ok(resp) => (id, resp.status().as_u16(), resp.headers().contains_key("retry-after")),
                Err(_) => (id, 0, false),
            }
        }
    };
    let mut answered = Vec::new();
    let mut n = 0;
    // Calls until the disk is full: the call whose record does not fit waits, unanswered.
    let stuck = loop {
        n += 1;
        assert!(n < 20_000, "the volume never filled up");
        let pending = tokio::spawn(call(n));
        tokio::time::sleep(Duration::from_millis(1)).await;
        match tokio::time::timeout(Duration::from_secs(2), pending).await {
            Ok(Ok((id, 200, _))) => answered.push(id),
            Ok(Ok(other)) => panic!("before the disk is full every call is served: {other:?}"),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => break n,
        }
    };
    // From now on calls are refused before they run.
    for m in 0..3 {
        let (_, status, retry_after) = call(stuck + 1 + m).await;
        assert_eq!((status, retry_after), (503, true), "refused with Retry-After while the disk is full");
    }
    let ready = client.get(format!("http://127.0.0.1:{port}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while the audit trail cannot take records");
    // Space comes back: the waiting record is written and calls are served again.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (id, status, _) = call(stuck + 100).await;
        if status == 200 {
            answered.push(id);
            break;
        }
        assert!(Instant::now() < deadline, "calls were not served again after space was freed (last {status})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for m in 0..5 {
        let (id, status, _) = call(stuck + 200 + m).await;
        assert_eq!(status, 200);
        answered.push(id);
    }
    assert_eq!(server.terminate(Duration::from_secs(15)).await.code(), Some(0));
    let recorded = called_request_ids(&std::fs::read_to_string(&file).unwrap());
    none_lost(&answered, &recorded);
    assert!(
        recorded.contains(&format!("full-{stuck}")),
        "the call that met the full disk was recorded once space came back"
    );
    let verify = qudag_mcp_command!().args(["audit", "verify"]).arg(&file).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// The verification key the server publishes (resource `qudag://keys/signing`), as an
/// auditor fetches it.
#[cfg(feature = "postgres")]
async fn published_key(client: &reqwest::Client, port: u16) -> String {
    let read = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {
        "uri": "qudag://keys/signing",
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
    let body: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "resources/read")
        .header("mcp-name", "qudag://keys/signing")
        .json(&read)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: serde_json::Value = serde_json::from_str(body["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    key["public_key"].as_str().unwrap().to_owned()
}

/// The head of the last checkpoint a stopped server logged: (`node`, `expect_head`).
#[cfg(feature = "postgres")]
fn logged_head(server: &mut Server) -> (String, String) {
    use std::io::BufRead as _;
    let mut head = None;
    for line in server.log().lines().map_while(Result::ok) {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if entry["message"] == "Audit checkpoint signed" {
            head =
                Some((entry["node"].as_str().unwrap().to_owned(), entry["expect_head"].as_str().unwrap().to_owned()));
        }
    }
    head.expect("the shutdown checkpoint is logged")
}

/// Run `program` with `args`; panic with its output unless it succeeds.
#[cfg(feature = "postgres")]
fn run_ok(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The restore drill of docs/operations.md ("Backup and restore of audit data"), with the
/// commands it gives: a file trail copied away, destroyed, copied back; a PostgreSQL trail
/// dumped with `pg_dump`, its table dropped, restored with `pg_restore`. Each restored
/// trail verifies with the published key against the head the server logged.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_restore_drill_of_the_operations_guide_works() {
    let tmp = temp_dir("cli-restore");
    let root = tmp.path();
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();

    // File sink.
    let dir = root.join("audit");
    let mut server = Server::start(&mut serve_with_file_audit(&dir.join("audit.jsonl"), &root.join("keys.json")));
    let port = server.port();
    for id in 0..3 {
        assert_eq!(call_tool(&client, port, id).await, 200);
    }
    let key = published_key(&client, port).await;
    assert_eq!(server.terminate(Duration::from_secs(15)).await.code(), Some(0));
    let (_, head) = logged_head(&mut server);
    let (dir_text, backup) = (dir.display().to_string(), root.join("backup").display().to_string());
    run_ok("cp", &["-a", &dir_text, &backup]);
    std::fs::remove_dir_all(&dir).unwrap();
    run_ok("cp", &["-a", &backup, &dir_text]);
    let verify = |args: &[&str]| {
        let out = qudag_mcp_command!().args(["audit", "verify"]).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, report) = verify(&["--public-key", &key, "--expect-head", &head, &dir_text]);
    assert_eq!(code, Some(0), "{report}");

    // PostgreSQL sink.
    let database = FreshDatabase::create("cli_restore");
    let url = database.url();
    let mut server = Server::start(&mut serve_with_postgres_audit(
        url,
        &root.join("spool.jsonl"),
        "restore-node",
        &root.join("keys.json"),
    ));
    let port = server.port();
    for id in 0..3 {
        assert_eq!(call_tool(&client, port, id).await, 200);
    }
    assert_eq!(server.terminate(Duration::from_secs(15)).await.code(), Some(0));
    let (node, head) = logged_head(&mut server);
    let dump = root.join("audit.dump").display().to_string();
    run_ok("pg_dump", &["--format=custom", "--table=audit_events", &format!("--file={dump}"), url]);
    psql(url, "DROP TABLE audit_events");
    run_ok("pg_restore", &[&format!("--dbname={url}"), &dump]);
    let (code, report) = verify(&["--database", url, "--public-key", &key, "--expect-head", &head, "--node", &node]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("node restore-node: audit chain intact"), "{report}");
}

/// One client call's fate in the shutdown test.
#[derive(Debug)]
struct Call {
    id: String,
    sent: Instant,
    answered: Instant,
    /// The status, or the transport error.
    outcome: Result<u16, String>,
}

/// Graceful shutdown under load: SIGTERM while six clients keep calling a tool that takes a
/// while. Every call the server accepted (its request id is in the audit trail) was answered
/// 200 with a result; calls in flight at the signal finished; the process exits 0 within the
/// grace period; the audit trail records the stop after every call and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_every_accepted_request() {
    let tmp = temp_dir("cli-sigterm");
    let dir = tmp.path();
    let file = dir.join("audit.jsonl");
    let mut server = Server::start(
        qudag_mcp_command!()
            .arg("serve")
            .env("QUDAG_REQUIRE_AUTH", "false")
            .env("QUDAG_RATE_LIMIT", "0")
            .env("QUDAG_AUDIT_SINK", "file")
            .env("QUDAG_AUDIT_FILE", &file)
            .env("QUDAG_KEY_FILE", dir.join("keys.json")),
    );
    let port = server.port();
    qudag_mcp::install_crypto_provider();
    let gates: Vec<serde_json::Value> =
        (0..48).map(|i| serde_json::json!({"type": if i % 2 == 0 { "H" } else { "X" }, "target": i % 16})).collect();
    let call = move |id: &str| {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "execute_quantum_dag",
            "arguments": {"circuit": {"qubits": 16, "gates": gates.clone()}, "execution": {"shots": 1, "seed": 1}},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}})
    };
    let signalled = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut workers = Vec::new();
    for w in 0..6 {
        let (call, signalled) = (call.clone(), signalled.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
            let mut calls = Vec::new();
            for i in 0.. {
                let id = format!("w{w}-{i}");
                let sent = Instant::now();
                let outcome = client
                    .post(format!("http://127.0.0.1:{port}/mcp"))
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "execute_quantum_dag")
                    .header("x-request-id", &id)
                    .json(&call(&id))
                    .send()
                    .await;
                let outcome = match outcome {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        match resp.text().await {
                            Ok(body) if status != 200 || body.contains("\"probabilities\"") => Ok(status),
                            Ok(body) => Err(format!("200 without a result: {body}")),
                            Err(e) => Err(format!("body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{e:?}")),
                };
                let failed = outcome.is_err();
                calls.push(Call { id, sent, answered: Instant::now(), outcome });
                if failed && signalled.get().is_some() {
                    break;
                }
                if failed {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            calls
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signalled.set(Instant::now()).unwrap();
    let status = server.terminate(Duration::from_secs(12)).await;
    assert_eq!(status.code(), Some(0), "exit 0 within the grace period");
    let mut calls = Vec::new();
    for w in workers {
        calls.extend(w.await.unwrap());
    }
    let signal = *signalled.get().unwrap();

    let events: Vec<serde_json::Value> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let audited: std::collections::HashSet<&str> =
        events.iter().filter(|e| e["action"] == "tool.called").map(|e| e["request_id"].as_str().unwrap()).collect();
    let answered: Vec<&Call> = calls.iter().filter(|c| c.outcome == Ok(200)).collect();
    for call in &calls {
        if audited.contains(call.id.as_str()) {
            assert_eq!(call.outcome, Ok(200), "{} was accepted, so it must succeed: {call:?}", call.id);
        }
        if let Err(e) = &call.outcome {
            assert!(call.sent + Duration::from_millis(50) >= signal, "a call failed before the signal: {call:?}");
            assert!(!e.contains("without a result"), "{e}");
        }
    }
    assert!(answered.iter().all(|c| audited.contains(c.id.as_str())), "every answered call is in the audit trail");
    assert!(answered.len() >= 6, "load ran: {} calls answered", answered.len());
    let in_flight = answered.iter().filter(|c| c.sent < signal && c.answered > signal).count();
    assert!(in_flight >= 1, "some calls were in flight at the signal and finished");
    let stop = events.iter().position(|e| e["action"] == "server.stopped").expect("the stop is audited");
    let last_call = events.iter().rposition(|e| e["action"] == "tool.called").unwrap();
    assert!(stop > last_call, "the stop is recorded after every call");
    let verified = qudag_mcp_command!().args(["audit", "verify"]).arg(dir).output().unwrap();
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stdout));
    eprintln!(
        "sigterm under load: {} calls answered ({in_flight} in flight at the signal), {} refused after it",
        answered.len(),
        calls.len() - answered.len()
    );
}
