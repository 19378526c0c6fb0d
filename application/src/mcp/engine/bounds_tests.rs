//! What a caller can make the engine hold, and show it: subscriptions, session contents,
//! tool calls and requests to the client per caller, audit records, lists by permission,
//! and answers nobody asked for.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord};
use qudag_domain::principal::PrincipalId;
use qudag_domain::rbac::{Permission, Role, Scope};
use qudag_domain::session::SessionTimeouts;
use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, Implementation, ReadResourceResult, Resource, ResourceTemplate, Tool,
};
use serde_json::json;

use super::*;
use crate::admission::{AuthMode, RequestContext};
use crate::limits::CallerLimits;
use crate::mcp::catalog::{PromptHandler, PromptResponse, ResourceProvider, ToolHandler, ToolResponse};
use crate::mcp::context::CallContext;
use crate::ports::{
    Credential, MockAuditSink, MockEventBus, MockTokenVerifier, SessionStore, SessionStoreError, TokenError,
};
use crate::testkit::ManualClock;

/// Sessions in a map, bounded per holder as the store contract asks.
#[derive(Default)]
struct Sessions(Mutex<HashMap<SessionId, Arc<Session>>>);

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, session: &Session, max_per_holder: usize) -> Result<(), SessionStoreError> {
        let mut map = self.0.lock().unwrap();
        if map.values().filter(|s| s.holder() == session.holder()).count() >= max_per_holder {
            return Err(SessionStoreError::HolderLimit { limit: max_per_holder });
        }
        map.insert(session.id().clone(), Arc::new(session.clone()));
        Ok(())
    }
    async fn load(&self, id: &SessionId, _: Timestamp) -> Result<Option<Arc<Session>>, SessionStoreError> {
        Ok(self.0.lock().unwrap().get(id).cloned())
    }
    async fn save(&self, session: &Session) -> Result<(), SessionStoreError> {
        self.0.lock().unwrap().insert(session.id().clone(), Arc::new(session.clone()));
        Ok(())
    }
    async fn delete(&self, id: &SessionId) -> Result<bool, SessionStoreError> {
        Ok(self.0.lock().unwrap().remove(id).is_some())
    }
    async fn count(&self, _: Timestamp) -> Result<usize, SessionStoreError> {
        Ok(self.0.lock().unwrap().len())
    }
}

/// A tool needing `permission`; `hold` makes every call wait for a permit first, and each
/// call answers with an error quoting its `text` argument.
struct Probe {
    name: &'static str,
    permission: Permission,
    hold: Option<Arc<tokio::sync::Semaphore>>,
}

#[async_trait]
impl ToolHandler for Probe {
    fn tool(&self) -> Tool {
        Tool::new(self.name, "probe", Arc::new(JsonObject::new()))
    }
    fn permission(&self) -> Permission {
        self.permission
    }
    async fn call(&self, _: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ErrorData> {
        if let Some(hold) = &self.hold {
            let _permit = hold.acquire().await.map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        }
        let text = arguments.get("text").and_then(Value::as_str).unwrap_or_default();
        Ok(ToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(format!("bad text {text:?}"))])))
    }
}

