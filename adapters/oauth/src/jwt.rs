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

/// The `typ` header values accepted on access tokens (`QUDAG_OAUTH2_TOKEN_TYPES`).
///
/// RFC 9068 access tokens say `typ: at+jwt` (or its long form `application/at+jwt`); some
/// issuers send no `typ` at all. An ID token (`typ: JWT`, or none, with an ID token's
/// claims) is not an access token: a client holding one for this audience must not be able
/// to call with it. Values compare case-insensitively and the `application/` prefix is
/// optional (RFC 7515 §4.1.9); the entry `none` admits a token without `typ`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenTypes {
    types: Vec<String>,
    untyped: bool,
}

impl Default for TokenTypes {
    /// `at+jwt,none`: RFC 9068 access tokens, and tokens of issuers that send no `typ`.
    fn default() -> Self {
        Self { types: vec!["at+jwt".into()], untyped: true }
    }
}

/// Claims only an OpenID Connect ID token carries (Core §2, §3.1.3.6, §3.3.2.11).
const ID_TOKEN_CLAIMS: [&str; 4] = ["nonce", "at_hash", "c_hash", "s_hash"];

impl TokenTypes {
    /// Parse a comma-separated list (`at+jwt,none`).
    ///
    /// # Errors
    /// A message when the list is empty or names a type no access token has
    /// (`dpop+jwt`, anything without `jwt`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut out = Self { types: Vec::new(), untyped: false };
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = normalize(entry);
            if entry == "none" {
                out.untyped = true;
            } else if entry == "dpop+jwt" || !(entry == "jwt" || entry.ends_with("+jwt")) {
                return Err(format!("{entry:?} is not an access-token type (use at+jwt, jwt or none)"));
            } else if !out.types.contains(&entry) {
                out.types.push(entry);
            }
        }
        if out.types.is_empty() && !out.untyped {
            return Err("names no token type (the default is at+jwt,none)".into());
        }
        Ok(out)
    }

    /// Whether a token whose header says `typ` is accepted.
    pub fn accepts(&self, typ: Option<&str>) -> bool {
        match typ {
            None => self.untyped,
            Some(t) => self.types.contains(&normalize(t)),
        }
    }
}

/// A `typ` value lower-cased, without the optional `application/` prefix.
fn normalize(typ: &str) -> String {
    let typ = typ.trim().to_ascii_lowercase();
    typ.strip_prefix("application/").map(str::to_owned).unwrap_or(typ)
}

/// Verifies JWT signatures against the issuer's keys.
#[derive(Debug)]
pub struct JwtVerifier {
    jwks: Arc<Jwks>,
    hmac: Option<HmacKey>,
    types: TokenTypes,
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
    /// A verifier using `jwks`, and `hmac` for HS* tokens if given, accepting the token
    /// types `types`.
    pub fn new(jwks: Arc<Jwks>, hmac: Option<HmacKey>, types: TokenTypes) -> Self {
        Self { jwks, hmac, types }
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
        let typ = header.typ.as_deref();
        if !self.types.accepts(typ) {
            let shown: String = typ.unwrap_or("(none)").chars().take(32).collect();
            return Err(TokenError::invalid(
                "wrong_token_type",
                format!("token type {shown:?} is not an access token (expected at+jwt)"),
            ));
        }
        let claims = self.verify_signature(token, header, alg).await?;
        // A token that does not say it is an access token and carries an ID token's claims
        // is an ID token, whatever types are accepted.
        if typ.is_none_or(|t| normalize(t) != "at+jwt")
            && let Some(claim) = ID_TOKEN_CLAIMS.iter().find(|c| claims.contains_key(**c))
        {
            return Err(TokenError::invalid(
                "id_token",
                format!("an ID token (it carries {claim}) is not an access token"),
            ));
        }
        Ok(claims)
    }

    async fn verify_signature(
        &self,
        token: &str,
        header: &RawHeader,
        alg: Algorithm,
    ) -> Result<Map<String, Value>, TokenError> {
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
