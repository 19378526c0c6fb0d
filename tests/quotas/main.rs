//! Quotas end to end: one limit across nodes sharing Redis, and what happens when Redis
//! goes away and comes back.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::time::Duration;

use qudag_application::testkit::proxy::TcpProxy;
use qudag_test_support::redis;
use qudag_tests::{TestApp, spawn_fixture_app};
use serde_json::{Value, json};

/// A node keeping its limiter in Redis at `url` under `prefix`.
async fn node(url: &str, prefix: &str, fail_closed: bool) -> TestApp {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    spawn_fixture_app(move |s| {
        s.rate_limit.requests_per_minute = 60;
        s.rate_limit.burst = Some(5);
        s.rate_limit.store = qudag_mcp::settings::StateStore::Redis;
        s.rate_limit.on_failure = if fail_closed {
            qudag_mcp::settings::FailurePolicy::FailClosed
        } else {
            qudag_mcp::settings::FailurePolicy::FailOpen
        };
        s.redis.url = Some(url);
        s.redis.key_prefix = prefix;
        s.redis.command_timeout_ms = 300;
    })
    .await
}

/// One stateless `tools/call echo`.
async fn echo(app: &TestApp, id: u64) -> reqwest::Response {
    app.tool_call(id, "echo", json!({"text": "q"})).send().await.unwrap()
}

#[tokio::test]
async fn two_nodes_enforce_one_global_limit() {
    let prefix = redis::key_prefix();
    let a = node(&redis::url(), &prefix, false).await;
    let b = node(&redis::url(), &prefix, false).await;
    let mut allowed = 0;
    let mut refused = 0;
    for id in 0..12 {
        let resp = echo(if id % 2 == 0 { &a } else { &b }, id).await;
        match resp.status().as_u16() {
            200 => {
                allowed += 1;
                assert!(resp.headers()["ratelimit"].to_str().unwrap().starts_with("\"default\";r="));
            }
            429 => {
                refused += 1;
                assert!(resp.headers().contains_key("retry-after"));
                assert_eq!(resp.headers()["ratelimit-policy"], "\"default\";q=5;w=5");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["id"], id);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((allowed, refused), (5, 7), "a burst of 5 across both nodes, not 5 each");
    let metrics = |app: &TestApp| {
        let app = app.url("/metrics");
        async move {
            qudag_mcp::install_crypto_provider();
            reqwest::get(app).await.unwrap().text().await.unwrap()
        }
    };
    let (ma, mb) = (metrics(&a).await, metrics(&b).await);
    let count = |text: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with("qudag_rate_limit_rejections_total{quota=\"rate\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert_eq!(count(&ma) + count(&mb), 7, "every refusal is counted by the node that refused it");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn failing_open_keeps_serving_while_redis_is_away_and_recovers() {
    let proxy = TcpProxy::start(redis::url().trim_start_matches("redis://").trim_end_matches('/')).await;
    let app = node(&format!("redis://{}", proxy.addr()), &redis::key_prefix(), false).await;
    for id in 0..5 {
        assert_eq!(echo(&app, id).await.status(), 200);
    }
    assert_eq!(echo(&app, 5).await.status(), 429, "the limit holds while Redis is there");

    proxy.cut();
    assert_eq!(echo(&app, 6).await.status(), 200, "fail-open: served without a limiter");
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["components"]["rate_limiter"]["status"], "down", "{health}");
    assert_eq!(health["status"], "degraded");
    assert_eq!(app.get("/health/ready").await.status(), 200, "still ready: the limiter is optional when failing open");

    proxy.restore();
    let back = wait_for(|| async { echo(&app, 7).await.status() == 429 }).await;
    assert!(back, "limiting resumes by itself, with the state Redis kept");
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "up");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn failing_closed_refuses_while_redis_is_away_and_recovers() {
    let proxy = TcpProxy::start(redis::url().trim_start_matches("redis://").trim_end_matches('/')).await;
    let app = node(&format!("redis://{}", proxy.addr()), &redis::key_prefix(), true).await;
    assert_eq!(echo(&app, 1).await.status(), 200);
    proxy.cut();
    let refused = echo(&app, 2).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("rate_limiter"), "{body}");
    assert_eq!(app.get("/health/ready").await.status(), 503, "fail-closed: not ready without the limiter");
    proxy.restore();
    assert!(wait_for(|| async { echo(&app, 3).await.status() == 200 }).await, "serving again once Redis is back");
    assert_eq!(app.get("/health/ready").await.status(), 200);
    app.stop().await.unwrap();
}

/// Poll `check` for up to 10 s.
async fn wait_for<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `initialize` of a stateful session; its response.
async fn initialize(app: &TestApp) -> reqwest::Response {
    app.client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap()
}

/// A fixtures app keeping its sessions in Redis, reached through a proxy the test can cut.
async fn sessions_in_redis_behind_a_proxy() -> (TcpProxy, TestApp) {
    let proxy = TcpProxy::start(redis::url().trim_start_matches("redis://").trim_end_matches('/')).await;
    let url = format!("redis://{}", proxy.addr());
    let app = spawn_fixture_app(move |s| {
        s.sessions.store = qudag_mcp::settings::StateStore::Redis;
        s.redis.url = Some(url);
        s.redis.key_prefix = redis::key_prefix();
        s.redis.command_timeout_ms = 300;
    })
    .await;
    (proxy, app)
}

#[tokio::test]
async fn sessions_in_redis_are_refused_with_503_while_it_is_away_and_recover() {
    let (proxy, app) = sessions_in_redis_behind_a_proxy().await;
    assert_eq!(initialize(&app).await.status(), 200);
    assert_eq!(app.get("/health/ready").await.status(), 200);
    proxy.cut();
    let refused = initialize(&app).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "a reason is given: {body}");
    assert_eq!(app.get("/health/ready").await.status(), 503, "not ready without the session store");
    let health: Value = app.get("/health").await.json().await.unwrap();
    assert_eq!(health["components"]["session_store"]["status"], "down", "{health}");
    // Stateless requests need no session and are still served.
    assert_eq!(echo(&app, 9).await.status(), 200);
    proxy.restore();
    assert!(wait_for(|| async { initialize(&app).await.status() == 200 }).await, "sessions again once Redis is back");
    assert_eq!(app.get("/health/ready").await.status(), 200);
    app.stop().await.unwrap();
}

