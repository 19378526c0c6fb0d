//! Signature checking of JWT access tokens (RFC 9068) with jsonwebtoken.
//!
//! The header is read by us first, so that refusals name their reason: `alg: none`, HMAC
//! without a configured secret, algorithms jsonwebtoken cannot verify, `crit` extensions
//! we do not understand, and token types that are not access tokens. Keys come only from
//! the issuer's JWKS (or the configured HMAC secret): `jku`, `x5u`, `x5c` and embedded
//! `jwk` headers are never used to find a key. The claims themselves are judged by the
//! domain's `ClaimRules`, not here.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use qudag_application::ports::TokenError;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::jwks::{Jwks, KeyError};

/// The JOSE header members we look at.
#[derive(Debug, Deserialize)]
pub struct RawHeader {
    /// `alg`.
    pub alg: String,
    /// `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// `typ`.
    #[serde(default)]
    pub typ: Option<String>,
    /// `crit`.
    #[serde(default)]
    pub crit: Option<Value>,
    /// `jwk` (used only for DPoP proofs, never for access tokens).
    #[serde(default)]
    pub jwk: Option<Value>,
}

/// The header of a compact JWS, if `token` is one (three base64url segments and a JSON
/// header naming an `alg`).
pub fn header(token: &str) -> Option<RawHeader> {
    let mut parts = token.split('.');
    let (h, _, _, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next());
    if rest.is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(h).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Parse `alg`, refusing `none` and names jsonwebtoken does not verify.
///
/// # Errors
/// `alg_none` or `unsupported_alg`.
pub fn algorithm(alg: &str) -> Result<Algorithm, TokenError> {
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::invalid("alg_none", "unsigned tokens (alg \"none\") are refused"));
    }
    Algorithm::from_str(alg)
        .map_err(|_| TokenError::invalid("unsupported_alg", format!("signing algorithm {alg:?} is not supported")))
}

/// Whether `alg` is an HMAC (shared-secret) algorithm.
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// A validation that checks only the signature and algorithm: claims are the domain's.
pub fn signature_only(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims = HashSet::new();
    v
}

/// Verifies JWT signatures against the issuer's keys.
#[derive(Debug)]
pub struct JwtVerifier {
    jwks: Arc<Jwks>,
    hmac: Option<HmacKey>,
}

/// A configured HMAC secret (HS256/384/512 tokens are refused without one).
pub struct HmacKey(DecodingKey);

impl HmacKey {
    /// The secret's bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self(DecodingKey::from_secret(secret))
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

impl JwtVerifier {
    /// A verifier using `jwks`, and `hmac` for HS* tokens if given.
    pub fn new(jwks: Arc<Jwks>, hmac: Option<HmacKey>) -> Self {
        Self { jwks, hmac }
    }

    /// The key cache.
    pub fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    /// Check the signature of `token` (whose header is `header`) and return its claims.
    ///
    /// # Errors
    /// `Invalid` with the reason, or `Unavailable` when no keys can be had.
    pub async fn verify(&self, token: &str, header: &RawHeader) -> Result<Map<String, Value>, TokenError> {
        let alg = algorithm(&header.alg)?;
        if header.crit.is_some() {
            return Err(TokenError::invalid("unsupported_crit", "the token has critical header extensions (crit)"));
        }
        if let Some(typ) = header.typ.as_deref() {
            let typ = typ.to_ascii_lowercase();
            if !matches!(typ.as_str(), "jwt" | "at+jwt" | "application/at+jwt") {
                return Err(TokenError::invalid(
                    "wrong_token_type",
                    format!("token type {typ:?} is not an access token (expected at+jwt)"),
                ));
            }
        }
        if is_hmac(alg) {
            let Some(HmacKey(key)) = &self.hmac else {
                return Err(TokenError::invalid(
                    "alg_not_allowed",
                    format!("{alg:?} tokens are refused: no HMAC secret is configured"),
                ));
            };
            return decode(token, key, alg);
        }
        let keys = self
            .jwks
            .candidates(header.kid.as_deref(), alg)
            .await
            .map_err(|KeyError::Unavailable(e)| TokenError::Unavailable { source: e.into() })?;
        if keys.is_empty() {
            return Err(match &header.kid {
                Some(kid) => {
                    TokenError::invalid("unknown_kid", format!("no {alg:?} key with kid {kid:?} in the issuer's JWKS"))
                }
                None => TokenError::invalid("unknown_kid", format!("no {alg:?} key in the issuer's JWKS")),
            });
        }
        let mut last = None;
        for key in &keys {
            match decode(token, &key.key, alg) {
                Ok(claims) => return Ok(claims),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| TokenError::invalid("bad_signature", "the signature does not verify")))
    }
}

/// Verify `token` with `key` under `alg`, returning the payload.
///
/// # Errors
/// `bad_signature` or `malformed`.
pub fn decode(token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Map<String, Value>, TokenError> {
    match jsonwebtoken::decode::<Map<String, Value>>(token, key, &signature_only(alg)) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => TokenError::invalid("bad_signature", "the signature does not verify"),
            ErrorKind::InvalidAlgorithm => {
                TokenError::invalid("alg_mismatch", format!("the key cannot verify {alg:?} signatures"))
            }
            ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey | ErrorKind::InvalidRsaKey(_) => {
                TokenError::invalid("bad_signature", "the signature does not verify with the issuer's key")
            }
            _ => TokenError::invalid("malformed", format!("the token cannot be decoded: {e}")),
        }),
    }
}
