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

/// A node serving the conformance fixture with everything shared in Redis.
fn start_fixture_shared(redis_url: &str, prefix: &str) -> Node {
    spawn(
        Command::new(env!("CARGO_BIN_EXE_qudag-mcp"))
            .args(["serve", "--fixtures", "conformance"])
            .env("QUDAG_SESSION_STORE", "redis"),
        redis_url,
        prefix,
    )
}

/// The JSON messages of an SSE response, read until `done` says so (10 s at most).
async fn sse_until(
    resp: reqwest::Response,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<(Option<String>, serde_json::Value)> {
    use futures::StreamExt;
    let mut body = resp.bytes_stream();
    let (mut buffer, mut out) = (String::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let id = frame.lines().find_map(|l| l.strip_prefix("id: ")).map(str::to_owned);
            let data: String = frame.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if let Ok(message) = serde_json::from_str::<serde_json::Value>(&data) {
                let stop = done(&message);
                out.push((id, message));
                if stop {
                    return out;
                }
            }
        }
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn notifications_answers_and_streams_cross_nodes() {
    let redis_url = std::env::var("QUDAG_TEST_REDIS_URL")
        .unwrap_or_else(|_| panic!("set QUDAG_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)"));
    let prefix = format!("qudag-test:{}:", uuid::Uuid::new_v4());
    let nodes = [
        start_fixture_shared(&redis_url, &prefix),
        start_fixture_shared(&redis_url, &prefix),
        start_fixture_shared(&redis_url, &prefix),
    ];
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "1"}}});
    let resp = post(&client, &nodes[0], &[], init).await;
    let session = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(&client, &nodes[0], &in_session, initialized).await.status(), 202);

    // A change raised on node 1 reaches a GET stream on node 2 and a listen stream on node 3.
    let get = client
        .get(format!("http://127.0.0.1:{}/mcp", nodes[1].port))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let listen = post(
        &client,
        &nodes[2],
        &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "subscriptions/listen")],
        json!({"jsonrpc": "2.0", "id": "sub", "method": "subscriptions/listen",
               "params": {"notifications": {"toolsListChanged": true}, "_meta": meta}}),
    )
    .await;
    assert_eq!(listen.status(), 200);
    let changed = |m: &serde_json::Value| m["method"] == "notifications/tools/list_changed";
    let on_get = tokio::spawn(sse_until(get, changed));
    let on_listen = tokio::spawn(sse_until(listen, changed));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trigger = post(
        &client,
        &nodes[0],
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "test_trigger_tool_change"),
        ],
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
               "params": {"name": "test_trigger_tool_change", "arguments": {}, "_meta": meta}}),
    )
    .await;
    assert_eq!(trigger.status(), 200);
    assert!(on_get.await.unwrap().iter().any(|(_, m)| changed(m)), "the GET stream on node 2 got the change");
    assert!(on_listen.await.unwrap().iter().any(|(_, m)| changed(m)), "the listen stream on node 3 got the change");

    // A call on node 1 asks the client for sampling; the answer is posted to node 2; the
    // stream is resumed on node 3 and carries the result.
    let call = post(
        &client,
        &nodes[0],
        &in_session,
        json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
               "params": {"name": "test_sampling", "arguments": {"prompt": "Say hi"}}}),
    )
    .await;
    let seen = sse_until(call, |m| m["method"] == "sampling/createMessage").await;
    let (last_id, ask) = seen.last().cloned().unwrap();
    assert_eq!(ask["method"], "sampling/createMessage", "{seen:?}");
    let answer = post(
        &client,
        &nodes[1],
        &in_session,
        json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
            "role": "assistant", "content": {"type": "text", "text": "hi there"}, "model": "m", "stopReason": "endTurn"}}),
    )
    .await;
    assert_eq!(answer.status(), 202);
    let resumed = client
        .get(format!("http://127.0.0.1:{}/mcp", nodes[2].port))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", last_id.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let rest = sse_until(resumed, |m| m["id"] == 11).await;
    let result = rest.iter().find(|(_, m)| m["id"] == 11).map(|(_, m)| m.clone());
    assert_eq!(
        result.as_ref().map(|m| m["result"]["content"][0]["text"].clone()),
        Some(json!("LLM response: hi there")),
        "{rest:?}"
    );
}
