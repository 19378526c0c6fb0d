//! DPoP proofs (RFC 9449): a DPoP-bound access token (`cnf.jkt`) is accepted only with a
//! proof, signed by the key whose thumbprint the token names, for this request.
//!
//! Checked (§4.3): `typ` is `dpop+jwt`; `alg` is asymmetric; the `jwk` header is a public
//! key whose RFC 7638 thumbprint equals `cnf.jkt` and that verifies the signature; `htm`
//! and `htu` name this request; `iat` is within the accepted window; `ath` is the hash of
//! the access token; and `jti` has not been seen within the window (replay). Server
//! nonces are not used.
//!
//! The replay memory is kept per DPoP key (the token's `cnf.jkt`): each key holds at most
//! `per_key` live `jti`s (`QUDAG_OAUTH2_DPOP_REPLAY_PER_KEY`), so a client that sends
//! proofs faster than that is refused on its own key while every other client's proofs
//! are still accepted. Expired entries are dropped first, in the key and, at most once a
//! second, across all keys; when the whole memory is full of live entries, a key holding
//! more than an equal share gives up its oldest, and one holding less is never refused.

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
    /// in the future); `capacity` bounds the replay cache in all, `per_key` for each DPoP key.
    pub fn new(max_age: Duration, capacity: usize, per_key: usize) -> Self {
        Self { max_age, replay: ReplayCache::new(capacity, per_key) }
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
        match self.replay.first_use(jkt, jti, iat + self.max_age.as_secs() + FUTURE_SKEW, now) {
            Replay::First => Ok(()),
            Replay::Seen => Err(TokenError::dpop("dpop_replayed", "this DPoP proof (jti) was already used")),
            Replay::Full(limit) => Err(TokenError::dpop(
                "dpop_replay_limit",
                format!("the DPoP replay memory holds {limit} live proofs; try again shortly"),
            )),
            Replay::KeyFull(limit) => Err(TokenError::dpop(
                "dpop_replay_limit",
                format!(
                    "this DPoP key already has {limit} live proofs (QUDAG_OAUTH2_DPOP_REPLAY_PER_KEY); send fewer proofs per {} s",
                    self.max_age.as_secs()
                ),
            )),
        }
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

/// What the replay memory says about a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replay {
    /// Not seen before: remembered now.
    First,
    /// Seen within its window: a replay.
    Seen,
    /// The key already holds its bound of live proofs (the bound).
    KeyFull(usize),
    /// Every key holds its equal share of the whole memory (its size).
    Full(usize),
}

/// The live `jti`s of one DPoP key, with when each may be forgotten.
#[derive(Debug, Default)]
struct KeyProofs {
    seen: HashMap<[u8; 32], u64>,
}

impl KeyProofs {
    fn expire(&mut self, now: u64) {
        self.seen.retain(|_, until| *until >= now);
    }

    /// Forget the entry that expires first.
    fn drop_oldest(&mut self) {
        if let Some(key) = self.seen.iter().min_by_key(|(_, until)| **until).map(|(k, _)| *k) {
            self.seen.remove(&key);
        }
    }
}

#[derive(Debug, Default)]
struct ReplayState {
    keys: HashMap<[u8; 32], KeyProofs>,
    total: usize,
    last_sweep: u64,
}

/// `jti`s seen, per DPoP key, until their proofs could no longer be accepted anyway.
/// Bounded per key (a key over its bound has its proofs refused rather than a live `jti`
/// forgotten: no replay window opens under load) and in all (see the module docs).
#[derive(Debug)]
struct ReplayCache {
    state: Mutex<ReplayState>,
    capacity: usize,
    per_key: usize,
}

impl ReplayCache {
    fn new(capacity: usize, per_key: usize) -> Self {
        Self { state: Mutex::default(), capacity: capacity.max(1), per_key: per_key.max(1) }
    }

