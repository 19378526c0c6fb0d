//! The request pipeline: authenticate → rate-limit → dispatch → authorize → run → audit.
//!
//! Each stage is a method of its own, because not every MCP message goes through all of
//! them (an `initialize` is authenticated and rate-limited but names no tool); a tool call
//! goes through [`Pipeline::handle`], which runs them all in order. Every refusal is
//! audited with the reason, and no refused call ever reaches an operation.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use qudag_domain::audit::{AuditAction, AuditRecord, Outcome, digest_json};
use qudag_domain::principal::Principal;
use qudag_domain::quota::{Cost, Decision, QuotaPolicy};
use qudag_domain::rbac::{AuthzDecision, Permission, authorize};
use serde_json::{Value, json};

use crate::ports::metrics::{Metrics, NoopMetrics, Quota};
use crate::ports::{
    AuditSink, Clock, Credential, RateLimitKey, RateLimiter, RateLimiterError, TokenError, TokenVerifier,
};

/// What the transport knows about a request before the core sees it.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// The request id (`X-Request-Id`), for logs and audit.
    pub request_id: String,
    /// The client's address (already resolved through trusted proxies).
    pub client_addr: Option<IpAddr>,
    /// The access token from `Authorization`, if any.
    pub credential: Option<Credential>,
    /// A credential sent where tokens are refused (the query string, a form body), or
    /// an `Authorization` header that cannot be read: (reason code, description). It
    /// fails authentication with HTTP 400 `invalid_request`.
    pub credential_problem: Option<(&'static str, String)>,
}

/// How callers are identified.
#[derive(Clone)]
pub enum AuthMode {
    /// Every request must carry a token this verifier accepts.
    Required(Arc<dyn TokenVerifier>),
    /// No authentication: every caller is this principal (local use only).
    Disabled(Principal),
}

impl std::fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Required(_) => f.write_str("Required"),
            Self::Disabled(p) => f.debug_tuple("Disabled").field(p.id()).finish(),
        }
    }
}

/// What to do when the rate limiter cannot decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LimiterFailurePolicy {
    /// Let the request through (availability first).
    #[default]
    FailOpen,
    /// Refuse the request with 503 (protection first).
    FailClosed,
}

/// The rate-limit part of the pipeline's configuration.
#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    /// The policy applied to every key.
    pub policy: QuotaPolicy,
    /// Count authenticated callers per principal (otherwise per address).
    pub per_user: bool,
    /// What to do when the limiter is unavailable.
    pub on_failure: LimiterFailurePolicy,
    /// An optional second, long-term quota per authenticated principal (e.g. requests per
    /// day), checked after the short-term limit passes.
    pub daily: Option<QuotaPolicy>,
}

/// Something a caller can invoke: a tool, or an admin endpoint.
#[async_trait]
pub trait Operation: Send + Sync {
    /// Its name (the MCP tool name).
    fn name(&self) -> &str;
    /// The permission a caller needs.
    fn permission(&self) -> Permission;
    /// Its quota cost.
    fn cost(&self) -> Cost {
        Cost::ONE
    }
    /// Run it for `principal` with `input`.
    ///
    /// # Errors
    /// [`OperationError`]: bad arguments, or a failure while running.
    async fn run(&self, principal: &Principal, input: Value) -> Result<Value, OperationError>;
}

/// Finds operations by name.
pub trait Dispatcher: Send + Sync {
    /// The operation called `name`, if there is one.
    fn resolve(&self, name: &str) -> Option<Arc<dyn Operation>>;
}

/// Why an operation did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperationError {
    /// The input is wrong; `argument` names the offending argument.
    #[error("invalid argument {argument:?}: {message}")]
    InvalidArgument {
        /// The argument's name (or JSON pointer).
        argument: String,
        /// What is wrong with it.
        message: String,
    },
    /// The operation failed.
    #[error("{0}")]
    Failed(String),
}

