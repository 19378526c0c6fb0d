//! The issuer's signing keys: a JWK set fetched from `jwks_uri`, cached with a TTL and
//! refetched when a token names a key we do not know (rotation), with those refetches
//! rate-limited so a flood of made-up `kid`s cannot become a flood of requests to the
//! issuer.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use url::Url;

use crate::http::{FetchError, HttpClient};

/// One verification key and the algorithms it may verify.
#[derive(Clone)]
pub struct VerifyKey {
    /// `kid`, if the key has one.
    pub kid: Option<String>,
    /// The algorithms this key may verify: from its `alg` if it names one, else every
    /// algorithm of its type (for an EC key, only the one matching its curve).
    pub algorithms: Vec<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey").field("kid", &self.kid).field("algorithms", &self.algorithms).finish()
    }
}

impl VerifyKey {
    /// A verification key from one JWK, or why it is unusable (private keys, encryption
    /// keys, unsupported types and curves are skipped).
    ///
    /// # Errors
    /// A sentence naming the problem.
    pub fn from_jwk(value: &Value) -> Result<Self, String> {
        if value.get("d").is_some() {
            return Err("holds private key material".into());
        }
        let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|e| format!("not a JWK: {e}"))?;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err("is an encryption key".into());
        }
        let by_type: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => {
                vec![
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ]
            }
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err("uses an unsupported curve".into()),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            AlgorithmParameters::OctetKeyPair(_) => return Err("uses an unsupported curve".into()),
            AlgorithmParameters::OctetKey(_) => return Err("is a symmetric key".into()),
            _ => return Err("has an unsupported key type".into()),
        };
        let algorithms = match value.get("alg").and_then(Value::as_str) {
            None => by_type,
            Some(alg) => match Algorithm::from_str(alg) {
                Ok(a) if by_type.contains(&a) => vec![a],
                _ => return Err(format!("names algorithm {alg}, which this key type cannot verify here")),
            },
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable: {e}"))?;
        Ok(Self { kid: jwk.common.key_id, algorithms, key })
    }
}

/// A JWK set, parsed.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
    fetched: Option<Instant>,
}

impl KeySet {
    /// The usable keys of a JWK set document; unusable ones are logged and skipped.
    ///
    /// # Errors
    /// When the document has no `keys` array.
    pub fn parse(document: &Value) -> Result<Vec<VerifyKey>, String> {
        let keys = document.get("keys").and_then(Value::as_array).ok_or("the JWK set has no \"keys\" array")?;
        Ok(keys
            .iter()
            .filter_map(|k| match VerifyKey::from_jwk(k) {
                Ok(key) => Some(key),
                Err(why) => {
                    let kid = k.get("kid").and_then(Value::as_str).unwrap_or("(no kid)");
                    tracing::debug!(kid, why, "JWKS key skipped");
                    None
                }
            })
            .collect())
    }

    /// Keys that may verify a token signed with `alg` under `kid`. A token without a
    /// `kid` may be verified by any key of the right algorithm.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<VerifyKey> {
        self.keys
            .iter()
            .filter(|k| k.algorithms.contains(&alg) && (kid.is_none() || k.kid.as_deref() == kid))
            .cloned()
            .collect()
    }

    /// Whether a key with this `kid` is published.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Where the keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// Fetched from a `jwks_uri`, found by discovery when `url` is not configured.
    Remote {
        /// The client.
        http: HttpClient,
        /// How to find the JWKS URL.
        locate: Box<crate::discovery::Locator>,
    },
    /// Fixed keys (the developer mode's own key, benchmarks).
    Static(Vec<VerifyKey>),
}

/// Counters of the key cache, for metrics and tests.
#[derive(Debug, Default)]
pub struct JwksStats {
    /// JWKS documents fetched.
    pub fetches: AtomicU64,
    /// Fetches that failed.
    pub failures: AtomicU64,
    /// Unknown-`kid` refetches refused because one happened too recently.
    pub refreshes_suppressed: AtomicU64,
}

/// The cached key set.
#[derive(Debug)]
pub struct Jwks {
    source: KeySource,
    current: RwLock<Arc<KeySet>>,
    /// Serialises fetches (one in flight) and remembers the last unknown-`kid` refetch.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    ttl: Duration,
    min_refresh: Duration,
    /// Counters.
    pub stats: JwksStats,
}

/// Why no key could be found.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The keys cannot be fetched and none are cached.
    #[error("no signing keys available: {0}")]
    Unavailable(String),
}

