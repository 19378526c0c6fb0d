//! Several `qudag-mcp` processes sharing one Redis enforce one limit.
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
    let child = Command::new(env!("CARGO_BIN_EXE_qudag-mcp"))
        .args(["serve", "--fixtures", "conformance"])
        .env("QUDAG_PORT", "0")
        .env("QUDAG_LOG_FORMAT", "json")
        .env("QUDAG_RATE_LIMIT", "60")
        .env("QUDAG_RATE_LIMIT_BURST", "5")
        .env("QUDAG_RATE_LIMIT_STORE", "redis")
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
