//! The stateless era (2026-07-28).

use qudag_tests::spawn_fixture_app;
use serde_json::{Value, json};

use crate::client::{STATELESS, meta, post, read_events, stateless, stateless_with};

#[tokio::test]
async fn discover_and_calls_carry_result_type_and_cache_hints() {
    let app = spawn_fixture_app(|_| {}).await;
    let discover: Value = stateless(&app, 1, "server/discover", json!({})).await.json().await.unwrap();
    let r = &discover["result"];
    assert_eq!(r["resultType"], "complete");
    assert!(r["supportedVersions"].as_array().unwrap().contains(&json!(STATELESS)));
    assert!(r["ttlMs"].is_u64() && r["cacheScope"].is_string());
    assert_eq!(r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "qudag-mcp");

    let list: Value = stateless(&app, 2, "tools/list", json!({})).await.json().await.unwrap();
    assert_eq!(list["result"]["resultType"], "complete");
    assert!(list["result"]["ttlMs"].is_u64());
    let names: Vec<&str> =
        list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"test_missing_capability") && !names.contains(&"test_sampling"));
    let again: Value = stateless(&app, 3, "tools/list", json!({})).await.json().await.unwrap();
    assert_eq!(again["result"]["tools"], list["result"]["tools"], "deterministic order");

    let call = stateless(&app, 4, "tools/call", json!({"name": "echo", "arguments": {"text": "x"}})).await;
    assert_eq!(call.status(), 200);
    assert!(call.headers().get("mcp-session-id").is_none(), "no sessions in the stateless era");
    let call: Value = call.json().await.unwrap();
    assert_eq!(call["result"]["resultType"], "complete");
    assert_eq!(call["result"]["content"][0]["text"], "x");

    let read: Value =
        stateless(&app, 5, "resources/read", json!({"uri": "test://static-text"})).await.json().await.unwrap();
    assert_eq!(read["result"]["contents"][0]["text"], "This is the content of the static text resource.");
    assert!(read["result"]["cacheScope"].is_string());
    let missing: Value =
        stateless(&app, 6, "resources/read", json!({"uri": "test://none"})).await.json().await.unwrap();
    assert_eq!(missing["error"]["code"], -32602, "2026-07-28: resource not found is -32602");
    assert_eq!(missing["error"]["data"]["uri"], "test://none");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn request_metadata_is_validated_in_order() {
    let app = spawn_fixture_app(|_| {}).await;
    let headers = [("mcp-protocol-version", STATELESS), ("mcp-method", "tools/list")];
    let status_code = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        (status, body["error"]["code"].as_i64().unwrap_or(0), body["id"].clone())
    };
    // No _meta at all (but a modern header): -32602 / 400, id echoed.
    let r = post(&app, &headers, json!({"jsonrpc": "2.0", "id": 101, "method": "tools/list", "params": {}})).await;
    assert_eq!(status_code(r).await, (400, -32602, json!(101)));
    // _meta without clientCapabilities.
    let r = post(
        &app,
        &headers,
        json!({"jsonrpc": "2.0", "id": 102, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": STATELESS}}}),
    )
    .await;
    assert_eq!(status_code(r).await, (400, -32602, json!(102)));
    // Header and _meta disagree: -32020.
    let mut m = meta(json!({}));
    m["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let r = post(
        &app,
        &headers,
        json!({"jsonrpc": "2.0", "id": 103, "method": "tools/list", "params": {"_meta": m.clone()}}),
    )
    .await;
    assert_eq!(status_code(r).await, (400, -32020, json!(103)));
    // Both name an unsupported version: -32022 with what we support.
    let r = post(
        &app,
        &[("mcp-protocol-version", "2099-01-01"), ("mcp-method", "tools/list")],
        json!({"jsonrpc": "2.0", "id": 104, "method": "tools/list", "params": {"_meta": m}}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32022);
    assert_eq!(body["error"]["data"]["requested"], "2099-01-01");
    // Mcp-Method must match the body.
    let r = post(
        &app,
        &[("mcp-protocol-version", STATELESS), ("mcp-method", "prompts/list")],
        json!({"jsonrpc": "2.0", "id": 105, "method": "tools/list", "params": {"_meta": meta(json!({}))}}),
    )
    .await;
    assert_eq!(status_code(r).await, (400, -32020, json!(105)));
    // Mcp-Name must match the tool, and may be base64-encoded.
    let call = || {
        json!({"jsonrpc": "2.0", "id": 106, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "a"}, "_meta": meta(json!({}))}})
    };
    let r =
        post(&app, &[("mcp-protocol-version", STATELESS), ("mcp-method", "tools/call"), ("mcp-name", "other")], call())
            .await;
    assert_eq!(status_code(r).await, (400, -32020, json!(106)));
    let r = post(
        &app,
        &[("mcp-protocol-version", STATELESS), ("mcp-method", "tools/call"), ("mcp-name", "=?base64?ZWNobw==?=")],
        call(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(&app, &[("mcp-protocol-version", STATELESS), ("mcp-method", "tools/call")], call()).await;
    assert_eq!(r.status(), 400, "Mcp-Name is required for tools/call");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn removed_and_unknown_methods_are_404() {
    let app = spawn_fixture_app(|_| {}).await;
    for method in ["initialize", "ping", "logging/setLevel", "resources/subscribe", "nope/nope"] {
        let r = stateless(&app, 500, method, json!({})).await;
        assert_eq!(r.status(), 404, "{method}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32601, "{method}");
    }
    let get = app.client.get(app.url("/mcp")).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(get.status(), 405, "no GET stream without a session");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn missing_client_capabilities_are_reported() {
    let app = spawn_fixture_app(|_| {}).await;
    let r = stateless(&app, 401, "tools/call", json!({"name": "test_missing_capability", "arguments": {}})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32021);
    assert!(body["error"]["data"]["requiredCapabilities"]["sampling"].is_object());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn input_required_round_trip_with_sealed_state() {
    let app = spawn_fixture_app(|_| {}).await;
    let first: Value = stateless_with(
        &app,
        1,
        "tools/call",
        json!({"name": "test_input_required_result_request_state", "arguments": {}}),
        json!({"elicitation": {}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(first["result"]["resultType"], "input_required");
    let state = first["result"]["requestState"].as_str().unwrap().to_owned();
    let key = first["result"]["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
    let answer = json!({key.clone(): {"action": "accept", "content": {"ok": true}}});
    let done: Value = stateless_with(
        &app,
        2,
        "tools/call",
        json!({"name": "test_input_required_result_request_state",
        "arguments": {}, "inputResponses": answer.clone(), "requestState": state.clone()}),
        json!({"elicitation": {}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(done["result"]["resultType"], "complete");
    let tampered: Value = stateless_with(
        &app,
        3,
        "tools/call",
        json!({"name": "test_input_required_result_request_state",
        "arguments": {}, "inputResponses": answer, "requestState": format!("{state}x")}),
        json!({"elicitation": {}}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(tampered["error"]["code"], -32602, "tampered state is refused");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn progress_rides_the_response_stream_and_logs_need_a_log_level() {
    let app = spawn_fixture_app(|_| {}).await;
    let mut params = json!({"name": "test_tool_with_progress", "arguments": {}});
    params["_meta"] = meta(json!({}));
    params["_meta"]["progressToken"] = json!("t");
    let r = post(
        &app,
        &[("mcp-protocol-version", STATELESS), ("mcp-method", "tools/call"), ("mcp-name", "test_tool_with_progress")],
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}),
    )
    .await;
    let events = read_events(r, |e| e.json()["id"] == 9).await;
    assert_eq!(events.iter().filter(|e| e.json()["method"] == "notifications/progress").count(), 3);
    assert!(events.iter().all(|e| e.id.is_none()), "stateless streams carry no event ids");
    assert_eq!(events.last().unwrap().json()["result"]["resultType"], "complete");

    let quiet: Value = stateless(&app, 10, "tools/call", json!({"name": "test_logging_tool", "arguments": {}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(quiet["result"]["resultType"], "complete", "answered as plain JSON: no log messages were sent");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn subscriptions_listen_acknowledges_and_tags_notifications() {
    let app = spawn_fixture_app(|_| {}).await;
    let mut params =
        json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["test://static-text"]}});
    params["_meta"] = meta(json!({}));
    let listen = post(
        &app,
        &[("mcp-protocol-version", STATELESS), ("mcp-method", "subscriptions/listen")],
        json!({"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen", "params": params}),
    )
    .await;
    assert_eq!(listen.status(), 200);
    let reader = tokio::spawn(read_events(listen, |e| e.json()["method"] == "notifications/tools/list_changed"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A prompt change is not asked for; a tool change is.
    stateless(&app, 2, "tools/call", json!({"name": "test_trigger_prompt_change", "arguments": {}})).await;
    stateless(&app, 3, "tools/call", json!({"name": "test_trigger_tool_change", "arguments": {}})).await;
    let events = reader.await.unwrap();
    let methods: Vec<String> =
        events.iter().map(|e| e.json()["method"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(methods, vec!["notifications/subscriptions/acknowledged", "notifications/tools/list_changed"]);
    for e in &events {
        assert_eq!(e.json()["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-1");
    }
    assert_eq!(events[0].json()["params"]["notifications"]["toolsListChanged"], true);
    app.stop().await.unwrap();
}
