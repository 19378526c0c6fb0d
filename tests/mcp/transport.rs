//! HTTP rules of the endpoint: media types, limits, malformed bodies, Origin checks.

use qudag_tests::spawn_fixture_app;
use serde_json::{Value, json};

use crate::client::{Session, post};

#[tokio::test]
async fn media_types_and_limits_are_enforced() {
    let app = spawn_fixture_app(|s| s.mcp.max_body_bytes = 2048).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406, "Accept must also list text/event-stream");
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("content-type", "text/plain")
        .header("accept", "application/json, text/event-stream")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x".repeat(4096)}});
    assert_eq!(post(&app, &[], big).await.status(), 413);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_messages_get_json_rpc_errors() {
    let app = spawn_fixture_app(|_| {}).await;
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);
    assert!(body["id"].is_null());
    let session = Session::open(&app, json!({})).await;
    for bad in [
        json!({"jsonrpc": "2.0", "id": null, "method": "ping"}),
        json!({"id": 1, "method": "ping"}),
        json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}),
        json!(42),
    ] {
        let r = session.post(bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32600, "{bad}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn origins_are_checked() {
    let app = spawn_fixture_app(|s| s.mcp.cors_origins = vec!["https://app.example.com".into()]).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(post(&app, &[("origin", "http://evil.example.com")], init.clone()).await.status(), 403);
    assert_eq!(post(&app, &[("origin", "https://app.example.com")], init.clone()).await.status(), 200);
    let local = format!("http://{}", app.addr);
    assert_eq!(
        post(&app, &[("origin", &local)], init.clone()).await.status(),
        200,
        "loopback origin on a loopback server"
    );
    assert_eq!(post(&app, &[("host", "evil.example.com")], init).await.status(), 403, "DNS rebinding: foreign Host");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_token_the_answer_is_401_pointing_at_the_metadata() {
    // Authentication on (the default), with an issuer that is not even reachable: a
    // request without a token is refused before any key is needed.
    let app = qudag_tests::spawn_app_with(|s| {
        s.auth.require_auth = true;
        s.auth.issuer_url = Some("http://127.0.0.1:9".into());
        s.auth.audience = Some("qudag-mcp-api".into());
    })
    .await;
    let r = post(
        &app,
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let metadata = app.url("/.well-known/oauth-protected-resource/mcp");
    assert_eq!(challenge, format!("Bearer resource_metadata=\"{metadata}\""));
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503, "no signing keys: not ready");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let app = spawn_fixture_app(|s| {
        s.rate_limit.requests_per_minute = 60;
        s.rate_limit.burst = Some(4);
    })
    .await;
    // initialize and its notifications/initialized cost one each, like every inbound message
    let session = Session::open(&app, json!({})).await;
    let mut statuses = Vec::new();
    for id in 0..4 {
        let r = session.post(json!({"jsonrpc": "2.0", "id": id, "method": "ping"})).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["id"], id);
        }
    }
    assert_eq!(statuses, vec![200, 200, 429, 429]);
    app.stop().await.unwrap();
}
