//! MCP sessions: an unguessable id bound to the principal that created it, the protocol
//! version negotiated at `initialize`, and an idle and an absolute expiry.
//!
//! A session presented by anyone but its owner is reported as *not found*: a stolen or
//! guessed id must never let one caller take over another's session, nor even confirm
//! that the session exists.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::principal::PrincipalId;
use crate::time::Timestamp;

/// Bytes of entropy in a session id (256 bits, well above the 128 the design requires).
pub const SESSION_ID_ENTROPY_BYTES: usize = 32;

/// A session id: 256 random bits, written as 64 lowercase hex digits.
///
/// Hex keeps the id inside the visible-ASCII range the MCP transport requires for
/// `Mcp-Session-Id`, and parsing accepts exactly that form, so a header can never smuggle
/// anything else into a storage key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

impl SessionId {
    /// Build an id from fresh random bytes supplied by the caller's CSPRNG.
    pub fn from_entropy(bytes: [u8; SESSION_ID_ENTROPY_BYTES]) -> Self {
        Self(hex::encode(bytes))
    }

    /// Parse an id received from a client.
    ///
    /// # Errors
    /// [`SessionIdError`] when the text is not exactly 64 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, SessionIdError> {
        let well_formed =
            text.len() == SESSION_ID_ENTROPY_BYTES * 2 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if well_formed { Ok(Self(text.to_owned())) } else { Err(SessionIdError) }
    }

    /// The id as sent in `Mcp-Session-Id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// The full id is a bearer credential for the session: logs get a prefix only.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", &self.0[..8.min(self.0.len())])
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SessionId {
    type Error = SessionIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> Self {
        id.0
    }
}

/// A session id that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed session id: expected 64 lowercase hex digits")]
pub struct SessionIdError;

/// An MCP protocol revision, such as `2025-11-25`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProtocolVersion(String);

impl ProtocolVersion {
    /// Parse a revision label of the form `YYYY-MM-DD`.
    ///
    /// # Errors
    /// [`ProtocolVersionError`] naming the text when it is not of that form.
    pub fn parse(text: &str) -> Result<Self, ProtocolVersionError> {
        let b = text.as_bytes();
        let shaped = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if shaped { Ok(Self(text.to_owned())) } else { Err(ProtocolVersionError(text.chars().take(64).collect())) }
    }

    /// The revision label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProtocolVersion {
    type Error = ProtocolVersionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ProtocolVersion> for String {
    fn from(v: ProtocolVersion) -> Self {
        v.0
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A protocol version label that is not of the form `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protocol version {0:?}: expected YYYY-MM-DD")]
pub struct ProtocolVersionError(String);

/// The client's self-description from `initialize` (`clientInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client's programmatic name.
    pub name: String,
    /// The client's version string.
    pub version: String,
}

/// How long a session lives: since its last use, and at most since its creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTimeouts {
    idle: Duration,
    absolute: Duration,
}

impl SessionTimeouts {
    /// Timeouts with an idle limit no longer than the absolute one, both non-zero.
    ///
    /// # Errors
    /// [`SessionTimeoutsError`] when either is zero or the idle limit exceeds the absolute.
    pub fn new(idle: Duration, absolute: Duration) -> Result<Self, SessionTimeoutsError> {
        if idle.is_zero() || absolute.is_zero() {
            return Err(SessionTimeoutsError::Zero);
        }
        if idle > absolute {
            return Err(SessionTimeoutsError::IdleExceedsAbsolute { idle, absolute });
        }
        Ok(Self { idle, absolute })
    }

    /// Time a session may stay unused.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Time a session may live at most, however busy.
    pub fn absolute(&self) -> Duration {
        self.absolute
    }
}

impl Default for SessionTimeouts {
    /// 30 minutes idle, 24 hours absolute.
    fn default() -> Self {
        Self { idle: Duration::from_secs(30 * 60), absolute: Duration::from_secs(24 * 60 * 60) }
    }
}

/// Invalid session timeouts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionTimeoutsError {
    /// A timeout of zero would expire every session at once.
    #[error("session timeouts must be greater than zero")]
    Zero,
    /// The idle limit can never be reached.
    #[error("idle timeout {idle:?} exceeds absolute timeout {absolute:?}")]
    IdleExceedsAbsolute {
        /// The idle timeout given.
        idle: Duration,
        /// The absolute timeout given.
        absolute: Duration,
    },
}

/// A stateful-era MCP session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    id: SessionId,
    owner: PrincipalId,
    protocol_version: ProtocolVersion,
    client: ClientInfo,
    client_capabilities: serde_json::Value,
    created_at: Timestamp,
    last_seen: Timestamp,
    timeouts: SessionTimeouts,
    initialized: bool,
    #[serde(default)]
    log_level: Option<String>,
    #[serde(default)]
    resource_subscriptions: std::collections::BTreeSet<String>,
    /// Whose allowance of sessions this one counts against (see [`Session::holder`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    holder: String,
}

