//! `TokenVerifier`: from a bearer token to a principal.
//!
//! Adapters: a JWT/JWKS verifier and an RFC 7662 introspection verifier (adapters/oauth),
//! and `MockTokenVerifier` for unit tests.

use async_trait::async_trait;
use qudag_domain::principal::Principal;

use crate::BoxError;

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is not acceptable: bad signature, wrong issuer, expired, malformed...
    /// `reason` is a stable code for metrics and audit, `description` a sentence for the
    /// `error_description` of `WWW-Authenticate`.
    #[error("invalid token: {description}")]
    Invalid {
        /// Stable reason code (e.g. `expired`, `bad_signature`).
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
    /// The stable reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid { reason, .. } => reason,
            Self::Unavailable { .. } => "verifier_unavailable",
        }
    }
}

/// Verification of bearer tokens.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verify `token` (the credential after `Bearer `) and return who presented it.
    ///
    /// # Errors
    /// `Invalid` for a token that must be refused (HTTP 401), `Unavailable` when no
    /// decision can be made now (HTTP 503).
    async fn verify(&self, token: &str) -> Result<Principal, TokenError>;
}
