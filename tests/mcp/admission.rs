//! Every kind of inbound operation takes the one admission path: each is counted against the
//! caller's rate limit, refused with 429 (and `Retry-After`) once it is spent, and the
//! refusal is in the audit trail.

use qudag_application::ports::AuditFilter;
use qudag_domain::audit::AuditAction;
use qudag_tests::{TestApp, spawn_fixture_app};
use serde_json::{Value, json};

use crate::client::Session;

/// A server whose callers get a burst of `burst` operations.
async fn limited(burst: u32) -> TestApp {
    spawn_fixture_app(move |s| {
        s.rate_limit.requests_per_minute = 6;
        s.rate_limit.burst = Some(burst);
    })
    .await
}

/// Send the operation `send` makes until it is refused; the statuses seen before and the
/// refusal, which must come within `within` attempts, carry `Retry-After`, and be audited.
async fn refused_within<F, Fut>(app: &TestApp, kind: &str, within: usize, mut send: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let before = rate_limited_records(app).await;
    let mut seen = Vec::new();
    for attempt in 0..within {
        let resp = send(attempt).await;
        let status = resp.status().as_u16();
        if status == 429 {
            assert!(resp.headers().contains_key("retry-after"), "{kind}: a 429 says when to come back");
            let after = rate_limited_records(app).await;
            assert_eq!(after, before + 1, "{kind}: the refusal is audited as rate.limited");
            return;
        }
        seen.push(status);
    }
    panic!("{kind}: never rate limited in {within} attempts (statuses {seen:?})");
}

async fn rate_limited_records(app: &TestApp) -> usize {
    let filter = AuditFilter { action: Some(AuditAction::RateLimited), ..AuditFilter::default() };
    app.audit.query(&filter, None, 1000).await.unwrap().events.len()
}

fn delete(app: &TestApp, session: &str) -> reqwest::RequestBuilder {
    app.client.delete(app.url("/mcp")).header("mcp-session-id", session)
}

#[tokio::test]
async fn stateful_requests_notifications_and_responses_are_limited() {
    for (kind, body) in [
        ("request", json!({"jsonrpc": "2.0", "id": 7, "method": "ping"})),
        ("notification", json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
        ("response", json!({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}})),
        ("error response", json!({"jsonrpc": "2.0", "id": "nobody-asked", "error": {"code": -1, "message": "no"}})),
    ] {
        let app = limited(3).await;
        let session = Session::open(&app, json!({})).await;
        refused_within(&app, kind, 5, |_| session.post(body.clone())).await;
        app.stop().await.unwrap();
    }
}

#[tokio::test]
async fn batches_are_limited_item_by_item() {
    let app = limited(4).await;
    let session = Session::open_version(&app, "2025-03-26", json!({})).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
    ]);
    refused_within(&app, "batch", 3, |_| session.post(batch.clone())).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn streams_and_session_ends_are_limited() {
    let app = limited(3).await;
    let session = Session::open(&app, json!({})).await;
    let get = || {
        app.client
            .get(app.url("/mcp"))
            .header("mcp-session-id", &session.id)
            .header("accept", "text/event-stream")
            .send()
    };
    refused_within(&app, "GET stream", 5, |_| async { get().await.unwrap() }).await;
    app.stop().await.unwrap();

    let app = limited(3).await;
    let session = Session::open(&app, json!({})).await;
    refused_within(&app, "DELETE", 5, |_| async { delete(&app, &session.id).send().await.unwrap() }).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn stateless_requests_notifications_and_listens_are_limited() {
    let app = limited(2).await;
    let a = &app;
    refused_within(&app, "stateless tools/call", 4, |i| async move {
        a.tool_call(i as u64, "echo", json!({"text": "q"})).send().await.unwrap()
    })
    .await;
    app.stop().await.unwrap();

    let app = limited(2).await;
    let listen = json!({"notifications": {"toolsListChanged": true}});
    let a = &app;
    refused_within(&app, "subscriptions/listen", 4, |i| {
        let listen = listen.clone();
        async move { a.stateless(i as u64, "subscriptions/listen", listen).send().await.unwrap() }
    })
    .await;
    app.stop().await.unwrap();

    let app = limited(2).await;
    let mut notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}});
    notification["params"]["_meta"] = qudag_tests::stateless_meta(json!({}));
    refused_within(&app, "stateless notification", 4, |_| async {
        app.client
            .post(app.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", qudag_tests::STATELESS)
            .header("mcp-method", "notifications/initialized")
            .json(&notification)
            .send()
            .await
            .unwrap()
    })
    .await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn admin_endpoints_are_limited() {
    let app = limited(2).await;
    let explain = json!({"target": "POST /admin/authz/explain", "roles": ["admin"]});
    refused_within(&app, "POST /admin/authz/explain", 4, |_| async {
        app.client.post(app.url("/admin/authz/explain")).json(&explain).send().await.unwrap()
    })
    .await;
    app.stop().await.unwrap();

    let app = limited(2).await;
    refused_within(&app, "GET /admin/audit", 4, |_| async { app.get("/admin/audit").await }).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_and_its_refusal_are_both_in_the_audit_trail() {
    let app = limited(1).await;
    let ok = app.tool_call(1, "echo", json!({"text": "q"})).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let refused = app.tool_call(2, "echo", json!({"text": "q"})).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let events = app.audit.query(&AuditFilter::default(), None, 1000).await.unwrap().events;
    let actions: Vec<&str> = events.iter().map(|e| e.record.action.as_str()).collect();
    assert!(actions.contains(&"tool.called"), "{actions:?}");
    assert!(actions.contains(&"rate.limited"), "{actions:?}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31002);
    app.stop().await.unwrap();
}