struct Note(&'static str, Permission);

#[async_trait]
impl PromptHandler for Note {
    fn prompt(&self) -> rmcp::model::Prompt {
        rmcp::model::Prompt::new(self.0, None::<String>, None)
    }
    fn permission(&self) -> Permission {
        self.1
    }
    async fn get(&self, _: &CallContext, _: JsonObject) -> Result<PromptResponse, ErrorData> {
        Ok(PromptResponse::Complete(GetPromptResult::new(vec![])))
    }
}

/// Resources `<scheme>://thing` and the template `<scheme>://items/{id}`, readable with
/// `permission`.
struct Shelf(&'static str, Permission);

#[async_trait]
impl ResourceProvider for Shelf {
    fn resources(&self) -> Vec<Resource> {
        vec![Resource::new(format!("{}://thing", self.0), "thing")]
    }
    fn templates(&self) -> Vec<ResourceTemplate> {
        vec![ResourceTemplate::new(format!("{}://items/{{id}}", self.0), "item")]
    }
    fn permission(&self) -> Permission {
        self.1
    }
    async fn read(&self, _: &CallContext, _: &str) -> Result<Option<ReadResourceResult>, ResourceError> {
        Ok(None)
    }
}

struct Harness {
    engine: McpEngine,
    admission: Arc<Admission>,
    audit: Arc<Mutex<Vec<AuditRecord>>>,
    hold: Arc<tokio::sync::Semaphore>,
}

/// An engine with tools, prompts and resources for readers (`system:read`) and for the
/// vault (`vault:read`), callers `admin` and `readonly` by token, and `limits`.
fn harness(limits: CallerLimits) -> Harness {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let audit = Arc::new(Mutex::new(Vec::new()));
    let mut sink = MockAuditSink::new();
    let seen = audit.clone();
    sink.expect_submit().returning(move |r| {
        seen.lock().unwrap().push(r);
        Ok(())
    });
    sink.expect_accepting().return_const(true);
    let mut verifier = MockTokenVerifier::new();
    verifier.expect_verify().returning(|c| {
        let role = match c.token.as_str() {
            "admin" => Role::Admin,
            "readonly" => Role::Readonly,
            _ => return Err(TokenError::Missing),
        };
        let scopes = Scope::ALL.map(|s| s.as_str().to_owned());
        Ok(Principal::new(PrincipalId::new("https://iss", c.token.clone()), [role], scopes, None))
    });
    let admission = Arc::new(Admission::new(
        AuthMode::Required(Arc::new(verifier)),
        Arc::new(crate::ports::MockRateLimiter::new()),
        None,
        Arc::new(sink),
        clock.clone(),
    ));
    let sessions = Arc::new(
        SessionService::new(Arc::new(Sessions::default()), clock, admission.clone(), SessionTimeouts::default())
            .with_per_holder(limits.sessions),
    );
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    let catalog = Catalog::builder(Implementation::new("t", "1"))
        .tool(Probe { name: "open_tool", permission: Permission::SystemRead, hold: None })
        .tool(Probe { name: "vault_tool", permission: Permission::VaultRead, hold: None })
        .tool(Probe { name: "slow_tool", permission: Permission::SystemRead, hold: Some(hold.clone()) })
        .prompt(Note("open_prompt", Permission::SystemRead))
        .prompt(Note("vault_prompt", Permission::VaultRead))
        .resources(Shelf("open", Permission::SystemRead))
        .resources(Shelf("vault", Permission::VaultRead))
        .build();
    let engine =
        McpEngine::new(Arc::new(catalog), admission.clone(), sessions, Arc::new(MockEventBus::new()), vec![7; 32])
            .unwrap()
            .with_limits(limits);
    Harness { engine, admission, audit, hold }
}

impl Harness {
    async fn caller(&self, token: &str) -> Caller {
        let ctx = RequestContext { credential: Some(Credential::bearer(token)), ..RequestContext::default() };
        self.admission.authenticate(ctx).await.unwrap()
    }

    async fn open(&self, caller: &Caller) -> Session {
        let params = serde_json::from_value(json!({
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}
        }))
        .unwrap();
        self.engine.initialize(caller, &params).await.unwrap().0
    }

    /// `method` with `params` in `session`, accepted and run.
    async fn request(
        &self,
        caller: &Caller,
        session: &Session,
        method: &str,
        params: Value,
    ) -> Result<ServerResult, EngineError> {
        let message =
            serde_json::from_value(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})).unwrap();
        match self.engine.accept(caller, Route::Session(session.id().as_str()), message).await? {
            Accepted::Call(call) => self.engine.run(*call, &RequestId::Number(1), None).await,
            Accepted::Absorbed => panic!("a request is a call"),
        }
    }

    /// The names a list result shows.
    async fn names(&self, caller: &Caller, session: &Session, method: &str) -> Vec<String> {
        let result = self.request(caller, session, method, json!({})).await.unwrap();
        let value = serde_json::to_value(wire::shape_result(result, true)).unwrap();
        assert_eq!(value["cacheScope"], "private", "{method}: a list shaped per caller is no one else's");
        let items = ["tools", "prompts", "resources", "resourceTemplates"]
            .iter()
            .find_map(|k| value.get(*k).and_then(Value::as_array))
            .unwrap();
        items.iter().map(|i| i.get("uri").or(i.get("uriTemplate")).unwrap_or(&i["name"]).to_string()).collect()
    }
}

