//! A stranger's first hour with the binary: the README's quick start (a `serve --dev` server,
//! a token from `dev-token` run as another process, a session and a tool call), what a
//! bare `serve` says when it has no issuer, and the burst that follows the rate limit.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::process::Stdio;

use serde_json::{Value, json};

use qudag_test_support::process::Server;
use qudag_test_support::qudag_mcp_command;
use qudag_test_support::temp::temp_dir;

const VERSION: &str = "2025-11-25";

/// POST `body` to `/mcp` with the headers every MCP client sends, and `extra` ones.
async fn mcp(port: u16, token: &str, extra: &[(&str, &str)], body: Value) -> reqwest::Response {
    qudag_mcp::install_crypto_provider();
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_quick_start_serves_a_tool_call_with_a_token_minted_by_another_process() {
    // As the README runs them: `serve --dev` and `dev-token` as two processes of one user,
    // sharing the developer key through its default place in the user's state directory
    // (here a fresh home), with no QUDAG_* variable set. The token is minted while the
    // server starts, so the two may create the key at the same moment.
    let tmp = temp_dir("quick-start");
    let (home, shared_tmp) = (tmp.path().join("home"), tmp.path().join("tmp"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&shared_tmp).unwrap();
    let mut serve = qudag_mcp_command!();
    serve.args(["serve", "--dev"]).env_remove("QUDAG_OAUTH2_ISSUER_URL").env_remove("QUDAG_OAUTH2_AUDIENCE");
    serve.env("HOME", &home).env_remove("XDG_STATE_HOME").env_remove("QUDAG_DEV_KEY_PATH").env("TMPDIR", &shared_tmp);
    let mut dev_token = qudag_mcp_command!();
    dev_token
        .args(["dev-token", "--role", "developer"])
        .env_remove("QUDAG_OAUTH2_ISSUER_URL")
        .env_remove("QUDAG_OAUTH2_AUDIENCE")
        .env("HOME", &home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("QUDAG_DEV_KEY_PATH")
        .env("TMPDIR", &shared_tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let minting = dev_token.spawn().unwrap();
    let server = Server::start(&mut serve).drain_log();
    let minted = minting.wait_with_output().unwrap();
    assert!(minted.status.success(), "{}", String::from_utf8_lossy(&minted.stderr));
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "one JWT on stdout: {token:?}");
    let state = home.join(".local/state/qudag-mcp");
    assert!(state.join("dev.key").exists(), "the key is in the user's state directory");
    assert!(!shared_tmp.join("qudag-mcp-dev.key").exists(), "not in the shared temporary directory");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700, "a private directory");
    }

    let port = server.port();
    let init = mcp(
        port,
        &token,
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}}),
    )
    .await;
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", VERSION)];
    let initialized =
        mcp(port, &token, &in_session, json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    assert_eq!(initialized.status(), 202);
    let call = mcp(
        port,
        &token,
        &in_session,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "system_health_check", "arguments": {}}}),
    )
    .await;
    assert_eq!(call.status(), 200);
    let answer: Value = call.json().await.unwrap();
    assert_eq!(answer["id"], 2, "{answer}");
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    assert!(answer["result"]["content"][0]["text"].is_string(), "{answer}");
}

#[test]
fn serve_without_an_issuer_names_the_variable_and_developer_mode() {
    let out = qudag_mcp_command!()
        .arg("serve")
        .env_remove("QUDAG_OAUTH2_ISSUER_URL")
        .env_remove("QUDAG_OAUTH2_AUDIENCE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid QUDAG_OAUTH2_ISSUER_URL=\"\""), "{stderr}");
    assert!(stderr.contains("serve --dev"), "a hint toward developer mode: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The `RateLimit-Policy` a caller of a server started with `env` is told.
async fn policy_with(env: &[(&str, &str)]) -> String {
    let mut cmd = qudag_mcp_command!();
    cmd.arg("serve").env("QUDAG_REQUIRE_AUTH", "false");
    for (name, value) in env {
        cmd.env(name, value);
    }
    let server = Server::start(&mut cmd).drain_log();
    let response = mcp(
        server.port(),
        "unused",
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.headers()["ratelimit-policy"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_burst_is_at_most_a_minute_of_the_rate_unless_it_is_given() {
    assert_eq!(policy_with(&[]).await, "\"default\";q=100;w=10", "600 per minute: a burst of 100");
    assert_eq!(policy_with(&[("QUDAG_RATE_LIMIT", "30")]).await, "\"default\";q=30;w=60");
    assert_eq!(
        policy_with(&[("QUDAG_RATE_LIMIT", "30"), ("QUDAG_RATE_LIMIT_BURST", "90")]).await,
        "\"default\";q=90;w=180",
        "a burst given is used as it is"
    );
}

#[test]
fn check_config_shows_the_burst_that_follows_the_rate() {
    let out = qudag_mcp_command!().arg("check-config").env("QUDAG_RATE_LIMIT", "30").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("# rate_limit.burst is not set: 30"), "{stdout}");
    let out = qudag_mcp_command!().arg("check-config").env("QUDAG_RATE_LIMIT_BURST", "7").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("burst = 7") && !stdout.contains("is not set"), "{stdout}");
}
