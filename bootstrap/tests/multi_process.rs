//! Several `qudag-mcp` processes sharing one Redis: one rate limit, one set of sessions,
//! one list of live nodes.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(feature = "postgres")]
use qudag_test_support::postgres::{FreshDatabase, psql};
use qudag_test_support::process::Server;
use qudag_test_support::temp::{TempDir, temp_dir};
use qudag_test_support::{qudag_mcp_command, redis};
use serde_json::json;

/// A node: a `qudag-mcp` process whose log is drained, so it never blocks on a full pipe.
type Node = Server;

fn start(redis_url: &str, prefix: &str) -> Node {
    spawn(
        qudag_mcp_command!()
            .args(["serve", "--fixtures", "conformance"])
            .env("QUDAG_RATE_LIMIT", "60")
            .env("QUDAG_RATE_LIMIT_BURST", "5")
            .env("QUDAG_RATE_LIMIT_STORE", "redis"),
        redis_url,
        prefix,
    )
}

/// Start `command` as a node sharing the Redis at `redis_url` under `prefix`.
fn spawn(command: &mut Command, redis_url: &str, prefix: &str) -> Node {
    Server::start(command.env("QUDAG_REDIS_URL", redis_url).env("QUDAG_REDIS_KEY_PREFIX", prefix)).drain_log()
}

#[tokio::test]
async fn three_processes_sharing_redis_enforce_one_limit() {
    let (redis_url, prefix) = (redis::url(), redis::key_prefix());
    let nodes = [start(&redis_url, &prefix), start(&redis_url, &prefix), start(&redis_url, &prefix)];
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for id in 0..12u16 {
        let node = &nodes[usize::from(id % 3)];
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let resp = client
            .post(format!("http://127.0.0.1:{}/mcp", node.port()))
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

/// The request-state key every node of a cluster shares (as the deployment files require):
/// it seals input-required state and tags the ids of requests to clients, so an answer can
/// reach the node that asked through any node.
const SHARED_STATE_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// A node serving the product with sessions and membership in Redis, authentication off.
fn start_shared(redis_url: &str, prefix: &str, id: &str) -> Node {
    spawn(
        qudag_mcp_command!()
            .arg("serve")
            .env("QUDAG_REQUIRE_AUTH", "false")
            .env("QUDAG_SESSION_STORE", "redis")
            .env("QUDAG_REQUEST_STATE_KEY", SHARED_STATE_KEY)
            .env("QUDAG_NODE_ID", id),
        redis_url,
        prefix,
    )
}

async fn post(
    client: &reqwest::Client,
    port: u16,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> reqwest::Response {
    let mut request = client
        .post(format!("http://127.0.0.1:{port}/mcp"))
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
        node.port(),
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
    let (redis_url, prefix) = (redis::url(), redis::key_prefix());
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
    let resp = post(&client, nodes[0].port(), &[], init).await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(&client, nodes[1].port(), &in_session, initialized).await.status(), 202);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let resp = post(&client, nodes[2].port(), &in_session, list.clone()).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()), "{body}");

    // Deleted on node 2, it is gone on node 3 at once.
    let deleted = client
        .delete(format!("http://127.0.0.1:{}/mcp", nodes[1].port()))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(post(&client, nodes[2].port(), &in_session, list).await.status(), 404);

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
        qudag_mcp_command!()
            .args(["serve", "--fixtures", "conformance"])
            .env("QUDAG_SESSION_STORE", "redis")
            .env("QUDAG_REQUEST_STATE_KEY", SHARED_STATE_KEY),
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
    let (redis_url, prefix) = (redis::url(), redis::key_prefix());
    let nodes = [
        start_fixture_shared(&redis_url, &prefix),
        start_fixture_shared(&redis_url, &prefix),
        start_fixture_shared(&redis_url, &prefix),
    ];
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "1"}}});
    let resp = post(&client, nodes[0].port(), &[], init).await;
    let session = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(&client, nodes[0].port(), &in_session, initialized).await.status(), 202);

    // A change raised on node 1 reaches a GET stream on node 2 and a listen stream on node 3.
    let get = client
        .get(format!("http://127.0.0.1:{}/mcp", nodes[1].port()))
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
        nodes[2].port(),
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
        nodes[0].port(),
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
        nodes[0].port(),
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
        nodes[1].port(),
        &in_session,
        json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
            "role": "assistant", "content": {"type": "text", "text": "hi there"}, "model": "m", "stopReason": "endTurn"}}),
    )
    .await;
    assert_eq!(answer.status(), 202);
    let resumed = client
        .get(format!("http://127.0.0.1:{}/mcp", nodes[2].port()))
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

