//! Who is calling, on the wire: the client's address (through trusted proxies), and the
//! OAuth 2.0 resource server's side — reading credentials, challenges
//! (`WWW-Authenticate`), and the RFC 9728 protected-resource metadata.
//!
//! - Tokens are read only from the `Authorization` header (`Bearer`, or `DPoP` with a
//!   `DPoP` proof header). A token in the query string or a form body is refused with
//!   400 `invalid_request` (MCP authorization, "Token Requirements"; RFC 6750 §2).
//! - 401 and 403 answers carry a challenge with `resource_metadata` (RFC 9728 §5.1),
//!   `error`/`error_description` for a bad token (RFC 6750 §3), and for a missing scope
//!   `error="insufficient_scope"` with the scopes to request (MCP authorization, "Scope
//!   Challenge Handling").

use std::net::IpAddr;

use ipnet::IpNet;
use poem::Request;
use poem::http::HeaderValue;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use qudag_application::admission::RequestContext;
use qudag_application::ports::{AuthScheme, Credential, DpopProof};
use qudag_domain::rbac::Scope;
use serde_json::Value;

/// Where the server is reached from outside, for metadata URLs and DPoP `htu`.
#[derive(Clone, Debug, Default)]
pub struct PublicOrigin {
    /// The configured external base URL (`QUDAG_PUBLIC_URL`), without a trailing slash.
    pub configured: Option<String>,
    /// Proxies whose `X-Forwarded-Proto`/`-Host` are believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl PublicOrigin {
    /// The external base URL of `req`: the configured one, else the scheme and `Host` the
    /// request came with (as forwarded by a trusted proxy).
    pub fn base(&self, req: &Request) -> String {
        if let Some(c) = &self.configured {
            return c.clone();
        }
        let headers = req.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let trusted = req
            .remote_addr()
            .as_socket_addr()
            .is_some_and(|a| self.trusted_proxies.iter().any(|b| b.contains(&a.ip())));
        let forwarded =
            |name: &str| if trusted { text(name).and_then(|v| v.split(',').next()).map(str::trim) } else { None };
        let scheme = forwarded("x-forwarded-proto").unwrap_or(req.scheme().as_str());
        let host = forwarded("x-forwarded-host")
            .or_else(|| text("host"))
            .map(str::to_owned)
            .or_else(|| req.local_addr().as_socket_addr().map(ToString::to_string))
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{scheme}://{host}")
    }

    /// The URL of the protected-resource metadata of the MCP endpoint (RFC 9728 §3.1,
    /// path inserted).
    pub fn metadata_url(&self, req: &Request) -> String {
        format!("{}{METADATA_PATH}/mcp", self.base(req))
    }
}