/// Why the pipeline refused or could not complete a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// No acceptable credential (HTTP 401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(TokenError),
    /// Over the rate limit (HTTP 429); the decision says when to come back.
    #[error("rate limited")]
    RateLimited(Decision),
    /// A backend needed to decide is unavailable (HTTP 503).
    #[error("{component} unavailable")]
    Unavailable {
        /// Which component.
        component: &'static str,
        /// What went wrong.
        #[source]
        source: crate::BoxError,
    },
    /// No operation by that name.
    #[error("unknown operation {0:?}")]
    UnknownOperation(String),
    /// The caller may not use the operation (HTTP 403).
    #[error("forbidden: {}", .0.rule)]
    Forbidden(AuthzDecision),
    /// The operation ran and failed (or its input was refused).
    #[error(transparent)]
    Operation(OperationError),
}

/// The pipeline and the ports it runs on.
pub struct Pipeline {
    auth: AuthMode,
    limiter: Arc<dyn RateLimiter>,
    limits: Option<RateLimitSettings>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    /// Credentials whose first accepted use on this node was audited (BLAKE3 of the token),
    /// so `auth.succeeded` marks each credential's first use, not every request.
    authenticated: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

/// Credentials remembered for auditing their first use; past it the memory starts over (a
/// credential then gets one more `auth.succeeded`, never fewer).
const AUDITED_CREDENTIALS: usize = 10_000;

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("auth", &self.auth).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline; `limits: None` turns rate limiting off.
    pub fn new(
        auth: AuthMode,
        limiter: Arc<dyn RateLimiter>,
        limits: Option<RateLimitSettings>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { auth, limiter, limits, audit, clock, metrics: Arc::new(NoopMetrics), authenticated: Default::default() }
    }

    /// Count into `metrics` (a pipeline built without them counts nothing).
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The counters this pipeline keeps.
    pub fn metrics(&self) -> &Arc<dyn Metrics> {
        &self.metrics
    }

    /// Run a named operation through every stage.
    ///
    /// # Errors
    /// The first stage that refuses, as a [`PipelineError`].
    pub async fn handle(
        &self,
        ctx: &RequestContext,
        dispatcher: &dyn Dispatcher,
        name: &str,
        input: Value,
    ) -> Result<Value, PipelineError> {
        let principal = self.authenticate(ctx).await?;
        let operation = dispatcher.resolve(name);
        let cost = operation.as_ref().map_or(Cost::ONE, |op| op.cost());
        self.admit(ctx, &principal, cost).await?;
        let operation = operation.ok_or_else(|| PipelineError::UnknownOperation(name.to_owned()))?;
        self.invoke(ctx, &principal, operation.as_ref(), input).await
    }

    /// The short-term rate-limit policy, if rate limiting is on (for `RateLimit-Policy`).
    pub fn rate_policy(&self) -> Option<&QuotaPolicy> {
        self.limits.as_ref().map(|l| &l.policy)
    }

    /// Stage 1: who is calling.
    ///
    /// # Errors
    /// `Unauthenticated` (audited as `auth.failed` with the reason), or `Unavailable` when
    /// the verifier cannot decide. A credential's first accepted use on this node is audited
    /// as `auth.succeeded`.
    pub async fn authenticate(&self, ctx: &RequestContext) -> Result<Principal, PipelineError> {
        let verifier = match &self.auth {
            AuthMode::Disabled(principal) => return Ok(principal.clone()),
            AuthMode::Required(verifier) => verifier,
        };
        let result = match (&ctx.credential_problem, &ctx.credential) {
            (Some((reason, description)), _) => {
                Err(TokenError::BadRequest { reason, description: description.clone() })
            }
            (None, None) => Err(TokenError::Missing),
            (None, Some(credential)) => verifier.verify(credential).await,
        };
        match result {
            Ok(principal) => {
                if let Some(credential) = &ctx.credential {
                    self.audit_first_use(ctx, credential, &principal).await;
                }
                Ok(principal)
            }
            Err(TokenError::Unavailable { source }) => {
                self.metrics.backend_error("token_verifier");
                Err(PipelineError::Unavailable { component: "token_verifier", source })
            }
            Err(error) => {
                self.metrics.auth_failure(error.reason());
                tracing::info!(reason = error.reason(), request_id = %ctx.request_id, "Authentication failed");
                self.audit(
                    ctx,
                    AuditRecord::new(self.clock.now(), AuditAction::AuthFailed, Outcome::Denied)
                        .details(json!({ "reason": error.reason() })),
                )
                .await;
                Err(PipelineError::Unauthenticated(error))
            }
        }
    }

