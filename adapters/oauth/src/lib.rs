//! OAuth 2.0 resource-server adapters of the QuDAG MCP server: the [`OAuthVerifier`]
//! behind the `TokenVerifier` port.
//!
//! - JWT access tokens (RFC 9068) verified with jsonwebtoken against the issuer's JWKS,
//!   found by discovery ([`discovery`]) or configured, cached with a TTL and refetched on
//!   an unknown `kid` at a bounded rate ([`jwks`]);
//! - opaque tokens through RFC 7662 introspection ([`introspection`]);
//! - DPoP-bound tokens (RFC 9449) accepted only with a valid proof ([`dpop`]);
//! - every verification cached by the token's digest until it expires, an introspection
//!   answer for at most `introspection_cache` (and inactive answers briefly) ([`cache`]);
//! - access tokens told apart from ID tokens by `typ` and shape ([`jwt::TokenTypes`]);
//! - a developer mode with a local signing key ([`dev`]).
//!
//! What the claims must say (issuer, audience, expiry) is the domain's `ClaimRules`.
#![deny(missing_docs)]

pub mod cache;
pub mod dev;
pub mod discovery;
pub mod dpop;
pub mod http;
pub mod introspection;
pub mod jwks;
pub mod jwt;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use qudag_application::ports::{
    AuthScheme, Clock, ComponentHealth, Credential, HealthIndicator, TokenError, TokenVerifier,
};
use qudag_domain::principal::{ClaimRules, Claims, Principal, RolesClaim};

pub use crate::cache::{InactiveCache, TokenCache, Verified};

use crate::dpop::DpopVerifier;
pub use crate::http::{HttpClient, UrlError, secure_url};
use crate::introspection::Introspector;
use crate::jwks::{Jwks, KeySource, VerifyKey};
use crate::jwt::JwtVerifier;
pub use crate::jwt::{HmacKey, TokenTypes};

/// Make aws-lc-rs the process's default rustls crypto provider, once. Call it first
/// thing in `main` and in every test harness: HTTP clients built without an explicit
/// provider (reqwest's default builder, once rustls is compiled in) need one.
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Client credentials for RFC 7662 introspection.
#[derive(Clone)]
pub struct IntrospectionConfig {
    /// The introspection endpoint.
    pub url: String,
    /// Our client id at the authorization server.
    pub client_id: String,
    /// Our client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Everything the verifier needs to know.
#[derive(Clone)]
pub struct OAuthConfig {
    /// The issuer identifier (`iss`), compared exactly.
    pub issuer: String,
    /// Our audience (RFC 8707 resource): it must be among a token's `aud`.
    pub audience: String,
    /// The JWKS URL; found by discovery from the issuer when `None`.
    pub jwks_url: Option<String>,
    /// Introspection of opaque tokens, if wanted.
    pub introspection: Option<IntrospectionConfig>,
    /// A shared secret for HS256/384/512 tokens; without one they are refused.
    pub hmac_secret: Option<Vec<u8>>,
    /// Where tokens carry roles.
    pub roles_claim: RolesClaim,
    /// Clock skew tolerated on `exp`, `nbf`, `iat` (at most 60 s).
    pub leeway: Duration,
    /// How long a fetched JWKS is used before it is fetched again.
    pub jwks_ttl: Duration,
    /// The least time between two refetches caused by unknown `kid`s.
    pub jwks_min_refresh: Duration,
    /// Tokens longer than this are refused before parsing.
    pub max_token_bytes: usize,
    /// How many verified tokens are cached.
    pub cache_capacity: usize,
    /// How old a DPoP proof may be.
    pub dpop_max_age: Duration,
    /// DPoP proof ids (`jti`) remembered at most per DPoP key, against replay.
    pub dpop_replay_per_key: usize,
    /// How long an active introspection answer is believed (never past the token's `exp`).
    pub introspection_cache: Duration,
    /// The `typ` values accepted on JWT access tokens.
    pub token_types: TokenTypes,
    /// Timeout of each request to the authorization server.
    pub http_timeout: Duration,
    /// Extra trusted CA certificates (PEM) for the authorization server.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .field("introspection", &self.introspection)
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "(set)"))
            .field("roles_claim", &self.roles_claim)
            .finish_non_exhaustive()
    }
}

