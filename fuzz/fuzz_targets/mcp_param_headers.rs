//! `Mcp-Name` / `Mcp-Param-*` request-metadata headers and their `=?base64?…?=` form
//! (2026-07-28 basic/transports/streamable-http, "Request Metadata Headers").
//!
//! Input: the first line is a header value as sent; the rest is the JSON value of the
//! tool argument it should mirror. The value is decoded on its own, then checked against a
//! stateless `tools/call` of the fixture tool whose `region` argument has an
//! `x-mcp-header`, both as `Mcp-Param-Region` and as `Mcp-Name` of a call to a tool of that
//! name.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use qudag_adapter_http::mcp::{classify, headers};
use qudag_application::mcp::Catalog;
use qudag_fuzz::{STATELESS_VERSION, header_map, metadata_value};
use serde_json::{Value, json};

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        qudag_application::mcp::fixtures::conformance::catalog(rmcp::model::Implementation::new("fuzz", "0"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (raw, argument) = text.split_once('\n').unwrap_or((text, "\"eu-west\""));
    let decoded = headers::decode_value(raw);
    if let Some(encoded) = raw.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        // A sentinel value decodes exactly when it is strict base64 of UTF-8.
        let strict =
            base64::engine::general_purpose::STANDARD.decode(encoded).ok().and_then(|b| String::from_utf8(b).ok());
        assert_eq!(decoded, strict);
    } else {
        assert_eq!(decoded.as_deref(), Some(raw), "a plain value is taken as it is");
    }
    // Whatever a client encodes decodes back to it.
    assert_eq!(headers::decode_value(&metadata_value(raw)).as_deref(), Some(raw));

    let argument: Value = serde_json::from_str(argument).unwrap_or_else(|_| Value::String(argument.to_owned()));
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let call = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "test_header_param", "arguments": {"region": argument}, "_meta": meta}
    });
    let sent = [
        ("mcp-protocol-version".to_owned(), STATELESS_VERSION.to_owned()),
        ("mcp-method".to_owned(), "tools/call".to_owned()),
        ("mcp-name".to_owned(), "test_header_param".to_owned()),
        ("mcp-param-region".to_owned(), raw.to_owned()),
    ];
    let checked = classify::check_stateless(&header_map(&sent), &call, catalog());
    if let (Value::String(region), Some(decoded)) = (&argument, &decoded) {
        // Sent as a header value HTTP carries as text, a string argument matches exactly
        // its decoded value.
        if poem::http::HeaderValue::from_str(raw).is_ok_and(|v| v.to_str().is_ok()) {
            assert_eq!(checked.is_ok(), region == decoded, "{checked:?}");
        }
    }

    // The same value as `Mcp-Name` of a call to a tool named by the argument.
    if let Value::String(name) = &argument {
        let call = json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": name, "arguments": {}, "_meta": meta}
        });
        let sent = [
            ("mcp-protocol-version".to_owned(), STATELESS_VERSION.to_owned()),
            ("mcp-method".to_owned(), "tools/call".to_owned()),
            ("mcp-name".to_owned(), raw.to_owned()),
        ];
        let _ = classify::check_stateless(&header_map(&sent), &call, catalog());
    }
});