impl Session {
    /// A new session, created now by `owner` with the negotiated protocol version.
    pub fn new(
        id: SessionId,
        owner: PrincipalId,
        protocol_version: ProtocolVersion,
        client: ClientInfo,
        client_capabilities: serde_json::Value,
        timeouts: SessionTimeouts,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            owner,
            protocol_version,
            client,
            client_capabilities,
            created_at: now,
            last_seen: now,
            timeouts,
            initialized: false,
            log_level: None,
            resource_subscriptions: std::collections::BTreeSet::new(),
            holder: String::new(),
        }
    }

    /// The session counted against `holder`'s allowance of sessions instead of its owner's
    /// (an anonymous owner's sessions are counted per client address).
    #[must_use]
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = holder.into();
        self
    }

    /// Whose allowance of live sessions this one counts against: the holder it was opened
    /// with, else its owner. Session stores bound the live sessions per holder.
    pub fn holder(&self) -> std::borrow::Cow<'_, str> {
        if self.holder.is_empty() {
            std::borrow::Cow::Owned(self.owner.to_string())
        } else {
            self.holder.as_str().into()
        }
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The principal the session is bound to.
    pub fn owner(&self) -> &PrincipalId {
        &self.owner
    }

    /// The protocol version negotiated at `initialize`.
    pub fn protocol_version(&self) -> &ProtocolVersion {
        &self.protocol_version
    }

    /// The client's self-description.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// The capabilities the client declared, as far as the server uses them.
    pub fn client_capabilities(&self) -> &serde_json::Value {
        &self.client_capabilities
    }

    /// When the session was created.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// When the session was last used.
    pub fn last_seen(&self) -> Timestamp {
        self.last_seen
    }

    /// The session's timeouts.
    pub fn timeouts(&self) -> SessionTimeouts {
        self.timeouts
    }

    /// Whether the client has sent `notifications/initialized`.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Record `notifications/initialized`.
    pub fn mark_initialized(&mut self) {
        self.initialized = true;
    }

    /// The minimum log level the client asked for (`logging/setLevel`), if any.
    pub fn log_level(&self) -> Option<&str> {
        self.log_level.as_deref()
    }

    /// Record the client's `logging/setLevel`.
    pub fn set_log_level(&mut self, level: impl Into<String>) {
        self.log_level = Some(level.into());
    }

    /// The resource URIs the client subscribed to (`resources/subscribe`).
    pub fn resource_subscriptions(&self) -> &std::collections::BTreeSet<String> {
        &self.resource_subscriptions
    }

    /// Subscribe to `uri`; returns whether it was new.
    pub fn subscribe(&mut self, uri: impl Into<String>) -> bool {
        self.resource_subscriptions.insert(uri.into())
    }

    /// Unsubscribe from `uri`; returns whether it was subscribed.
    pub fn unsubscribe(&mut self, uri: &str) -> bool {
        self.resource_subscriptions.remove(uri)
    }

    /// The instant the session expires unless used again: the earlier of the idle and the
    /// absolute deadline.
    pub fn expires_at(&self) -> Timestamp {
        let idle = self.last_seen.saturating_add(self.timeouts.idle);
        let absolute = self.created_at.saturating_add(self.timeouts.absolute);
        idle.min(absolute)
    }

    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at()
    }

    /// Time left before expiry at `now` (zero once expired).
    pub fn time_to_live(&self, now: Timestamp) -> Duration {
        self.expires_at().saturating_duration_since(now)
    }

    /// Record a use at `now`; the last-seen time never moves backwards.
    pub fn touch(&mut self, now: Timestamp) {
        self.last_seen = self.last_seen.max(now);
    }

    /// Decide whether `caller` may use this session at `now`.
    ///
    /// # Errors
    /// [`SessionAccessError::NotFound`] when the caller is not the owner (indistinguishable,
    /// on purpose, from an unknown id) and [`SessionAccessError::Expired`] once expired.
    pub fn check_access(&self, caller: &PrincipalId, now: Timestamp) -> Result<(), SessionAccessError> {
        if &self.owner != caller {
            return Err(SessionAccessError::NotFound { owner_mismatch: true });
        }
        if self.is_expired(now) {
            return Err(SessionAccessError::Expired);
        }
        Ok(())
    }
}

