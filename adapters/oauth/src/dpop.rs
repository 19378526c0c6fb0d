//! DPoP proofs (RFC 9449): a DPoP-bound access token (`cnf.jkt`) is accepted only with a
//! proof, signed by the key whose thumbprint the token names, for this request.
//!
//! Checked (§4.3): `typ` is `dpop+jwt`; `alg` is asymmetric; the `jwk` header is a public
//! key whose RFC 7638 thumbprint equals `cnf.jkt` and that verifies the signature; `htm`
//! and `htu` name this request; `iat` is within the accepted window; `ath` is the hash of
//! the access token; and `jti` has not been seen within the window (replay). Server
//! nonces are not used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use qudag_application::ports::{DpopProof, TokenError};
use serde_json::Value;
use url::Url;

use crate::jwt;

/// The `cnf.jkt` confirmation (RFC 9449 §6): the thumbprint of the key a DPoP-bound
/// token is bound to.
pub fn bound_key(claims: &serde_json::Map<String, Value>) -> Option<String> {
    claims.get("cnf")?.get("jkt")?.as_str().map(str::to_owned)
}

/// The largest DPoP proof accepted.
const MAX_PROOF_BYTES: usize = 8 * 1024;

/// Checks proofs and remembers their `jti`s.
#[derive(Debug)]
pub struct DpopVerifier {
    max_age: Duration,
    replay: ReplayCache,
}

impl DpopVerifier {
    /// Proofs are accepted when `iat` is at most `max_age` old (and at most a few seconds
    /// in the future); `capacity` bounds the replay cache.
    pub fn new(max_age: Duration, capacity: usize) -> Self {
        Self { max_age, replay: ReplayCache::new(capacity) }
    }

    /// Verify `proof` for `token` bound to `jkt`, at `now` (seconds since the epoch).
    ///
    /// # Errors
    /// `InvalidDpopProof` naming what is wrong.
    pub fn verify(&self, proof: &DpopProof, token: &str, jkt: &str, now: u64) -> Result<(), TokenError> {
        if proof.proof.len() > MAX_PROOF_BYTES {
            return Err(TokenError::dpop("dpop_oversized", format!("the DPoP proof exceeds {MAX_PROOF_BYTES} bytes")));
        }
        let header = jwt::header(&proof.proof)
            .ok_or_else(|| TokenError::dpop("dpop_malformed", "the DPoP proof is not a JWT"))?;
        if header.typ.as_deref() != Some("dpop+jwt") {
            return Err(TokenError::dpop("dpop_wrong_type", "the DPoP proof's typ must be dpop+jwt"));
        }
        let alg = jwt::algorithm(&header.alg).map_err(|e| TokenError::dpop("dpop_bad_alg", e.to_string()))?;
        if matches!(
            alg,
            jsonwebtoken::Algorithm::HS256 | jsonwebtoken::Algorithm::HS384 | jsonwebtoken::Algorithm::HS512
        ) {
            return Err(TokenError::dpop("dpop_bad_alg", "DPoP proofs must use an asymmetric algorithm"));
        }
        let jwk_value =
            header.jwk.ok_or_else(|| TokenError::dpop("dpop_no_key", "the DPoP proof has no jwk header"))?;
        if jwk_value.get("d").is_some() {
            return Err(TokenError::dpop("dpop_private_key", "the DPoP proof's jwk holds a private key"));
        }
        let jwk: Jwk = serde_json::from_value(jwk_value)
            .map_err(|e| TokenError::dpop("dpop_no_key", format!("the DPoP proof's jwk is not a public key: {e}")))?;
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| TokenError::dpop("dpop_no_key", format!("the DPoP proof's jwk has no thumbprint: {e}")))?;
        if thumbprint != jkt {
            return Err(TokenError::dpop(
                "dpop_key_mismatch",
                "the DPoP proof is signed by another key than the token is bound to",
            ));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| TokenError::dpop("dpop_no_key", format!("the DPoP proof's jwk is unusable: {e}")))?;
        let claims = jwt::decode(&proof.proof, &key, alg)
            .map_err(|e| TokenError::dpop("dpop_bad_signature", format!("the DPoP proof does not verify: {e}")))?;

        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let htm = text("htm").unwrap_or_default();
        if htm != proof.method {
            return Err(TokenError::dpop(
                "dpop_wrong_method",
                format!("htm {htm:?} is not this request's method {}", proof.method),
            ));
        }
        let htu = text("htu").unwrap_or_default();
        if !same_target(htu, &proof.url) {
            return Err(TokenError::dpop(
                "dpop_wrong_url",
                format!("htu {htu:?} is not this request's URL {}", proof.url),
            ));
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_u64)
            .ok_or_else(|| TokenError::dpop("dpop_malformed", "the DPoP proof has no iat"))?;
        const FUTURE_SKEW: u64 = 5;
        if iat > now + FUTURE_SKEW || now.saturating_sub(iat) > self.max_age.as_secs() {
            return Err(TokenError::dpop(
                "dpop_stale",
                format!("the DPoP proof's iat is outside the accepted window of {} s", self.max_age.as_secs()),
            ));
        }
        let ath = text("ath").unwrap_or_default();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        if ath != URL_SAFE_NO_PAD.encode(digest.as_ref()) {
            return Err(TokenError::dpop(
                "dpop_wrong_ath",
                "the DPoP proof's ath is not the hash of this access token",
            ));
        }
        let jti = text("jti")
            .filter(|j| !j.is_empty())
            .ok_or_else(|| TokenError::dpop("dpop_malformed", "the DPoP proof has no jti"))?;
        if !self.replay.first_use(jkt, jti, iat + self.max_age.as_secs() + FUTURE_SKEW, now) {
            return Err(TokenError::dpop("dpop_replayed", "this DPoP proof (jti) was already used"));
        }
        Ok(())
    }
}

