//! Who is calling: principals, and the rules for accepting a verified token's claims.
//!
//! Signature checking belongs to the token-verifier adapter; what a signed token must
//! *say* to be accepted is decided here: the exact issuer, our audience among its
//! audiences (RFC 8707 resource indicator), a mandatory expiry, and `nbf`/`iat` honoured,
//! all with a leeway bounded to one minute.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rbac::{Role, Scope};
use crate::time::Timestamp;

/// The stable identity of a caller: a subject as named by one issuer.
///
/// Two issuers may hand out the same `sub`; they are different principals.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PrincipalId {
    issuer: String,
    subject: String,
}

impl PrincipalId {
    /// The issuer under which anonymous callers are filed when authentication is off.
    pub const ANONYMOUS_ISSUER: &'static str = "urn:qudag:anonymous";

    /// A principal named `subject` by `issuer`.
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), subject: subject.into() }
    }

    /// The principal used for every caller when authentication is disabled.
    pub fn anonymous() -> Self {
        Self::new(Self::ANONYMOUS_ISSUER, "anonymous")
    }

    /// Whether this is the anonymous principal.
    pub fn is_anonymous(&self) -> bool {
        self.issuer == Self::ANONYMOUS_ISSUER
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The subject (`sub`).
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.issuer, self.subject)
    }
}

/// An authenticated (or, with authentication off, anonymous) caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    id: PrincipalId,
    roles: BTreeSet<Role>,
    scopes: BTreeSet<String>,
    expires_at: Option<Timestamp>,
}

impl Principal {
    /// A principal with the given roles and scopes, valid until `expires_at`.
    pub fn new(
        id: PrincipalId,
        roles: impl IntoIterator<Item = Role>,
        scopes: impl IntoIterator<Item = String>,
        expires_at: Option<Timestamp>,
    ) -> Self {
        Self { id, roles: roles.into_iter().collect(), scopes: scopes.into_iter().collect(), expires_at }
    }

    /// The anonymous caller of an unauthenticated deployment, holding `roles` and every
    /// scope (there is no token to narrow them).
    pub fn anonymous(roles: impl IntoIterator<Item = Role>) -> Self {
        Self::new(PrincipalId::anonymous(), roles, Scope::ALL.map(|s| s.as_str().to_owned()), None)
    }

    /// The caller's identity.
    pub fn id(&self) -> &PrincipalId {
        &self.id
    }

    /// The caller's roles (unknown role names in the token are dropped).
    pub fn roles(&self) -> &BTreeSet<Role> {
        &self.roles
    }

    /// The scopes the token was granted.
    pub fn scopes(&self) -> &BTreeSet<String> {
        &self.scopes
    }

    /// When the credential expires, if it does.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }
}

/// The claims of a token whose signature has already been checked, as the verifier
/// extracted them. Roles and scopes are the raw strings from the configured claim paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// `iss`
    pub issuer: Option<String>,
    /// `sub`
    pub subject: Option<String>,
    /// `aud`, as a list even when the token carries a single string.
    pub audience: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: Option<u64>,
    /// `nbf`, seconds since the epoch.
    pub not_before: Option<u64>,
    /// `iat`, seconds since the epoch.
    pub issued_at: Option<u64>,
    /// Role names from the configured roles claim.
    pub roles: Vec<String>,
    /// Scopes from `scope` (space-separated) or `scp`.
    pub scopes: Vec<String>,
}

impl Claims {
    /// The first numeric-date claim (`exp`, `nbf`, `iat`) that is present but not a
    /// number of seconds: a malformed token, which must not pass as one without it.
    pub fn malformed_date(claims: &Map<String, Value>) -> Option<&'static str> {
        ["exp", "nbf", "iat"].into_iter().find(|name| claims.get(*name).is_some_and(|v| seconds(Some(v)).is_none()))
    }

    /// The domain's view of `claims`. `scope` (space-separated) and `scp` (array or string)
    /// both give scopes; `aud` may be a string or an array.
    pub fn from_json(claims: &Map<String, Value>, roles: &RolesClaim) -> Self {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let mut scopes = strings(claims.get("scope"));
        scopes.extend(strings(claims.get("scp")));
        Self {
            issuer: text("iss"),
            subject: text("sub"),
            audience: strings(claims.get("aud")).into_iter().filter(|a| !a.is_empty()).collect(),
            expires_at: seconds(claims.get("exp")),
            not_before: seconds(claims.get("nbf")),
            issued_at: seconds(claims.get("iat")),
            roles: roles.roles(claims),
            scopes,
        }
    }
}

