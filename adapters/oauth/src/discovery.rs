//! Authorization server metadata: OpenID Connect Discovery 1.0 and RFC 8414.
//!
//! For an issuer `https://as.example/tenant` the documents tried, in order, are
//! `/.well-known/oauth-authorization-server/tenant` (RFC 8414 §3.1, path inserted),
//! `/.well-known/openid-configuration/tenant` and `/tenant/.well-known/openid-configuration`
//! (OIDC Discovery §4, path appended); without a path, the two well-known documents at the
//! root. The first document served wins, and its `issuer` must equal ours exactly
//! (RFC 8414 §3.3), or a mix-up is possible.

use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use crate::http::{FetchError, HttpClient, secure_url};

/// What we need from the metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerMetadata {
    /// `issuer`.
    pub issuer: String,
    /// `jwks_uri`.
    pub jwks_uri: Option<Url>,
    /// `introspection_endpoint`.
    pub introspection_endpoint: Option<Url>,
}

/// The metadata URLs to try for `issuer`, in order.
pub fn candidates(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let at = |p: String| {
        let mut u = issuer.clone();
        u.set_path(&p);
        u.set_query(None);
        u
    };
    if path.is_empty() {
        vec![at("/.well-known/oauth-authorization-server".into()), at("/.well-known/openid-configuration".into())]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    }
}

/// Fetch the metadata of `issuer`.
///
/// # Errors
/// [`FetchError`] when no document answers, or the one that does names another issuer
/// or carries an insecure URL.
pub async fn discover(http: &HttpClient, issuer: &str) -> Result<ServerMetadata, FetchError> {
    let issuer_url = Url::parse(issuer)
        .map_err(|e| FetchError::Response { url: issuer.to_owned(), message: format!("bad issuer URL: {e}") })?;
    let mut failures = Vec::new();
    for url in candidates(&issuer_url) {
        match http.get_json(&url).await {
            Ok(document) => return parse(issuer, &url, &document),
            Err(e @ FetchError::Transport { .. }) => return Err(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(FetchError::Response {
        url: issuer.to_owned(),
        message: format!("no authorization server metadata found ({})", failures.join("; ")),
    })
}

fn parse(issuer: &str, url: &Url, document: &Value) -> Result<ServerMetadata, FetchError> {
    let bad = |message: String| FetchError::Response { url: url.to_string(), message };
    let named = document.get("issuer").and_then(Value::as_str).unwrap_or_default();
    if named != issuer {
        return Err(bad(format!("metadata names issuer {named:?}, expected exactly {issuer:?}")));
    }
    let endpoint = |field: &'static str| -> Result<Option<Url>, FetchError> {
        match document.get(field).and_then(Value::as_str) {
            None => Ok(None),
            Some(u) => secure_url(field, u).map(Some).map_err(|e| bad(e.to_string())),
        }
    };
    Ok(ServerMetadata {
        issuer: issuer.to_owned(),
        jwks_uri: endpoint("jwks_uri")?,
        introspection_endpoint: endpoint("introspection_endpoint")?,
    })
}

/// Finds the JWKS and introspection URLs: configured ones win, otherwise discovery runs
/// once (retried on the next need if it failed).
#[derive(Debug)]
pub struct Locator {
    issuer: String,
    jwks_uri: Option<Url>,
    discovered: Mutex<Option<ServerMetadata>>,
}

impl Locator {
    /// For `issuer`, with a configured `jwks_uri` if any.
    pub fn new(issuer: impl Into<String>, jwks_uri: Option<Url>) -> Self {
        Self { issuer: issuer.into(), jwks_uri, discovered: Mutex::new(None) }
    }

    /// The metadata, discovered once.
    ///
    /// # Errors
    /// [`FetchError`].
    pub async fn metadata(&self, http: &HttpClient) -> Result<ServerMetadata, FetchError> {
        let mut slot = self.discovered.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let m = discover(http, &self.issuer).await?;
        tracing::info!(
            issuer = %m.issuer,
            jwks_uri = ?m.jwks_uri.as_ref().map(Url::as_str),
            introspection = ?m.introspection_endpoint.as_ref().map(Url::as_str),
            "Authorization server metadata discovered"
        );
        *slot = Some(m.clone());
        Ok(m)
    }

    /// The JWKS URL.
    ///
    /// # Errors
    /// [`FetchError`] when discovery fails or the metadata has no `jwks_uri`.
    pub async fn jwks_uri(&self, http: &HttpClient) -> Result<Url, FetchError> {
        if let Some(u) = &self.jwks_uri {
            return Ok(u.clone());
        }
        self.metadata(http).await?.jwks_uri.ok_or_else(|| FetchError::Response {
            url: self.issuer.clone(),
            message: "the authorization server metadata has no jwks_uri".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn candidate_documents_follow_rfc8414_then_oidc() {
        let urls = |i: &str| candidates(&Url::parse(i).unwrap()).into_iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            urls("https://as.example"),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            urls("https://as.example/realms/qudag/"),
            [
                "https://as.example/.well-known/oauth-authorization-server/realms/qudag",
                "https://as.example/.well-known/openid-configuration/realms/qudag",
                "https://as.example/realms/qudag/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn metadata_must_name_our_issuer_and_secure_endpoints() {
        let url = Url::parse("https://as.example/.well-known/openid-configuration").unwrap();
        let ok = parse(
            "https://as.example",
            &url,
            &json!({"issuer": "https://as.example", "jwks_uri": "https://as.example/jwks"}),
        )
        .unwrap();
        assert_eq!(ok.jwks_uri.unwrap().as_str(), "https://as.example/jwks");
        assert_eq!(ok.introspection_endpoint, None);

        let err = parse("https://as.example", &url, &json!({"issuer": "https://as.example/"})).unwrap_err();
        assert!(err.to_string().contains("expected exactly"), "{err}");
        let err = parse(
            "https://as.example",
            &url,
            &json!({"issuer": "https://as.example", "jwks_uri": "http://as.example/jwks"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("jwks_uri"), "{err}");
    }
}
