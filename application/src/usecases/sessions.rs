//! Opening, resuming and closing stateful-era MCP sessions.
//!
//! The service mints unguessable ids, binds each session to the principal that opened it,
//! and audits creation, termination, and any attempt to use a session as someone else.

use std::sync::Arc;
use std::time::Duration;

use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};
use qudag_domain::principal::PrincipalId;
use qudag_domain::session::{
    ClientInfo, ProtocolVersion, SESSION_ID_ENTROPY_BYTES, Session, SessionAccessError, SessionId, SessionTimeouts,
};
use serde_json::json;

use crate::admission::{Admission, RequestContext};
use crate::ports::{Clock, SessionStore, SessionStoreError};

/// A use of the last-seen time finer than this is not written back: a busy session would
/// otherwise cost a store write on every request for no change in its expiry worth having.
const TOUCH_GRANULARITY: Duration = Duration::from_secs(1);

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Unknown, expired, or not the caller's (HTTP 404).
    #[error("session not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] SessionStoreError),
    /// The caller has as many live sessions as it may (HTTP 429).
    #[error(transparent)]
    Limit(#[from] crate::limits::Limit),
    /// The operating system's random source failed; no id could be minted.
    #[error("no entropy for a session id: {0}")]
    Entropy(String),
    /// The change could not be recorded in the audit trail, so it is not reported as done
    /// (HTTP 503 with `Retry-After`).
    #[error(transparent)]
    Unrecorded(crate::admission::Refusal),
}

/// Session handling over a [`SessionStore`].
pub struct SessionService {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    admission: Arc<Admission>,
    timeouts: SessionTimeouts,
    per_holder: usize,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").field("timeouts", &self.timeouts).finish_non_exhaustive()
    }
}

impl SessionService {
    /// A service storing sessions in `store`, auditing through `admission`.
    pub fn new(
        store: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
        admission: Arc<Admission>,
        timeouts: SessionTimeouts,
    ) -> Self {
        Self { store, clock, admission, timeouts, per_holder: crate::limits::CallerLimits::default().sessions }
    }

    /// At most `max` live sessions per caller (`QUDAG_MAX_SESSIONS_PER_PRINCIPAL`).
    #[must_use]
    pub fn with_per_holder(mut self, max: usize) -> Self {
        self.per_holder = max;
        self
    }

    /// How many live sessions the store holds (may be approximate for a shared store).
    ///
    /// # Errors
    /// `Store` when the store cannot count.
    pub async fn count(&self) -> Result<usize, SessionError> {
        Ok(self.store.count(self.clock.now()).await?)
    }

