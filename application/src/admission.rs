//! Admission: the one path every inbound operation takes before it runs.
//!
//! MCP requests, notifications and responses, GET and listen streams, session ends and the
//! admin endpoints all pass the same stages, in this order:
//!
//! 1. **limit per address**, before any token is looked at:
//!    - the address's *failed-authentication allowance* (`QUDAG_RATE_LIMIT_AUTH_FAILURES`,
//!      by default the rate and burst of `QUDAG_RATE_LIMIT`): only requests whose
//!      credential is refused consume it, so any number of honest callers behind one NAT
//!      address are not slowed by each other, while a flood of bad or missing tokens from
//!      one address is refused with 429 — without a verification, an introspection call or
//!      an audit record each — once the allowance is spent, until it refills. IPv6 addresses
//!      are counted by their /64;
//!    - when callers are counted by address (`per_user` off, or no authentication), the
//!      request's quota is charged here too;
//! 2. **authenticate** ([`Admission::authenticate`]) — the only way to obtain a [`Caller`];
//! 3. **limit per principal** ([`Admission::admit`]) — the operation's cost, against the
//!    principal's short-term and daily quotas;
//! 4. **authorize** ([`Admission::authorize`]) — before any tool, prompt, resource or admin
//!    operation is touched;
//! 5. **run**, then **audit** ([`Admission::run`] records the outcome).
//!
//! The inbound adapter hands over what it read off the wire ([`RequestContext`]) and gets a
//! [`Caller`] back; every use case that serves a caller takes that `Caller`, so no operation
//! can be reached without having been authenticated here. Every refusal is audited with its
//! reason and counted; repeated refusals of one address or one rate-limit key are written
//! once per reason and window and then summarised ([`summary`]), while the metrics
//! (`qudag_auth_failures_total`, `qudag_rate_limit_rejections_total`) count every one.

mod summary;

pub use summary::Address;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};
use qudag_domain::principal::Principal;
use qudag_domain::quota::{Cost, Decision, QuotaPolicy};
use qudag_domain::rbac::{AuthzDecision, Permission, authorize};
use serde_json::json;

use crate::ports::metrics::{Metrics, NoopMetrics, Quota};
use crate::ports::{
    AuditSink, AuditSinkError, Clock, Credential, RateLimitKey, RateLimiter, RateLimiterError, TokenError,
    TokenVerifier,
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

/// The rate-limit part of admission's configuration.
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

/// Summary records kept while the audit trail refuses them (each summarises a window of
/// refusals of one address or key); past this, the oldest are given up, logged and counted.
const MAX_UNWRITTEN_SUMMARIES: usize = 100_000;

/// Why admission refused an operation, or could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No acceptable credential (HTTP 401, or 400 for a credential sent wrongly).
    #[error("unauthenticated: {0}")]
    Unauthenticated(TokenError),
    /// Over a rate limit (HTTP 429): which one, and when to come back.
    #[error("rate limited")]
    RateLimited(Limited),
    /// A backend needed to decide, or to run the operation, is unavailable (HTTP 503 with
    /// `Retry-After`; counted in `qudag_backend_errors_total`).
    #[error("{component} unavailable")]
    Unavailable {
        /// Which component.
        component: &'static str,
        /// What went wrong.
        #[source]
        source: crate::BoxError,
    },
    /// The caller may not use the operation (HTTP 403).
    #[error("forbidden: {}", .0.rule)]
    Forbidden(AuthzDecision),
}

/// A rate limit's refusal: the decision, and the quota and policy that made it (the short-term
/// rate, or an address's failed-authentication allowance), so that the answer's
/// `RateLimit-Policy` describes the limit that was met.
#[derive(Clone, Copy, Debug)]
pub struct Limited {
    /// The limiter's decision (when to come back).
    pub decision: Decision,
    /// Which quota refused.
    pub quota: Quota,
    /// That quota's policy.
    pub policy: QuotaPolicy,
}

/// A use case's, tool's or resource's backend outage is the request's refusal.
impl From<crate::usecases::Unavailable> for Refusal {
    fn from(e: crate::usecases::Unavailable) -> Self {
        Self::Unavailable { component: e.component, source: e.source }
    }
}

impl Refusal {
    /// A backend outage of `component`.
    pub fn unavailable(component: &'static str, source: impl Into<crate::BoxError>) -> Self {
        Self::Unavailable { component, source: source.into() }
    }

    /// The rate-limit decision behind a 429, for `Retry-After` and `RateLimit` headers.
    pub fn rate_decision(&self) -> Option<&Decision> {
        self.limited().map(|l| &l.decision)
    }

    /// The rate limit behind a 429: its decision, quota and policy.
    pub fn limited(&self) -> Option<&Limited> {
        match self {
            Self::RateLimited(l) => Some(l),
            _ => None,
        }
    }
}

/// An authenticated caller: what [`Admission::authenticate`] hands out, and what every
/// operation that serves a caller asks for.
#[derive(Clone, Debug)]
pub struct Caller {
    ctx: RequestContext,
    principal: Principal,
    /// Whether the caller's quota is kept per address, and so was charged before
    /// authentication (stage 1) rather than per principal (stage 3).
    by_address: bool,
    /// The decision of stage 1, for the `RateLimit` headers.
    address_decision: Option<Decision>,
    /// Whether the unit charged in stage 1 is still to be counted against an operation's
    /// cost (the first operation of a request uses it; a batch's later ones pay in full).
    prepaid: Arc<AtomicBool>,
}

impl Caller {
    fn new(ctx: RequestContext, principal: Principal, by_address: bool, address_decision: Option<Decision>) -> Self {
        Self { ctx, principal, by_address, address_decision, prepaid: Arc::new(AtomicBool::new(by_address)) }
    }

