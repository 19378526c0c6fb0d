//! What a resource provider's failure becomes on the way out of the engine.

use std::sync::Mutex;

use async_trait::async_trait;
use qudag_domain::Timestamp;
use qudag_domain::rbac::Role;
use qudag_domain::session::SessionTimeouts;
use rmcp::model::{ErrorCode, Implementation, ReadResourceResult, Resource};
use serde_json::json;

use super::*;
use crate::admission::{AuthMode, RequestContext};
use crate::mcp::catalog::ResourceProvider;
use crate::mcp::context::CallContext;
use crate::ports::metrics::MockMetrics;
use crate::ports::{MockAuditSink, MockEventBus, MockRateLimiter, MockSessionStore};
use crate::testkit::ManualClock;
use crate::usecases::Unavailable;

const DOWN: &str = "test://down";
const BAD: &str = "test://bad";

/// Resources read from a vault store that is down (`test://down`), or asked for in a way the
/// provider refuses (`test://bad`).
struct Failing;

#[async_trait]
impl ResourceProvider for Failing {
    fn resources(&self) -> Vec<Resource> {
        vec![Resource::new(DOWN, "down"), Resource::new(BAD, "bad")]
    }

    async fn read(&self, _cx: &CallContext, uri: &str) -> Result<Option<ReadResourceResult>, ResourceError> {
        match uri {
            DOWN => Err(Unavailable::new("vault_store", "connection refused").into()),
            BAD => Err(ErrorData::invalid_params("no such entry", None).into()),
            _ => Ok(None),
        }
    }
}

/// An engine serving [`Failing`] to an administrator, the backend errors it counts, and the
/// caller.
async fn engine() -> (McpEngine, Arc<Mutex<Vec<&'static str>>>, Caller) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let counted = Arc::new(Mutex::new(Vec::new()));
    let mut metrics = MockMetrics::new();
    let seen = counted.clone();
    metrics.expect_backend_error().returning(move |component| seen.lock().unwrap().push(component));
    metrics.expect_mcp_operation().return_const(());
    let mut audit = MockAuditSink::new();
    audit.expect_accepting().return_const(true);
    let admission = Arc::new(
        Admission::new(
            AuthMode::Disabled(Principal::anonymous([Role::Admin])),
            Arc::new(MockRateLimiter::new()),
            None,
            Arc::new(audit),
            clock.clone(),
        )
        .with_metrics(Arc::new(metrics)),
    );
    let sessions = Arc::new(SessionService::new(
        Arc::new(MockSessionStore::new()),
        clock,
        admission.clone(),
        SessionTimeouts::default(),
    ));
    let catalog = Catalog::builder(Implementation::new("t", "1")).resources(Failing).build();
    let engine =
        McpEngine::new(Arc::new(catalog), admission.clone(), sessions, Arc::new(MockEventBus::new()), vec![7; 32])
            .unwrap();
    let caller = admission.authenticate(RequestContext::default()).await.unwrap();
    (engine, counted, caller)
}

/// A stateless `resources/read` of `uri`, accepted and run.
async fn read(engine: &McpEngine, caller: &Caller, uri: &str) -> Result<ServerResult, EngineError> {
    let version = wire::version(wire::STATELESS_VERSIONS[0]);
    let message = serde_json::from_value(json!({
        "jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": uri},
    }))
    .unwrap();
    let Accepted::Call(call) = engine.accept(caller, Route::Stateless(&version), message).await.unwrap() else {
        panic!("a request is a call")
    };
    engine.run(*call, &RequestId::Number(1), None).await
}

/// A resource whose backend is down is refused as a tool's outage is — `Refusal::Unavailable`
/// naming the backend (HTTP 503 with `Retry-After`, JSON-RPC -31003) — and counted as that
/// backend's error, not answered with an internal error.
#[tokio::test]
async fn a_resource_whose_backend_is_down_is_refused_as_unavailable_and_counted() {
    let (engine, counted, caller) = engine().await;
    match read(&engine, &caller, DOWN).await {
        Err(EngineError::Refused(Refusal::Unavailable { component, source })) => {
            assert_eq!(component, "vault_store");
            assert_eq!(source.to_string(), "connection refused");
        }
        other => panic!("expected an Unavailable refusal, got {other:?}"),
    }
    assert_eq!(*counted.lock().unwrap(), ["vault_store"]);
}

/// Any other error of a provider is still the JSON-RPC error it was, counted as no backend's.
#[tokio::test]
async fn a_resource_error_other_than_an_outage_stays_its_json_rpc_error() {
    let (engine, counted, caller) = engine().await;
    match read(&engine, &caller, BAD).await {
        Err(EngineError::Rpc(e)) => {
            assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
            assert_eq!(e.message, "no such entry");
        }
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
    assert!(counted.lock().unwrap().is_empty());
}