/// The well-known path of the protected-resource metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// What admission needs to know of `req`: its id, the client's address and credential.
pub fn request_context(req: &Request, origin: &PublicOrigin) -> RequestContext {
    let request_id = req.extensions().get::<crate::RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let peer: Option<IpAddr> = req.remote_addr().as_socket_addr().map(|a| a.ip());
    let client_addr = peer.map(|peer| {
        client_address(
            peer,
            req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            &origin.trusted_proxies,
        )
    });
    let (credential, credential_problem) = credential(req, || format!("{}{}", origin.base(req), req.uri().path()));
    RequestContext { request_id, client_addr, credential, credential_problem }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy (the header's
/// left part is written by the client and cannot be believed).
fn client_address(peer: IpAddr, forwarded: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|block| block.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(forwarded) = forwarded else { return peer };
    let hops: Vec<IpAddr> = forwarded.split(',').filter_map(|h| h.trim().parse().ok()).collect();
    hops.iter().rev().find(|ip| !is_trusted(ip)).or(hops.first()).copied().unwrap_or(peer)
}

/// The credential of `req` (and a reason to refuse it, if it is carried wrongly). `htu`
/// gives the request's external URL for a DPoP proof.
pub fn credential(req: &Request, htu: impl FnOnce() -> String) -> (Option<Credential>, Option<(&'static str, String)>) {
    let headers = req.headers();
    if req.uri().query().is_some_and(|q| has_param(q, "access_token")) {
        return (
            None,
            Some((
                "token_in_query",
                "access tokens are accepted only in the Authorization header, never in the URL".into(),
            )),
        );
    }
    let mut values = headers.get_all("authorization").iter();
    let Some(value) = values.next() else { return (None, None) };
    if values.next().is_some() {
        return (None, Some(("multiple_credentials", "more than one Authorization header".into())));
    }
    let Ok(value) = value.to_str() else {
        return (None, Some(("malformed_header", "the Authorization header is not text".into())));
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return (
            None,
            Some(("malformed_header", "the Authorization header has no credential after the scheme".into())),
        );
    };
    let token = token.trim().to_owned();
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        AuthScheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        AuthScheme::Dpop
    } else {
        return (
            None,
            Some((
                "unsupported_scheme",
                format!("authorization scheme {scheme:?} is not accepted; use Bearer or DPoP"),
            )),
        );
    };
    let mut proofs = headers.get_all("dpop").iter();
    let dpop = match (proofs.next(), proofs.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return (None, Some(("multiple_credentials", "more than one DPoP header".into()))),
        (Some(p), None) => p.to_str().ok().map(|proof| DpopProof {
            proof: proof.trim().to_owned(),
            method: req.method().as_str().to_owned(),
            url: htu(),
        }),
    };
    (Some(Credential { token, scheme, dpop }), None)
}

/// Whether a form body (`application/x-www-form-urlencoded`) carries `access_token`.
pub fn form_has_token(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|b| has_param(b, "access_token"))
}

fn has_param(query: &str, name: &str) -> bool {
    query.split('&').any(|pair| pair.split('=').next().is_some_and(|k| k == name))
}

/// The `WWW-Authenticate` value for the OAuth error members `oauth` (see
/// [`oauth_error_data`](crate::errors::oauth_error_data)) and the metadata URL.
pub fn challenge(oauth: &Value, metadata_url: &str) -> Option<HeaderValue> {
    let scheme = oauth.get("scheme").and_then(Value::as_str).unwrap_or("Bearer");
    let mut params = vec![format!("resource_metadata=\"{}\"", quote(metadata_url))];
    for name in ["error", "error_description", "scope"] {
        if let Some(v) = oauth.get(name).and_then(Value::as_str) {
            params.push(format!("{name}=\"{}\"", quote(v)));
        }
    }
    if scheme == "DPoP" {
        params.push(format!("algs=\"{DPOP_ALGS}\""));
    }
    HeaderValue::from_str(&format!("{scheme} {}", params.join(", "))).ok()
}

/// The DPoP proof algorithms accepted.
pub const DPOP_ALGS: &str = "ES256 ES384 EdDSA RS256 RS384 RS512 PS256 PS384 PS512";

/// A challenge parameter's value: quotes and backslashes escaped, control characters
/// (which a header cannot carry) replaced.
fn quote(v: &str) -> String {
    v.chars()
        .map(|c| match c {
            '"' | '\\' => format!("\\{c}"),
            c if c.is_control() || !c.is_ascii() => "?".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[derive(Tags)]
enum ApiTags {
    /// OAuth 2.0 protected-resource metadata.
    #[oai(rename = "OAuth")]
    OAuth,
}

/// RFC 9728 protected-resource metadata.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: the MCP endpoint's URL.
    pub resource: String,
    /// The authorization servers (issuers) whose tokens are accepted.
    pub authorization_servers: Vec<String>,
    /// The scopes this API understands.
    pub scopes_supported: Vec<String>,
    /// How tokens are sent: only in the `Authorization` header.
    pub bearer_methods_supported: Vec<String>,
    /// The JWS algorithms accepted for DPoP proofs.
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// A human-readable name.
    pub resource_name: String,
}

/// The metadata answer.
#[derive(ApiResponse, Debug)]
pub enum MetadataResponse {
    /// The metadata.
    #[oai(status = 200)]
    Ok(Json<ProtectedResourceMetadata>, #[oai(header = "Cache-Control")] String),
    /// Authentication is off: there is no authorization server.
    #[oai(status = 404)]
    NotFound,
}

/// The RFC 9728 endpoints.
#[derive(Debug, Clone)]
pub struct OAuthApi {
    /// The issuer, when authentication is on.
    pub issuer: Option<String>,
    /// The external origin.
    pub origin: PublicOrigin,
}

impl OAuthApi {
    fn metadata(&self, req: &Request) -> MetadataResponse {
        let Some(issuer) = &self.issuer else { return MetadataResponse::NotFound };
        MetadataResponse::Ok(
            Json(ProtectedResourceMetadata {
                resource: format!("{}/mcp", self.origin.base(req)),
                authorization_servers: vec![issuer.clone()],
                scopes_supported: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
                bearer_methods_supported: vec!["header".into()],
                dpop_signing_alg_values_supported: DPOP_ALGS.split(' ').map(str::to_owned).collect(),
                resource_name: "QuDAG MCP server".into(),
            }),
            "max-age=3600".into(),
        )
    }
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Protected-resource metadata of the MCP endpoint
    ///
    /// RFC 9728 metadata for the resource `/mcp` (path-inserted well-known URI): its
    /// authorization server, scopes and accepted token presentations.
    #[oai(
        path = "/.well-known/oauth-protected-resource/mcp",
        method = "get",
        operation_id = "protectedResourceMetadataMcp"
    )]
    async fn for_mcp(&self, req: &Request) -> MetadataResponse {
        self.metadata(req)
    }

    /// Protected-resource metadata (root)
    ///
    /// The same document at the root well-known URI, for clients that look there.
    #[oai(path = "/.well-known/oauth-protected-resource", method = "get", operation_id = "protectedResourceMetadata")]
    async fn root(&self, req: &Request) -> MetadataResponse {
        self.metadata(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.1/32".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A direct client: its header is ignored.
        assert_eq!(client_address(ip("203.0.113.9"), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        // Through one trusted proxy.
        assert_eq!(client_address(ip("10.1.2.3"), Some("198.51.100.7"), &trusted), ip("198.51.100.7"));
        // A client forging a hop in front of two trusted proxies: the nearest untrusted hop wins.
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("6.6.6.6, 198.51.100.7, 192.0.2.1"), &trusted),
            ip("198.51.100.7")
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(client_address(ip("10.1.2.3"), None, &trusted), ip("10.1.2.3"));
        assert_eq!(client_address(ip("10.1.2.3"), Some("garbage"), &trusted), ip("10.1.2.3"));
        let block = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(block("::/0").contains(&ip("::1")) && !block("10.0.0.0/8").contains(&ip("::1")));
    }

    #[test]
    fn tokens_are_read_only_from_the_header() {
        let req = Request::builder().uri_str("/mcp?access_token=abc").finish();
        let (cred, problem) = credential(&req, String::new);
        assert!(cred.is_none());
        assert_eq!(problem.unwrap().0, "token_in_query");

        let req = Request::builder().header("authorization", "Bearer  abc ").finish();
        let (cred, problem) = credential(&req, String::new);
        assert!(problem.is_none());
        let cred = cred.unwrap();
        assert_eq!((cred.token.as_str(), cred.scheme), ("abc", AuthScheme::Bearer));

        let req = Request::builder()
            .method(poem::http::Method::POST)
            .header("authorization", "DPoP abc")
            .header("dpop", "proof")
            .finish();
        let (cred, _) = credential(&req, || "https://mcp.example/mcp".into());
        let proof = cred.unwrap().dpop.unwrap();
        assert_eq!((proof.method.as_str(), proof.url.as_str()), ("POST", "https://mcp.example/mcp"));

        let req = Request::builder().header("authorization", "Basic dXNlcjpwdw==").finish();
        assert_eq!(credential(&req, String::new).1.unwrap().0, "unsupported_scheme");
        let req = Request::builder().header("authorization", "Bearer").finish();
        assert_eq!(credential(&req, String::new).1.unwrap().0, "malformed_header");
        assert!(form_has_token(b"a=1&access_token=x"));
        assert!(!form_has_token(b"a=1&not_access_token=x"));
    }
}