    /// What the transport said about the request.
    pub fn ctx(&self) -> &RequestContext {
        &self.ctx
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// The admission path and the ports it runs on.
pub struct Admission {
    auth: AuthMode,
    limiter: Arc<dyn RateLimiter>,
    limits: Option<RateLimitSettings>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    metrics: Arc<dyn Metrics>,
    /// Credentials whose first accepted use on this node was audited (BLAKE3 of the token),
    /// so `auth.succeeded` marks each credential's first use, not every request.
    authenticated: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
    /// Failed authentications allowed per address, if limited.
    failure_limit: Option<QuotaPolicy>,
    /// Addresses whose failure allowance is spent.
    blocks: summary::Blocks,
    /// Repeated refusals, counted for their summary records.
    summaries: summary::Summaries,
    /// Summary records the trail could not take yet, offered again at the next flush.
    unwritten: std::sync::Mutex<Vec<(RequestContext, AuditRecord)>>,
}

/// Credentials remembered for auditing their first use; past it the memory starts over (a
/// credential then gets one more `auth.succeeded`, never fewer).
const AUDITED_CREDENTIALS: usize = 10_000;

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("auth", &self.auth).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Admission {
    /// Admission over these ports; `limits: None` turns rate limiting off.
    pub fn new(
        auth: AuthMode,
        limiter: Arc<dyn RateLimiter>,
        limits: Option<RateLimitSettings>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            auth,
            limiter,
            limits,
            audit,
            clock,
            metrics: Arc::new(NoopMetrics),
            authenticated: Default::default(),
            failure_limit: None,
            blocks: summary::Blocks::default(),
            summaries: summary::Summaries::default(),
            unwritten: std::sync::Mutex::default(),
        }
    }

    /// Allow each address `policy`'s worth of failed authentications (stage 1); `None` for
    /// no such limit.
    pub fn with_auth_failure_limit(mut self, policy: Option<QuotaPolicy>) -> Self {
        self.failure_limit = policy;
        self
    }

    /// Write the summary records of the refusal windows that have ended (every open window
    /// when `all`, e.g. at shutdown). The server calls this every few seconds.
    pub async fn flush_summaries(&self, all: bool) {
        let now = self.clock.now();
        self.write_summaries(self.summaries.take(now, all)).await;
    }

    async fn write_summaries(&self, summaries: Vec<summary::Summary>) {
        let now = self.clock.now();
        let mut pending =
            std::mem::take(&mut *self.unwritten.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        pending.extend(summaries.into_iter().map(|s| s.into_record(now)));
        let mut failed = Vec::new();
        for (ctx, record) in pending {
            // A summary the trail cannot take now is kept and offered again at the next
            // flush (at most MAX_UNWRITTEN_SUMMARIES; summaries are bounded per window).
            if let Err(error) = submit_audit(self.audit.as_ref(), &ctx, record.clone()).await {
                self.metrics.backend_error("audit");
                tracing::warn!(%error, "An audit summary is kept for the next flush");
                failed.push((ctx, record));
            }
        }
        if !failed.is_empty() {
            let mut unwritten = self.unwritten.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            failed.extend(unwritten.drain(..));
            if failed.len() > MAX_UNWRITTEN_SUMMARIES {
                tracing::error!(
                    dropped = failed.len() - MAX_UNWRITTEN_SUMMARIES,
                    "Audit summaries over the keep limit are dropped; the trail has refused records for long"
                );
                failed.truncate(MAX_UNWRITTEN_SUMMARIES);
            }
            *unwritten = failed;
        }
    }

    /// Count into `metrics` (admission built without them counts nothing).
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The counters admission keeps.
    pub fn metrics(&self) -> &Arc<dyn Metrics> {
        &self.metrics
    }

    /// The short-term rate-limit policy, if rate limiting is on (for `RateLimit-Policy`).
    pub fn rate_policy(&self) -> Option<&QuotaPolicy> {
        self.limits.as_ref().map(|l| &l.policy)
    }

    /// Whether callers are counted by address (and so charged before authentication).
    fn by_address(&self) -> bool {
        self.limits.as_ref().is_some_and(|l| !l.per_user) || matches!(self.auth, AuthMode::Disabled(_))
    }

    /// Stages 1–2: limit per address (its failed-authentication allowance, and its quota
    /// when callers are counted by address), then who is calling.
    ///
    /// # Errors
    /// `RateLimited` (audited as `rate.limited`) before any token is looked at, or when this
    /// failure spent the address's allowance; `Unauthenticated` (audited as `auth.failed` with
    /// the reason); `Unavailable` when the verifier, the limiter (fail-closed) or the audit
    /// trail cannot decide. A credential's first accepted use on this node is audited as
    /// `auth.succeeded`. Repeated refusals are audited once per reason and window, then
    /// summarised.
    pub async fn authenticate(&self, ctx: RequestContext) -> Result<Caller, Refusal> {
        let by_address = self.by_address();
        let mut address_decision = None;
        if by_address {
            self.check_audit()?;
            address_decision = self.limit(&ctx, None, Cost::ONE).await?;
        }
        let verifier = match &self.auth {
            AuthMode::Disabled(principal) => {
                return Ok(Caller::new(ctx, principal.clone(), by_address, address_decision));
            }
            AuthMode::Required(verifier) => verifier,
        };
        // Nothing is allocated for this check: the key's text is built only for a refusal.
        let address = self.failure_limit.is_some().then(|| summary::Address::of(ctx.client_addr));
        let failure_key = |address: summary::Address| RateLimitKey::custom(format!("authfail:{address}"));
        if let (Some(address), Some(policy)) = (address, self.failure_limit)
            && let Some(decision) = self.blocks.blocked(address, self.clock.now())
        {
            let key = failure_key(address);
            return Err(self.limited(&ctx, None, &key, Cost::ONE, decision, (Quota::AuthFailures, policy)).await);
        }
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
                    self.audit_first_use(&ctx, credential, &principal).await?;
                }
                Ok(Caller::new(ctx, principal, by_address, address_decision))
            }
            Err(TokenError::Unavailable { source }) => {
                self.metrics.backend_error("token_verifier");
                Err(Refusal::Unavailable { component: "token_verifier", source })
            }
            Err(error) => {
                self.metrics.auth_failure(error.reason());
                tracing::info!(reason = error.reason(), request_id = %ctx.request_id, "Authentication failed");
                self.audit_failure(&ctx, error.reason()).await?;
                if let (Some(address), Some(policy)) = (address, &self.failure_limit) {
                    let key = failure_key(address);
                    let on_failure = self.limits.as_ref().map_or(LimiterFailurePolicy::FailOpen, |l| l.on_failure);
                    // A limiter that cannot decide leaves the answer at 401: the request is
                    // refused either way.
                    if let Ok(Some(decision)) = self.check_limit(&key, policy, Cost::ONE, on_failure).await
                        && !decision.allowed
                    {
                        self.blocks.block(address, decision, self.clock.now());
                        let quota = (Quota::AuthFailures, *policy);
                        return Err(self.limited(&ctx, None, &key, Cost::ONE, decision, quota).await);
                    }
                }
                Err(Refusal::Unauthenticated(error))
            }
        }
    }

    /// Audit a failed authentication: the first of its reason from this address in a
    /// window in full, later ones in the window's summary.
    async fn audit_failure(&self, ctx: &RequestContext, reason: &'static str) -> Result<(), Refusal> {
        let now = self.clock.now();
        let topic = summary::Topic::AuthFailed(summary::address_key(ctx.client_addr));
        let (record, ended) = self.summaries.note(topic, reason, ctx, None, now);
        self.write_summaries(ended).await;
        if record {
            self.audit(
                ctx,
                AuditRecord::new(now, AuditAction::AuthFailed, Outcome::Denied).details(json!({ "reason": reason })),
            )
            .await?;
        }
        Ok(())
    }

    /// Audit `auth.succeeded` when `credential` is used for the first time on this node.
    async fn audit_first_use(
        &self,
        ctx: &RequestContext,
        credential: &Credential,
        principal: &Principal,
    ) -> Result<(), Refusal> {
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
            .await?;
        }
        Ok(())
    }

    /// Stage 3: whether `caller` has quota left for an operation of `cost`. Returns the
    /// decision (for `RateLimit` headers), or `None` when rate limiting is off or failed
    /// open. A caller counted by address was charged one unit in stage 1; the rest of the
    /// cost is charged here.
    ///
    /// # Errors
    /// `RateLimited` (audited as `rate.limited`); `Unavailable` when the audit trail refuses
    /// records (nothing runs that cannot be recorded) or the limiter is down and the policy
    /// is fail-closed.
    pub async fn admit(&self, caller: &Caller, cost: Cost) -> Result<Option<Decision>, Refusal> {
        self.check_audit()?;
        let Some(limits) = &self.limits else {
            return Ok(None);
        };
        let decision = if caller.by_address {
            let prepaid = u32::from(caller.prepaid.swap(false, Ordering::AcqRel));
            match cost.units().saturating_sub(prepaid) {
                0 => caller.address_decision,
                rest => self.limit(&caller.ctx, None, Cost::new(rest)).await?,
            }
        } else {
            self.limit(&caller.ctx, Some(&caller.principal), cost).await?
        };
        if let Some(daily) = &limits.daily
            && !caller.principal.id().is_anonymous()
        {
            let daily_key = RateLimitKey::custom(format!("day:{}", RateLimitKey::principal(caller.principal.id())));
            if let Some(d) = self.check_limit(&daily_key, daily, cost, limits.on_failure).await?
                && !d.allowed
            {
                return Err(self
                    .limited(&caller.ctx, Some(&caller.principal), &daily_key, cost, d, (Quota::Daily, *daily))
                    .await);
            }
        }
        Ok(decision)
    }

    /// Refuse everything while the audit trail cannot take records.
    fn check_audit(&self) -> Result<(), Refusal> {
        if self.audit.accepting() {
            return Ok(());
        }
        self.metrics.backend_error("audit");
        Err(Refusal::unavailable("audit", "the audit queue is full; requests are refused until it drains"))
    }

    /// Charge `cost` to the short-term quota of `principal`, or of the address when there
    /// is none (or it is anonymous).
    async fn limit(
        &self,
        ctx: &RequestContext,
        principal: Option<&Principal>,
        cost: Cost,
    ) -> Result<Option<Decision>, Refusal> {
        let Some(limits) = &self.limits else {
            return Ok(None);
        };
        let key = match principal.filter(|p| !p.id().is_anonymous()) {
            Some(p) => RateLimitKey::principal(p.id()),
            None => match &ctx.client_addr {
                Some(addr) => RateLimitKey::address(addr),
                None => RateLimitKey::custom("ip:unknown"),
            },
        };
        match self.check_limit(&key, &limits.policy, cost, limits.on_failure).await? {
            Some(d) if d.allowed => Ok(Some(d)),
            Some(d) => Err(self.limited(ctx, principal, &key, cost, d, (Quota::Rate, limits.policy)).await),
            None => Ok(None),
        }
    }

    /// One limiter decision; `None` when the limiter is down and the policy fails open.
    async fn check_limit(
        &self,
        key: &RateLimitKey,
        policy: &QuotaPolicy,
        cost: Cost,
        on_failure: LimiterFailurePolicy,
    ) -> Result<Option<Decision>, Refusal> {
        match self.limiter.check(key, policy, cost).await {
            Ok(decision) => Ok(Some(decision)),
            Err(RateLimiterError::Unavailable { source }) => {
                self.metrics.limiter_error();
                match on_failure {
                    LimiterFailurePolicy::FailOpen => {
                        tracing::warn!(error = %source, key = %key, "Rate limiter unavailable; failing open");
                        Ok(None)
                    }
                    LimiterFailurePolicy::FailClosed => Err(Refusal::Unavailable { component: "rate_limiter", source }),
                }
            }
        }
    }

    /// Audit a refusal by `quota` (the first of its key in a window; later ones go into the
    /// window's summary) and build the error.
    async fn limited(
        &self,
        ctx: &RequestContext,
        principal: Option<&Principal>,
        key: &RateLimitKey,
        cost: Cost,
        decision: Decision,
        (quota, policy): (Quota, QuotaPolicy),
    ) -> Refusal {
        self.metrics.rate_limited(quota);
        let refusal = Refusal::RateLimited(Limited { decision, quota, policy });
        let quota = quota.as_str();
        let topic = summary::Topic::RateLimited { key: key.as_str().to_owned(), quota };
        let actor = principal.map(|p| p.id().to_string());
        let (first, ended) = self.summaries.note(topic, quota, ctx, actor.as_deref(), self.clock.now());
        self.write_summaries(ended).await;
        if !first {
            return refusal;
        }
        let mut record = AuditRecord::new(self.clock.now(), AuditAction::RateLimited, Outcome::Denied).details(json!({
            "quota": quota,
            "key": key.as_str(),
            "cost": cost.units(),
            "retry_after_ms": decision.retry_after.map(|d| d.as_millis()),
        }));
        if let Some(p) = principal {
            record = record.actor(p.id().to_string());
        }
        match self.audit(ctx, record).await {
            Ok(()) => refusal,
            Err(unrecorded) => unrecorded,
        }
    }

    /// Stage 4: whether `caller` may use `target`, which needs `permission`.
    ///
    /// # Errors
    /// `Forbidden`, audited as `tool.denied` with the rule that decided.
    pub async fn authorize(&self, caller: &Caller, target: &str, permission: Permission) -> Result<(), Refusal> {
        let principal = &caller.principal;
        let decision = authorize(principal.roles(), principal.scopes(), permission);
        if decision.allowed {
            return Ok(());
        }
        self.audit(
            &caller.ctx,
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
        .await?;
        Err(Refusal::Forbidden(decision))
    }

    /// Stages 4–5 for one operation: authorize `caller` for `target`, run `operation`, and
    /// audit the call with `arguments_digest` (never the arguments) and how it ended. The
    /// operation's own failure is returned inside `Ok` (it ran); `describe` says what an
    /// outcome records as its error, if it failed.
    ///
    /// # Errors
    /// `Forbidden` before the operation is touched; `Unavailable` (audit) when the call's
    /// record is not taken — the operation ran, but its outcome is not reported as if it
    /// had been recorded.
    pub async fn run<T, F>(
        &self,
        caller: &Caller,
        target: &str,
        permission: Permission,
        arguments_digest: String,
        operation: F,
        describe: impl FnOnce(&T) -> Option<String>,
    ) -> Result<T, Refusal>
    where
        F: Future<Output = T>,
    {
        self.run_as(caller, target, permission, arguments_digest, false, operation, describe).await
    }

    /// As [`Admission::run`]; with `irreversible` (an operation whose effect cannot be
    /// undone), once authorized, its attempt (`tool.started`) is recorded before it runs, so
    /// that with durable acknowledgement the act is on record even if the process dies
    /// before its `tool.called` record.
    ///
    /// # Errors
    /// As [`Admission::run`]; `Unavailable` (audit) before the operation runs when the
    /// attempt is not taken.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_as<T, F>(
        &self,
        caller: &Caller,
        target: &str,
        permission: Permission,
        arguments_digest: String,
        irreversible: bool,
        operation: F,
        describe: impl FnOnce(&T) -> Option<String>,
    ) -> Result<T, Refusal>
    where
        F: Future<Output = T>,
    {
        self.authorize(caller, target, permission).await?;
        if irreversible {
            self.audit(
                &caller.ctx,
                AuditRecord::new(self.clock.now(), AuditAction::ToolStarted, Outcome::Success)
                    .actor(caller.principal.id().to_string())
                    .target(target)
                    .details(json!({ "arguments_digest": arguments_digest })),
            )
            .await?;
        }
        let started = Instant::now();
        let outcome = operation.await;
        // Answered only once recorded: a record the trail refuses turns the answer into 503.
        self.record_call(caller, target, arguments_digest, describe(&outcome), started.elapsed()).await?;
        Ok(outcome)
    }

    /// Stage 5's record: a finished call of `target` — who, how long, a digest of the
    /// arguments (never the arguments), and the error if it failed.
    pub async fn record_call(
        &self,
        caller: &Caller,
        target: &str,
        arguments_digest: String,
        error: Option<String>,
        elapsed: Duration,
    ) -> Result<(), Refusal> {
        let outcome = if error.is_some() { Outcome::Failure } else { Outcome::Success };
        self.audit(
            &caller.ctx,
            AuditRecord::new(self.clock.now(), AuditAction::ToolCalled, outcome)
                .actor(caller.principal.id().to_string())
                .target(target)
                .details(json!({
                    "duration_us": u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                    "arguments_digest": arguments_digest,
                    "error": error,
                })),
        )
        .await
    }

    /// Record an event for the request `ctx` (see [`submit_audit`]).
    ///
    /// # Errors
    /// `Unavailable` (component `audit`) when the trail did not take the record: the
    /// request must not be answered as if it had been recorded.
    pub async fn audit(&self, ctx: &RequestContext, record: AuditRecord) -> Result<(), Refusal> {
        submit_audit(self.audit.as_ref(), ctx, record).await.map_err(|error| {
            self.metrics.backend_error("audit");
            Refusal::unavailable("audit", error)
        })
    }
}