#[tokio::test]
async fn subscriptions_need_a_served_resource_the_caller_may_read_within_bounds() {
    let limits = CallerLimits { subscriptions_per_session: 3, subscription_uri_bytes: 64, ..CallerLimits::default() };
    let h = harness(limits);
    let reader = h.caller("readonly").await;
    let session = h.open(&reader).await;
    let subscribe = |uri: String| {
        let (h, reader, session) = (&h, &reader, &session);
        async move { h.request(reader, session, "resources/subscribe", json!({ "uri": uri })).await }
    };
    // Nothing the server serves.
    match subscribe("nowhere://x".into()).await {
        Err(EngineError::Rpc(e)) => assert_eq!(e.code, rmcp::model::ErrorCode::RESOURCE_NOT_FOUND),
        other => panic!("expected not found, got {other:?}"),
    }
    // Too long to be stored, whatever it names.
    match subscribe(format!("open://items/{}", "x".repeat(1_000_000))).await {
        Err(EngineError::Rpc(e)) => {
            assert!(e.message.contains("QUDAG_MAX_SUBSCRIPTION_URI_BYTES"), "{}", e.message);
            assert!(e.message.len() < 200, "the error does not quote the URI");
        }
        other => panic!("expected invalid params, got {other:?}"),
    }
    // Served, but not readable by this caller: refused and audited as read would be.
    match subscribe("vault://thing".into()).await {
        Err(EngineError::Refused(Refusal::Forbidden(d))) => assert_eq!(d.permission, Permission::VaultRead),
        other => panic!("expected forbidden, got {other:?}"),
    }
    assert!(h.audit.lock().unwrap().iter().any(|r| r.action == AuditAction::ToolDenied));
    // Readable: up to the bound, again the same one for free, then refused naming the limit.
    for uri in ["open://thing", "open://items/1", "open://items/2", "open://items/2"] {
        subscribe(uri.into()).await.unwrap();
    }
    match subscribe("open://items/3".into()).await {
        Err(EngineError::Limit(limit)) => {
            assert_eq!((limit.max, limit.setting), (3, "QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION"));
        }
        other => panic!("expected the subscription limit, got {other:?}"),
    }
    h.request(&reader, &session, "resources/unsubscribe", json!({"uri": "open://thing"})).await.unwrap();
    subscribe("open://items/3".into()).await.unwrap();
}

#[tokio::test]
async fn a_session_keeps_only_what_the_server_uses_of_initialize() {
    let h = harness(CallerLimits::default());
    let caller = h.caller("admin").await;
    let huge = "n".repeat(1_000_000);
    let params = serde_json::from_value(json!({
        "protocolVersion": "2025-11-25",
        "capabilities": {
            "experimental": {"x": {"junk": huge.clone()}},
            "extensions": {"x": {"junk": huge.clone()}},
            "sampling": {"tools": {"junk": huge.clone()}},
            "elicitation": {"form": {}},
            "roots": {"listChanged": true},
        },
        "clientInfo": {"name": huge.clone(), "version": huge.clone(), "title": huge.clone()},
    }))
    .unwrap();
    let (session, _, _) = h.engine.initialize(&caller, &params).await.unwrap();
    let stored = serde_json::to_string(&session).unwrap();
    assert!(stored.len() < 2_000, "the session holds {} bytes", stored.len());
    assert!(session.client().name.starts_with("nnnn") && session.client().name.contains('…'));
    let caps: ClientCapabilities = serde_json::from_value(session.client_capabilities().clone()).unwrap();
    assert!(caps.sampling.is_some() && caps.elicitation.is_some() && caps.roots.is_some(), "{caps:?}");
    assert!(caps.experimental.is_none() && caps.extensions.is_none());
    let created = h.audit.lock().unwrap().iter().find(|r| r.action == AuditAction::SessionCreated).cloned().unwrap();
    assert!(serde_json::to_string(&created).unwrap().len() < 1_000);
}

