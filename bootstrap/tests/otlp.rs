//! Trace export over OTLP/gRPC, end to end: the binary built with the `otlp` feature and
//! configured by the standard `OTEL_*` variables sends its spans to a collector (a gRPC
//! OTLP receiver in this test), continuing the trace a caller names in the `traceparent`
//! header and, for the MCP operation's span, in `_meta.traceparent`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;

use qudag_test_support::process::Server;
use qudag_test_support::temp::temp_dir;
#[path = "support/collector.rs"]
mod collector;

/// The binary with neither `QUDAG_*` nor `OTEL_*` variables from the developer's shell.
fn command() -> std::process::Command {
    let mut cmd = qudag_test_support::qudag_mcp_command!();
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.as_str()),
        _ => None,
    })
}

/// A stateless `tools/call` with `id`, the optional `traceparent` header and the optional
/// `_meta.traceparent`.
async fn call(port: u16, id: u64, header: Option<&str>, meta: Option<&str>) {
    let mut meta_object = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    if let Some(parent) = meta {
        meta_object["traceparent"] = parent.into();
    }
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "analyze_complexity", "arguments": {"circuit": {"qubits": 1, "gates": [{"type": "H", "target": 0}]}},
        "_meta": meta_object}});
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "analyze_complexity")
        .json(&body);
    if let Some(parent) = header {
        request = request.header("traceparent", parent);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("\"result\""), "the call succeeds: {text}");
}

const HEADER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HEADER_SPAN: &str = "00f067aa0ba902b7";
const META_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const META_SPAN: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_continuing_the_callers_trace() {
    qudag_mcp::install_crypto_provider();
    let (port, mut exports) = collector::start().await;
    let mut cmd = command();
    let mut server = Server::start(
        cmd.arg("serve")
            .env("QUDAG_REQUIRE_AUTH", "false")
            .env("QUDAG_NODE_ID", "otlp-node-1")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}"))
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100"),
    );
    let server_port = server.port();
    // 1: the header names the parent of the whole request.
    call(server_port, 1, Some(&format!("00-{HEADER_TRACE}-{HEADER_SPAN}-01")), None).await;
    // 2: `_meta` names the parent of the MCP operation; the header still that of the request.
    let other = "00-11111111111111111111111111111111-2222222222222222-01";
    call(server_port, 2, Some(other), Some(&format!("00-{META_TRACE}-{META_SPAN}-01"))).await;
    // 3: nothing to continue, and 4: a malformed traceparent, which is ignored.
    call(server_port, 3, None, None).await;
    call(server_port, 4, Some("00-not-a-trace-01"), Some("garbage")).await;
    // The last spans are flushed on SIGTERM.
    assert_eq!(server.terminate(Duration::from_secs(10)).await.code(), Some(0));

    let mut spans: Vec<Span> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let operations = |spans: &[Span]| spans.iter().filter(|s| s.name.starts_with("tools/call")).count();
    while operations(&spans) < 4 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(export)) = tokio::time::timeout(left, exports.recv()).await else {
            panic!("the collector received {} of 4 tools/call spans: {spans:#?}", operations(&spans));
        };
        for resource_spans in export.resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            assert_eq!(attribute(&resource.attributes, "service.name"), Some("qudag-mcp"));
            assert_eq!(attribute(&resource.attributes, "service.instance.id"), Some("otlp-node-1"));
            spans.extend(resource_spans.scope_spans.into_iter().flat_map(|s| s.spans));
        }
    }

    let operation = |id: &str| {
        spans
            .iter()
            .find(|s| {
                s.name == "tools/call analyze_complexity" && attribute(&s.attributes, "jsonrpc.request.id") == Some(id)
            })
            .unwrap_or_else(|| panic!("no span for call {id}: {spans:#?}"))
    };
    let request_of = |operation: &Span| {
        spans
            .iter()
            .find(|s| {
                attribute(&s.attributes, "request_id") == attribute(&operation.attributes, "request_id")
                    && s.name != operation.name
            })
            .unwrap_or_else(|| panic!("no request span for {operation:#?}"))
    };
    let hex = hex::encode;

    // 1: request and operation are in the caller's trace, the request under the caller's span.
    let op1 = operation("1");
    let req1 = request_of(op1);
    assert_eq!((hex(&req1.trace_id), hex(&req1.parent_span_id)), (HEADER_TRACE.to_owned(), HEADER_SPAN.to_owned()));
    assert_eq!((hex(&op1.trace_id), &op1.parent_span_id), (HEADER_TRACE.to_owned(), &req1.span_id));
    assert_eq!(attribute(&op1.attributes, "mcp.method.name"), Some("tools/call"));
    assert_eq!(attribute(&op1.attributes, "gen_ai.tool.name"), Some("analyze_complexity"));
    assert_eq!(attribute(&req1.attributes, "http.request.method"), Some("POST"));

    // 2: `_meta` wins for the operation.
    let op2 = operation("2");
    assert_eq!((hex(&op2.trace_id), hex(&op2.parent_span_id)), (META_TRACE.to_owned(), META_SPAN.to_owned()));
    assert_eq!(hex(&request_of(op2).trace_id), "11111111111111111111111111111111");

    // 3 and 4: a new trace, the operation under the request.
    for id in ["3", "4"] {
        let op = operation(id);
        let req = request_of(op);
        assert!(req.parent_span_id.is_empty(), "call {id} starts a trace: {req:#?}");
        assert_eq!((&op.trace_id, &op.parent_span_id), (&req.trace_id, &req.span_id), "call {id}");
        assert_ne!(hex(&op.trace_id), HEADER_TRACE);
    }
}

/// A collector serving TLS with a certificate from a private CA: the server trusts it when
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` names the CA, and exports nothing (while serving on)
/// when it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_collector_over_tls_that_the_configured_ca_vouches_for() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    qudag_mcp::install_crypto_provider();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let dir = temp_dir("otlp");
    let ca_file = dir.path().join("collector-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(leaf.pem().as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let (port, mut exports) = collector::start_tls(std::sync::Arc::new(config)).await;

    for trusted in [true, false] {
        let mut cmd = command();
        cmd.arg("serve")
            .env("QUDAG_REQUIRE_AUTH", "false")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("https://localhost:{port}"))
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        if trusted {
            cmd.env("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file);
        }
        let mut server = Server::start(&mut cmd);
        let server_port = server.port();
        call(server_port, 1, None, None).await;
        assert_eq!(server.terminate(Duration::from_secs(15)).await.code(), Some(0), "trusted: {trusted}");
        let received = tokio::time::timeout(Duration::from_secs(if trusted { 10 } else { 1 }), exports.recv()).await;
        match received {
            Ok(Some(export)) => {
                assert!(trusted, "spans were sent to a collector whose CA is not trusted");
                let names: Vec<String> = export
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                    .map(|s| s.name.clone())
                    .collect();
                assert!(names.iter().any(|n| n == "tools/call analyze_complexity"), "{names:?}");
                while exports.try_recv().is_ok() {}
            }
            _ => assert!(!trusted, "no spans over TLS with the CA trusted"),
        }
    }
}