/// Hand `record` to `sink` for the request `ctx`, filling in its request id and client
/// address, with every string kept to a fixed size ([`AuditRecord::bounded`]: callers'
/// names, URIs and messages are never stored whole). Returns once the sink has taken it —
/// with durable acknowledgement, once it is written.
///
/// # Errors
/// The sink's, when it did not take the record; the caller answers with that failure (503),
/// never as if the act had been recorded.
pub async fn submit_audit(
    sink: &dyn AuditSink,
    ctx: &RequestContext,
    mut record: AuditRecord,
) -> Result<(), AuditSinkError> {
    if record.request_id.is_none() && !ctx.request_id.is_empty() {
        record.request_id = Some(ctx.request_id.clone());
    }
    if record.client_addr.is_none() {
        record.client_addr = ctx.client_addr.map(|a| a.to_string());
    }
    let record = record.bounded();
    let action = record.action;
    sink.submit(record).await.inspect_err(|error| {
        tracing::error!(error = %error, %action, request_id = %ctx.request_id, "Audit trail refused a record; the request is answered 503");
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU32;

    use qudag_domain::Timestamp;
    use qudag_domain::audit::digest_json;
    use qudag_domain::principal::PrincipalId;
    use qudag_domain::rbac::{Role, Scope};
    use serde_json::Value;

    use super::*;
    use crate::ports::{MockAuditSink, MockClock, MockRateLimiter, MockTokenVerifier};

    /// A tool-like operation of cost 5 needing `quantum:execute`, counting its runs.
    #[derive(Default)]
    struct Probe {
        runs: AtomicU32,
        fail: bool,
    }

    impl Probe {
        fn failing() -> Self {
            Self { fail: true, ..Self::default() }
        }

        fn runs(&self) -> u32 {
            self.runs.load(Ordering::SeqCst)
        }

        /// The whole path for one call of the probe with `input`.
        async fn call(
            &self,
            a: &Admission,
            ctx: RequestContext,
            input: Value,
        ) -> Result<Result<Value, String>, Refusal> {
            let caller = a.authenticate(ctx).await?;
            a.admit(&caller, Cost::new(5)).await?;
            let digest = digest_json(&input);
            let work = async {
                self.runs.fetch_add(1, Ordering::SeqCst);
                if self.fail {
                    Err("invalid argument \"qubits\": too many".to_owned())
                } else {
                    Ok(json!({ "echo": input }))
                }
            };
            a.run(&caller, "probe", Permission::QuantumExecute, digest, work, |r| r.as_ref().err().cloned()).await
        }
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

    fn decision(allowed: bool, remaining: u32, retry_after: Option<Duration>) -> Decision {
        Decision { allowed, limit: 10, remaining, reset_after: Duration::from_secs(9), retry_after }
    }

    fn allow_all() -> Arc<MockRateLimiter> {
        let mut l = MockRateLimiter::new();
        l.expect_check().returning(|_, _, _| Ok(decision(true, 1, None)));
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

    fn required(roles: Vec<Role>) -> AuthMode {
        AuthMode::Required(verifier_accepting("good", roles))
    }

    fn disabled() -> AuthMode {
        AuthMode::Disabled(Principal::anonymous([Role::Admin]))
    }

    #[tokio::test]
    async fn a_good_call_runs_once_and_is_audited_with_a_digest_not_the_arguments() {
        let (audit, seen) = recording_audit();
        let a = Admission::new(required(vec![Role::Developer]), allow_all(), settings(true), audit, clock());
        let probe = Probe::default();
        for _ in 0..2 {
            let out = probe.call(&a, ctx(Some("good")), json!({"secret": "hunter2"})).await.unwrap().unwrap();
            assert_eq!(out, json!({"echo": {"secret": "hunter2"}}));
        }
        assert_eq!(probe.runs(), 2);
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
        assert_eq!(r.outcome, Outcome::Success);
        assert_eq!(r.actor.as_deref(), Some("https://iss#alice"));
        assert_eq!(r.target.as_deref(), Some("probe"));
        assert_eq!(r.request_id.as_deref(), Some("req-1"));
        assert_eq!(r.client_addr.as_deref(), Some("192.0.2.7"));
        assert_eq!(r.details["arguments_digest"], json!(digest_json(&json!({"secret": "hunter2"}))));
        assert!(!serde_json::to_string(r).unwrap().contains("hunter2"), "arguments must not reach the audit trail");
    }

    #[tokio::test]
    async fn missing_or_bad_tokens_never_reach_the_operation_and_are_audited() {
        for bearer in [None, Some("forged")] {
            let (audit, seen) = recording_audit();
            let mut limiter = MockRateLimiter::new();
            limiter.expect_check().never();
            let a = Admission::new(required(vec![Role::Admin]), Arc::new(limiter), settings(true), audit, clock());
            let probe = Probe::default();
            let err = probe.call(&a, ctx(bearer), json!({})).await.unwrap_err();
            assert!(matches!(err, Refusal::Unauthenticated(_)), "{err:?}");
            assert_eq!(probe.runs(), 0);
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].action, AuditAction::AuthFailed);
            let reason = if bearer.is_none() { "missing_token" } else { "bad_signature" };
            assert_eq!(seen[0].details["reason"], json!(reason));
        }
    }

    #[tokio::test]
    async fn callers_counted_by_address_are_limited_before_their_token_is_verified() {
        let mut limiter = MockRateLimiter::new();
        limiter
            .expect_check()
            .withf(|key, _, cost| key.as_str() == "ip:192.0.2.7" && cost.units() == 1)
            .times(1)
            .returning(|_, _, _| Ok(decision(false, 0, Some(Duration::from_secs(2)))));
        let mut verifier = MockTokenVerifier::new();
        verifier.expect_verify().never();
        let (audit, seen) = recording_audit();
        let a =
            Admission::new(AuthMode::Required(Arc::new(verifier)), Arc::new(limiter), settings(false), audit, clock());
        let err = a.authenticate(ctx(Some("garbage"))).await.unwrap_err();
        assert!(matches!(err, Refusal::RateLimited(_)), "{err:?}");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].action, AuditAction::RateLimited);
        assert_eq!(seen[0].details["key"], "ip:192.0.2.7");
    }

    #[tokio::test]
    async fn an_address_counted_caller_pays_each_operation_in_full_once() {
        let charged = Arc::new(Mutex::new(Vec::new()));
        let mut limiter = MockRateLimiter::new();
        let c = charged.clone();
        limiter.expect_check().returning(move |key, _, cost| {
            c.lock().unwrap().push((key.as_str().to_owned(), cost.units()));
            Ok(decision(true, 5, None))
        });
        let (audit, _) = recording_audit();
        let a = Admission::new(disabled(), Arc::new(limiter), settings(true), audit, clock());
        let caller = a.authenticate(ctx(None)).await.unwrap();
        a.admit(&caller, Cost::new(5)).await.unwrap();
        a.admit(&caller, Cost::ONE).await.unwrap();
        let charged = charged.lock().unwrap();
        let units: u32 = charged.iter().map(|(_, u)| u).sum();
        assert_eq!(units, 6, "one unit before authentication, four more for the first call, one for the next");
        assert!(charged.iter().all(|(k, _)| k == "ip:192.0.2.7"), "{charged:?}");
    }

    /// A limiter that allows `failures` charges of each `authfail:` key, then refuses them
    /// (with a 30 s wait), and allows everything else; it counts the charges by key.
    fn failure_allowance(failures: u32) -> (Arc<MockRateLimiter>, Arc<Mutex<Vec<String>>>) {
        let charged = Arc::new(Mutex::new(Vec::<String>::new()));
        let c = charged.clone();
        let mut l = MockRateLimiter::new();
        l.expect_check().returning(move |key, _, _| {
            let mut c = c.lock().unwrap();
            c.push(key.as_str().to_owned());
            let spent = c.iter().filter(|k| *k == key.as_str()).count() as u32;
            let allowed = !key.as_str().starts_with("authfail:") || spent <= failures;
            Ok(decision(allowed, 0, (!allowed).then(|| Duration::from_secs(30))))
        });
        (Arc::new(l), charged)
    }

    #[tokio::test]
    async fn a_flood_of_bad_tokens_meets_429_before_the_verifier_and_the_audit_sink() {
        let verifications = Arc::new(AtomicU32::new(0));
        let v = verifications.clone();
        let mut verifier = MockTokenVerifier::new();
        verifier.expect_verify().returning(move |c| {
            v.fetch_add(1, Ordering::SeqCst);
            if c.token == "good" {
                Ok(Principal::new(
                    PrincipalId::new("https://iss", "bob"),
                    vec![Role::Developer],
                    Vec::<String>::new(),
                    None,
                ))
            } else {
                Err(TokenError::Invalid { reason: "bad_signature", description: "signature mismatch".into() })
            }
        });
        let (limiter, charged) = failure_allowance(5);
        let (audit, seen) = recording_audit();
        let policy = QuotaPolicy::per_minute(5, 5).unwrap();
        let a = Admission::new(AuthMode::Required(Arc::new(verifier)), limiter, settings(true), audit, clock())
            .with_auth_failure_limit(Some(policy));
        let mut unauthenticated = 0;
        let mut limited = 0;
        for _ in 0..100 {
            match a.authenticate(ctx(Some("garbage"))).await {
                Err(Refusal::Unauthenticated(_)) => unauthenticated += 1,
                Err(Refusal::RateLimited(Limited { decision, quota, policy: refused_by })) => {
                    assert_eq!(decision.retry_after, Some(Duration::from_secs(30)));
                    assert_eq!(
                        (quota, refused_by),
                        (Quota::AuthFailures, policy),
                        "the allowance refused, not the rate"
                    );
                    limited += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((unauthenticated, limited), (5, 95), "429 once the allowance is spent");
        assert_eq!(verifications.load(Ordering::SeqCst), 6, "refused before the verifier after that");
        assert_eq!(charged.lock().unwrap().len(), 6, "a blocked address does not even ask the limiter");
        {
            let seen = seen.lock().unwrap();
            let actions: Vec<_> = seen.iter().map(|r| r.action).collect();
            assert_eq!(actions, [AuditAction::AuthFailed, AuditAction::RateLimited], "one record of each, not 100");
            assert_eq!(seen[1].details["quota"], "auth_failures");
            assert_eq!(seen[1].details["key"], "authfail:ip:192.0.2.7");
        }
        // Another address is not affected, nor is a good token's principal limit touched.
        let mut other = ctx(Some("good"));
        other.client_addr = Some("198.51.100.1".parse().unwrap());
        a.authenticate(other).await.unwrap();
        // The window's counts are written as summaries.
        a.flush_summaries(true).await;
        let seen = seen.lock().unwrap();
        let summaries: Vec<_> = seen.iter().filter(|r| r.details["summary"] == true).collect();
        assert_eq!(summaries.len(), 2, "{seen:?}");
        let failed = summaries.iter().find(|r| r.action == AuditAction::AuthFailed).unwrap();
        assert_eq!(failed.details["suppressed"], 5, "six failures verified, the first written in full");
        assert_eq!(failed.details["by_reason"]["bad_signature"], 5);
        assert_eq!(failed.client_addr.as_deref(), Some("192.0.2.7"));
        let limited = summaries.iter().find(|r| r.action == AuditAction::RateLimited).unwrap();
        assert_eq!(limited.details["suppressed"], 94);
        assert_eq!(seen.len(), 5, "two records, an auth.succeeded and two summaries for 101 requests");
    }

    #[tokio::test]
    async fn without_a_failure_limit_failures_are_never_charged() {
        let mut limiter = MockRateLimiter::new();
        limiter.expect_check().never();
        let (audit, _) = recording_audit();
        let a = Admission::new(required(vec![Role::Admin]), Arc::new(limiter), settings(true), audit, clock());
        for _ in 0..10 {
            assert!(matches!(a.authenticate(ctx(Some("forged"))).await, Err(Refusal::Unauthenticated(_))));
        }
    }

    #[tokio::test]
    async fn an_unreachable_verifier_is_unavailable_not_unauthenticated() {
        let mut v = MockTokenVerifier::new();
        v.expect_verify().returning(|_| Err(TokenError::Unavailable { source: "jwks fetch failed".into() }));
        let (audit, seen) = recording_audit();
        let a = Admission::new(AuthMode::Required(Arc::new(v)), allow_all(), None, audit, clock());
        let err = a.authenticate(ctx(Some("t"))).await.unwrap_err();
        assert!(matches!(err, Refusal::Unavailable { component: "token_verifier", .. }));
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn rate_limit_uses_the_cost_and_the_principal_key() {
        let mut limiter = MockRateLimiter::new();
        limiter
            .expect_check()
            .withf(|key, _, cost| key.as_str() == "user:https://iss#alice" && cost.units() == 5)
            .times(1)
            .returning(|_, _, _| Ok(decision(false, 0, Some(Duration::from_secs(3)))));
        let (audit, seen) = recording_audit();
        let a = Admission::new(required(vec![Role::Developer]), Arc::new(limiter), settings(true), audit, clock());
        let probe = Probe::default();
        let err = probe.call(&a, ctx(Some("good")), json!({})).await.unwrap_err();
        assert_eq!(err.rate_decision().and_then(|d| d.retry_after), Some(Duration::from_secs(3)));
        assert_eq!(probe.runs(), 0);
        let seen = seen.lock().unwrap();
        let limited = seen.last().unwrap();
        assert_eq!(limited.action, AuditAction::RateLimited);
        assert_eq!(limited.actor.as_deref(), Some("https://iss#alice"));
    }

    #[tokio::test]
    async fn the_daily_quota_is_checked_after_the_short_term_limit() {
        let mut limiter = MockRateLimiter::new();
        limiter.expect_check().times(2).returning(|key, _, _| {
            let allowed = !key.as_str().starts_with("day:");
            Ok(decision(allowed, 0, (!allowed).then(|| Duration::from_secs(3_600))))
        });
        let (audit, seen) = recording_audit();
        let limits = RateLimitSettings {
            daily: Some(QuotaPolicy::new(1_000, Duration::from_secs(86_400), 1_000).unwrap()),
            ..settings(true).unwrap()
        };
        let a = Admission::new(required(vec![Role::Admin]), Arc::new(limiter), Some(limits), audit, clock());
        let err = Probe::default().call(&a, ctx(Some("good")), json!({})).await.unwrap_err();
        assert_eq!(err.rate_decision().and_then(|d| d.retry_after), Some(Duration::from_secs(3_600)));
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
            let a = Admission::new(disabled(), Arc::new(limiter), Some(limits), audit, clock());
            let probe = Probe::default();
            let result = probe.call(&a, ctx(None), json!({})).await;
            assert_eq!(result.is_ok(), should_pass, "{policy:?}: {result:?}");
            if !should_pass {
                assert!(matches!(result, Err(Refusal::Unavailable { component: "rate_limiter", .. })));
            }
            assert_eq!(probe.runs(), u32::from(should_pass));
        }
    }

    #[tokio::test]
    async fn a_role_without_the_permission_is_forbidden_before_running_and_audited() {
        let (audit, seen) = recording_audit();
        let a = Admission::new(required(vec![Role::Readonly]), allow_all(), settings(true), audit, clock());
        let probe = Probe::default();
        let err = probe.call(&a, ctx(Some("good")), json!({})).await.unwrap_err();
        match err {
            Refusal::Forbidden(d) => {
                assert_eq!(d.permission, Permission::QuantumExecute);
                assert!(d.rule.contains("readonly"), "{}", d.rule);
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
        assert_eq!(probe.runs(), 0);
        let seen = seen.lock().unwrap();
        let denied = seen.last().unwrap();
        assert_eq!(denied.action, AuditAction::ToolDenied);
        assert_eq!(denied.target.as_deref(), Some("probe"));
    }

    #[tokio::test]
    async fn a_token_in_the_wrong_place_is_a_bad_request_even_with_a_good_header() {
        let (audit, seen) = recording_audit();
        let a = Admission::new(required(vec![Role::Admin]), allow_all(), settings(true), audit, clock());
        let probe = Probe::default();
        let mut ctx = ctx(Some("good"));
        ctx.credential_problem = Some(("token_in_query", "access tokens are accepted only in the header".into()));
        let err = probe.call(&a, ctx, json!({})).await.unwrap_err();
        assert!(matches!(&err, Refusal::Unauthenticated(TokenError::BadRequest { reason: "token_in_query", .. })));
        assert_eq!(probe.runs(), 0);
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].action, AuditAction::AuthFailed);
        assert_eq!(seen[0].details["reason"], "token_in_query");
    }

    #[tokio::test]
    async fn a_failing_operation_is_audited_as_a_failure() {
        let (audit, seen) = recording_audit();
        let a = Admission::new(disabled(), allow_all(), None, audit, clock());
        let out = Probe::failing().call(&a, ctx(None), json!({})).await.unwrap();
        assert!(out.unwrap_err().contains("qubits"));
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].outcome, Outcome::Failure);
        assert!(seen[0].details["error"].as_str().unwrap().contains("qubits"));
    }

    #[tokio::test]
    async fn a_full_audit_trail_refuses_before_anything_runs() {
        let mut sink = MockAuditSink::new();
        sink.expect_accepting().return_const(false);
        sink.expect_submit().never();
        let a = Admission::new(disabled(), allow_all(), settings(true), Arc::new(sink), clock());
        let probe = Probe::default();
        let err = probe.call(&a, ctx(None), json!({})).await.unwrap_err();
        assert!(matches!(err, Refusal::Unavailable { component: "audit", .. }), "{err:?}");
        assert_eq!(probe.runs(), 0);
    }

    #[tokio::test]
    async fn a_call_whose_record_the_trail_refuses_is_answered_unavailable_not_as_done() {
        let mut sink = MockAuditSink::new();
        sink.expect_submit()
            .times(1)
            .returning(|_| Err(crate::ports::AuditSinkError::Unavailable { source: "disk full".into() }));
        sink.expect_accepting().return_const(true);
        let a = Admission::new(disabled(), allow_all(), None, Arc::new(sink), clock());
        let probe = Probe::default();
        let refused = probe.call(&a, ctx(None), json!({"x": 1})).await.unwrap_err();
        assert!(matches!(refused, Refusal::Unavailable { component: "audit", .. }), "{refused:?}");
        assert_eq!(probe.runs(), 1, "it ran (admission had the trail accepting), but is not reported as done");
    }

    #[tokio::test]
    async fn an_irreversible_operation_is_recorded_before_it_runs_or_does_not_run() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut sink = MockAuditSink::new();
        let recorded = seen.clone();
        sink.expect_submit().returning(move |r| {
            recorded.lock().unwrap().push(r.action);
            Ok(())
        });
        sink.expect_accepting().return_const(true);
        let a = Admission::new(disabled(), allow_all(), None, Arc::new(sink), clock());
        let caller = a.authenticate(ctx(None)).await.unwrap();
        let runs = AtomicU32::new(0);
        let operation = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            7
        };
        let permission = Permission::VaultWrite;
        let out = a.run_as(&caller, "delete", permission, "d".into(), true, operation(), |_| None).await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(*seen.lock().unwrap(), [AuditAction::ToolStarted, AuditAction::ToolCalled]);

        // An attempt the trail does not take: the operation never runs.
        let mut sink = MockAuditSink::new();
        sink.expect_submit()
            .times(1)
            .returning(|_| Err(crate::ports::AuditSinkError::Unavailable { source: "disk full".into() }));
        sink.expect_accepting().return_const(true);
        let a = Admission::new(disabled(), allow_all(), None, Arc::new(sink), clock());
        let caller = a.authenticate(ctx(None)).await.unwrap();
        let refused =
            a.run_as(&caller, "delete", permission, "d".into(), true, operation(), |_| None).await.unwrap_err();
        assert!(matches!(refused, Refusal::Unavailable { component: "audit", .. }), "{refused:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "only the first operation ran");
    }

    #[tokio::test]
    async fn nothing_runs_while_the_trail_cannot_take_records() {
        let mut sink = MockAuditSink::new();
        sink.expect_submit().never();
        sink.expect_accepting().return_const(false);
        let a = Admission::new(disabled(), allow_all(), None, Arc::new(sink), clock());
        let probe = Probe::default();
        let refused = probe.call(&a, ctx(None), json!({"x": 1})).await.unwrap_err();
        assert!(matches!(refused, Refusal::Unavailable { component: "audit", .. }), "{refused:?}");
        assert_eq!(probe.runs(), 0, "refused before it runs");
    }

    #[tokio::test]
    async fn a_refusal_the_trail_cannot_record_is_answered_unavailable() {
        // A forbidden call whose `tool.denied` record is not taken: 503, not a silent 403.
        let mut sink = MockAuditSink::new();
        sink.expect_submit()
            .returning(|_| Err(crate::ports::AuditSinkError::Unavailable { source: "disk full".into() }));
        sink.expect_accepting().return_const(true);
        let readonly = Principal::anonymous([Role::Readonly]);
        let a = Admission::new(AuthMode::Disabled(readonly), allow_all(), None, Arc::new(sink), clock());
        let caller = a.authenticate(ctx(None)).await.unwrap();
        let refused = a.authorize(&caller, "quantum_execute", Permission::QuantumExecute).await.unwrap_err();
        assert!(matches!(refused, Refusal::Unavailable { component: "audit", .. }), "{refused:?}");
    }
}