impl OAuthConfig {
    /// A configuration with the defaults for everything but the issuer and audience.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            introspection: None,
            hmac_secret: None,
            roles_claim: RolesClaim::default(),
            leeway: Duration::from_secs(30),
            jwks_ttl: Duration::from_secs(300),
            jwks_min_refresh: Duration::from_secs(10),
            max_token_bytes: 8 * 1024,
            cache_capacity: 10_000,
            dpop_max_age: Duration::from_secs(300),
            dpop_replay_per_key: 10_000,
            introspection_cache: Duration::from_secs(60),
            token_types: TokenTypes::default(),
            http_timeout: Duration::from_secs(5),
            ca_pem: None,
        }
    }
}

/// The reason an introspection endpoint gives for a token it does not vouch for.
const INACTIVE: &str = "inactive_token";

/// Seconds an inactive introspection answer is remembered (at most the positive cache's).
pub const INACTIVE_CACHE_SECS: u64 = 10;

/// DPoP proof ids remembered at most in all (each key holds at most its own bound).
const DPOP_REPLAY_CAPACITY: usize = 100_000;

fn inactive() -> TokenError {
    TokenError::invalid(INACTIVE, "the token is not active (revoked, expired or unknown)")
}

/// A configuration that cannot work; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Counters of the verifier.
#[derive(Debug, Default)]
pub struct VerifierStats {
    /// Verifications answered from the cache.
    pub cache_hits: AtomicU64,
    /// Verifications that checked a signature or asked the introspection endpoint.
    pub cache_misses: AtomicU64,
}

/// The OAuth 2.0 resource server's token verifier.
pub struct OAuthVerifier {
    rules: ClaimRules,
    roles_claim: RolesClaim,
    jwt: JwtVerifier,
    introspection: Option<Introspector>,
    cache: TokenCache,
    inactive: InactiveCache,
    introspection_cache_secs: u64,
    dpop: DpopVerifier,
    max_token_bytes: usize,
    clock: Arc<dyn Clock>,
    /// Counters.
    pub stats: VerifierStats,
}

impl std::fmt::Debug for OAuthVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthVerifier")
            .field("rules", &self.rules)
            .field("roles_claim", &self.roles_claim)
            .field("introspection", &self.introspection)
            .finish_non_exhaustive()
    }
}

impl OAuthVerifier {
    /// A verifier for `config`. Nothing is fetched yet: keys are loaded on first use or by
    /// [`OAuthVerifier::warm_up`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting (insecure URL, leeway over 60 s, ...).
    pub fn new(config: OAuthConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let err = |e: UrlError| ConfigError(e.to_string());
        secure_url("issuer", &config.issuer).map_err(err)?;
        let jwks_url = config.jwks_url.as_deref().map(|u| secure_url("JWKS URL", u)).transpose().map_err(err)?;
        let http = HttpClient::new(config.http_timeout, config.ca_pem.as_deref())
            .map_err(|e| ConfigError(format!("HTTP client for the authorization server: {e}")))?;
        let source = KeySource::Remote {
            http: http.clone(),
            locate: Box::new(discovery::Locator::new(config.issuer.clone(), jwks_url)),
        };
        let introspection = match &config.introspection {
            None => None,
            Some(i) => {
                let url = secure_url("introspection URL", &i.url).map_err(err)?;
                if i.client_id.is_empty() || i.client_secret.is_empty() {
                    return Err(ConfigError("introspection needs a client id and a client secret".into()));
                }
                Some(Introspector::new(http, url, &i.client_id, &i.client_secret, &config.issuer))
            }
        };
        Self::build(config, source, introspection, clock)
    }

    /// A verifier trusting only `keys` (no network): the developer mode and benchmarks.
    ///
    /// # Errors
    /// [`ConfigError`] for bad claim rules.
    pub fn with_keys(config: OAuthConfig, keys: Vec<VerifyKey>, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        Self::build(config, KeySource::Static(keys), None, clock)
    }

