//! What one caller can make the server hold or show, over HTTP: subscriptions, sessions,
//! caller text in the audit trail, lists by permission, answers nobody asked for.

use qudag_application::ports::AuditFilter;
use qudag_domain::audit::AuditAction;
use qudag_mcp::cli::Fixtures;
use qudag_test_support::temp::temp_dir;
use qudag_tests::{TestApp, spawn_app, spawn_fixture_app, spawn_with_fixtures};
use serde_json::{Value, json};

use crate::client::{STATEFUL, Session, post};

async fn audited(app: &TestApp, action: AuditAction) -> Vec<Value> {
    let filter = AuditFilter { action: Some(action), ..AuditFilter::default() };
    let page = app.audit.query(&filter, None, 1_000).await.unwrap();
    page.events.into_iter().map(|e| serde_json::to_value(&e.record).unwrap()).collect()
}

/// A 429 naming `setting`, with `Retry-After` and the rate-limit error code.
async fn assert_limit(resp: reqwest::Response, setting: &str) {
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"), "a 429 says when to come back");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31002, "{body}");
    assert_eq!(body["error"]["data"]["setting"], setting, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(setting), "{body}");
}

#[tokio::test]
async fn subscriptions_are_checked_and_bounded() {
    let app = spawn_fixture_app(|s| s.sessions.max_subscriptions_per_session = 2).await;
    let session = Session::open(&app, json!({})).await;
    let subscribe = |uri: String| {
        session.post(json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": uri}}))
    };
    let unknown: Value = subscribe("nowhere://at/all".into()).await.json().await.unwrap();
    assert_eq!(unknown["error"]["code"], -32002, "only what the server serves: {unknown}");
    let long: Value = subscribe(format!("test://template/{}/data", "x".repeat(1_000_000))).await.json().await.unwrap();
    assert_eq!(long["error"]["code"], -32602, "{}", &long.to_string()[..200.min(long.to_string().len())]);
    assert!(long.to_string().len() < 1_000, "the error does not repeat the URI");
    for uri in ["test://static-text", "test://template/1/data"] {
        let ok: Value = subscribe(uri.into()).await.json().await.unwrap();
        assert_eq!(ok["result"], json!({}), "{uri}: {ok}");
    }
    assert_limit(subscribe("test://template/2/data".into()).await, "QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION").await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sessions_are_bounded_per_caller() {
    let app = spawn_fixture_app(|s| s.sessions.max_sessions_per_principal = 2).await;
    let first = Session::open(&app, json!({})).await;
    let _second = Session::open(&app, json!({})).await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": STATEFUL, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
    });
    assert_limit(post(&app, &[], initialize.clone()).await, "QUDAG_MAX_SESSIONS_PER_PRINCIPAL").await;
    let deleted = app.client.delete(app.url("/mcp")).header("mcp-session-id", &first.id).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(post(&app, &[], initialize).await.status(), 200, "ending a session makes room");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn caller_text_reaches_sessions_errors_and_the_audit_trail_only_as_a_prefix() {
    let app = spawn_app().await;
    let big = "A".repeat(1_000_000);
    let resp = post(
        &app,
        &[],
        json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": STATEFUL,
                       "capabilities": {"experimental": {"x": {"junk": big.clone()}}},
                       "clientInfo": {"name": big.clone(), "version": big}}
        }),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let created = audited(&app, AuditAction::SessionCreated).await;
    assert!(created[0].to_string().len() < 1_500, "session.created is {} bytes", created[0].to_string().len());

    let huge = "A".repeat(2_000_000);
    let resp = app.tool_call(1, "quantum_sign", json!({"data": "x", "algorithm": huge})).send().await.unwrap();
    let body = resp.text().await.unwrap();
    assert!(body.len() < 2_000, "the tool error repeats {} bytes", body.len());
    assert!(body.contains("algorithm"), "{body}");
    let called = audited(&app, AuditAction::ToolCalled).await;
    let record = called.last().unwrap().to_string();
    assert!(record.len() < 2_000, "tool.called is {} bytes", record.len());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_readonly_caller_is_listed_only_what_it_may_call() {
    let tmp = temp_dir("bounds");
    let key = tmp.path().join("dev.key");
    let settings_key = key.clone();
    let app = spawn_with_fixtures(Some(Fixtures::Authz), move |s| {
        s.auth.dev_mode = true;
        s.auth.dev_key_path = Some(settings_key);
        s.rate_limit.requests_per_minute = 0;
    })
    .await;
    let token = |role: &str| {
        let mut settings = qudag_mcp::Settings::default();
        settings.auth.dev_mode = true;
        settings.auth.dev_key_path = Some(key.clone());
        qudag_mcp::dev::token(&settings, &[role.to_owned()], None, Some(role), 600).unwrap()
    };
    let list = |token: String| {
        let app = &app;
        async move {
            let resp = app.stateless(1, "tools/list", json!({})).bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["result"]["cacheScope"], "private", "a list shaped per caller: {body}");
            let names: Vec<String> = body["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().into())
                .collect();
            names
        }
    };
    let admin = list(token("admin")).await;
    let readonly = list(token("readonly")).await;
    let probe = |p| qudag_application::mcp::fixtures::authz::probe_name(p);
    use qudag_domain::rbac::Permission;
    assert_eq!(admin.len(), Permission::ALL.len(), "{admin:?}");
    assert!(readonly.contains(&probe(Permission::SystemRead)), "{readonly:?}");
    assert!(readonly.contains(&probe(Permission::DagRead)), "{readonly:?}");
    assert!(!readonly.contains(&probe(Permission::VaultRead)), "{readonly:?}");
    assert!(!readonly.contains(&probe(Permission::Admin)), "{readonly:?}");
    assert_eq!(readonly.len(), 2, "{readonly:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_answer_nobody_asked_for_is_refused() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    for id in [json!("nobody-asked"), json!(42), json!("qudag-00000000-1-0000000000000000")] {
        let resp = session.post(json!({"jsonrpc": "2.0", "id": id, "result": {}})).await;
        assert_eq!(resp.status(), 400, "{id}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32600, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("no request of this session waits"), "{body}");
    }
    app.stop().await.unwrap();
}