    /// Open a new session for `owner`, counted against `holder`'s allowance of live
    /// sessions (see [`crate::limits::holder_of`]).
    ///
    /// # Errors
    /// `Limit` when `holder` has as many live sessions as it may, `Store` when the store
    /// refuses (full, unavailable), `Entropy` when no id can be made.
    pub async fn open(
        &self,
        ctx: &RequestContext,
        owner: &PrincipalId,
        holder: &str,
        protocol_version: ProtocolVersion,
        client: ClientInfo,
        client_capabilities: serde_json::Value,
    ) -> Result<Session, SessionError> {
        let now = self.clock.now();
        // A collision of 256 random bits will not happen; retrying once on Conflict keeps
        // even a broken random source from surfacing as a confusing error.
        for _ in 0..2 {
            let session = Session::new(
                new_session_id()?,
                owner.clone(),
                protocol_version.clone(),
                client.clone(),
                client_capabilities.clone(),
                self.timeouts,
                now,
            )
            .with_holder(holder);
            match self.store.create(&session, self.per_holder).await {
                Ok(()) => {
                    self.admission
                        .audit(
                            ctx,
                            AuditRecord::new(now, AuditAction::SessionCreated, Outcome::Success)
                                .actor(owner.to_string())
                                .target(session_ref(session.id()))
                                .details(json!({
                                    "protocol_version": session.protocol_version().as_str(),
                                    "client": { "name": &session.client().name, "version": &session.client().version },
                                })),
                        )
                        .await
                        .map_err(SessionError::Unrecorded)?;
                    return Ok(session);
                }
                Err(SessionStoreError::Conflict) => continue,
                Err(SessionStoreError::HolderLimit { limit }) => {
                    return Err(crate::limits::Limit::sessions(limit).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SessionError::Store(SessionStoreError::Conflict))
    }

    /// The caller's live session `id`, marked as used now. Shared as the store hands it
    /// out: a request copies the session only when it records a use (at most once per
    /// second) or changes it.
    ///
    /// # Errors
    /// `NotFound` when unknown, expired or owned by someone else (that last case is
    /// audited as a hijack attempt); `Store` on store failure.
    pub async fn resume(
        &self,
        ctx: &RequestContext,
        id: &SessionId,
        caller: &PrincipalId,
    ) -> Result<Arc<Session>, SessionError> {
        let now = self.clock.now();
        let mut session = self.store.load(id, now).await?.ok_or(SessionError::NotFound)?;
        self.check_access(ctx, &session, caller).await?;
        if now.saturating_duration_since(session.last_seen()) >= TOUCH_GRANULARITY {
            Arc::make_mut(&mut session).touch(now);
            match self.store.save(&session).await {
                Ok(()) => {}
                Err(SessionStoreError::NotFound) => return Err(SessionError::NotFound),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(session)
    }

    /// Write back a session whose state changed (e.g. after `notifications/initialized`).
    ///
    /// # Errors
    /// `NotFound` when it was deleted meanwhile; `Store`.
    pub async fn save(&self, session: &Session) -> Result<(), SessionError> {
        match self.store.save(session).await {
            Ok(()) => Ok(()),
            Err(SessionStoreError::NotFound) => Err(SessionError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// End the caller's session `id`.
    ///
    /// # Errors
    /// `NotFound` when unknown or not the caller's; `Store`.
    pub async fn close(&self, ctx: &RequestContext, id: &SessionId, caller: &PrincipalId) -> Result<(), SessionError> {
        let now = self.clock.now();
        let session = self.store.load(id, now).await?.ok_or(SessionError::NotFound)?;
        self.check_access(ctx, &session, caller).await?;
        if !self.store.delete(id).await? {
            return Err(SessionError::NotFound);
        }
        self.admission
            .audit(
                ctx,
                AuditRecord::new(now, AuditAction::SessionTerminated, Outcome::Success)
                    .actor(caller.to_string())
                    .target(session_ref(id))
                    .details(json!({ "reason": "client_delete" })),
            )
            .await
            .map_err(SessionError::Unrecorded)
    }

    async fn check_access(
        &self,
        ctx: &RequestContext,
        session: &Session,
        caller: &PrincipalId,
    ) -> Result<(), SessionError> {
        match session.check_access(caller, self.clock.now()) {
            Ok(()) => Ok(()),
            Err(SessionAccessError::NotFound { owner_mismatch: true }) => {
                self.admission
                    .audit(
                        ctx,
                        AuditRecord::new(self.clock.now(), AuditAction::SessionHijackAttempt, Outcome::Denied)
                            .actor(caller.to_string())
                            .target(session_ref(session.id()))
                            .details(json!({ "owner": session.owner().to_string() })),
                    )
                    .await
                    .map_err(SessionError::Unrecorded)?;
                Err(SessionError::NotFound)
            }
            Err(_) => Err(SessionError::NotFound),
        }
    }
}

/// How a session is named in the audit trail: a digest, because the id itself is a
/// credential and the audit log is readable by auditors.
pub fn session_ref(id: &SessionId) -> String {
    format!("session:{}", &blake3_hex(id.as_str())[..16])
}

fn blake3_hex(text: &str) -> String {
    qudag_domain::audit::digest_json(&serde_json::Value::String(text.to_owned()))
}

/// A fresh session id from the operating system's CSPRNG.
///
/// # Errors
/// `Entropy` when the random source fails.
pub fn new_session_id() -> Result<SessionId, SessionError> {
    let mut bytes = [0u8; SESSION_ID_ENTROPY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Entropy(e.to_string()))?;
    Ok(SessionId::from_entropy(bytes))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use qudag_domain::Timestamp;
    use qudag_domain::principal::Principal;
    use qudag_domain::rbac::Role;

    use super::*;
    use crate::admission::AuthMode;
    use crate::ports::{MockAuditSink, MockRateLimiter, MockSessionStore};
    use crate::testkit::ManualClock;

    fn alice() -> PrincipalId {
        PrincipalId::new("https://iss", "alice")
    }

    fn service(store: MockSessionStore, clock: Arc<ManualClock>) -> (SessionService, Arc<Mutex<Vec<AuditRecord>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut sink = MockAuditSink::new();
        sink.expect_submit().returning(move |r| {
            s.lock().unwrap().push(r);
            Ok(())
        });
        sink.expect_accepting().return_const(true);
        let admission = Arc::new(Admission::new(
            AuthMode::Disabled(Principal::anonymous([Role::Admin])),
            Arc::new(MockRateLimiter::new()),
            None,
            Arc::new(sink),
            clock.clone(),
        ));
        (SessionService::new(Arc::new(store), clock, admission, SessionTimeouts::default()), seen)
    }

    fn stored(now: Timestamp) -> Session {
        Session::new(
            new_session_id().unwrap(),
            alice(),
            ProtocolVersion::parse("2025-11-25").unwrap(),
            ClientInfo::default(),
            json!({}),
            SessionTimeouts::default(),
            now,
        )
    }

    #[test]
    fn minted_ids_are_distinct_and_well_formed() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_ne!(a, b);
        assert!(SessionId::parse(a.as_str()).is_ok());
        assert!(!session_ref(&a).contains(a.as_str()));
    }

    #[tokio::test]
    async fn open_stores_the_session_and_audits_without_the_id() {
        let mut store = MockSessionStore::new();
        store.expect_create().times(1).returning(|_, _| Ok(()));
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(10)));
        let (svc, seen) = service(store, clock);
        let s = svc
            .open(
                &RequestContext::default(),
                &alice(),
                "user:alice",
                ProtocolVersion::parse("2025-06-18").unwrap(),
                ClientInfo::default(),
                json!({}),
            )
            .await
            .unwrap();
        assert_eq!(s.owner(), &alice());
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].action, AuditAction::SessionCreated);
        assert!(!serde_json::to_string(&seen[0]).unwrap().contains(s.id().as_str()));
    }

    #[tokio::test]
    async fn open_retries_once_on_an_id_collision() {
        let mut store = MockSessionStore::new();
        let calls = Mutex::new(0);
        store.expect_create().times(2).returning(move |_, _| {
            let mut c = calls.lock().unwrap();
            *c += 1;
            if *c == 1 { Err(SessionStoreError::Conflict) } else { Ok(()) }
        });
        let (svc, _) = service(store, Arc::new(ManualClock::new(Timestamp::from_secs(1))));
        let version = ProtocolVersion::parse("2025-06-18").unwrap();
        assert!(
            svc.open(&RequestContext::default(), &alice(), "user:alice", version, ClientInfo::default(), json!({}))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_holder_at_its_limit_is_refused_naming_the_setting() {
        let mut store = MockSessionStore::new();
        store
            .expect_create()
            .withf(|s, max| s.holder() == "ip:192.0.2.1" && *max == 3)
            .returning(|_, max| Err(SessionStoreError::HolderLimit { limit: max }));
        let (svc, seen) = service(store, Arc::new(ManualClock::new(Timestamp::from_secs(1))));
        let svc = svc.with_per_holder(3);
        let version = ProtocolVersion::parse("2025-06-18").unwrap();
        let err = svc
            .open(&RequestContext::default(), &alice(), "ip:192.0.2.1", version, ClientInfo::default(), json!({}))
            .await
            .unwrap_err();
        match err {
            SessionError::Limit(limit) => {
                assert_eq!((limit.max, limit.setting), (3, "QUDAG_MAX_SESSIONS_PER_PRINCIPAL"));
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        assert!(seen.lock().unwrap().is_empty(), "nothing was created");
    }

    #[tokio::test]
    async fn resume_by_another_principal_is_not_found_and_audited() {
        let session = stored(Timestamp::from_secs(100));
        let id = session.id().clone();
        let mut store = MockSessionStore::new();
        store.expect_load().returning(move |_, _| Ok(Some(Arc::new(session.clone()))));
        store.expect_save().never();
        let (svc, seen) = service(store, Arc::new(ManualClock::new(Timestamp::from_secs(200))));
        let mallory = PrincipalId::new("https://iss", "mallory");
        let err = svc.resume(&RequestContext::default(), &id, &mallory).await.unwrap_err();
        assert!(matches!(err, SessionError::NotFound));
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].action, AuditAction::SessionHijackAttempt);
        assert_eq!(seen[0].actor.as_deref(), Some("https://iss#mallory"));
    }

    #[tokio::test]
    async fn resume_touches_at_most_once_per_granule() {
        let session = stored(Timestamp::from_secs(100));
        let id = session.id().clone();
        let mut store = MockSessionStore::new();
        store.expect_load().returning(move |_, _| Ok(Some(Arc::new(session.clone()))));
        store.expect_save().times(1).withf(|s| s.last_seen() == Timestamp::from_secs(105)).returning(|_| Ok(()));
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(100_000_500)));
        let (svc, _) = service(store, clock.clone());
        // Half a millisecond after creation: no write.
        svc.resume(&RequestContext::default(), &id, &alice()).await.unwrap();
        clock.set(Timestamp::from_secs(105));
        let s = svc.resume(&RequestContext::default(), &id, &alice()).await.unwrap();
        assert_eq!(s.last_seen(), Timestamp::from_secs(105));
    }

    #[tokio::test]
    async fn close_deletes_and_audits_and_refuses_strangers() {
        let session = stored(Timestamp::from_secs(100));
        let id = session.id().clone();
        let mut store = MockSessionStore::new();
        store.expect_load().returning(move |_, _| Ok(Some(Arc::new(session.clone()))));
        store.expect_delete().times(1).returning(|_| Ok(true));
        let (svc, seen) = service(store, Arc::new(ManualClock::new(Timestamp::from_secs(101))));
        let stranger = PrincipalId::new("https://iss", "eve");
        assert!(matches!(svc.close(&RequestContext::default(), &id, &stranger).await, Err(SessionError::NotFound)));
        svc.close(&RequestContext::default(), &id, &alice()).await.unwrap();
        let actions: Vec<_> = seen.lock().unwrap().iter().map(|r| r.action).collect();
        assert_eq!(actions, vec![AuditAction::SessionHijackAttempt, AuditAction::SessionTerminated]);
    }

    #[tokio::test]
    async fn a_store_outage_surfaces_as_a_store_error() {
        let mut store = MockSessionStore::new();
        store.expect_load().returning(|_, _| Err(SessionStoreError::Unavailable { source: "down".into() }));
        let (svc, _) = service(store, Arc::new(ManualClock::new(Timestamp::from_secs(1))));
        let err = svc.resume(&RequestContext::default(), &new_session_id().unwrap(), &alice()).await.unwrap_err();
        assert!(matches!(err, SessionError::Store(SessionStoreError::Unavailable { .. })));
    }
}
