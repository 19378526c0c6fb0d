//! Several `qudag-mcp` processes sharing one Redis: one rate limit, one set of sessions,
//! one list of live nodes.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Node {
    child: Child,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(redis_url: &str, prefix: &str) -> Node {
    spawn(
        Command::new(env!("CARGO_BIN_EXE_qudag-mcp"))
            .args(["serve", "--fixtures", "conformance"])
            .env("QUDAG_RATE_LIMIT", "60")
            .env("QUDAG_RATE_LIMIT_BURST", "5")
            .env("QUDAG_RATE_LIMIT_STORE", "redis"),
        redis_url,
        prefix,
    )
}

fn spawn(command: &mut Command, redis_url: &str, prefix: &str) -> Node {
    let child = command
        .env("QUDAG_PORT", "0")
        .env("QUDAG_LOG_FORMAT", "json")
        .env("QUDAG_REDIS_URL", redis_url)
        .env("QUDAG_REDIS_KEY_PREFIX", prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = Node { child, port: 0 };
    let mut stdout = BufReader::new(node.child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "node exited before listening");
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if entry["message"] == "Listening" {
            let addr: std::net::SocketAddr = entry["address"].as_str().unwrap().parse().unwrap();
            // Keep draining the log so the node never blocks on a full pipe.
            std::thread::spawn(move || for _ in stdout.lines() {});
            node.port = addr.port();
            return node;
        }
    }
    panic!("node did not log its address in time");
}

#[tokio::test]
async fn two_processes_sharing_redis_enforce_one_limit() {
    let redis_url = std::env::var("QUDAG_TEST_REDIS_URL")
        .unwrap_or_else(|_| panic!("set QUDAG_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)"));
    let prefix = format!("qudag-test:{}:", uuid::Uuid::new_v4());
    let nodes = [start(&redis_url, &prefix), start(&redis_url, &prefix)];
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for id in 0..12u16 {
        let node = &nodes[usize::from(id % 2)];
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let resp = client
            .post(format!("http://127.0.0.1:{}/mcp", node.port))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "echo")
            .body(
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": "x"}, "_meta": meta}})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7, "{statuses:?}");
}

/// A node serving the product with sessions and membership in Redis, authentication off.
fn start_shared(redis_url: &str, prefix: &str, id: &str) -> Node {
    spawn(
        Command::new(env!("CARGO_BIN_EXE_qudag-mcp"))
            .arg("serve")
            .env("QUDAG_REQUIRE_AUTH", "false")
            .env("QUDAG_SESSION_STORE", "redis")
            .env("QUDAG_NODE_ID", id),
        redis_url,
        prefix,
    )
}

async fn post(
    client: &reqwest::Client,
    node: &Node,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> reqwest::Response {
    let mut request = client
        .post(format!("http://127.0.0.1:{}/mcp", node.port))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body.to_string()).send().await.unwrap()
}

/// The node ids `peer_discovery` on `node` lists.
async fn peers(client: &reqwest::Client, node: &Node) -> Vec<String> {
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let resp = post(
        client,
        node,
        &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "peer_discovery")],
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "peer_discovery", "arguments": {}, "_meta": meta}}),
    )
    .await;
    let body: serde_json::Value = resp.json().await.unwrap();
    let nodes = &body["result"]["structuredContent"]["nodes"];
    nodes.as_array().unwrap_or_else(|| panic!("{body}")).iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn three_processes_share_sessions_and_membership() {
    let redis_url = std::env::var("QUDAG_TEST_REDIS_URL")
        .unwrap_or_else(|_| panic!("set QUDAG_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)"));
    let prefix = format!("qudag-test:{}:", uuid::Uuid::new_v4());
    let mut nodes = vec![
        start_shared(&redis_url, &prefix, "n1"),
        start_shared(&redis_url, &prefix, "n2"),
        start_shared(&redis_url, &prefix, "n3"),
    ];
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();

    // A session created on node 1 is used on nodes 2 and 3.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let resp = post(&client, &nodes[0], &[], init).await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(&client, &nodes[1], &in_session, initialized).await.status(), 202);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let resp = post(&client, &nodes[2], &in_session, list.clone()).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()), "{body}");

    // Deleted on node 2, it is gone on node 3 at once.
    let deleted = client
        .delete(format!("http://127.0.0.1:{}/mcp", nodes[1].port))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(post(&client, &nodes[2], &in_session, list).await.status(), 404);

    // Every node sees the three; once one is killed, the other two see two.
    assert_eq!(peers(&client, &nodes[0]).await, ["n1", "n2", "n3"]);
    let killed = nodes.remove(1);
    drop(killed);
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let seen = peers(&client, &nodes[1]).await;
        if seen == ["n1", "n3"] {
            break;
        }
        assert!(Instant::now() < deadline, "the killed node is still listed: {seen:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
