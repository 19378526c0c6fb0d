//! `TokenVerifier`: from an access token to a principal.
//!
//! Adapters: `OAuthVerifier` (adapters/oauth: JWTs against the issuer's JWKS, opaque tokens
//! through RFC 7662 introspection, DPoP proofs, and the developer-mode key), and
//! `MockTokenVerifier` for unit tests.

use async_trait::async_trait;
use qudag_domain::principal::Principal;

use crate::BoxError;

/// How the client presented its token (`Authorization: <scheme> <token>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449): the token is bound to a key the client proves it holds.
    Dpop,
}

/// A DPoP proof and what it must match (RFC 9449 §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopProof {
    /// The `DPoP` header: a JWT signed with the client's key.
    pub proof: String,
    /// The request's method, for `htm`.
    pub method: String,
    /// The request's URL as the client addressed it, without query or fragment, for `htu`.
    pub url: String,
}

/// An access token as the client presented it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The token (the part after the scheme).
    pub token: String,
    /// The scheme it came with.
    pub scheme: AuthScheme,
    /// The DPoP proof sent with it, if any.
    pub dpop: Option<DpopProof>,
}

impl Credential {
    /// A plain bearer token.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self { token: token.into(), scheme: AuthScheme::Bearer, dpop: None }
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself: Debug output ends up in logs.
        f.debug_struct("Credential")
            .field("scheme", &self.scheme)
            .field("token_bytes", &self.token.len())
            .field("dpop", &self.dpop.is_some())
            .finish()
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No credential at all: the challenge carries no error code (RFC 6750 §3.1).
    #[error("no access token")]
    Missing,
    /// The request carries its credential in a way we refuse (a token in the query string
    /// or the body, two credentials...): HTTP 400 `invalid_request`.
    #[error("malformed request: {description}")]
    BadRequest {
        /// Stable reason code.
        reason: &'static str,
        /// Human-readable description, safe to return to the client.
        description: String,
    },
    /// The token is not acceptable: bad signature, wrong issuer, expired, malformed...
    /// `reason` is a stable code for metrics and audit, `description` a sentence for the
    /// `error_description` of `WWW-Authenticate` (`invalid_token`).
    #[error("invalid token: {description}")]
    Invalid {
        /// Stable reason code (e.g. `expired`, `bad_signature`).
        reason: &'static str,
        /// Human-readable description, safe to return to the client.
        description: String,
    },
    /// The token is DPoP-bound and its proof is missing or wrong (`invalid_dpop_proof`,
    /// RFC 9449 §7.1).
    #[error("invalid DPoP proof: {description}")]
    InvalidDpopProof {
        /// Stable reason code (e.g. `dpop_replayed`).
        reason: &'static str,
        /// Human-readable description, safe to return to the client.
        description: String,
    },
    /// The verifier cannot decide now (issuer unreachable, JWKS not loaded): HTTP 503.
    #[error("token verification unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

impl TokenError {
    /// An `Invalid` error.
    pub fn invalid(reason: &'static str, description: impl Into<String>) -> Self {
        Self::Invalid { reason, description: description.into() }
    }

    /// An `InvalidDpopProof` error.
    pub fn dpop(reason: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidDpopProof { reason, description: description.into() }
    }

    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::BadRequest { reason, .. } | Self::Invalid { reason, .. } | Self::InvalidDpopProof { reason, .. } => {
                reason
            }
            Self::Unavailable { .. } => "verifier_unavailable",
        }
    }

    /// The description safe to show the client, if there is one.
    pub fn description(&self) -> Option<&str> {
        match self {
            Self::BadRequest { description, .. }
            | Self::Invalid { description, .. }
            | Self::InvalidDpopProof { description, .. } => Some(description),
            Self::Missing | Self::Unavailable { .. } => None,
        }
    }
}

/// Verification of access tokens.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verify `credential` (and its DPoP proof, when the token is bound to a key) and
    /// return who presented it.
    ///
    /// # Errors
    /// `Invalid`/`InvalidDpopProof` for a credential that must be refused (HTTP 401),
    /// `Unavailable` when no decision can be made now (HTTP 503).
    async fn verify(&self, credential: &Credential) -> Result<Principal, TokenError>;
}