impl Jwks {
    /// A cache over `source`: keys are refetched after `ttl`, and at most once per
    /// `min_refresh` because of an unknown `kid`.
    pub fn new(source: KeySource, ttl: Duration, min_refresh: Duration) -> Self {
        let current = match &source {
            KeySource::Static(keys) => KeySet { keys: keys.clone(), fetched: Some(Instant::now()) },
            KeySource::Remote { .. } => KeySet::default(),
        };
        Self {
            source,
            current: RwLock::new(Arc::new(current)),
            refresh: tokio::sync::Mutex::new(None),
            ttl,
            min_refresh,
            stats: JwksStats::default(),
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The current keys (possibly none yet).
    pub fn loaded(&self) -> Arc<KeySet> {
        self.snapshot()
    }

    fn stale(&self, set: &KeySet) -> bool {
        matches!(self.source, KeySource::Remote { .. }) && set.fetched.is_none_or(|at| at.elapsed() >= self.ttl)
    }

    /// Keys that may verify a token signed with `alg` under `kid`, refetching the set
    /// when it is stale or (rate-limited) when `kid` is unknown. An empty answer means
    /// no key matches.
    ///
    /// # Errors
    /// [`KeyError::Unavailable`] when no keys are cached and none can be fetched.
    pub async fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<VerifyKey>, KeyError> {
        let mut set = self.snapshot();
        if self.stale(&set) {
            set = self.fetch(set, false).await?;
        }
        let found = set.candidates(kid, alg);
        let unknown_kid = kid.is_some_and(|k| !set.has_kid(k));
        if !found.is_empty() || !unknown_kid || !matches!(self.source, KeySource::Remote { .. }) {
            return Ok(found);
        }
        let set = self.fetch(set, true).await?;
        Ok(set.candidates(kid, alg))
    }

    /// Load the keys now if none are loaded (start-up, readiness).
    ///
    /// # Errors
    /// [`KeyError::Unavailable`].
    pub async fn ensure_loaded(&self) -> Result<usize, KeyError> {
        let set = self.snapshot();
        let set = if self.stale(&set) { self.fetch(set, false).await? } else { set };
        Ok(set.len())
    }

    /// Fetch once, unless another caller fetched while we waited. `forced` marks a
    /// refetch for an unknown `kid`, which is allowed once per `min_refresh`.
    async fn fetch(&self, seen: Arc<KeySet>, forced: bool) -> Result<Arc<KeySet>, KeyError> {
        let KeySource::Remote { http, locate } = &self.source else {
            return Ok(seen);
        };
        let mut last_forced = self.refresh.lock().await;
        let now = self.snapshot();
        if !Arc::ptr_eq(&now, &seen) && !self.stale(&now) {
            // Someone fetched while we waited for the lock.
            return Ok(now);
        }
        if forced {
            if last_forced.is_some_and(|at| at.elapsed() < self.min_refresh) {
                self.stats.refreshes_suppressed.fetch_add(1, Ordering::Relaxed);
                return Ok(now);
            }
            *last_forced = Some(Instant::now());
        }
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let result = async {
            let url: Url = locate.jwks_uri(http).await?;
            let document = http.get_json(&url).await?;
            KeySet::parse(&document).map_err(|m| FetchError::Response { url: url.to_string(), message: m })
        }
        .await;
        match result {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), forced, "JWKS fetched");
                let set = Arc::new(KeySet { keys, fetched: Some(Instant::now()) });
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = set.clone();
                Ok(set)
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                if now.is_empty() {
                    tracing::warn!(error = %e, "JWKS fetch failed and no keys are cached");
                    Err(KeyError::Unavailable(e.to_string()))
                } else {
                    // Keep serving with the keys we have; try again after a short pause
                    // rather than on every request.
                    tracing::warn!(error = %e, "JWKS refetch failed; keeping the cached keys");
                    let retry_at = Instant::now().checked_sub(self.ttl.saturating_sub(self.min_refresh));
                    let kept = Arc::new(KeySet { keys: now.keys.clone(), fetched: retry_at.or(now.fetched) });
                    *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = kept.clone();
                    Ok(kept)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RSA_N: &str = "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw";

    #[test]
    fn keys_are_constrained_by_type_curve_and_alg() {
        let rsa = VerifyKey::from_jwk(&json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "r1"})).unwrap();
        assert_eq!(rsa.algorithms.len(), 6);
        let rsa_alg = VerifyKey::from_jwk(&json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "alg": "PS256"})).unwrap();
        assert_eq!(rsa_alg.algorithms, vec![Algorithm::PS256]);
        for (bad, why) in [
            (json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "alg": "ES256"}), "names algorithm"),
            (json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "d": "secret"}), "private"),
            (json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "use": "enc"}), "encryption"),
            (json!({"kty": "oct", "k": "c2VjcmV0"}), "symmetric"),
            (json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}), "unsupported curve"),
            (json!({"kty": "nope"}), "unsupported key type"),
        ] {
            let err = VerifyKey::from_jwk(&bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn candidates_match_kid_and_algorithm() {
        let a = VerifyKey::from_jwk(&json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "a"})).unwrap();
        let b =
            VerifyKey::from_jwk(&json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "b", "alg": "RS256"})).unwrap();
        let set = KeySet { keys: vec![a, b], fetched: None };
        assert_eq!(set.candidates(Some("a"), Algorithm::PS384).len(), 1);
        assert_eq!(set.candidates(Some("b"), Algorithm::PS384).len(), 0);
        assert_eq!(set.candidates(None, Algorithm::RS256).len(), 2);
        assert_eq!(set.candidates(Some("c"), Algorithm::RS256).len(), 0);
        assert_eq!(set.candidates(None, Algorithm::ES256).len(), 0);
    }

    #[test]
    fn a_document_without_keys_is_refused_and_bad_keys_are_skipped() {
        assert!(KeySet::parse(&json!({})).is_err());
        let keys =
            KeySet::parse(&json!({"keys": [{"kty": "oct", "k": "eA"}, {"kty": "RSA", "n": RSA_N, "e": "AQAB"}]}))
                .unwrap();
        assert_eq!(keys.len(), 1);
    }
}
