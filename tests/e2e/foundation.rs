//! The operational surface every deployment relies on: health, docs, request ids, and a
//! clean stop.

use std::time::Duration;

use qudag_tests::{spawn_app, spawn_app_with};
use serde_json::Value;

#[tokio::test]
async fn health_reports_every_wired_component() {
    let app = spawn_app().await;
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json; charset=utf-8");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "up");
    assert_eq!(body["draining"], false);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    for component in ["session_store", "rate_limiter", "audit"] {
        assert_eq!(body["components"][component]["status"], "up", "{component}: {body}");
    }
    assert_eq!(body["components"]["session_store"]["required"], true);
    assert!(
        body["components"]["session_store"]["detail"].as_str().unwrap().contains("of 10000 sessions"),
        "the configured capacity reaches the store: {body}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn settings_reach_the_adapters() {
    let app = spawn_app_with(|s| s.sessions.max_sessions = 7).await;
    let body: Value = app.get("/health").await.json().await.unwrap();
    assert!(body["components"]["session_store"]["detail"].as_str().unwrap().contains("of 7 sessions"), "{body}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn liveness_and_readiness_probes_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "up");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn openapi_document_and_browsable_docs_are_served() {
    let app = spawn_app().await;
    let served: Value = app.get("/openapi.json").await.json().await.unwrap();
    let committed: Value = serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
    assert_eq!(served, committed, "the running server serves the committed document");
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), 200);
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "the docs page renders Swagger UI");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/health/live")).header("x-request-id", "trace-42").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let a = app.get("/health/live").await.headers()["x-request-id"].to_str().unwrap().to_owned();
    let b = app.get("/health/live").await.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(a, b, "generated ids are unique");
    let missing = app.get("/nope").await;
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_then_stops_listening() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let addr = app.addr;
    // A request in flight when shutdown starts: its headers and half its body are in, the
    // rest comes after the stop began.
    let mut params = serde_json::json!({});
    params["_meta"] = qudag_tests::stateless_meta(serde_json::json!({}));
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: {}\r\nmcp-method: tools/list\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{first}",
        qudag_tests::STATELESS,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stopping.is_finished(), "the stop waits for the request in flight");
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"tools\""), "{answer}");
    stopping.await.unwrap().unwrap();
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "nothing listens after the stop");
}