    /// Audit `auth.succeeded` when `credential` is used for the first time on this node.
    async fn audit_first_use(&self, ctx: &RequestContext, credential: &Credential, principal: &Principal) {
        let digest = *blake3::hash(credential.token.as_bytes()).as_bytes();
        let first = {
            let mut seen = self.authenticated.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.len() >= AUDITED_CREDENTIALS && !seen.contains(&digest) {
                seen.clear();
            }
            seen.insert(digest)
        };
        if first {
            let scheme = if credential.dpop.is_some() { "dpop" } else { "bearer" };
            self.audit(
                ctx,
                AuditRecord::new(self.clock.now(), AuditAction::AuthSucceeded, Outcome::Success)
                    .actor(principal.id().to_string())
                    .details(json!({
                        "scheme": scheme,
                        "credential_digest": hex::encode(&digest[..8]),
                        "expires_at": principal.expires_at().map(|t| t.as_secs()),
                    })),
            )
            .await;
        }
    }

    /// Stage 2: whether the caller has quota left for `cost`. Returns the decision (for
    /// `RateLimit` headers), or `None` when rate limiting is off or failed open.
    ///
    /// # Errors
    /// `RateLimited` (audited as `rate.limited`), or `Unavailable` when the limiter is down
    /// and the policy is fail-closed.
    pub async fn admit(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        cost: Cost,
    ) -> Result<Option<Decision>, PipelineError> {
        if !self.audit.accepting() {
            self.metrics.backend_error("audit");
            return Err(PipelineError::Unavailable {
                component: "audit",
                source: "the audit queue is full; requests are refused until it drains".into(),
            });
        }
        let Some(limits) = &self.limits else {
            return Ok(None);
        };
        let key = if limits.per_user && !principal.id().is_anonymous() {
            RateLimitKey::principal(principal.id())
        } else {
            match &ctx.client_addr {
                Some(addr) => RateLimitKey::address(addr),
                None => RateLimitKey::custom("ip:unknown"),
            }
        };
        let decision = match self.check_limit(&key, &limits.policy, cost, limits.on_failure).await? {
            Some(d) if d.allowed => d,
            Some(d) => return Err(self.limited(ctx, principal, &key, cost, d, Quota::Rate).await),
            None => return Ok(None),
        };
        if let Some(daily) = &limits.daily
            && !principal.id().is_anonymous()
        {
            let daily_key = RateLimitKey::custom(format!("day:{}", RateLimitKey::principal(principal.id())));
            if let Some(d) = self.check_limit(&daily_key, daily, cost, limits.on_failure).await?
                && !d.allowed
            {
                return Err(self.limited(ctx, principal, &daily_key, cost, d, Quota::Daily).await);
            }
        }
        Ok(Some(decision))
    }

    /// One limiter decision; `None` when the limiter is down and the policy fails open.
    async fn check_limit(
        &self,
        key: &RateLimitKey,
        policy: &QuotaPolicy,
        cost: Cost,
        on_failure: LimiterFailurePolicy,
    ) -> Result<Option<Decision>, PipelineError> {
        match self.limiter.check(key, policy, cost).await {
            Ok(decision) => Ok(Some(decision)),
            Err(RateLimiterError::Unavailable { source }) => {
                self.metrics.limiter_error();
                match on_failure {
                    LimiterFailurePolicy::FailOpen => {
                        tracing::warn!(error = %source, key = %key, "Rate limiter unavailable; failing open");
                        Ok(None)
                    }
                    LimiterFailurePolicy::FailClosed => {
                        Err(PipelineError::Unavailable { component: "rate_limiter", source })
                    }
                }
            }
        }
    }

