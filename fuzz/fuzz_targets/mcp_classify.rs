//! `/mcp` POST classification: which era a message belongs to, its id, its decoding into a
//! client message, and the 2026-07-28 request-metadata checks (`Mcp-Method`, `Mcp-Name`,
//! `Mcp-Param-*`) — with the media-type checks on the headers.
//!
//! Input: `Name: value` header lines, an empty line, then the body.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qudag_adapter_http::mcp::{classify, headers};
use qudag_application::mcp::Catalog;
use qudag_fuzz::{header_map, split_headers};

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        qudag_application::mcp::fixtures::conformance::catalog(rmcp::model::Implementation::new("fuzz", "0"))
    })
}

fuzz_target!(|data: &[u8]| {
    let (lines, body) = split_headers(data);
    let map = header_map(&lines);
    let _ = headers::is_json(&map);
    let _ = headers::accepts(&map, "application/json");
    let _ = headers::accepts(&map, "text/event-stream");
    for name in [headers::SESSION_ID, headers::PROTOCOL_VERSION, headers::METHOD, headers::NAME] {
        if let Some(raw) = headers::text(&map, name) {
            let _ = headers::decode_value(raw);
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let messages = match &value {
        serde_json::Value::Array(batch) => batch.clone(),
        single => vec![single.clone()],
    };
    for message in messages {
        let _ = classify::is_stateless(&map, &message);
        let _ = classify::request_id_of(&message);
        let _ = classify::check_stateless(&map, &message, catalog());
        // The fast path must decode exactly as rmcp's own decoder does.
        let ours = classify::client_message(message.clone()).map(|m| serde_json::to_value(m).ok());
        let rmcp =
            serde_json::from_value::<rmcp::model::ClientJsonRpcMessage>(message).map(|m| serde_json::to_value(m).ok());
        assert_eq!(ours.is_ok(), rmcp.is_ok(), "decoders disagree on whether a message decodes");
        if let (Ok(a), Ok(b)) = (ours, rmcp) {
            assert_eq!(a, b, "decoders disagree on a message");
        }
    }
});