/// Why a session may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionAccessError {
    /// Unknown to the caller. `owner_mismatch` tells the audit trail that the id exists but
    /// belongs to someone else; it must never reach the client.
    #[error("session not found")]
    NotFound {
        /// True when the id belongs to another principal.
        owner_mismatch: bool,
    },
    /// The session's idle or absolute deadline has passed.
    #[error("session expired")]
    Expired,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> PrincipalId {
        PrincipalId::new("https://issuer.example", "alice")
    }

    fn session(now: Timestamp) -> Session {
        Session::new(
            SessionId::from_entropy([7; SESSION_ID_ENTROPY_BYTES]),
            alice(),
            ProtocolVersion::parse("2025-11-25").unwrap(),
            ClientInfo { name: "test".into(), version: "1".into() },
            serde_json::json!({}),
            SessionTimeouts::new(Duration::from_secs(60), Duration::from_secs(300)).unwrap(),
            now,
        )
    }

    #[test]
    fn ids_round_trip_and_reject_anything_else() {
        let id = SessionId::from_entropy([0xab; SESSION_ID_ENTROPY_BYTES]);
        assert_eq!(id.as_str().len(), 64);
        assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
        for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            assert_eq!(SessionId::parse(bad), Err(SessionIdError), "{bad:?}");
        }
        assert!(!format!("{id:?}").contains(id.as_str()), "Debug must not leak the id");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<SessionId>("\"nope\"").is_err());
    }

    #[test]
    fn protocol_versions_are_dates() {
        assert!(ProtocolVersion::parse("2026-07-28").is_ok());
        for bad in ["", "2026-7-28", "2026/07/28", "latest", "2026-07-28x"] {
            assert!(ProtocolVersion::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timeouts_are_validated() {
        assert_eq!(SessionTimeouts::new(Duration::ZERO, Duration::from_secs(1)), Err(SessionTimeoutsError::Zero));
        assert!(matches!(
            SessionTimeouts::new(Duration::from_secs(2), Duration::from_secs(1)),
            Err(SessionTimeoutsError::IdleExceedsAbsolute { .. })
        ));
    }

    #[test]
    fn idle_expiry_moves_with_use_but_absolute_expiry_does_not() {
        let t0 = Timestamp::from_secs(1_000);
        let mut s = session(t0);
        assert_eq!(s.expires_at(), Timestamp::from_secs(1_060));
        assert!(!s.is_expired(Timestamp::from_secs(1_059)));
        assert!(s.is_expired(Timestamp::from_secs(1_060)));

        // Used every 50 s: the idle deadline keeps moving ...
        for k in 1..=5 {
            s.touch(Timestamp::from_secs(1_000 + 50 * k));
        }
        assert_eq!(s.last_seen(), Timestamp::from_secs(1_250));
        // ... but never past the absolute one.
        assert_eq!(s.expires_at(), Timestamp::from_secs(1_300));
        assert!(s.is_expired(Timestamp::from_secs(1_300)));
        assert_eq!(s.time_to_live(Timestamp::from_secs(1_290)), Duration::from_secs(10));
    }

    #[test]
    fn touch_never_moves_backwards() {
        let mut s = session(Timestamp::from_secs(100));
        s.touch(Timestamp::from_secs(150));
        s.touch(Timestamp::from_secs(120));
        assert_eq!(s.last_seen(), Timestamp::from_secs(150));
    }

    #[test]
    fn another_principal_gets_not_found_never_the_session() {
        let t0 = Timestamp::from_secs(0);
        let s = session(t0);
        assert_eq!(s.check_access(&alice(), t0), Ok(()));
        let mallory = PrincipalId::new("https://issuer.example", "mallory");
        assert_eq!(s.check_access(&mallory, t0), Err(SessionAccessError::NotFound { owner_mismatch: true }));
        // Same subject from another issuer is another principal.
        let other_issuer = PrincipalId::new("https://evil.example", "alice");
        assert!(matches!(s.check_access(&other_issuer, t0), Err(SessionAccessError::NotFound { .. })));
        // Expiry is reported to the owner only.
        let late = Timestamp::from_secs(61);
        assert_eq!(s.check_access(&alice(), late), Err(SessionAccessError::Expired));
        assert_eq!(SessionAccessError::NotFound { owner_mismatch: true }.to_string(), "session not found");
    }

    #[test]
    fn sessions_survive_serialization() {
        let mut s = session(Timestamp::from_secs(5));
        s.mark_initialized();
        s.set_log_level("debug");
        assert!(s.subscribe("test://a"));
        assert!(!s.subscribe("test://a"));
        let back: Session = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(back.is_initialized());
        assert_eq!(back.log_level(), Some("debug"));
        assert_eq!(back.resource_subscriptions().len(), 1);
        let mut back = back;
        assert!(back.unsubscribe("test://a"));
        assert!(!back.unsubscribe("test://a"));
    }
}