/// A real nginx (Debian's package) in front of `nodes`, with the shipped proxying
/// configuration (`deploy/nginx/qudag-mcp-locations.conf`) on a loopback port.
struct Nginx {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn nginx(nodes: &[&Node]) -> Nginx {
    let nginx = qudag_test_support::program("nginx", "nginx");
    let dir = temp_dir("nginx");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let servers: String =
        nodes.iter().map(|n| format!("    server 127.0.0.1:{} max_fails=1 fail_timeout=30s;\n", n.port())).collect();
    let locations = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx/qudag-mcp-locations.conf");
    let d = dir.path().display();
    let conf = format!(
        "user root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\ndaemon off;\nevents {{}}\nhttp {{\n  access_log off;\n  \
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  upstream qudag_mcp {{\n{servers}    keepalive 16;\n  }}\n  \
         server {{\n    listen 127.0.0.1:{port};\n    include {locations};\n  }}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child =
        Command::new(nginx).arg("-c").arg(dir.path().join("nginx.conf")).stderr(Stdio::inherit()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx { child, port, _dir: dir }
}

/// The progress values (`params.progress`) of `messages`, in order.
fn progress(messages: &[(Option<String>, serde_json::Value)]) -> Vec<u64> {
    messages.iter().filter_map(|(_, m)| m["params"]["progress"].as_f64()).map(|p| p as u64).collect()
}

/// Through a real nginx with the shipped configuration: a session is served by whichever
/// node nginx picks; a node killed (SIGKILL) while it streams a long tool call's progress
/// leaves its events in Redis, and the client resuming with `Last-Event-ID` through nginx
/// lands on a live node and gets every event it missed, in order, none twice.
#[tokio::test]
async fn through_nginx_a_stream_survives_the_node_that_served_it() {
    let (redis_url, prefix) = (redis::url(), redis::key_prefix());
    let mut nodes = vec![
        start_fixture_shared(&redis_url, &prefix),
        start_fixture_shared(&redis_url, &prefix),
        start_fixture_shared(&redis_url, &prefix),
    ];
    let proxy = nginx(&nodes.iter().collect::<Vec<_>>());
    qudag_mcp::install_crypto_provider();
    let client = reqwest::Client::new();

    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let resp = post(&client, proxy.port, &[], init).await;
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(&client, proxy.port, &in_session, initialized).await.status(), 202);
    for id in 1..=6 {
        let list = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
        assert_eq!(post(&client, proxy.port, &in_session, list).await.status(), 200, "served through nginx");
    }

    // A long call on node 1, with progress every 50 ms; the client reads three events, then
    // its connection drops; node 1 goes on writing to Redis until it is killed.
    let call = json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "test_long_progress", "arguments": {"steps": 200, "interval_ms": 50},
                   "_meta": {"progressToken": "p"}}});
    let resp = post(&client, nodes[0].port(), &in_session, call).await;
    assert_eq!(resp.status(), 200);
    let mut seen = 0;
    let first = sse_until(resp, |_| {
        seen += 1;
        seen == 3
    })
    .await;
    let got = progress(&first);
    assert_eq!(got, [1, 2, 3], "{first:?}");
    let last_id = first.last().unwrap().0.clone().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let killed = nodes.remove(0);
    drop(killed);

    let resumed = client
        .get(format!("http://127.0.0.1:{}/mcp", proxy.port))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200, "resumed through nginx on a live node");
    // Read what was stored (the stream stays open: its writer is dead); stop once quiet.
    let mut rest = Vec::new();
    {
        use futures::StreamExt;
        let mut body = resumed.bytes_stream();
        let mut buffer = String::new();
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_millis(1500), body.next()).await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
        for frame in buffer.split("\n\n") {
            let id = frame.lines().find_map(|l| l.strip_prefix("id: ")).map(str::to_owned);
            let data: String = frame.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if let Ok(message) = serde_json::from_str::<serde_json::Value>(&data) {
                rest.push((id, message));
            }
        }
    }
    let resumed_progress = progress(&rest);
    assert!(resumed_progress.len() >= 5, "node 1 wrote more before the kill: {rest:?}");
    let expected: Vec<u64> = (4..4 + resumed_progress.len() as u64).collect();
    assert_eq!(resumed_progress, expected, "every missed event, in order, none twice");
    let ids: Vec<&str> = rest.iter().filter_map(|(id, _)| id.as_deref()).collect();
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event id twice: {ids:?}");
}

/// The pinned official TypeScript clients (`tests/clients/ts`), installed on first use as
/// `tests/clients/run.sh` does; the pinned Node.js that runs them.
fn typescript_clients() -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/ts");
    let node = dir.join("node_modules/.bin/node");
    if !node.exists() {
        let status = Command::new(qudag_test_support::program("npm", "npm"))
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("running npm ci in tests/clients/ts: {e}"));
        assert!(status.success(), "npm ci in tests/clients/ts failed");
    }
    (node, dir)
}

/// The cluster's rate limit: per caller, shared in Redis.
const CLUSTER_RATE_PER_MINUTE: &str = "60";
const CLUSTER_RATE_BURST: &str = "120";

