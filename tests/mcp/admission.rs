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

/// A server with developer-mode authentication (its key in `dir`) at `rate` requests per
/// minute, believing `X-Forwarded-For` from loopback so tests can speak from two addresses.
async fn authenticated(dir: &std::path::Path, rate: u32) -> TestApp {
    let key = dir.join("dev.key");
    spawn_fixture_app(move |s| {
        s.auth.dev_mode = true;
        s.auth.dev_key_path = Some(key);
        s.rate_limit.requests_per_minute = rate;
        s.mcp.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await
}

fn dev_token(dir: &std::path::Path) -> String {
    let mut settings = qudag_mcp::Settings::default();
    settings.auth.dev_mode = true;
    settings.auth.dev_key_path = Some(dir.join("dev.key"));
    qudag_mcp::dev::token(&settings, &["admin".to_owned()], None, Some("alice"), 600).unwrap()
}

async fn count(audit: &std::sync::Arc<dyn qudag_application::ports::AuditQuery>, action: AuditAction) -> Vec<Value> {
    let filter = AuditFilter { action: Some(action), ..AuditFilter::default() };
    let events = audit.query(&filter, None, 10_000).await.unwrap().events;
    events.into_iter().map(|e| serde_json::to_value(&e.record).unwrap()).collect()
}

#[tokio::test]
async fn a_flood_of_bad_tokens_meets_429_before_the_audit_sink() {
    let tmp = qudag_test_support::temp::temp_dir("admission-flood");
    let app = authenticated(tmp.path(), 60).await;
    let flooder = "203.0.113.66";
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..80 {
        let resp = app
            .tool_call(i, "echo", json!({"text": "q"}))
            .bearer_auth(format!("garbage-{i}"))
            .header("x-forwarded-for", flooder)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if status == 429 {
            assert!(resp.headers().contains_key("retry-after"));
            // The limit met is the address's failed-authentication allowance, and the answer
            // says so (not the rate limit that its callers have not spent).
            let policy = resp.headers()["ratelimit-policy"].to_str().unwrap().to_owned();
            assert!(policy.starts_with("\"auth_failures\";q=60;"), "{policy}");
            let left = resp.headers()["ratelimit"].to_str().unwrap().to_owned();
            assert!(left.starts_with("\"auth_failures\";r=0;"), "{left}");
        }
        *statuses.entry(status).or_default() += 1;
    }
    // QUDAG_RATE_LIMIT=60: a burst of 60 failures from the address, then 429 (a unit or two
    // may refill while the loop runs).
    let refused = statuses.get(&401).copied().unwrap_or_default();
    let limited = statuses.get(&429).copied().unwrap_or_default();
    assert!((60..=62).contains(&refused) && refused + limited == 80, "{statuses:?}");

    // An honest caller at another address is served all the while.
    let token = dev_token(tmp.path());
    let ok = app
        .tool_call(99, "echo", json!({"text": "q"}))
        .bearer_auth(&token)
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // 80 refused requests, a handful of records: the first of each kind in full...
    let audit = app.audit.clone();
    assert_eq!(count(&audit, AuditAction::AuthFailed).await.len(), 1);
    assert_eq!(count(&audit, AuditAction::RateLimited).await.len(), 1);
    // ...and, once written (at the latest at shutdown), one summary of each with the counts.
    app.stop().await.unwrap();
    let failed = count(&audit, AuditAction::AuthFailed).await;
    let limited_records = count(&audit, AuditAction::RateLimited).await;
    assert_eq!((failed.len(), limited_records.len()), (2, 2), "{failed:?} {limited_records:?}");
    let suppressed =
        |records: &[Value]| records.iter().map(|r| r["details"]["suppressed"].as_u64().unwrap_or(0)).sum::<u64>();
    assert_eq!(suppressed(&failed) as usize + 1, refused + 1, "every verified failure is counted");
    assert_eq!(suppressed(&limited_records) as usize + 1, limited);
    assert!(failed.iter().all(|r| r["client_addr"] == flooder), "{failed:?}");
}

#[tokio::test]
async fn authenticated_notifications_and_unsolicited_responses_are_limited() {
    let tmp = qudag_test_support::temp::temp_dir("admission-responses");
    let app = spawn_fixture_app({
        let key = tmp.path().join("dev.key");
        move |s| {
            s.auth.dev_mode = true;
            s.auth.dev_key_path = Some(key);
            s.rate_limit.requests_per_minute = 6;
            s.rate_limit.burst = Some(3);
        }
    })
    .await;
    let token = dev_token(tmp.path());
    let post = |body: Value, session: Option<&str>| {
        let mut req = app
            .client
            .post(app.url("/mcp"))
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", crate::client::STATEFUL)
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": crate::client::STATEFUL,
            "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let response = json!({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}});
    refused_within(&app, "authenticated unsolicited response", 5, |_| async {
        post(response.clone(), Some(&session)).await.unwrap()
    })
    .await;
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
