//! The stateful era (2025-03-26 … 2025-11-25).

use qudag_tests::spawn_fixture_app;
use serde_json::{Value, json};

use crate::client::{STATEFUL, Session, post, read_events, response_message};

#[tokio::test]
async fn a_session_lives_from_initialize_to_delete() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    assert_eq!(session.id.len(), 64);
    assert!(session.id.bytes().all(|b| (0x21..=0x7e).contains(&b)), "visible ASCII only");

    assert_eq!(session.call(1, "ping", json!({})).await["result"], json!({}), "ping is exactly {{}}");
    let tools = session.call(2, "tools/list", json!({})).await;
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "test_simple_text");
    assert!(names.contains(&"test_sampling"), "stateful-only tools are listed");
    assert!(!names.contains(&"test_missing_capability"), "stateless-only tools are not");
    assert!(tools["result"].get("resultType").is_none(), "no resultType for older peers");

    let echo = session.call(3, "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}})).await;
    assert_eq!(echo["result"]["content"][0]["text"], "hi");
    let level = session.call(4, "logging/setLevel", json!({"level": "debug"})).await;
    assert_eq!(level["result"], json!({}));

    let deleted = app.client.delete(app.url("/mcp")).header("mcp-session-id", &session.id).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let after = session.post(json!({"jsonrpc": "2.0", "id": 5, "method": "ping"})).await;
    assert_eq!(after.status(), 404, "a deleted session is gone");
    let again = app.client.delete(app.url("/mcp")).header("mcp-session-id", &session.id).send().await.unwrap();
    assert_eq!(again.status(), 404);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn version_negotiation_offers_what_we_serve() {
    let app = spawn_fixture_app(|_| {}).await;
    for (asked, answered) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2024-11-05", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let resp = post(
            &app,
            &[],
            json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
            }),
        )
        .await;
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], answered, "asked {asked}");
        assert!(body["result"]["capabilities"]["tools"].is_object());
        assert!(body["result"]["capabilities"]["logging"].is_object());
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_initialize_with_bad_params_is_told_what_is_wrong() {
    let app = spawn_fixture_app(|_| {}).await;
    // `experimental` capabilities must be objects: this one is a string.
    let resp = post(
        &app,
        &[],
        json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {"experimental": {"x": "e"}},
                       "clientInfo": {"name": "e2e", "version": "1"}}
        }),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["code"], -32602, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("invalid initialize params: "), "{message}");
    assert!(!message.contains("Mcp-Session-Id"), "not mistaken for a request outside a session: {message}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn requests_need_a_live_session() {
    let app = spawn_fixture_app(|_| {}).await;
    let resp = post(&app, &[], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(resp.status(), 400, "no session, not initialize");
    let resp =
        post(&app, &[("mcp-session-id", &"a".repeat(64))], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .await;
    assert_eq!(resp.status(), 404, "unknown session");
    let resp =
        post(&app, &[("mcp-session-id", "not-an-id")], json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .await;
    assert_eq!(resp.status(), 404, "malformed session id");
    let session = Session::open(&app, json!({})).await;
    let resp = post(
        &app,
        &[("mcp-session-id", &session.id), ("mcp-protocol-version", "2031-01-01")],
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .await;
    assert_eq!(resp.status(), 400, "unsupported MCP-Protocol-Version");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn progress_streams_as_sse_before_the_result() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    let resp = session
        .post(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "p1"}}}))
        .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let events = read_events(resp, |e| e.json()["id"] == 7).await;
    let progress: Vec<f64> = events
        .iter()
        .filter(|e| e.json()["method"] == "notifications/progress")
        .map(|e| e.json()["params"]["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(progress, vec![0.0, 50.0, 100.0]);
    assert!(
        events
            .iter()
            .filter(|e| !e.data.is_empty())
            .all(|e| e.json()["params"]["progressToken"] == "p1" || e.json()["id"] == 7)
    );
    assert!(events.last().unwrap().json()["result"]["content"].is_array(), "the result comes last");
    assert_eq!(events[0].data, "", "2025-11-25 streams open with a priming event");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_dropped_stream_resumes_with_last_event_id() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    let resp = session
        .post(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                     "params": {"name": "test_long_progress", "arguments": {"steps": 8, "interval_ms": 50},
                                "_meta": {"progressToken": 1}}}))
        .await;
    // Read the priming event and three progress events, then drop the connection.
    let mut seen = 0;
    let first = read_events(resp, |e| {
        if !e.data.is_empty() {
            seen += 1;
        }
        seen == 3
    })
    .await;
    let last_id = first.last().unwrap().id.clone().unwrap();
    let before: Vec<f64> = first.iter().filter_map(|e| e.json()["params"]["progress"].as_f64()).collect();
    assert_eq!(before, vec![1.0, 2.0, 3.0]);

    let resumed = app
        .client
        .get(app.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session.id)
        .header("mcp-protocol-version", STATEFUL)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let rest = read_events(resumed, |e| e.json()["id"] == 9).await;
    let after: Vec<f64> = rest.iter().filter_map(|e| e.json()["params"]["progress"].as_f64()).collect();
    assert_eq!(after, vec![4.0, 5.0, 6.0, 7.0, 8.0], "every missed event, in order, none twice");
    assert_eq!(rest.last().unwrap().json()["result"]["content"][0]["text"], "completed 8 steps");
    let ids: Vec<String> = first.iter().chain(rest.iter()).filter_map(|e| e.id.clone()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "event ids never repeat");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sampling_requests_reach_the_client_and_its_answer_completes_the_call() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({"sampling": {}})).await;
    let resp = session
        .post(json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                     "params": {"name": "test_sampling", "arguments": {"prompt": "Say hi"}}}))
        .await;
    let app_ref = &app;
    let session_id = session.id.clone();
    let mut pending = Vec::new();
    let events = read_events(resp, |e| {
        let m = e.json();
        if m["method"] == "sampling/createMessage" {
            assert_eq!(m["params"]["messages"][0]["content"]["text"], "Say hi");
            pending.push(m["id"].clone());
            return true;
        }
        m["id"] == 11
    })
    .await;
    assert!(!pending.is_empty(), "the server asked the client: {events:?}");
    // Answer on a separate POST, as the client does.
    let answer = post(
        app_ref,
        &[("mcp-session-id", &session_id), ("mcp-protocol-version", STATEFUL)],
        json!({"jsonrpc": "2.0", "id": pending[0], "result": {
            "role": "assistant", "content": {"type": "text", "text": "hi there"}, "model": "m", "stopReason": "endTurn"}}),
    )
    .await;
    assert_eq!(answer.status(), 202);
    // The result was stored on the same stream: resume it to read the rest.
    let last_id = events.last().unwrap().id.clone().unwrap();
    let resumed = app
        .client
        .get(app.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session.id)
        .header("last-event-id", last_id)
        .send()
        .await
        .unwrap();
    let final_message = response_message(resumed, 11).await;
    assert_eq!(final_message["result"]["content"][0]["text"], "LLM response: hi there");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn batches_are_served_only_to_2025_03_26_sessions() {
    let app = spawn_fixture_app(|_| {}).await;
    let old = Session::open_version(&app, "2025-03-26", json!({})).await;
    let resp = post(
        &app,
        &[("mcp-session-id", &old.id)],
        json!([
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b"}}}
        ]),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let replies: Value = resp.json().await.unwrap();
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 2, "one reply per request, none for the notification");
    assert_eq!(replies[0]["id"], 1);
    assert_eq!(replies[1]["result"]["content"][0]["text"], "b");

    let new = Session::open(&app, json!({})).await;
    let resp = new.post(json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])).await;
    assert_eq!(resp.status(), 400, "no batches after 2025-03-26");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_methods_and_bad_params_are_json_rpc_errors() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    assert_eq!(session.call(1, "no/such/method", json!({})).await["error"]["code"], -32601);
    assert_eq!(session.call(2, "tools/call", json!({"nome": "echo"})).await["error"]["code"], -32602);
    assert_eq!(session.call(3, "tools/call", json!({"name": "nope"})).await["error"]["code"], -32602);
    let missing = session.call(4, "resources/read", json!({"uri": "test://missing"})).await;
    assert_eq!(missing["error"]["code"], -32002);
    assert_eq!(missing["error"]["data"]["uri"], "test://missing");
    let bad_cursor = session.call(5, "tools/list", json!({"cursor": "garbage"})).await;
    assert_eq!(bad_cursor["error"]["code"], -32602);
    let echo_bad = session.call(6, "tools/call", json!({"name": "echo", "arguments": {}})).await;
    assert_eq!(echo_bad["result"]["isError"], true, "bad arguments are a tool error result");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn cancelling_a_request_stops_it_without_a_response() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    let resp = session
        .post(json!({"jsonrpc": "2.0", "id": 21, "method": "tools/call",
                     "params": {"name": "test_long_progress", "arguments": {"steps": 50, "interval_ms": 50},
                                "_meta": {"progressToken": "c"}}}))
        .await;
    let cancel = session
        .post(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 21, "reason": "test"}}))
        .await;
    assert_eq!(cancel.status(), 202);
    let events = read_events(resp, |_| false).await;
    assert!(events.iter().all(|e| e.json().get("result").is_none()), "no response for a cancelled request");
    let progress = events.iter().filter(|e| e.json()["method"] == "notifications/progress").count();
    assert!(progress < 50, "the work stopped early ({progress} of 50 steps)");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn list_changes_reach_the_standalone_get_stream() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    let get = app
        .client
        .get(app.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session.id)
        .header("mcp-protocol-version", STATEFUL)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-type"], "text/event-stream");
    let reader = tokio::spawn(read_events(get, |e| e.json()["method"] == "notifications/tools/list_changed"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let other = Session::open(&app, json!({})).await;
    let done = other.call(1, "tools/call", json!({"name": "test_trigger_tool_change", "arguments": {}})).await;
    assert!(done["result"]["content"].is_array());
    let events = reader.await.unwrap();
    assert_eq!(events.last().unwrap().json()["method"], "notifications/tools/list_changed", "{events:?}");
    let no_session = app.client.get(app.url("/mcp")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(no_session.status(), 405);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn open_streams_end_promptly_when_the_server_drains() {
    let app = spawn_fixture_app(|s| s.server.shutdown_grace_secs = 20).await;
    let session = Session::open(&app, json!({})).await;
    let get = app
        .client
        .get(app.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session.id)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let started = std::time::Instant::now();
    let reader = tokio::spawn(async move { get.text().await.unwrap_or_default() });
    app.stop().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "drained without waiting out the 20 s grace");
    let body = reader.await.unwrap();
    assert!(body.contains("retry: "), "the stream ends with a reconnection hint: {body:?}");
}

#[tokio::test]
async fn deleting_a_session_ends_its_open_get_stream() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    let get = app
        .client
        .get(app.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session.id)
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(async move { get.text().await.is_ok() });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let deleted = app.client.delete(app.url("/mcp")).header("mcp-session-id", &session.id).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(3), reader).await;
    assert!(matches!(ended, Ok(Ok(true))), "the stream ended with the session");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_closed_connection_is_resumed_for_the_result() {
    let app = spawn_fixture_app(|_| {}).await;
    let session = Session::open(&app, json!({})).await;
    let resp = session
        .post(json!({"jsonrpc": "2.0", "id": 31, "method": "tools/call",
                     "params": {"name": "test_reconnection", "arguments": {}}}))
        .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    assert!(body.contains("retry: "), "the closed stream tells the client when to come back: {body:?}");
    assert!(!body.contains("\"result\""), "the result is not on the closed connection: {body:?}");
    let last_id = body.lines().find_map(|l| l.strip_prefix("id: ")).unwrap().to_owned();
    let resumed = app
        .client
        .get(app.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session.id)
        .header("last-event-id", last_id)
        .send()
        .await
        .unwrap();
    let result = response_message(resumed, 31).await;
    assert_eq!(result["result"]["content"][0]["text"], "Reconnection test completed successfully");
    app.stop().await.unwrap();
}
