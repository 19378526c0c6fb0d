//! `Last-Event-ID`: parsed on its own, then sent on a session's GET to resume a stream.
//!
//! One session is opened once, with a response stream whose events carry ids (a tool
//! reporting progress), so a well-formed id can name a real stream and position.
//! Input: the header value.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use poem::http::Method;
use qudag_application::ports::EventId;
use qudag_fuzz::{STATEFUL_VERSION, Server, session_headers};

/// The open session, replaced when the server has forgotten it.
static SESSION: Mutex<Option<String>> = Mutex::new(None);

fn open_session(server: &Server) -> String {
    let session = server.initialize().expect("initialize opens a session");
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"p"}}}"#;
    server.post(&session_headers(&session), call.as_bytes());
    session
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(id) = EventId::parse(text) {
        assert_eq!(EventId::parse(&id.to_string()), Some(id), "an id prints as it parses");
    }
    let server = Server::fixtures();
    let mut guard = SESSION.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let session = guard.get_or_insert_with(|| open_session(server)).clone();
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", STATEFUL_VERSION),
        ("accept", "text/event-stream"),
        ("host", "127.0.0.1"),
        ("last-event-id", text),
    ];
    let answer = server.send(Method::GET, "/mcp", &headers, Vec::new(), false);
    if answer.status.as_u16() == 404 {
        *guard = None;
    }
    assert!(!answer.status.is_server_error() || answer.status.as_u16() == 503, "{answer:?}");
});
