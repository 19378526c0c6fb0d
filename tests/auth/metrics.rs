//! `/metrics` scraped before and after real MCP traffic: a successful tool call, a denied
//! one, authentication failures and a rate-limited call move exactly the series they should,
//! and the exposition parses as Prometheus text format 0.0.4.

use std::collections::BTreeMap;

use qudag_domain::rbac::Permission;
use qudag_mcp::settings::AuditSinkKind;
use serde_json::json;

use super::{call, call_with, issuer, probe, reason, server};

/// Samples by `name{labels}` (labels as rendered), after checking the exposition: every
/// sample belongs to a family with a TYPE line, histogram buckets are cumulative and end
/// with `+Inf`, and `_count` equals the `+Inf` bucket.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    // Per histogram series (name + labels without `le`): the buckets in order.
    let mut buckets: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none(), "TYPE twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'), "bad name {name}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE for {family}: {line}");
        if name.ends_with("_bucket") && family != name {
            let labels = series.split_once('{').unwrap().1.trim_end_matches('}');
            let (rest, le) = labels.rsplit_once(",le=").unwrap();
            buckets.entry(format!("{family}{{{rest}}}")).or_default().push((le.trim_matches('"').to_owned(), value));
        }
        assert!(samples.insert(series.to_owned(), value).is_none(), "sample twice: {line}");
    }
    for (series, list) in &buckets {
        let mut last_bound = f64::NEG_INFINITY;
        let mut last_count = 0.0;
        for (le, count) in list {
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            assert!(bound > last_bound, "{series}: bounds not increasing at {le}");
            assert!(*count >= last_count, "{series}: buckets not cumulative at {le}");
            (last_bound, last_count) = (bound, *count);
        }
        assert_eq!(list.last().unwrap().0, "+Inf", "{series}: last bucket is not +Inf");
        let count_series = series.replacen("_seconds{", "_seconds_count{", 1);
        assert_eq!(samples.get(&count_series), Some(&last_count), "{series}: _count differs from +Inf bucket");
    }
    samples
}

async fn scrape(app: &qudag_tests::TestApp) -> (String, BTreeMap<String, f64>) {
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = resp.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn mcp_traffic_moves_the_right_series_by_the_right_amounts() {
    let issuer = issuer().await;
    let dir = qudag_test_support::temp::temp_dir("metrics");
    let audit_file = dir.path().join("audit.jsonl");
    let app = server(&issuer, |s| {
        s.rate_limit.requests_per_minute = 1;
        s.rate_limit.burst = Some(3);
        s.audit.sink = AuditSinkKind::File;
        s.audit.file = Some(audit_file);
    })
    .await;
    let developer = issuer.token("qudag-developer", None, None).await.unwrap();
    let readonly = issuer.token("qudag-readonly", None, None).await.unwrap();
    let admin = issuer.token("qudag-admin", None, None).await.unwrap();
    let allowed = probe(Permission::QuantumExecute);

    let (_, before) = scrape(&app).await;

    // One allowed call, one denied call, two refused credentials.
    assert_eq!(call(&app, &developer, &allowed).await.status, 200);
    assert_eq!(call(&app, &readonly, &allowed).await.status, 403);
    let missing = call_with(&app, None, None, &allowed).await;
    assert_eq!((missing.status, reason(&missing)), (401, "missing_token"));
    let garbage = call(&app, "not-a-jwt", &allowed).await;
    assert_eq!(garbage.status, 401);
    let garbage_reason = reason(&garbage).to_owned();
    // The developer's burst of 3 has one call spent: two more pass, the next is refused.
    assert_eq!(call(&app, &developer, &allowed).await.status, 200);
    assert_eq!(call(&app, &developer, &allowed).await.status, 200);
    assert_eq!(call(&app, &developer, &allowed).await.status, 429);
    // A stateful session with an open GET stream.
    let init = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&admin)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let stream = app
        .client
        .get(app.url("/mcp"))
        .bearer_auth(&admin)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    let (text, after) = scrape(&app).await;
    let tool =
        |outcome: &str| format!("qudag_mcp_tool_calls_total{{gen_ai_tool_name=\"{allowed}\",outcome=\"{outcome}\"}}");
    assert_eq!(delta(&before, &after, &tool("success")), 3.0, "{text}");
    assert_eq!(delta(&before, &after, &tool("denied")), 1.0, "{text}");
    assert_eq!(delta(&before, &after, &tool("rate_limited")), 1.0, "{text}");
    assert_eq!(delta(&before, &after, "qudag_auth_failures_total{reason=\"missing_token\"}"), 1.0, "{text}");
    let garbage_series = format!("qudag_auth_failures_total{{reason=\"{garbage_reason}\"}}");
    assert_eq!(delta(&before, &after, &garbage_series), 1.0, "{text}");
    assert_eq!(delta(&before, &after, "qudag_rate_limit_rejections_total{quota=\"rate\"}"), 1.0, "{text}");
    // Every call reached the engine except the refused credentials and the rate-limited one.
    let op = format!(
        "mcp_server_operation_duration_seconds_count{{gen_ai_tool_name=\"{allowed}\",mcp_method_name=\"tools/call\"}}"
    );
    assert_eq!(delta(&before, &after, &op), 4.0, "{text}");
    let http = |status: u16| {
        format!(
            "http_server_request_duration_seconds_count{{http_request_method=\"POST\",http_response_status_code=\"{status}\",http_route=\"/mcp\"}}"
        )
    };
    assert_eq!(delta(&before, &after, &http(200)), 4.0, "three calls and the initialize: {text}");
    assert_eq!(delta(&before, &after, &http(403)), 1.0, "{text}");
    assert_eq!(delta(&before, &after, &http(401)), 2.0, "{text}");
    assert_eq!(delta(&before, &after, &http(429)), 1.0, "{text}");
    assert_eq!(after.get("qudag_mcp_active_sessions"), Some(&1.0), "{text}");
    assert_eq!(after.get("qudag_mcp_sse_streams"), Some(&1.0), "{text}");
    assert!(after.contains_key("qudag_audit_queue_depth"), "{text}");
    // The previous scrape is counted under its own route; unknown paths collapse.
    assert!(
        delta(
            &before,
            &after,
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"/metrics\"}"
        ) >= 1.0
    );
    app.get("/no/such/path").await;
    let (_, now) = scrape(&app).await;
    let other = "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_response_status_code=\"404\",http_route=\"other\"}";
    assert_eq!(now.get(other), Some(&1.0));
    assert!(now.keys().all(|k| !k.contains(&session)), "no session ids in labels");
    // Ending the session ends its stream, and the gauge follows.
    let deleted = app
        .client
        .delete(app.url("/mcp"))
        .bearer_auth(&admin)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), stream.bytes()).await;
    assert!(body.is_ok(), "the stream ends with its session");
    let mut closed = false;
    for _ in 0..50 {
        let (_, now) = scrape(&app).await;
        if now.get("qudag_mcp_sse_streams") == Some(&0.0) && now.get("qudag_mcp_active_sessions") == Some(&0.0) {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(closed, "the session and stream gauges drop when the session ends");
    app.stop().await.unwrap();
    drop(dir);
}