/// `htu` names the request's URL: same scheme, host, port and path, ignoring query and
/// fragment (RFC 9449 §4.3, step 9).
fn same_target(htu: &str, url: &str) -> bool {
    let (Ok(a), Ok(b)) = (Url::parse(htu), Url::parse(url)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
}

/// `jti`s seen, until their proofs could no longer be accepted anyway. Bounded: when
/// full, expired entries go first; if it is still full the proof is refused rather than
/// the cache forgetting a live `jti` (a replay window must not open under load).
#[derive(Debug)]
struct ReplayCache {
    seen: Mutex<HashMap<[u8; 32], u64>>,
    capacity: usize,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        Self { seen: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    fn first_use(&self, jkt: &str, jti: &str, until: u64, now: u64) -> bool {
        let mut h = blake3::Hasher::new();
        h.update(jkt.as_bytes()).update(&[0]).update(jti.as_bytes());
        let key = *h.finalize().as_bytes();
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.get(&key).is_some_and(|exp| *exp >= now) {
            return false;
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, exp| *exp >= now);
            if seen.len() >= self.capacity {
                tracing::warn!(capacity = self.capacity, "DPoP replay cache full; refusing proof");
                return false;
            }
        }
        seen.insert(key, until);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binding_is_read_from_cnf_jkt() {
        let claims = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(bound_key(&claims(serde_json::json!({"cnf": {"jkt": "abc"}}))).as_deref(), Some("abc"));
        assert_eq!(bound_key(&claims(serde_json::json!({"cnf": {"x5t#S256": "abc"}}))), None);
    }

    #[test]
    fn htu_compares_scheme_host_port_and_path_only() {
        assert!(same_target("https://MCP.example/mcp", "https://mcp.example:443/mcp?x=1"));
        assert!(!same_target("https://mcp.example/mcp", "http://mcp.example/mcp"));
        assert!(!same_target("https://mcp.example/mcp/", "https://mcp.example/mcp"));
        assert!(!same_target("https://mcp.example:8443/mcp", "https://mcp.example/mcp"));
        assert!(!same_target("not a url", "https://mcp.example/mcp"));
    }

    #[test]
    fn a_jti_is_accepted_once_per_key_until_it_expires() {
        let cache = ReplayCache::new(2);
        assert!(cache.first_use("k", "a", 100, 10));
        assert!(!cache.first_use("k", "a", 100, 50));
        assert!(cache.first_use("other", "a", 100, 50), "jti is scoped to the key");
        assert!(!cache.first_use("k", "b", 100, 50), "full, nothing expired: refuse");
        assert!(cache.first_use("k", "b", 300, 101), "expired entries make room");
        assert!(cache.first_use("k", "a", 300, 101), "an expired jti is forgotten");
    }
}
