//! Opaque access tokens, through RFC 7662 token introspection with the `oauth2` crate.
//!
//! The server authenticates to the introspection endpoint with its own client
//! credentials (HTTP Basic). An active answer is turned into claims and judged by the same
//! rules as a JWT's: issuer (the endpoint's own issuer when the answer names none),
//! audience, expiry. An answer without `sub` is refused (`no_subject`): the principal is
//! its issuer and subject, and a `client_id` names the client a token was issued to, not
//! who it speaks for.
//!
//! How long an answer is believed is the verifier's ([`crate::OAuthVerifier`]): at most
//! `QUDAG_OAUTH2_INTROSPECTION_CACHE_SECS` and never past `exp`, so a revoked token stops
//! working within that time; an inactive answer is remembered for a few seconds.

use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenResponse, BasicTokenType};
use oauth2::{
    AccessToken, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ExtraTokenFields, IntrospectionUrl,
    RequestTokenError, StandardRevocableToken, StandardTokenIntrospectionResponse, TokenIntrospectionResponse,
};
use qudag_application::ports::TokenError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::http::HttpClient;

/// Members of an introspection answer beyond RFC 7662's (roles, `cnf`, ...).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct OtherMembers {
    #[serde(flatten)]
    members: Map<String, Value>,
}

impl ExtraTokenFields for OtherMembers {}

type Answer = StandardTokenIntrospectionResponse<OtherMembers, BasicTokenType>;

type Client = oauth2::Client<
    BasicErrorResponse,
    BasicTokenResponse,
    Answer,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
>;

/// Asks the authorization server about opaque tokens.
pub struct Introspector {
    client: Client,
    http: HttpClient,
    issuer: String,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector").field("url", &self.client.introspection_url().as_str()).finish_non_exhaustive()
    }
}

impl Introspector {
    /// An introspector posting to `url` as `client_id`, the endpoint of `issuer`.
    pub fn new(http: HttpClient, url: Url, client_id: &str, client_secret: &str, issuer: &str) -> Self {
        let client = oauth2::Client::new(ClientId::new(client_id.to_owned()))
            .set_client_secret(ClientSecret::new(client_secret.to_owned()))
            .set_introspection_url(IntrospectionUrl::from_url(url));
        Self { client, http, issuer: issuer.to_owned() }
    }

    /// The claims of `token` if it is active, as a JSON object like a JWT's payload.
    ///
    /// # Errors
    /// `Invalid` (`inactive_token`) for an inactive token, `Unavailable` when the
    /// endpoint cannot be asked or refuses our credentials.
    pub async fn introspect(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let token = AccessToken::new(token.to_owned());
        let answer = match self.client.introspect(&token).request_async(&self.http).await {
            Ok(a) => a,
            Err(e) => {
                let message = match &e {
                    RequestTokenError::ServerResponse(r) => format!("introspection refused: {r}"),
                    RequestTokenError::Request(r) => r.to_string(),
                    RequestTokenError::Parse(p, _) => format!("introspection answer unreadable: {p}"),
                    RequestTokenError::Other(o) => o.clone(),
                };
                tracing::warn!(error = %message, "Token introspection failed");
                return Err(TokenError::Unavailable { source: message.into() });
            }
        };
        if !answer.active() {
            return Err(crate::inactive());
        }
        to_claims(&answer, &self.issuer)
    }
}

/// The answer as token claims. An answer without `iss` speaks for `issuer` (RFC 7662
/// makes `iss` optional; the endpoint is our issuer's).
///
/// # Errors
/// `no_subject` when the answer names no `sub`.
fn to_claims(answer: &Answer, issuer: &str) -> Result<Map<String, Value>, TokenError> {
    let Some(sub) = answer.sub().filter(|s| !s.is_empty()) else {
        return Err(TokenError::invalid(
            "no_subject",
            "the introspection answer names no subject (sub); the token cannot be attributed",
        ));
    };
    let mut claims = answer.extra_fields().members.clone();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(v) = value {
            claims.insert(name.to_owned(), v);
        }
    };
    put("iss", Some(Value::from(answer.iss().unwrap_or(issuer).to_owned())));
    put("sub", Some(Value::from(sub.to_owned())));
    put("aud", answer.aud().map(|a| Value::from(a.clone())));
    put("exp", answer.exp().map(|t| Value::from(t.timestamp())));
    put("nbf", answer.nbf().map(|t| Value::from(t.timestamp())));
    put("iat", answer.iat().map(|t| Value::from(t.timestamp())));
    put("scope", answer.scopes().map(|s| Value::from(s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))));
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_become_claims() {
        let answer: Answer = serde_json::from_value(json!({
            "active": true, "roles": ["developer"], "sub": "svc-7", "client_id": "qudag-opaque", "exp": 2000,
            "iat": 1000, "iss": "http://127.0.0.1:9400", "aud": "qudag-mcp-api", "scope": "mcp:read mcp:write",
            "token_type": "Bearer", "cnf": {"jkt": "abc"}
        }))
        .unwrap();
        let c = to_claims(&answer, "http://elsewhere").unwrap();
        assert_eq!(c["iss"], "http://127.0.0.1:9400", "the answer's own iss wins");
        assert_eq!(c["sub"], "svc-7", "the subject, not the client");
        assert_eq!(c["roles"], json!(["developer"]));
        assert_eq!(c["aud"], json!(["qudag-mcp-api"]));
        assert_eq!(c["exp"], 2000);
        assert_eq!(c["scope"], "mcp:read mcp:write");
        assert_eq!(c["cnf"]["jkt"], "abc");
        assert!(!c.contains_key("nbf"));

        let answer: Answer = serde_json::from_value(json!({"active": true, "sub": "alice", "client_id": "c"})).unwrap();
        let c = to_claims(&answer, "http://127.0.0.1:9400").unwrap();
        assert_eq!((c["sub"].as_str(), c["iss"].as_str()), (Some("alice"), Some("http://127.0.0.1:9400")));
    }

    #[test]
    fn an_answer_without_a_subject_is_refused_not_filed_under_its_client() {
        for answer in [
            json!({"active": true, "client_id": "qudag-opaque", "roles": ["admin"]}),
            json!({"active": true, "sub": "", "client_id": "qudag-opaque"}),
        ] {
            let answer: Answer = serde_json::from_value(answer).unwrap();
            let err = to_claims(&answer, "http://127.0.0.1:9400").unwrap_err();
            assert_eq!(err.reason(), "no_subject", "{err:?}");
        }
    }
}