/// Where a token carries its roles.
///
/// The name is tried first as one top-level claim (so an Auth0 namespaced claim such as
/// `https://qudag.example/roles` works), then as a dotted path into nested objects (so
/// Keycloak's `realm_access.roles` works).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolesClaim(String);

impl RolesClaim {
    /// A claim path; `roles` is the default.
    pub fn new(path: impl Into<String>) -> Self {
        Self(path.into())
    }

    /// The path as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn find<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        if let Some(v) = claims.get(&self.0) {
            return Some(v);
        }
        let mut parts = self.0.split('.');
        let mut current = claims.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    /// The role names: an array of strings, or one string of space-separated names.
    pub fn roles(&self, claims: &Map<String, Value>) -> Vec<String> {
        strings(self.find(claims))
    }
}

impl Default for RolesClaim {
    fn default() -> Self {
        Self::new("roles")
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn seconds(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    }
}

/// The most clock skew we ever tolerate between issuer and server.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// What a token's claims must say for us to accept it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRules {
    issuer: String,
    audience: String,
    leeway: Duration,
}

impl ClaimRules {
    /// Rules for tokens from `issuer` meant for `audience`, with `leeway` for clock skew.
    ///
    /// # Errors
    /// [`ClaimRulesError`] when the issuer or audience is empty or the leeway exceeds
    /// [`MAX_LEEWAY`].
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        leeway: Duration,
    ) -> Result<Self, ClaimRulesError> {
        let issuer = issuer.into();
        let audience = audience.into();
        if issuer.is_empty() {
            return Err(ClaimRulesError::EmptyIssuer);
        }
        if audience.is_empty() {
            return Err(ClaimRulesError::EmptyAudience);
        }
        if leeway > MAX_LEEWAY {
            return Err(ClaimRulesError::LeewayTooLarge(leeway));
        }
        Ok(Self { issuer, audience, leeway })
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience that must be among the token's.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Accept `claims` at `now`, or say which rule they break.
    ///
    /// # Errors
    /// The first [`ClaimError`] found, checked in the order issuer, subject, audience,
    /// expiry, not-before, issued-at.
    pub fn accept(&self, claims: &Claims, now: Timestamp) -> Result<Principal, ClaimError> {
        let issuer = claims.issuer.as_deref().ok_or(ClaimError::MissingIssuer)?;
        // Exact comparison: no normalisation of trailing slashes or case, as RFC 8414 §3.3
        // and OIDC Discovery §4.3 require the issuer to be identical.
        if issuer != self.issuer {
            return Err(ClaimError::IssuerMismatch { expected: self.issuer.clone(), actual: issuer.to_owned() });
        }
        let subject = claims.subject.as_deref().filter(|s| !s.is_empty()).ok_or(ClaimError::MissingSubject)?;
        if !claims.audience.iter().any(|a| a == &self.audience) {
            return Err(ClaimError::AudienceMismatch {
                expected: self.audience.clone(),
                actual: claims.audience.clone(),
            });
        }
        let exp = claims.expires_at.ok_or(ClaimError::MissingExpiry)?;
        let leeway = self.leeway.as_secs();
        let now_s = now.as_secs();
        if now_s >= exp.saturating_add(leeway) {
            return Err(ClaimError::Expired { expired_at: exp });
        }
        if let Some(nbf) = claims.not_before
            && now_s.saturating_add(leeway) < nbf
        {
            return Err(ClaimError::NotYetValid { not_before: nbf });
        }
        if let Some(iat) = claims.issued_at
            && now_s.saturating_add(leeway) < iat
        {
            return Err(ClaimError::IssuedInFuture { issued_at: iat });
        }
        let roles = claims.roles.iter().filter_map(|r| Role::parse(r));
        let scopes = claims.scopes.iter().filter(|s| !s.is_empty()).cloned();
        Ok(Principal::new(PrincipalId::new(issuer, subject), roles, scopes, Some(Timestamp::from_secs(exp))))
    }
}

/// Invalid claim rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRulesError {
    /// No issuer to compare against.
    #[error("the expected issuer must not be empty")]
    EmptyIssuer,
    /// No audience to compare against.
    #[error("the expected audience must not be empty")]
    EmptyAudience,
    /// More skew than we ever tolerate.
    #[error("leeway {0:?} exceeds the maximum of 60 s")]
    LeewayTooLarge(Duration),
}