    /// Audit a refusal by `quota` and build the error.
    async fn limited(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        key: &RateLimitKey,
        cost: Cost,
        decision: Decision,
        quota: Quota,
    ) -> PipelineError {
        self.metrics.rate_limited(quota);
        let quota = match quota {
            Quota::Rate => "rate",
            Quota::Daily => "daily",
        };
        self.audit(
            ctx,
            AuditRecord::new(self.clock.now(), AuditAction::RateLimited, Outcome::Denied)
                .actor(principal.id().to_string())
                .details(json!({
                    "quota": quota,
                    "key": key.as_str(),
                    "cost": cost.units(),
                    "retry_after_ms": decision.retry_after.map(|d| d.as_millis()),
                })),
        )
        .await;
        PipelineError::RateLimited(decision)
    }

    /// Stages 4–6: authorize `principal` for `operation`, run it, and audit the outcome.
    ///
    /// # Errors
    /// `Forbidden` (audited as `tool.denied`) or the operation's own error (audited as a
    /// failed `tool.called`).
    pub async fn invoke(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        operation: &dyn Operation,
        input: Value,
    ) -> Result<Value, PipelineError> {
        self.authorize(ctx, principal, operation.name(), operation.permission()).await?;
        let arguments_digest = digest_json(&input);
        let started = Instant::now();
        let result = operation.run(principal, input).await;
        let error = result.as_ref().err().map(ToString::to_string);
        self.record_call(ctx, principal, operation.name(), arguments_digest, error, started.elapsed()).await;
        result.map_err(PipelineError::Operation)
    }

    /// Stage 4: whether `principal` may use `target`, which needs `permission`.
    ///
    /// # Errors
    /// `Forbidden`, audited as `tool.denied` with the rule that decided.
    pub async fn authorize(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        target: &str,
        permission: Permission,
    ) -> Result<(), PipelineError> {
        let decision = authorize(principal.roles(), principal.scopes(), permission);
        if decision.allowed {
            return Ok(());
        }
        self.audit(
            ctx,
            AuditRecord::new(self.clock.now(), AuditAction::ToolDenied, Outcome::Denied)
                .actor(principal.id().to_string())
                .target(target)
                .details(json!({
                    "permission": decision.permission,
                    "required_scope": decision.required_scope,
                    "denied_by": decision.denied_by,
                    "rule": decision.rule,
                })),
        )
        .await;
        Err(PipelineError::Forbidden(decision))
    }

    /// Stage 6: audit a finished call of `target` — who, how long, a digest of the
    /// arguments (never the arguments), and the error if it failed.
    pub async fn record_call(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        target: &str,
        arguments_digest: String,
        error: Option<String>,
        elapsed: std::time::Duration,
    ) {
        let outcome = if error.is_some() { Outcome::Failure } else { Outcome::Success };
        self.audit(
            ctx,
            AuditRecord::new(self.clock.now(), AuditAction::ToolCalled, outcome)
                .actor(principal.id().to_string())
                .target(target)
                .details(json!({
                    "duration_us": u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                    "arguments_digest": arguments_digest,
                    "error": error,
                })),
        )
        .await;
    }

    /// Record an event for this request. A sink failure is logged loudly, never ignored.
    pub async fn audit(&self, ctx: &RequestContext, record: AuditRecord) {
        submit_audit(self.audit.as_ref(), ctx, record).await;
    }
}

