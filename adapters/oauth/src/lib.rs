//! OAuth 2.0 resource-server adapters of the QuDAG MCP server: the [`OAuthVerifier`]
//! behind the `TokenVerifier` port.
//!
//! - JWT access tokens (RFC 9068) verified with jsonwebtoken against the issuer's JWKS,
//!   found by discovery ([`discovery`]) or configured, cached with a TTL and refetched on
//!   an unknown `kid` at a bounded rate ([`jwks`]);
//! - opaque tokens through RFC 7662 introspection ([`introspection`]);
//! - DPoP-bound tokens (RFC 9449) accepted only with a valid proof ([`dpop`]);
//! - every verification cached by the token's digest until it expires ([`cache`]);
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

pub use crate::cache::{TokenCache, Verified};

use crate::dpop::DpopVerifier;
pub use crate::http::{HttpClient, UrlError, secure_url};
use crate::introspection::Introspector;
use crate::jwks::{Jwks, KeySource, VerifyKey};
pub use crate::jwt::HmacKey;
use crate::jwt::JwtVerifier;

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
            http_timeout: Duration::from_secs(5),
            ca_pem: None,
        }
    }
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
            jwt: JwtVerifier::new(jwks, config.hmac_secret.as_deref().map(HmacKey::new)),
            introspection,
            cache: TokenCache::new(config.cache_capacity),
            dpop: DpopVerifier::new(config.dpop_max_age, 100_000),
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
        let (claims, kid) = match jwt::header(token) {
            Some(header) => {
                let claims = self.jwt.verify(token, &header).await?;
                // Only a JWKS key can be retired; an HMAC secret has no `kid` to track.
                let from_jwks = !jwt::algorithm(&header.alg).is_ok_and(jwt::is_hmac);
                (claims, header.kid.filter(|_| from_jwks))
            }
            None => match &self.introspection {
                Some(i) => (i.introspect(token).await?, None),
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
        let valid_until = extracted.expires_at.unwrap_or(now);
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
                self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
                let v = self.verify_token(token, now).await?;
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