/// Why a token's claims were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// No `iss` claim.
    #[error("token has no issuer")]
    MissingIssuer,
    /// `iss` is not ours.
    #[error("token issuer {actual:?} is not the expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The token's issuer.
        actual: String,
    },
    /// No `sub` claim.
    #[error("token has no subject")]
    MissingSubject,
    /// Our audience is not among `aud`.
    #[error("token audience {actual:?} does not include {expected:?}")]
    AudienceMismatch {
        /// The configured audience.
        expected: String,
        /// The token's audiences.
        actual: Vec<String>,
    },
    /// No `exp` claim: tokens that never expire are refused.
    #[error("token has no expiry")]
    MissingExpiry,
    /// `exp` has passed.
    #[error("token expired at {expired_at}")]
    Expired {
        /// `exp`, seconds since the epoch.
        expired_at: u64,
    },
    /// `nbf` is in the future.
    #[error("token is not valid before {not_before}")]
    NotYetValid {
        /// `nbf`, seconds since the epoch.
        not_before: u64,
    },
    /// `iat` is in the future.
    #[error("token was issued in the future ({issued_at})")]
    IssuedInFuture {
        /// `iat`, seconds since the epoch.
        issued_at: u64,
    },
}

impl ClaimError {
    /// A short, stable reason code for metrics and audit (`auth failures by reason`).
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::MissingIssuer => "missing_issuer",
            Self::IssuerMismatch { .. } => "wrong_issuer",
            Self::MissingSubject => "missing_subject",
            Self::AudienceMismatch { .. } => "wrong_audience",
            Self::MissingExpiry => "missing_expiry",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::IssuedInFuture { .. } => "issued_in_future",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ISS: &str = "https://issuer.example";
    const AUD: &str = "https://mcp.example/mcp";

    fn rules() -> ClaimRules {
        ClaimRules::new(ISS, AUD, Duration::from_secs(30)).unwrap()
    }

    fn good() -> Claims {
        Claims {
            issuer: Some(ISS.into()),
            subject: Some("alice".into()),
            audience: vec!["other".into(), AUD.into()],
            expires_at: Some(2_000),
            not_before: Some(900),
            issued_at: Some(900),
            roles: vec!["developer".into(), "no-such-role".into()],
            scopes: vec!["quantum:execute".into(), String::new()],
        }
    }

    #[test]
    fn accepts_good_claims_and_keeps_known_roles_only() {
        let p = rules().accept(&good(), Timestamp::from_secs(1_000)).unwrap();
        assert_eq!(p.id(), &PrincipalId::new(ISS, "alice"));
        assert_eq!(p.roles().iter().copied().collect::<Vec<_>>(), vec![Role::Developer]);
        assert_eq!(p.scopes().iter().cloned().collect::<Vec<_>>(), vec!["quantum:execute".to_owned()]);
        assert_eq!(p.expires_at(), Some(Timestamp::from_secs(2_000)));
    }

    #[test]
    fn issuer_must_match_exactly() {
        for iss in [format!("{ISS}/"), ISS.to_uppercase(), "https://evil.example".into()] {
            let c = Claims { issuer: Some(iss.clone()), ..good() };
            assert!(
                matches!(rules().accept(&c, Timestamp::from_secs(1_000)), Err(ClaimError::IssuerMismatch { .. })),
                "{iss}"
            );
        }
        let c = Claims { issuer: None, ..good() };
        assert_eq!(rules().accept(&c, Timestamp::from_secs(1_000)), Err(ClaimError::MissingIssuer));
    }

    #[test]
    fn audience_must_contain_ours() {
        let c = Claims { audience: vec!["https://mcp.example".into()], ..good() };
        let err = rules().accept(&c, Timestamp::from_secs(1_000)).unwrap_err();
        assert_eq!(err.reason_code(), "wrong_audience");
        let c = Claims { audience: vec![], ..good() };
        assert!(rules().accept(&c, Timestamp::from_secs(1_000)).is_err());
    }

    #[test]
    fn subject_and_expiry_are_required() {
        let now = Timestamp::from_secs(1_000);
        assert_eq!(rules().accept(&Claims { subject: None, ..good() }, now), Err(ClaimError::MissingSubject));
        assert_eq!(
            rules().accept(&Claims { subject: Some(String::new()), ..good() }, now),
            Err(ClaimError::MissingSubject)
        );
        assert_eq!(rules().accept(&Claims { expires_at: None, ..good() }, now), Err(ClaimError::MissingExpiry));
    }

