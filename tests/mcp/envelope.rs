//! The HTTP envelope around every route: security headers, CORS (preflights from allowed
//! and disallowed origins), limits on long-lived streams, and the request timeout.

use std::time::Duration;

use qudag_tests::{TestApp, spawn_fixture_app};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{STATELESS, meta, post, stateless};

/// Every route answers with the security headers; the docs page gets its own CSP.
#[tokio::test]
async fn every_route_carries_the_security_headers() {
    let app = spawn_fixture_app(|_| {}).await;
    let mut responses = Vec::new();
    for path in
        ["/health", "/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs", "/admin/audit", "/nope"]
    {
        responses.push((path, app.get(path).await));
    }
    let mcp = stateless(&app, 1, "tools/list", json!({})).await;
    assert_eq!(mcp.status(), 200);
    responses.push(("/mcp", mcp));
    let refused = post(&app, &[("origin", "https://evil.example")], json!({})).await;
    assert_eq!(refused.status(), 403);
    responses.push(("/mcp (refused)", refused));
    for (path, resp) in &responses {
        let h = resp.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if *path == "/docs" {
            assert!(csp.contains("script-src 'unsafe-inline'") && csp.contains("connect-src 'self'"), "{csp}");
        } else {
            assert!(csp.starts_with("default-src 'none'") && !csp.contains("script-src"), "{path}: {csp}");
        }
        assert!(!h.contains_key("strict-transport-security"), "{path}: no HSTS over plain HTTP");
    }
    app.stop().await.unwrap();
}

async fn preflight(app: &TestApp, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/mcp"))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_answers_allowed_origins_and_refuses_others() {
    let app = spawn_fixture_app(|s| s.mcp.cors_origins = vec!["https://app.example.com".into()]).await;
    let allowed = "https://app.example.com";
    let asked = "content-type, authorization, mcp-protocol-version, mcp-session-id, mcp-param-region";
    let ok = preflight(&app, allowed, "POST", asked).await;
    assert_eq!(ok.status(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("DELETE"));
    assert_eq!(h["access-control-allow-headers"], asked);
    assert!(h["access-control-max-age"].to_str().unwrap().parse::<u32>().unwrap() > 0);
    assert!(h["vary"].to_str().unwrap().contains("Origin"));

    let refused = preflight(&app, "https://evil.example", "POST", "content-type").await;
    assert_eq!(refused.status(), 403);
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
    let odd_header = preflight(&app, allowed, "POST", "content-type, x-exfiltrate").await;
    assert_eq!(odd_header.status(), 403);
    assert!(odd_header.text().await.unwrap().contains("x-exfiltrate"));
    assert_eq!(preflight(&app, allowed, "PUT", "").await.status(), 403);

    // The real request from the allowed origin: readable, with the session id exposed.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let resp = post(&app, &[("origin", allowed)], init).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], allowed);
    assert!(resp.headers()["access-control-expose-headers"].to_str().unwrap().contains("mcp-session-id"));
    // Another origin reading a public route gets no CORS grant, so a browser withholds it.
    let health = app.client.get(app.url("/health")).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(!health.headers().contains_key("access-control-allow-origin"));
    app.stop().await.unwrap();
}

/// Open a `subscriptions/listen` stream; the response (its body still open on success).
async fn listen(app: &TestApp, id: u64) -> reqwest::Response {
    let mut params = json!({"notifications": {"toolsListChanged": true}});
    params["_meta"] = meta(json!({}));
    post(
        app,
        &[("mcp-protocol-version", STATELESS), ("mcp-method", "subscriptions/listen")],
        json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": params}),
    )
    .await
}

#[tokio::test]
async fn streams_are_limited_per_caller_and_per_node() {
    // Authentication is off, so every request is the same (anonymous) caller.
    let app = spawn_fixture_app(|s| {
        s.mcp.max_streams_per_principal = 2;
        s.mcp.max_streams = 5;
        // A client that went away is noticed at the next keep-alive comment.
        s.mcp.sse_keepalive_secs = 1;
    })
    .await;
    let first = listen(&app, 1).await;
    let second = listen(&app, 2).await;
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = listen(&app, 3).await;
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["id"], 3);
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 2 open streams"), "{body}");
    // Closing a stream frees its place.
    drop(first);
    let mut reopened = listen(&app, 4).await;
    for _ in 0..60 {
        if reopened.status() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        reopened = listen(&app, 4).await;
    }
    assert_eq!(reopened.status(), 200, "a closed stream's place is given back");
    // Plain requests are not streams and are not limited by this.
    assert_eq!(app.get("/health/live").await.status(), 200);
    app.stop().await.unwrap();

    let app = spawn_fixture_app(|s| {
        s.mcp.max_streams_per_principal = 2;
        s.mcp.max_streams = 2;
    })
    .await;
    let held = [listen(&app, 1).await, listen(&app, 2).await];
    assert!(held.iter().all(|r| r.status() == 200));
    let full = listen(&app, 3).await;
    assert_eq!(full.status(), 503, "the node is full");
    assert!(full.headers().contains_key("retry-after"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_whose_body_never_finishes_times_out_while_others_are_served() {
    let app = spawn_fixture_app(|s| s.mcp.request_timeout_secs = 1).await;
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n{{\"jsonrpc\":",
        app.addr
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // Others are served meanwhile.
    for _ in 0..3 {
        assert_eq!(app.get("/health/live").await.status(), 200);
    }
    let mut answer = vec![0u8; 512];
    let n =
        tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer)).await.expect("answered in time").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    app.stop().await.unwrap();
}