#[tokio::test]
async fn sessions_are_bounded_per_caller() {
    let h = harness(CallerLimits { sessions: 2, ..CallerLimits::default() });
    let reader = h.caller("readonly").await;
    h.open(&reader).await;
    h.open(&reader).await;
    let params = serde_json::from_value(json!({
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}
    }))
    .unwrap();
    match h.engine.initialize(&reader, &params).await {
        Err(EngineError::Limit(limit)) => assert_eq!(limit.setting, "QUDAG_MAX_SESSIONS_PER_PRINCIPAL"),
        other => panic!("expected the session limit, got {:?}", other.map(|_| ())),
    }
    let admin = h.caller("admin").await;
    h.open(&admin).await;
}

#[tokio::test]
async fn a_huge_tool_argument_reaches_the_audit_trail_only_as_a_prefix_and_digest() {
    let h = harness(CallerLimits::default());
    let caller = h.caller("admin").await;
    let session = h.open(&caller).await;
    let huge = "a".repeat(2_000_000);
    let name = "t".repeat(100_000);
    let result =
        h.request(&caller, &session, "tools/call", json!({"name": "open_tool", "arguments": {"text": huge}})).await;
    assert!(matches!(result, Ok(ServerResult::CallToolResult(_))));
    let unknown = h.request(&caller, &session, "tools/call", json!({"name": name, "arguments": {}})).await;
    match unknown {
        Err(EngineError::Rpc(e)) => assert!(e.message.len() < 200, "{} bytes", e.message.len()),
        other => panic!("expected unknown tool, got {other:?}"),
    }
    let audit = h.audit.lock().unwrap();
    let called = audit.iter().find(|r| r.action == AuditAction::ToolCalled).unwrap();
    let stored = serde_json::to_string(called).unwrap();
    assert!(stored.len() < 2_000, "tool.called is {} bytes", stored.len());
    assert!(called.details["error"].as_str().unwrap().starts_with("bad text \"aaaa"));
}

#[tokio::test]
async fn lists_show_a_caller_only_what_it_may_use() {
    let h = harness(CallerLimits::default());
    let (admin, reader) = (h.caller("admin").await, h.caller("readonly").await);
    let (admin_session, reader_session) = (h.open(&admin).await, h.open(&reader).await);
    for (method, open, vault) in [
        ("tools/list", "\"open_tool\"", "\"vault_tool\""),
        ("prompts/list", "\"open_prompt\"", "\"vault_prompt\""),
        ("resources/list", "\"open://thing\"", "\"vault://thing\""),
        ("resources/templates/list", "\"open://items/{id}\"", "\"vault://items/{id}\""),
    ] {
        let all = h.names(&admin, &admin_session, method).await;
        assert!(all.iter().any(|n| n == open) && all.iter().any(|n| n == vault), "{method}: {all:?}");
        let mine = h.names(&reader, &reader_session, method).await;
        assert!(mine.iter().any(|n| n == open), "{method}: {mine:?}");
        assert!(!mine.iter().any(|n| n == vault), "{method}: a reader is not offered {vault}: {mine:?}");
    }
}

