//! JSON-RPC into the engine: messages POSTed to `/mcp` of the real router over the
//! in-memory adapters, reaching the engine's dispatch, the sessions and the tools.
//!
//! Input: a first line naming the mode, then one message (or batch) per line.
//! - `stateful …`: in a session opened by `initialize` (deleted at the end);
//! - `stateless …`: 2026-07-28 requests, with the `_meta` and the request-metadata headers
//!   a client derives from each message added, so that they pass the transport's checks;
//! - anything else: each line POSTed as it is, without a session.
//!
//! With `fixtures` in the first line the conformance fixtures are served instead of the
//! product's tools.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qudag_fuzz::{Server, session_headers, stateless_headers, with_stateless_meta};

/// At most this many messages per input, so one input stays fast.
const MAX_MESSAGES: usize = 8;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mode = lines.next().unwrap_or_default();
    let server = if mode.contains("fixtures") { Server::fixtures() } else { Server::product() };
    let messages = lines.filter(|l| !l.trim().is_empty()).take(MAX_MESSAGES);
    if mode.starts_with("stateful") {
        let Some(session) = server.initialize() else { panic!("initialize must open a session") };
        for line in messages {
            let answer = server.post(&session_headers(&session), line.as_bytes());
            assert!(!answer.status.is_server_error() || answer.status.as_u16() == 503, "{answer:?}");
        }
        server.delete(&session);
    } else if mode.starts_with("stateless") {
        for line in messages {
            let (body, extra) = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(message) if message.is_object() => {
                    let message = with_stateless_meta(message);
                    let extra = stateless_headers(&message);
                    (message.to_string(), extra)
                }
                _ => (line.to_owned(), Vec::new()),
            };
            let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let answer = server.post(&extra, body.as_bytes());
            assert!(!answer.status.is_server_error() || answer.status.as_u16() == 503, "{answer:?}");
        }
    } else {
        for line in messages {
            let answer = server.post(&[], line.as_bytes());
            assert!(!answer.status.is_server_error() || answer.status.as_u16() == 503, "{answer:?}");
            // A stray initialize opens a session: end it, so sessions do not pile up.
            if let Some(session) = answer.header("mcp-session-id") {
                server.delete(&session.to_owned());
            }
        }
    }
});