    #[test]
    fn expiry_honours_leeway_exactly() {
        // exp = 2000, leeway 30 s: accepted up to 2029, refused from 2030.
        assert!(rules().accept(&good(), Timestamp::from_secs(2_029)).is_ok());
        assert_eq!(
            rules().accept(&good(), Timestamp::from_secs(2_030)),
            Err(ClaimError::Expired { expired_at: 2_000 })
        );
    }

    #[test]
    fn not_before_and_issued_at_honour_leeway() {
        let c = Claims { not_before: Some(1_100), issued_at: None, ..good() };
        assert!(rules().accept(&c, Timestamp::from_secs(1_070)).is_ok());
        assert_eq!(rules().accept(&c, Timestamp::from_secs(1_069)), Err(ClaimError::NotYetValid { not_before: 1_100 }));
        let c = Claims { not_before: None, issued_at: Some(1_100), ..good() };
        assert_eq!(
            rules().accept(&c, Timestamp::from_secs(1_000)),
            Err(ClaimError::IssuedInFuture { issued_at: 1_100 })
        );
    }

    #[test]
    fn roles_come_from_a_flat_namespaced_or_nested_claim() {
        let c = map(json!({
            "roles": ["admin", 7, "developer"],
            "https://qudag.example/roles": ["auditor"],
            "realm_access": {"roles": ["operator"]},
            "groups": "readonly developer"
        }));
        assert_eq!(RolesClaim::default().roles(&c), vec!["admin", "developer"]);
        assert_eq!(RolesClaim::new("https://qudag.example/roles").roles(&c), vec!["auditor"]);
        assert_eq!(RolesClaim::new("realm_access.roles").roles(&c), vec!["operator"]);
        assert_eq!(RolesClaim::new("groups").roles(&c), vec!["readonly", "developer"]);
        assert!(RolesClaim::new("realm_access.missing").roles(&c).is_empty());
        assert!(RolesClaim::new("nope").roles(&c).is_empty());
    }

    #[test]
    fn standard_claims_are_extracted_in_every_accepted_shape() {
        let c = Claims::from_json(
            &map(json!({
                "iss": "https://i", "sub": "alice", "aud": "api", "exp": 10, "nbf": 1.5, "iat": 1,
                "scope": "mcp:read  mcp:write", "scp": ["mcp:execute"], "roles": ["developer"]
            })),
            &RolesClaim::default(),
        );
        assert_eq!(c.issuer.as_deref(), Some("https://i"));
        assert_eq!(c.subject.as_deref(), Some("alice"));
        assert_eq!(c.audience, vec!["api"]);
        assert_eq!((c.expires_at, c.not_before, c.issued_at), (Some(10), Some(1), Some(1)));
        assert_eq!(c.scopes, vec!["mcp:read", "mcp:write", "mcp:execute"]);
        assert_eq!(c.roles, vec!["developer"]);

        let c = Claims::from_json(&map(json!({"aud": ["a", "", "b"], "exp": "soon"})), &RolesClaim::default());
        assert_eq!(c.audience, vec!["a", "b"]);
        assert_eq!(c.expires_at, None);
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn numeric_dates_must_be_numbers() {
        assert_eq!(Claims::malformed_date(&map(json!({"exp": "soon"}))), Some("exp"));
        assert_eq!(Claims::malformed_date(&map(json!({"exp": 5, "iat": -3}))), Some("iat"));
        assert_eq!(Claims::malformed_date(&map(json!({"exp": 5, "nbf": 1.5}))), None);
    }

    #[test]
    fn leeway_is_bounded() {
        assert_eq!(
            ClaimRules::new(ISS, AUD, Duration::from_secs(61)),
            Err(ClaimRulesError::LeewayTooLarge(Duration::from_secs(61)))
        );
        assert!(ClaimRules::new(ISS, AUD, MAX_LEEWAY).is_ok());
        assert_eq!(ClaimRules::new("", AUD, Duration::ZERO), Err(ClaimRulesError::EmptyIssuer));
        assert_eq!(ClaimRules::new(ISS, "", Duration::ZERO), Err(ClaimRulesError::EmptyAudience));
    }

    #[test]
    fn anonymous_principal_is_recognisable() {
        let p = Principal::anonymous([Role::Admin]);
        assert!(p.id().is_anonymous());
        assert!(!PrincipalId::new(ISS, "anonymous").is_anonymous());
        assert_eq!(PrincipalId::new(ISS, "bob").to_string(), format!("{ISS}#bob"));
    }
}
