//! A minimal MCP-over-HTTP test client: raw requests, so every header and status is ours
//! to assert.

use std::time::Duration;

use futures::StreamExt;
use qudag_tests::TestApp;
use serde_json::{Value, json};

pub const STATEFUL: &str = "2025-11-25";
pub use qudag_tests::STATELESS;

/// One SSE event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// Read SSE events from a response until `stop` says so or the stream ends (10 s cap).
pub async fn read_events(resp: reqwest::Response, mut stop: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let mut body = resp.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut event = Event { id: None, data: String::new() };
            let mut saw_field = false;
            for line in frame.lines() {
                if let Some(id) = line.strip_prefix("id: ") {
                    event.id = Some(id.to_owned());
                    saw_field = true;
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data.push_str(data);
                    saw_field = true;
                }
            }
            if saw_field {
                let done = stop(&event);
                events.push(event);
                if done {
                    return events;
                }
            }
        }
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return events,
        }
    }
}

/// A stateful session.
pub struct Session<'a> {
    pub app: &'a TestApp,
    pub id: String,
}

impl<'a> Session<'a> {
    /// `initialize` + `notifications/initialized`, with `capabilities`.
    pub async fn open(app: &'a TestApp, capabilities: Value) -> Session<'a> {
        Self::open_version(app, STATEFUL, capabilities).await
    }

    pub async fn open_version(app: &'a TestApp, version: &str, capabilities: Value) -> Session<'a> {
        let resp = post(
            app,
            &[],
            json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": version, "capabilities": capabilities,
                           "clientInfo": {"name": "e2e", "version": "1"}}
            }),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], version);
        let session = Session { app, id };
        let resp = session.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert_eq!(resp.status(), 202);
        session
    }

    pub async fn post(&self, body: Value) -> reqwest::Response {
        post(self.app, &[("mcp-session-id", &self.id), ("mcp-protocol-version", STATEFUL)], body).await
    }

    /// A request answered as JSON; returns the whole JSON-RPC message.
    pub async fn call(&self, id: u64, method: &str, params: Value) -> Value {
        let resp = self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        assert_eq!(resp.status(), 200, "{method}");
        response_message(resp, id).await
    }
}

/// The JSON-RPC message answering `id`, whether the response is JSON or SSE.
pub async fn response_message(resp: reqwest::Response, id: u64) -> Value {
    let is_sse = resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream");
    if !is_sse {
        return resp.json().await.unwrap();
    }
    let events = read_events(resp, |e| e.json()["id"] == id && e.json().get("method").is_none()).await;
    events.last().unwrap().json()
}

pub async fn post(app: &TestApp, headers: &[(&str, &str)], body: Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// `_meta` of a stateless request.
pub use qudag_tests::stateless_meta as meta;

/// A stateless request with correct headers, declaring no client capabilities.
pub async fn stateless(app: &TestApp, id: u64, method: &str, params: Value) -> reqwest::Response {
    stateless_with(app, id, method, params, json!({})).await
}

/// A stateless request with correct headers, declaring `capabilities`.
pub async fn stateless_with(
    app: &TestApp,
    id: u64,
    method: &str,
    params: Value,
    capabilities: Value,
) -> reqwest::Response {
    app.stateless_with(id, method, params, capabilities).send().await.unwrap()
}