    fn build(
        config: OAuthConfig,
        source: KeySource,
        introspection: Option<Introspector>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let rules = ClaimRules::new(config.issuer.clone(), config.audience.clone(), config.leeway)
            .map_err(|e| ConfigError(e.to_string()))?;
        if config.hmac_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError("the HMAC secret must be at least 32 bytes".into()));
        }
        let jwks = Arc::new(Jwks::new(source, config.jwks_ttl, config.jwks_min_refresh));
        Ok(Self {
            rules,
            roles_claim: config.roles_claim,
            jwt: JwtVerifier::new(jwks, config.hmac_secret.as_deref().map(HmacKey::new), config.token_types),
            introspection,
            cache: TokenCache::new(config.cache_capacity),
            inactive: InactiveCache::new(config.cache_capacity),
            introspection_cache_secs: config.introspection_cache.as_secs(),
            dpop: DpopVerifier::new(config.dpop_max_age, DPOP_REPLAY_CAPACITY, config.dpop_replay_per_key),
            max_token_bytes: config.max_token_bytes,
            clock,
            stats: VerifierStats::default(),
        })
    }

    /// The key cache (for its counters).
    pub fn jwks(&self) -> &Arc<Jwks> {
        self.jwt.jwks()
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        self.rules.issuer()
    }

    /// Fetch the issuer's keys now (at start-up), so the first request does not wait.
    ///
    /// # Errors
    /// A message when they cannot be fetched (the server still starts; readiness fails
    /// until they can).
    pub async fn warm_up(&self) -> Result<usize, String> {
        self.jwks().ensure_loaded().await.map_err(|e| e.to_string())
    }

    async fn verify_token(&self, token: &str, now: u64) -> Result<Verified, TokenError> {
        // How long the answer may be believed at most; a JWT is good until it expires.
        let mut believe_until = u64::MAX;
        let (claims, kid) = match jwt::header(token) {
            Some(header) => {
                let claims = self.jwt.verify(token, &header).await?;
                // Only a JWKS key can be retired; an HMAC secret has no `kid` to track.
                let from_jwks = !jwt::algorithm(&header.alg).is_ok_and(jwt::is_hmac);
                (claims, header.kid.filter(|_| from_jwks))
            }
            None => match &self.introspection {
                Some(i) => {
                    // An answer is believed for a while, not until `exp`: revocation at the
                    // issuer must take effect here.
                    believe_until = now.saturating_add(self.introspection_cache_secs);
                    (i.introspect(token).await?, None)
                }
                None => {
                    return Err(TokenError::invalid(
                        "malformed",
                        "the token is not a JWT (and this server does not introspect opaque tokens)",
                    ));
                }
            },
        };
        if let Some(name) = Claims::malformed_date(&claims) {
            return Err(TokenError::invalid("malformed", format!("claim {name} is not a number of seconds")));
        }
        let extracted = Claims::from_json(&claims, &self.roles_claim);
        let principal = self
            .rules
            .accept(&extracted, qudag_domain::Timestamp::from_secs(now))
            .map_err(|e| TokenError::invalid(e.reason_code(), e.to_string()))?;
        let valid_until = extracted.expires_at.unwrap_or(now).min(believe_until);
        Ok(Verified { principal, jkt: dpop::bound_key(&claims), kid, valid_until })
    }

    fn check_binding(&self, verified: &Verified, credential: &Credential, now: u64) -> Result<(), TokenError> {
        match (&verified.jkt, credential.scheme) {
            (None, AuthScheme::Bearer) => Ok(()),
            (None, AuthScheme::Dpop) => Err(TokenError::invalid(
                "not_dpop_bound",
                "the DPoP scheme was used with a token that is not DPoP-bound",
            )),
            (Some(_), AuthScheme::Bearer) => Err(TokenError::dpop(
                "dpop_required",
                "the token is DPoP-bound: send it with the DPoP scheme and a DPoP proof",
            )),
            (Some(jkt), AuthScheme::Dpop) => {
                let proof = credential.dpop.as_ref().ok_or_else(|| {
                    TokenError::dpop("dpop_missing", "the token is DPoP-bound but no DPoP proof was sent")
                })?;
                self.dpop.verify(proof, &credential.token, jkt, now)
            }
        }
    }
}

