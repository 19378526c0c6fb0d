//! The spans of an MCP request carry the request id and the attributes the OpenTelemetry
//! semantic conventions for HTTP and MCP name. A small subscriber records every span's
//! fields; the server runs on the test's (current-thread) runtime, so it sees the server's
//! spans too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use qudag_domain::rbac::Permission;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use super::{issuer, probe, server};

type Fields = BTreeMap<String, String>;

/// Every span opened: its name and fields (as recorded so far), by span id.
#[derive(Default, Clone)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, (String, Fields)>>>,
    metadata: Arc<Mutex<BTreeMap<u64, &'static Metadata<'static>>>>,
    next: Arc<AtomicU64>,
}

thread_local! {
    /// The spans entered on this thread, innermost last.
    static STACK: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The process-wide capture. It is the global subscriber (tests run on several threads, and
/// a thread-scoped subscriber can miss spans whose callsites another thread registered
/// first); with `TEST_LOG` set the logs own the global slot, and it is scoped to the test's
/// thread instead.
fn capture() -> (Capture, Option<tracing::subscriber::DefaultGuard>) {
    static GLOBAL: std::sync::OnceLock<Option<Capture>> = std::sync::OnceLock::new();
    let global = GLOBAL.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            return None;
        }
        let capture = Capture::default();
        tracing::subscriber::set_global_default(capture.clone()).ok().map(|()| capture)
    });
    match global {
        Some(capture) => (capture.clone(), None),
        None => {
            let capture = Capture::default();
            let guard = tracing::subscriber::set_default(capture.clone());
            (capture, Some(guard))
        }
    }
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = Fields::new();
        span.record(&mut Visitor(&mut fields));
        self.spans.lock().unwrap().insert(id, (span.metadata().name().to_owned(), fields));
        self.metadata.lock().unwrap().insert(id, span.metadata());
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some((_, fields)) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Visitor(fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, span: &Id) {
        STACK.with(|stack| stack.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            if let Some(at) = stack.iter().rposition(|s| *s == span.into_u64()) {
                stack.remove(at);
            }
        });
    }

    fn current_span(&self) -> tracing_core::span::Current {
        let top = STACK.with(|stack| stack.borrow().last().copied());
        match top.and_then(|id| self.metadata.lock().unwrap().get(&id).map(|m| (id, *m))) {
            Some((id, metadata)) => tracing_core::span::Current::new(Id::from_u64(id), metadata),
            None => tracing_core::span::Current::none(),
        }
    }
}

impl Capture {
    /// The fields of spans named `name` whose `request_id` is `request_id`.
    fn find(&self, name: &str, request_id: &str) -> Vec<Fields> {
        let spans = self.spans.lock().unwrap();
        spans
            .values()
            .filter(|(n, f)| n == name && f.get("request_id").map(String::as_str) == Some(request_id))
            .map(|(_, f)| f.clone())
            .collect()
    }
}

#[tokio::test]
async fn http_and_mcp_spans_carry_semantic_convention_attributes() {
    let (capture, _guard) = capture();
    let issuer = issuer().await;
    let app = server(&issuer, |_| {}).await;
    let developer = issuer.token("qudag-developer", None, None).await.unwrap();
    let readonly = issuer.token("qudag-readonly", None, None).await.unwrap();
    let tool = probe(Permission::QuantumExecute);

    let ok = app.tool_call(41, &tool, json!({})).bearer_auth(&developer).header("x-request-id", "span-ok").send();
    assert_eq!(ok.await.unwrap().status(), 200);
    let denied =
        app.tool_call(42, &tool, json!({})).bearer_auth(&readonly).header("x-request-id", "span-denied").send();
    assert_eq!(denied.await.unwrap().status(), 403);

    let http = capture.find("http.request", "span-ok");
    assert_eq!(http.len(), 1, "{http:?}");
    let http = &http[0];
    assert_eq!(http["http.request.method"], "POST");
    assert_eq!(http["url.path"], "/mcp");
    assert_eq!(http["http.route"], "/mcp");
    assert_eq!(http["http.response.status_code"], "200");
    assert_eq!(http["client.address"], "127.0.0.1");
    assert_eq!(http["otel.kind"], "server");

    let all: Vec<_> = capture.spans.lock().unwrap().values().map(|(n, f)| format!("{n} {f:?}")).collect();
    let mcp = capture.find("mcp.server", "span-ok");
    assert_eq!(mcp.len(), 1, "{all:#?}");
    let mcp = &mcp[0];
    assert_eq!(mcp["mcp.method.name"], "tools/call");
    assert_eq!(mcp["otel.name"], format!("tools/call {tool}"));
    assert_eq!(mcp["gen_ai.tool.name"], tool);
    assert_eq!(mcp["gen_ai.operation.name"], "execute_tool");
    assert_eq!(mcp["mcp.protocol.version"], qudag_tests::STATELESS);
    assert_eq!(mcp["jsonrpc.request.id"], "41");
    assert!(!mcp.contains_key("error.type"), "{mcp:?}");
    assert!(!mcp.contains_key("mcp.session.id"), "stateless requests have no session");

    let refused = capture.find("mcp.server", "span-denied");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["error.type"], "forbidden");
    assert_eq!(refused[0]["jsonrpc.request.id"], "42");
    assert_eq!(capture.find("http.request", "span-denied")[0]["http.response.status_code"], "403");
    app.stop().await.unwrap();
}