#[tokio::test]
async fn tool_calls_running_at_once_are_bounded_per_caller() {
    let h = Arc::new(harness(CallerLimits { tool_calls: 2, ..CallerLimits::default() }));
    let caller = h.caller("admin").await;
    let session = h.open(&caller).await;
    let slow = || {
        let (h, caller, session) = (h.clone(), caller.clone(), session.clone());
        tokio::spawn(async move {
            h.request(&caller, &session, "tools/call", json!({"name": "slow_tool", "arguments": {}})).await
        })
    };
    let running = [slow(), slow()];
    while h.engine.callers_running_tools() == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    match h.request(&caller, &session, "tools/call", json!({"name": "open_tool", "arguments": {}})).await {
        Err(EngineError::Limit(limit)) => {
            assert_eq!((limit.max, limit.setting), (2, "QUDAG_MAX_TOOL_CALLS_PER_PRINCIPAL"))
        }
        other => panic!("expected the tool-call limit, got {other:?}"),
    }
    // Another caller is not held back.
    let other = h.caller("readonly").await;
    let other_session = h.open(&other).await;
    h.request(&other, &other_session, "tools/call", json!({"name": "open_tool", "arguments": {}})).await.unwrap();
    h.hold.add_permits(2);
    for call in running {
        call.await.unwrap().unwrap();
    }
    assert_eq!(h.engine.callers_running_tools(), 0, "no entry outlives the calls");
    h.request(&caller, &session, "tools/call", json!({"name": "open_tool", "arguments": {}})).await.unwrap();
}

#[tokio::test]
async fn an_answer_nobody_asked_for_is_refused_and_never_published() {
    // The mock bus has no expectations: any publish fails the test.
    let h = harness(CallerLimits::default());
    let caller = h.caller("admin").await;
    let session = h.open(&caller).await;
    let forged = format!("qudag-{:08x}-7-0123456789abcdef", 1);
    for id in [json!(5), json!("anything"), json!(forged), json!("qudag-1-2"), json!("x".repeat(100_000))] {
        let message = serde_json::from_value(json!({"jsonrpc": "2.0", "id": id, "result": {}})).unwrap();
        match h.engine.accept(&caller, Route::Session(session.id().as_str()), message).await {
            Err(EngineError::Rpc(e)) => {
                assert!(e.message.contains("no request of this session waits"), "{}", e.message);
                assert!(e.message.len() < 200);
            }
            other => panic!("expected a refusal for {id}, got {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test]
async fn requests_to_the_client_are_bounded_per_caller_and_forgotten_when_dropped() {
    let pending = Arc::new(PendingRequests::new(2, b"secret"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cx = Arc::new({
        let mut cx = CallContext::for_tests(Principal::anonymous([Role::Admin]));
        cx.stateless = false;
        cx.outbox = Some(tx);
        cx.peer = Some(crate::mcp::context::Peer {
            session: "s1".into(),
            holder: crate::limits::Holder::of_raw(1),
            pending: pending.clone(),
        });
        cx
    });
    let ask = || {
        let cx = cx.clone();
        tokio::spawn(async move {
            cx.request_client(rmcp::model::ServerRequest::ListRootsRequest(Default::default())).await
        })
    };
    let waiting = [ask(), ask()];
    let mut ids = Vec::new();
    for _ in 0..2 {
        let sent = serde_json::to_value(rx.recv().await.unwrap()).unwrap();
        ids.push(serde_json::from_value::<NumberOrString>(sent["id"].clone()).unwrap());
    }
    assert_eq!(pending.counts(), (2, 1));
    let refused = cx.request_client(rmcp::model::ServerRequest::ListRootsRequest(Default::default())).await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.code.0, -31002);
    assert!(refused.message.contains("QUDAG_MAX_PENDING_REQUESTS_PER_PRINCIPAL"), "{}", refused.message);
    // Ids are ours only in their session.
    assert_eq!(pending.origin("s1", &ids[0]), crate::mcp::context::AnswerOrigin::Waiting);
    assert_eq!(pending.origin("s2", &ids[0]), crate::mcp::context::AnswerOrigin::Unknown);
    // A handler cancelled while it waits leaves nothing behind.
    for task in waiting {
        task.abort();
        let _ = task.await;
    }
    assert_eq!(pending.counts(), (0, 0));
    assert_eq!(pending.origin("s1", &ids[0]), crate::mcp::context::AnswerOrigin::Gone);
}