#[async_trait]
impl TokenVerifier for OAuthVerifier {
    async fn verify(&self, credential: &Credential) -> Result<Principal, TokenError> {
        let token = credential.token.as_str();
        if token.len() > self.max_token_bytes {
            return Err(TokenError::invalid(
                "oversized",
                format!("the token is {} bytes; at most {} are accepted", token.len(), self.max_token_bytes),
            ));
        }
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::invalid("malformed", "the token is empty or holds characters tokens cannot have"));
        }
        let now = self.clock.now().as_secs();
        let key = TokenCache::key(token);
        let cached = self.cache.get(&key, now).filter(|v| {
            // A key the issuer has retired no longer vouches for the tokens it signed.
            v.kid.as_deref().is_none_or(|kid| self.jwks().loaded().has_kid(kid))
        });
        let verified = match cached {
            Some(v) => {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                v
            }
            None => {
                if self.inactive.contains(&key, now) {
                    self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Err(inactive());
                }
                self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
                let v = match self.verify_token(token, now).await {
                    Ok(v) => v,
                    Err(e) => {
                        if e.reason() == INACTIVE {
                            let secs = INACTIVE_CACHE_SECS.min(self.introspection_cache_secs);
                            self.inactive.insert(key, now.saturating_add(secs), now);
                        }
                        return Err(e);
                    }
                };
                self.cache.insert(key, v.clone(), now);
                v
            }
        };
        self.check_binding(&verified, credential, now)?;
        Ok(verified.principal)
    }
}

#[async_trait]
impl HealthIndicator for OAuthVerifier {
    async fn health(&self) -> ComponentHealth {
        let loaded = self.jwks().loaded().len();
        if loaded > 0 {
            return ComponentHealth::up(format!("{loaded} signing keys from {}", self.issuer()));
        }
        match tokio::time::timeout(Duration::from_secs(3), self.warm_up()).await {
            Ok(Ok(n)) if n > 0 => ComponentHealth::up(format!("{n} signing keys from {}", self.issuer())),
            Ok(Ok(_)) if self.introspection.is_some() => {
                ComponentHealth::up("no signing keys; opaque tokens by introspection".to_owned())
            }
            Ok(Ok(_)) => ComponentHealth::down("the issuer publishes no usable signing key"),
            Ok(Err(e)) => ComponentHealth::down(e),
            Err(_) => ComponentHealth::down("fetching the issuer's keys timed out"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use qudag_application::testkit::ManualClock;
    use qudag_domain::Timestamp;
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const ISSUER: &str = "http://127.0.0.1:1";
    const AUDIENCE: &str = "qudag-mcp-api";
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Timestamp::from_secs(NOW)))
    }

    fn hmac_verifier(types: TokenTypes) -> OAuthVerifier {
        let mut config = OAuthConfig::new(ISSUER, AUDIENCE);
        config.hmac_secret = Some(SECRET.as_bytes().to_vec());
        config.token_types = types;
        OAuthVerifier::with_keys(config, vec![], clock()).unwrap()
    }