/// Hand `record` to `sink` for the request `ctx`, filling in its request id and client
/// address. A sink refusal is logged loudly, never ignored.
pub async fn submit_audit(sink: &dyn AuditSink, ctx: &RequestContext, mut record: AuditRecord) {
    if record.request_id.is_none() && !ctx.request_id.is_empty() {
        record.request_id = Some(ctx.request_id.clone());
    }
    if record.client_addr.is_none() {
        record.client_addr = ctx.client_addr.map(|a| a.to_string());
    }
    let action = record.action;
    if let Err(error) = sink.submit(record).await {
        tracing::error!(error = %error, %action, request_id = %ctx.request_id, "Audit sink refused a record");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use qudag_domain::Timestamp;
    use qudag_domain::principal::PrincipalId;
    use qudag_domain::rbac::{Role, Scope};

    use super::*;
    use crate::ports::{MockAuditSink, MockClock, MockRateLimiter, MockTokenVerifier};

    /// A tool that counts its runs.
    struct Probe {
        runs: Mutex<u32>,
        fail: bool,
    }

    #[async_trait]
    impl Operation for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        fn permission(&self) -> Permission {
            Permission::QuantumExecute
        }
        fn cost(&self) -> Cost {
            Cost::new(5)
        }
        async fn run(&self, _principal: &Principal, input: Value) -> Result<Value, OperationError> {
            *self.runs.lock().unwrap() += 1;
            if self.fail {
                return Err(OperationError::InvalidArgument { argument: "qubits".into(), message: "too many".into() });
            }
            Ok(json!({ "echo": input }))
        }
    }

    struct Tools(HashMap<String, Arc<dyn Operation>>);

    impl Dispatcher for Tools {
        fn resolve(&self, name: &str) -> Option<Arc<dyn Operation>> {
            self.0.get(name).cloned()
        }
    }

    fn tools(probe: Arc<Probe>) -> Tools {
        Tools(HashMap::from([("probe".to_owned(), probe as Arc<dyn Operation>)]))
    }

    fn probe(fail: bool) -> Arc<Probe> {
        Arc::new(Probe { runs: Mutex::new(0), fail })
    }

    fn clock() -> Arc<MockClock> {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| Timestamp::from_secs(1_000));
        Arc::new(clock)
    }

    /// An audit sink mock that keeps what it was given.
    fn recording_audit() -> (Arc<MockAuditSink>, Arc<Mutex<Vec<AuditRecord>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut sink = MockAuditSink::new();
        let s = seen.clone();
        sink.expect_submit().returning(move |r| {
            s.lock().unwrap().push(r);
            Ok(())
        });
        sink.expect_accepting().return_const(true);
        (Arc::new(sink), seen)
    }

    fn verifier_accepting(token: &'static str, roles: Vec<Role>) -> Arc<MockTokenVerifier> {
        let mut v = MockTokenVerifier::new();
        v.expect_verify().returning(move |c| {
            if c.token == token {
                let scopes = Scope::ALL.map(|s| s.as_str().to_owned());
                Ok(Principal::new(PrincipalId::new("https://iss", "alice"), roles.clone(), scopes, None))
            } else {
                Err(TokenError::Invalid { reason: "bad_signature", description: "signature mismatch".into() })
            }
        });
        Arc::new(v)
    }

    fn allow_all() -> Arc<MockRateLimiter> {
        let mut l = MockRateLimiter::new();
        l.expect_check().returning(|_, p, _| {
            Ok(Decision {
                allowed: true,
                limit: p.burst(),
                remaining: 1,
                reset_after: Duration::ZERO,
                retry_after: None,
            })
        });
        Arc::new(l)
    }

    fn settings(per_user: bool) -> Option<RateLimitSettings> {
        Some(RateLimitSettings {
            policy: QuotaPolicy::per_minute(60, 10).unwrap(),
            per_user,
            on_failure: LimiterFailurePolicy::FailClosed,
            daily: None,
        })
    }

    fn ctx(bearer: Option<&str>) -> RequestContext {
        RequestContext {
            request_id: "req-1".into(),
            client_addr: Some("192.0.2.7".parse().unwrap()),
            credential: bearer.map(Credential::bearer),
            credential_problem: None,
        }
    }

    #[tokio::test]
    async fn a_good_call_runs_once_and_is_audited_with_a_digest_not_the_arguments() {
        let (audit, seen) = recording_audit();
        let p = Pipeline::new(
            AuthMode::Required(verifier_accepting("good", vec![Role::Developer])),
            allow_all(),
            settings(true),
            audit,
            clock(),
        );
        let op = probe(false);
        for _ in 0..2 {
            let out =
                p.handle(&ctx(Some("good")), &tools(op.clone()), "probe", json!({"secret": "hunter2"})).await.unwrap();
            assert_eq!(out, json!({"echo": {"secret": "hunter2"}}));
        }
        assert_eq!(*op.runs.lock().unwrap(), 2);
        let seen = seen.lock().unwrap();
        let actions: Vec<_> = seen.iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [AuditAction::AuthSucceeded, AuditAction::ToolCalled, AuditAction::ToolCalled],
            "the credential's first use is audited once, each call every time"
        );
        let auth = &seen[0];
        assert_eq!(auth.actor.as_deref(), Some("https://iss#alice"));
        assert_eq!(auth.details["scheme"], "bearer");
        assert_eq!(auth.details["credential_digest"], json!(hex::encode(&blake3::hash(b"good").as_bytes()[..8])));
        assert!(!serde_json::to_string(auth).unwrap().contains("\"good\""), "the token must not reach the audit trail");
        let r = &seen[1];
        assert_eq!(r.action, AuditAction::ToolCalled);
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!(r.actor.as_deref(), Some("https://iss#alice"));
        assert_eq!(r.target.as_deref(), Some("probe"));
        assert_eq!(r.request_id.as_deref(), Some("req-1"));
        assert_eq!(r.client_addr.as_deref(), Some("192.0.2.7"));
        assert_eq!(r.details["arguments_digest"], json!(digest_json(&json!({"secret": "hunter2"}))));
        assert!(!serde_json::to_string(r).unwrap().contains("hunter2"), "arguments must not reach the audit trail");
    }

    #[tokio::test]
    async fn missing_or_bad_tokens_never_reach_the_tool_and_are_audited() {
        for bearer in [None, Some("forged")] {
            let (audit, seen) = recording_audit();
            let mut limiter = MockRateLimiter::new();
            limiter.expect_check().never();
            let p = Pipeline::new(
                AuthMode::Required(verifier_accepting("good", vec![Role::Admin])),
                Arc::new(limiter),
                settings(true),
                audit,
                clock(),
            );
            let op = probe(false);
            let err = p.handle(&ctx(bearer), &tools(op.clone()), "probe", json!({})).await.unwrap_err();
            assert!(matches!(err, PipelineError::Unauthenticated(_)), "{err:?}");
            assert_eq!(*op.runs.lock().unwrap(), 0);
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].action, AuditAction::AuthFailed);
            let reason = if bearer.is_none() { "missing_token" } else { "bad_signature" };
            assert_eq!(seen[0].details["reason"], json!(reason));
        }
    }

    #[tokio::test]
    async fn an_unreachable_verifier_is_unavailable_not_unauthenticated() {
        let mut v = MockTokenVerifier::new();
        v.expect_verify().returning(|_| Err(TokenError::Unavailable { source: "jwks fetch failed".into() }));
        let (audit, seen) = recording_audit();
        let p = Pipeline::new(AuthMode::Required(Arc::new(v)), allow_all(), None, audit, clock());
        let err = p.authenticate(&ctx(Some("t"))).await.unwrap_err();
        assert!(matches!(err, PipelineError::Unavailable { component: "token_verifier", .. }));
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn rate_limit_uses_the_tool_cost_and_the_principal_key() {
        let mut limiter = MockRateLimiter::new();
        limiter
            .expect_check()
            .withf(|key, _, cost| key.as_str() == "user:https://iss#alice" && cost.units() == 5)
            .times(1)
            .returning(|_, p, _| {
                Ok(Decision {
                    allowed: false,
                    limit: p.burst(),
                    remaining: 0,
                    reset_after: Duration::from_secs(9),
                    retry_after: Some(Duration::from_secs(3)),
                })
            });
        let (audit, seen) = recording_audit();
        let p = Pipeline::new(
            AuthMode::Required(verifier_accepting("good", vec![Role::Developer])),
            Arc::new(limiter),
            settings(true),
            audit,
            clock(),
        );
        let op = probe(false);
        let err = p.handle(&ctx(Some("good")), &tools(op.clone()), "probe", json!({})).await.unwrap_err();
        match err {
            PipelineError::RateLimited(d) => {
                assert_eq!(d.retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        assert_eq!(*op.runs.lock().unwrap(), 0);
        assert_eq!(seen.lock().unwrap().last().unwrap().action, AuditAction::RateLimited);
    }

    #[tokio::test]
    async fn anonymous_or_not_per_user_traffic_is_keyed_by_address() {
        for (auth, per_user) in [
            (AuthMode::Disabled(Principal::anonymous([Role::Admin])), true),
            (AuthMode::Required(verifier_accepting("good", vec![Role::Admin])), false),
        ] {
            let mut limiter = MockRateLimiter::new();
            limiter.expect_check().withf(|key, _, _| key.as_str() == "ip:192.0.2.7").times(1).returning(|_, p, _| {
                Ok(Decision {
                    allowed: true,
                    limit: p.burst(),
                    remaining: 9,
                    reset_after: Duration::ZERO,
                    retry_after: None,
                })
            });
            let (audit, _) = recording_audit();
            let p = Pipeline::new(auth, Arc::new(limiter), settings(per_user), audit, clock());
            p.handle(&ctx(Some("good")), &tools(probe(false)), "probe", json!({})).await.unwrap();
        }
    }

    #[tokio::test]
    async fn the_daily_quota_is_checked_after_the_short_term_limit() {
        let mut limiter = MockRateLimiter::new();
        limiter.expect_check().times(2).returning(|key, p, _| {
            let allowed = !key.as_str().starts_with("day:");
            Ok(Decision {
                allowed,
                limit: p.burst(),
                remaining: 0,
                reset_after: Duration::from_secs(60),
                retry_after: (!allowed).then(|| Duration::from_secs(3_600)),
            })
        });
        let (audit, seen) = recording_audit();
        let limits = RateLimitSettings {
            daily: Some(QuotaPolicy::new(1_000, Duration::from_secs(86_400), 1_000).unwrap()),
            ..settings(true).unwrap()
        };
        let p = Pipeline::new(
            AuthMode::Required(verifier_accepting("good", vec![Role::Admin])),
            Arc::new(limiter),
            Some(limits),
            audit,
            clock(),
        );
        let err = p.handle(&ctx(Some("good")), &tools(probe(false)), "probe", json!({})).await.unwrap_err();
        assert!(matches!(err, PipelineError::RateLimited(d) if d.retry_after == Some(Duration::from_secs(3_600))));
        assert_eq!(seen.lock().unwrap().last().unwrap().details["quota"], "daily");
    }

    #[tokio::test]
    async fn limiter_outage_follows_the_failure_policy() {
        for (policy, should_pass) in [(LimiterFailurePolicy::FailOpen, true), (LimiterFailurePolicy::FailClosed, false)]
        {
            let mut limiter = MockRateLimiter::new();
            limiter
                .expect_check()
                .returning(|_, _, _| Err(RateLimiterError::Unavailable { source: "connection refused".into() }));
            let (audit, _) = recording_audit();
            let limits = RateLimitSettings { on_failure: policy, ..settings(true).unwrap() };
            let p = Pipeline::new(
                AuthMode::Disabled(Principal::anonymous([Role::Admin])),
                Arc::new(limiter),
                Some(limits),
                audit,
                clock(),
            );
            let op = probe(false);
            let result = p.handle(&ctx(None), &tools(op.clone()), "probe", json!({})).await;
            assert_eq!(result.is_ok(), should_pass, "{policy:?}: {result:?}");
            if !should_pass {
                assert!(matches!(result, Err(PipelineError::Unavailable { component: "rate_limiter", .. })));
            }
            assert_eq!(*op.runs.lock().unwrap(), u32::from(should_pass));
        }
    }

    #[tokio::test]
    async fn a_role_without_the_permission_is_forbidden_and_audited() {
        let (audit, seen) = recording_audit();
        let p = Pipeline::new(
            AuthMode::Required(verifier_accepting("good", vec![Role::Readonly])),
            allow_all(),
            settings(true),
            audit,
            clock(),
        );
        let op = probe(false);
        let err = p.handle(&ctx(Some("good")), &tools(op.clone()), "probe", json!({})).await.unwrap_err();
        match err {
            PipelineError::Forbidden(d) => {
                assert_eq!(d.permission, Permission::QuantumExecute);
                assert!(d.rule.contains("readonly"), "{}", d.rule);
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
        assert_eq!(*op.runs.lock().unwrap(), 0);
        let seen = seen.lock().unwrap();
        let denied = seen.last().unwrap();
        assert_eq!(denied.action, AuditAction::ToolDenied);
        assert_eq!(denied.target.as_deref(), Some("probe"));
    }

    #[tokio::test]
    async fn a_token_in_the_wrong_place_is_a_bad_request_even_with_a_good_header() {
        let (audit, seen) = recording_audit();
        let p = Pipeline::new(
            AuthMode::Required(verifier_accepting("good", vec![Role::Admin])),
            allow_all(),
            settings(true),
            audit,
            clock(),
        );
        let op = probe(false);
        let mut ctx = ctx(Some("good"));
        ctx.credential_problem = Some(("token_in_query", "access tokens are accepted only in the header".into()));
        let err = p.handle(&ctx, &tools(op.clone()), "probe", json!({})).await.unwrap_err();
        assert!(matches!(
            &err,
            PipelineError::Unauthenticated(TokenError::BadRequest { reason: "token_in_query", .. })
        ));
        assert_eq!(*op.runs.lock().unwrap(), 0);
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].action, AuditAction::AuthFailed);
        assert_eq!(seen[0].details["reason"], "token_in_query");
    }

    #[tokio::test]
    async fn unknown_operations_are_refused_after_rate_limiting() {
        let (audit, _) = recording_audit();
        let p = Pipeline::new(
            AuthMode::Required(verifier_accepting("good", vec![Role::Admin])),
            allow_all(),
            settings(true),
            audit,
            clock(),
        );
        let err = p.handle(&ctx(Some("good")), &tools(probe(false)), "nope", json!({})).await.unwrap_err();
        assert!(matches!(err, PipelineError::UnknownOperation(ref n) if n == "nope"));
    }

    #[tokio::test]
    async fn a_failing_operation_is_audited_as_a_failure() {
        let (audit, seen) = recording_audit();
        let p =
            Pipeline::new(AuthMode::Disabled(Principal::anonymous([Role::Admin])), allow_all(), None, audit, clock());
        let err = p.handle(&ctx(None), &tools(probe(true)), "probe", json!({})).await.unwrap_err();
        assert!(
            matches!(err, PipelineError::Operation(OperationError::InvalidArgument { ref argument, .. }) if argument == "qubits")
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].outcome, Outcome::Failure);
        assert!(seen[0].details["error"].as_str().unwrap().contains("qubits"));
    }

    #[tokio::test]
    async fn an_audit_outage_does_not_lose_the_response() {
        let mut sink = MockAuditSink::new();
        sink.expect_submit()
            .times(1)
            .returning(|_| Err(crate::ports::AuditSinkError::Unavailable { source: "disk full".into() }));
        sink.expect_accepting().return_const(true);
        let p = Pipeline::new(
            AuthMode::Disabled(Principal::anonymous([Role::Admin])),
            allow_all(),
            None,
            Arc::new(sink),
            clock(),
        );
        let out = p.handle(&ctx(None), &tools(probe(false)), "probe", json!({"x": 1})).await.unwrap();
        assert_eq!(out["echo"]["x"], json!(1));
    }
}