/// A stateful streamed call in flight when Redis (which holds its resumable stream) goes
/// away is not lost: the tool runs on, its events wait for the store, and once Redis is back
/// the client's open response carries every progress notification and the result, in
/// order, none twice.
#[tokio::test]
async fn a_streamed_call_in_flight_when_redis_goes_away_finishes_with_every_event() {
    use futures::StreamExt as _;

    let (proxy, app) = sessions_in_redis_behind_a_proxy().await;
    let init = initialize(&app).await;
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let post = |body: Value| {
        app.client
            .post(app.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body)
    };
    let initialized = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).send().await.unwrap();
    assert_eq!(initialized.status(), 202);
    let call = post(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "test_long_progress", "arguments": {"steps": 12, "interval_ms": 100}, "_meta": {"progressToken": "p"}}}))
    .send()
    .await
    .unwrap();
    assert_eq!(call.status(), 200);

    let mut body = call.bytes_stream();
    let (mut buffer, mut messages, mut ids) = (String::new(), Vec::<Value>::new(), Vec::<String>::new());
    let mut cut = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !messages.iter().any(|m| m["id"] == 7) {
        let chunk = tokio::time::timeout_at(deadline, body.next()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("no result in 30 s; got {messages:?}"));
        let chunk = chunk.unwrap_or_else(|| panic!("the stream ended early; got {messages:?}")).unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id: ")) {
                ids.push(id.to_owned());
            }
            let data: String = frame.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if let Ok(message) = serde_json::from_str::<Value>(&data) {
                messages.push(message);
            }
        }
        if !cut && messages.len() >= 2 {
            // Redis goes away for longer than the tool needs to finish.
            proxy.cut();
            cut = true;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(app.get("/health/ready").await.status(), 503, "not ready while Redis is away");
            proxy.restore();
        }
    }
    assert!(cut, "Redis was cut mid-call");
    let progress: Vec<u64> =
        messages.iter().filter_map(|m| m["params"]["progress"].as_f64()).map(|p| p as u64).collect();
    assert_eq!(progress, (1..=12).collect::<Vec<_>>(), "every progress notification, in order, once");
    let result = messages.iter().find(|m| m["id"] == 7).unwrap();
    assert_eq!(result["result"]["content"][0]["text"], "completed 12 steps", "{result}");
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event id twice: {ids:?}");
    app.stop().await.unwrap();
}