    fn token(typ: Option<&str>, extra: Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        let mut claims = json!({"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "iat": NOW, "exp": NOW + 600});
        claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    }

    async fn reason(v: &OAuthVerifier, token: &str) -> &'static str {
        match v.verify(&Credential::bearer(token)).await {
            Ok(_) => "accepted",
            Err(e) => e.reason(),
        }
    }

    #[tokio::test]
    async fn only_access_token_types_are_accepted_by_default() {
        let v = hmac_verifier(TokenTypes::default());
        for typ in [Some("at+jwt"), Some("application/at+jwt"), Some("AT+JWT"), None] {
            assert_eq!(reason(&v, &token(typ, json!({}))).await, "accepted", "{typ:?}");
        }
        for typ in ["JWT", "jwt", "dpop+jwt", "logout+jwt"] {
            assert_eq!(reason(&v, &token(Some(typ), json!({}))).await, "wrong_token_type", "{typ}");
        }
        // An ID token without a `typ` is still an ID token.
        let id_token = token(None, json!({"nonce": "n-0S6", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}));
        assert_eq!(reason(&v, &id_token).await, "id_token");
    }

    #[tokio::test]
    async fn accepted_types_are_configurable_and_id_tokens_are_refused_anyway() {
        let v = hmac_verifier(TokenTypes::parse("at+jwt, JWT").unwrap());
        assert_eq!(reason(&v, &token(Some("JWT"), json!({}))).await, "accepted");
        assert_eq!(reason(&v, &token(None, json!({}))).await, "wrong_token_type", "none is not in the list");
        let id_token = token(Some("JWT"), json!({"nonce": "abc"}));
        assert_eq!(reason(&v, &id_token).await, "id_token");
        assert!(TokenTypes::parse("").is_err());
        assert!(TokenTypes::parse("dpop+jwt").is_err());
        assert!(TokenTypes::parse("text/plain").is_err());
        let untyped_only = TokenTypes::parse("none").unwrap();
        assert!(untyped_only.accepts(None) && !untyped_only.accepts(Some("at+jwt")));
    }

    /// A local RFC 7662 endpoint: `good` is active (with `sub`, expiring in an hour),
    /// `nosub` active without a subject, anything else inactive. Counts its calls.
    async fn introspection_endpoint() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/introspect", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { break };
                let calls = counted.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let length = head
                                .lines()
                                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if body.len() >= length {
                                break;
                            }
                        }
                    }
                    calls.fetch_add(1, Ordering::SeqCst);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
                    let token = body.split('&').find_map(|p| p.strip_prefix("token=")).unwrap_or_default();
                    let answer = match token {
                        "good" => json!({"active": true, "sub": "svc", "aud": AUDIENCE, "exp": NOW + 3_600}),
                        "nosub" => json!({"active": true, "client_id": "svc", "aud": AUDIENCE, "exp": NOW + 3_600}),
                        _ => json!({"active": false}),
                    }
                    .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        (url, calls)
    }

    async fn introspecting(cache_secs: u64) -> (OAuthVerifier, Arc<ManualClock>, Arc<AtomicUsize>) {
        install_crypto_provider();
        let (url, calls) = introspection_endpoint().await;
        let mut config = OAuthConfig::new(ISSUER, AUDIENCE);
        config.introspection = Some(IntrospectionConfig { url, client_id: "rs".into(), client_secret: "s".into() });
        config.introspection_cache = Duration::from_secs(cache_secs);
        let clock = clock();
        (OAuthVerifier::new(config, clock.clone()).unwrap(), clock, calls)
    }

    #[tokio::test]
    async fn an_introspection_answer_is_believed_for_the_cache_time_not_until_exp() {
        let (v, clock, calls) = introspecting(60).await;
        assert_eq!(reason(&v, "good").await, "accepted");
        clock.advance(Duration::from_secs(59));
        assert_eq!(reason(&v, "good").await, "accepted");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "within the cache time the answer is reused");
        clock.advance(Duration::from_secs(2));
        assert_eq!(reason(&v, "good").await, "accepted");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "past the cache time (exp is an hour away) it is asked again");
    }

    #[tokio::test]
    async fn inactive_tokens_are_cached_briefly_and_subjectless_answers_refused() {
        let (v, clock, calls) = introspecting(60).await;
        for _ in 0..5 {
            assert_eq!(reason(&v, "revoked-or-made-up").await, "inactive_token");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "an inactive answer is remembered");
        clock.advance(Duration::from_secs(INACTIVE_CACHE_SECS));
        assert_eq!(reason(&v, "revoked-or-made-up").await, "inactive_token");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "only briefly");
        assert_eq!(reason(&v, "nosub").await, "no_subject");
    }
}