/// A fixtures node sharing Redis (sessions, streams, notifications, answers, the rate
/// limit) behind nginx on loopback, and writing its audit chain (`node-N`) to PostgreSQL.
fn start_audited(redis_url: &str, prefix: &str, database: &str, dir: &std::path::Path, n: usize) -> Node {
    spawn(
        qudag_mcp_command!()
            .args(["serve", "--fixtures", "conformance"])
            .env("QUDAG_SESSION_STORE", "redis")
            .env("QUDAG_REQUEST_STATE_KEY", SHARED_STATE_KEY)
            .env("QUDAG_NODE_ID", format!("node-{n}"))
            .env("QUDAG_AUDIT_SINK", "postgres")
            .env("QUDAG_DATABASE_URL", database)
            .env("QUDAG_AUDIT_SPOOL", dir.join(format!("spool-{n}.jsonl")))
            .env("QUDAG_KEY_FILE", dir.join(format!("keys-{n}.json")))
            .env("QUDAG_RATE_LIMIT_STORE", "redis")
            .env("QUDAG_RATE_LIMIT", CLUSTER_RATE_PER_MINUTE)
            .env("QUDAG_RATE_LIMIT_BURST", CLUSTER_RATE_BURST)
            .env("QUDAG_TRUSTED_PROXIES", "127.0.0.1")
            .env("QUDAG_SHUTDOWN_GRACE_SECS", "5"),
        redis_url,
        prefix,
    )
}

/// The whole load-balanced architecture with a real MCP client: three nodes sharing Redis
/// and PostgreSQL behind a real nginx, driven by the official TypeScript SDK
/// (`tests/clients/ts/cluster.mjs`) node by node and through nginx — a session used across
/// nodes and deleted, a change reaching a GET stream and a listen stream on other nodes, a
/// sampling answer posted to another node, node 1 killed mid-stream and the stream resumed
/// through nginx, one rate limit wherever a caller's requests land. Afterwards every audit
/// event of the run is in PostgreSQL, each node's chain intact (`audit verify --database`).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_mcp_client_through_nginx_across_three_audited_nodes() {
    use std::io::{BufRead as _, BufReader, Write as _};

    let (redis_url, prefix) = (redis::url(), redis::key_prefix());
    let db = FreshDatabase::create("cluster");
    let database = db.url();
    let dir = temp_dir("cluster");
    let (node_bin, clients) = typescript_clients();
    let mut nodes: Vec<Node> = (1..=3).map(|n| start_audited(&redis_url, &prefix, database, dir.path(), n)).collect();
    let proxy = nginx(&nodes.iter().collect::<Vec<_>>());
    qudag_mcp::install_crypto_provider();

    let url = |port: u16| format!("http://127.0.0.1:{port}/mcp");
    let mut script = Command::new(&node_bin)
        .arg(clients.join("cluster.mjs"))
        .args([url(proxy.port), url(nodes[0].port()), url(nodes[1].port()), url(nodes[2].port())])
        .current_dir(&clients)
        .env("CLUSTER_RATE_PER_MINUTE", CLUSTER_RATE_PER_MINUTE)
        .env("CLUSTER_RATE_BURST", CLUSTER_RATE_BURST)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = script.stdin.take().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = BufReader::new(script.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut output = Vec::new();
    let mut killed = false;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(120), lines.recv()).await {
        if line == "KILL 1" {
            // Killed at once (SIGKILL): with durable acknowledgement (the default) every
            // call the client saw answered is already committed (docs/audit.md).
            let mut first = nodes.remove(0);
            first.kill();
            killed = true;
            writeln!(stdin, "killed").unwrap();
        }
        output.push(line);
    }
    let status = script.wait().unwrap();
    let report = output.join("\n");
    assert!(killed, "the client never asked for node 1 to be killed:\n{report}");
    let failed: Vec<&String> = output.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(failed.is_empty(), "{report}");
    assert_eq!(output.iter().filter(|l| l.starts_with("PASS")).count(), 6, "{report}");
    assert!(status.success(), "{report}");
    let count = |action: &str| -> u64 {
        let line = output.iter().find_map(|l| l.strip_prefix(&format!("COUNT {action} ")));
        line.unwrap_or_else(|| panic!("no count of {action}: {report}")).parse().unwrap()
    };

    // Nodes 2 and 3 stop gracefully: their queues are flushed and the stop audited.
    for node in &mut nodes {
        node.signal("TERM");
        assert!(node.wait().success());
    }
    drop(proxy);

    let verify = qudag_mcp_command!()
        .args(["audit", "verify", "--database", database])
        .env("QUDAG_REQUIRE_AUTH", "false")
        .output()
        .unwrap();
    let verified = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{verified}{}", String::from_utf8_lossy(&verify.stderr));
    for node in ["node-1", "node-2", "node-3"] {
        assert!(verified.contains(&format!("node {node}: audit chain intact")), "{verified}");
    }
    let counted = |sql: &str| psql(database, sql).parse::<u64>().unwrap();
    let of = |action: &str| counted(&format!("SELECT count(*) FROM audit_events WHERE action = '{action}'"));
    assert_eq!(of("tool.called"), count("tool.called"), "every tool call the client completed is audited once");
    assert_eq!(of("session.created"), count("session.created"), "every session the client made is audited once");
    assert_eq!(of("server.started"), 3);
    assert_eq!(
        psql(database, "SELECT string_agg(node, ',' ORDER BY node) FROM audit_events WHERE action = 'server.stopped'"),
        "node-2,node-3",
        "nodes 2 and 3 recorded their stop; node 1 was killed"
    );
}