    fn first_use(&self, jkt: &str, jti: &str, until: u64, now: u64) -> Replay {
        let owner = *blake3::hash(jkt.as_bytes()).as_bytes();
        let id = *blake3::hash(jti.as_bytes()).as_bytes();
        let mut guard = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = &mut *guard;
        if state.keys.get(&owner).is_some_and(|k| k.seen.get(&id).is_some_and(|exp| *exp >= now)) {
            return Replay::Seen;
        }
        let held = state.keys.get(&owner).map_or(0, |k| k.seen.len());
        if held >= self.per_key {
            let proofs = state.keys.entry(owner).or_default();
            proofs.expire(now);
            state.total -= held - proofs.seen.len();
            if proofs.seen.len() >= self.per_key {
                tracing::warn!(per_key = self.per_key, "A DPoP key holds its bound of live proofs; refusing its proof");
                return Replay::KeyFull(self.per_key);
            }
        }
        if state.total >= self.capacity && state.last_sweep != now {
            state.last_sweep = now;
            state.keys.retain(|_, k| {
                k.expire(now);
                !k.seen.is_empty()
            });
            state.total = state.keys.values().map(|k| k.seen.len()).sum();
        }
        if state.total >= self.capacity {
            // Full of live proofs: the largest holder gives one up if it holds more than an
            // equal share (counting this key); otherwise every key is within its share and
            // this proof is refused.
            let holders = state.keys.len() + usize::from(!state.keys.contains_key(&owner));
            let share = self.capacity / holders.max(1);
            let largest = state.keys.iter().max_by_key(|(_, k)| k.seen.len()).map(|(o, k)| (*o, k.seen.len()));
            match largest {
                Some((largest, n)) if n > share => {
                    if let Some(k) = state.keys.get_mut(&largest) {
                        k.drop_oldest();
                        state.total -= 1;
                    }
                }
                _ => {
                    tracing::warn!(capacity = self.capacity, "DPoP replay cache full; refusing proof");
                    return Replay::Full(self.capacity);
                }
            }
        }
        let proofs = state.keys.entry(owner).or_default();
        if proofs.seen.insert(id, until).is_none() {
            state.total += 1;
        }
        Replay::First
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
        let cache = ReplayCache::new(100, 2);
        assert_eq!(cache.first_use("k", "a", 100, 10), Replay::First);
        assert_eq!(cache.first_use("k", "a", 100, 50), Replay::Seen);
        assert_eq!(cache.first_use("other", "a", 100, 50), Replay::First, "jti is scoped to the key");
        assert_eq!(cache.first_use("k", "b", 100, 50), Replay::First);
        assert_eq!(cache.first_use("k", "c", 100, 50), Replay::KeyFull(2), "the key is full, nothing expired");
        assert_eq!(cache.first_use("k", "c", 300, 101), Replay::First, "expired entries make room");
        assert_eq!(cache.first_use("k", "a", 300, 101), Replay::First, "an expired jti is forgotten");
    }

    #[test]
    fn one_key_flooding_proofs_cannot_lock_out_another() {
        // Per-key bound: the flooder is refused, the other key is not.
        let cache = ReplayCache::new(1_000, 100);
        let flood = (0..5_000).filter(|i| cache.first_use("flooder", &format!("j{i}"), 400, 10) == Replay::First);
        assert_eq!(flood.count(), 100, "the flooding key gets exactly its bound");
        assert_eq!(cache.first_use("honest", "fresh-1", 400, 10), Replay::First);
        assert_eq!(cache.first_use("honest", "fresh-1", 400, 11), Replay::Seen, "still replay-protected");

        // The whole memory full of live proofs: a key within its share still gets in,
        // by taking room from the largest holder.
        let cache = ReplayCache::new(100, 100);
        for i in 0..100 {
            assert_eq!(cache.first_use("flooder", &format!("j{i}"), 400, 10), Replay::First);
        }
        for i in 0..10 {
            assert_eq!(cache.first_use(&format!("client-{i}"), "p", 400, 10), Replay::First, "client {i}");
        }
        assert_eq!(cache.first_use("client-0", "p", 400, 10), Replay::Seen);
        let state = cache.state.lock().unwrap();
        assert!(state.total <= 100, "{}", state.total);
        assert_eq!(state.total, state.keys.values().map(|k| k.seen.len()).sum::<usize>());
    }
}
